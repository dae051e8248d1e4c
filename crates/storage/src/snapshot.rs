//! The snapshotter: one directory per snapshot under the root, always built under a temporary
//! name and renamed into place, so a crash never leaves a half snapshot under its real name.
//!
//! ```text
//! <root>/driver            "overlay" or "copy", fixed when the root is first opened
//! <root>/l/<26 chars>      overlay: short link -> ../<id>/diff (legacy mount(2) lowerdirs)
//! <root>/empty/            overlay: stand-in lowerdir for parentless mounts
//! <root>/<id>/diff/        content (overlay: this layer's diff; copy: the full tree)
//! <root>/<id>/parent       parent id, if any
//! <root>/<id>/link         overlay, committed: the short link's name
//! <root>/<id>/active       marker of an active (writable) snapshot
//! <root>/<id>/work/        overlay, active: overlayfs workdir
//! <root>/<id>/volatile     overlay, active: mounted `volatile` (no syncs), synced at commit
//! <root>/.tmp-*            in-progress builds and removals (deleted at open)
//! <root>/.commit-<id>      a commit past its point of no return (finished at open)
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::changes::{self, Change};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::layer::{self, ApplyOptions, ApplyStats, WhiteoutMode};
use crate::{copy, mount, overlay};

/// Which snapshot driver a root uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// overlayfs: each layer holds only its own diff; containers get an overlay mount.
    Overlay,
    /// Plain copies: each snapshot is a full tree; containers get a bind mount. Works anywhere.
    Copy,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Overlay => "overlay",
            DriverKind::Copy => "copy",
        }
    }

    fn parse(s: &str) -> Option<DriverKind> {
        match s.trim() {
            "overlay" => Some(DriverKind::Overlay),
            "copy" => Some(DriverKind::Copy),
            _ => None,
        }
    }
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known about one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: String,
    pub parent: Option<String>,
    /// Writable (from `prepare`) rather than a committed layer.
    pub active: bool,
}

pub(crate) const DRIVER_FILE: &str = "driver";
pub(crate) const LINKS: &str = "l";
pub(crate) const EMPTY: &str = "empty";
pub(crate) const DIFF: &str = "diff";
pub(crate) const WORK: &str = "work";
const PARENT: &str = "parent";
pub(crate) const LINK: &str = "link";
const ACTIVE: &str = "active";
pub(crate) const VOLATILE: &str = "volatile";
const TMP_PREFIX: &str = ".tmp-";
const COMMIT_PREFIX: &str = ".commit-";
/// Deepest parent chain followed (overlayfs itself stops at 500 layers).
const MAX_DEPTH: usize = 500;

/// Snapshot ids name directories: keep them to a safe alphabet and clear of our own names.
fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && ![LINKS, EMPTY, DRIVER_FILE].contains(&id);
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// Marks `root` as the top of a directory hierarchy (`chattr +T`, ext2/3/4): the Orlov
/// allocator then places each new snapshot directory in a block group of its own choosing
/// instead of next to its siblings. On a filesystem without a journal, ext4 skips inodes freed
/// in the last ~30 s one inode-table read at a time, so after removing a few thousand files
/// (`builder prune`, `rmi`) creating files in the same groups was ~2 s slower for a
/// 7000-file build here; spread, the new ones land elsewhere. Best effort: other filesystems
/// ignore or refuse the flag.
fn spread_subdirectories(root: &Path) {
    use rustix::fs::IFlags;
    let Ok(fd) = fsutil::open_dir(root) else {
        return;
    };
    if let Ok(flags) = rustix::fs::ioctl_getflags(&fd)
        && !flags.contains(IFlags::TOPDIR)
    {
        let _ = rustix::fs::ioctl_setflags(&fd, flags | IFlags::TOPDIR);
    }
}

/// A directory under construction, removed on drop unless kept.
struct Building {
    path: PathBuf,
    keep: bool,
}

impl Drop for Building {
    fn drop(&mut self) {
        if !self.keep
            && let Err(e) = fsutil::remove_all(&self.path)
        {
            tracing::warn!("removing {}: {e}", self.path.display());
        }
    }
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(mode)
        .create(p)
        .map_err(Error::io(format!("creating {}", p.display())))
}

/// Snapshots of image layers and container filesystems, on one driver.
pub struct Snapshotter {
    pub(crate) root: PathBuf,
    kind: DriverKind,
    /// Set once the new mount API turned out unusable: use mount(2) with short links.
    pub(crate) legacy_mount: AtomicBool,
}

impl Snapshotter {
    /// Opens the snapshotter rooted at `root` (created if missing). The driver is the one the
    /// root was created with; for a new root `want` picks it, and `None` means overlay if a
    /// probe mount works here, else copy. Leftovers of a crash are cleaned up.
    pub fn open(root: &Path, want: Option<DriverKind>) -> Result<Snapshotter> {
        if !root.exists() {
            std::fs::create_dir_all(root)
                .map_err(Error::io(format!("creating {}", root.display())))?;
            // Layers hold setuid binaries: keep other users out of the tree.
            std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(Error::io(format!("chmod {}", root.display())))?;
        }
        let root = root
            .canonicalize()
            .map_err(Error::io(format!("resolving {}", root.display())))?;
        spread_subdirectories(&root);
        let stored = match std::fs::read_to_string(root.join(DRIVER_FILE)) {
            Ok(s) => Some(DriverKind::parse(&s).ok_or_else(|| {
                Error::Driver(format!(
                    "{} names an unknown driver {:?}",
                    root.join(DRIVER_FILE).display(),
                    s.trim()
                ))
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(Error::io(format!(
                    "reading {}",
                    root.join(DRIVER_FILE).display()
                ))(e));
            }
        };
        let mut sn = Snapshotter {
            root,
            kind: stored.unwrap_or(DriverKind::Copy),
            legacy_mount: AtomicBool::new(false),
        };
        sn.recover()?;
        let kind = match (stored, want) {
            (Some(s), Some(w)) if s != w => {
                return Err(Error::Driver(format!(
                    "{} holds {s} snapshots and cannot be opened with the {w} driver",
                    sn.root.display()
                )));
            }
            (Some(s), _) => s,
            (None, Some(DriverKind::Copy)) => DriverKind::Copy,
            (None, Some(DriverKind::Overlay)) => {
                overlay::probe(&sn)
                    .map_err(|why| Error::Driver(format!("overlayfs does not work here: {why}")))?;
                DriverKind::Overlay
            }
            (None, None) => match overlay::probe(&sn) {
                Ok(()) => DriverKind::Overlay,
                Err(why) => {
                    tracing::info!(
                        "overlayfs unusable on {} ({why}); using the copy driver",
                        sn.root.display()
                    );
                    DriverKind::Copy
                }
            },
        };
        sn.kind = kind;
        if stored.is_none() {
            fsutil::write_file_atomic(&sn.root, DRIVER_FILE, kind.as_str().as_bytes())?;
        }
        if kind == DriverKind::Overlay {
            for d in [LINKS, EMPTY] {
                let p = sn.root.join(d);
                if !p.is_dir() {
                    mkdir(&p, 0o755)?;
                }
            }
            overlay::prune_links(&sn);
        }
        Ok(sn)
    }

    pub fn kind(&self) -> DriverKind {
        self.kind
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub(crate) fn diff(&self, id: &str) -> PathBuf {
        self.root.join(id).join(DIFF)
    }

    /// Finishes commits that passed their point of no return and deletes temp directories.
    fn recover(&self) -> Result<()> {
        let rd = std::fs::read_dir(&self.root)
            .map_err(Error::io(format!("reading {}", self.root.display())))?;
        let mut tmps = Vec::new();
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_prefix(COMMIT_PREFIX) {
                if validate_id(id).is_err() || self.dir(id).exists() {
                    tmps.push(e.path());
                } else if let Err(err) = self.finish_commit(&e.path(), id) {
                    tracing::warn!("finishing interrupted commit of {id}: {err}");
                }
            } else if name.starts_with(TMP_PREFIX) {
                tmps.push(e.path());
            }
        }
        for t in tmps {
            tracing::info!("removing leftover {}", t.display());
            if let Err(e) = fsutil::remove_all(&t) {
                tracing::warn!("removing {}: {e}", t.display());
            }
        }
        Ok(())
    }

    fn building(&self) -> Result<Building> {
        let path = self
            .root
            .join(format!("{TMP_PREFIX}{}", fsutil::random_name(16)));
        mkdir(&path, 0o700)?;
        Ok(Building { path, keep: false })
    }

    /// Renames a finished build into place and makes the rename durable. `Ok(false)` if the
    /// name was taken meanwhile.
    fn publish(&self, mut b: Building, id: &str) -> Result<bool> {
        fsutil::syncfs(&b.path)?;
        match std::fs::rename(&b.path, self.dir(id)) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                return Ok(false);
            }
            Err(e) => return Err(Error::io(format!("publishing snapshot {id}"))(e)),
        }
        b.keep = true;
        fsutil::fsync_dir(&self.root)?;
        Ok(true)
    }

    pub fn exists(&self, id: &str) -> bool {
        validate_id(id).is_ok() && self.dir(id).is_dir()
    }

    fn is_active(&self, id: &str) -> bool {
        self.dir(id).join(ACTIVE).exists()
    }

    /// Parent and state of snapshot `id`.
    pub fn info(&self, id: &str) -> Result<SnapshotInfo> {
        validate_id(id)?;
        if !self.dir(id).is_dir() {
            return Err(Error::NotFound(id.to_string()));
        }
        let parent = match std::fs::read_to_string(self.dir(id).join(PARENT)) {
            Ok(p) => Some(p.trim().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("reading parent of {id}"))(e)),
        };
        Ok(SnapshotInfo {
            id: id.to_string(),
            parent,
            active: self.is_active(id),
        })
    }

    /// `parent` and its ancestors, nearest first; all must exist and be committed.
    pub(crate) fn chain(&self, parent: Option<&str>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut next = parent.map(str::to_string);
        while let Some(id) = next {
            validate_id(&id)?;
            if out.len() >= MAX_DEPTH || out.contains(&id) {
                return Err(Error::InvalidState {
                    id,
                    reason: "parent chain too deep or cyclic".into(),
                });
            }
            let info = self.info(&id)?;
            if info.active {
                return Err(Error::InvalidState {
                    id,
                    reason: "is an active snapshot, not a committed layer".into(),
                });
            }
            next = info.parent;
            out.push(id);
        }
        Ok(out)
    }

    /// Ids of all committed and active snapshots (for garbage collection by the caller).
    pub fn list(&self) -> Result<Vec<String>> {
        let rd = std::fs::read_dir(&self.root)
            .map_err(Error::io(format!("reading {}", self.root.display())))?;
        let mut ids: Vec<String> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| validate_id(n).is_ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Creates committed layer `id` on top of committed `parent`, filled by applying the
    /// (uncompressed) layer tar. Built under a temp name and renamed into place. If `id` exists
    /// already, nothing is read and zero stats are returned. `size_limit` caps the layer's
    /// regular-file bytes. The overlay driver does not need `parent` to exist yet (layers of
    /// one image may be unpacked in parallel); the copy driver does.
    pub fn create_layer(
        &self,
        id: &str,
        parent: Option<&str>,
        tar: impl Read,
        size_limit: Option<u64>,
    ) -> Result<ApplyStats> {
        validate_id(id)?;
        if let Some(p) = parent {
            validate_id(p)?;
        }
        if self.exists(id) {
            return Ok(ApplyStats::default());
        }
        let b = self.building()?;
        let diff = b.path.join(DIFF);
        mkdir(&diff, 0o755)?;
        let mut link = None;
        let stats = match self.kind {
            DriverKind::Overlay => {
                // Lower layers only serve hardlinks to files below; use them when all are there.
                let lowers = self
                    .chain(parent)
                    .map(|c| c.iter().map(|l| self.diff(l)).collect())
                    .unwrap_or_default();
                let opts = ApplyOptions {
                    whiteouts: WhiteoutMode::Overlay,
                    size_limit,
                    lowers,
                };
                let stats = layer::apply(&diff, tar, &opts)?;
                link = Some(overlay::make_link(self, &b.path, id)?);
                stats
            }
            DriverKind::Copy => {
                if let Some(p) = self.chain(parent)?.first() {
                    fsutil::copy_tree(&self.diff(p), &diff)?;
                }
                let opts = ApplyOptions {
                    whiteouts: WhiteoutMode::Remove,
                    size_limit,
                    lowers: Vec::new(),
                };
                layer::apply(&diff, tar, &opts)?
            }
        };
        if let Some(p) = parent {
            std::fs::write(b.path.join(PARENT), p).map_err(Error::io("writing parent"))?;
        }
        if !self.publish(b, id)? {
            tracing::debug!("layer {id} was created concurrently");
            if let Some(l) = link {
                let _ = std::fs::remove_file(self.root.join(LINKS).join(l));
            }
        }
        Ok(stats)
    }

    /// Removes snapshot `id`, committed or active (refused while an active one is mounted).
    /// Missing is fine. The caller makes sure no snapshot still in use is built on it.
    pub fn remove(&self, id: &str) -> Result<()> {
        validate_id(id)?;
        let dir = self.dir(id);
        if !dir.is_dir() {
            return Ok(());
        }
        if self.is_active(id) && self.is_mounted(id)? {
            return Err(Error::InvalidState {
                id: id.into(),
                reason: "is mounted; unmount it first".into(),
            });
        }
        let link = std::fs::read_to_string(dir.join(LINK)).ok();
        let tmp = self
            .root
            .join(format!("{TMP_PREFIX}rm-{}", fsutil::random_name(16)));
        match std::fs::rename(&dir, &tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("removing snapshot {id}"))(e)),
        }
        if let Some(l) = link {
            let _ = std::fs::remove_file(self.root.join(LINKS).join(l.trim()));
        }
        fsutil::remove_all(&tmp).map_err(Error::io(format!("removing snapshot {id}")))
    }

    /// Whether snapshot `id` is mounted somewhere now.
    pub fn is_mounted(&self, id: &str) -> Result<bool> {
        let diff = self.diff(id);
        let r = match self.kind {
            DriverKind::Overlay => mount::upper_in_use(&diff),
            DriverKind::Copy => mount::bound_anywhere(&diff),
        };
        r.map_err(Error::io("reading the mount table"))
    }

    /// Creates active (writable) snapshot `key` on top of committed `parent` (`None`: empty).
    pub fn prepare(&self, key: &str, parent: Option<&str>) -> Result<()> {
        validate_id(key)?;
        if self.exists(key) {
            return Err(Error::AlreadyExists(key.into()));
        }
        let chain = self.chain(parent)?;
        let b = self.building()?;
        let diff = b.path.join(DIFF);
        mkdir(&diff, 0o755)?;
        match self.kind {
            DriverKind::Overlay => mkdir(&b.path.join(WORK), 0o700)?,
            DriverKind::Copy => {
                if let Some(p) = chain.first() {
                    fsutil::copy_tree(&self.diff(p), &diff)?;
                }
            }
        }
        if let Some(p) = parent {
            std::fs::write(b.path.join(PARENT), p).map_err(Error::io("writing parent"))?;
        }
        std::fs::write(b.path.join(ACTIVE), b"").map_err(Error::io("writing active marker"))?;
        if !self.publish(b, key)? {
            return Err(Error::AlreadyExists(key.into()));
        }
        Ok(())
    }

    fn active(&self, key: &str) -> Result<SnapshotInfo> {
        let info = self.info(key)?;
        if !info.active {
            return Err(Error::InvalidState {
                id: key.into(),
                reason: "is a committed layer, not an active snapshot".into(),
            });
        }
        Ok(info)
    }

    /// Marks active snapshot `key` as throwaway until committed: the overlay driver then mounts
    /// it `volatile` (copy-up and unmount skip their fsyncs, the slow part of a build step that
    /// touches many lower files), and `commit` syncs it once. After a crash its content may be
    /// incomplete, so use it only for snapshots nobody needs after a crash (build steps).
    pub fn set_volatile(&self, key: &str) -> Result<()> {
        self.active(key)?;
        if self.kind == DriverKind::Overlay {
            std::fs::write(self.dir(key).join(VOLATILE), b"")
                .map_err(Error::io(format!("marking {key} volatile")))?;
        }
        Ok(())
    }

    /// Mounts active snapshot `key` at `target` (an existing directory) in the caller's mount
    /// namespace: overlay mount, or bind mount for the copy driver.
    pub fn mount(&self, key: &str, target: &Path) -> Result<()> {
        let info = self.active(key)?;
        match self.kind {
            DriverKind::Overlay => {
                let chain = self.chain(info.parent.as_deref())?;
                overlay::mount(self, &chain, Some(key), overlay::Target::Attach(target)).map(|_| ())
            }
            DriverKind::Copy => mount::bind(&self.diff(key), target, false)
                .map_err(Error::io(format!("mounting snapshot {key}"))),
        }
    }

    /// The overlay directories of active snapshot `key`: (lower layers nearest first, upper,
    /// work), for callers that mount it themselves (id-mapped layers for user namespaces).
    /// `None` for the copy driver.
    pub fn overlay_dirs(&self, key: &str) -> Result<Option<(Vec<PathBuf>, PathBuf, PathBuf)>> {
        let info = self.active(key)?;
        if self.kind != DriverKind::Overlay {
            return Ok(None);
        }
        let chain = self.chain(info.parent.as_deref())?;
        let mut lowers: Vec<PathBuf> = chain.iter().map(|id| self.diff(id)).collect();
        if lowers.is_empty() {
            lowers.push(self.root.join(EMPTY));
        }
        Ok(Some((lowers, self.diff(key), self.dir(key).join(WORK))))
    }

    /// Mounts committed layer `id` with its ancestors, read-only, at `target`.
    pub fn mount_readonly_view(&self, id: &str, target: &Path) -> Result<()> {
        validate_id(id)?;
        let chain = self.chain(Some(id))?;
        match self.kind {
            DriverKind::Overlay => {
                overlay::mount(self, &chain, None, overlay::Target::Attach(target)).map(|_| ())
            }
            DriverKind::Copy => mount::bind(&self.diff(id), target, true)
                .map_err(Error::io(format!("mounting layer {id}"))),
        }
    }

    /// Unmounts `target` (lazily detaching it if busy). Not mounted: nothing to do.
    pub fn unmount(&self, target: &Path) -> Result<()> {
        mount::unmount(target).map_err(Error::io(format!("unmounting {}", target.display())))
    }

    fn raw_changes(&self, key: &str) -> Result<Vec<changes::RawChange>> {
        let info = self.active(key)?;
        match self.kind {
            DriverKind::Overlay => overlay::changes(self, key, info.parent.as_deref()),
            DriverKind::Copy => copy::changes(self, key, info.parent.as_deref()),
        }
    }

    /// The changes in active snapshot `key` relative to its parent, sorted by path; parent
    /// directories of changed paths are reported as modified, as `docker diff` does.
    pub fn changes(&self, key: &str) -> Result<Vec<Change>> {
        Ok(self.raw_changes(key)?.iter().map(|c| c.public()).collect())
    }

    /// Writes an OCI layer tar of `key`'s changes (whiteouts `.wh.NAME`, opaque directories
    /// `.wh..wh..opq`) and returns its length. Works whether or not `key` is mounted.
    pub fn diff_tar(&self, key: &str, out: impl Write) -> Result<u64> {
        match self.kind {
            DriverKind::Overlay => {
                self.active(key)?;
                overlay::diff_tar(self, key, out)
            }
            DriverKind::Copy => {
                let changes = self.raw_changes(key)?;
                copy::diff_tar(self, key, &changes, out)
            }
        }
    }

    /// Turns active snapshot `key` (unmounted) into committed layer `id` without re-extracting
    /// anything; `key` is gone afterwards. Atomic: after a crash either `key` is intact or the
    /// commit is finished at the next open.
    pub fn commit(&self, key: &str, id: &str) -> Result<()> {
        validate_id(id)?;
        self.active(key)?;
        if self.exists(id) {
            return Err(Error::AlreadyExists(id.into()));
        }
        if self.is_mounted(key)? {
            return Err(Error::InvalidState {
                id: key.into(),
                reason: "is mounted; unmount it before committing".into(),
            });
        }
        let volatile = self.dir(key).join(VOLATILE);
        if volatile.exists() {
            // Its writes were never synced: one syncfs before it becomes a layer.
            fsutil::syncfs(&self.diff(key))?;
            std::fs::remove_file(&volatile).map_err(Error::io(format!("committing {key}")))?;
        }
        let staging = self.root.join(format!("{COMMIT_PREFIX}{id}"));
        std::fs::rename(self.dir(key), &staging)
            .map_err(Error::io(format!("committing {key} as {id}")))?;
        self.finish_commit(&staging, id)
    }

    fn finish_commit(&self, staging: &Path, id: &str) -> Result<()> {
        let ctx = || format!("committing {id}");
        fsutil::remove_all(&staging.join(WORK)).map_err(Error::io(ctx()))?;
        match std::fs::remove_file(staging.join(ACTIVE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(ctx())(e)),
        }
        if self.kind == DriverKind::Overlay {
            overlay::make_link(self, staging, id)?;
        }
        let b = Building {
            path: staging.to_path_buf(),
            keep: true,
        };
        let published = self.publish(b, id)?;
        if !published {
            fsutil::remove_all(staging).map_err(Error::io(ctx()))?;
            return Err(Error::AlreadyExists(id.into()));
        }
        Ok(())
    }

    /// Apparent bytes of the snapshot's own content (overlay: its diff; copy: its full tree,
    /// which is what it occupies), hardlinked files counted once.
    pub fn usage(&self, id: &str) -> Result<u64> {
        validate_id(id)?;
        if !self.dir(id).is_dir() {
            return Err(Error::NotFound(id.into()));
        }
        fsutil::tree_size(&self.diff(id))
    }

    #[cfg(test)]
    pub(crate) fn force_legacy_mount(&self) {
        self.legacy_mount.store(true, Ordering::Relaxed);
    }

    pub(crate) fn use_legacy_mount(&self) -> bool {
        self.legacy_mount.load(Ordering::Relaxed)
    }

    pub(crate) fn set_legacy_mount(&self) {
        self.legacy_mount.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::validate_id;

    #[test]
    fn ids() {
        assert!(validate_id(&"a".repeat(64)).is_ok());
        assert!(validate_id("abc-init").is_ok());
        for bad in [
            "",
            ".tmp-x",
            "a/b",
            "..",
            "l",
            "empty",
            "driver",
            "-x",
            &"a".repeat(129),
        ] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
