//! Persistent network namespaces: made on a short-lived thread that unshares its network
//! namespace and bind-mounts `/proc/thread-self/ns/net` onto a file, so the namespace lives
//! on (with nothing running in it) until the file is unmounted. Work inside a namespace runs
//! on a fresh thread that `setns`es into it; sockets it opens stay in that namespace.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::other("NUL in path"))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Runs `f` on a new thread; a panic becomes an error.
fn on_thread<T: Send>(f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("berth-netns".into())
            .stack_size(256 * 1024)
            .spawn_scoped(s, f)?
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("network namespace worker panicked")))
    })
}

/// Creates a network namespace pinned at `path` (which must not exist), then runs `f`
/// inside it. If `f` fails, the namespace is removed again.
pub fn create<T: Send>(path: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let target = cpath(path)?;
    File::create_new(path)?;
    let res = on_thread(|| {
        // SAFETY: unshare affects only this (short-lived) thread's network namespace.
        check(unsafe { libc::unshare(libc::CLONE_NEWNET) })?;
        // SAFETY: both paths are valid C strings; a plain bind mount.
        check(unsafe {
            libc::mount(
                c"/proc/thread-self/ns/net".as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        })?;
        f()
    });
    if res.is_err() {
        let _ = remove(path);
    }
    res
}

/// Runs `f` on a thread inside the network namespace at `path`.
pub fn enter<T: Send>(path: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let ns = open(path)?;
    on_thread(move || {
        // SAFETY: ns is an open namespace fd; setns affects only this thread.
        check(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })?;
        f()
    })
}

/// Opens the namespace file (for `IFLA_NET_NS_FD` or `setns`).
pub fn open(path: &Path) -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(File::open(path)?))
}

/// Whether `path` is a mounted namespace (not just the empty file under it).
pub fn is_namespace(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e736673;
    let Ok(c) = cpath(path) else { return false };
    // SAFETY: st is written by statfs.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid C string, st a valid out pointer.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && st.f_type as i64 == NSFS_MAGIC
}

/// Unpins the namespace at `path` and deletes the file. The kernel destroys the namespace
/// (and the veth ends in it) once nothing else holds it.
pub fn remove(path: &Path) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid C string.
    let r = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) && e.raw_os_error() != Some(libc::ENOENT) {
            return Err(e);
        }
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
