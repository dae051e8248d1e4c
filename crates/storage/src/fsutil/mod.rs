//! fd-relative filesystem helpers: contained path resolution, removal that never crosses a
//! mount, and small durable-write helpers. Submodules: xattrs, sorted iterative walks, copying
//! trees with every kind of metadata.

mod copy;
mod walk;
mod xattr;

pub(crate) use copy::{copy_node, copy_tree};
pub(crate) use walk::{tree_size, walk};
pub(crate) use xattr::{Node, get_xattr, is_overlay_xattr, list_xattrs, set_xattr, xattr_refused};

use std::ffi::{CStr, CString};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{
    self as rfs, AtFlags, CWD, Dir, FileType, Mode, OFlags, ResolveFlags, Stat, Timespec,
    Timestamps,
};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Plain accessors for `Stat`, whose field types differ between architectures.
#[allow(clippy::unnecessary_cast)]
pub(crate) mod st {
    use super::*;
    pub fn mode(s: &Stat) -> u32 {
        s.st_mode as u32
    }
    pub fn perm(s: &Stat) -> u32 {
        s.st_mode as u32 & 0o7777
    }
    pub fn uid(s: &Stat) -> u32 {
        s.st_uid as u32
    }
    pub fn gid(s: &Stat) -> u32 {
        s.st_gid as u32
    }
    pub fn rdev(s: &Stat) -> u64 {
        s.st_rdev as u64
    }
    pub fn dev(s: &Stat) -> u64 {
        s.st_dev as u64
    }
    pub fn ino(s: &Stat) -> u64 {
        s.st_ino as u64
    }
    pub fn nlink(s: &Stat) -> u64 {
        s.st_nlink as u64
    }
    pub fn size(s: &Stat) -> u64 {
        s.st_size.max(0) as u64
    }
    pub fn mtime(s: &Stat) -> Timespec {
        Timespec {
            tv_sec: s.st_mtime as i64,
            tv_nsec: s.st_mtime_nsec as _,
        }
    }
    pub fn atime(s: &Stat) -> Timespec {
        Timespec {
            tv_sec: s.st_atime as i64,
            tv_nsec: s.st_atime_nsec as _,
        }
    }
    pub fn kind(s: &Stat) -> FileType {
        FileType::from_raw_mode(s.st_mode as _)
    }
    pub fn is_dir(s: &Stat) -> bool {
        kind(s) == FileType::Directory
    }
    /// An overlayfs whiteout: a character device 0/0.
    pub fn is_whiteout(s: &Stat) -> bool {
        kind(s) == FileType::CharacterDevice && rdev(s) == 0
    }
}

pub(crate) fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

/// Cleans a tar name lexically as if rooted at `/` (like containerd): empty and `.` components
/// go, `..` pops and stops at the root. The result has no leading `/`; `""` is the root itself.
pub(crate) fn clean_path(p: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(p.len());
    for c in p.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(cut);
            }
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    out
}

/// Splits a clean relative path into (parent, last component); the parent of `a` is `""`.
pub(crate) fn split_last(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (&[], p),
    }
}

fn dot(rel: &[u8]) -> &[u8] {
    if rel.is_empty() { b"." } else { rel }
}

/// Opens `path` (a directory berth owns; symlinks followed) for reading and `*at` calls.
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Resolves `rel` inside `root` as if `root` were `/`: symlinks are followed but can never lead
/// out (the kernel clamps `..` and absolute targets at `root`).
pub(crate) fn open_in_root(root: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    Ok(rfs::openat2(
        root,
        cstring(dot(rel))?,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )?)
}

/// Resolves `rel` beneath `root` refusing any symlink on the way (for trees berth wrote itself,
/// which a running container may be changing under us).
pub(crate) fn open_beneath(root: BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    Ok(rfs::openat2(
        root,
        cstring(dot(rel))?,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    )?)
}

pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Stat> {
    Ok(rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// `lstat`, with "not there" (including "a parent is not a directory") as `None`.
pub(crate) fn lstat_opt(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => Ok(Some(s)),
        Err(Errno::NOENT | Errno::NOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens a directory entry for reading without following a symlink in its place.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rfs::openat(dir, name, flags, Mode::empty())?)
}

/// Reads a directory stream's names (without `.`/`..`), sorted bytewise for deterministic output.
fn names_of(d: &mut Dir) -> io::Result<Vec<CString>> {
    let mut names = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            names.push(n.to_owned());
        }
    }
    names.sort_unstable();
    Ok(names)
}

/// The sorted names in directory `dir` (any fd to it, even `O_PATH`).
pub(crate) fn read_names(dir: BorrowedFd<'_>) -> io::Result<Vec<CString>> {
    let fd = rfs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    names_of(&mut Dir::new(fd)?)
}

/// Removes `name` in `dir` and everything under it, iteratively (deep trees can't overflow the
/// stack), never following symlinks and refusing to descend into another mount. Missing is fine.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let Some(s) = lstat_opt(dir, name)? else {
        return Ok(());
    };
    if !st::is_dir(&s) {
        return match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    let dev = st::dev(&rfs::fstat(dir)?);
    let not_across = |s: &Stat| {
        if st::dev(s) == dev {
            Ok(())
        } else {
            Err(io::Error::other(
                "refusing to remove a directory that is a mount point",
            ))
        }
    };
    not_across(&s)?;
    struct Frame {
        dir: Dir,
        name: CString,
        names: std::vec::IntoIter<CString>,
    }
    let open = |parent: BorrowedFd<'_>, name: &CStr| -> io::Result<Frame> {
        let mut d = Dir::new(open_subdir(parent, name)?)?;
        let names = names_of(&mut d)?.into_iter();
        Ok(Frame {
            dir: d,
            name: name.to_owned(),
            names,
        })
    };
    let mut stack = vec![open(dir, name)?];
    while let Some(top) = stack.last_mut() {
        let fd = top.dir.fd()?;
        match top.names.next() {
            Some(child) => {
                let Some(cs) = lstat_opt(fd, &child)? else {
                    continue;
                };
                if st::is_dir(&cs) {
                    not_across(&cs)?;
                    let f = open(fd, &child)?;
                    stack.push(f);
                } else {
                    match rfs::unlinkat(fd, &child, AtFlags::empty()) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            None => {
                let done = stack.pop().expect("non-empty");
                let parent = match stack.last() {
                    Some(f) => f.dir.fd()?,
                    None => dir,
                };
                match rfs::unlinkat(parent, &done.name, AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Removes the tree at `path` (berth's own directory; its parent may be a symlink we own).
pub(crate) fn remove_all(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::other(format!(
            "refusing to remove {}",
            path.display()
        )));
    };
    let pfd = match open_dir(parent) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    remove_all_at(pfd.as_fd(), &cstring(name.as_bytes())?)
}

pub(crate) fn timestamps(s: &Stat) -> Timestamps {
    Timestamps {
        last_access: st::atime(s),
        last_modification: st::mtime(s),
    }
}

/// Flushes the filesystem holding `path` (one call per layer instead of an fsync per file).
pub(crate) fn syncfs(path: &Path) -> Result<()> {
    let fd = open_dir(path).map_err(Error::io(format!("opening {}", path.display())))?;
    rfs::syncfs(&fd).map_err(Error::io(format!("syncfs {}", path.display())))
}

/// fsyncs a directory so a rename inside it is durable.
pub(crate) fn fsync_dir(path: &Path) -> Result<()> {
    let fd = open_dir(path).map_err(Error::io(format!("opening {}", path.display())))?;
    rfs::fsync(&fd).map_err(Error::io(format!("fsync {}", path.display())))
}

/// A random name of `len` characters from `[A-Z0-9]` (temp dirs, overlay short links).
pub(crate) fn random_name(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut out = String::with_capacity(len);
    while out.len() < len {
        // RandomState is seeded randomly per process and per thread.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        h.write_u32(std::process::id());
        let mut x = h.finish();
        for _ in 0..10 {
            if out.len() == len {
                break;
            }
            out.push(CHARS[(x % CHARS.len() as u64) as usize] as char);
            x /= CHARS.len() as u64;
        }
    }
    out
}

/// Writes `data` to `dir/name` atomically: a temp file, fsynced, renamed over.
pub(crate) fn write_file_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".tmp-{}-{name}", random_name(8)));
    let ctx = || format!("writing {}", dir.join(name).display());
    let fd = rfs::open(
        &tmp,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(Error::io(ctx()))?;
    let mut w = data;
    while !w.is_empty() {
        let n = rustix::io::write(&fd, w).map_err(Error::io(ctx()))?;
        w = &w[n..];
    }
    rfs::fsync(&fd).map_err(Error::io(ctx()))?;
    drop(fd);
    rfs::renameat(CWD, &tmp, CWD, dir.join(name)).map_err(Error::io(ctx()))?;
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_a_rooted_path() {
        let c = |s: &str| String::from_utf8(clean_path(s.as_bytes())).unwrap();
        assert_eq!(c("./a/../b"), "b");
        assert_eq!(c("/etc/passwd"), "etc/passwd");
        assert_eq!(c("../../../etc/passwd"), "etc/passwd");
        assert_eq!(c("a//b/./c/"), "a/b/c");
        assert_eq!(c("./"), "");
        assert_eq!(c(".."), "");
        assert_eq!(c("a/b/../../.."), "");
        assert_eq!(c("dne/../.wh.etc"), ".wh.etc");
        assert_eq!(c(".wh..."), ".wh...");
    }

    #[test]
    fn random_names_differ() {
        let a = random_name(26);
        assert_eq!(a.len(), 26);
        assert_ne!(a, random_name(26));
    }
}
