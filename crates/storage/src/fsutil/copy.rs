//! Copying inodes and trees with owners, modes, xattrs, hardlinks, devices and times.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat, Timestamps};
use rustix::io::Errno;

use super::{
    Node, cstring, list_xattrs, open_beneath, open_dir, open_subdir, set_xattr, st, timestamps,
    walk, xattr_refused,
};
use crate::error::{Error, Result};

/// Copies file data, cloning extents where the filesystem can.
fn copy_data(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    size: u64,
    buf: &mut Vec<u8>,
) -> io::Result<()> {
    if size == 0 || rfs::ioctl_ficlone(dst, src).is_ok() {
        return Ok(());
    }
    let mut done = 0u64;
    loop {
        match rfs::copy_file_range(src, None, dst, None, 1 << 30) {
            Ok(0) => return Ok(()),
            Ok(n) => done += n as u64,
            Err(Errno::XDEV | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if done == 0 => break,
            Err(e) => return Err(e.into()),
        }
    }
    if buf.len() < 1 << 20 {
        buf.resize(1 << 20, 0);
    }
    loop {
        let n = rustix::io::read(src, &mut buf[..])?;
        if n == 0 {
            return Ok(());
        }
        let mut w = &buf[..n];
        while !w.is_empty() {
            let k = rustix::io::write(dst, w)?;
            w = &w[k..];
        }
    }
}

fn copy_xattrs(from: &Node<'_>, to: &Node<'_>) -> io::Result<()> {
    for (name, value) in list_xattrs(from)? {
        if let Err(e) = set_xattr(to, &name, &value) {
            if !xattr_refused(&e) {
                return Err(e);
            }
            tracing::debug!("not copying xattr {name:?}: {e}");
        }
    }
    Ok(())
}

/// Recreates one inode (`name` in `src`, already lstat'ed as `s`) as `dst_name` in `dst` with its
/// owner, mode, xattrs and times. For a directory, returns it open (its times are the caller's
/// job, after its children). Sockets are recreated as socket inodes.
pub(crate) fn copy_node(
    src: BorrowedFd<'_>,
    name: &CStr,
    s: &Stat,
    dst: BorrowedFd<'_>,
    dst_name: &CStr,
    buf: &mut Vec<u8>,
) -> io::Result<Option<OwnedFd>> {
    let owner = (
        Some(rfs::Uid::from_raw(st::uid(s))),
        Some(rfs::Gid::from_raw(st::gid(s))),
    );
    let mode = Mode::from_raw_mode(st::perm(s));
    match st::kind(s) {
        FileType::Directory => {
            rfs::mkdirat(dst, dst_name, Mode::from_raw_mode(0o700))?;
            let d = open_subdir(dst, dst_name)?;
            rfs::fchown(&d, owner.0, owner.1)?;
            let sfd = open_subdir(src, name)?;
            copy_xattrs(&Node::Fd(sfd.as_fd()), &Node::Fd(d.as_fd()))?;
            rfs::fchmod(&d, mode)?;
            Ok(Some(d))
        }
        FileType::RegularFile => {
            let sflags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let sfd = rfs::openat(src, name, sflags, Mode::empty())?;
            let dflags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let dfd = rfs::openat(dst, dst_name, dflags, Mode::from_raw_mode(0o600))?;
            copy_data(sfd.as_fd(), dfd.as_fd(), st::size(s), buf)?;
            rfs::fchown(&dfd, owner.0, owner.1)?;
            copy_xattrs(&Node::Fd(sfd.as_fd()), &Node::Fd(dfd.as_fd()))?;
            rfs::fchmod(&dfd, mode)?;
            rfs::futimens(&dfd, &timestamps(s))?;
            Ok(None)
        }
        FileType::Symlink => {
            let target = rfs::readlinkat(src, name, Vec::new())?;
            rfs::symlinkat(&target, dst, dst_name)?;
            rfs::chownat(dst, dst_name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)?;
            copy_xattrs(&Node::at(src, name), &Node::at(dst, dst_name))?;
            rfs::utimensat(dst, dst_name, &timestamps(s), AtFlags::SYMLINK_NOFOLLOW)?;
            Ok(None)
        }
        kind => {
            rfs::mknodat(dst, dst_name, kind, mode, st::rdev(s))?;
            rfs::chownat(dst, dst_name, owner.0, owner.1, AtFlags::SYMLINK_NOFOLLOW)?;
            copy_xattrs(&Node::at(src, name), &Node::at(dst, dst_name))?;
            rfs::chmodat(dst, dst_name, mode, AtFlags::empty())?;
            rfs::utimensat(dst, dst_name, &timestamps(s), AtFlags::SYMLINK_NOFOLLOW)?;
            Ok(None)
        }
    }
}

/// Copies the tree under `src` into the existing empty directory `dst` (whose own metadata is set
/// from `src`'s), preserving owners, modes, xattrs, hardlinks, devices, symlinks and mtimes.
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let sfd = open_dir(src).map_err(Error::io(format!("opening {}", src.display())))?;
    let dfd = open_dir(dst).map_err(Error::io(format!("opening {}", dst.display())))?;
    let ctx = |p: &[u8]| format!("copying {}/{}", src.display(), String::from_utf8_lossy(p));
    let root_stat = rfs::fstat(&sfd).map_err(Error::io(ctx(b"")))?;
    let mut buf = Vec::new();
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut dir_times: Vec<(Vec<u8>, Timestamps)> = Vec::new();
    let droot = dfd.try_clone().map_err(Error::io(ctx(b"")))?;
    walk(
        sfd.try_clone().map_err(Error::io(ctx(b"")))?,
        dfd.try_clone().map_err(Error::io(ctx(b"")))?,
        |v| {
            let s = v.stat;
            if !st::is_dir(s) && st::nlink(s) > 1 {
                let key = (st::dev(s), st::ino(s));
                if let Some(first) = links.get(&key) {
                    rfs::linkat(
                        &droot,
                        cstring(first).map_err(Error::io(ctx(v.path)))?.as_c_str(),
                        v.data,
                        v.name,
                        AtFlags::empty(),
                    )
                    .map_err(Error::io(ctx(v.path)))?;
                    return Ok(None);
                }
                links.insert(key, v.path.to_vec());
            }
            let made = copy_node(v.dir, v.name, s, v.data.as_fd(), v.name, &mut buf)
                .map_err(Error::io(ctx(v.path)))?;
            if made.is_some() {
                dir_times.push((v.path.to_vec(), timestamps(s)));
            }
            Ok(made)
        },
    )?;
    rfs::fchown(
        &dfd,
        Some(rfs::Uid::from_raw(st::uid(&root_stat))),
        Some(rfs::Gid::from_raw(st::gid(&root_stat))),
    )
    .map_err(Error::io(ctx(b"")))?;
    copy_xattrs(&Node::Fd(sfd.as_fd()), &Node::Fd(dfd.as_fd())).map_err(Error::io(ctx(b"")))?;
    rfs::fchmod(&dfd, Mode::from_raw_mode(st::perm(&root_stat))).map_err(Error::io(ctx(b"")))?;
    // Children first: creating entries bumps a directory's mtime.
    for (p, t) in dir_times.iter().rev() {
        let d = open_beneath(dfd.as_fd(), p, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(Error::io(ctx(p)))?;
        rfs::futimens(&d, t).map_err(Error::io(ctx(p)))?;
    }
    rfs::futimens(&dfd, &timestamps(&root_stat)).map_err(Error::io(ctx(b"")))?;
    Ok(())
}
