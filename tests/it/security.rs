//! Confinement under docker's defaults: seccomp (default profile, unconfined, a custom
//! profile), capabilities, masked and read-only /proc and /sys paths — escape attempts that
//! must fail.

use berth_testkit::Daemon;

use crate::util::Client;

fn with_busybox() -> Daemon {
    let d = Daemon::start();
    d.import_busybox("busybox");
    d
}

fn sh(d: &Daemon, args: &[&str], script: &str) -> berth_testkit::Out {
    let mut v = vec!["run", "--rm"];
    v.extend_from_slice(args);
    v.extend(["busybox", "sh", "-c", script]);
    Client::Docker.run(d, &v)
}

#[test]
fn seccomp_modes_follow_security_opt() {
    let d = with_busybox();
    let status = |args: &[&str]| {
        sh(&d, args, "grep Seccomp: /proc/self/status")
            .ok()
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(status(&[]), "2", "the default profile is a filter");
    assert_eq!(status(&["--security-opt", "seccomp=unconfined"]), "0");
    assert_eq!(status(&["--privileged"]), "0");
    // A custom profile in docker's format: everything allowed but mkdir.
    let profile = d.dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let o = sh(&d, &["--security-opt", &opt], "touch /ok && mkdir /nope");
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("Operation not permitted"), "{}", o.stderr);
    let bad = d.dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let bad_opt = format!("seccomp={}", bad.display());
    // The docker CLI checks the JSON itself; berth's CLI leaves it to the daemon.
    let e = sh(&d, &["--security-opt", &bad_opt], "true");
    assert!(e.err().contains("seccomp profile"), "{}", e.stderr);
    let e = d.berth(&["run", "--rm", "--security-opt", &bad_opt, "busybox", "true"]);
    assert!(e.err().contains("seccomp profile"), "{}", e.stderr);
    // A profile the daemon cannot compile is refused before anything runs.
    let weird = d.dir.path().join("weird.json");
    std::fs::write(&weird, r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#).unwrap();
    let e = sh(
        &d,
        &["--security-opt", &format!("seccomp={}", weird.display())],
        "true",
    );
    assert!(e.err().contains("unknown action"), "{}", e.stderr);
}

#[test]
fn escape_attempts_fail_under_the_defaults() {
    let d = with_busybox();
    let denied = |script: &str| {
        let o = sh(&d, &[], script);
        assert_ne!(o.code, 0, "{script:?} succeeded: {}", o.stdout);
        o.stderr
    };
    // mount and the cgroup v1 release_agent trick need a mount.
    let e = denied("mount -t tmpfs none /mnt");
    assert!(e.contains("denied") || e.contains("not permitted"), "{e}");
    let e = denied("mkdir /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg");
    assert!(e.contains("denied") || e.contains("not permitted"), "{e}");
    // A new user namespace (to gain capabilities in it) is refused by seccomp.
    let e = denied("unshare -U -r true");
    assert!(e.contains("not permitted"), "{e}");
    // Kernel knobs are read-only; secrets are masked.
    // (This kernel has no /proc/sysrq-trigger; /proc/sys is read-only the same way.)
    let e = denied("echo '|/bin/sh' > /proc/sys/kernel/core_pattern");
    assert!(e.contains("Read-only file system"), "{e}");
    let e = denied("echo 1 > /sys/kernel/mm/transparent_hugepage/enabled");
    assert!(e.contains("Read-only file system"), "{e}");
    // /proc/kcore is masked too, where the kernel has it (this one does not).
    let o = sh(
        &d,
        &[],
        "wc -c < /proc/interrupts; test ! -e /proc/kcore || wc -c < /proc/kcore",
    );
    assert!(
        o.ok().lines().all(|l| l.trim() == "0"),
        "masked paths are readable: {}",
        o.stdout
    );
    // The 14 default capabilities, none inheritable.
    let o = sh(&d, &[], "grep -E 'CapInh|CapBnd' /proc/self/status");
    let text = o.ok();
    assert!(text.contains("CapInh:\t0000000000000000"), "{text}");
    assert!(text.contains("CapBnd:\t00000000a80425fb"), "{text}");
    // --cap-add/--cap-drop change the set; unknown names are refused.
    let o = sh(
        &d,
        &["--cap-drop", "ALL", "--cap-add", "CHOWN"],
        "grep CapBnd /proc/self/status",
    );
    assert!(o.ok().contains("0000000000000001"), "{}", o.stdout);
    let e = sh(&d, &["--cap-add", "BOGUS"], "true");
    assert!(e.err().contains("unknown capability"), "{}", e.stderr);
}

/// The kernel keyring is not namespaced: docker's default profile refuses `add_key`, `keyctl`
/// and `request_key` with EPERM. A static probe (built here with the host's C compiler) shows
/// the errno under the defaults, and that the calls do work when seccomp is off.
#[test]
fn keyctl_is_refused_under_the_default_profile() {
    let d = with_busybox();
    let src = d.dir.path().join("keys.c");
    std::fs::write(
        &src,
        r#"#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(void) {
    long a = syscall(SYS_add_key, "user", "berth-test", "x", 1, -2 /* process keyring */);
    printf("add_key %ld %d\n", a, a < 0 ? errno : 0);
    long k = syscall(SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, 0);
    printf("keyctl %ld %d\n", k, k < 0 ? errno : 0);
    return 0;
}
"#,
    )
    .unwrap();
    let bin = d.dir.path().join("keys");
    let cc = std::process::Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("running cc (build-essential)");
    assert!(
        cc.status.success(),
        "cc: {}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let vol = format!("{}:/keys:ro", bin.display());
    let run = |extra: &[&str]| {
        let mut v = vec!["run", "--rm", "-v", &vol];
        v.extend_from_slice(extra);
        v.extend(["busybox", "/keys"]);
        Client::Docker.run(&d, &v).ok().to_string()
    };
    let out = run(&[]);
    assert!(out.contains("add_key -1 1\n"), "{out}");
    assert!(out.contains("keyctl -1 1\n"), "{out}");
    let out = run(&["--security-opt", "seccomp=unconfined"]);
    assert!(!out.contains("add_key -1"), "{out}");
    assert!(!out.contains("keyctl -1"), "{out}");
}

#[test]
fn ipc_pid_uts_modes_and_a_read_only_cgroup_mount() {
    let d = with_busybox();
    let ns = |kind: &str| {
        std::fs::read_link(format!("/proc/self/ns/{kind}"))
            .unwrap()
            .display()
            .to_string()
    };
    let c = Client::Docker;
    c.run(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--ipc",
            "shareable",
            "busybox",
            "sleep",
            "300",
        ],
    )
    .ok();
    let web_ipc = c
        .run(&d, &["exec", "web", "readlink", "/proc/self/ns/ipc"])
        .ok()
        .trim()
        .to_string();
    assert_ne!(web_ipc, ns("ipc"), "a container's IPC namespace is its own");
    // Joining another container's namespaces.
    let o = sh(
        &d,
        &["--ipc", "container:web"],
        "readlink /proc/self/ns/ipc",
    );
    assert_eq!(o.ok().trim(), web_ipc);
    let o = sh(
        &d,
        &["--pid", "container:web"],
        "ps -o comm | grep -c sleep",
    );
    assert_eq!(
        o.ok().trim(),
        "1",
        "the joined PID namespace shows web's sleep"
    );
    // The host's namespaces.
    let o = sh(
        &d,
        &["--ipc", "host", "--pid", "host"],
        "readlink /proc/self/ns/ipc; readlink /proc/self/ns/pid",
    );
    assert_eq!(o.ok(), format!("{}\n{}\n", ns("ipc"), ns("pid")));
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let o = sh(
        &d,
        &["--uts", "host"],
        "hostname; readlink /proc/self/ns/uts",
    );
    assert_eq!(o.ok(), format!("{host_name}\n{}\n", ns("uts")));
    // Bad modes and missing containers are refused at create.
    let e = c.run(
        &d,
        &["create", "--uts", "host", "--hostname", "x", "busybox"],
    );
    assert!(
        e.err()
            .contains("Conflicting options: hostname and the UTS mode"),
        "{}",
        e.stderr
    );
    let e = c.run(&d, &["create", "--ipc", "container:missing", "busybox"]);
    assert!(
        e.err().contains("No such container: missing"),
        "{}",
        e.stderr
    );
    c.run(&d, &["stop", "-t", "0", "web"]).ok();
    let e = c.run(
        &d,
        &["run", "--rm", "--pid", "container:web", "busybox", "true"],
    );
    assert!(
        e.err()
            .contains("cannot join PID of a non running container"),
        "{}",
        e.stderr
    );
    // The container's own cgroup is mounted read-only at /sys/fs/cgroup.
    let o = sh(
        &d,
        &["-m", "64m"],
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes",
    );
    assert_ne!(o.code, 0);
    assert_eq!(o.stdout, "67108864\n");
    assert!(o.stderr.contains("Read-only file system"), "{}", o.stderr);
    c.run(&d, &["rm", "-f", "web"]).ok();
}

#[test]
fn proc_fd_workdir_and_symlinked_dev_nodes_do_not_escape() {
    let d = with_busybox();
    let c = Client::Docker;
    // CVE-2024-21626: a working directory through a leaked fd of the runtime.
    for n in ["3", "4", "5", "7", "8"] {
        let w = format!("/proc/self/fd/{n}");
        let o = c.run(&d, &["run", "--rm", "-w", &w, "busybox", "pwd"]);
        assert!(
            o.code != 0 || !o.stdout.starts_with("/sys/fs/cgroup"),
            "{w}: {}",
            o.stdout
        );
        assert!(
            !o.stdout.contains("..") && (o.code != 0 || o.stdout.trim() == w),
            "{w}: {}",
            o.stdout
        );
    }
    // CVE-2025-31133 family: an image whose /dev/null is a symlink to a kernel knob.
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let id = c
        .run(&d, &["create", "busybox", "true"])
        .ok()
        .trim()
        .to_string();
    let file = d.dir.path().join("rootfs.tar");
    c.run(&d, &["export", "-o", file.to_str().unwrap(), &id])
        .ok();
    let exported = std::fs::read(&file).unwrap();
    let mut out = tar::Builder::new(Vec::new());
    let mut a = tar::Archive::new(&exported[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.append_data(&mut h, e.path().unwrap(), &data[..])
            .unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    out.append_link(&mut h, "dev/null", "/proc/sys/kernel/core_pattern")
        .unwrap();
    let tar = out.into_inner().unwrap();
    c.run_stdin(&d, &["import", "-", "evil:1"], &tar).ok();
    let o = c.run(
        &d,
        &[
            "run",
            "--rm",
            "evil:1",
            "sh",
            "-c",
            "echo '|/tmp/pwn' > /dev/null; echo done",
        ],
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap(),
        before
    );
    // Either refused, or /dev/null is berth's own node again.
    assert!(
        o.code != 0 || o.stdout == "done\n",
        "{} {}",
        o.stdout,
        o.stderr
    );
    c.run(&d, &["rm", &id]).ok();
}
