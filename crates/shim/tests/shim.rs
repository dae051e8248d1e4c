//! The built `berth-shim` binary end to end with a busybox bundle, as berthd would drive it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use berth_runtime::cgroup::Cgroup;
use berth_runtime::protocol::*;
use berth_runtime::spec::{
    Capabilities, ConsoleSize, Linux, Mount, Namespace, Process, Root, Spec,
};

const BIN: &str = env!("CARGO_BIN_EXE_berth-shim");
static SEQ: AtomicU32 = AtomicU32::new(0);

fn m(dest: &str, kind: &str, opts: &[&str]) -> Mount {
    Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: kind.into(),
        options: opts.iter().map(|s| s.to_string()).collect(),
    }
}

fn spec(args: &[&str], cgroup: &str) -> Spec {
    let caps: Vec<String> = berth_runtime::DEFAULT_CAPABILITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    Spec {
        oci_version: "1.2.0".into(),
        process: Process {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![format!("PATH={}", berth_runtime::DEFAULT_PATH)],
            cwd: "/".into(),
            capabilities: Some(Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
                ..Default::default()
            }),
            ..Default::default()
        },
        // Relative to the bundle, as OCI allows.
        root: Root {
            path: "rootfs".into(),
            readonly: false,
        },
        hostname: "shimtest".into(),
        mounts: vec![
            m("/proc", "proc", &["nosuid", "noexec", "nodev"]),
            m(
                "/dev",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            ),
            m(
                "/dev/pts",
                "devpts",
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            ),
            m("/sys", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
            m(
                "/dev/shm",
                "tmpfs",
                &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
            ),
        ],
        linux: Linux {
            namespaces: ["mount", "network", "uts", "pid", "ipc", "cgroup"]
                .iter()
                .map(|k| Namespace {
                    kind: k.to_string(),
                    path: None,
                })
                .collect(),
            cgroups_path: Some(cgroup.into()),
            masked_paths: vec!["/proc/kcore".into(), "/sys/firmware".into()],
            readonly_paths: vec!["/proc/sys".into()],
            ..Default::default()
        },
        ..Default::default()
    }
}

fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for whoever reaps orphans is gone too.
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: i32) -> bool {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(10) {
        if gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A bundle in a temp dir; on drop kills what is left, removes the cgroup and the files.
struct Bundle {
    dir: berth_testkit::TempDir,
    cgroup_parent: String,
    spec: Spec,
    cfg: ShimConfig,
    ready: Option<Ready>,
}

impl Bundle {
    fn new(args: &[&str]) -> Bundle {
        let dir = berth_testkit::tempdir("sh").unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs")).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(berth_testkit::busybox_tar())
            .arg("-C")
            .arg(dir.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(st.success());
        let cgroup_parent = format!(
            "/bt-sh-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let spec = spec(args, &format!("{cgroup_parent}/c"));
        let cfg = ShimConfig {
            id: "c1".into(),
            state_dir: dir.path().join("state").to_string_lossy().into_owned(),
            log_path: dir
                .path()
                .join("log/c1-json.log")
                .to_string_lossy()
                .into_owned(),
            log_max_files: 1,
            ..Default::default()
        };
        Bundle {
            dir,
            cgroup_parent,
            spec,
            cfg,
            ready: None,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn state(&self, f: &str) -> PathBuf {
        PathBuf::from(&self.cfg.state_dir).join(f)
    }

    fn write(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.spec).unwrap(),
        )
        .unwrap();
        std::fs::write(
            self.path().join("shim.json"),
            serde_json::to_vec_pretty(&self.cfg).unwrap(),
        )
        .unwrap();
    }

    /// Runs `berth-shim <bundle>` with fd 3 a pipe (via `wrapper`, a shell line run with the
    /// binary and bundle as $0 and $1, when given) and reads the Ready line.
    fn launch_with(&mut self, wrapper: Option<&str>) -> (Ready, std::process::Child) {
        self.write();
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fds.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh fds.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let mut cmd = match wrapper {
            None => {
                let mut c = Command::new(BIN);
                c.arg(self.path());
                c
            }
            Some(line) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(line).arg(BIN).arg(self.path());
                c
            }
        };
        let wfd = w.as_raw_fd();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: dup2 is async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(wfd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(w);
        let mut line = String::new();
        BufReader::new(std::fs::File::from(r))
            .read_line(&mut line)
            .unwrap();
        let ready: Ready =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
        self.ready = Some(ready.clone());
        (ready, child)
    }

    fn launch(&mut self) -> Ready {
        let (ready, mut child) = self.launch_with(None);
        // The launched process exits at once (the shim lives on, detached).
        assert!(child.wait().unwrap().success());
        ready
    }

    fn shim_pid(&self) -> i32 {
        self.ready.as_ref().and_then(|r| r.shim_pid).unwrap()
    }

    fn conn(&self, req: &Request) -> Conn {
        let s = UnixStream::connect(self.state("shim.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut line = serde_json::to_vec(req).unwrap();
        line.push(b'\n');
        (&s).write_all(&line).unwrap();
        Conn {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    /// One request, its reply.
    fn call(&self, req: &Request) -> Reply {
        self.conn(req).reply()
    }

    fn exit_json(&self) -> ExitStatus {
        serde_json::from_slice(&std::fs::read(self.state("exit.json")).unwrap()).unwrap()
    }

    fn log_lines(&self, suffix: &str) -> Vec<serde_json::Value> {
        let p = format!("{}{suffix}", self.cfg.log_path);
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
            .collect()
    }

    /// The shim exited and took its socket with it.
    fn assert_finished(&self) {
        assert!(wait_gone(self.shim_pid()), "shim still running");
        assert!(!self.state("shim.sock").exists());
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for f in ["shim.pid", "init.pid"] {
            if let Ok(s) = std::fs::read_to_string(self.state(f))
                && let Ok(pid) = s.trim().parse::<i32>()
                && !gone(pid)
            {
                // SAFETY: killing a process this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                wait_gone(pid);
            }
        }
        Cgroup::remove_path(&self.cgroup_parent).unwrap();
    }
}

struct Conn {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Conn {
    fn reply(&mut self) -> Reply {
        let mut line = String::new();
        self.r.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut h = [0u8; 5];
        if self.r.read_exact(&mut h).is_err() {
            return None;
        }
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        let mut data = vec![0; len];
        self.r.read_exact(&mut data).unwrap();
        Some((h[0], data))
    }

    fn send(&mut self, kind: u8, data: &[u8]) {
        let mut f = vec![kind];
        f.extend_from_slice(&(data.len() as u32).to_be_bytes());
        f.extend_from_slice(data);
        self.w.write_all(&f).unwrap();
    }

    /// Frames until EOF, split by kind.
    fn drain(&mut self) -> (String, String, Option<i32>) {
        let (mut out, mut err, mut exit) = (Vec::new(), Vec::new(), None);
        while let Some((k, d)) = self.frame() {
            match k {
                FRAME_STDOUT => out.extend(d),
                FRAME_STDERR => err.extend(d),
                FRAME_EXIT => exit = Some(i32::from_be_bytes([d[0], d[1], d[2], d[3]])),
                _ => panic!("unexpected frame {k}"),
            }
        }
        (
            String::from_utf8_lossy(&out).into(),
            String::from_utf8_lossy(&err).into(),
            exit,
        )
    }

    /// Reads stdout frames until `want` has appeared.
    fn until(&mut self, want: &str) -> String {
        let mut s = String::new();
        while !s.contains(want) {
            let (_, d) = self
                .frame()
                .unwrap_or_else(|| panic!("EOF before {want:?}; got {s:?}"));
            s.push_str(&String::from_utf8_lossy(&d));
        }
        s
    }
}

#[test]
fn attach_start_log_wait_exit() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo hello; echo oops >&2; ls /proc/self/fd >&2; exit 3",
    ]);
    let ready = b.launch();
    assert!(ready.error.is_none(), "{ready:?}");
    let init = ready.init_pid.unwrap();
    assert_eq!(
        std::fs::read_to_string(b.state("init.pid")).unwrap(),
        init.to_string()
    );
    assert_eq!(
        std::fs::read_to_string(b.state("shim.pid")).unwrap(),
        b.shim_pid().to_string()
    );
    let mode = std::fs::metadata(b.state("shim.sock"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.unwrap(), 0o600);

    let state = b.call(&Request::State);
    assert_eq!((state.pid, state.running), (Some(init), Some(false)));
    let mut attach = b.conn(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    assert_eq!(attach.reply(), Reply::default());
    let mut wait = b.conn(&Request::Wait);
    let started = b.call(&Request::Start);
    assert_eq!(started.pid, Some(init));
    let (out, err, _) = attach.drain();
    // No fd of the shim (socket, log, signalfd, fd 3) reaches the container.
    assert_eq!(
        (out.as_str(), err.as_str()),
        ("hello\n", "oops\n0\n1\n2\n3\n")
    );
    let w = wait.reply();
    let exit = w.exit.unwrap();
    assert_eq!(
        (exit.exit_code, exit.signal, exit.oom_killed),
        (3, None, false)
    );
    assert!(exit.finished_at.ends_with('Z'));
    assert_eq!(b.exit_json(), exit);
    let log = b.log_lines("");
    assert_eq!(log.len(), 6);
    let by_stream = |s: &str| {
        log.iter().find(|l| l["stream"] == s).unwrap()["log"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(by_stream("stdout"), "hello\n");
    assert_eq!(by_stream("stderr"), "oops\n");
    assert_eq!(log.last().unwrap()["log"], "3\n");
    b.assert_finished();
}

#[test]
fn log_rotation() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
    ]);
    b.cfg.log_max_size = 2000;
    b.cfg.log_max_files = 3;
    assert!(b.launch().error.is_none());
    let mut wait = b.conn(&Request::Wait);
    b.call(&Request::Start);
    assert_eq!(wait.reply().exit.unwrap().exit_code, 0);
    b.assert_finished();
    let (cur, one, two) = (b.log_lines(""), b.log_lines(".1"), b.log_lines(".2"));
    assert!(!Path::new(&format!("{}.3", b.cfg.log_path)).exists());
    assert_eq!(cur.last().unwrap()["log"], "line-299\n");
    for f in ["", ".1", ".2"] {
        let len = std::fs::metadata(format!("{}{f}", b.cfg.log_path))
            .unwrap()
            .len();
        assert!(len < 2000 + 200, "{f}: {len}");
    }
    // Consecutive across the rotation.
    let n = |v: &serde_json::Value| {
        v["log"]
            .as_str()
            .unwrap()
            .trim()
            .trim_start_matches("line-")
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(n(two.last().unwrap()) + 1, n(&one[0]));
    assert_eq!(n(one.last().unwrap()) + 1, n(&cur[0]));
}

fn exec_process(args: &[&str], terminal: bool) -> Box<Process> {
    Box::new(Process {
        terminal,
        console_size: terminal.then_some(ConsoleSize {
            height: 24,
            width: 80,
        }),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![format!("PATH={}", berth_runtime::DEFAULT_PATH)],
        cwd: "/".into(),
        ..Default::default()
    })
}

#[test]
fn exec_frames_and_signal() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    assert!(b.launch().error.is_none());
    b.call(&Request::Start);
    assert_eq!(b.call(&Request::State).running, Some(true));
    let mut e = b.conn(&Request::Exec {
        id: "e1".into(),
        process: exec_process(
            &["sh", "-c", "echo hi; echo err >&2; hostname; exit 5"],
            false,
        ),
        stdin: false,
    });
    assert!(e.reply().pid.is_some());
    let (out, err, code) = e.drain();
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("hi\nshimtest\n", "err\n", Some(5))
    );
    let r = b.call(&Request::Exec {
        id: "e2".into(),
        process: exec_process(&["nope"], false),
        stdin: false,
    });
    assert_eq!(
        r.error.as_deref(),
        Some("exec: \"nope\": executable file not found in $PATH")
    );
    assert_eq!(r.exit_code, Some(127));
    // Exec output is not the container's log.
    assert!(b.log_lines("").is_empty());
    let mut wait = b.conn(&Request::Wait);
    assert_eq!(
        b.call(&Request::Signal {
            signal: libc::SIGKILL,
            all: false
        }),
        Reply::default()
    );
    let exit = wait.reply().exit.unwrap();
    assert_eq!((exit.exit_code, exit.signal), (137, Some(9)));
    b.assert_finished();
}

#[test]
fn signal_all_reaches_the_handler() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; echo ready; while true; do sleep 0.05; done",
    ]);
    assert!(b.launch().error.is_none());
    let mut attach = b.conn(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: false,
    });
    attach.reply();
    b.call(&Request::Start);
    attach.until("ready");
    let mut wait = b.conn(&Request::Wait);
    assert_eq!(
        b.call(&Request::Signal {
            signal: libc::SIGTERM,
            all: true
        }),
        Reply::default()
    );
    assert_eq!(wait.reply().exit.unwrap().exit_code, 7);
    b.assert_finished();
}

#[test]
fn stdin_through_attach() {
    let mut b = Bundle::new(&["cat"]);
    b.cfg.open_stdin = true;
    b.cfg.stdin_once = true;
    assert!(b.launch().error.is_none());
    let mut a = b.conn(&Request::Attach {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    a.reply();
    b.call(&Request::Start);
    a.send(FRAME_STDIN, b"abc\n");
    assert_eq!(a.until("abc\n"), "abc\n");
    a.send(FRAME_STDIN, b"def\n");
    a.send(FRAME_CLOSE_STDIN, b"");
    let (out, _, _) = a.drain();
    assert_eq!(out, "def\n");
    assert_eq!(b.exit_json().exit_code, 0);
    b.assert_finished();
}

#[test]
fn tty_attach_and_resize() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "tty; stty size; read x; stty size; echo err >&2",
    ]);
    b.spec.process.terminal = true;
    b.spec.process.console_size = Some(ConsoleSize {
        height: 24,
        width: 80,
    });
    b.cfg.open_stdin = true;
    assert!(b.launch().error.is_none());
    let mut a = b.conn(&Request::Attach {
        stdin: true,
        stdout: true,
        stderr: true,
    });
    a.reply();
    b.call(&Request::Start);
    let s = a.until("24 80");
    assert!(s.starts_with("/dev/pts/0\r\n"), "{s:?}");
    let r = b.call(&Request::Resize {
        exec: None,
        size: ConsoleSize {
            height: 40,
            width: 100,
        },
    });
    assert_eq!(r, Reply::default());
    a.send(FRAME_STDIN, b"\n");
    let mut all = a.until("40 100");
    let (rest, err, _) = a.drain();
    all.push_str(&rest);
    // A terminal has one stream: stderr arrives as stdout.
    assert!(all.ends_with("40 100\r\nerr\r\n"), "{all:?}");
    assert_eq!(err, "");
    assert_eq!(b.exit_json().exit_code, 0);
    assert!(b.log_lines("").iter().all(|l| l["stream"] == "stdout"));
    b.assert_finished();
}

#[test]
fn exec_with_tty_and_resize() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    assert!(b.launch().error.is_none());
    b.call(&Request::Start);
    let mut e = b.conn(&Request::Exec {
        id: "t1".into(),
        process: exec_process(&["sh", "-c", "stty size; read x; stty size"], true),
        stdin: true,
    });
    assert!(e.reply().pid.is_some());
    e.until("24 80");
    let r = b.call(&Request::Resize {
        exec: Some("t1".into()),
        size: ConsoleSize {
            height: 50,
            width: 60,
        },
    });
    assert_eq!(r, Reply::default());
    e.send(FRAME_STDIN, b"\n");
    e.until("50 60");
    let (_, _, code) = e.drain();
    assert_eq!(code, Some(0));
    let r = b.call(&Request::Resize {
        exec: Some("zz".into()),
        size: ConsoleSize {
            height: 1,
            width: 1,
        },
    });
    assert_eq!(r.error.as_deref(), Some("no such exec: zz"));
    b.call(&Request::Signal {
        signal: libc::SIGKILL,
        all: true,
    });
    b.assert_finished();
}

fn ppid_and_sid(pid: i32) -> (i32, i32) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command name: state, ppid, pgrp, session, tty_nr, ...
    let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
    (f[1].parse().unwrap(), f[3].parse().unwrap())
}

#[test]
fn survives_its_parent_being_killed() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    // A stand-in for berthd that gets SIGKILLed after launching the shim.
    let (ready, mut parent) = b.launch_with(Some("\"$0\" \"$1\"; exec sleep 1000"));
    assert!(ready.error.is_none(), "{ready:?}");
    parent.kill().unwrap();
    parent.wait().unwrap();
    let shim = b.shim_pid();
    let (ppid, sid) = ppid_and_sid(shim);
    assert_ne!(ppid, parent.id() as i32);
    // SAFETY: getsid(0) has no preconditions.
    assert_ne!(sid, unsafe { libc::getsid(0) });
    assert_ne!(
        sid, shim,
        "not a session leader (cannot get a controlling tty)"
    );
    b.call(&Request::Start);
    assert_eq!(b.call(&Request::State).running, Some(true));
    let init = b.ready.as_ref().unwrap().init_pid.unwrap();
    assert_eq!(ppid_and_sid(init).0, shim);
    b.call(&Request::Signal {
        signal: libc::SIGKILL,
        all: false,
    });
    b.assert_finished();
    assert_eq!(b.exit_json().exit_code, 137);
}

#[test]
fn start_failure_is_reported_and_cleaned_up() {
    let mut b = Bundle::new(&["nope"]);
    assert!(b.launch().error.is_none());
    let r = b.call(&Request::Start);
    assert_eq!(
        r.error.as_deref(),
        Some("exec: \"nope\": executable file not found in $PATH")
    );
    assert_eq!(r.exit_code, Some(127));
    b.assert_finished();
    assert_eq!(b.exit_json().exit_code, 127);
    assert!(
        Cgroup::open(&b.spec.linux.cgroups_path.clone().unwrap())
            .unwrap()
            .dirs()
            .iter()
            .all(|d| !d.exists())
    );
}

#[test]
fn ready_carries_create_errors() {
    let mut b = Bundle::new(&["true"]);
    b.spec.root.path = "/nonexistent-rootfs".into();
    let r = b.launch();
    assert!(r.error.unwrap().contains("does not exist"));
    assert!(r.shim_pid.is_none());
    assert!(!b.state("shim.sock").exists());
}

#[test]
fn shim_rss_while_sleeping() {
    let mut b = Bundle::new(&["sleep", "1000"]);
    assert!(b.launch().error.is_none());
    b.call(&Request::Start);
    // Once quiet, the shim gives back its start-up code pages and heap (trim.rs): an idle shim
    // stays within 1 MiB of RSS (the target of issue 3).
    let field = |status: &str, key: &str| -> u64 {
        let l = status.lines().find(|l| l.starts_with(key)).unwrap();
        l[key.len()..]
            .trim()
            .trim_end_matches(" kB")
            .parse()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let (rss, anon) = loop {
        let status = std::fs::read_to_string(format!("/proc/{}/status", b.shim_pid())).unwrap();
        let (rss, anon) = (field(&status, "VmRSS:"), field(&status, "RssAnon:"));
        if rss <= 1024 || Instant::now() > deadline {
            break (rss, anon);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("berth-shim idle: RSS {rss} kB (anonymous {anon} kB)");
    assert!(rss <= 1024, "idle shim RSS {rss} kB > 1024 kB");
    // Trimmed code faults back in: the shim still answers.
    assert_eq!(b.call(&Request::State).running, Some(true));
    b.call(&Request::Signal {
        signal: libc::SIGKILL,
        all: false,
    });
    b.assert_finished();
}

#[test]
fn a_stalled_attacher_never_blocks_the_container() {
    // 40k lines of 100 bytes: far more than the socket buffer plus the shim's cap.
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "head -c 4000000 /dev/zero | tr '\\0' a | fold -w 99",
    ]);
    assert!(b.launch().error.is_none());
    let mut stalled = b.conn(&Request::Attach {
        stdin: false,
        stdout: true,
        stderr: true,
    });
    stalled.reply();
    let mut wait = b.conn(&Request::Wait);
    b.call(&Request::Start);
    // Nobody reads `stalled`; the container still finishes and the log has every line.
    assert_eq!(wait.reply().exit.unwrap().exit_code, 0);
    let log = b.log_lines("");
    assert_eq!(log.len(), 40405);
    assert!(log.iter().all(|l| l["log"].as_str().unwrap().len() <= 100));
    let (out, _, _) = stalled.drain();
    assert!(
        out.len() < 4_040_405,
        "the stalled client got everything? {}",
        out.len()
    );
    b.assert_finished();
}

#[test]
fn the_shim_binary_cannot_be_written_through_proc_exe() {
    // CVE-2019-5736 with a private copy of the binary (ETXTBSY from other running shims
    // would otherwise hide the check): once the shim is gone, an fd taken from
    // /proc/<pid>/exe while it ran still cannot be reopened for writing.
    let mut b = Bundle::new(&["sleep", "1000"]);
    let copy = b.path().join("berth-shim-copy");
    std::fs::copy(BIN, &copy).unwrap();
    b.write();
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wfd = w.as_raw_fd();
    let mut cmd = Command::new(&copy);
    cmd.arg(b.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: dup2 is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(wfd, 3) < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(w);
    let mut line = String::new();
    BufReader::new(std::fs::File::from(r))
        .read_line(&mut line)
        .unwrap();
    child.wait().unwrap();
    let ready: Ready = serde_json::from_str(&line).unwrap();
    b.ready = Some(ready.clone());
    let exe = std::fs::File::open(format!("/proc/{}/exe", b.shim_pid())).unwrap();
    b.call(&Request::Start);
    b.call(&Request::Signal {
        signal: libc::SIGKILL,
        all: false,
    });
    b.assert_finished();
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", exe.as_raw_fd()))
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    // The copy on disk is writable as usual: only the mount the shim ran from is read-only.
    assert!(std::fs::OpenOptions::new().write(true).open(&copy).is_ok());
}
