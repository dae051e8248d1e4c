//! Test helpers: a busybox rootfs per test, docker-like specs, unique cgroups that are
//! removed even when the test fails.
#![allow(dead_code)]

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use berth_runtime::cgroup::Cgroup;
use berth_runtime::spec::{Capabilities, Linux, Mount, Namespace, Process, Root, Spec, User};

/// A busybox rootfs extracted into a fresh temp dir (removed, mounts and all, on drop).
pub struct Rootfs {
    pub dir: berth_testkit::TempDir,
}

impl Rootfs {
    pub fn new() -> Rootfs {
        let dir = berth_testkit::tempdir("rt").expect("tempdir");
        let tar = berth_testkit::busybox_tar();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.path().join(""))
            .status()
            .unwrap();
        assert!(st.success(), "extracting busybox rootfs");
        // The rootfs of a real container sits in its own directory below the bundle.
        Rootfs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique cgroup parent `/bt-rt-<pid>-<n>`; removed with everything below it on drop.
pub struct CgroupParent(pub String);

impl CgroupParent {
    pub fn new() -> CgroupParent {
        CgroupParent(format!(
            "/bt-rt-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ))
    }

    pub fn child(&self, name: &str) -> String {
        format!("{}/{name}", self.0)
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        Cgroup::remove_path(&self.0).expect("removing test cgroup");
    }
}

fn m(dest: &str, kind: &str, source: &str, opts: &[&str]) -> Mount {
    Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: source.into(),
        options: opts.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn docker_mounts() -> Vec<Mount> {
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
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
        m(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ]
}

/// A spec shaped like the one docker (and berthd) writes for `docker run busybox ARGS`.
pub fn spec(rootfs: &Path, args: &[&str]) -> Spec {
    let caps: Vec<String> = berth_runtime::DEFAULT_CAPABILITIES
        .iter()
        .map(|s| s.to_string())
        .collect();
    Spec {
        oci_version: "1.2.0".into(),
        process: Process {
            user: User::default(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![
                format!("PATH={}", berth_runtime::DEFAULT_PATH),
                "HOME=/root".into(),
            ],
            cwd: "/".into(),
            capabilities: Some(Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
                inheritable: vec![],
                ambient: vec![],
            }),
            ..Default::default()
        },
        root: Root {
            path: rootfs.to_string_lossy().into_owned(),
            readonly: false,
        },
        hostname: "bt-test".into(),
        mounts: docker_mounts(),
        linux: Linux {
            namespaces: ["mount", "network", "uts", "pid", "ipc", "cgroup"]
                .iter()
                .map(|k| Namespace {
                    kind: k.to_string(),
                    path: None,
                })
                .collect(),
            masked_paths: [
                "/proc/asound",
                "/proc/acpi",
                "/proc/interrupts",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
                "/sys/devices/virtual/powercap",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            readonly_paths: [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A CLOEXEC pipe: (read, write).
pub fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: fresh fds.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

pub fn read_all(fd: OwnedFd) -> String {
    let mut s = Vec::new();
    let _ = std::fs::File::from(fd).read_to_end(&mut s);
    String::from_utf8_lossy(&s).into_owned()
}

/// Waits for `pid` and returns docker's exit code.
pub fn wait(pid: i32) -> i32 {
    let mut st = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            return berth_runtime::exit_status(st).0;
        }
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EINTR),
            "waitpid {pid}"
        );
    }
}

#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// create + start + collect output + wait; removes the container's cgroup.
pub fn run(spec: &Spec) -> Result<Output, berth_runtime::Error> {
    let (out_r, out_w) = pipe();
    let (err_r, err_w) = pipe();
    let c = berth_runtime::create(
        spec,
        berth_runtime::Stdio {
            stdin: None,
            stdout: Some(out_w),
            stderr: Some(err_w),
        },
    )?;
    let running = c.start()?;
    let err_thread = std::thread::spawn(move || read_all(err_r));
    let stdout = read_all(out_r);
    let stderr = err_thread.join().unwrap();
    let code = wait(running.pid);
    if let Some(cg) = running.cgroup {
        cg.remove().unwrap();
    }
    Ok(Output {
        code,
        stdout,
        stderr,
    })
}

pub fn sh(rootfs: &Path, script: &str) -> Spec {
    spec(rootfs, &["sh", "-c", script])
}

/// Exited (or a zombie nobody reaped yet).
pub fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}
