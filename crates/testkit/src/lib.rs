//! The test kit every integration test uses:
//! - [`busybox_tar`]: a busybox root filesystem tarball made once from Debian's busybox-static;
//! - [`Daemon`]: an isolated berthd per test (own data root, exec root and socket) that is
//!   stopped, unmounted and deleted when dropped — also when the test panics;
//! - helpers to run the `berth` CLI and the real `docker` CLI against it;
//! - [`archive`]: image archives made from scratch (also broken ones).

pub mod archive;
pub mod pty;
/// berth's network plumbing, for tests that build their own "outside" namespaces.
pub use berth_network as network;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Directory holding the built binaries (`target/<profile>`), found from the test executable.
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BERTH_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    dir.to_path_buf()
}

/// Path of a workspace binary; panics with the fix if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace, same profile as the tests)",
        p.display()
    );
    p
}

fn fixtures_dir() -> PathBuf {
    let d = bin_dir()
        .parent()
        .map(|p| p.join("berth-fixtures"))
        .unwrap_or_else(|| PathBuf::from("/tmp/berth-fixtures"));
    fs::create_dir_all(&d).expect("creating fixtures dir");
    d
}

/// Holds an exclusive lock on a file while a fixture is made, so parallel tests make it once.
fn with_lock<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let p = fixtures_dir().join(format!("{name}.lock"));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .expect("lock file");
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).expect("flock");
    let out = f();
    drop(file);
    out
}

/// The busybox root filesystem as a tar: /bin/busybox with every applet linked, /etc/passwd with
/// root and a uid-1000 user, /etc/group, /tmp 1777. Made once from Debian's busybox-static.
pub fn busybox_tar() -> PathBuf {
    let out = fixtures_dir().join("busybox-rootfs.tar");
    with_lock("busybox", || {
        if !out.exists() {
            make_busybox_tar(&out)
                .expect("making the busybox fixture (is busybox-static installed?)");
        }
    });
    out
}

/// Builds the busybox rootfs tar at `out` (atomically) with the same script the README uses.
pub fn make_busybox_tar(out: &Path) -> std::io::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-busybox-rootfs.sh");
    let tmp = out.with_extension("tar.tmp");
    let status = Command::new("bash").arg(&script).arg(&tmp).status()?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "{} failed",
            script.display()
        )));
    }
    fs::rename(&tmp, out)
}

/// A temp directory with a short path (unix socket paths must stay under 108 bytes), removed
/// on drop after unmounting anything still mounted below it.
pub struct TempDir(PathBuf);

static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn tempdir(prefix: &str) -> std::io::Result<TempDir> {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let p = PathBuf::from(format!("/tmp/bt-{prefix}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(&p)?;
    Ok(TempDir(p))
}

impl TempDir {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        unmount_below(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Unmounts every mount at or below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().to_string();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| m.replace("\\040", " "))
        .filter(|m| m == &prefix || m.starts_with(&format!("{prefix}/")))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = rustix::mount::unmount(p.as_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// A /24 of 10.210.0.0/16 (`10.210.N.0/24`, N in 1..=239) held for one test's networks,
/// across test processes (a file lock in the fixtures directory), until dropped.
pub struct NetSlot {
    pub n: u8,
    _lock: fs::File,
}

impl NetSlot {
    /// `10.210.N`.
    pub fn prefix(&self) -> String {
        format!("10.210.{}", self.n)
    }
    /// `10.210.N.0/24`.
    pub fn subnet(&self) -> String {
        format!("10.210.{}.0/24", self.n)
    }
}

/// Takes a free [`NetSlot`].
pub fn net_slot() -> NetSlot {
    let dir = fixtures_dir().join("netslots");
    fs::create_dir_all(&dir).expect("netslots dir");
    let start =
        (std::process::id() as usize * 7 + SEQ.fetch_add(1, Ordering::Relaxed) as usize) % 239;
    for i in 0..239 {
        let n = 1 + (start + i) % 239;
        let Ok(f) = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{n}.lock")))
        else {
            continue;
        };
        if rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_ok() {
            return NetSlot {
                n: n as u8,
                _lock: f,
            };
        }
    }
    panic!("no free 10.210.N.0/24 slot for the test's networks");
}

/// Removes what a test daemon may have left on the host's network: its nftables table, its
/// default bridge, and every bridge addressed from its slots (user networks).
fn clean_network(table: &str, bridge: &str, slots: &[u8]) {
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", table])
        .stderr(Stdio::null())
        .status();
    let Ok(mut nl) = berth_network::netlink::Netlink::open() else {
        return;
    };
    let mut doomed: Vec<String> = vec![bridge.to_string()];
    if let (Ok(links), Ok(addrs)) = (nl.links(), nl.addrs()) {
        for l in links.iter().filter(|l| l.kind.as_deref() == Some("bridge")) {
            let ours = addrs.iter().any(|(i, a)| {
                let o = a.addr.octets();
                *i == l.index && o[0] == 10 && o[1] == 210 && slots.contains(&o[2])
            });
            if ours {
                doomed.push(l.name.clone());
            }
        }
    }
    for b in doomed {
        let _ = nl.delete_link(&b);
    }
}

/// The result of running a CLI.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }
    /// Asserts failure and returns stderr.
    #[track_caller]
    pub fn err(&self) -> &str {
        assert_ne!(
            self.code, 0,
            "command unexpectedly succeeded\nstdout: {}",
            self.stdout
        );
        &self.stderr
    }
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// How long one CLI command may run before the test kit kills it.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(90);

/// An isolated berthd for one test.
pub struct Daemon {
    /// The daemon's own cgroup parent (`/bt-<pid>-<n>`), removed with everything in it on drop.
    pub cgroup_parent: String,
    pub dir: TempDir,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub sock: PathBuf,
    pub docker_config: PathBuf,
    /// The daemon's network slot: default bridge `bt-bN` on 10.210.N.0/25, address pool
    /// 10.210.N.128/25 (/28 networks), nftables table `berth_tN`.
    pub net: NetSlot,
    pub bridge: String,
    pub nft_table: String,
    /// More slots a test took for its own subnets (cleaned up with the daemon's).
    pub extra_slots: std::sync::Mutex<Vec<NetSlot>>,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(&[])
    }

    /// Starts berthd with extra flags (e.g. `--storage-driver vfs`).
    pub fn start_with(args: &[&str]) -> Daemon {
        let dir = tempdir("d").expect("temp dir");
        let data_root = dir.path().join("data");
        let exec_root = dir.path().join("exec");
        let sock = dir.path().join("berth.sock");
        let docker_config = dir.path().join("docker-config");
        fs::create_dir_all(&docker_config).unwrap();
        let cgroup_parent = format!("/{}", dir.path().file_name().unwrap().to_string_lossy());
        let net = net_slot();
        let mut d = Daemon {
            cgroup_parent,
            dir,
            data_root,
            exec_root,
            sock,
            docker_config,
            bridge: format!("bt-b{}", net.n),
            nft_table: format!("berth_t{}", net.n),
            net,
            extra_slots: Default::default(),
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("berthd.log"))
            .expect("log file");
        if !self.dir.path().join("daemon.json").exists() {
            // Upstream DNS on the container's own loopback: no test query leaves the machine.
            fs::write(
                self.dir.path().join("daemon.json"),
                r#"{"dns": ["127.0.0.1"]}"#,
            )
            .unwrap();
        }
        let given = |f: &str| {
            self.extra_args
                .iter()
                .any(|a| a == f || a.starts_with(&format!("{f}=")))
        };
        let n = self.net.n;
        let mut net_args: Vec<String> = Vec::new();
        if !given("-b") && !given("--bridge") {
            net_args.extend(["--bridge".into(), self.bridge.clone()]);
        }
        if !given("--bip") {
            net_args.extend(["--bip".into(), format!("10.210.{n}.1/25")]);
        }
        if !given("--default-address-pool") {
            net_args.extend([
                "--default-address-pool".into(),
                format!("base=10.210.{n}.128/25,size=28"),
            ]);
        }
        if !given("--nft-table") {
            net_args.extend(["--nft-table".into(), self.nft_table.clone()]);
        }
        // Test daemons never change the host's sysctls.
        if !given("--ip-forward") {
            net_args.push("--ip-forward=false".into());
        }
        if !given("--ip-forward-no-drop") {
            net_args.push("--ip-forward-no-drop".into());
        }
        let child = Command::new(bin("berthd"))
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--config-file")
            .arg(self.dir.path().join("daemon.json"))
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .args(&net_args)
            .args(&self.extra_args)
            .env("BERTH_LOG", "debug,hyper=info")
            // Nothing a test does may reach a registry off this machine.
            .env("BERTH_REGISTRY_LOOPBACK_ONLY", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting berthd");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("berthd exited during start ({st}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not start in 20s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The daemon's log so far (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM and wait; true if it exited in time.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("pid");
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// SIGKILL (a crash) and wait.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts berthd again on the same data root (after `stop` or `kill9`).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn cmd(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", &self.docker_config)
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// Runs `berth ARGS` against this daemon.
    pub fn berth(&self, args: &[&str]) -> Out {
        self.run(&bin("berth"), args, None)
    }

    /// Runs `berth ARGS` with `stdin` as input.
    pub fn berth_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        self.run(&bin("berth"), args, Some(stdin))
    }

    /// Runs the real docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Out {
        self.run(Path::new(&docker_cli()), args, None)
    }

    pub fn docker_stdin(&self, args: &[&str], stdin: &[u8]) -> Out {
        self.run(Path::new(&docker_cli()), args, Some(stdin))
    }

    fn run(&self, program: &Path, args: &[&str], stdin: Option<&[u8]>) -> Out {
        let mut c = self.cmd(program, args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
        if let Some(input) = stdin {
            let mut si = child.stdin.take().unwrap();
            let data = input.to_vec();
            std::thread::spawn(move || {
                let _ = si.write_all(&data);
            });
        }
        let read = |r: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        };
        let out = read(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        );
        let err = read(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        );
        // A hung client must fail the test, not the whole run.
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(st) = child.try_wait().expect("waiting for the CLI") {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
        let mut stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
        let code = match status {
            Some(st) => st.code().unwrap_or(-1),
            None => {
                stderr.push_str(&format!(
                    "\n[testkit: {} {args:?} killed after {CLI_TIMEOUT:?}]",
                    program.display()
                ));
                -1
            }
        };
        Out {
            code,
            stdout,
            stderr,
        }
    }

    /// Runs a CLI (`berth` or the docker CLI) against this daemon inside a pty.
    pub fn pty(&self, docker: bool, args: &[&str], input: &[(Duration, &[u8])]) -> pty::PtyOut {
        let program = if docker {
            PathBuf::from(docker_cli())
        } else {
            bin("berth")
        };
        let cmd = self.cmd(&program, args);
        pty::run(cmd, input, CLI_TIMEOUT)
    }

    /// Another 10.210.N.0/24 for the test's own networks; returns `10.210.N`.
    pub fn subnet_prefix(&self) -> String {
        let s = net_slot();
        let p = s.prefix();
        self.extra_slots.lock().unwrap().push(s);
        p
    }

    /// Imports the busybox fixture as `tag` through the berth CLI; returns the image ID.
    pub fn import_busybox(&self, tag: &str) -> String {
        let tar = busybox_tar();
        let out = self.berth(&["import", tar.to_str().unwrap(), tag]);
        out.ok().trim().to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        // Containers outlive berthd by design (live-restore): end this test's shims and
        // containers by the pids they recorded, then their cgroups.
        kill_recorded_pids(&self.exec_root.join("s"));
        remove_cgroups(&self.cgroup_parent);
        let mut slots = vec![self.net.n];
        slots.extend(self.extra_slots.lock().unwrap().iter().map(|s| s.n));
        clean_network(&self.nft_table, &self.bridge, &slots);
        // A daemon a test let manage ip_forward gives up its claim (restoring the value).
        let managed = self
            .extra_args
            .iter()
            .any(|a| a == "--ip-forward" || a == "--ip-forward=true");
        if managed {
            let _ = berth_network::forward::IpForward::new(
                Path::new("/run/berth-ip-forward"),
                &self.exec_root,
            )
            .release();
        }
        // `dir` drops next: unmounts and deletes everything the daemon left.
    }
}

/// Sends SIGKILL to every pid in `<dir>/*/{init,shim}.pid`.
fn kill_recorded_pids(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        for f in ["init.pid", "shim.pid"] {
            let Ok(text) = fs::read_to_string(e.path().join(f)) else {
                continue;
            };
            if let Ok(n) = text.trim().parse::<i32>()
                && let Some(pid) = rustix::process::Pid::from_raw(n)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// Kills what is left in a cgroup subtree (every v1 hierarchy and the v2 tree) and removes it.
pub fn remove_cgroups(parent: &str) {
    let rel = parent.trim_start_matches('/');
    let Ok(rd) = fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut roots: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path().join(rel))
        .filter(|p| p.is_dir())
        .collect();
    if Path::new("/sys/fs/cgroup").join(rel).is_dir() {
        roots.push(Path::new("/sys/fs/cgroup").join(rel));
    }
    for root in roots {
        let mut dirs = Vec::new();
        collect_dirs(&root, &mut dirs);
        dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for d in &dirs {
            for _ in 0..50 {
                let procs = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                if procs.trim().is_empty() {
                    break;
                }
                for p in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    if let Some(pid) = rustix::process::Pid::from_raw(p) {
                        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                    }
                }
                // A frozen cgroup must thaw before its tasks can die.
                let _ = fs::write(d.join("freezer.state"), "THAWED");
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = fs::remove_dir(d);
        }
    }
}

fn collect_dirs(p: &Path, out: &mut Vec<PathBuf>) {
    out.push(p.to_path_buf());
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// The docker CLI to test against (`DOCKER_CLI` overrides).
pub fn docker_cli() -> String {
    std::env::var("DOCKER_CLI").unwrap_or_else(|_| "docker".into())
}

/// Whether a program is on PATH (interop tests skip peers that are not installed, loudly).
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Lists every file under `dir` with its size (for "nothing changed" checks).
pub fn tree_listing(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, u64)>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if m.is_dir() {
                out.push((format!("{rel}/"), 0));
                walk(base, &p, out);
            } else {
                out.push((rel, m.len()));
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
