//! Writing layer tars: ustar headers, PAX records for what ustar can't hold (long names, big
//! ids and sizes, xattrs), hardlinks as links, whiteouts in OCI form.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags, Stat};
use tar::{EntryType, Header};

use crate::error::{Error, Result};
use crate::fsutil::{self, Node, st};
use crate::whiteout;

const BLOCK: usize = 512;
const MAX_OCTAL_ID: u64 = 0o7777777;
const MAX_OCTAL_SIZE: u64 = 0o77777777777;

struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams tar entries built from inodes in berth's trees.
pub(crate) struct TarWriter<W: Write> {
    out: Counting<W>,
    buf: Vec<u8>,
    /// First tar path of each multiply-linked inode seen, for hardlink entries.
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// The entry went away or changed type between listing and reading.
fn vanished(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EINVAL)
    )
}

fn werr(e: io::Error) -> Error {
    Error::io("writing layer tar")(e)
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        TarWriter {
            out: Counting {
                inner: out,
                count: 0,
            },
            buf: Vec::new(),
            links: HashMap::new(),
        }
    }

    /// Appends inode `name` in `dir` (lstat'ed as `s`) as tar path `path`. Sockets are skipped
    /// (a tar can't hold them), and so is an entry that vanished or changed type under us (a
    /// running container).
    pub(crate) fn add(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        s: &Stat,
    ) -> Result<()> {
        let (h, tar_path, s, pax, file) = match self.prepare(dir, name, path, s) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(e) if vanished(&e) => return Ok(()),
            Err(e) => {
                return Err(Error::io(format!(
                    "adding {:?} to layer tar",
                    String::from_utf8_lossy(path)
                ))(e));
            }
        };
        self.emit(h, &tar_path, &s, pax, file.as_ref().map(|f| f.as_fd()))
    }

    /// Reads everything an entry needs before any byte of it is written.
    #[allow(clippy::type_complexity)]
    fn prepare(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        s: &Stat,
    ) -> io::Result<
        Option<(
            Header,
            Vec<u8>,
            Stat,
            Vec<(String, Vec<u8>)>,
            Option<OwnedFd>,
        )>,
    > {
        let mut h = Header::new_ustar();
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let mut s = *s;
        let mut file = None;
        let mut tar_path = path.to_vec();
        match st::kind(&s) {
            FileType::Directory => {
                tar_path.push(b'/');
                h.set_entry_type(EntryType::Directory);
                let d = fsutil::open_subdir(dir, name)?;
                xattrs_into(&Node::Fd(d.as_fd()), &mut pax)?;
            }
            FileType::RegularFile => {
                let key = (st::dev(&s), st::ino(&s));
                if st::nlink(&s) > 1
                    && let Some(first) = self.links.get(&key)
                {
                    h.set_entry_type(EntryType::Link);
                    let first = first.clone();
                    set_link(&mut h, &first, &mut pax);
                    return Ok(Some((h, tar_path, s, pax, None)));
                }
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let fd = rfs::openat(dir, name, flags, Mode::empty())?;
                s = rfs::fstat(&fd)?;
                if st::kind(&s) != FileType::RegularFile {
                    return Ok(None);
                }
                h.set_entry_type(EntryType::Regular);
                xattrs_into(&Node::Fd(fd.as_fd()), &mut pax)?;
                if st::nlink(&s) > 1 {
                    self.links.insert((st::dev(&s), st::ino(&s)), path.to_vec());
                }
                file = Some(fd);
            }
            FileType::Symlink => {
                h.set_entry_type(EntryType::Symlink);
                let target = rfs::readlinkat(dir, name, Vec::new())?;
                set_link(&mut h, target.as_bytes(), &mut pax);
                xattrs_into(&Node::at(dir, name), &mut pax)?;
            }
            k @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                h.set_entry_type(match k {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                });
                if k != FileType::Fifo {
                    let _ = h.set_device_major(rfs::major(st::rdev(&s)));
                    let _ = h.set_device_minor(rfs::minor(st::rdev(&s)));
                }
                xattrs_into(&Node::at(dir, name), &mut pax)?;
            }
            _ => return Ok(None),
        }
        Ok(Some((h, tar_path, s, pax, file)))
    }

    /// `parent/.wh.name`: deletes `name` when applied over the layers below.
    pub(crate) fn add_whiteout(
        &mut self,
        parent: &[u8],
        name: &[u8],
        s: Option<&Stat>,
    ) -> Result<()> {
        let mut p = parent.to_vec();
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(whiteout::PREFIX);
        p.extend_from_slice(name);
        self.marker(&p, s)
    }

    /// `dir/.wh..wh..opq`: hides everything the layers below have in `dir`.
    pub(crate) fn add_opaque(&mut self, dir: &[u8], s: &Stat) -> Result<()> {
        let mut p = dir.to_vec();
        p.push(b'/');
        p.extend_from_slice(whiteout::OPAQUE);
        self.marker(&p, Some(s))
    }

    fn marker(&mut self, path: &[u8], s: Option<&Stat>) -> Result<()> {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o600);
        let mut pax = Vec::new();
        if let Some(s) = s {
            set_ids(&mut h, st::uid(s), st::gid(s), &mut pax);
            h.set_mtime(st::mtime(s).tv_sec.max(0) as u64);
        } else {
            set_ids(&mut h, 0, 0, &mut pax);
            h.set_mtime(0);
        }
        h.set_size(0);
        set_path(&mut h, path, &mut pax);
        self.finish_header(h, pax)?;
        Ok(())
    }

    fn emit(
        &mut self,
        mut h: Header,
        path: &[u8],
        s: &Stat,
        mut pax: Vec<(String, Vec<u8>)>,
        data: Option<BorrowedFd<'_>>,
    ) -> Result<()> {
        h.set_mode(st::perm(s));
        set_ids(&mut h, st::uid(s), st::gid(s), &mut pax);
        // Seconds only, as Docker writes them: sub-second times would make PAX headers everywhere.
        h.set_mtime(st::mtime(s).tv_sec.max(0) as u64);
        let size = if data.is_some() { st::size(s) } else { 0 };
        if size > MAX_OCTAL_SIZE {
            pax.push(("size".into(), size.to_string().into_bytes()));
            h.set_size(0);
        } else {
            h.set_size(size);
        }
        set_path(&mut h, path, &mut pax);
        self.finish_header(h, pax)?;
        if let Some(fd) = data {
            self.copy_data(fd, size, path)?;
        }
        Ok(())
    }

    fn finish_header(&mut self, mut h: Header, pax: Vec<(String, Vec<u8>)>) -> Result<()> {
        if !pax.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &pax {
                pax_record(&mut data, k, v);
            }
            let mut ph = Header::new_ustar();
            ph.set_entry_type(EntryType::XHeader);
            ph.as_ustar_mut().expect("ustar").name[..14].copy_from_slice(b"././@PaxHeader");
            ph.set_mode(0o644);
            ph.set_size(data.len() as u64);
            ph.set_cksum();
            self.out.write_all(ph.as_bytes()).map_err(werr)?;
            self.out.write_all(&data).map_err(werr)?;
            self.pad(data.len() as u64)?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes()).map_err(werr)
    }

    /// Copies exactly `size` bytes; a file that shrank meanwhile is padded with zeros so the tar
    /// stays well-formed.
    fn copy_data(&mut self, fd: BorrowedFd<'_>, size: u64, path: &[u8]) -> Result<()> {
        if self.buf.len() < 1 << 20 {
            self.buf.resize(1 << 20, 0);
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match rustix::io::read(fd, &mut self.buf[..want]) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(Error::io(format!(
                        "reading {:?}",
                        String::from_utf8_lossy(path)
                    ))(e));
                }
            };
            if n == 0 {
                break;
            }
            self.out.write_all(&self.buf[..n]).map_err(werr)?;
            left -= n as u64;
        }
        if left > 0 {
            self.buf[..].fill(0);
            while left > 0 {
                let n = left.min(self.buf.len() as u64) as usize;
                self.out.write_all(&self.buf[..n]).map_err(werr)?;
                left -= n as u64;
            }
        }
        self.pad(size)
    }

    fn pad(&mut self, len: u64) -> Result<()> {
        let rem = (len % BLOCK as u64) as usize;
        if rem != 0 {
            self.out
                .write_all(&[0u8; BLOCK][..BLOCK - rem])
                .map_err(werr)?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker and returns the total bytes written.
    pub(crate) fn finish(mut self) -> Result<u64> {
        self.out.write_all(&[0u8; 2 * BLOCK]).map_err(werr)?;
        self.out.flush().map_err(werr)?;
        Ok(self.out.count)
    }
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    // The length prefix counts itself.
    let rest = 3 + key.len() + value.len();
    let mut len = rest + 1;
    while len.to_string().len() + rest > len {
        len += 1;
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn set_ids(h: &mut Header, uid: u32, gid: u32, pax: &mut Vec<(String, Vec<u8>)>) {
    for (id, key) in [(uid, "uid"), (gid, "gid")] {
        let v = u64::from(id);
        let field = if v > MAX_OCTAL_ID {
            pax.push((key.into(), v.to_string().into_bytes()));
            0
        } else {
            v
        };
        if key == "uid" {
            h.set_uid(field)
        } else {
            h.set_gid(field)
        }
    }
}

/// Name (100 bytes) and prefix (155) fields, or a PAX `path` record when the name doesn't fit.
fn set_path(h: &mut Header, path: &[u8], pax: &mut Vec<(String, Vec<u8>)>) {
    let u = h.as_ustar_mut().expect("ustar");
    if path.len() <= 100 {
        u.name[..path.len()].copy_from_slice(path);
        return;
    }
    // Split at a '/' so the prefix fits in 155 bytes and the rest in 100.
    let split = path
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'/' && i <= 155 && path.len() - i - 1 <= 100 && i + 1 < path.len())
        .map(|(i, _)| i)
        .next();
    if let Some(i) = split {
        u.prefix[..i].copy_from_slice(&path[..i]);
        let name = &path[i + 1..];
        u.name[..name.len()].copy_from_slice(name);
    } else {
        u.name.copy_from_slice(&path[..100]);
        pax.push(("path".into(), path.to_vec()));
    }
}

fn set_link(h: &mut Header, target: &[u8], pax: &mut Vec<(String, Vec<u8>)>) {
    if target.len() <= 100 {
        let _ = h.set_link_name_literal(target);
    } else {
        let _ = h.set_link_name_literal(&target[..100]);
        pax.push(("linkpath".into(), target.to_vec()));
    }
}

fn xattrs_into(node: &Node<'_>, pax: &mut Vec<(String, Vec<u8>)>) -> io::Result<()> {
    for (name, value) in fsutil::list_xattrs(node)? {
        let name = name.to_bytes();
        if fsutil::is_overlay_xattr(name) {
            continue;
        }
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        pax.push((format!("SCHILY.xattr.{name}"), value));
    }
    Ok(())
}

/// Writes the tree under `src` (not the root itself) as a layer tar.
pub(crate) fn write_tree(src: &Path, out: impl Write) -> Result<u64> {
    let root = fsutil::open_dir(src).map_err(Error::io(format!("opening {}", src.display())))?;
    let mut w = TarWriter::new(out);
    fsutil::walk(root, (), |v| {
        w.add(v.dir, v.name, v.path, v.stat)?;
        Ok(st::is_dir(v.stat).then_some(()))
    })?;
    w.finish()
}

/// Writes entry `name` of `dir` as tar path `prefix`, and, for a directory, everything below it
/// as `prefix/…` (the tar of one path that `docker cp` hands out).
pub(crate) fn write_entry(
    dir: BorrowedFd<'_>,
    name: &CStr,
    prefix: &[u8],
    out: impl Write,
) -> Result<u64> {
    let s = fsutil::lstat_at(dir, name).map_err(Error::io("reading the path to copy"))?;
    let mut w = TarWriter::new(out);
    w.add(dir, name, prefix, &s)?;
    if st::is_dir(&s) {
        let sub =
            fsutil::open_subdir(dir, name).map_err(Error::io("opening the directory to copy"))?;
        let mut path = Vec::new();
        fsutil::walk(sub, (), |v| {
            path.clear();
            path.extend_from_slice(prefix);
            path.push(b'/');
            path.extend_from_slice(v.path);
            w.add(v.dir, v.name, &path, v.stat)?;
            Ok(st::is_dir(v.stat).then_some(()))
        })?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::pax_record;

    #[test]
    fn pax_lengths_count_themselves() {
        for (k, v) in [
            ("path", vec![b'a'; 1]),
            ("path", vec![b'a'; 90]),
            ("path", vec![b'a'; 995]),
        ] {
            let mut out = Vec::new();
            pax_record(&mut out, k, &v);
            let sp = out.iter().position(|&b| b == b' ').unwrap();
            let n: usize = std::str::from_utf8(&out[..sp]).unwrap().parse().unwrap();
            assert_eq!(n, out.len());
        }
    }
}
