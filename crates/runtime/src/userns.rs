//! A user namespace with given id maps, held by an fd: what id-mapped mounts
//! (`MOUNT_ATTR_IDMAP`) take. Safe to call from a multi-threaded process: the helper child
//! made by a raw `clone` only blocks in `read` and exits.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};
use crate::spec::IdMapping;
use crate::sys;

/// The text of /proc/<pid>/{uid,gid}_map for `maps`.
pub fn map_text(maps: &[IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

/// Makes a user namespace with these maps and returns an fd of it (`/proc/<pid>/ns/user`).
pub fn userns_fd(uid_maps: &[IdMapping], gid_maps: &[IdMapping]) -> Result<OwnedFd> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Error::io("pipe", std::io::Error::last_os_error()));
    }
    // SAFETY: fresh descriptors we own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let pid = match sys::clone(libc::CLONE_NEWUSER) {
        Ok(0) => {
            // Child: wait until the parent closes its end (or dies), then go.
            sys::close(w.as_raw_fd());
            let mut b = [0u8; 1];
            let _ = sys::read(r.as_raw_fd(), &mut b);
            sys::exit(0)
        }
        Ok(pid) => pid,
        Err(e) => return Err(Error::errno("clone(CLONE_NEWUSER)", e)),
    };
    drop(r);
    let result = (|| -> Result<OwnedFd> {
        for (file, maps) in [("gid_map", gid_maps), ("uid_map", uid_maps)] {
            let p = format!("/proc/{pid}/{file}");
            let text = map_text(maps);
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .and_then(|mut f| std::io::Write::write(&mut f, text.as_bytes()))
                .map_err(|e| Error::io(format!("writing {p} ({})", text.trim_end()), e))?;
        }
        let p = format!("/proc/{pid}/ns/user");
        std::fs::File::open(&p)
            .map(OwnedFd::from)
            .map_err(|e| Error::io(format!("opening {p}"), e))
    })();
    drop(w);
    crate::process::reap(pid);
    result
}
