//! `docker cp`: one path of a container's root filesystem, resolved as the container sees it,
//! as a stat, as a tar, or as the destination of a tar.
//!
//! Paths are resolved by the kernel with the container root as `/` (`openat2(RESOLVE_IN_ROOT)`),
//! on file descriptors held for the whole operation, so a container swapping a directory for a
//! symlink meanwhile cannot redirect berth outside its root (CVE-2018-15664).

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, OFlags};

use crate::error::{Error, Result};
use crate::fsutil::{self, st};
use crate::layer::{self, ApplyOptions, WhiteoutMode};

/// What docker's `X-Docker-Container-Path-Stat` header carries.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode`: permission bits plus type bits (dir = 1<<31, symlink = 1<<27…).
    pub mode: u32,
    /// Unix seconds and nanoseconds.
    pub mtime: (i64, i64),
    pub link_target: String,
}

const GO_MODE_DIR: u32 = 1 << 31;
const GO_MODE_SYMLINK: u32 = 1 << 27;
const GO_MODE_DEVICE: u32 = 1 << 26;
const GO_MODE_PIPE: u32 = 1 << 25;
const GO_MODE_SOCKET: u32 = 1 << 24;
const GO_MODE_SETUID: u32 = 1 << 23;
const GO_MODE_SETGID: u32 = 1 << 22;
const GO_MODE_CHARDEV: u32 = 1 << 21;
const GO_MODE_STICKY: u32 = 1 << 20;

fn go_mode(s: &rustix::fs::Stat) -> u32 {
    let mut m = s.st_mode & 0o777;
    match FileType::from_raw_mode(s.st_mode) {
        FileType::Directory => m |= GO_MODE_DIR,
        FileType::Symlink => m |= GO_MODE_SYMLINK,
        FileType::BlockDevice => m |= GO_MODE_DEVICE,
        FileType::CharacterDevice => m |= GO_MODE_DEVICE | GO_MODE_CHARDEV,
        FileType::Fifo => m |= GO_MODE_PIPE,
        FileType::Socket => m |= GO_MODE_SOCKET,
        _ => {}
    }
    if s.st_mode & 0o4000 != 0 {
        m |= GO_MODE_SETUID;
    }
    if s.st_mode & 0o2000 != 0 {
        m |= GO_MODE_SETGID;
    }
    if s.st_mode & 0o1000 != 0 {
        m |= GO_MODE_STICKY;
    }
    m
}

fn not_found(path: &str) -> Error {
    Error::NotFound(path.to_string())
}

/// The parent directory (opened inside `root`) and the last component of `path`. A path
/// ending in `/` or `/.` names the directory itself, followed if it is a symlink.
fn locate(root: &Path, path: &str) -> Result<(rustix::fd::OwnedFd, CString, String)> {
    let root_fd =
        fsutil::open_dir(root).map_err(Error::io(format!("opening {}", root.display())))?;
    let follow_last = path.ends_with('/') || path.ends_with("/.");
    let clean = fsutil::clean_path(path.as_bytes());
    if clean.is_empty() || follow_last {
        // The root itself, or a directory named with a trailing slash: open it and use ".".
        let dir = fsutil::open_in_root(root_fd.as_fd(), &clean, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|_| not_found(path))?;
        let name = std::str::from_utf8(fsutil::split_last(&clean).1)
            .unwrap_or("")
            .to_string();
        let name = if name.is_empty() { "/".into() } else { name };
        return Ok((dir, CString::new(".").expect("no NUL"), name));
    }
    let (parent, last) = fsutil::split_last(&clean);
    let dir = fsutil::open_in_root(root_fd.as_fd(), parent, OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|_| not_found(path))?;
    let name = String::from_utf8_lossy(last).into_owned();
    let c = fsutil::cstring(last).map_err(Error::io("path"))?;
    Ok((dir, c, name))
}

/// Stats `path` inside the container root (the last component is not followed).
pub fn stat(root: &Path, path: &str) -> Result<PathStat> {
    let (dir, name, base) = locate(root, path)?;
    let s =
        rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(|_| not_found(path))?;
    let link_target = if st::kind(&s) == FileType::Symlink {
        rustix::fs::readlinkat(&dir, &name, Vec::new())
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(PathStat {
        name: base,
        size: s.st_size,
        mode: go_mode(&s),
        mtime: (s.st_mtime, s.st_mtime_nsec as i64),
        link_target,
    })
}

/// Writes `path` (a file, or a directory and everything below it) as a tar whose entries are
/// rooted at the path's base name (or `as_name`), as `docker cp` expects.
pub fn tar(root: &Path, path: &str, as_name: Option<&str>, out: impl Write) -> Result<u64> {
    let (dir, name, base) = locate(root, path)?;
    rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(|_| not_found(path))?;
    let prefix = match as_name {
        Some(n) => n.to_string(),
        None if base == "/" => ".".to_string(),
        None => base,
    };
    layer::write_entry(dir.as_fd(), &name, prefix.as_bytes(), out)
}

/// Extracts `tar` into the directory `path` of the container root. The directory is resolved
/// as the container would (its symlinks lead where they lead inside the container).
pub fn extract(root: &Path, path: &str, tar: impl Read) -> Result<()> {
    let root_fd =
        fsutil::open_dir(root).map_err(Error::io(format!("opening {}", root.display())))?;
    let clean = fsutil::clean_path(path.as_bytes());
    let dir = fsutil::open_in_root(root_fd.as_fd(), &clean, OFlags::RDONLY | OFlags::DIRECTORY)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTDIR) {
                Error::InvalidState {
                    id: path.to_string(),
                    reason: "not a directory".into(),
                }
            } else {
                not_found(path)
            }
        })?;
    // The held fd is the destination: its /proc path cannot be redirected by a rename.
    let dest = format!("/proc/self/fd/{}", dir.as_raw_fd());
    let opts = ApplyOptions {
        whiteouts: WhiteoutMode::Remove,
        size_limit: None,
        lowers: Vec::new(),
    };
    layer::apply(Path::new(&dest), tar, &opts)?;
    Ok(())
}

/// Fills an empty volume directory `dst` with what the container image has at `path` (docker's
/// copy-up): files, owners, modes, xattrs and times, and the directory's own owner and mode.
/// Returns false when the image has nothing there (or not a directory).
pub fn copy_up(root: &Path, path: &str, dst: &Path) -> Result<bool> {
    let root_fd =
        fsutil::open_dir(root).map_err(Error::io(format!("opening {}", root.display())))?;
    let clean = fsutil::clean_path(path.as_bytes());
    let Ok(src) = fsutil::open_in_root(root_fd.as_fd(), &clean, OFlags::RDONLY | OFlags::DIRECTORY)
    else {
        return Ok(false);
    };
    let src_path = format!("/proc/self/fd/{}", src.as_raw_fd());
    fsutil::copy_tree(Path::new(&src_path), dst)?;
    let s = rustix::fs::fstat(&src)
        .map_err(|e| Error::io("reading the image directory")(std::io::Error::from(e)))?;
    rustix::fs::chown(
        dst,
        Some(rustix::fs::Uid::from_raw(s.st_uid)),
        Some(rustix::fs::Gid::from_raw(s.st_gid)),
    )
    .map_err(|e| Error::io("setting the volume's owner")(std::io::Error::from(e)))?;
    rustix::fs::chmod(dst, rustix::fs::Mode::from_raw_mode(s.st_mode & 0o7777))
        .map_err(|e| Error::io("setting the volume's mode")(std::io::Error::from(e)))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_follows_container_symlinks_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hosts"), "x").unwrap();
        // An absolute symlink in the container: /x -> /tmp.
        std::os::unix::fs::symlink("/tmp", root.join("x")).unwrap();
        let s = stat(&root, "/x").unwrap();
        assert_eq!(s.link_target, "/tmp");
        assert_ne!(s.mode & GO_MODE_SYMLINK, 0);
        assert_ne!(stat(&root, "/x/").unwrap().mode & GO_MODE_DIR, 0);
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        let data = b.into_inner().unwrap();
        extract(&root, "/x/", &data[..]).unwrap();
        assert_eq!(std::fs::read_to_string(root.join("tmp/f")).unwrap(), "hi");
        // Nothing escapes to the host's /tmp.
        assert!(
            !Path::new("/tmp/f").exists() || std::fs::read_to_string("/tmp/f").unwrap() != "hi"
        );
        let mut out = Vec::new();
        tar(&root, "/etc", None, &mut out).unwrap();
        let names: Vec<String> = tar::Archive::new(&out[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["etc/", "etc/hosts"]);
        assert!(matches!(stat(&root, "/nope"), Err(Error::NotFound(_))));
    }

    #[test]
    fn copy_up_fills_a_volume_with_owners_and_modes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::write(root.join("data/sub/f"), "x").unwrap();
        rustix::fs::chown(
            root.join("data/sub/f"),
            Some(rustix::fs::Uid::from_raw(1000)),
            None,
        )
        .unwrap();
        rustix::fs::chmod(root.join("data"), rustix::fs::Mode::from_raw_mode(0o1770)).unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        assert!(copy_up(&root, "/data", &vol).unwrap());
        assert_eq!(std::fs::read_to_string(vol.join("sub/f")).unwrap(), "x");
        let s = rustix::fs::stat(vol.join("sub/f")).unwrap();
        assert_eq!(s.st_uid, 1000);
        assert_eq!(rustix::fs::stat(&vol).unwrap().st_mode & 0o7777, 0o1770);
        assert!(!copy_up(&root, "/missing", &vol).unwrap());
    }
}
