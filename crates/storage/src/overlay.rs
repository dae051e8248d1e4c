//! The overlay driver's own parts: mounting chains, short links, diffs of an upper dir.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::changes::{self, RawChange};
use crate::error::{Error, Result};
use crate::fsutil::{self, st};
use crate::layer::write::TarWriter;
use crate::mount::{self, MountError, Overlay};
use crate::snapshot::{DIFF, EMPTY, LINK, LINKS, Snapshotter, VOLATILE, WORK};
use crate::whiteout;

pub(crate) enum Target<'a> {
    /// Attach at this path in the caller's mount namespace.
    Attach(&'a Path),
    /// Keep it detached; hand back a directory fd on it.
    Detached,
}

/// A detached read-only overlay: `root` reads it; `_mnt` keeps it alive.
pub(crate) struct View {
    _mnt: Option<OwnedFd>,
    pub root: OwnedFd,
}

const LINK_LEN: usize = 26;

fn valid_link(s: &str) -> bool {
    s.len() == LINK_LEN
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Gives the snapshot in `dir` (to be published as `id`) a short link `l/NAME -> ../id/diff`,
/// reusing the one it names if that still exists. Returns the name.
pub(crate) fn make_link(sn: &Snapshotter, dir: &Path, id: &str) -> Result<String> {
    let links = sn.root.join(LINKS);
    if let Ok(name) = std::fs::read_to_string(dir.join(LINK)) {
        let name = name.trim();
        if valid_link(name) {
            match std::os::unix::fs::symlink(format!("../{id}/{DIFF}"), links.join(name)) {
                Ok(()) => return Ok(name.to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Ok(name.to_string());
                }
                Err(e) => return Err(Error::io(format!("creating link for {id}"))(e)),
            }
        }
    }
    let name = fsutil::random_name(LINK_LEN);
    std::os::unix::fs::symlink(format!("../{id}/{DIFF}"), links.join(&name))
        .map_err(Error::io(format!("creating link for {id}")))?;
    fsutil::write_file_atomic(dir, LINK, name.as_bytes())?;
    Ok(name)
}

/// Removes links whose snapshot is gone (a crash between link and rename, or mid-removal).
pub(crate) fn prune_links(sn: &Snapshotter) {
    let Ok(rd) = std::fs::read_dir(sn.root.join(LINKS)) else {
        return;
    };
    for e in rd.flatten() {
        if std::fs::metadata(e.path()).is_err() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Mounts the committed chain (nearest first) with `upper` (an active snapshot) on top, or
/// read-only without one.
pub(crate) fn mount(
    sn: &Snapshotter,
    chain: &[String],
    upper: Option<&str>,
    target: Target<'_>,
) -> Result<Option<View>> {
    let mut lowers: Vec<PathBuf> = chain.iter().map(|id| sn.diff(id)).collect();
    // overlayfs needs a lowerdir, and two when there is no upper dir.
    let pad = lowers.is_empty() || (upper.is_none() && lowers.len() == 1);
    if pad {
        lowers.push(sn.root.join(EMPTY));
    }
    let upper_dirs = upper.map(|k| (sn.diff(k), sn.dir(k).join(WORK)));
    let upper_refs = upper_dirs.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
    let readonly = upper.is_none();
    // A volatile snapshot: the kernel marks a volatile mount's workdir (`work/incompat/volatile`)
    // and refuses to mount it again; our volatile uppers are throwaway, so clear the mark.
    let volatile = upper.is_some_and(|k| sn.dir(k).join(VOLATILE).exists());
    if let (true, Some((_, w))) = (volatile, &upper_dirs) {
        let _ = fsutil::remove_all(&w.join("work").join("incompat"));
    }
    let what = || match upper {
        Some(k) => format!("mounting snapshot {k}"),
        None => format!(
            "mounting layer {}",
            chain.first().map_or("(empty)", |s| s.as_str())
        ),
    };
    if !sn.use_legacy_mount() {
        match mount::overlay_fsmount(&Overlay {
            lowers: &lowers,
            upper: upper_refs,
            readonly,
            volatile,
        }) {
            Ok(mnt) => {
                return match target {
                    Target::Attach(t) => {
                        mount::attach(&mnt, t).map_err(Error::io(format!(
                            "{} at {}",
                            what(),
                            t.display()
                        )))?;
                        Ok(None)
                    }
                    Target::Detached => {
                        let root = mount::open_root(&mnt).map_err(Error::io(what()))?;
                        Ok(Some(View {
                            _mnt: Some(mnt),
                            root,
                        }))
                    }
                };
            }
            Err(MountError::Unsupported(why)) => {
                tracing::info!(
                    "new mount API unusable for overlay ({why}); using mount(2) with short links"
                );
                sn.set_legacy_mount();
            }
            Err(MountError::Failed(e)) => return Err(Error::io(what())(e)),
        }
    }
    let mut rel = Vec::with_capacity(lowers.len());
    for id in chain {
        rel.push(format!("{LINKS}/{}", make_link(sn, &sn.dir(id), id)?));
    }
    if pad {
        rel.push(EMPTY.to_string());
    }
    let data = mount::legacy_data(&rel, upper_refs, volatile).map_err(Error::io(what()))?;
    match target {
        Target::Attach(t) => {
            match mount::overlay_legacy(&sn.root, data, t, readonly) {
                Ok(_) => {}
                // A kernel before 5.10 has no `volatile`: mount without it.
                Err(_) if volatile => {
                    let data =
                        mount::legacy_data(&rel, upper_refs, false).map_err(Error::io(what()))?;
                    mount::overlay_legacy(&sn.root, data, t, readonly)
                        .map_err(Error::io(what()))?;
                }
                Err(e) => return Err(Error::io(what())(e)),
            }
            Ok(None)
        }
        Target::Detached => {
            let scratch = sn
                .root
                .join(format!(".tmp-view-{}", fsutil::random_name(12)));
            std::fs::create_dir(&scratch).map_err(Error::io(what()))?;
            let r = mount::overlay_legacy_view(&sn.root, data, &scratch);
            let _ = std::fs::remove_dir(&scratch);
            let root = r.map_err(Error::io(what()))?;
            Ok(Some(View { _mnt: None, root }))
        }
    }
}

/// Checks that overlayfs with an upper dir mounts under the root and trusted xattrs (opaque
/// marks) can be set there.
pub(crate) fn probe(sn: &Snapshotter) -> std::result::Result<(), String> {
    let base = sn
        .root
        .join(format!(".tmp-probe-{}", fsutil::random_name(12)));
    let r = (|| {
        for d in ["lower", "upper", "work", "mnt"] {
            std::fs::create_dir_all(base.join(d)).map_err(|e| e.to_string())?;
        }
        let fd = fsutil::open_dir(&base.join("lower")).map_err(|e| e.to_string())?;
        rustix::fs::fsetxattr(
            &fd,
            whiteout::OPAQUE_XATTR,
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| format!("trusted xattrs unsupported: {e}"))?;
        let lowers = [base.join("lower")];
        let (upper, work) = (base.join("upper"), base.join("work"));
        let spec = Overlay {
            lowers: &lowers,
            upper: Some((&upper, &work)),
            readonly: false,
            volatile: false,
        };
        match mount::overlay_fsmount(&spec) {
            Ok(_detached) => Ok(()),
            Err(MountError::Failed(e)) => Err(e.to_string()),
            Err(MountError::Unsupported(_)) => {
                let data = mount::legacy_data(&["lower".into()], Some((&upper, &work)), false)
                    .map_err(|e| e.to_string())?;
                mount::overlay_legacy_view(&base, data, &base.join("mnt"))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    })();
    let _ = fsutil::remove_all(&base);
    r
}

pub(crate) fn changes(sn: &Snapshotter, key: &str, parent: Option<&str>) -> Result<Vec<RawChange>> {
    let chain = sn.chain(parent)?;
    let upper =
        fsutil::open_dir(&sn.diff(key)).map_err(Error::io(format!("opening snapshot {key}")))?;
    let view = if chain.is_empty() {
        None
    } else {
        mount(sn, &chain, None, Target::Detached)?
    };
    let old = match &view {
        Some(v) => Some(v.root.try_clone().map_err(Error::io("duplicating fd"))?),
        None => None,
    };
    let out = changes::compute(upper, old, changes::Mode::Overlay);
    drop(view);
    out
}

/// The upper dir as a layer tar: whiteout devices become `.wh.NAME`, opaque directories get a
/// `.wh..wh..opq` entry right after their own.
pub(crate) fn diff_tar(sn: &Snapshotter, key: &str, out: impl Write) -> Result<u64> {
    let upper =
        fsutil::open_dir(&sn.diff(key)).map_err(Error::io(format!("opening snapshot {key}")))?;
    let mut w = TarWriter::new(out);
    fsutil::walk(upper, (), |v| {
        if st::is_whiteout(v.stat) {
            let (parent, name) = fsutil::split_last(v.path);
            w.add_whiteout(parent, name, Some(v.stat))?;
            return Ok(None);
        }
        w.add(v.dir, v.name, v.path, v.stat)?;
        if !st::is_dir(v.stat) {
            return Ok(None);
        }
        let opaque = whiteout::is_opaque(v.dir.as_fd(), v.name).map_err(Error::io(format!(
            "reading xattrs of /{}",
            String::from_utf8_lossy(v.path)
        )))?;
        if opaque {
            w.add_opaque(v.path, v.stat)?;
        }
        Ok(Some(()))
    })?;
    w.finish()
}
