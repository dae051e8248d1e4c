//! `berth-shim <bundle>`: one small synchronous process per container. It creates the
//! container, reports `Ready` on fd 3, detaches from berthd, then holds the container's
//! stdio, writes its json-file log, reaps it, and serves attach/exec/signal/wait on
//! `<state_dir>/shim.sock` (see `berth_runtime::protocol`).

mod log;
mod server;
mod trim;

use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};

use berth_runtime::protocol::{Ready, ShimConfig};
use berth_runtime::spec::Spec;

const READY_FD: RawFd = 3;

/// The pipe berthd reads the `Ready` line from.
struct ReadyPipe(Option<std::fs::File>);

impl ReadyPipe {
    fn take() -> ReadyPipe {
        // SAFETY: F_GETFD only tells whether fd 3 is open.
        if unsafe { libc::fcntl(READY_FD, libc::F_GETFD) } < 0 {
            return ReadyPipe(None);
        }
        // SAFETY: fd 3 is ours by the launch protocol.
        ReadyPipe(Some(unsafe { std::fs::File::from_raw_fd(READY_FD) }))
    }

    /// Keeps fd 3 out of anything we start (the re-exec below needs it open first).
    fn cloexec(&self) {
        if self.0.is_some() {
            // SAFETY: fcntl on an open fd.
            unsafe { libc::fcntl(READY_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }

    fn send(self, r: &Ready) {
        if let Some(mut f) = self.0 {
            let mut line = serde_json::to_vec(r).unwrap_or_default();
            line.push(b'\n');
            let _ = f.write_all(&line);
        }
    }

    fn fail(self, error: String, exit_code: Option<i32>) -> ! {
        if self.0.is_none() {
            eprintln!("berth-shim: {error}");
        }
        self.send(&Ready {
            error: Some(error),
            exit_code,
            ..Default::default()
        });
        std::process::exit(1)
    }
}

fn load(bundle: &Path) -> Result<(Spec, berth_runtime::protocol::ShimConfig), String> {
    let read = |name: &str| {
        let p = bundle.join(name);
        std::fs::read(&p).map_err(|e| format!("reading {}: {e}", p.display()))
    };
    let mut spec: Spec = serde_json::from_slice(&read("config.json")?)
        .map_err(|e| format!("parsing config.json: {e}"))?;
    let cfg: ShimConfig = serde_json::from_slice(&read("shim.json")?)
        .map_err(|e| format!("parsing shim.json: {e}"))?;
    // OCI allows root.path relative to the bundle.
    if !Path::new(&spec.root.path).is_absolute() {
        spec.root.path = bundle.join(&spec.root.path).to_string_lossy().into_owned();
    }
    Ok((spec, cfg))
}

/// Double fork: the launched process waits for the middle one and exits (berthd reaps it);
/// the middle one starts a new session and exits at once; the grandchild — in no session
/// berthd leads, reparented to init — is the shim.
fn daemonize() -> Result<(), String> {
    // SAFETY: still single-threaded.
    match unsafe { libc::fork() } {
        -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {}
        mid => {
            let mut st = 0;
            // SAFETY: reaping our child.
            unsafe { libc::waitpid(mid, &mut st, 0) };
            // SAFETY: leave without running destructors (fd 3 stays with the shim).
            unsafe { libc::_exit(0) };
        }
    }
    // SAFETY: as above.
    unsafe {
        libc::setsid();
        match libc::fork() {
            -1 => libc::_exit(1),
            0 => {}
            _ => libc::_exit(0),
        }
    }
    // SAFETY: process-wide setup of a fresh single-threaded daemon.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::chdir(c"/".as_ptr());
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

fn main() {
    let Some(bundle) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: berth-shim <bundle>");
        std::process::exit(2);
    };
    let ready = ReadyPipe::take();
    if let Err(e) = berth_runtime::exe::ensure_readonly_self() {
        ready.fail(
            format!("protecting the shim binary (CVE-2019-5736): {e}"),
            None,
        );
    }
    ready.cloexec();
    let (spec, cfg) = match load(&bundle) {
        Ok(x) => x,
        Err(e) => ready.fail(e, None),
    };
    if let Err(e) = daemonize() {
        ready.fail(e, None);
    }
    match server::Shim::new(spec, cfg) {
        Ok(shim) => {
            ready.send(&Ready {
                // SAFETY: getpid has no preconditions.
                shim_pid: Some(unsafe { libc::getpid() }),
                init_pid: Some(shim.init_pid()),
                ..Default::default()
            });
            shim.run()
        }
        Err((msg, code)) => ready.fail(msg, code),
    }
}
