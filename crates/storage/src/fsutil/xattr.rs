//! Extended attributes, read and written without following symlinks.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs as rfs;
use rustix::io::Errno;

use super::cstring;

/// `/proc/self/fd/N/name`: lets path-only calls (`l*xattr`) act on `name` in an fd'd directory
/// without resolving anything else by path.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &CStr) -> CString {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    CString::new(p).expect("no NUL")
}

/// Where to read or write an inode's xattrs: an open fd (files, dirs) or, for symlinks and
/// special files which can't be opened safely, a `/proc/self/fd` path.
pub(crate) enum Node<'a> {
    Fd(BorrowedFd<'a>),
    Path(CString),
}

impl Node<'_> {
    pub(crate) fn at<'a>(dir: BorrowedFd<'a>, name: &CStr) -> Node<'a> {
        Node::Path(proc_path(dir, name))
    }
}

/// Whether a filesystem refusing an xattr should be shrugged off (logged) rather than fail.
pub(crate) fn xattr_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(
            Errno::OPNOTSUPP
                | Errno::PERM
                | Errno::ACCESS
                | Errno::INVAL
                | Errno::RANGE
                | Errno::TOOBIG
        )
    )
}

/// overlayfs's private xattrs: never taken from a tar or exported into one (they steer the
/// kernel's lookups: redirects, metacopy, opaque).
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

pub(crate) fn set_xattr(node: &Node<'_>, name: &CStr, value: &[u8]) -> io::Result<()> {
    let flags = rfs::XattrFlags::empty();
    match node {
        Node::Fd(fd) => rfs::fsetxattr(fd, name, value, flags)?,
        Node::Path(p) => rfs::lsetxattr(p.as_c_str(), name, value, flags)?,
    }
    Ok(())
}

pub(crate) fn get_xattr(node: &Node<'_>, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let r = match node {
            Node::Fd(fd) => rfs::fgetxattr(fd, name, &mut buf[..]),
            Node::Path(p) => rfs::lgetxattr(p.as_c_str(), name, &mut buf[..]),
        };
        match r {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) if buf.len() < 1 << 17 => buf.resize(buf.len() * 4, 0),
            Err(Errno::NODATA | Errno::OPNOTSUPP) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// All xattrs of a node, sorted by name.
pub(crate) fn list_xattrs(node: &Node<'_>) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let mut buf = vec![0u8; 1024];
    let n = loop {
        let r = match node {
            Node::Fd(fd) => rfs::flistxattr(fd, &mut buf[..]),
            Node::Path(p) => rfs::llistxattr(p.as_c_str(), &mut buf[..]),
        };
        match r {
            Ok(n) => break n,
            Err(Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in buf[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let name = cstring(name)?;
        if let Some(v) = get_xattr(node, &name)? {
            out.push((name, v));
        }
    }
    out.sort();
    Ok(out)
}
