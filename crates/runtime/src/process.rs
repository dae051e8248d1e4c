//! The process part shared by the container init and `exec`: argv/env, PATH lookup, user,
//! capabilities, rlimits, cwd — prepared in the parent, applied in the child without
//! allocating, ending in `execve`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

use libc::{c_char, c_int};

use crate::caps::CapSets;
use crate::error::{Error, Result, docker_start_code, errno_text};
use crate::paths::{self, Abs, cstring};
use crate::spec::Process;
use crate::sys::{self, REC_ERROR, REC_READY, Record};

/// docker's PATH when the image sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the child was doing when it failed; sent to the parent with the errno.
pub(crate) mod step {
    pub const STDIO: u32 = 1;
    pub const SETSID: u32 = 2;
    pub const CLOSE_FDS: u32 = 3;
    pub const CGROUP_JOIN: u32 = 4;
    pub const SETNS: u32 = 5;
    pub const UNSHARE_CGROUP: u32 = 6;
    pub const LOOPBACK: u32 = 7;
    pub const ROOT_PROPAGATION: u32 = 8;
    pub const ROOT_BIND: u32 = 9;
    pub const ROOT_OPEN: u32 = 10;
    pub const MOUNT_POINT: u32 = 11;
    pub const MOUNT: u32 = 12;
    pub const MOUNT_ATTR: u32 = 13;
    pub const DEVICE: u32 = 14;
    pub const DEVICE_REFUSED: u32 = 15;
    pub const DEV_SYMLINK: u32 = 16;
    pub const CONSOLE: u32 = 17;
    pub const CONSOLE_REFUSED: u32 = 18;
    pub const SYSCTL: u32 = 19;
    pub const READONLY_PATH: u32 = 20;
    pub const MASKED_PATH: u32 = 21;
    pub const ROOT_READONLY: u32 = 22;
    pub const PIVOT_ROOT: u32 = 23;
    pub const HOSTNAME: u32 = 24;
    pub const DOMAINNAME: u32 = 25;
    pub const OOM_SCORE_ADJ: u32 = 26;
    pub const RLIMIT: u32 = 27;
    pub const NO_NEW_PRIVS: u32 = 28;
    pub const CAP_BOUNDING: u32 = 29;
    pub const SETGROUPS: u32 = 30;
    pub const SETGID: u32 = 31;
    pub const SETUID: u32 = 32;
    pub const CAPSET: u32 = 33;
    pub const AMBIENT: u32 = 34;
    pub const CWD: u32 = 35;
    pub const CWD_ESCAPE: u32 = 36;
    pub const CLONE: u32 = 37;
    pub const EXEC_NOT_FOUND: u32 = 38;
    pub const EXEC_STAT: u32 = 39;
    pub const EXEC_CHECK: u32 = 40;
    pub const EXECVE: u32 = 41;
    pub const PANIC: u32 = 42;
    pub const KEEPCAPS: u32 = 43;
    pub const SECCOMP: u32 = 44;
    pub const USERNS_IDS: u32 = 45;
}

/// Reports a failure to the parent and ends the child.
pub(crate) fn fail(sock: c_int, step: u32, index: usize, errno: i32) -> ! {
    let _ = sys::send_record(
        sock,
        Record {
            kind: REC_ERROR,
            step,
            index: index as u32,
            errno,
        },
        None,
    );
    sys::exit(if errno == libc::ENOENT { 127 } else { 126 })
}

/// Runs `f` in a freshly cloned child: a panic must never unwind into the parent's frames
/// (which this child shares a copy of), so it ends the child instead.
pub(crate) fn child_main(sock: c_int, f: impl FnOnce() -> std::convert::Infallible) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let _ = r;
    fail(sock, step::PANIC, 0, libc::EINVAL)
}

/// The process's stdin/stdout/stderr when it has no terminal; `None` is /dev/null.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl Stdio {
    /// The three fds for the child, each ≥ 3 so `dup2` onto 0..2 cannot clobber another.
    pub(crate) fn into_fds(self) -> Result<[OwnedFd; 3]> {
        let one = |fd: Option<OwnedFd>| -> Result<OwnedFd> {
            let raw = match &fd {
                Some(f) => f.as_raw_fd(),
                None => {
                    let n = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open("/dev/null")
                        .map_err(|e| Error::io("opening /dev/null", e))?;
                    return dup_high(n.as_raw_fd());
                }
            };
            dup_high(raw)
        };
        Ok([one(self.stdin)?, one(self.stdout)?, one(self.stderr)?])
    }
}

pub(crate) fn dup_high(fd: c_int) -> Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd we own.
    let r = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if r < 0 {
        return Err(Error::io("dup", std::io::Error::last_os_error()));
    }
    // SAFETY: r is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// Names of the rlimits the spec may use.
fn rlimit_resource(name: &str) -> Option<c_int> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    } as c_int)
}

/// Clamps a requested limit to what this process may set: never above the current hard limit
/// (no CAP_SYS_RESOURCE), soft never above hard.
pub(crate) fn clamp_rlimit(resource: c_int, soft: u64, hard: u64) -> libc::rlimit {
    // SAFETY: zeroed rlimit is a valid out-buffer.
    let mut cur: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit writes into `cur`.
    unsafe { libc::getrlimit(resource as _, &mut cur) };
    let hard = hard.min(cur.rlim_max);
    libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    }
}

/// Everything the child needs to finish a process and exec it.
pub(crate) struct ProcPlan {
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    arg0: String,
    arg0_slash: bool,
    candidates: Vec<CString>,
    cwd: Abs,
    cwd_display: String,
    create_cwd: bool,
    uid: u32,
    gid: u32,
    groups: Vec<libc::gid_t>,
    umask: u32,
    caps: Option<CapSets>,
    rlimits: Vec<(c_int, libc::rlimit)>,
    rlimit_names: Vec<String>,
    no_new_privs: bool,
    /// The compiled seccomp program (docker's default profile unless unconfined).
    seccomp: Option<Vec<libc::sock_filter>>,
    pub terminal: bool,
    pub winsize: Option<libc::winsize>,
}

// SAFETY: the raw pointers point into the CStrings this struct owns; moving the struct moves
// nothing they point at (a CString's bytes live on the heap).
unsafe impl Send for ProcPlan {}

impl ProcPlan {
    pub fn new(p: &Process, create_cwd: bool) -> Result<ProcPlan> {
        let arg0 = p.args.first().cloned().unwrap_or_default();
        if arg0.is_empty() {
            return Err(Error::InvalidSpec("no command specified".into()));
        }
        let argv: Vec<CString> = p
            .args
            .iter()
            .map(|a| cstring(a, "argument"))
            .collect::<Result<_>>()?;
        let envp: Vec<CString> = p
            .env
            .iter()
            .map(|e| cstring(e, "environment variable"))
            .collect::<Result<_>>()?;
        let ptrs = |v: &[CString]| {
            let mut out: Vec<*const c_char> = v.iter().map(|c| c.as_ptr()).collect();
            out.push(std::ptr::null());
            out
        };
        let path = p
            .env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        let arg0_slash = arg0.contains('/');
        let candidates = if arg0_slash {
            vec![cstring(&arg0, "argument")?]
        } else {
            // Go's LookPath: relative PATH entries are not searched.
            path.split(':')
                .filter(|d| d.starts_with('/'))
                .map(|d| cstring(&paths::clean(&format!("{d}/{arg0}")), "PATH"))
                .collect::<Result<_>>()?
        };
        let cwd_display = if p.cwd.is_empty() {
            "/".to_string()
        } else {
            p.cwd.clone()
        };
        if !cwd_display.starts_with('/') {
            return Err(Error::InvalidSpec(format!(
                "cwd {cwd_display:?} is not an absolute path"
            )));
        }
        let mut rlimits = Vec::new();
        let mut rlimit_names = Vec::new();
        for r in &p.rlimits {
            let res = rlimit_resource(&r.kind)
                .ok_or_else(|| Error::InvalidSpec(format!("unknown rlimit type {:?}", r.kind)))?;
            rlimits.push((res, clamp_rlimit(res, r.soft, r.hard)));
            rlimit_names.push(r.kind.clone());
        }
        let winsize = p.console_size.map(|s| libc::winsize {
            ws_row: s.height,
            ws_col: s.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        });
        Ok(ProcPlan {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            _argv: argv,
            _envp: envp,
            arg0,
            arg0_slash,
            candidates,
            cwd: Abs::new(&cwd_display)?,
            cwd_display,
            create_cwd,
            uid: p.user.uid,
            gid: p.user.gid,
            groups: p.user.additional_gids.clone(),
            umask: p.user.umask.unwrap_or(0o022),
            caps: p.capabilities.as_ref().map(CapSets::new).transpose()?,
            rlimits,
            rlimit_names,
            no_new_privs: p.no_new_privileges,
            seccomp: None,
            terminal: p.terminal,
            winsize,
        })
    }

    /// Compiles the spec's seccomp profile for this process's capabilities.
    pub fn with_seccomp(
        mut self,
        profile: Option<&serde_json::Value>,
        caps: &[String],
    ) -> Result<ProcPlan> {
        if let Some(p) = profile {
            self.seccomp = Some(crate::seccomp::compile(p, caps)?);
        }
        Ok(self)
    }

    fn load_seccomp(&self, sock: c_int) {
        if let Some(prog) = &self.seccomp
            && let Err(e) = crate::seccomp::load(prog)
        {
            fail(sock, step::SECCOMP, 0, e);
        }
    }

    /// Child side: everything from rlimits to `execve`. With `wait_start`, reports READY and
    /// blocks until the parent writes the start byte (or exits quietly if it goes away).
    pub fn finish(&self, sock: c_int, wait_start: bool) -> ! {
        let f = |s: u32, i: usize, e: i32| -> ! { fail(sock, s, i, e) };
        for (i, (res, lim)) in self.rlimits.iter().enumerate() {
            if let Err(e) = sys::setrlimit(*res, lim) {
                f(step::RLIMIT, i, e);
            }
        }
        if self.create_cwd {
            self.cwd.mkdir_all();
        }
        // First as root; a cwd only the container user may enter is retried after setuid.
        let mut in_cwd = match sys::chdir(&self.cwd.full) {
            Ok(()) => true,
            Err(libc::EACCES) => false,
            Err(e) => f(step::CWD, 0, e),
        };
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before the drop.
        if !self.no_new_privs {
            self.load_seccomp(sock);
        }
        if let Some(c) = &self.caps
            && let Err(e) = c.drop_bounding()
        {
            f(step::CAP_BOUNDING, 0, e);
        }
        if let Err(e) = sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) {
            f(step::KEEPCAPS, 0, e);
        }
        if let Err(e) = sys::setgroups(&self.groups) {
            f(step::SETGROUPS, 0, e);
        }
        if let Err(e) = sys::setresgid(self.gid) {
            f(step::SETGID, 0, e);
        }
        if let Err(e) = sys::setresuid(self.uid) {
            f(step::SETUID, 0, e);
        }
        if let Err(e) = sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) {
            f(step::KEEPCAPS, 0, e);
        }
        if let Some(c) = &self.caps {
            if let Err(e) = c.set() {
                f(step::CAPSET, 0, e);
            }
            if let Err(e) = c.set_ambient() {
                f(step::AMBIENT, 0, e);
            }
        }
        if !in_cwd {
            if let Err(e) = sys::chdir(&self.cwd.full) {
                f(step::CWD, 0, e);
            }
            in_cwd = true;
        }
        debug_assert!(in_cwd);
        // CVE-2024-21626: the kernel prefixes an unreachable cwd with "(unreachable)".
        let mut buf = [0u8; 4096];
        match sys::getcwd(&mut buf) {
            Ok(n) if n > 0 && buf[0] == b'/' => {}
            // Also ERANGE: a cwd longer than PATH_MAX cannot be verified, so it is refused.
            _ => f(step::CWD_ESCAPE, 0, libc::EPERM),
        }
        sys::umask(self.umask);
        if self.no_new_privs
            && let Err(e) = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        {
            f(step::NO_NEW_PRIVS, 0, e);
        }
        if wait_start {
            let ready = Record {
                kind: REC_READY,
                ..Default::default()
            };
            if sys::send_record(sock, ready, None).is_err() {
                sys::exit(1);
            }
            let mut b = [0u8; 1];
            match sys::read(sock, &mut b) {
                Ok(1) => {}
                _ => sys::exit(1),
            }
        }
        if self.no_new_privs {
            self.load_seccomp(sock);
        }
        sys::unblock_signals();
        self.exec(sock)
    }

    fn exec(&self, sock: c_int) -> ! {
        let f = |s: u32, i: usize, e: i32| -> ! { fail(sock, s, i, e) };
        if self.arg0_slash {
            let p = &self.candidates[0];
            match sys::fstatat(libc::AT_FDCWD, p, 0) {
                Err(e) => f(step::EXEC_STAT, 0, e),
                Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFDIR => {
                    f(step::EXEC_CHECK, 0, libc::EISDIR)
                }
                Ok(st) => match sys::faccess_exec(p) {
                    Ok(()) => {}
                    Err(libc::ENOSYS) | Err(libc::EPERM) if st.st_mode & 0o111 != 0 => {}
                    Err(libc::ENOSYS) | Err(libc::EPERM) => f(step::EXEC_CHECK, 0, libc::EACCES),
                    Err(e) => f(step::EXEC_CHECK, 0, e),
                },
            }
            let e = sys::execve(p, self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr());
            f(step::EXECVE, 0, e)
        }
        for (i, p) in self.candidates.iter().enumerate() {
            let Ok(st) = sys::fstatat(libc::AT_FDCWD, p, 0) else {
                continue;
            };
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                continue;
            }
            let ok = match sys::faccess_exec(p) {
                Ok(()) => true,
                Err(libc::ENOSYS) | Err(libc::EPERM) => st.st_mode & 0o111 != 0,
                Err(_) => false,
            };
            if ok {
                let e = sys::execve(p, self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr());
                f(step::EXECVE, i, e)
            }
        }
        f(step::EXEC_NOT_FOUND, 0, libc::ENOENT)
    }

    /// The parent's wording for a failed process step, or None for steps it does not own.
    pub fn describe(&self, step: u32, index: usize, errno: i32) -> Option<String> {
        let err = errno_text(errno);
        let a = &self.arg0;
        Some(match step {
            step::EXEC_NOT_FOUND => format!("exec: \"{a}\": executable file not found in $PATH"),
            step::EXEC_STAT => format!("exec: \"{a}\": stat {a}: {err}"),
            step::EXEC_CHECK => format!("exec: \"{a}\": {err}"),
            step::EXECVE => {
                let p = self.candidates.get(index).map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
                format!("exec {p}: {err}")
            }
            step::CWD => format!("chdir to cwd (\"{}\") set in config.json failed: {err}", self.cwd_display),
            step::CWD_ESCAPE => {
                "current working directory is outside of container mount namespace root -- possible container breakout detected".into()
            }
            step::RLIMIT => format!(
                "error setting rlimit type {}: {err}",
                self.rlimit_names.get(index).map(String::as_str).unwrap_or("?")
            ),
            step::CAP_BOUNDING => format!("unable to drop capabilities from the bounding set: {err}"),
            step::KEEPCAPS => format!("prctl(PR_SET_KEEPCAPS): {err}"),
            step::SETGROUPS => format!("setgroups: {err}"),
            step::SETGID => format!("setresgid {}: {err}", self.gid),
            step::SETUID => format!("setresuid {}: {err}", self.uid),
            step::CAPSET => format!("unable to apply capabilities: {err}"),
            step::AMBIENT => format!("unable to raise ambient capabilities: {err}"),
            step::NO_NEW_PRIVS => format!("unable to set no_new_privileges: {err}"),
            step::SECCOMP => format!("error loading seccomp filter into kernel: {err}"),
            step::PANIC => "internal error in the container setup".into(),
            _ => return None,
        })
    }
}

/// Turns a child's error record into the error the caller sees (with docker's status).
pub(crate) fn child_error(message: String) -> Error {
    let exit_code = docker_start_code(&message);
    Error::Process { message, exit_code }
}

/// Waits for a child and returns its raw wait status.
pub(crate) fn reap(pid: i32) -> Option<c_int> {
    let mut st = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::__WALL) };
        if r == pid {
            return Some(st);
        }
        if r < 0 && sys::errno() == libc::EINTR {
            continue;
        }
        return None;
    }
}

/// Kills and reaps a child that must not live on.
pub(crate) fn kill_and_reap(pid: i32) {
    let _ = sys::kill(pid, libc::SIGKILL);
    reap(pid);
}

/// Waits up to `timeout_ms` for the socket to become readable (or hang up).
pub(crate) fn wait_readable(fd: c_int, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if r < 0 && sys::errno() == libc::EINTR {
            continue;
        }
        return r > 0;
    }
}

/// A SEQPACKET pair: (parent end, child end), both CLOEXEC.
pub(crate) fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: socketpair fills two fds.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(Error::io("socketpair", std::io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
