//! `create`: the container init, set up completely and held just before `execve` until
//! [`Created::start`].
//!
//! Everything is prepared in the parent; the child (a fork-like `clone`, possibly of a
//! multi-threaded process) only makes syscalls on that prepared data. It reports over a
//! SEQPACKET pair: its pty master (when it has a terminal), READY, or one error record. After
//! the start byte, EOF on the pair (CLOEXEC at `execve`) means the exec happened.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use libc::{c_int, c_ulong};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result, errno_text};
use crate::mounts::{self, CgroupCtx, DevOp, MountOp};
use crate::paths::{self, InRoot, cstring};
use crate::process::{self, ProcPlan, Stdio, child_error, child_main, fail, step};
use crate::spec::{Namespace, Spec};
use crate::sys::{self, REC_CONSOLE, REC_ERROR, REC_PID, REC_READY, Record};

/// How long the child may take to set up before it is given up on.
const SETUP_TIMEOUT_MS: i32 = 60_000;

/// Namespaces to create and to join, from the spec.
pub(crate) struct Namespaces {
    pub clone_flags: c_int,
    pub new_cgroup: bool,
    /// Joined with setns in the child (not pid: that needs a fork after setns).
    pub joins: Vec<(OwnedFd, c_int)>,
    pub join_pid: Option<OwnedFd>,
    pub has_uts: bool,
    /// A new user namespace (CLONE_NEWUSER in `clone_flags`), mapped by the parent.
    pub new_user: bool,
    /// A user namespace joined by path (docker: sharing another remapped container's namespaces).
    pub join_user: Option<OwnedFd>,
}

fn ns_flag(kind: &str) -> Result<c_int> {
    Ok(match kind {
        "pid" => libc::CLONE_NEWPID,
        "network" | "net" => libc::CLONE_NEWNET,
        "mount" | "mnt" => libc::CLONE_NEWNS,
        "ipc" => libc::CLONE_NEWIPC,
        "uts" => libc::CLONE_NEWUTS,
        "cgroup" => libc::CLONE_NEWCGROUP,
        "user" => libc::CLONE_NEWUSER,
        k => return Err(Error::InvalidSpec(format!("unknown namespace type {k:?}"))),
    })
}

impl Namespaces {
    fn new(list: &[Namespace]) -> Result<Namespaces> {
        let mut n = Namespaces {
            clone_flags: 0,
            new_cgroup: false,
            joins: Vec::new(),
            join_pid: None,
            has_uts: false,
            new_user: false,
            join_user: None,
        };
        let mut joins: Vec<(u8, OwnedFd, c_int)> = Vec::new();
        for ns in list {
            let flag = ns_flag(&ns.kind)?;
            if flag == libc::CLONE_NEWUSER {
                match ns.path.as_deref().filter(|p| !p.is_empty()) {
                    None => {
                        n.new_user = true;
                        n.clone_flags |= flag;
                    }
                    Some(p) => {
                        let f = std::fs::File::open(p)
                            .map_err(|e| Error::io(format!("opening namespace {p}"), e))?;
                        n.join_user = Some(OwnedFd::from(f));
                    }
                }
                continue;
            }
            if flag == libc::CLONE_NEWUTS {
                n.has_uts = true;
            }
            match ns.path.as_deref().filter(|p| !p.is_empty()) {
                None if flag == libc::CLONE_NEWCGROUP => n.new_cgroup = true,
                None => n.clone_flags |= flag,
                Some(_) if flag == libc::CLONE_NEWNS => {
                    return Err(Error::InvalidSpec(
                        "joining another container's mount namespace is not supported".into(),
                    ));
                }
                Some(p) => {
                    let f = std::fs::File::open(p)
                        .map_err(|e| Error::io(format!("opening namespace {p}"), e))?;
                    let fd = OwnedFd::from(f);
                    if flag == libc::CLONE_NEWPID {
                        n.join_pid = Some(fd);
                    } else {
                        // setns order: ipc, uts, net, cgroup (after the cgroup is joined).
                        let order = match flag {
                            libc::CLONE_NEWIPC => 0,
                            libc::CLONE_NEWUTS => 1,
                            libc::CLONE_NEWNET => 2,
                            _ => 3,
                        };
                        joins.push((order, fd, flag));
                    }
                }
            }
        }
        joins.sort_by_key(|j| j.0);
        n.joins = joins.into_iter().map(|(_, fd, f)| (fd, f)).collect();
        if n.clone_flags & libc::CLONE_NEWNS == 0 {
            return Err(Error::InvalidSpec(
                "a container needs its own mount namespace".into(),
            ));
        }
        Ok(n)
    }
}

/// Everything the init child needs, as raw fds and C strings.
struct InitPlan {
    sock: c_int,
    stdio: [c_int; 3],
    keep: Vec<c_int>,
    cgroup_fds: Vec<c_int>,
    joins: Vec<(c_int, c_int)>,
    unshare_cgroup: bool,
    new_net: bool,
    oom_adj: Option<Vec<u8>>,
    root_prop: c_ulong,
    root_shared: bool,
    rootfs: CString,
    mounts: Vec<MountOp>,
    setup_dev: bool,
    devices: Vec<DevOp>,
    dev_dir: InRoot,
    dev_links: Vec<(CString, CString)>,
    ptmx_link: bool,
    console: InRoot,
    sysctls: Vec<(InRoot, Vec<u8>)>,
    sysctl_names: Vec<String>,
    readonly: Vec<InRoot>,
    masked: Vec<InRoot>,
    root_readonly: bool,
    hostname: Option<Vec<u8>>,
    domainname: Option<Vec<u8>>,
    process: ProcPlan,
    /// In a user namespace: root of it (setresuid/setresgid 0) before any setup.
    userns: bool,
    /// Wait for the parent's go (after it wrote the id maps of a new user namespace, and
    /// after it learned the init's pid from the intermediate, so records never cross).
    wait_map: bool,
    /// With a user namespace, an intermediate does these (as the host's root) before the
    /// clone: oom_score_adj, cgroup join, the namespace joins (pid among them).
    pre_cgroup_fds: Vec<c_int>,
    pre_joins: Vec<(c_int, c_int)>,
    /// A user namespace to join, after everything else the intermediate does.
    pre_user: Option<c_int>,
    /// net.* sysctls of a joined network namespace the user namespace does not own: the
    /// intermediate writes them through the host's /proc/sys (index into `sysctls`, path).
    pre_sysctls: Vec<(usize, CString)>,
}

type Failure = (u32, usize, i32);

fn at(step: u32, index: usize) -> impl Fn(i32) -> Failure {
    move |e| (step, index, e)
}

/// Brings `lo` up in a new network namespace, as docker's `--network none` has it.
fn loopback_up() -> sys::Res<()> {
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: i16,
        _pad: [u8; 22],
    }
    // SAFETY: plain socket(2).
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(sys::errno());
    }
    let mut ifr = IfReq {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    ifr.name[..2].copy_from_slice(b"lo");
    let r = sys::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr as *mut IfReq as usize).and_then(|_| {
        ifr.flags |= libc::IFF_UP as i16;
        sys::ioctl(s, libc::SIOCSIFFLAGS, &ifr as *const IfReq as usize)
    });
    sys::close(s);
    r.map(|_| ())
}

/// Opens a pty from the container's own devpts (so `tty` says /dev/pts/0), verifies it is
/// really ptmx, and returns (master, slave).
pub(crate) fn open_pty(
    ptmx: c_int,
    winsize: Option<&libc::winsize>,
) -> Result<(c_int, c_int), (u32, i32)> {
    let st = sys::fstat(ptmx).map_err(|e| (step::CONSOLE, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(5, 2) {
        return Err((step::CONSOLE_REFUSED, libc::ENOTTY));
    }
    let unlock: c_int = 0;
    sys::ioctl(
        ptmx,
        libc::TIOCSPTLCK as c_ulong,
        &unlock as *const c_int as usize,
    )
    .map_err(|e| (step::CONSOLE, e))?;
    let slave = sys::ioctl(
        ptmx,
        libc::TIOCGPTPEER as c_ulong,
        (libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as usize,
    )
    .map_err(|e| (step::CONSOLE, e))?;
    if let Some(ws) = winsize {
        sys::ioctl(slave, libc::TIOCSWINSZ, ws as *const libc::winsize as usize)
            .map_err(|e| (step::CONSOLE, e))?;
    }
    Ok((ptmx, slave))
}

/// Makes the slave the process's stdio and controlling terminal; sends the master home.
pub(crate) fn adopt_pty(sock: c_int, master: c_int, slave: c_int) -> Result<(), (u32, i32)> {
    let c = |e| (step::CONSOLE, e);
    sys::send_record(
        sock,
        Record {
            kind: REC_CONSOLE,
            ..Default::default()
        },
        Some(master),
    )
    .map_err(c)?;
    sys::close(master);
    for fd in 0..3 {
        sys::dup_to(slave, fd).map_err(c)?;
    }
    if slave > 2 {
        sys::close(slave);
    }
    sys::ioctl(0, libc::TIOCSCTTY, 0).map_err(c)?;
    Ok(())
}

impl InitPlan {
    fn console(&self, root: c_int) -> Result<(), Failure> {
        let strict = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS | sys::RESOLVE_NO_SYMLINKS;
        let ptmx = sys::openat2(
            root,
            c"dev/pts/ptmx",
            libc::O_RDWR | libc::O_NOCTTY,
            0,
            strict,
        )
        .map_err(at(step::CONSOLE, 0))?;
        let (master, slave) = open_pty(ptmx, self.process.winsize.as_ref()).map_err(|(s, e)| {
            sys::close(ptmx);
            (s, 0, e)
        })?;
        // /dev/console is the pty, bind-mounted over a file we verified (never a symlink).
        self.console
            .create(root, true)
            .map_err(at(step::CONSOLE, 0))?;
        let cfd = sys::openat2(
            root,
            &self.console.full,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            strict,
        )
        .map_err(|e| {
            if e == libc::ELOOP {
                (step::CONSOLE_REFUSED, 0, e)
            } else {
                (step::CONSOLE, 0, e)
            }
        })?;
        let r = match sys::fstat(cfd) {
            Ok(st) if matches!(st.st_mode & libc::S_IFMT, libc::S_IFREG | libc::S_IFCHR) => {
                let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
                sys::mount(
                    Some(sys::proc_fd_path(slave, &mut a)),
                    sys::proc_fd_path(cfd, &mut b),
                    None,
                    libc::MS_BIND,
                    None,
                )
                .map_err(at(step::CONSOLE, 0))
            }
            Ok(_) => Err((step::CONSOLE_REFUSED, 0, libc::EEXIST)),
            Err(e) => Err((step::CONSOLE, 0, e)),
        };
        sys::close(cfd);
        r?;
        adopt_pty(self.sock, master, slave).map_err(|(s, e)| (s, 0, e))
    }

    fn rootfs(&self) -> Result<(), Failure> {
        sys::mount(None, c"/", None, self.root_prop, None)
            .map_err(at(step::ROOT_PROPAGATION, 0))?;
        sys::mount(
            Some(&self.rootfs),
            &self.rootfs,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(at(step::ROOT_BIND, 0))?;
        let root = sys::openat(
            libc::AT_FDCWD,
            &self.rootfs,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(at(step::ROOT_OPEN, 0))?;
        for (i, m) in self.mounts.iter().enumerate() {
            m.apply(root).map_err(|(s, e)| (s, i, e))?;
        }
        if self.setup_dev {
            for (i, d) in self.devices.iter().enumerate() {
                d.apply(root).map_err(|(s, e)| (s, i, e))?;
            }
            let dev = self
                .dev_dir
                .open(root, libc::O_DIRECTORY)
                .map_err(at(step::DEV_SYMLINK, 0))?;
            for (i, (target, name)) in self.dev_links.iter().enumerate() {
                match sys::symlinkat(target, dev, name) {
                    Ok(()) | Err(libc::EEXIST) => {}
                    Err(e) => return Err((step::DEV_SYMLINK, i, e)),
                }
            }
            if self.ptmx_link {
                let _ = sys::unlinkat(dev, c"ptmx", 0);
                if let Err(e) = sys::symlinkat(c"pts/ptmx", dev, c"ptmx") {
                    return Err((step::DEV_SYMLINK, usize::MAX, e));
                }
            }
            sys::close(dev);
        }
        if self.process.terminal {
            self.console(root)?;
        }
        let strict = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS | sys::RESOLVE_NO_SYMLINKS;
        for (i, (path, value)) in self.sysctls.iter().enumerate() {
            if self.pre_sysctls.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let fd = sys::openat2(root, &path.full, libc::O_WRONLY, 0, strict)
                .map_err(at(step::SYSCTL, i))?;
            let r = sys::write_all(fd, value);
            sys::close(fd);
            r.map_err(at(step::SYSCTL, i))?;
        }
        for (i, p) in self.readonly.iter().enumerate() {
            readonly_path(root, p).map_err(at(step::READONLY_PATH, i))?;
        }
        if !self.masked.is_empty() {
            let null = open_host_null().map_err(at(step::MASKED_PATH, usize::MAX))?;
            for (i, p) in self.masked.iter().enumerate() {
                mask_path(root, p, null).map_err(at(step::MASKED_PATH, i))?;
            }
            sys::close(null);
        }
        if self.root_readonly {
            sys::mount_setattr(root, 0, &mounts::ro_attr()).map_err(at(step::ROOT_READONLY, 0))?;
        }
        self.pivot(root).map_err(at(step::PIVOT_ROOT, 0))
    }

    /// pivot_root(".", ".") then detach the old root stacked on top (runc's trick: no
    /// temporary directory inside the rootfs).
    fn pivot(&self, root: c_int) -> sys::Res<()> {
        let old = sys::openat(libc::AT_FDCWD, c"/", libc::O_PATH | libc::O_DIRECTORY, 0)?;
        sys::fchdir(root)?;
        sys::pivot_root(c".", c".")?;
        sys::fchdir(old)?;
        // The detach must not propagate back to the host.
        sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)?;
        sys::umount2(c".", libc::MNT_DETACH)?;
        sys::chdir(c"/")?;
        sys::close(old);
        sys::close(root);
        if self.root_shared {
            sys::mount(None, c"/", None, libc::MS_SHARED | libc::MS_REC, None)?;
        }
        Ok(())
    }

    fn run(&self) -> ! {
        let sock = self.sock;
        let f = |(s, i, e): Failure| -> ! { fail(sock, s, i, e) };
        sys::reset_signals();
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        if self.wait_map {
            // The parent writes uid_map/gid_map, then the sync byte.
            let mut b = [0u8; 1];
            match sys::read(sock, &mut b) {
                Ok(1) => {}
                _ => sys::exit(1),
            }
        }
        if self.userns {
            // Become the namespace's root, so everything set up below (mount points, /dev
            // nodes) is owned by the mapped root, not by the host's.
            match sys::setgroups(&[]) {
                Ok(()) | Err(libc::EPERM) => {}
                Err(e) => f((step::USERNS_IDS, 0, e)),
            }
            if let Err(e) = sys::setresgid(0) {
                f((step::USERNS_IDS, 1, e));
            }
            if let Err(e) = sys::setresuid(0) {
                f((step::USERNS_IDS, 2, e));
            }
        }
        if let Err(e) = sys::setsid() {
            f((step::SETSID, 0, e));
        }
        for (i, fd) in self.stdio.iter().enumerate() {
            if let Err(e) = sys::dup_to(*fd, i as c_int) {
                f((step::STDIO, i, e));
            }
        }
        if let Err(e) = sys::close_fds_except(&self.keep) {
            f((step::CLOSE_FDS, 0, e));
        }
        sys::umask(0);
        for (i, fd) in self.cgroup_fds.iter().enumerate() {
            if let Err(e) = sys::write_all(*fd, b"0") {
                f((step::CGROUP_JOIN, i, e));
            }
            sys::close(*fd);
        }
        for (i, (fd, t)) in self.joins.iter().enumerate() {
            if let Err(e) = sys::setns(*fd, *t) {
                f((step::SETNS, i, e));
            }
            sys::close(*fd);
        }
        // After joining the cgroup, so the namespace's root is the container's cgroup.
        if self.unshare_cgroup
            && let Err(e) = sys::unshare(libc::CLONE_NEWCGROUP)
        {
            f((step::UNSHARE_CGROUP, 0, e));
        }
        if self.new_net
            && let Err(e) = loopback_up()
        {
            f((step::LOOPBACK, 0, e));
        }
        // In a user namespace the intermediate set it (inherited): /proc/self is not ours.
        if !self.userns
            && let Err(x) = self.oom_score_adj()
        {
            f(x);
        }
        if let Err(x) = self.rootfs() {
            f(x);
        }
        if let Some(h) = &self.hostname
            && let Err(e) = sys::sethostname(h)
        {
            f((step::HOSTNAME, 0, e));
        }
        if let Some(d) = &self.domainname
            && let Err(e) = sys::setdomainname(d)
        {
            f((step::DOMAINNAME, 0, e));
        }
        self.process.finish(sock, true)
    }

    fn oom_score_adj(&self) -> Result<(), Failure> {
        let Some(v) = &self.oom_adj else {
            return Ok(());
        };
        let fd = sys::openat(
            libc::AT_FDCWD,
            c"/proc/self/oom_score_adj",
            libc::O_WRONLY,
            0,
        )
        .map_err(at(step::OOM_SCORE_ADJ, 0))?;
        let r = sys::write_all(fd, v);
        sys::close(fd);
        // Lowering it needs CAP_SYS_RESOURCE; keep the inherited value then.
        match r {
            Err(e) if e != libc::EACCES && e != libc::EPERM => Err((step::OOM_SCORE_ADJ, 0, e)),
            _ => Ok(()),
        }
    }

    /// The user namespace case: join the cgroup and the namespaces as the host's root, then
    /// clone the init (CLONE_PARENT: it is the caller's child) into its new namespaces.
    fn intermediate(&self, flags: c_int) -> ! {
        let sock = self.sock;
        if let Err((s, i, e)) = self.oom_score_adj() {
            fail(sock, s, i, e);
        }
        for (i, fd) in self.pre_cgroup_fds.iter().enumerate() {
            if let Err(e) = sys::write_all(*fd, b"0") {
                fail(sock, step::CGROUP_JOIN, i, e);
            }
        }
        for (i, (fd, t)) in self.pre_joins.iter().enumerate() {
            if let Err(e) = sys::setns(*fd, *t) {
                fail(sock, step::SETNS, i, e);
            }
        }
        // /proc/sys/net is the opener's network namespace: the one just joined.
        for (i, path) in &self.pre_sysctls {
            let r = sys::openat(libc::AT_FDCWD, path, libc::O_WRONLY, 0).and_then(|fd| {
                let r = sys::write_all(fd, &self.sysctls[*i].1);
                sys::close(fd);
                r
            });
            if let Err(e) = r {
                fail(sock, step::SYSCTL, *i, e);
            }
        }
        if let Some(fd) = self.pre_user
            && let Err(e) = sys::setns(fd, libc::CLONE_NEWUSER)
        {
            fail(sock, step::SETNS, self.pre_joins.len(), e);
        }
        match sys::clone(flags | libc::CLONE_PARENT) {
            Ok(0) => self.run(),
            Ok(pid) => {
                let _ = sys::send_record(
                    sock,
                    Record {
                        kind: REC_PID,
                        index: pid as u32,
                        ..Default::default()
                    },
                    None,
                );
                sys::exit(0)
            }
            Err(e) => fail(sock, step::CLONE, 0, e),
        }
    }

    fn describe(&self, rec: &Record) -> String {
        let (s, i, errno) = (rec.step, rec.index as usize, rec.errno);
        if let Some(m) = self.process.describe(s, i, errno) {
            return m;
        }
        let err = errno_text(errno);
        let mount_dest = || {
            self.mounts
                .get(i)
                .map(|m| m.dest.display.clone())
                .unwrap_or_default()
        };
        match s {
            step::MOUNT_POINT => format!("error creating mount point {} in rootfs: {err}", mount_dest()),
            step::MOUNT | step::MOUNT_ATTR => {
                let kind = self.mounts.get(i).map(|m| m.fstype().unwrap_or(if m.is_bind() { "bind" } else { "cgroup" }).to_string());
                let src = kind.unwrap_or_default();
                let extra = if errno == libc::ENOTDIR {
                    ": Are you trying to mount a directory onto a file (or vice-versa)? Check if the specified host path exists and is the expected type"
                } else {
                    ""
                };
                format!("error mounting \"{src}\" to rootfs at \"{}\": {err}{extra}", mount_dest())
            }
            step::DEVICE => format!(
                "error creating device node {}: {err}",
                self.devices.get(i).map(|d| d.display.as_str()).unwrap_or("?")
            ),
            step::DEVICE_REFUSED => format!(
                "refusing to use {} in the rootfs: it exists and is not the expected device or a regular file (a symlink?)",
                self.devices.get(i).map(|d| d.display.as_str()).unwrap_or("?")
            ),
            step::DEV_SYMLINK => format!("error creating /dev symlinks: {err}"),
            step::CONSOLE => format!("error setting up the container's console: {err}"),
            step::CONSOLE_REFUSED => {
                "refusing to set up the console: /dev/console or /dev/pts/ptmx in the rootfs is not what it should be (a symlink?)".into()
            }
            step::SYSCTL => format!(
                "error writing sysctl {}: {err}",
                self.sysctl_names.get(i).map(String::as_str).unwrap_or("?")
            ),
            step::READONLY_PATH => format!(
                "error making {} read-only: {err}",
                self.readonly.get(i).map(|p| p.display.as_str()).unwrap_or("?")
            ),
            step::MASKED_PATH => format!(
                "error masking {}: {err}",
                self.masked.get(i).map(|p| p.display.as_str()).unwrap_or("/dev/null (the host's is not the null device)")
            ),
            step::ROOT_PROPAGATION => format!("error setting mount propagation of /: {err}"),
            step::ROOT_BIND | step::ROOT_OPEN => {
                format!("error preparing rootfs {}: {err}", self.rootfs.to_string_lossy())
            }
            step::ROOT_READONLY => format!("error making the rootfs read-only: {err}"),
            step::PIVOT_ROOT => format!("pivot_root: {err}"),
            step::HOSTNAME => format!("sethostname: {err}"),
            step::DOMAINNAME => format!("setdomainname: {err}"),
            step::OOM_SCORE_ADJ => format!("error setting oom_score_adj: {err}"),
            step::SETSID => format!("setsid: {err}"),
            step::STDIO => format!("error setting up stdio: {err}"),
            step::CLOSE_FDS => format!("error closing inherited file descriptors: {err}"),
            step::CGROUP_JOIN => format!("error joining the container's cgroup: {err}"),
            step::SETNS => format!("error joining namespace: {err}"),
            step::UNSHARE_CGROUP => format!("error creating the cgroup namespace: {err}"),
            step::LOOPBACK => format!("error bringing up the loopback interface: {err}"),
            step::CLONE => format!("clone: {err}"),
            step::USERNS_IDS => format!(
                "error becoming root of the user namespace ({}): {err}",
                ["setgroups", "setresgid 0", "setresuid 0"].get(i).unwrap_or(&"?")
            ),
            _ => format!("container setup failed (step {s}): {err}"),
        }
    }
}

fn readonly_path(root: c_int, p: &InRoot) -> sys::Res<()> {
    let fd = match p.open(root, 0) {
        Ok(fd) => fd,
        Err(libc::ENOENT) | Err(libc::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut b = [0u8; 32];
    let t = sys::proc_fd_path(fd, &mut b);
    let r = sys::mount(Some(t), t, None, libc::MS_BIND | libc::MS_REC, None);
    sys::close(fd);
    r?;
    let fd = p.open(root, 0)?;
    let r = sys::mount_setattr(fd, libc::AT_RECURSIVE, &mounts::ro_attr());
    sys::close(fd);
    r
}

/// Directories get a read-only tmpfs, files our verified /dev/null.
fn mask_path(root: c_int, p: &InRoot, null_fd: c_int) -> sys::Res<()> {
    let fd = match p.open(root, 0) {
        Ok(fd) => fd,
        Err(libc::ENOENT) | Err(libc::ENOTDIR) => return Ok(()),
        Err(e) => return Err(e),
    };
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    let t = sys::proc_fd_path(fd, &mut a);
    let r = match sys::fstat(fd) {
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
            sys::mount(Some(c"tmpfs"), t, Some(c"tmpfs"), libc::MS_RDONLY, None)
        }
        Ok(_) => sys::mount(
            Some(sys::proc_fd_path(null_fd, &mut b)),
            t,
            None,
            libc::MS_BIND,
            None,
        ),
        Err(e) => Err(e),
    };
    sys::close(fd);
    r
}

/// The host's /dev/null, checked to be the real 1:3 device, as the source for masking. It is
/// opened in the child: an fd from before CLONE_NEWNS names a mount of the old namespace,
/// which the kernel refuses to bind from.
fn open_host_null() -> sys::Res<c_int> {
    let fd = sys::openat(
        libc::AT_FDCWD,
        c"/dev/null",
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
    )?;
    match sys::fstat(fd) {
        Ok(st)
            if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3) =>
        {
            Ok(fd)
        }
        Ok(_) => {
            sys::close(fd);
            Err(libc::ENODEV)
        }
        Err(e) => {
            sys::close(fd);
            Err(e)
        }
    }
}

fn open_wronly(p: &Path) -> Result<OwnedFd> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .map(OwnedFd::from)
        .map_err(|e| Error::io(format!("opening {}", p.display()), e))
}

/// A container init set up and waiting for [`Created::start`]. Dropping it without a
/// successful start kills the init and removes its cgroup.
pub struct Created {
    pid: i32,
    sock: OwnedFd,
    console: Option<OwnedFd>,
    cgroup: Option<Cgroup>,
    process: Box<ProcPlan>,
    done: bool,
}

/// A started container init. The caller reaps `pid` and removes `cgroup` after exit.
#[derive(Debug)]
pub struct Running {
    pub pid: i32,
    pub cgroup: Option<Cgroup>,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("pid", &self.pid)
            .field("cgroup", &self.cgroup)
            .finish()
    }
}

impl Created {
    /// The init's pid (host view).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// The pty master when `process.terminal` is set (taken once).
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    /// Lets the init `execve`. Returns once it has (the pair closes on exec), or the exec
    /// error with docker's wording and status (126/127); then the init is reaped and the
    /// cgroup removed.
    pub fn start(mut self) -> Result<Running> {
        let b = [1u8];
        // SAFETY: send on our socket.
        let r = unsafe {
            libc::send(
                self.sock.as_raw_fd(),
                b.as_ptr().cast(),
                1,
                libc::MSG_NOSIGNAL,
            )
        };
        if r != 1 {
            return Err(Error::io(
                "starting the container",
                std::io::Error::last_os_error(),
            ));
        }
        match sys::recv_record(self.sock.as_raw_fd()) {
            Ok(None) => {
                self.done = true;
                Ok(Running {
                    pid: self.pid,
                    cgroup: self.cgroup.take(),
                })
            }
            Ok(Some((rec, fd))) => {
                if let Some(fd) = fd {
                    sys::close(fd);
                }
                let msg = if rec.kind == REC_ERROR {
                    self.process
                        .describe(rec.step, rec.index as usize, rec.errno)
                        .unwrap_or_else(|| {
                            format!(
                                "container start failed (step {}): {}",
                                rec.step,
                                errno_text(rec.errno)
                            )
                        })
                } else {
                    "unexpected message from the container init".into()
                };
                Err(child_error(msg))
            }
            Err(e) => Err(Error::errno("waiting for the container to start", e)),
        }
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        if !self.done {
            process::kill_and_reap(self.pid);
            if let Some(cg) = &self.cgroup {
                let _ = cg.remove();
            }
        }
    }
}

/// Removes a freshly made cgroup unless disarmed.
struct CgroupGuard(Option<Cgroup>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = &self.0 {
            let _ = cg.remove();
        }
    }
}

/// Creates the container described by `spec` (rootfs already mounted at `root.path`) with
/// the given stdio (ignored for a terminal process: the pty is made inside the container and
/// its master is [`Created::take_console`]).
pub fn create(spec: &Spec, stdio: Stdio) -> Result<Created> {
    let rootfs = Path::new(&spec.root.path);
    if !rootfs.is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "root.path {:?} must be absolute",
            spec.root.path
        )));
    }
    if !rootfs.is_dir() {
        return Err(Error::InvalidSpec(format!(
            "rootfs {} does not exist or is not a directory",
            spec.root.path
        )));
    }
    let ns = Namespaces::new(&spec.linux.namespaces)?;
    let maps = id_maps(spec, ns.new_user)?;
    let userns = ns.new_user || ns.join_user.is_some();
    if (!spec.hostname.is_empty() || !spec.domainname.is_empty()) && !ns.has_uts {
        return Err(Error::InvalidSpec(
            "unable to set hostname without a private UTS namespace".into(),
        ));
    }
    let process = ProcPlan::new(&spec.process, true)?.with_seccomp(
        spec.linux.seccomp.as_ref(),
        &crate::exec::bounding_caps(&spec.process),
    )?;

    let mut guard = CgroupGuard(match &spec.linux.cgroups_path {
        Some(p) => Some(Cgroup::create(p, spec.linux.resources.as_ref())?),
        None => None,
    });
    if let Some(cg) = &guard.0 {
        cg.allow_devices(&spec.linux.devices)?;
    }
    let ctx = CgroupCtx {
        own_ns: ns.new_cgroup,
        cgroup: guard.0.as_ref(),
    };
    let mut mounts: Vec<MountOp> = spec
        .mounts
        .iter()
        .map(|m| MountOp::new(m, &ctx))
        .collect::<Result<_>>()?;
    if userns {
        for m in &mut mounts {
            m.in_userns = true;
        }
    }
    let dest_is = |m: &crate::spec::Mount, d: &str| paths::clean(&m.destination) == d;
    let setup_dev = !spec.mounts.iter().any(|m| {
        dest_is(m, "/dev")
            && (m.kind == "bind" || m.options.iter().any(|o| o == "bind" || o == "rbind"))
    });
    let ptmx_link = spec
        .mounts
        .iter()
        .any(|m| dest_is(m, "/dev/pts") && m.kind == "devpts");

    let mut devices = mounts::default_devices()?;
    for d in &spec.linux.devices {
        let op = DevOp::new(
            &d.path,
            &d.kind,
            d.major,
            d.minor,
            d.file_mode,
            d.uid.unwrap_or(0),
            d.gid.unwrap_or(0),
        )?;
        devices.retain(|x| x.display != op.display);
        devices.push(op);
    }
    let mut dev_links = vec![
        (c"/proc/self/fd".to_owned(), c"fd".to_owned()),
        (c"/proc/self/fd/0".to_owned(), c"stdin".to_owned()),
        (c"/proc/self/fd/1".to_owned(), c"stdout".to_owned()),
        (c"/proc/self/fd/2".to_owned(), c"stderr".to_owned()),
    ];
    if Path::new("/proc/kcore").exists() {
        dev_links.push((c"/proc/kcore".to_owned(), c"core".to_owned()));
    }

    let mut sysctls = Vec::new();
    let mut sysctl_names = Vec::new();
    for (k, v) in &spec.linux.sysctl {
        if k.is_empty() || k.split(['.', '/']).any(|c| c.is_empty() || c == "..") {
            return Err(Error::InvalidSpec(format!("invalid sysctl key {k:?}")));
        }
        sysctls.push((
            InRoot::new(&format!("/proc/sys/{}", k.replace('.', "/")))?,
            v.clone().into_bytes(),
        ));
        sysctl_names.push(k.clone());
    }
    let readonly = spec
        .linux
        .readonly_paths
        .iter()
        .map(|p| InRoot::new(p))
        .collect::<Result<Vec<_>>>()?;
    let masked = spec
        .linux
        .masked_paths
        .iter()
        .map(|p| InRoot::new(p))
        .collect::<Result<Vec<_>>>()?;

    let prop = spec.linux.rootfs_propagation.as_deref().unwrap_or("");
    let root_shared = prop.ends_with("shared");
    // pivot_root refuses a shared parent: share the new root only after the pivot.
    let root_prop = if root_shared {
        libc::MS_SLAVE | libc::MS_REC
    } else {
        mounts::propagation_flags(prop)?
    };

    let name = |s: &str, what: &str| -> Result<Option<Vec<u8>>> {
        if s.is_empty() {
            return Ok(None);
        }
        if s.len() > 64 {
            return Err(Error::InvalidSpec(format!(
                "{what} {s:?} is longer than 64 bytes"
            )));
        }
        Ok(Some(s.as_bytes().to_vec()))
    };
    let hostname = name(&spec.hostname, "hostname")?;
    let domainname = name(&spec.domainname, "domainname")?;

    let stdio = stdio.into_fds()?;
    let cgroup_files: Vec<OwnedFd> = match &guard.0 {
        // The child that writes these is single-threaded (fresh from clone).
        Some(cg) => cg
            .self_join_files()
            .iter()
            .map(|p| open_wronly(p))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    let (parent_sock, child_sock) = process::socketpair()?;

    let mut keep: Vec<c_int> = vec![child_sock.as_raw_fd()];
    keep.extend(stdio.iter().map(|f| f.as_raw_fd()));
    let mut cgroup_fds: Vec<c_int> = cgroup_files.iter().map(|f| f.as_raw_fd()).collect();
    let mut joins: Vec<(c_int, c_int)> =
        ns.joins.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect();
    let (mut pre_cgroup_fds, mut pre_joins) = (Vec::new(), Vec::new());
    let (mut pre_user, mut pre_sysctls) = (None, Vec::new());
    if userns {
        // The intermediate uses these; the init never holds them (closed with the rest).
        pre_cgroup_fds = std::mem::take(&mut cgroup_fds);
        pre_joins = std::mem::take(&mut joins);
        if let Some(p) = &ns.join_pid {
            pre_joins.push((p.as_raw_fd(), libc::CLONE_NEWPID));
        }
        pre_user = ns.join_user.as_ref().map(|u| u.as_raw_fd());
        if pre_joins.iter().any(|(_, t)| *t == libc::CLONE_NEWNET) {
            for (i, k) in sysctl_names.iter().enumerate() {
                if k.starts_with("net.") {
                    let p = format!("/proc/sys/{}", k.replace('.', "/"));
                    pre_sysctls.push((i, cstring(&p, "sysctl")?));
                }
            }
        }
    } else {
        keep.extend(cgroup_fds.iter().copied());
        keep.extend(joins.iter().map(|(f, _)| *f));
    }
    keep.sort_unstable();

    let plan = InitPlan {
        sock: child_sock.as_raw_fd(),
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        keep,
        cgroup_fds,
        joins,
        unshare_cgroup: ns.new_cgroup,
        new_net: ns.clone_flags & libc::CLONE_NEWNET != 0,
        oom_adj: spec
            .process
            .oom_score_adj
            .map(|v| v.to_string().into_bytes()),
        root_prop,
        root_shared,
        rootfs: cstring(&spec.root.path, "root.path")?,
        mounts,
        setup_dev,
        devices,
        dev_dir: InRoot::new("/dev")?,
        dev_links,
        ptmx_link,
        console: InRoot::new("/dev/console")?,
        sysctls,
        sysctl_names,
        readonly,
        masked,
        root_readonly: spec.root.readonly,
        hostname,
        domainname,
        process,
        userns,
        wait_map: userns,
        pre_cgroup_fds,
        pre_joins,
        pre_user,
        pre_sysctls,
    };

    let flags = ns.clone_flags;
    let pid = match &ns.join_pid {
        _ if userns => spawn_userns(&plan, flags, &parent_sock, maps.as_ref())?,
        None => match sys::clone(flags) {
            Ok(0) => child_main(plan.sock, || plan.run()),
            Ok(pid) => pid,
            Err(e) => return Err(Error::errno("clone", e)),
        },
        Some(pidns) => spawn_in_pid_ns(pidns.as_raw_fd(), flags, &plan, &parent_sock)?,
    };
    drop(child_sock);
    drop(stdio);
    drop(cgroup_files);
    drop(ns);

    let sock = parent_sock.as_raw_fd();
    let mut console = None;
    loop {
        if !process::wait_readable(sock, SETUP_TIMEOUT_MS) {
            process::kill_and_reap(pid);
            return Err(Error::io(
                "creating the container",
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        match sys::recv_record(sock) {
            Ok(Some((rec, fd))) => {
                // SAFETY: the fd came to us with SCM_RIGHTS.
                let fd = fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
                match rec.kind {
                    REC_CONSOLE => console = fd,
                    REC_READY => {
                        return Ok(Created {
                            pid,
                            sock: parent_sock,
                            console,
                            cgroup: guard.0.take(),
                            process: Box::new(plan.process),
                            done: false,
                        });
                    }
                    _ => {
                        let msg = if rec.kind == REC_ERROR {
                            plan.describe(&rec)
                        } else {
                            "unexpected message from the container init".into()
                        };
                        process::kill_and_reap(pid);
                        return Err(child_error(msg));
                    }
                }
            }
            Ok(None) => {
                let st = process::reap(pid).unwrap_or(0);
                return Err(Error::Process {
                    message: format!("container init exited during setup (wait status {st:#x})"),
                    exit_code: None,
                });
            }
            Err(e) => {
                process::kill_and_reap(pid);
                return Err(Error::errno("reading from the container init", e));
            }
        }
    }
}

/// `linux.uidMappings`/`gidMappings` as the text of /proc/<pid>/{uid,gid}_map; required with
/// a new user namespace and refused without one.
fn id_maps(spec: &Spec, new_user: bool) -> Result<Option<(String, String)>> {
    let (u, g) = (&spec.linux.uid_mappings, &spec.linux.gid_mappings);
    if !new_user {
        if !u.is_empty() || !g.is_empty() {
            return Err(Error::InvalidSpec(
                "uidMappings/gidMappings need a new user namespace".into(),
            ));
        }
        return Ok(None);
    }
    if u.is_empty() || g.is_empty() {
        return Err(Error::InvalidSpec(
            "a new user namespace needs uidMappings and gidMappings".into(),
        ));
    }
    let text = |m: &[crate::spec::IdMapping], what: &str| -> Result<String> {
        if m.len() > 340 {
            return Err(Error::InvalidSpec(format!("too many {what}")));
        }
        let mut s = String::new();
        for e in m {
            if e.size == 0
                || e.container_id.checked_add(e.size).is_none()
                || e.host_id.checked_add(e.size).is_none()
            {
                return Err(Error::InvalidSpec(format!(
                    "invalid {what} entry {} {} {}",
                    e.container_id, e.host_id, e.size
                )));
            }
            s.push_str(&format!("{} {} {}\n", e.container_id, e.host_id, e.size));
        }
        Ok(s)
    };
    Ok(Some((text(u, "uidMappings")?, text(g, "gidMappings")?)))
}

/// Writes the id maps of a new user namespace (one write each, as the kernel wants).
fn write_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<()> {
    use std::io::Write;
    for (file, text) in [("gid_map", gid_map), ("uid_map", uid_map)] {
        let p = format!("/proc/{pid}/{file}");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(format!("opening {p}"), e))?;
        let n = f
            .write(text.as_bytes())
            .map_err(|e| Error::io(format!("writing {p} ({})", text.trim_end()), e))?;
        if n != text.len() {
            return Err(Error::io(
                format!("writing {p}"),
                std::io::Error::from(std::io::ErrorKind::WriteZero),
            ));
        }
    }
    Ok(())
}

/// With a user namespace: an intermediate joins what is to be joined as the host's root and
/// clones the init; the parent then maps a new user namespace and lets the init go on.
fn spawn_userns(
    plan: &InitPlan,
    flags: c_int,
    parent_sock: &OwnedFd,
    maps: Option<&(String, String)>,
) -> Result<i32> {
    let mid = match sys::clone(0) {
        Ok(0) => child_main(plan.sock, || plan.intermediate(flags)),
        Ok(mid) => mid,
        Err(e) => return Err(Error::errno("clone", e)),
    };
    let sock = parent_sock.as_raw_fd();
    let r = if process::wait_readable(sock, SETUP_TIMEOUT_MS) {
        sys::recv_record(sock)
    } else {
        Err(libc::ETIMEDOUT)
    };
    process::reap(mid);
    let pid = match r {
        Ok(Some((rec, _))) if rec.kind == REC_PID => rec.index as i32,
        Ok(Some((rec, _))) if rec.kind == REC_ERROR => {
            return Err(child_error(plan.describe(&rec)));
        }
        Ok(_) => {
            return Err(Error::Process {
                message: "creating the container's user namespace failed".into(),
                exit_code: None,
            });
        }
        Err(e) => return Err(Error::errno("creating the container's user namespace", e)),
    };
    if let Some((u, g)) = maps
        && let Err(e) = write_maps(pid, u, g)
    {
        process::kill_and_reap(pid);
        return Err(e);
    }
    let b = [1u8];
    // SAFETY: send on our socket.
    let r = unsafe { libc::send(sock, b.as_ptr().cast(), 1, libc::MSG_NOSIGNAL) };
    if r != 1 {
        let e = std::io::Error::last_os_error();
        process::kill_and_reap(pid);
        return Err(Error::io("releasing the container init", e));
    }
    Ok(pid)
}

/// `--pid container:X`: an intermediate joins the PID namespace, and its child (made with
/// CLONE_PARENT, so it is ours) becomes the init.
fn spawn_in_pid_ns(
    pidns: c_int,
    flags: c_int,
    plan: &InitPlan,
    parent_sock: &OwnedFd,
) -> Result<i32> {
    match sys::clone(0) {
        Ok(0) => child_main(plan.sock, || {
            if let Err(e) = sys::setns(pidns, libc::CLONE_NEWPID) {
                fail(plan.sock, step::SETNS, usize::MAX, e);
            }
            match sys::clone(flags | libc::CLONE_PARENT) {
                Ok(0) => plan.run(),
                Ok(pid) => {
                    let _ = sys::send_record(
                        plan.sock,
                        Record {
                            kind: REC_PID,
                            index: pid as u32,
                            ..Default::default()
                        },
                        None,
                    );
                    sys::exit(0)
                }
                Err(e) => fail(plan.sock, step::CLONE, 0, e),
            }
        }),
        Ok(mid) => {
            let sock = parent_sock.as_raw_fd();
            let r = if process::wait_readable(sock, SETUP_TIMEOUT_MS) {
                sys::recv_record(sock)
            } else {
                Err(libc::ETIMEDOUT)
            };
            process::reap(mid);
            match r {
                Ok(Some((rec, _))) if rec.kind == REC_PID => Ok(rec.index as i32),
                Ok(Some((rec, _))) if rec.kind == REC_ERROR => {
                    Err(child_error(plan.describe(&rec)))
                }
                Ok(_) => Err(Error::Process {
                    message: "joining the pid namespace failed".into(),
                    exit_code: None,
                }),
                Err(e) => Err(Error::errno("joining the pid namespace", e)),
            }
        }
        Err(e) => Err(Error::errno("clone", e)),
    }
}
