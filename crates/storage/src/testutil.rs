//! Test helpers: hand-built layer tars (any name, even hostile ones), tree dumps for comparing
//! directories, mount guards.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::fsutil::{self, Node};
use crate::snapshot::Snapshotter;

/// Builds a tar entry by entry, writing names verbatim (`../x`, `/etc`, `.wh...`).
pub(crate) struct TarBuf {
    pub out: Vec<u8>,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

impl TarBuf {
    pub(crate) fn new() -> Self {
        TarBuf {
            out: Vec::new(),
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
        }
    }

    pub(crate) fn entry(
        &mut self,
        kind: EntryType,
        name: &[u8],
        link: Option<&[u8]>,
        mode: u32,
        data: &[u8],
        pax: &[(&str, &[u8])],
    ) -> &mut Self {
        let mut pax: Vec<(String, Vec<u8>)> = pax
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        let mut h = Header::new_ustar();
        h.set_entry_type(kind);
        if name.len() <= 100 {
            h.as_ustar_mut().unwrap().name[..name.len()].copy_from_slice(name);
        } else {
            h.as_ustar_mut().unwrap().name.copy_from_slice(&name[..100]);
            pax.push(("path".into(), name.to_vec()));
        }
        if let Some(l) = link {
            if l.len() <= 100 {
                h.set_link_name_literal(l).unwrap();
            } else {
                pax.push(("linkpath".into(), l.to_vec()));
            }
        }
        h.set_mode(mode);
        h.set_uid(self.uid);
        h.set_gid(self.gid);
        h.set_mtime(self.mtime);
        h.set_size(data.len() as u64);
        h.set_cksum();
        if !pax.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &pax {
                let rest = 3 + k.len() + v.len();
                let mut len = rest + 1;
                while len.to_string().len() + rest > len {
                    len += 1;
                }
                data.extend_from_slice(format!("{len} {k}=").as_bytes());
                data.extend_from_slice(v);
                data.push(b'\n');
            }
            let mut ph = Header::new_ustar();
            ph.set_entry_type(EntryType::XHeader);
            ph.set_size(data.len() as u64);
            ph.set_cksum();
            self.block(ph.as_bytes(), &data);
        }
        self.block(h.as_bytes(), data);
        self
    }

    fn block(&mut self, header: &[u8], data: &[u8]) {
        self.out.extend_from_slice(header);
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.resize(self.out.len() + pad, 0);
    }

    pub(crate) fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.entry(EntryType::Directory, name.as_bytes(), None, mode, b"", &[])
    }
    pub(crate) fn file(&mut self, name: &str, data: &[u8], mode: u32) -> &mut Self {
        self.entry(EntryType::Regular, name.as_bytes(), None, mode, data, &[])
    }
    pub(crate) fn symlink(&mut self, target: &str, name: &str) -> &mut Self {
        self.entry(
            EntryType::Symlink,
            name.as_bytes(),
            Some(target.as_bytes()),
            0o777,
            b"",
            &[],
        )
    }
    pub(crate) fn link(&mut self, target: &str, name: &str) -> &mut Self {
        self.entry(
            EntryType::Link,
            name.as_bytes(),
            Some(target.as_bytes()),
            0o644,
            b"",
            &[],
        )
    }

    /// The tar with its end-of-archive marker.
    pub(crate) fn finish(&self) -> Vec<u8> {
        let mut v = self.out.clone();
        v.extend_from_slice(&[0u8; 1024]);
        v
    }
}

/// What we compare of one tree entry.
pub(crate) fn describe(p: &Path, with_mtime: bool) -> String {
    let m = std::fs::symlink_metadata(p).unwrap();
    let ft = m.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        "dir".to_string()
    } else if ft.is_symlink() {
        format!("symlink->{}", std::fs::read_link(p).unwrap().display())
    } else if ft.is_file() {
        format!(
            "file:{:?}",
            String::from_utf8_lossy(&std::fs::read(p).unwrap())
        )
    } else if ft.is_char_device() || ft.is_block_device() {
        format!(
            "dev{}:{}",
            if ft.is_char_device() { 'c' } else { 'b' },
            m.rdev()
        )
    } else if ft.is_fifo() {
        "fifo".into()
    } else {
        "other".into()
    };
    let c = fsutil::cstring(p.as_os_str().as_bytes()).unwrap();
    let xattrs: Vec<String> = fsutil::list_xattrs(&Node::Path(c))
        .unwrap()
        .into_iter()
        .filter(|(n, _)| !fsutil::is_overlay_xattr(n.to_bytes()))
        .map(|(n, v)| format!("{}={}", n.to_string_lossy(), String::from_utf8_lossy(&v)))
        .collect();
    let mut s = format!(
        "{kind} mode={:o} uid={} gid={} xattrs={xattrs:?}",
        m.mode() & 0o7777,
        m.uid(),
        m.gid()
    );
    if with_mtime && !ft.is_symlink() {
        s.push_str(&format!(" mtime={}", m.mtime()));
    }
    s
}

/// Every entry under `root` (not `root` itself), relative path -> description.
pub(crate) fn dump(root: &Path, with_mtime: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel)).unwrap() {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let full = root.join(&r);
            out.insert(
                r.to_string_lossy().into_owned(),
                describe(&full, with_mtime),
            );
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            }
        }
    }
    out
}

/// Unmounts on drop, so a failing test never leaves a mount behind.
pub(crate) struct MountGuard<'a> {
    pub sn: &'a Snapshotter,
    pub target: PathBuf,
}

impl Drop for MountGuard<'_> {
    fn drop(&mut self) {
        let _ = self.sn.unmount(&self.target);
    }
}

/// Removes a temp dir only after checking nothing is mounted beneath it.
pub(crate) struct Scratch(pub tempfile::TempDir);

impl Scratch {
    pub(crate) fn new() -> Scratch {
        Scratch(
            tempfile::Builder::new()
                .prefix("berth-storage-test")
                .tempdir_in("/var/tmp")
                .unwrap(),
        )
    }
    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Anything still mounted below (a test bug) is detached first: never delete through a mount.
        let base = self.0.path().to_path_buf();
        if let Ok(ms) = crate::mount::mountinfo() {
            for m in ms.iter().rev() {
                if m.mount_point.starts_with(&base) {
                    let _ = crate::mount::unmount(&m.mount_point);
                }
            }
        }
    }
}

/// Same inode, after resolving `rel` (symlinks included) inside `root`.
pub(crate) fn resolve_stat(root: &Path, rel: &str) -> rustix::fs::Stat {
    use std::os::fd::AsFd;
    let r = fsutil::open_dir(root).unwrap();
    let fd = fsutil::open_in_root(
        r.as_fd(),
        rel.trim_start_matches('/').as_bytes(),
        rustix::fs::OFlags::PATH,
    )
    .unwrap();
    rustix::fs::fstat(&fd).unwrap()
}

pub(crate) fn same_file(root: &Path, a: &str, b: &str) -> bool {
    use fsutil::st;
    let (x, y) = (resolve_stat(root, a), resolve_stat(root, b));
    st::dev(&x) == st::dev(&y) && st::ino(&x) == st::ino(&y)
}
