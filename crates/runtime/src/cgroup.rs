//! Container cgroups on v1 (one directory per hierarchy) or v2 (one directory), chosen from
//! what the host mounts: v2 only when /sys/fs/cgroup itself is cgroup2, so a hybrid host with
//! an empty unified tree uses v1.

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Context, Error, Result};
use crate::spec::Resources;

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const ROOT: &str = "/sys/fs/cgroup";

/// v1 controllers we know by name (anything else in the mount options is not a controller).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq)]
pub struct Hierarchy {
    /// e.g. `/sys/fs/cgroup/memory`
    pub mount: PathBuf,
    /// Controllers and `name=x` of a named hierarchy, in mount-option order.
    pub controllers: Vec<String>,
}

impl Hierarchy {
    pub fn has(&self, c: &str) -> bool {
        self.controllers.iter().any(|x| x == c)
    }

    /// Mount data for mounting this hierarchy again (`cpu,cpuacct`, `name=systemd`).
    pub fn mount_data(&self) -> String {
        self.controllers.join(",")
    }
}

/// How this host mounts cgroups.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    V1(Vec<Hierarchy>),
    V2(PathBuf),
}

impl Layout {
    /// Detected once per process.
    pub fn host() -> Result<&'static Layout> {
        static L: OnceLock<std::result::Result<Layout, String>> = OnceLock::new();
        L.get_or_init(|| Layout::detect().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::io("detecting cgroups", io::Error::other(e.clone())))
    }

    fn detect() -> Result<Layout> {
        let st =
            rustix::fs::statfs(ROOT).map_err(|e| Error::io(format!("statfs {ROOT}"), e.into()))?;
        if st.f_type as i64 == CGROUP2_SUPER_MAGIC {
            return Ok(Layout::V2(PathBuf::from(ROOT)));
        }
        let info =
            fs::read_to_string("/proc/self/mountinfo").context(|| "reading mountinfo".into())?;
        let h = parse_v1_mounts(&info);
        if h.is_empty() {
            return Err(Error::io(
                "detecting cgroups",
                io::Error::other("no cgroup v1 or v2 hierarchy mounted"),
            ));
        }
        Ok(Layout::V1(h))
    }

    pub fn version(&self) -> Version {
        match self {
            Layout::V1(_) => Version::V1,
            Layout::V2(_) => Version::V2,
        }
    }
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

pub(crate) fn parse_v1_mounts(mountinfo: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        if post.next() != Some("cgroup") {
            continue;
        }
        let superopts = post.nth(1).unwrap_or("");
        let Some(mp) = pre.split_whitespace().nth(4) else {
            continue;
        };
        let controllers: Vec<String> = superopts
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
            .map(str::to_string)
            .collect();
        if controllers.is_empty() || out.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        out.push(Hierarchy {
            mount: PathBuf::from(unescape_mount(mp)),
            controllers,
        });
    }
    out
}

/// Validates a cgroups path and returns it relative to a hierarchy root (`berth/abc`).
fn relative(path: &str) -> Result<String> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(Error::InvalidSpec(format!("invalid cgroups path {path:?}"))),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(Error::InvalidSpec(format!(
            "invalid cgroups path {path:?}: it names the root cgroup"
        )));
    }
    Ok(parts.join("/"))
}

/// A container's cgroup: the same path in every v1 hierarchy, or one v2 directory.
#[derive(Debug, Clone)]
pub struct Cgroup {
    path: String,
    layout: Layout,
    dirs: Vec<PathBuf>,
}

impl Cgroup {
    /// Creates `path` (e.g. `/berth/<id>`) and applies `resources`.
    pub fn create(path: &str, resources: Option<&Resources>) -> Result<Cgroup> {
        Cgroup::create_in(Layout::host()?.clone(), path, resources)
    }

    /// The cgroup at `path`, whether or not it exists (for `remove`, `procs`…).
    pub fn open(path: &str) -> Result<Cgroup> {
        Cgroup::open_in(Layout::host()?.clone(), path)
    }

    /// Removes the cgroup at `path` if it exists (killing what still runs in it).
    pub fn remove_path(path: &str) -> Result<()> {
        Cgroup::open(path)?.remove()
    }

    pub fn open_in(layout: Layout, path: &str) -> Result<Cgroup> {
        let rel = relative(path)?;
        let dirs = match &layout {
            Layout::V1(hs) => hs.iter().map(|h| h.mount.join(&rel)).collect(),
            Layout::V2(root) => vec![root.join(&rel)],
        };
        Ok(Cgroup {
            path: format!("/{rel}"),
            layout,
            dirs,
        })
    }

    pub fn create_in(layout: Layout, path: &str, resources: Option<&Resources>) -> Result<Cgroup> {
        let cg = Cgroup::open_in(layout, path)?;
        let rel = cg.path.trim_start_matches('/').to_string();
        let made = match &cg.layout {
            Layout::V1(hs) => hs
                .iter()
                .try_for_each(|h| mkdir_levels(&h.mount, &rel, h.has("cpuset"), false)),
            Layout::V2(root) => mkdir_levels(root, &rel, false, true),
        };
        if let Err(e) = made {
            let _ = cg.remove();
            return Err(e);
        }
        let rules = resources.map(|r| r.devices.as_slice()).unwrap_or(&[]);
        let applied = cg.set_device_rules(rules).and_then(|()| match resources {
            Some(r) => cg.set_resources(r).map(|_| ()),
            None => Ok(()),
        });
        if let Err(e) = applied {
            let _ = cg.remove();
            return Err(e);
        }
        Ok(cg)
    }

    /// v1 device access rules (OCI `resources.devices`, in order). Without any, runc's and
    /// docker's default: deny everything but mknod and the standard nodes, so a container
    /// with CAP_MKNOD still cannot open a host disk.
    // TODO(resources): v2 enforces devices with a BPF program on the cgroup.
    pub fn set_device_rules(&self, rules: &[serde_json::Value]) -> Result<()> {
        let Some(d) = self.dir_with("devices") else {
            return Ok(());
        };
        if !matches!(self.layout, Layout::V1(_)) {
            return Ok(());
        }
        let lines: Vec<(bool, String)> = if rules.is_empty() {
            let mut v = vec![(false, "a".to_string())];
            v.extend(
                DEFAULT_ALLOWED_DEVICES
                    .iter()
                    .map(|r| (true, r.to_string())),
            );
            v
        } else {
            rules.iter().map(device_rule).collect::<Result<_>>()?
        };
        for (allow, line) in lines {
            let f = d.join(if allow {
                "devices.allow"
            } else {
                "devices.deny"
            });
            fs::write(&f, &line).context(|| format!("writing {line:?} to {}", f.display()))?;
        }
        Ok(())
    }

    /// Lets the container use the nodes of `--device` (rwm).
    pub fn allow_devices(&self, devices: &[crate::spec::Device]) -> Result<()> {
        let rules: Vec<serde_json::Value> = devices
            .iter()
            .map(|d| serde_json::json!({"allow": true, "type": d.kind, "major": d.major, "minor": d.minor, "access": "rwm"}))
            .collect();
        if rules.is_empty() {
            Ok(())
        } else {
            self.set_device_rules(&rules)
        }
    }

    /// The path below each hierarchy root, with a leading `/`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn version(&self) -> Version {
        self.layout.version()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The cgroup's directory in every hierarchy.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The directory of the hierarchy that holds `controller` (the one directory on v2).
    pub fn dir_with(&self, controller: &str) -> Option<&Path> {
        match &self.layout {
            Layout::V1(hs) => hs
                .iter()
                .zip(&self.dirs)
                .find(|(h, _)| h.has(controller))
                .map(|(_, d)| d.as_path()),
            Layout::V2(_) => self.dirs.first().map(PathBuf::as_path),
        }
    }

    /// `cgroup.procs` of every hierarchy (writing a pid, or "0" for oneself, joins).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The files a single-threaded process writes "0" to, to join: v1's `tasks` (moving one
    /// thread of oneself skips the threadgroup lock, whose RCU grace period cost 10–30 ms per
    /// start here), v2's `cgroup.procs`.
    pub fn self_join_files(&self) -> Vec<PathBuf> {
        let file = match self.layout {
            Layout::V1(_) => "tasks",
            Layout::V2(_) => "cgroup.procs",
        };
        self.dirs.iter().map(|d| d.join(file)).collect()
    }

    pub fn add_pid(&self, pid: i32) -> Result<()> {
        for f in self.procs_files() {
            fs::write(&f, pid.to_string())
                .context(|| format!("adding {pid} to {}", f.display()))?;
        }
        Ok(())
    }

    /// Every process in the cgroup and below it.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let Some(d) = self.dirs.first() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        collect_procs(d, &mut out).context(|| format!("listing {}", d.display()))?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub fn freeze(&self) -> Result<()> {
        self.set_frozen(true)
    }

    pub fn thaw(&self) -> Result<()> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        match &self.layout {
            Layout::V1(_) => {
                let d = self.dir_with("freezer").ok_or_else(|| {
                    Error::io("freeze", io::Error::other("no freezer hierarchy mounted"))
                })?;
                let f = d.join("freezer.state");
                let want = if frozen { "FROZEN" } else { "THAWED" };
                loop {
                    // Writing again each round catches tasks forked while freezing (as runc).
                    fs::write(&f, want).context(|| format!("writing {}", f.display()))?;
                    let now =
                        fs::read_to_string(&f).context(|| format!("reading {}", f.display()))?;
                    if now.trim() == want {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        return Err(Error::io(
                            format!("{} stays {}", f.display(), now.trim()),
                            io::Error::from(ErrorKind::TimedOut),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Layout::V2(_) => {
                let d = &self.dirs[0];
                fs::write(d.join("cgroup.freeze"), if frozen { "1" } else { "0" })
                    .context(|| format!("writing {}/cgroup.freeze", d.display()))?;
                let want = if frozen { "frozen 1" } else { "frozen 0" };
                loop {
                    let ev = fs::read_to_string(d.join("cgroup.events"))
                        .context(|| format!("reading {}/cgroup.events", d.display()))?;
                    if ev.lines().any(|l| l.trim() == want) {
                        return Ok(());
                    }
                    if Instant::now() > deadline {
                        return Err(Error::io(
                            format!("{} does not reach {want}", d.display()),
                            io::Error::from(ErrorKind::TimedOut),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    fn is_frozen(&self) -> bool {
        match &self.layout {
            Layout::V1(_) => self
                .dir_with("freezer")
                .and_then(|d| fs::read_to_string(d.join("freezer.state")).ok())
                .is_some_and(|s| s.trim() != "THAWED"),
            Layout::V2(_) => fs::read_to_string(self.dirs[0].join("cgroup.freeze"))
                .is_ok_and(|s| s.trim() == "1"),
        }
    }

    /// Sends `sig` to every process in the cgroup. SIGKILL goes through `cgroup.kill` on v2,
    /// and on v1 with the cgroup frozen so nothing forks past it.
    pub fn kill_all(&self, sig: i32) -> Result<()> {
        if sig == libc::SIGKILL {
            if let Layout::V2(_) = self.layout {
                let k = self.dirs[0].join("cgroup.kill");
                if k.exists() {
                    return fs::write(&k, "1").context(|| format!("writing {}", k.display()));
                }
            }
            if self.dir_with("freezer").is_some() && self.freeze().is_ok() {
                let r = self.signal_each(sig);
                let t = self.thaw();
                return r.and(t);
            }
        }
        self.signal_each(sig)
    }

    fn signal_each(&self, sig: i32) -> Result<()> {
        for pid in self.procs()? {
            if pid <= 0 {
                continue;
            }
            // SAFETY: plain kill(2).
            if unsafe { libc::kill(pid, sig) } < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::ESRCH) {
                    return Err(Error::io(format!("kill {pid}"), e));
                }
            }
        }
        Ok(())
    }

    /// Kills what is left, waits for it, and removes the directories deepest-first in every
    /// hierarchy. A cgroup already gone is fine.
    pub fn remove(&self) -> Result<()> {
        if self.dirs.iter().all(|d| !d.exists()) {
            return Ok(());
        }
        if self.is_frozen() {
            let _ = self.thaw();
        }
        let _ = self.kill_all(libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut first_err = None;
        for d in &self.dirs {
            if let Err(e) = remove_tree(d, deadline)
                && first_err.is_none()
            {
                first_err = Some(Error::io(format!("removing cgroup {}", d.display()), e));
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Whether the kernel OOM-killed a process in this cgroup.
    pub fn oom_killed(&self) -> bool {
        let (dir, file) = match &self.layout {
            Layout::V1(_) => (self.dir_with("memory"), "memory.oom_control"),
            Layout::V2(_) => (self.dirs.first().map(PathBuf::as_path), "memory.events"),
        };
        let Some(s) = dir.and_then(|d| fs::read_to_string(d.join(file)).ok()) else {
            return false;
        };
        s.lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
    }

    /// Writes the resource limits (memory, cpu, cpuset, pids, block I/O). Returns docker's
    /// warnings for knobs this kernel lacks.
    pub fn set_resources(&self, r: &Resources) -> Result<Vec<String>> {
        match &self.layout {
            Layout::V1(_) => {
                crate::resources::apply_v1(r, &|c| self.dir_with(c).map(Path::to_path_buf))
            }
            Layout::V2(_) => crate::resources::apply_v2(r, &self.dirs[0]),
        }
    }
}

/// runc's default allow-list (libcontainer/specconv AllowedDevices), after "deny all".
const DEFAULT_ALLOWED_DEVICES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// An OCI device rule → (allow, `"c 1:3 rwm"`).
fn device_rule(v: &serde_json::Value) -> Result<(bool, String)> {
    let bad = || Error::InvalidSpec(format!("invalid device cgroup rule {v}"));
    let allow = v.get("allow").and_then(|a| a.as_bool()).ok_or_else(bad)?;
    let kind = v.get("type").and_then(|t| t.as_str()).unwrap_or("a");
    let access = v.get("access").and_then(|a| a.as_str()).unwrap_or("rwm");
    if !["a", "b", "c"].contains(&kind)
        || access.is_empty()
        || !access.chars().all(|c| "rwm".contains(c))
    {
        return Err(bad());
    }
    if kind == "a" {
        return Ok((allow, "a".into()));
    }
    let num = |k: &str| match v.get(k).and_then(|n| n.as_i64()) {
        Some(n) if n >= 0 => n.to_string(),
        _ => "*".into(),
    };
    Ok((
        allow,
        format!("{kind} {}:{} {access}", num("major"), num("minor")),
    ))
}

/// Creates every level of `rel` below `root`. On v1 cpuset a new level starts with empty
/// cpus/mems, so the parent's are copied down; on v2 controllers are enabled in each parent.
fn mkdir_levels(root: &Path, rel: &str, cpuset: bool, v2: bool) -> Result<()> {
    let mut dir = root.to_path_buf();
    for part in rel.split('/') {
        let parent = dir.clone();
        dir.push(part);
        if v2 {
            enable_controllers(&parent);
        }
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("creating cgroup {}", dir.display()), e)),
        }
        if cpuset {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let mine = fs::read_to_string(dir.join(f)).unwrap_or_default();
                if mine.trim().is_empty() {
                    let theirs = fs::read_to_string(parent.join(f))
                        .context(|| format!("reading {}/{f}", parent.display()))?;
                    fs::write(dir.join(f), theirs.trim())
                        .context(|| format!("writing {}/{f}", dir.display()))?;
                }
            }
        }
    }
    Ok(())
}

/// Best effort: a parent with processes of its own cannot delegate (v2's no-internal-process
/// rule), and that is not fatal for running the container.
fn enable_controllers(dir: &Path) {
    let Ok(avail) = fs::read_to_string(dir.join("cgroup.controllers")) else {
        return;
    };
    let on = fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    for c in avail.split_whitespace() {
        if !on.split_whitespace().any(|x| x == c) {
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

fn collect_procs(dir: &Path, out: &mut Vec<i32>) -> io::Result<()> {
    let s = match fs::read_to_string(dir.join("cgroup.procs")) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            collect_procs(&e.path(), out)?;
        }
    }
    Ok(())
}

fn remove_tree(dir: &Path, deadline: Instant) -> io::Result<()> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path(), deadline)?;
        }
    }
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                // Tasks still exiting (or not yet reaped on v2): kill stragglers and retry.
                if let Ok(s) = fs::read_to_string(dir.join("cgroup.procs")) {
                    for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        // SAFETY: plain kill(2).
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The files of the cgroups `pid` is in that a single-threaded process writes "0" to, to
/// join them (`exec`): v1's `tasks` (see [`Cgroup::self_join_files`]), v2's `cgroup.procs`.
pub fn self_join_files_of(pid: i32) -> Result<Vec<PathBuf>> {
    let s = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .context(|| format!("reading /proc/{pid}/cgroup"))?;
    let layout = Layout::host()?;
    let mut out = Vec::new();
    for line in s.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let rel = path.trim_start_matches('/');
        match layout {
            Layout::V2(root) if ctrls.is_empty() => out.push(root.join(rel).join("cgroup.procs")),
            Layout::V1(hs) if !ctrls.is_empty() => {
                let want: Vec<&str> = ctrls.split(',').collect();
                if let Some(h) = hs
                    .iter()
                    .find(|h| h.controllers.len() == want.len() && want.iter().all(|c| h.has(c)))
                {
                    out.push(h.mount.join(rel).join("tasks"));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Whether the host's block-I/O controller has a proportional weight (CFQ/BFQ); without
/// one docker accepts `--blkio-weight` with a warning and records 0.
pub fn blkio_weight_supported() -> bool {
    match Layout::host() {
        Ok(Layout::V1(hs)) => hs.iter().filter(|h| h.has("blkio")).any(|h| {
            h.mount.join("blkio.weight").exists() || h.mount.join("blkio.bfq.weight").exists()
        }),
        Ok(Layout::V2(root)) => fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == "io")),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_v1_mountinfo() {
        let info = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 31 0:32 / /other/memory rw,relatime - cgroup cgroup rw,memory
";
        let h = parse_v1_mounts(info);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(h[0].mount, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h[2].mount_data(), "name=systemd");
    }

    #[test]
    fn device_rules() {
        let r = |v| device_rule(&serde_json::json!(v)).unwrap();
        assert_eq!(
            r(serde_json::json!({"allow": false, "access": "rwm"})),
            (false, "a".into())
        );
        assert_eq!(
            r(
                serde_json::json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
            ),
            (true, "c 1:3 rwm".into())
        );
        assert_eq!(
            r(serde_json::json!({"allow": true, "type": "c", "major": 136, "access": "rwm"})),
            (true, "c 136:* rwm".into())
        );
        assert!(device_rule(&serde_json::json!({"allow": true, "access": "x"})).is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(relative("/berth/abc").unwrap(), "berth/abc");
        assert!(relative("/berth/../x").is_err());
        assert!(relative("/").is_err());
    }
}
