//! `exec`: a new process inside a running container (`docker exec`).
//!
//! An intermediate child joins the init's cgroup and namespaces; setns to a PID namespace
//! only affects children, so it then clones (CLONE_PARENT: the new process is the caller's
//! child) the process that finishes setup and execs. Errors come back like `create`'s.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use libc::c_int;

use crate::cgroup;
use crate::error::{Error, Result, errno_text};
use crate::init::{adopt_pty, open_pty};
use crate::process::{self, ProcPlan, Stdio, child_error, child_main, fail, step};
use crate::spec::{Process, Spec};
use crate::sys::{self, REC_CONSOLE, REC_ERROR, REC_PID, Record};

const TIMEOUT_MS: i32 = 60_000;

/// A process started by [`exec`]; the caller reaps `pid`.
#[derive(Debug)]
pub struct ExecProcess {
    pub pid: i32,
    /// The pty master when `process.terminal` is set.
    pub console: Option<OwnedFd>,
}

struct ExecPlan {
    sock: c_int,
    stdio: [c_int; 3],
    keep: Vec<c_int>,
    cgroup_fds: Vec<c_int>,
    joins: Vec<(c_int, c_int)>,
    process: ProcPlan,
}

impl ExecPlan {
    fn intermediate(&self) -> ! {
        let sock = self.sock;
        sys::reset_signals();
        // Nothing in the container may open /proc/<pid>/{exe,fd,mem} of ours before exec.
        let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        for (i, fd) in self.stdio.iter().enumerate() {
            if let Err(e) = sys::dup_to(*fd, i as c_int) {
                fail(sock, step::STDIO, i, e);
            }
        }
        if let Err(e) = sys::close_fds_except(&self.keep) {
            fail(sock, step::CLOSE_FDS, 0, e);
        }
        for (i, fd) in self.cgroup_fds.iter().enumerate() {
            if let Err(e) = sys::write_all(*fd, b"0") {
                fail(sock, step::CGROUP_JOIN, i, e);
            }
            sys::close(*fd);
        }
        for (i, (fd, t)) in self.joins.iter().enumerate() {
            if let Err(e) = sys::setns(*fd, *t) {
                fail(sock, step::SETNS, i, e);
            }
            sys::close(*fd);
        }
        match sys::clone(libc::CLONE_PARENT) {
            Ok(0) => self.child(),
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

    fn child(&self) -> ! {
        let sock = self.sock;
        if let Err(e) = sys::setsid() {
            fail(sock, step::SETSID, 0, e);
        }
        if self.process.terminal {
            // The mount namespace is the container's now: its own devpts.
            let ptmx = match sys::openat(
                libc::AT_FDCWD,
                c"/dev/pts/ptmx",
                libc::O_RDWR | libc::O_NOCTTY | libc::O_NOFOLLOW,
                0,
            ) {
                Ok(fd) => fd,
                Err(e) => fail(sock, step::CONSOLE, 0, e),
            };
            let r = open_pty(ptmx, self.process.winsize.as_ref())
                .and_then(|(m, s)| adopt_pty(sock, m, s));
            if let Err((s, e)) = r {
                fail(sock, s, 0, e);
            }
        }
        self.process.finish(sock, false)
    }
}

/// Same namespace as ours? Then there is nothing to join (and joining our own user or
/// mount namespace would fail).
fn same_ns(pid: i32, name: &str) -> Result<bool> {
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{name}")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Process {
                message: format!("container init {pid} is not running"),
                exit_code: None,
            }
        } else {
            Error::io(format!("stat /proc/{pid}/ns/{name}"), e)
        }
    })?;
    let mine = std::fs::metadata(format!("/proc/self/ns/{name}"))
        .map_err(|e| Error::io(format!("stat /proc/self/ns/{name}"), e))?;
    Ok(theirs.dev() == mine.dev() && theirs.ino() == mine.ino())
}

/// Starts `process` inside the container whose init is `init_pid`, and returns once it has
/// exec'd (or with docker's exec error: 126/127).
pub fn exec(spec: &Spec, init_pid: i32, process: &Process, stdio: Stdio) -> Result<ExecProcess> {
    let plan_process = ProcPlan::new(process, false)?
        .with_seccomp(spec.linux.seccomp.as_ref(), &bounding_caps(process))?;
    let mut ns_fds: Vec<(OwnedFd, c_int)> = Vec::new();
    // cgroup is joined before the mount namespace, and setns(mnt) comes last.
    for (name, t) in [
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("net", libc::CLONE_NEWNET),
        ("pid", libc::CLONE_NEWPID),
        ("cgroup", libc::CLONE_NEWCGROUP),
        ("mnt", libc::CLONE_NEWNS),
        // Last: until here the host's root may join anything; after it, the process's ids
        // are the container's (setresuid below maps into the namespace).
        ("user", libc::CLONE_NEWUSER),
    ] {
        if same_ns(init_pid, name)? {
            continue;
        }
        let p = format!("/proc/{init_pid}/ns/{name}");
        let f = std::fs::File::open(&p).map_err(|e| Error::io(format!("opening {p}"), e))?;
        ns_fds.push((OwnedFd::from(f), t));
    }
    let cgroup_files: Vec<OwnedFd> = cgroup::self_join_files_of(init_pid)?
        .iter()
        .filter_map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .ok()
                .map(OwnedFd::from)
        })
        .collect();
    let stdio = stdio.into_fds()?;
    let (parent_sock, child_sock) = process::socketpair()?;
    let mut keep: Vec<c_int> = vec![child_sock.as_raw_fd()];
    keep.extend(stdio.iter().map(|f| f.as_raw_fd()));
    keep.extend(cgroup_files.iter().map(|f| f.as_raw_fd()));
    keep.extend(ns_fds.iter().map(|(f, _)| f.as_raw_fd()));
    keep.sort_unstable();
    let plan = ExecPlan {
        sock: child_sock.as_raw_fd(),
        stdio: [
            stdio[0].as_raw_fd(),
            stdio[1].as_raw_fd(),
            stdio[2].as_raw_fd(),
        ],
        keep,
        cgroup_fds: cgroup_files.iter().map(|f| f.as_raw_fd()).collect(),
        joins: ns_fds.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect(),
        process: plan_process,
    };
    let mid = match sys::clone(0) {
        Ok(0) => child_main(plan.sock, || plan.intermediate()),
        Ok(pid) => pid,
        Err(e) => return Err(Error::errno("clone", e)),
    };
    drop(child_sock);
    drop(stdio);
    drop(cgroup_files);
    drop(ns_fds);

    let sock = parent_sock.as_raw_fd();
    let mut mid = Some(mid);
    let mut pid: Option<i32> = None;
    let mut console = None;
    let describe = |rec: &Record| {
        plan.process
            .describe(rec.step, rec.index as usize, rec.errno)
            .unwrap_or_else(|| {
                let what = match rec.step {
                    step::CGROUP_JOIN => "joining the container's cgroup",
                    step::SETNS => "joining the container's namespaces",
                    step::CONSOLE | step::CONSOLE_REFUSED => "setting up the terminal",
                    step::SETSID => "setsid",
                    step::CLONE => "clone",
                    _ => "exec setup",
                };
                format!("{what}: {}", errno_text(rec.errno))
            })
    };
    let result = loop {
        if !process::wait_readable(sock, TIMEOUT_MS) {
            break Err(Error::io(
                "exec",
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        match sys::recv_record(sock) {
            Ok(Some((rec, fd))) => {
                // SAFETY: the fd came to us with SCM_RIGHTS.
                let fd = fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
                match rec.kind {
                    REC_PID => {
                        pid = Some(rec.index as i32);
                        if let Some(m) = mid.take() {
                            process::reap(m);
                        }
                    }
                    REC_CONSOLE => console = fd,
                    REC_ERROR => break Err(child_error(describe(&rec))),
                    _ => {
                        break Err(child_error(
                            "unexpected message from the exec process".into(),
                        ));
                    }
                }
            }
            Ok(None) if pid.is_some() => break Ok(()),
            Ok(None) => break Err(child_error("the exec setup process exited early".into())),
            Err(e) => break Err(Error::errno("reading from the exec process", e)),
        }
    };
    match result {
        Ok(()) => {
            if let Some(m) = mid.take() {
                process::reap(m);
            }
            Ok(ExecProcess {
                pid: pid.unwrap_or(0),
                console,
            })
        }
        Err(e) => {
            if let Some(m) = mid.take() {
                process::kill_and_reap(m);
            }
            if let Some(p) = pid {
                process::kill_and_reap(p);
            }
            Err(e)
        }
    }
}

/// The capabilities a process may hold, which decide the capability-gated seccomp rules.
pub(crate) fn bounding_caps(p: &Process) -> Vec<String> {
    p.capabilities
        .as_ref()
        .map(|c| c.bounding.clone())
        .unwrap_or_default()
}
