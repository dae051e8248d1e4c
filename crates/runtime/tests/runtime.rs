//! The runtime end to end, as root, with a busybox rootfs. Tests run in parallel threads of
//! one process, which is also what the no-allocation rule in the child is for.

mod common;

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use berth_runtime::cgroup::{Cgroup, Layout};
use berth_runtime::spec::{ConsoleSize, Process, Rlimit};
use berth_runtime::{Stdio, create, exec, user};
use common::*;

#[test]
fn echo_through_pipes() {
    let r = Rootfs::new();
    let o = run(&sh(r.path(), "echo hello; echo oops >&2")).unwrap();
    assert_eq!(
        (o.code, o.stdout.as_str(), o.stderr.as_str()),
        (0, "hello\n", "oops\n")
    );
}

#[test]
fn hostname_pid1_and_loopback_only() {
    let r = Rootfs::new();
    let o = run(&sh(
        r.path(),
        "hostname; echo $$; cat /proc/net/dev; cat /proc/self/cgroup",
    ))
    .unwrap();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "bt-test", "{}", o.stdout);
    assert_eq!(lines[1], "1");
    let ifaces: Vec<&str> = lines[4..]
        .iter()
        .take_while(|l| l.contains(':') && !l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(ifaces, vec!["lo"], "{}", o.stdout);
    assert_eq!(o.code, 0);
}

#[test]
fn sysctl_umask_and_domainname() {
    let r = Rootfs::new();
    let mut s = sh(
        r.path(),
        "cat /proc/sys/net/ipv4/ip_forward; umask; cat /proc/sys/kernel/domainname",
    );
    s.linux
        .sysctl
        .insert("net.ipv4.ip_forward".into(), "1".into());
    s.domainname = "example.test".into();
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let o = run(&s).unwrap();
    assert_eq!(o.stdout, "1\n0022\nexample.test\n");
    // The host's own setting is untouched (the sysctl is per network namespace); the
    // host may have either value, so compare with what it was.
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
}

#[test]
fn device_cgroup_denies_host_disks() {
    // CAP_MKNOD is in docker's set: the device cgroup is what keeps the host's disk out.
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let disk = std::fs::read_to_string("/proc/partitions")
        .unwrap()
        .lines()
        .skip(2)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4).then(|| (f[0].to_string(), f[1].to_string()))
        })
        .expect("a block device");
    let mut s = sh(
        r.path(),
        &format!(
            "mknod /tmp/disk b {} {}; echo mk=$?; head -c 1 /tmp/disk >/dev/null; echo rc=$?; head -c 1 /dev/urandom | wc -c",
            disk.0, disk.1
        ),
    );
    s.linux.cgroups_path = Some(parent.child("c"));
    let o = run(&s).unwrap();
    assert!(
        o.stdout.starts_with("mk=0\nrc=1\n1\n"),
        "{} {}",
        o.stdout,
        o.stderr
    );
    assert!(
        o.stderr.contains("/tmp/disk: Operation not permitted"),
        "{}",
        o.stderr
    );
}

#[test]
fn oom_kill_is_seen_by_the_cgroup() {
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let mut s = sh(
        r.path(),
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
    );
    s.linux.cgroups_path = Some(parent.child("c"));
    s.linux.resources = Some(berth_runtime::spec::Resources {
        memory: Some(serde_json::json!({"limit": 16777216, "swap": 16777216})),
        ..Default::default()
    });
    let c = create(&s, Stdio::default()).unwrap();
    let cg = c.cgroup().unwrap().clone();
    let running = c.start().unwrap();
    let code = wait(running.pid);
    assert!(cg.oom_killed(), "exit {code}");
    cg.remove().unwrap();
}

#[test]
fn docker_capabilities_and_empty_inheritable() {
    let r = Rootfs::new();
    let o = run(&spec(r.path(), &["cat", "/proc/self/status"])).unwrap();
    let field = |k: &str| {
        o.stdout
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
    };
    assert_eq!(field("CapBnd:").as_deref(), Some("00000000a80425fb"));
    assert_eq!(field("CapEff:").as_deref(), Some("00000000a80425fb"));
    assert_eq!(field("CapPrm:").as_deref(), Some("00000000a80425fb"));
    assert_eq!(field("CapInh:").as_deref(), Some("0000000000000000"));
    assert_eq!(field("CapAmb:").as_deref(), Some("0000000000000000"));
}

#[test]
fn non_root_user_has_no_effective_caps() {
    let r = Rootfs::new();
    let mut s = sh(
        r.path(),
        "id; grep -E 'CapEff|NoNewPrivs' /proc/self/status",
    );
    let u = user::resolve(r.path(), "user").unwrap();
    assert_eq!(
        (u.uid, u.gid, u.additional_gids.clone()),
        (1000, 1000, vec![10])
    );
    s.process.user.uid = u.uid;
    s.process.user.gid = u.gid;
    s.process.user.additional_gids = u.additional_gids;
    s.process.no_new_privileges = true;
    let o = run(&s).unwrap();
    assert!(
        o.stdout
            .starts_with("uid=1000(user) gid=1000(user) groups=10(wheel)"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("CapEff:\t0000000000000000"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("NoNewPrivs:\t1"), "{}", o.stdout);
}

#[test]
fn user_resolution_in_rootfs() {
    let r = Rootfs::new();
    assert_eq!(user::resolve(r.path(), "").unwrap().uid, 0);
    assert_eq!(
        user::resolve(r.path(), "nobody:nogroup").unwrap().gid,
        65534
    );
    assert_eq!(
        user::resolve(r.path(), "nope").unwrap_err().to_string(),
        "unable to find user nope: no matching entries in passwd file"
    );
    assert_eq!(
        user::resolve(r.path(), "user:x").unwrap_err().to_string(),
        "unable to find group x: no matching entries in group file"
    );
    // /etc/passwd as a symlink out of the rootfs resolves inside it.
    let host = berth_testkit::tempdir("rtpw").unwrap();
    std::fs::write(host.path().join("passwd"), "evil:x:7:7::/:/bin/sh\n").unwrap();
    std::fs::remove_file(r.path().join("etc/passwd")).unwrap();
    std::os::unix::fs::symlink(host.path().join("passwd"), r.path().join("etc/passwd")).unwrap();
    assert!(user::resolve(r.path(), "evil").is_err());
}

#[test]
fn workdir_is_created() {
    let r = Rootfs::new();
    let mut s = spec(r.path(), &["pwd"]);
    s.process.cwd = "/nonexistent/dir".into();
    let o = run(&s).unwrap();
    assert_eq!(o.stdout, "/nonexistent/dir\n");
    assert!(r.path().join("nonexistent/dir").is_dir());
}

#[test]
fn workdir_symlink_out_of_rootfs_stays_inside() {
    let r = Rootfs::new();
    let host = berth_testkit::tempdir("rtesc").unwrap();
    std::fs::write(host.path().join("host-marker"), "x").unwrap();
    std::os::unix::fs::symlink(host.path(), r.path().join("escape")).unwrap();
    let mut s = spec(r.path(), &["ls", "-a"]);
    s.process.cwd = "/escape/sub".into();
    // The symlink resolves inside the container, where its target does not exist: refused
    // (as runc's MkdirAll does), and nothing is created on the host.
    match run(&s) {
        Err(e) => assert!(
            e.to_string().starts_with("chdir to cwd (\"/escape/sub\")"),
            "{e}"
        ),
        Ok(o) => assert!(
            !o.stdout.contains("host-marker"),
            "host dir visible: {}",
            o.stdout
        ),
    }
    assert_eq!(std::fs::read_dir(host.path()).unwrap().count(), 1);
    // A symlink to an absolute path that exists in the rootfs is followed in there.
    std::os::unix::fs::symlink("/home/user", r.path().join("inside")).unwrap();
    std::fs::write(r.path().join("home/user/in-rootfs"), "").unwrap();
    s.process.cwd = "/inside".into();
    let o = run(&s).unwrap();
    assert!(o.stdout.contains("in-rootfs"), "{}", o.stdout);
}

#[test]
fn workdir_proc_self_fd_is_refused() {
    // CVE-2024-21626: no fd leads outside, so /proc/self/fd/N is never a usable cwd.
    let r = Rootfs::new();
    for n in 3..8 {
        let mut s = spec(r.path(), &["ls", "../../.."]);
        s.process.cwd = format!("/proc/self/fd/{n}");
        match run(&s) {
            Err(e) => assert!(e.to_string().contains("chdir to cwd"), "{e}"),
            Ok(o) => assert!(
                !o.stdout.contains("work") && !o.stdout.contains("vmlinuz"),
                "{}",
                o.stdout
            ),
        }
    }
}

#[test]
fn exit_codes() {
    let r = Rootfs::new();
    assert_eq!(run(&sh(r.path(), "exit 3")).unwrap().code, 3);
    let e = run(&spec(r.path(), &["nope"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "exec: \"nope\": executable file not found in $PATH"
    );
    assert_eq!(e.exit_code(), Some(127));
    let e = run(&spec(r.path(), &["/nope"])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "exec: \"/nope\": stat /nope: no such file or directory"
    );
    assert_eq!(e.exit_code(), Some(127));
    let e = run(&spec(r.path(), &["/etc/passwd"])).unwrap_err();
    assert_eq!(e.to_string(), "exec: \"/etc/passwd\": permission denied");
    assert_eq!(e.exit_code(), Some(126));
}

#[test]
fn sigkill_is_137_and_cgroup_lifecycle() {
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let mut s = spec(r.path(), &["sleep", "100"]);
    s.linux.cgroups_path = Some(parent.child("c"));
    s.linux.resources = Some(berth_runtime::spec::Resources {
        memory: Some(serde_json::json!({"limit": 67108864})),
        pids: Some(serde_json::json!({"limit": 100})),
        ..Default::default()
    });
    let c = create(&s, Stdio::default()).unwrap();
    let cg = c.cgroup().unwrap().clone();
    for d in cg.dirs() {
        assert!(d.is_dir(), "{}", d.display());
    }
    if let Layout::V1(_) = cg.layout() {
        let mem = cg
            .dirs()
            .iter()
            .find(|d| d.starts_with("/sys/fs/cgroup/memory"))
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(mem.join("memory.limit_in_bytes"))
                .unwrap()
                .trim(),
            "67108864"
        );
    }
    let running = c.start().unwrap();
    assert_eq!(cg.procs().unwrap(), vec![running.pid]);
    assert!(!cg.oom_killed());
    // SAFETY: signalling our child.
    unsafe { libc::kill(running.pid, libc::SIGKILL) };
    assert_eq!(wait(running.pid), 137);
    cg.remove().unwrap();
    for d in cg.dirs() {
        assert!(!d.exists(), "{}", d.display());
    }
}

#[test]
fn dropping_created_kills_and_removes_cgroup() {
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let mut s = spec(r.path(), &["true"]);
    s.linux.cgroups_path = Some(parent.child("c"));
    let c = create(&s, Stdio::default()).unwrap();
    let pid = c.pid();
    let dirs = c.cgroup().unwrap().dirs().to_vec();
    drop(c);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(dirs.iter().all(|d| !d.exists()));
}

#[test]
fn exec_joins_the_container() {
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let mut s = spec(r.path(), &["sleep", "100"]);
    s.hostname = "exec-host".into();
    s.linux.cgroups_path = Some(parent.child("c"));
    let running = create(&s, Stdio::default()).unwrap().start().unwrap();
    let (out_r, out_w) = pipe();
    let p = Process {
        args: [
            "sh",
            "-c",
            "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$; pwd; id -u",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env: vec![format!("PATH={}", berth_runtime::DEFAULT_PATH)],
        cwd: "/tmp".into(),
        capabilities: s.process.capabilities.clone(),
        ..Default::default()
    };
    let e = exec(
        &s,
        running.pid,
        &p,
        Stdio {
            stdin: None,
            stdout: Some(out_w),
            stderr: None,
        },
    )
    .unwrap();
    let cg = running.cgroup.as_ref().unwrap();
    assert!(
        cg.procs().unwrap().contains(&e.pid) || common::gone(e.pid),
        "exec joins the init's cgroup"
    );
    let out = read_all(out_r);
    assert_eq!(wait(e.pid), 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "exec-host");
    assert_eq!(lines[1].trim(), "sleep 100");
    assert_ne!(lines[2], "1");
    assert!(
        lines[2].parse::<u32>().unwrap() < 100,
        "pid in the container's namespace: {}",
        lines[2]
    );
    assert_eq!(lines[3], "/tmp");
    assert_eq!(lines[4], "0");
    // A missing command and a missing cwd fail like docker exec.
    let mut bad = p.clone();
    bad.args = vec!["nope".into()];
    let err = exec(&s, running.pid, &bad, Stdio::default()).unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.exit_code()),
        (
            "exec: \"nope\": executable file not found in $PATH",
            Some(127)
        )
    );
    // The exec process is in the init's cgroups (host view) and sees no host fds.
    let mut probe = p.clone();
    probe.args = vec!["sleep".into(), "5".into()];
    let sl = exec(&s, running.pid, &probe, Stdio::default()).unwrap();
    let cgroups = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cgroups(sl.pid), cgroups(running.pid));
    // SAFETY: killing our child.
    unsafe { libc::kill(sl.pid, libc::SIGKILL) };
    assert_eq!(wait(sl.pid), 137);
    let (fd_r, fd_w) = pipe();
    probe.args = vec!["ls".into(), "/proc/self/fd".into()];
    let ls = exec(
        &s,
        running.pid,
        &probe,
        Stdio {
            stdin: None,
            stdout: Some(fd_w),
            stderr: None,
        },
    )
    .unwrap();
    assert_eq!(
        read_all(fd_r).split_whitespace().collect::<Vec<_>>(),
        vec!["0", "1", "2", "3"]
    );
    assert_eq!(wait(ls.pid), 0);
    bad.args = vec!["true".into()];
    bad.cwd = "/does/not/exist".into();
    let err = exec(&s, running.pid, &bad, Stdio::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("chdir to cwd (\"/does/not/exist\") set in config.json failed"),
        "{err}"
    );
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(wait(running.pid), 137);
    cg.remove().unwrap();
}

fn read_console(master: OwnedFd) -> String {
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // EIO once the last slave fd is closed.
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn terminal_is_dev_pts_0_with_size() {
    let r = Rootfs::new();
    let mut s = sh(r.path(), "tty; stty size; ls -l /dev/console | cut -c1");
    s.process.terminal = true;
    s.process.console_size = Some(ConsoleSize {
        height: 33,
        width: 111,
    });
    let mut c = create(&s, Stdio::default()).unwrap();
    let master = c.take_console().expect("console");
    let running = c.start().unwrap();
    let out = read_console(master);
    assert_eq!(wait(running.pid), 0);
    assert_eq!(out.replace('\r', ""), "/dev/pts/0\n33 111\nc\n");
}

#[test]
fn exec_with_terminal() {
    let r = Rootfs::new();
    // The cgroup is what kills the container if an assertion fails first.
    let parent = CgroupParent::new();
    let mut s = spec(r.path(), &["sleep", "100"]);
    s.linux.cgroups_path = Some(parent.child("c"));
    let running = create(&s, Stdio::default()).unwrap().start().unwrap();
    let p = Process {
        terminal: true,
        console_size: Some(ConsoleSize {
            height: 10,
            width: 20,
        }),
        args: vec!["sh".into(), "-c".into(), "tty; stty size".into()],
        env: vec![format!("PATH={}", berth_runtime::DEFAULT_PATH)],
        cwd: "/".into(),
        ..Default::default()
    };
    let e = exec(&s, running.pid, &p, Stdio::default()).unwrap();
    let out = read_console(e.console.unwrap());
    assert_eq!(wait(e.pid), 0);
    // The init has no terminal, so the exec's pty is the first of the container's devpts.
    assert_eq!(out.replace('\r', ""), "/dev/pts/0\n10 20\n");
    // SAFETY: signalling our child.
    unsafe { libc::kill(running.pid, libc::SIGKILL) };
    assert_eq!(wait(running.pid), 137);
}

#[test]
fn no_fds_leak_into_the_container() {
    let r = Rootfs::new();
    // A non-CLOEXEC fd in this process (e.g. to a host directory) must not reach the container.
    let dir = std::fs::File::open("/").unwrap();
    // SAFETY: dup without CLOEXEC.
    let leaked = unsafe { libc::dup(dir.as_raw_fd()) };
    assert!(leaked > 2);
    let o = run(&spec(r.path(), &["ls", "/proc/self/fd"]));
    // SAFETY: closing our dup.
    unsafe { libc::close(leaked) };
    let fds: Vec<String> = o
        .unwrap()
        .stdout
        .split_whitespace()
        .map(str::to_string)
        .collect();
    // 0-2 and the directory ls itself opened.
    assert_eq!(fds, vec!["0", "1", "2", "3"]);
}

#[test]
fn masked_and_readonly_paths() {
    let r = Rootfs::new();
    let o = run(&sh(
        r.path(),
        "exec 2>&1; wc -c < /proc/interrupts; ls /sys/firmware | wc -l; echo x > /proc/sys/kernel/domainname; \
         touch /sys/fs/cgroup/x; ls /sys/fs/cgroup",
    ))
    .unwrap();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0].trim(), "0", "{}", o.stdout);
    assert_eq!(l[1].trim(), "0");
    assert!(l[2].contains("Read-only file system"), "{}", o.stdout);
    assert!(l[3].contains("Read-only file system"), "{}", o.stdout);
    assert!(o.stdout.contains("memory"), "{}", o.stdout);
}

#[test]
fn readonly_root_and_dev_setup() {
    let r = Rootfs::new();
    let mut s = sh(
        r.path(),
        "touch /x 2>&1; touch /dev/shm/ok && echo shm-ok; ls -l /dev/null /dev/ptmx /dev/fd | cut -c1; df -k /dev/shm | tail -1",
    );
    s.root.readonly = true;
    let o = run(&s).unwrap();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert!(l[0].contains("Read-only file system"), "{}", o.stdout);
    assert_eq!(l[1], "shm-ok");
    // ls sorts: /dev/fd, /dev/null, /dev/ptmx
    assert_eq!(&l[2..5], &["l", "c", "l"]);
    assert!(l[5].contains("65536"), "{}", o.stdout);
}

#[test]
fn symlinked_dev_null_is_refused() {
    // CVE-2025-31133: an image whose /dev/null points at a procfs file.
    let r = Rootfs::new();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", r.path().join("dev/null")).unwrap();
    let mut s = spec(r.path(), &["true"]);
    s.mounts.retain(|m| !m.destination.starts_with("/dev"));
    let e = run(&s).unwrap_err();
    assert!(e.to_string().contains("refusing to use /dev/null"), "{e}");
    // And a symlinked /dev/console with a terminal.
    let r = Rootfs::new();
    std::os::unix::fs::symlink(
        "/proc/sys/kernel/core_pattern",
        r.path().join("dev/console"),
    )
    .unwrap();
    let mut s = spec(r.path(), &["true"]);
    s.process.terminal = true;
    s.mounts.retain(|m| m.destination != "/dev");
    let e = create(&s, Stdio::default()).unwrap_err();
    assert!(
        e.to_string().contains("refusing to set up the console"),
        "{e}"
    );
}

#[test]
fn bind_mounted_files() {
    let r = Rootfs::new();
    let host = berth_testkit::tempdir("rtbind").unwrap();
    std::fs::write(host.path().join("hostname"), "from-host\n").unwrap();
    let mut s = sh(
        r.path(),
        "cat /etc/hostname; { echo changed > /etc/hostname; } 2>&1",
    );
    s.mounts.push(berth_runtime::spec::Mount {
        destination: "/etc/hostname".into(),
        kind: "bind".into(),
        source: host.path().join("hostname").to_string_lossy().into_owned(),
        options: vec!["rbind".into(), "rprivate".into(), "ro".into()],
    });
    let o = run(&s).unwrap();
    assert!(o.stdout.starts_with("from-host\n"), "{}", o.stdout);
    assert!(o.stdout.contains("Read-only file system"), "{}", o.stdout);
}

#[test]
fn rlimit_nofile_is_clamped() {
    let r = Rootfs::new();
    let mut s = sh(r.path(), "ulimit -n; ulimit -Hn");
    s.process.rlimits = vec![Rlimit {
        kind: "RLIMIT_NOFILE".into(),
        hard: 1 << 20,
        soft: 1 << 20,
    }];
    let o = run(&s).unwrap();
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit into a local.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    assert_eq!(o.stdout, format!("{0}\n{0}\n", cur.rlim_max));
}

#[test]
fn freeze_stops_a_counter() {
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let mut s = sh(
        r.path(),
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/c; done",
    );
    s.linux.cgroups_path = Some(parent.child("c"));
    let running = create(&s, Stdio::default()).unwrap().start().unwrap();
    let cg = running.cgroup.clone().unwrap();
    // The shell truncates before it writes: retry an empty read.
    let counter = || {
        for _ in 0..100 {
            if let Ok(n) = std::fs::read_to_string(r.path().join("tmp/c"))
                .unwrap_or_default()
                .trim()
                .parse::<u64>()
            {
                return n;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        0
    };
    let t = Instant::now();
    while counter() < 10 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    cg.freeze().unwrap();
    let a = counter();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(), a, "counter moved while frozen");
    cg.thaw().unwrap();
    // A loaded machine may take a while to schedule the thawed shell again.
    let t = Instant::now();
    while counter() <= a && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(counter() > a, "counter did not resume");
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(wait(running.pid), 137);
    cg.remove().unwrap();
}

#[test]
fn cgroup_v2_on_the_unified_tree() {
    // This host is v1; its empty unified tree still exercises the v2 code paths.
    let unified = std::path::PathBuf::from("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.procs").exists() {
        return;
    }
    let layout = Layout::V2(unified);
    let path = format!("/bt-rt-{}-v2", std::process::id());
    let cg = Cgroup::create_in(layout.clone(), &format!("{path}/c"), None).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    cg.add_pid(child.id() as i32).unwrap();
    assert_eq!(cg.procs().unwrap(), vec![child.id() as i32]);
    cg.freeze().unwrap();
    cg.thaw().unwrap();
    cg.kill_all(libc::SIGKILL).unwrap();
    assert!(!child.wait().unwrap().success());
    cg.remove().unwrap();
    Cgroup::open_in(layout, &path).unwrap().remove().unwrap();
    assert!(!cg.dirs()[0].exists());
}

#[test]
fn shared_host_network_namespace() {
    // `--network host`: no network entry, the container sees the host's interfaces.
    let r = Rootfs::new();
    let mut s = spec(r.path(), &["cat", "/proc/net/dev"]);
    s.linux.namespaces.retain(|n| n.kind != "network");
    s.mounts.retain(|m| m.destination != "/sys");
    let o = run(&s).unwrap();
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(o.stdout.lines().count(), host.lines().count());
}

#[test]
fn create_start_wait_timing() {
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    for with_cgroup in [false, true] {
        let mut s = spec(r.path(), &["true"]);
        let mut times = Vec::new();
        for i in 0..15 {
            if with_cgroup {
                s.linux.cgroups_path = Some(parent.child(&format!("c{i}")));
            }
            let t = Instant::now();
            let running = create(&s, Stdio::default()).unwrap().start().unwrap();
            assert_eq!(wait(running.pid), 0);
            if let Some(cg) = running.cgroup {
                cg.remove().unwrap();
            }
            times.push(t.elapsed());
        }
        times.sort();
        eprintln!(
            "create+start+wait(+cgroup remove) of `true`, cgroup {with_cgroup}: median {:?}, min {:?}",
            times[times.len() / 2],
            times[0]
        );
    }
}

/// The host uid range the user-namespace tests map container ids to (nobody's on the host).
const USERNS_BASE: u32 = 1_700_000;

/// A spec with a new user namespace mapping 0..65536 to `USERNS_BASE`, and its rootfs shifted
/// (chowned) into that range so the container's root owns it.
fn userns_spec(r: &Rootfs, args: &[&str]) -> berth_runtime::spec::Spec {
    use berth_runtime::spec::{IdMapping, Namespace};
    let st = std::process::Command::new("chown")
        .args(["-hR", &format!("{USERNS_BASE}:{USERNS_BASE}")])
        .arg(r.path())
        .status()
        .unwrap();
    assert!(st.success());
    let mut s = spec(r.path(), args);
    s.linux.namespaces.push(Namespace {
        kind: "user".into(),
        path: None,
    });
    let map = vec![IdMapping {
        container_id: 0,
        host_id: USERNS_BASE,
        size: 65536,
    }];
    s.linux.uid_mappings = map.clone();
    s.linux.gid_mappings = map;
    s
}

fn status_ids(pid: i32, key: &str) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

#[test]
fn userns_root_is_the_mapped_host_uid() {
    use std::os::unix::fs::MetadataExt;
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let mut s = userns_spec(
        &r,
        &[
            "sh",
            "-c",
            "id -u; id -g; cat /proc/self/uid_map; touch /x; mkdir /d; ls -ln /dev/null; cat /proc/1/cmdline >/dev/null; mount -t tmpfs t /mnt 2>/dev/null; echo mount=$?",
        ],
    );
    s.linux.cgroups_path = Some(parent.child("c"));
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let c = create(
        &s,
        Stdio {
            stdin: None,
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
    )
    .unwrap();
    // Set up and waiting for start: already the namespace's root, i.e. the mapped uid here.
    assert_eq!(status_ids(c.pid(), "Uid:"), vec![USERNS_BASE; 4]);
    assert_eq!(status_ids(c.pid(), "Gid:"), vec![USERNS_BASE; 4]);
    let running = c.start().unwrap();
    let err_thread = std::thread::spawn(move || read_all(err_r));
    let out = read_all(out_r);
    let err = err_thread.join().unwrap();
    assert_eq!(wait(running.pid), 0, "{out} {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out} {err}");
    assert_eq!(lines[1], "0");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        vec!["0", &USERNS_BASE.to_string(), "65536"]
    );
    // /dev/null is the host's node, bound (no mknod in a user namespace).
    assert!(lines[3].starts_with("crw-rw-rw-"), "{out}");
    // CAP_SYS_ADMIN of the user namespace does not reach the container's mounts (docker's
    // seccomp/caps have no SYS_ADMIN anyway).
    assert!(
        lines[4].starts_with("mount=") && lines[4] != "mount=0",
        "{out}"
    );
    // What container root created is owned by the mapped uid on the host.
    for p in ["x", "d"] {
        let md = std::fs::metadata(r.path().join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (USERNS_BASE, USERNS_BASE), "{p}");
    }
    running.cgroup.unwrap().remove().unwrap();
}

#[test]
fn userns_unmapped_files_and_exec() {
    use std::os::unix::fs::MetadataExt;
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let mut s = userns_spec(&r, &["sleep", "100"]);
    s.linux.cgroups_path = Some(parent.child("c"));
    // A file the host's root owns is nobody's (overflow uid) inside, and not writable.
    std::fs::write(r.path().join("hostfile"), "x").unwrap();
    std::os::unix::fs::lchown(r.path().join("hostfile"), Some(0), Some(0)).unwrap();
    let running = create(&s, Stdio::default()).unwrap().start().unwrap();
    assert_eq!(status_ids(running.pid, "Uid:"), vec![USERNS_BASE; 4]);
    let (out_r, out_w) = pipe();
    let p = Process {
        args: [
            "sh",
            "-c",
            "id -u; stat -c %u /hostfile; echo y >> /hostfile; echo rc=$?; touch /fromexec; cat /proc/self/status | grep CapEff",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        env: vec![format!("PATH={}", berth_runtime::DEFAULT_PATH)],
        cwd: "/".into(),
        capabilities: s.process.capabilities.clone(),
        ..Default::default()
    };
    let e = exec(
        &s,
        running.pid,
        &p,
        Stdio {
            stdin: None,
            stdout: Some(out_w),
            stderr: None,
        },
    )
    .unwrap();
    let out = read_all(out_r);
    assert_eq!(wait(e.pid), 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "{out}");
    assert_eq!(lines[1], "65534", "{out}");
    assert_eq!(lines[2], "rc=1", "{out}");
    assert!(lines[3].ends_with("00000000a80425fb"), "{out}");
    let md = std::fs::metadata(r.path().join("fromexec")).unwrap();
    assert_eq!(md.uid(), USERNS_BASE);
    assert_eq!(
        std::fs::read_to_string(r.path().join("hostfile")).unwrap(),
        "x"
    );
    let cg = running.cgroup.as_ref().unwrap();
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(wait(running.pid), 137);
    cg.remove().unwrap();
}

#[test]
fn userns_needs_mappings_and_mappings_need_userns() {
    let r = Rootfs::new();
    let mut s = userns_spec(&r, &["true"]);
    s.linux.uid_mappings.clear();
    let err = create(&s, Stdio::default()).unwrap_err();
    assert!(err.to_string().contains("needs uidMappings"), "{err}");
    let mut s = userns_spec(&r, &["true"]);
    s.linux.namespaces.retain(|n| n.kind != "user");
    let err = create(&s, Stdio::default()).unwrap_err();
    assert!(
        err.to_string().contains("need a new user namespace"),
        "{err}"
    );
}

#[test]
fn userns_with_host_network_binds_sysfs() {
    let r = Rootfs::new();
    let mut s = userns_spec(&r, &["sh", "-c", "ls /sys/class/net | grep -c . ; id -u"]);
    s.linux.namespaces.retain(|n| n.kind != "network");
    let o = run(&s).unwrap();
    assert_eq!(o.code, 0, "{o:?}");
    let n: u32 = o.stdout.lines().next().unwrap().parse().unwrap();
    assert!(n >= 1, "{o:?}");
}

#[test]
fn userns_joins_host_owned_and_container_namespaces() {
    use berth_runtime::spec::Namespace;
    // A network namespace the host's root made (as berthd pins one per bridge endpoint).
    struct Holder(std::process::Child);
    impl Drop for Holder {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let holder = Holder(
        std::process::Command::new("unshare")
            .args(["-n", "sleep", "100"])
            .spawn()
            .unwrap(),
    );
    let net = format!("/proc/{}/ns/net", holder.0.id());
    while std::fs::read_link(&net).ok() == std::fs::read_link("/proc/self/ns/net").ok() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = Rootfs::new();
    let parent = CgroupParent::new();
    let mut s = userns_spec(&r, &["sleep", "100"]);
    s.linux.cgroups_path = Some(parent.child("a"));
    for n in &mut s.linux.namespaces {
        if n.kind == "network" {
            n.path = Some(net.clone());
        }
    }
    s.linux
        .sysctl
        .insert("net.ipv4.ip_forward".into(), "1".into());
    s.linux.sysctl.insert("kernel.msgmax".into(), "9000".into());
    let a = create(&s, Stdio::default()).unwrap().start().unwrap();
    let ns = |pid: i32, k: &str| std::fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap();
    assert_eq!(ns(a.pid, "net"), std::fs::read_link(&net).unwrap());
    assert_eq!(status_ids(a.pid, "Uid:"), vec![USERNS_BASE; 4]);
    // A second container shares the first's user and IPC namespaces (no maps of its own).
    let r2 = Rootfs::new();
    let mut s2 = userns_spec(
        &r2,
        &[
            "sh",
            "-c",
            "id -u; cat /proc/sys/kernel/msgmax; cat /proc/sys/net/ipv4/ip_forward",
        ],
    );
    s2.linux.uid_mappings.clear();
    s2.linux.gid_mappings.clear();
    s2.linux.cgroups_path = Some(parent.child("b"));
    for n in &mut s2.linux.namespaces {
        match n.kind.as_str() {
            "user" | "ipc" | "network" => {
                n.path = Some(format!(
                    "/proc/{}/ns/{}",
                    a.pid,
                    n.kind.replace("network", "net")
                ))
            }
            _ => {}
        }
    }
    if !s2.linux.namespaces.iter().any(|n| n.kind == "user") {
        s2.linux.namespaces.push(Namespace {
            kind: "user".into(),
            path: Some(format!("/proc/{}/ns/user", a.pid)),
        });
    }
    let o = run(&s2).unwrap();
    assert_eq!(o.stdout, "0\n9000\n1\n", "{o:?}");
    let cg = a.cgroup.as_ref().unwrap();
    cg.kill_all(libc::SIGKILL).unwrap();
    assert_eq!(wait(a.pid), 137);
    cg.remove().unwrap();
    drop(holder);
}
