//! `berthd --userns-remap`: container root is an unprivileged uid on the host.
//!
//! Each test adds its own subordinate ranges to /etc/subuid and /etc/subgid and takes them
//! out again when it ends (also when it fails): the host's files are left as they were.

use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use berth_testkit::Daemon;

/// Serializes this module's tests: each changes /etc/subuid and /etc/subgid while it runs.
static ETC: Mutex<()> = Mutex::new(());

fn etc_lock() -> std::sync::MutexGuard<'static, ()> {
    ETC.lock().unwrap_or_else(|e| e.into_inner())
}

/// Lines added to /etc/subuid and /etc/subgid, removed on drop.
struct SubIds {
    line: String,
}

fn edit(path: &str, f: impl FnOnce(String) -> String) {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = f(old);
    let tmp = format!("{path}.bt-{}", std::process::id());
    std::fs::write(&tmp, new).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

impl SubIds {
    fn add(name: &str, start: u32) -> SubIds {
        let line = format!("{name}:{start}:65536");
        for p in ["/etc/subuid", "/etc/subgid"] {
            edit(p, |mut s| {
                if !s.is_empty() && !s.ends_with('\n') {
                    s.push('\n');
                }
                s.push_str(&line);
                s.push('\n');
                s
            });
        }
        SubIds { line }
    }
}

impl Drop for SubIds {
    fn drop(&mut self) {
        for p in ["/etc/subuid", "/etc/subgid"] {
            edit(p, |s| {
                s.lines()
                    .filter(|l| *l != self.line)
                    .map(|l| format!("{l}\n"))
                    .collect()
            });
        }
    }
}

fn status_ids(pid: &str, key: &str) -> Vec<u32> {
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
fn remapped_root_is_unprivileged_on_the_host() {
    // A numeric user with no passwd entry of its own: its ranges are keyed by the id.
    let user = 4_100_000_000u32 + std::process::id() % 1000;
    let start = 1_900_000_000u32 + (std::process::id() % 100) * 65536;
    let _lock = etc_lock();
    let _ids = SubIds::add(&user.to_string(), start);
    let d = Daemon::start_with(&["--userns-remap", &user.to_string()]);
    d.import_busybox("busybox");
    let info = d.docker(&["info", "-f", "{{json .SecurityOptions}}"]);
    assert!(info.ok().contains("name=userns"), "{}", info.stdout);

    let id = d
        .docker(&["run", "-d", "busybox", "sleep", "100"])
        .ok()
        .trim()
        .to_string();
    let pid = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", &id])
        .ok()
        .trim()
        .to_string();
    // The container's init, seen from the host: the mapped uid and gid, not 0.
    assert_eq!(status_ids(&pid, "Uid:"), vec![start; 4]);
    assert_eq!(status_ids(&pid, "Gid:"), vec![start; 4]);
    let inside = d.docker(&["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let lines = inside.lines();
    assert_eq!(lines[0], "0", "{}", inside.stdout);
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        vec!["0".to_string(), start.to_string(), "65536".into()]
    );
    // /etc/hostname and friends belong to the mapped root; the container can write them.
    let o = d.docker(&[
        "exec",
        &id,
        "sh",
        "-c",
        "stat -c %u /etc/hostname /etc/hosts; echo x >> /etc/hosts && echo ok",
    ]);
    assert_eq!(o.ok(), "0\n0\nok\n");
    // Sharing another remapped container's namespace means sharing its user namespace.
    d.docker(&["rename", &id, "bt-userns-a"]).ok();
    let o = d.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:bt-userns-a",
        "busybox",
        "sh",
        "-c",
        "id -u; readlink /proc/self/ns/user; readlink /proc/self/ns/ipc",
    ]);
    let ns = |k: &str| std::fs::read_link(format!("/proc/{pid}/ns/{k}")).unwrap();
    assert_eq!(
        o.ok(),
        format!("0\n{}\n{}\n", ns("user").display(), ns("ipc").display())
    );
    // Terminals: the container's own devpts, for the init and for exec.
    let o = d.pty(true, &["exec", "-it", &id, "sh", "-c", "tty; id -u"], &[]);
    assert!(o.output.contains("/dev/pts/0\r\n0"), "{}", o.output);
    d.docker(&["rm", "-f", &id]).ok();
    let o = d.pty(
        true,
        &["run", "-it", "--rm", "busybox", "sh", "-c", "tty; id -u"],
        &[],
    );
    assert!(o.output.contains("/dev/pts/0\r\n0"), "{}", o.output);

    // The rootfs and a named volume are writable by the remapped root; what it writes is
    // owned by the mapped uid on the host.
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        "bt-userns-vol:/data",
        "busybox",
        "sh",
        "-c",
        "id -u && touch /x && echo rootfs-ok && touch /data/f && stat -c %u /data/f /bin/sh",
    ]);
    assert_eq!(o.ok(), "0\nrootfs-ok\n0\n0\n");
    let mp = d
        .docker(&[
            "volume",
            "inspect",
            "-f",
            "{{.Mountpoint}}",
            "bt-userns-vol",
        ])
        .ok()
        .trim()
        .to_string();
    let md = std::fs::metadata(format!("{mp}/f")).unwrap();
    assert_eq!((md.uid(), md.gid()), (start, start));
    // A file the image has: owned by the mapped root inside, writable, and still root's
    // (0) in the image's layer on the host.
    let o = d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo y >> /etc/passwd && echo ok",
    ]);
    assert_eq!(o.ok(), "ok\n");

    // Read-only rootfs, a tmpfs, and namespaced sysctls (net.* of the network namespace berthd
    // made, kernel.* of the container's IPC namespace).
    let o = d.docker(&[
        "run", "--rm", "--read-only", "--tmpfs", "/t", "--sysctl", "net.ipv4.ip_forward=1",
        "--sysctl", "kernel.msgmax=9000", "busybox", "sh", "-c",
        "touch /t/x && cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax; touch /ro 2>/dev/null || echo ro",
    ]);
    assert_eq!(o.ok(), "1\n9000\nro\n");
    // Commit and build: layers carry the ids the container saw, not the host's shifted ones.
    let o = d.docker(&[
        "run",
        "--name",
        "bt-userns-c",
        "busybox",
        "sh",
        "-c",
        "mkdir /made && touch /made/f && chown 5:6 /made/f",
    ]);
    o.ok();
    d.docker(&["commit", "bt-userns-c", "bt-userns-img"]).ok();
    d.docker(&["rm", "bt-userns-c"]).ok();
    let ctx = berth_testkit::tempdir("userns-ctx").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bt-userns-img\nRUN mkdir /built && chown 7:8 /built\nRUN touch /built/x\n",
    )
    .unwrap();
    d.docker(&[
        "build",
        "--network",
        "none",
        "-t",
        "bt-userns-built",
        ctx.path().to_str().unwrap(),
    ])
    .ok();
    let script = "stat -c '%u %g' /made /made/f /built /built/x";
    let o = d.docker(&[
        "run",
        "--rm",
        "--userns",
        "host",
        "bt-userns-built",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(o.ok(), "0 0\n5 6\n7 8\n0 0\n");
    let o = d.docker(&["run", "--rm", "bt-userns-built", "sh", "-c", script]);
    assert_eq!(o.ok(), "0 0\n5 6\n7 8\n0 0\n");
    // --userns host: the host's root, as without remapping.
    let o = d.docker(&[
        "run",
        "--rm",
        "--userns",
        "host",
        "busybox",
        "cat",
        "/proc/self/uid_map",
    ]);
    assert_eq!(
        o.ok().split_whitespace().collect::<Vec<_>>(),
        vec!["0", "0", "4294967295"]
    );
    let id = d
        .docker(&["run", "-d", "--userns", "host", "busybox", "sleep", "100"])
        .ok()
        .trim()
        .to_string();
    let pid = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", &id])
        .ok()
        .trim()
        .to_string();
    assert_eq!(status_ids(&pid, "Uid:"), vec![0; 4]);
    d.docker(&["rm", "-f", &id]).ok();

    // What docker refuses with remapping unless --userns host.
    for (flags, msg) in [
        (
            &["--privileged"][..],
            "privileged mode is incompatible with user namespaces",
        ),
        (
            &["--network", "host"][..],
            "cannot share the host's network namespace when user namespaces are enabled",
        ),
        (
            &["--pid", "host"][..],
            "cannot share the host PID namespace when user namespaces are enabled",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let e = d.docker(&args);
        assert_ne!(e.code, 0);
        assert!(e.stderr.contains(msg), "{flags:?}: {}", e.stderr);
        args.splice(2..2, ["--userns", "host"]);
        d.docker(&args).ok();
    }
}

/// Takes out the `berth` lines `--userns-remap default` adds, unless they were there before.
struct RestoreDefault {
    had: bool,
}

impl RestoreDefault {
    fn new() -> RestoreDefault {
        let has = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("berth:"))
        };
        RestoreDefault {
            had: has("/etc/subuid") || has("/etc/subgid"),
        }
    }
}

impl Drop for RestoreDefault {
    fn drop(&mut self) {
        if self.had {
            return;
        }
        for p in ["/etc/subuid", "/etc/subgid"] {
            edit(p, |s| {
                s.lines()
                    .filter(|l| !l.starts_with("berth:"))
                    .map(|l| format!("{l}\n"))
                    .collect()
            });
        }
    }
}

/// The first free range from the end of every existing one, at least 100000 (what
/// `default` picks).
fn free_start(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(f.get(1)?.parse::<u64>().ok()? + f.get(2)?.parse::<u64>().ok()?)
        })
        .max()
        .unwrap_or(0)
        .max(100000)
}

#[test]
fn default_mapping_with_the_copy_driver() {
    let _lock = etc_lock();
    let restore = RestoreDefault::new();
    let berth_line = |p: &str| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("berth:"))
            .map(str::to_string)
    };
    let expect = if restore.had {
        berth_line("/etc/subuid").unwrap()
    } else {
        format!(
            "berth:{}:65536",
            free_start(&std::fs::read_to_string("/etc/subuid").unwrap_or_default())
        )
    };
    let d = Daemon::start_with(&["--userns-remap", "default", "--storage-driver", "vfs"]);
    assert_eq!(berth_line("/etc/subuid").as_deref(), Some(expect.as_str()));
    assert!(berth_line("/etc/subgid").is_some());
    let start: u32 = expect.split(':').nth(1).unwrap().parse().unwrap();
    d.import_busybox("busybox");
    let id = d
        .docker(&[
            "run",
            "-d",
            "busybox",
            "sh",
            "-c",
            "touch /made-here; exec sleep 100",
        ])
        .ok()
        .trim()
        .to_string();
    let pid = d
        .docker(&["inspect", "-f", "{{.State.Pid}}", &id])
        .ok()
        .trim()
        .to_string();
    assert_eq!(status_ids(&pid, "Uid:")[0], start);
    let o = d.docker(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; stat -c %u /bin/sh; ls /made-here",
    ]);
    assert_eq!(o.ok(), "0\n0\n/made-here\n");
    d.docker(&["rm", "-f", &id]).ok();
}
