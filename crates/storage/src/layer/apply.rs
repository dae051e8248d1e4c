//! Applying a layer tar onto a directory. Containment is the kernel's job: every parent is
//! resolved with `openat2(RESOLVE_IN_ROOT)` against an fd of the destination and every final
//! component is made with a `*at` call that does not follow symlinks.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use tar::EntryType;

use super::{ApplyOptions, ApplyStats, WhiteoutMode};
use crate::error::{Error, Result};
use crate::fsutil::{self, Node, cstring, st};
use crate::whiteout::{self, Whiteout};

const COPY_BUF: usize = 1 << 20;

/// Counts bytes handed to the tar parser and remembers how many zero bytes ended the stream so
/// far, to tell "ended with the end-of-archive block" from "cut off between entries".
struct Tail<R> {
    inner: R,
    count: u64,
    zeros: u64,
}

impl<R: Read> Read for Tail<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = &buf[..n];
        match chunk.iter().rposition(|&b| b != 0) {
            Some(i) => self.zeros = (n - i - 1) as u64,
            None => self.zeros += n as u64,
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Metadata of one entry, read from its header and PAX records.
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

impl Meta {
    fn times(&self) -> Timestamps {
        Timestamps {
            last_access: self.mtime,
            last_modification: self.mtime,
        }
    }
    fn owner(&self) -> (Option<Uid>, Option<Gid>) {
        (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)))
    }
}

struct Applier<'o> {
    root: OwnedFd,
    opts: &'o ApplyOptions,
    /// The last parent directory resolved, kept because tars list siblings together. It stays
    /// valid: an entry only ever changes names below its own parent.
    cache_key: Vec<u8>,
    cache_fd: Option<OwnedFd>,
    buf: Vec<u8>,
    /// Remove mode: paths this layer put in place (with their ancestors), which an opaque marker
    /// must spare.
    layer_paths: HashSet<Vec<u8>>,
    dir_times: Vec<(Vec<u8>, Timespec)>,
    lowers: Option<Vec<OwnedFd>>,
    stats: ApplyStats,
}

pub(super) fn apply(dest: &Path, tar: impl Read, opts: &ApplyOptions) -> Result<ApplyStats> {
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(Error::io(format!("opening {}", dest.display())))?;
    let mut ap = Applier {
        root,
        opts,
        cache_key: Vec::new(),
        cache_fd: None,
        buf: vec![0; COPY_BUF],
        layer_paths: HashSet::new(),
        dir_times: Vec::new(),
        lowers: None,
        stats: ApplyStats::default(),
    };
    let reader = Tail {
        inner: BufReader::with_capacity(256 << 10, tar),
        count: 0,
        zeros: 0,
    };
    let mut archive = tar::Archive::new(reader);
    let mut last: Vec<u8> = Vec::new();
    let read_err = |last: &[u8]| {
        if last.is_empty() {
            "reading layer tar".to_string()
        } else {
            format!(
                "reading layer tar after entry {:?}",
                String::from_utf8_lossy(last)
            )
        }
    };
    for entry in archive.entries().map_err(Error::io(read_err(&last)))? {
        let mut entry = entry.map_err(|e| Error::io(read_err(&last))(e))?;
        last.clear();
        last.extend_from_slice(&entry.path_bytes());
        ap.entry(&mut entry)?;
    }
    let tail = archive.into_inner();
    if tail.zeros < 512 || tail.count % 512 != 0 {
        return Err(Error::Truncated {
            entry: String::from_utf8_lossy(&last).into_owned(),
            detail: format!(
                "the stream ends after {} bytes without the end-of-archive marker",
                tail.count
            ),
        });
    }
    ap.set_dir_times()?;
    // Whatever follows the end marker belongs to the blob too; let a digesting reader see it.
    let mut rest = tail.inner;
    io::copy(&mut rest, &mut io::sink()).map_err(Error::io("reading layer tar"))?;
    Ok(ap.stats)
}

fn is_missing(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR))
}

fn errno(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

impl Applier<'_> {
    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<()> {
        let kind = e.header().entry_type();
        if kind == EntryType::XGlobalHeader {
            return Ok(());
        }
        self.stats.entries += 1;
        let raw = e.path_bytes().into_owned();
        let path = fsutil::clean_path(&raw);
        if path.is_empty() {
            // The layer root ("./"): the destination's own metadata is not the layer's to set.
            return Ok(());
        }
        let (parent, base) = fsutil::split_last(&path);
        let (parent, base) = (parent.to_vec(), base.to_vec());
        match whiteout::classify(&base) {
            Whiteout::No => {}
            Whiteout::Meta => return Ok(()),
            Whiteout::Opaque => return self.opaque(&raw, &parent),
            Whiteout::Remove(name) => return self.whiteout(&raw, &parent, name),
        }
        let meta = self.meta(&raw, e)?;
        let name = cstring(&base).map_err(|_| Error::entry(&raw, "name contains a NUL byte"))?;
        let pfd = self.parent(&raw, &parent, true)?.expect("created");
        let res = match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.file(&raw, e, pfd.as_fd(), &name, &meta)
            }
            EntryType::Directory => self.dir(&raw, &path, pfd.as_fd(), &name, &meta),
            EntryType::Symlink => {
                let target = e.link_name_bytes().unwrap_or_default();
                if target.is_empty() {
                    return Err(Error::entry(&raw, "symlink without a target"));
                }
                let target = cstring(&target)
                    .map_err(|_| Error::entry(&raw, "symlink target contains NUL"))?;
                self.symlink(&raw, pfd.as_fd(), &name, &target, &meta)
            }
            EntryType::Link => {
                let target = fsutil::clean_path(&e.link_name_bytes().unwrap_or_default());
                self.hardlink(&raw, &path, &target, pfd.as_fd(), &name)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = e.header();
                let (ft, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    k => {
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if k == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rfs::makedev(major, minor))
                    }
                };
                self.node(&raw, pfd.as_fd(), &name, ft, dev, &meta)
            }
            other => Err(Error::entry(
                &raw,
                format!("unsupported tar entry type {:?}", other.as_byte() as char),
            )),
        };
        self.put_parent(&parent, pfd);
        res?;
        if self.opts.whiteouts == WhiteoutMode::Remove {
            self.note_layer_path(&path);
        }
        Ok(())
    }

    fn meta<R: Read>(&self, raw: &[u8], e: &mut tar::Entry<'_, R>) -> Result<Meta> {
        let h = e.header();
        let bad = |what: &str| Error::entry(raw, format!("invalid {what} in tar header"));
        let old = h.as_old();
        let uid = numeric(&old.uid, h.uid()).ok_or_else(|| bad("uid"))?;
        let uid = u32::try_from(uid).map_err(|_| bad("uid"))?;
        let gid = numeric(&old.gid, h.gid()).ok_or_else(|| bad("gid"))?;
        let gid = u32::try_from(gid).map_err(|_| bad("gid"))?;
        let mode =
            numeric(&old.mode, h.mode().map(u64::from)).ok_or_else(|| bad("mode"))? as u32 & 0o7777;
        let mut mtime = Timespec {
            tv_sec: numeric(&old.mtime, h.mtime())
                .ok_or_else(|| bad("mtime"))?
                .min(i64::MAX as u64) as i64,
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(exts) = e
            .pax_extensions()
            .map_err(Error::io("reading PAX header"))?
        {
            for ext in exts {
                let ext = ext.map_err(|_| bad("PAX record"))?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    if fsutil::is_overlay_xattr(name) {
                        tracing::debug!(
                            "ignoring overlay xattr {:?} on {:?}",
                            String::from_utf8_lossy(name),
                            String::from_utf8_lossy(raw)
                        );
                        continue;
                    }
                    let name = cstring(name).map_err(|_| bad("xattr name"))?;
                    xattrs.push((name, ext.value_bytes().to_vec()));
                } else if key == b"mtime" {
                    mtime = parse_pax_time(ext.value_bytes()).ok_or_else(|| bad("PAX mtime"))?;
                }
            }
        }
        Ok(Meta {
            uid,
            gid,
            mode,
            mtime,
            xattrs,
        })
    }

    /// The parent directory `rel` (an O_PATH fd), created with its missing ancestors (0755,
    /// root-owned, as Docker does) when `create`; `None` if absent and not `create`.
    fn parent(&mut self, raw: &[u8], rel: &[u8], create: bool) -> Result<Option<OwnedFd>> {
        if let Some(fd) = self.cache_fd.take()
            && self.cache_key == rel
        {
            return Ok(Some(fd));
        }
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        match fsutil::open_in_root(self.root.as_fd(), rel, flags) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if is_missing(&e) && !create => Ok(None),
            Err(e) if errno(&e) == Some(Errno::NOENT) => self.create_parents(raw, rel).map(Some),
            Err(e) if errno(&e) == Some(Errno::NOTDIR) => Err(Error::entry(
                raw,
                format!(
                    "parent {:?} is not a directory",
                    String::from_utf8_lossy(rel)
                ),
            )),
            Err(e) => Err(Error::io(format!(
                "resolving parent of {:?}",
                String::from_utf8_lossy(raw)
            ))(e)),
        }
    }

    fn put_parent(&mut self, rel: &[u8], fd: OwnedFd) {
        self.cache_key.clear();
        self.cache_key.extend_from_slice(rel);
        self.cache_fd = Some(fd);
    }

    fn create_parents(&mut self, raw: &[u8], rel: &[u8]) -> Result<OwnedFd> {
        let ctx = || {
            format!(
                "creating parent directories of {:?}",
                String::from_utf8_lossy(raw)
            )
        };
        let mut cur: Option<OwnedFd> = None;
        let mut end = 0;
        while end < rel.len() {
            let next = rel[end + 1..]
                .iter()
                .position(|&b| b == b'/')
                .map_or(rel.len(), |i| end + 1 + i);
            let start = if end == 0 { 0 } else { end + 1 };
            let (prefix, comp) = (&rel[..next], &rel[start..next]);
            end = next;
            match fsutil::open_in_root(self.root.as_fd(), prefix, OFlags::PATH | OFlags::DIRECTORY)
            {
                Ok(fd) => {
                    cur = Some(fd);
                    continue;
                }
                Err(e) if errno(&e) == Some(Errno::NOENT) => {}
                Err(e) if errno(&e) == Some(Errno::NOTDIR) => {
                    return Err(Error::entry(
                        raw,
                        format!("{:?} is not a directory", String::from_utf8_lossy(prefix)),
                    ));
                }
                Err(e) => return Err(Error::io(ctx())(e)),
            }
            let at = cur.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            let c = cstring(comp).map_err(Error::io(ctx()))?;
            match rfs::mkdirat(at, &c, Mode::from_raw_mode(0o755)) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    // Something is there yet resolution failed: a dangling symlink. Refuse
                    // rather than guess where it should lead.
                    return Err(Error::entry(
                        raw,
                        format!(
                            "parent {:?} is a dangling symlink",
                            String::from_utf8_lossy(prefix)
                        ),
                    ));
                }
                Err(e) => return Err(Error::io(ctx())(e)),
            }
            let fd = rfs::openat(
                at,
                &c,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(Error::io(ctx()))?;
            // mkdir's mode went through the umask; make it exactly 0755.
            let d = rfs::openat(
                &fd,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(Error::io(ctx()))?;
            rfs::fchmod(&d, Mode::from_raw_mode(0o755)).map_err(Error::io(ctx()))?;
            if self.opts.whiteouts == WhiteoutMode::Remove {
                self.note_layer_path(prefix);
            }
            cur = Some(fd);
        }
        cur.ok_or_else(|| Error::entry(raw, "empty parent"))
    }

    /// Records `path` and its ancestors as this layer's own (Remove mode's opaque handling).
    fn note_layer_path(&mut self, path: &[u8]) {
        let mut p = path;
        while !p.is_empty() {
            if self.layer_paths.contains(p) {
                return;
            }
            self.layer_paths.insert(p.to_vec());
            p = fsutil::split_last(p).0;
        }
    }

    /// Removes whatever is at `name` (any type, recursively) so an entry can take its place.
    fn clear(&self, raw: &[u8], dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> Result<()> {
        fsutil::remove_all_at(dir, name).map_err(Error::io(format!(
            "replacing {:?}",
            String::from_utf8_lossy(raw)
        )))
    }

    fn set_xattrs(&self, raw: &[u8], node: &Node<'_>, meta: &Meta) -> Result<()> {
        for (name, value) in &meta.xattrs {
            if let Err(e) = fsutil::set_xattr(node, name, value) {
                if !fsutil::xattr_refused(&e) {
                    return Err(Error::io(format!(
                        "setting xattr {name:?} on {:?}",
                        String::from_utf8_lossy(raw)
                    ))(e));
                }
                tracing::debug!(
                    "xattr {name:?} on {:?} refused by the filesystem: {e}",
                    String::from_utf8_lossy(raw)
                );
            }
        }
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        raw: &[u8],
        e: &mut tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &std::ffi::CStr,
        meta: &Meta,
    ) -> Result<()> {
        let size = e.size();
        if let Some(limit) = self.opts.size_limit
            && self.stats.size.saturating_add(size) > limit
        {
            return Err(Error::SizeLimit {
                limit,
                entry: String::from_utf8_lossy(raw).into_owned(),
            });
        }
        let ctx = || format!("writing {:?}", String::from_utf8_lossy(raw));
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rfs::openat(dir, name, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => {
                self.clear(raw, dir, name)?;
                rfs::openat(dir, name, flags, Mode::from_raw_mode(0o600))
                    .map_err(Error::io(ctx()))?
            }
            Err(err) => return Err(Error::io(ctx())(err)),
        };
        let mut f = File::from(fd);
        let mut got = 0u64;
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    return Err(Error::io(format!(
                        "reading layer tar entry {:?}",
                        String::from_utf8_lossy(raw)
                    ))(err));
                }
            };
            f.write_all(&self.buf[..n]).map_err(Error::io(ctx()))?;
            got += n as u64;
        }
        if got != size {
            return Err(Error::Truncated {
                entry: String::from_utf8_lossy(raw).into_owned(),
                detail: format!("it declares {size} bytes but only {got} follow"),
            });
        }
        self.stats.size += size;
        let (u, g) = meta.owner();
        rfs::fchown(&f, u, g).map_err(Error::io(ctx()))?;
        // After chown, which would clear setuid bits and security.capability.
        self.set_xattrs(raw, &Node::Fd(f.as_fd()), meta)?;
        rfs::fchmod(&f, Mode::from_raw_mode(meta.mode)).map_err(Error::io(ctx()))?;
        rfs::futimens(&f, &meta.times()).map_err(Error::io(ctx()))?;
        Ok(())
    }

    fn dir(
        &mut self,
        raw: &[u8],
        path: &[u8],
        at: BorrowedFd<'_>,
        name: &std::ffi::CStr,
        meta: &Meta,
    ) -> Result<()> {
        let ctx = || format!("creating directory {:?}", String::from_utf8_lossy(raw));
        match rfs::mkdirat(at, name, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let s = fsutil::lstat_at(at, name).map_err(Error::io(ctx()))?;
                if !st::is_dir(&s) {
                    self.clear(raw, at, name)?;
                    rfs::mkdirat(at, name, Mode::from_raw_mode(0o700)).map_err(Error::io(ctx()))?;
                }
            }
            Err(e) => return Err(Error::io(ctx())(e)),
        }
        let d = fsutil::open_subdir(at, name).map_err(Error::io(ctx()))?;
        let (u, g) = meta.owner();
        rfs::fchown(&d, u, g).map_err(Error::io(ctx()))?;
        self.set_xattrs(raw, &Node::Fd(d.as_fd()), meta)?;
        rfs::fchmod(&d, Mode::from_raw_mode(meta.mode)).map_err(Error::io(ctx()))?;
        self.dir_times.push((path.to_vec(), meta.mtime));
        Ok(())
    }

    fn symlink(
        &mut self,
        raw: &[u8],
        at: BorrowedFd<'_>,
        name: &std::ffi::CStr,
        target: &std::ffi::CStr,
        meta: &Meta,
    ) -> Result<()> {
        let ctx = || format!("creating symlink {:?}", String::from_utf8_lossy(raw));
        match rfs::symlinkat(target, at, name) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.clear(raw, at, name)?;
                rfs::symlinkat(target, at, name).map_err(Error::io(ctx()))?;
            }
            Err(e) => return Err(Error::io(ctx())(e)),
        }
        let (u, g) = meta.owner();
        rfs::chownat(at, name, u, g, AtFlags::SYMLINK_NOFOLLOW).map_err(Error::io(ctx()))?;
        if !meta.xattrs.is_empty() {
            self.set_xattrs(raw, &Node::at(at, name), meta)?;
        }
        rfs::utimensat(at, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(Error::io(ctx()))?;
        Ok(())
    }

    fn node(
        &mut self,
        raw: &[u8],
        at: BorrowedFd<'_>,
        name: &std::ffi::CStr,
        ft: FileType,
        dev: u64,
        meta: &Meta,
    ) -> Result<()> {
        let ctx = || format!("creating {:?}", String::from_utf8_lossy(raw));
        let mode = Mode::from_raw_mode(meta.mode);
        match rfs::mknodat(at, name, ft, mode, dev) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.clear(raw, at, name)?;
                rfs::mknodat(at, name, ft, mode, dev).map_err(Error::io(ctx()))?;
            }
            Err(e) => return Err(Error::io(ctx())(e)),
        }
        let (u, g) = meta.owner();
        rfs::chownat(at, name, u, g, AtFlags::SYMLINK_NOFOLLOW).map_err(Error::io(ctx()))?;
        if !meta.xattrs.is_empty() {
            self.set_xattrs(raw, &Node::at(at, name), meta)?;
        }
        // The node was just made by us (not a symlink), so following is moot.
        rfs::chmodat(at, name, mode, AtFlags::empty()).map_err(Error::io(ctx()))?;
        rfs::utimensat(at, name, &meta.times(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(Error::io(ctx()))?;
        Ok(())
    }

    /// A hardlink entry: `target` (cleaned) must already exist in the destination (or, for an
    /// overlay layer, in a lower layer). The link's last component is never followed, so a link
    /// to a symlink links the symlink itself. The target's metadata is left alone.
    fn hardlink(
        &mut self,
        raw: &[u8],
        path: &[u8],
        target: &[u8],
        at: BorrowedFd<'_>,
        name: &std::ffi::CStr,
    ) -> Result<()> {
        if target.is_empty() {
            return Err(Error::entry(raw, "hardlink to the layer root"));
        }
        if target == path {
            return Ok(());
        }
        let ctx = || format!("creating hardlink {:?}", String::from_utf8_lossy(raw));
        let (tp, tb) = fsutil::split_last(target);
        let tname = cstring(tb).map_err(|_| Error::entry(raw, "link target contains NUL"))?;
        let tdir =
            match fsutil::open_in_root(self.root.as_fd(), tp, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(fd) => Some(fd),
                Err(e) if is_missing(&e) => None,
                Err(e) => return Err(Error::io(ctx())(e)),
            };
        let ts = match &tdir {
            Some(d) => fsutil::lstat_opt(d.as_fd(), &tname).map_err(Error::io(ctx()))?,
            None => None,
        };
        let (Some(tdir), Some(ts)) = (tdir, ts) else {
            return self.link_from_lowers(raw, target, at, name);
        };
        if st::is_dir(&ts) {
            return Err(Error::entry(raw, "hardlink to a directory"));
        }
        match rfs::linkat(&tdir, &tname, at, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                let cur = fsutil::lstat_at(at, name).map_err(Error::io(ctx()))?;
                if st::dev(&cur) == st::dev(&ts) && st::ino(&cur) == st::ino(&ts) {
                    return Ok(());
                }
                self.clear(raw, at, name)?;
                rfs::linkat(&tdir, &tname, at, name, AtFlags::empty()).map_err(Error::io(ctx()))
            }
            Err(e) => Err(Error::io(ctx())(e)),
        }
    }

    /// Overlay layers: a hardlink to a file of a lower layer becomes a copy of it (what overlayfs
    /// copy-up would produce). Lowers are searched top first; a whiteout hides what is below.
    fn link_from_lowers(
        &mut self,
        raw: &[u8],
        target: &[u8],
        at: BorrowedFd<'_>,
        name: &std::ffi::CStr,
    ) -> Result<()> {
        let not_found = || {
            Error::entry(
                raw,
                format!(
                    "hardlink target {:?} does not exist",
                    String::from_utf8_lossy(target)
                ),
            )
        };
        if self.opts.whiteouts != WhiteoutMode::Overlay || self.opts.lowers.is_empty() {
            return Err(not_found());
        }
        if self.lowers.is_none() {
            let mut fds = Vec::new();
            for l in &self.opts.lowers {
                fds.push(
                    fsutil::open_dir(l)
                        .map_err(Error::io(format!("opening lower layer {}", l.display())))?,
                );
            }
            self.lowers = Some(fds);
        }
        let ctx = || {
            format!(
                "copying hardlink target for {:?}",
                String::from_utf8_lossy(raw)
            )
        };
        let (tp, tb) = fsutil::split_last(target);
        let tname = cstring(tb).map_err(|_| not_found())?;
        for l in self.lowers.as_ref().expect("opened") {
            let d = match fsutil::open_in_root(l.as_fd(), tp, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(d) => d,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(Error::io(ctx())(e)),
            };
            let Some(s) = fsutil::lstat_opt(d.as_fd(), &tname).map_err(Error::io(ctx()))? else {
                continue;
            };
            if st::is_whiteout(&s) {
                break;
            }
            if st::is_dir(&s) {
                return Err(Error::entry(raw, "hardlink to a directory"));
            }
            self.clear(raw, at, name)?;
            fsutil::copy_node(d.as_fd(), &tname, &s, at, name, &mut self.buf)
                .map_err(Error::io(ctx()))?;
            return Ok(());
        }
        Err(not_found())
    }

    fn whiteout(&mut self, raw: &[u8], parent: &[u8], name: &[u8]) -> Result<()> {
        if name.is_empty() || name == b"." || name == b".." {
            return Err(Error::entry(raw, "invalid whiteout name"));
        }
        let cname = cstring(name).map_err(|_| Error::entry(raw, "whiteout name contains NUL"))?;
        let ctx = || format!("applying whiteout {:?}", String::from_utf8_lossy(raw));
        match self.opts.whiteouts {
            WhiteoutMode::Overlay => {
                let pfd = self.parent(raw, parent, true)?.expect("created");
                let r = self.clear(raw, pfd.as_fd(), &cname).and_then(|()| {
                    whiteout::make_overlay_whiteout(pfd.as_fd(), &cname).map_err(Error::io(ctx()))
                });
                self.put_parent(parent, pfd);
                r
            }
            WhiteoutMode::Remove => {
                // A missing parent (even a dangling symlink) means nothing to delete.
                let Some(pfd) = self.parent(raw, parent, false)? else {
                    return Ok(());
                };
                let r = self.clear(raw, pfd.as_fd(), &cname);
                self.put_parent(parent, pfd);
                r
            }
        }
    }

    fn opaque(&mut self, raw: &[u8], dir: &[u8]) -> Result<()> {
        let ctx = || format!("applying opaque marker {:?}", String::from_utf8_lossy(raw));
        match self.opts.whiteouts {
            WhiteoutMode::Overlay => {
                let pfd = self.parent(raw, dir, true)?.expect("created");
                let r = rfs::openat(
                    &pfd,
                    c".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .and_then(|d| {
                    rfs::fsetxattr(&d, whiteout::OPAQUE_XATTR, b"y", rfs::XattrFlags::empty())
                })
                .map_err(Error::io(ctx()));
                self.put_parent(dir, pfd);
                r
            }
            WhiteoutMode::Remove => {
                let Some(pfd) = self.parent(raw, dir, false)? else {
                    return Ok(());
                };
                let r = self.prune(pfd.as_fd(), dir).map_err(Error::io(ctx()));
                self.put_parent(dir, pfd);
                r
            }
        }
    }

    /// Remove mode's opaque directory: deletes everything under `dir` that this layer did not
    /// put there (entries of this layer listed before the marker survive).
    fn prune(&self, dir: BorrowedFd<'_>, dir_rel: &[u8]) -> io::Result<()> {
        let mut stack: Vec<(OwnedFd, Vec<u8>)> = vec![(
            rfs::openat(
                dir,
                c".",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?,
            dir_rel.to_vec(),
        )];
        while let Some((fd, rel)) = stack.pop() {
            for n in fsutil::read_names(fd.as_fd())? {
                let mut child = rel.clone();
                if !child.is_empty() {
                    child.push(b'/');
                }
                child.extend_from_slice(n.to_bytes());
                if !self.layer_paths.contains(&child) {
                    fsutil::remove_all_at(fd.as_fd(), &n)?;
                } else if fsutil::lstat_opt(fd.as_fd(), &n)?.is_some_and(|s| st::is_dir(&s)) {
                    stack.push((fsutil::open_subdir(fd.as_fd(), &n)?, child));
                }
            }
        }
        Ok(())
    }

    /// Directory mtimes go last: creating entries inside a directory changes its mtime.
    fn set_dir_times(&mut self) -> Result<()> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        for (p, t) in &self.dir_times {
            let d = match fsutil::open_in_root(self.root.as_fd(), p, flags) {
                Ok(d) => d,
                // Replaced by a later entry of the same layer.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) =>
                {
                    continue;
                }
                Err(e) => {
                    return Err(Error::io(format!(
                        "opening {:?}",
                        String::from_utf8_lossy(p)
                    ))(e));
                }
            };
            rfs::futimens(
                &d,
                &Timestamps {
                    last_access: *t,
                    last_modification: *t,
                },
            )
            .map_err(Error::io(format!(
                "setting times of {:?}",
                String::from_utf8_lossy(p)
            )))?;
        }
        Ok(())
    }
}

/// PAX times are decimal seconds with an optional fraction ("1700000000.123456789", maybe negative).
fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = 0;
    for (i, c) in frac.bytes().take(9).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        nanos += i64::from(c - b'0') * 10i64.pow(8 - i as u32);
    }
    if neg {
        let (mut s, mut n) = (-secs, -nanos);
        if n < 0 {
            s -= 1;
            n += 1_000_000_000;
        }
        Some(Timespec {
            tv_sec: s,
            tv_nsec: n as _,
        })
    } else {
        Some(Timespec {
            tv_sec: secs,
            tv_nsec: nanos as _,
        })
    }
}

/// A numeric header field, read as Go's archive/tar does: a field of only NULs or spaces is 0
/// (some tar writers leave unused fields empty).
fn numeric(field: &[u8], parsed: std::io::Result<u64>) -> Option<u64> {
    match parsed {
        Ok(v) => Some(v),
        Err(_) if field.iter().all(|b| *b == 0 || *b == b' ') => Some(0),
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{numeric, parse_pax_time};

    #[test]
    fn empty_numeric_fields_read_as_zero() {
        let bad = || Err(std::io::Error::other("not octal"));
        assert_eq!(numeric(&[0; 8], bad()), Some(0));
        assert_eq!(numeric(b"        ", bad()), Some(0));
        assert_eq!(numeric(b"12x\0\0\0\0\0", bad()), None);
        assert_eq!(numeric(b"0000755\0", Ok(0o755)), Some(0o755));
    }

    #[test]
    fn pax_times() {
        let t = parse_pax_time(b"1700000000.5").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (1_700_000_000, 500_000_000));
        let t = parse_pax_time(b"12").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (12, 0));
        let t = parse_pax_time(b"-1.25").unwrap();
        assert_eq!((t.tv_sec, t.tv_nsec), (-2, 750_000_000));
        assert!(parse_pax_time(b"x").is_none());
    }
}
