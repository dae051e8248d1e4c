//! Filesystem changes of a writable snapshot against its parent (`docker diff`).

use std::collections::HashSet;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, Stat};

use crate::error::{Error, Result};
use crate::fsutil::{self, Node, st};
use crate::whiteout;

/// docker diff's C / A / D.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    Modified,
    Added,
    Deleted,
}

impl ChangeKind {
    /// The Engine API's `Kind` number (0 modified, 1 added, 2 deleted).
    pub fn api_kind(self) -> u8 {
        match self {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }

    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path, absolute within the container ("/etc/passwd"); non-UTF-8 bytes are shown
/// lossily.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

/// A change with its exact relative path bytes (no leading `/`), for building tars.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawChange {
    pub kind: ChangeKind,
    pub path: Vec<u8>,
}

impl RawChange {
    pub(crate) fn public(&self) -> Change {
        Change {
            kind: self.kind,
            path: format!("/{}", String::from_utf8_lossy(&self.path)),
        }
    }
}

/// How the new tree relates to the old one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `new` is an overlay upper dir over `old` (the merged parent view): entries absent from
    /// upper are unchanged; whiteouts are deletions; an opaque directory replaces the old one.
    Overlay,
    /// `new` and `old` are two full trees (copy driver): every difference counts.
    Naive,
}

/// Per-directory state of the walk: the old tree's counterpart directory, and whether old
/// entries missing from new count as deleted here.
struct Frame {
    old: Option<OwnedFd>,
    naive: bool,
}

/// Computes the changes of `new` relative to `old` (`None`: nothing below), sorted by path, with
/// every changed path's ancestor directories reported as modified (as `docker diff` does).
pub(crate) fn compute(new: OwnedFd, old: Option<OwnedFd>, mode: Mode) -> Result<Vec<RawChange>> {
    let mut out: Vec<RawChange> = Vec::new();
    if let (Mode::Naive, Some(o)) = (mode, &old) {
        deletions(o.as_fd(), new.as_fd(), b"", &mut out)?;
    }
    let ctx = |p: &[u8]| format!("comparing /{}", String::from_utf8_lossy(p));
    fsutil::walk(
        new,
        Frame {
            old,
            naive: mode == Mode::Naive,
        },
        |v| {
            let s = v.stat;
            let f = v.data;
            let old_stat = match &f.old {
                Some(o) => fsutil::lstat_opt(o.as_fd(), v.name)
                    .map_err(Error::io(ctx(v.path)))?
                    .filter(|os| !st::is_whiteout(os)),
                None => None,
            };
            if st::is_whiteout(s) {
                if !f.naive && old_stat.is_some() {
                    out.push(RawChange {
                        kind: ChangeKind::Deleted,
                        path: v.path.to_vec(),
                    });
                }
                return Ok(None);
            }
            let Some(os) = old_stat else {
                out.push(RawChange {
                    kind: ChangeKind::Added,
                    path: v.path.to_vec(),
                });
                return Ok(Some(Frame {
                    old: None,
                    naive: f.naive,
                }));
            };
            let old_dir = f.old.as_ref().expect("old stat implies old dir").as_fd();
            if st::is_dir(s) && st::is_dir(&os) {
                let opaque = !f.naive
                    && whiteout::is_opaque(v.dir, v.name).map_err(Error::io(ctx(v.path)))?;
                if opaque || meta_differs(s, &os) {
                    out.push(RawChange {
                        kind: ChangeKind::Modified,
                        path: v.path.to_vec(),
                    });
                }
                let naive = f.naive || opaque;
                let old_child =
                    fsutil::open_subdir(old_dir, v.name).map_err(Error::io(ctx(v.path)))?;
                if naive {
                    // Gone since it was listed (a running container): nothing below to compare.
                    let new_child = match fsutil::open_subdir(v.dir, v.name) {
                        Ok(d) => d,
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                            ) =>
                        {
                            return Ok(None);
                        }
                        Err(e) => return Err(Error::io(ctx(v.path))(e)),
                    };
                    deletions(old_child.as_fd(), new_child.as_fd(), v.path, &mut out)?;
                }
                return Ok(Some(Frame {
                    old: Some(old_child),
                    naive,
                }));
            }
            // In an overlay upper dir, presence means copied up: changed. Full trees compare.
            let changed = !f.naive
                || st::kind(s) != st::kind(&os)
                || meta_differs(s, &os)
                || content_differs(v.dir, old_dir, v.name, s).map_err(Error::io(ctx(v.path)))?;
            if changed {
                out.push(RawChange {
                    kind: ChangeKind::Modified,
                    path: v.path.to_vec(),
                });
            }
            // A directory that replaced a non-directory: everything in it is new.
            Ok(Some(Frame {
                old: None,
                naive: f.naive,
            }))
        },
    )?;
    Ok(finish(out))
}

/// Old entries of a directory that the new one lacks.
fn deletions(
    old: BorrowedFd<'_>,
    new: BorrowedFd<'_>,
    dir: &[u8],
    out: &mut Vec<RawChange>,
) -> Result<()> {
    let ctx = || format!("comparing /{}", String::from_utf8_lossy(dir));
    for n in fsutil::read_names(old).map_err(Error::io(ctx()))? {
        let os = fsutil::lstat_at(old, &n).map_err(Error::io(ctx()))?;
        if st::is_whiteout(&os) {
            continue;
        }
        let gone = match fsutil::lstat_opt(new, &n).map_err(Error::io(ctx()))? {
            None => true,
            Some(ns) => st::is_whiteout(&ns),
        };
        if gone {
            let mut p = dir.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(n.to_bytes());
            out.push(RawChange {
                kind: ChangeKind::Deleted,
                path: p,
            });
        }
    }
    Ok(())
}

/// Docker's naive comparison: type and permissions, owner, device number; for non-directories
/// also size and mtime. (Directory mtimes count too: a touched directory is a change.)
fn meta_differs(a: &Stat, b: &Stat) -> bool {
    st::mode(a) != st::mode(b)
        || st::uid(a) != st::uid(b)
        || st::gid(a) != st::gid(b)
        || st::rdev(a) != st::rdev(b)
        || st::mtime(a) != st::mtime(b)
        || (!st::is_dir(a) && st::size(a) != st::size(b))
}

/// What metadata equality can miss: a symlink's target, a file's capabilities.
fn content_differs(
    new_dir: BorrowedFd<'_>,
    old_dir: BorrowedFd<'_>,
    name: &CStr,
    s: &Stat,
) -> std::io::Result<bool> {
    match st::kind(s) {
        rfs::FileType::Symlink => Ok(rfs::readlinkat(new_dir, name, Vec::new())?
            != rfs::readlinkat(old_dir, name, Vec::new())?),
        rfs::FileType::RegularFile => {
            let cap = c"security.capability";
            Ok(fsutil::get_xattr(&Node::at(new_dir, name), cap)?
                != fsutil::get_xattr(&Node::at(old_dir, name), cap)?)
        }
        _ => Ok(false),
    }
}

/// Adds modified ancestors, sorts, dedupes.
fn finish(mut out: Vec<RawChange>) -> Vec<RawChange> {
    let mut seen: HashSet<Vec<u8>> = out.iter().map(|c| c.path.clone()).collect();
    let mut extra = Vec::new();
    for c in &out {
        let mut p = fsutil::split_last(&c.path).0;
        while !p.is_empty() && seen.insert(p.to_vec()) {
            extra.push(RawChange {
                kind: ChangeKind::Modified,
                path: p.to_vec(),
            });
            p = fsutil::split_last(p).0;
        }
    }
    out.extend(extra);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}
