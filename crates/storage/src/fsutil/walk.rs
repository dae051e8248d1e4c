//! Sorted, iterative walks over a directory tree held by fds.

use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Dir, Stat};

use super::{lstat_opt, names_of, open_dir, open_subdir, st};
use crate::error::{Error, Result};

/// One entry met by [`walk`].
pub(crate) struct Visit<'a, T> {
    /// The directory holding the entry (readable fd).
    pub dir: BorrowedFd<'a>,
    pub name: &'a CStr,
    /// Path relative to the walk's root, no leading `/`.
    pub path: &'a [u8],
    pub stat: &'a Stat,
    /// What the callback returned for the parent directory (or the root's data).
    pub data: &'a T,
}

/// Walks the tree under `root` depth-first in bytewise name order, without following symlinks
/// and without recursion. For a directory, the callback returns `Some(data)` to descend (the
/// data is handed to the children) or `None` to skip its contents. Entries that vanish while we
/// walk (a running container) are skipped.
pub(crate) fn walk<T>(
    root: OwnedFd,
    root_data: T,
    mut f: impl FnMut(&Visit<'_, T>) -> Result<Option<T>>,
) -> Result<()> {
    struct Frame<T> {
        dir: Dir,
        names: std::vec::IntoIter<CString>,
        path_len: usize,
        data: T,
    }
    let mut d = Dir::new(root).map_err(Error::io("reading directory"))?;
    let names = names_of(&mut d).map_err(Error::io("reading directory"))?;
    let mut stack = vec![Frame {
        dir: d,
        names: names.into_iter(),
        path_len: 0,
        data: root_data,
    }];
    let mut path: Vec<u8> = Vec::new();
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.names.next() else {
            stack.pop();
            continue;
        };
        path.truncate(top.path_len);
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.to_bytes());
        let lossy = || String::from_utf8_lossy(&path).into_owned();
        let dir = top.dir.fd().map_err(Error::io("reading directory"))?;
        let Some(stat) =
            lstat_opt(dir, &name).map_err(|e| Error::io(format!("lstat /{}", lossy()))(e))?
        else {
            continue;
        };
        let child = f(&Visit {
            dir,
            name: &name,
            path: &path,
            stat: &stat,
            data: &top.data,
        })?;
        let Some(child) = child else { continue };
        if !st::is_dir(&stat) {
            continue;
        }
        let fd = match open_subdir(dir, &name) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) =>
            {
                continue;
            }
            Err(e) => return Err(Error::io(format!("opening /{}", lossy()))(e)),
        };
        let mut d = Dir::new(fd).map_err(Error::io("reading directory"))?;
        let names = names_of(&mut d).map_err(|e| Error::io(format!("reading /{}", lossy()))(e))?;
        let path_len = path.len();
        stack.push(Frame {
            dir: d,
            names: names.into_iter(),
            path_len,
            data: child,
        });
    }
    Ok(())
}

/// Apparent size of a tree (as `docker system df` counts): the sizes of all non-directories,
/// each hardlinked inode once.
pub(crate) fn tree_size(path: &Path) -> Result<u64> {
    let fd = open_dir(path).map_err(Error::io(format!("opening {}", path.display())))?;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    walk(fd, (), |v| {
        let s = v.stat;
        if st::is_dir(s) {
            return Ok(Some(()));
        }
        if st::nlink(s) < 2 || seen.insert((st::dev(s), st::ino(s))) {
            total += st::size(s);
        }
        Ok(None)
    })?;
    Ok(total)
}
