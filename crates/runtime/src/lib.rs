//! berth's container runtime: turns an OCI runtime config ([`spec::Spec`]) into an isolated
//! process ([`create`] + [`Created::start`]), and runs further processes inside it
//! ([`exec`]). Written on raw syscalls the way runc/crun do it: the child of `clone` only
//! runs on data prepared before it, so the caller may be multi-threaded.
//!
//! [`protocol`] defines how berthd talks to a shim over its unix socket; [`cgroup`] manages
//! container cgroups (v1 and v2); [`user`] resolves `-u user[:group]`.

pub mod cgroup;
pub mod exe;
pub mod protocol;
pub mod spec;
pub mod user;
pub mod userns;

mod caps;
mod error;
mod exec;
mod init;
mod mounts;
mod paths;
mod process;
pub mod resources;
pub mod seccomp;
mod seccomp_default;
mod stats;
mod sys;
mod syscalls;

use std::os::fd::{AsRawFd, BorrowedFd};

pub use caps::DOCKER_DEFAULT as DEFAULT_CAPABILITIES;
pub use error::{Error, Result};
pub use exec::{ExecProcess, exec};
pub use init::{Created, Running, create};
pub use process::{DEFAULT_PATH, Stdio};
pub use seccomp_default::profile as default_seccomp_profile;
pub use stats::{CgroupStats, IoEntry};

/// docker's view of a wait status: (exit code, signal). A signal gives 128 + its number.
pub fn exit_status(wait_status: i32) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(wait_status) {
        let s = libc::WTERMSIG(wait_status);
        (128 + s, Some(s))
    } else {
        (libc::WEXITSTATUS(wait_status), None)
    }
}

/// Sets a pty's window size (TIOCSWINSZ on the master).
pub fn resize_terminal(master: BorrowedFd<'_>, size: spec::ConsoleSize) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
