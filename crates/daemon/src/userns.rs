//! `--userns-remap default|user[:group]`: containers get a user namespace whose root is an
//! unprivileged host uid from /etc/subuid and /etc/subgid, as dockerd's remapping does.
//!
//! - `default` uses the `berth` entries and appends them (a free 65536-id range above every
//!   existing one) when missing; the files are rewritten crash-safely (temp + fsync + rename).
//! - The rootfs: overlay layers are mounted id-mapped (`MOUNT_ATTR_IDMAP`, each lower layer
//!   seen shifted into the range) with the container's own upper dir plain, its root owned by
//!   the mapped root, so the writable layer holds host-shifted ids as docker's does. The copy
//!   driver's per-container tree is shifted (chowned) in place once instead.
//! - Volumes' roots and the bundle's /etc files are owned by the mapped root.
//! - `--userns host` opts a container out; `--privileged`, `--network host` and `--pid host`
//!   need it, with docker's messages.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use berth_api::engine::HostConfig;
use berth_runtime::spec::{IdMapping, Namespace, Spec};

use crate::containers::ContainerRecord;
use crate::daemon::Daemon;
use crate::http::ApiError;

/// The name `--userns-remap default` uses in /etc/subuid and /etc/subgid.
pub const DEFAULT_NAME: &str = "berth";
/// Size of the range `default` adds.
const DEFAULT_SIZE: u64 = 65536;
/// Ranges `default` adds start no lower than this (shadow-utils' SUB_UID_MIN).
const DEFAULT_MIN: u64 = 100000;

/// The daemon's mapping.
#[derive(Debug)]
pub struct Remap {
    /// As given: `default`, `user` or `user:group`.
    pub spec: String,
    pub uids: Vec<IdMapping>,
    pub gids: Vec<IdMapping>,
    /// The user namespace id-mapped mounts use (made once).
    ns: Mutex<Option<Arc<OwnedFd>>>,
}

impl Remap {
    /// Host (uid, gid) of the container's root.
    pub fn root(&self) -> (u32, u32) {
        (
            map_id(&self.uids, 0).unwrap_or(0),
            map_id(&self.gids, 0).unwrap_or(0),
        )
    }

    fn userns(&self) -> anyhow::Result<Arc<OwnedFd>> {
        let mut g = self.ns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fd) = &*g {
            return Ok(fd.clone());
        }
        let fd = Arc::new(berth_runtime::userns::userns_fd(&self.uids, &self.gids)?);
        *g = Some(fd.clone());
        Ok(fd)
    }
}

/// Container id → host id through `maps`.
pub fn map_id(maps: &[IdMapping], id: u32) -> Option<u32> {
    maps.iter().find_map(|m| {
        (id >= m.container_id && (id - m.container_id) < m.size)
            .then(|| m.host_id + (id - m.container_id))
    })
}

/// Reads the daemon's mapping (creating the `berth` entries for `default`).
pub fn resolve(spec: &str) -> anyhow::Result<Remap> {
    resolve_in(Path::new("/etc"), spec)
}

fn lookup_db(path: &Path, name: &str) -> anyhow::Result<Option<(String, u32)>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for l in text.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 3 {
            continue;
        }
        if f[0] == name || f[2] == name {
            return Ok(Some((f[0].to_string(), f[2].parse().unwrap_or(0))));
        }
    }
    Ok(None)
}

/// Subordinate ranges of `name` (or its numeric id) in a subuid/subgid file, in file order.
fn sub_ranges(text: &str, name: &str, id: Option<u32>) -> Vec<(u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            if f.len() != 3 {
                return None;
            }
            let matches = f[0] == name || id.is_some_and(|i| f[0] == i.to_string());
            let (start, count) = (f[1].parse().ok()?, f[2].parse().ok()?);
            matches.then_some((start, count))
        })
        .collect()
}

fn to_mappings(ranges: &[(u64, u64)]) -> anyhow::Result<Vec<IdMapping>> {
    let mut out = Vec::new();
    let mut next: u64 = 0;
    for &(start, count) in ranges {
        if count == 0 || start + count > u32::MAX as u64 || next + count > u32::MAX as u64 {
            bail!("invalid subordinate id range {start}:{count}");
        }
        out.push(IdMapping {
            container_id: next as u32,
            host_id: start as u32,
            size: count as u32,
        });
        next += count;
    }
    Ok(out)
}

/// Appends `name:<free start>:65536` to a subuid/subgid file unless `name` has a range;
/// crash-safe (temp file, fsync, rename, fsync of the directory).
fn ensure_entry(path: &Path, name: &str) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if !sub_ranges(&text, name, None).is_empty() {
        return Ok(());
    }
    let end = text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.trim().split(':').collect();
            (f.len() == 3).then(|| Some(f[1].parse::<u64>().ok()? + f[2].parse::<u64>().ok()?))?
        })
        .max()
        .unwrap_or(0)
        .max(DEFAULT_MIN);
    let mut new = text.clone();
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&format!("{name}:{end}:{DEFAULT_SIZE}\n"));
    atomic_replace(path, new.as_bytes())
}

/// Replaces `path` with `data`, keeping its mode and owner; a crash leaves the old or the new
/// file, never a torn one.
pub fn atomic_replace(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.berth-{}", std::process::id()));
    let old = std::fs::metadata(path).ok();
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(data)?;
        match &old {
            Some(md) => {
                std::fs::set_permissions(
                    &tmp,
                    std::fs::Permissions::from_mode(md.mode() & 0o7777),
                )?;
                std::os::unix::fs::chown(&tmp, Some(md.uid()), Some(md.gid()))?;
            }
            None => std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?,
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.with_context(|| format!("writing {}", path.display()))
}

use std::os::unix::fs::PermissionsExt;

fn resolve_in(etc: &Path, spec: &str) -> anyhow::Result<Remap> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string())),
        None => (spec.to_string(), None),
    };
    if user.is_empty() || group.as_deref() == Some("") {
        bail!("invalid --userns-remap value {spec:?}: want default, user or user:group");
    }
    let (subuid, subgid) = (etc.join("subuid"), etc.join("subgid"));
    let (uname, uid, gname, gid) = if user == "default" {
        ensure_entry(&subuid, DEFAULT_NAME)?;
        ensure_entry(&subgid, DEFAULT_NAME)?;
        (
            DEFAULT_NAME.to_string(),
            None,
            DEFAULT_NAME.to_string(),
            None,
        )
    } else {
        let (uname, uid) = match lookup_db(&etc.join("passwd"), &user)? {
            Some((n, id)) => (n, Some(id)),
            None if user.parse::<u32>().is_ok() => (user.clone(), user.parse().ok()),
            None => bail!(
                "Can't create ID mappings: getent unable to find entry \"{user}\" in passwd database"
            ),
        };
        let gname = group.clone().unwrap_or_else(|| uname.clone());
        let gid = match lookup_db(&etc.join("group"), &gname)? {
            Some((n, id)) => Some((n, id)),
            None if gname.parse::<u32>().is_ok() => Some((gname.clone(), gname.parse()?)),
            None if group.is_some() => bail!(
                "Can't create ID mappings: getent unable to find entry \"{gname}\" in group database"
            ),
            None => None,
        };
        let (gname, gid) = match gid {
            Some((n, id)) => (n, Some(id)),
            None => (gname, None),
        };
        (uname, uid, gname, gid)
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let ur = sub_ranges(&read(&subuid), &uname, uid);
    let gr = sub_ranges(&read(&subgid), &gname, gid);
    if ur.is_empty() {
        bail!("Can't create ID mappings: no subuid ranges found for user \"{uname}\"");
    }
    if gr.is_empty() {
        bail!("Can't create ID mappings: no subgid ranges found for group \"{gname}\"");
    }
    Ok(Remap {
        spec: spec.to_string(),
        uids: to_mappings(&ur)?,
        gids: to_mappings(&gr)?,
        ns: Mutex::new(None),
    })
}

/// Whether this container is remapped (the daemon remaps and it did not say `--userns host`).
pub fn applies(d: &Daemon, hc: &HostConfig) -> bool {
    d.config.userns.is_some() && hc.userns_mode.as_deref() != Some("host")
}

/// Create-time checks, with docker's messages.
pub fn check(d: &Daemon, hc: &HostConfig) -> Result<(), ApiError> {
    let mode = hc.userns_mode.as_deref().unwrap_or("");
    if !matches!(mode, "" | "host") {
        return Err(ApiError::bad_request(format!("invalid USER mode: {mode}")));
    }
    if !applies(d, hc) {
        return Ok(());
    }
    if hc.privileged.unwrap_or(false) {
        return Err(ApiError::bad_request(
            "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
        ));
    }
    if hc.network_mode.as_deref() == Some("host") {
        return Err(ApiError::bad_request(
            "cannot share the host's network namespace when user namespaces are enabled",
        ));
    }
    if hc.pid_mode.as_deref() == Some("host") {
        return Err(ApiError::bad_request(
            "cannot share the host PID namespace when user namespaces are enabled",
        ));
    }
    Ok(())
}

/// The user namespace of a `/proc/<pid>/ns/<kind>` path's process, when it is not ours.
fn foreign_userns_of(path: &str) -> Option<String> {
    let pid: u32 = path
        .strip_prefix("/proc/")?
        .split('/')
        .next()?
        .parse()
        .ok()?;
    let theirs = std::fs::metadata(format!("/proc/{pid}/ns/user")).ok()?;
    let ours = std::fs::metadata("/proc/self/ns/user").ok()?;
    (theirs.ino() != ours.ino() || theirs.dev() != ours.dev())
        .then(|| format!("/proc/{pid}/ns/user"))
}

/// Adds the user namespace to a remapped container's spec: a new one with the daemon's
/// mapping, or, when it shares a namespace with another remapped container, that one's (as
/// docker does: sharing net/ipc/pid namespaces means sharing the user namespace).
pub fn apply_spec(d: &Daemon, rec: &ContainerRecord, spec: &mut Spec) {
    let Some(remap) = d
        .config
        .userns
        .as_ref()
        .filter(|_| applies(d, &rec.host_config))
    else {
        return;
    };
    let joined = spec
        .linux
        .namespaces
        .iter()
        .filter_map(|n| n.path.as_deref())
        .find_map(foreign_userns_of);
    spec.linux.namespaces.retain(|n| n.kind != "user");
    match joined {
        Some(p) => spec.linux.namespaces.push(Namespace {
            kind: "user".into(),
            path: Some(p),
        }),
        None => {
            spec.linux.namespaces.push(Namespace {
                kind: "user".into(),
                path: None,
            });
            spec.linux.uid_mappings = remap.uids.clone();
            spec.linux.gid_mappings = remap.gids.clone();
        }
    }
}

/// After the spec is written: the bundle's /etc files and the roots of the container's
/// volumes belong to the mapped root.
pub fn chown_files(
    d: &Daemon,
    rec: &ContainerRecord,
    bundle: &Path,
    spec: &Spec,
) -> Result<(), ApiError> {
    let Some(remap) = d
        .config
        .userns
        .as_ref()
        .filter(|_| applies(d, &rec.host_config))
    else {
        return Ok(());
    };
    let (uid, gid) = remap.root();
    let chown = |p: &Path| {
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))
            .map_err(|e| ApiError::internal(format!("chown {}: {e}", p.display())))
    };
    for f in ["hostname", "hosts", "resolv.conf"] {
        let p = bundle.join(f);
        if p.exists() {
            chown(&p)?;
        }
    }
    for m in rec
        .mounts
        .iter()
        .filter(|m| m.kind == berth_volume::spec::Kind::Volume)
    {
        let Some(sm) = spec
            .mounts
            .iter()
            .find(|s| clean_path(&s.destination) == clean_path(&m.destination))
        else {
            continue;
        };
        let p = Path::new(&sm.source);
        if let Ok(md) = std::fs::symlink_metadata(p)
            && md.is_dir()
            && md.uid() == 0
            && md.gid() == 0
        {
            chown(p)?;
        }
    }
    Ok(())
}

fn clean_path(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// Mounts a remapped container's rootfs at `target`.
pub fn mount_rootfs(d: &Daemon, rec: &ContainerRecord, target: &Path) -> Result<(), ApiError> {
    let remap = d
        .config
        .userns
        .as_ref()
        .ok_or_else(|| ApiError::internal("no user namespace mapping"))?;
    let err = |e: anyhow::Error| {
        ApiError::internal(format!("mounting the container's filesystem: {e:#}"))
    };
    let sn = &d.images.snapshots;
    match sn.overlay_dirs(&rec.id).map_err(|e| err(e.into()))? {
        Some((lowers, upper, work)) => {
            let (uid, gid) = remap.root();
            let md = std::fs::symlink_metadata(&upper).map_err(|e| err(anyhow::Error::from(e)))?;
            if md.uid() == 0 && md.gid() == 0 {
                std::os::unix::fs::lchown(&upper, Some(uid), Some(gid))
                    .map_err(|e| err(anyhow::Error::from(e)))?;
            }
            let ns = remap.userns().map_err(err)?;
            idmapped_overlay(&lowers, &upper, &work, ns.as_fd(), target).map_err(err)
        }
        None => {
            // Copy driver: the container's own full tree, shifted once.
            let diff = sn.root().join(&rec.id).join("diff");
            let mark = d.containers.paths.bundle(&rec.id).join(".userns-shifted");
            let want = format!("{:?} {:?}", remap.uids, remap.gids);
            if std::fs::read_to_string(&mark).ok().as_deref() != Some(want.as_str()) {
                shift_tree(
                    &diff,
                    |u| map_id(&remap.uids, u).unwrap_or(u),
                    |g| map_id(&remap.gids, g).unwrap_or(g),
                )
                .map_err(err)?;
                std::fs::write(&mark, want).map_err(|e| err(e.into()))?;
            }
            sn.mount(&rec.id, target).map_err(|e| err(e.into()))
        }
    }
}

/// lchowns every entry under `root` through `uid`/`gid` (modes kept: chown clears set-id
/// bits).
fn shift_tree(
    root: &Path,
    uid: impl Fn(u32) -> u32,
    gid: impl Fn(u32) -> u32,
) -> anyhow::Result<()> {
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p).with_context(|| format!("{}", p.display()))?;
        let (u, g) = (uid(md.uid()), gid(md.gid()));
        if (u, g) != (md.uid(), md.gid()) {
            std::os::unix::fs::lchown(&p, Some(u), Some(g))
                .with_context(|| format!("chown {}", p.display()))?;
            if !md.file_type().is_symlink() {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
            }
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

/// An overlay of id-mapped lower layers (each an `open_tree` clone with `MOUNT_ATTR_IDMAP`,
/// never attached anywhere) under a plain upper dir, attached at `target`.
fn idmapped_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    userns: std::os::fd::BorrowedFd<'_>,
    target: &Path,
) -> anyhow::Result<()> {
    use rustix::mount as rm;
    let fs = rm::fsopen("overlay", rm::FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen(overlay)")?;
    let log = |what: String, e: rustix::io::Errno| {
        let mut buf = [0u8; 512];
        let n = rustix::io::read(&fs, &mut buf).unwrap_or(0);
        anyhow::anyhow!("{what}: {e} {}", String::from_utf8_lossy(&buf[..n]).trim())
    };
    rm::fsconfig_set_string(&fs, "source", "overlay").map_err(|e| log("source".into(), e))?;
    // Held until the overlay exists: closing a detached tree's last fd dissolves it, and
    // overlayfs clones the layers only when the superblock is created.
    let mut trees = Vec::new();
    for l in lowers {
        let tree = rm::open_tree(
            rustix::fs::CWD,
            l,
            rm::OpenTreeFlags::OPEN_TREE_CLONE | rm::OpenTreeFlags::OPEN_TREE_CLOEXEC,
        )
        .with_context(|| format!("open_tree {}", l.display()))?;
        let attr = libc::mount_attr {
            attr_set: libc::MOUNT_ATTR_IDMAP,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.as_raw_fd() as u64,
        };
        // SAFETY: mount_setattr on our detached mount with a valid mount_attr.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                &attr as *const libc::mount_attr,
                std::mem::size_of::<libc::mount_attr>(),
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("id-mapping {}", l.display()));
        }
        rm::fsconfig_set_fd(&fs, "lowerdir+", &tree)
            .map_err(|e| log(format!("lowerdir+ {}", l.display()), e))?;
        trees.push(tree);
    }
    let dir = |p: &Path| {
        rustix::fs::open(
            p,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .with_context(|| format!("opening {}", p.display()))
    };
    rm::fsconfig_set_fd(&fs, "upperdir", &dir(upper)?).map_err(|e| log("upperdir".into(), e))?;
    rm::fsconfig_set_fd(&fs, "workdir", &dir(work)?).map_err(|e| log("workdir".into(), e))?;
    for (k, v) in [
        ("index", "off"),
        ("redirect_dir", "nofollow"),
        ("metacopy", "off"),
    ] {
        rm::fsconfig_set_string(&fs, k, v).map_err(|e| log(format!("{k}={v}"), e))?;
    }
    rm::fsconfig_create(&fs).map_err(|e| log("creating overlay".into(), e))?;
    drop(trees);
    let mnt = rm::fsmount(
        &fs,
        rm::FsMountFlags::FSMOUNT_CLOEXEC,
        rm::MountAttrFlags::empty(),
    )
    .map_err(|e| log("fsmount".into(), e))?;
    rm::move_mount(
        &mnt,
        c"",
        rustix::fs::CWD,
        target,
        rm::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .with_context(|| format!("attaching at {}", target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_adds_a_free_range_once() {
        let dir = std::env::temp_dir().join(format!("bt-userns-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("subuid"), "alice:100000:65536\nbob:300000:1000").unwrap();
        let r = resolve_in(&dir, "default").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("subuid")).unwrap(),
            "alice:100000:65536\nbob:300000:1000\nberth:301000:65536\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("subgid")).unwrap(),
            "berth:100000:65536\n"
        );
        assert_eq!(r.root(), (301000, 100000));
        // Again: nothing added.
        let r = resolve_in(&dir, "default").unwrap();
        assert_eq!(r.uids.len(), 1);
        assert_eq!(
            std::fs::read_to_string(dir.join("subuid"))
                .unwrap()
                .lines()
                .count(),
            3
        );
        std::fs::write(dir.join("passwd"), "carol:x:1500:1500::/:/bin/sh\n").unwrap();
        std::fs::write(dir.join("group"), "carol:x:1500:\n").unwrap();
        std::fs::write(dir.join("subuid"), "carol:200000:10\n1500:500000:5\n").unwrap();
        std::fs::write(dir.join("subgid"), "carol:600000:15\n").unwrap();
        let r = resolve_in(&dir, "carol").unwrap();
        assert_eq!(map_id(&r.uids, 0), Some(200000));
        assert_eq!(map_id(&r.uids, 10), Some(500000));
        assert_eq!(map_id(&r.uids, 15), None);
        assert_eq!(r.root(), (200000, 600000));
        assert!(resolve_in(&dir, "nobody-here").is_err());
        assert!(resolve_in(&dir, "carol:nogroup").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Before a remapped container's writable layer becomes an image layer as it is (the
/// builder commits RUN steps by renaming the upper dir): its host-shifted ids go back to the
/// container's. Nothing for other containers.
pub fn unshift_upper(d: &Daemon, key: &str) -> anyhow::Result<()> {
    let Some(remap) = d.config.userns.as_ref().filter(|_| {
        d.containers
            .get(key)
            .is_ok_and(|c| applies(d, &c.snapshot().host_config))
    }) else {
        return Ok(());
    };
    let sn = &d.images.snapshots;
    let dir = match sn.overlay_dirs(key)? {
        Some((_, upper, _)) => upper,
        None => sn.root().join(key).join("diff"),
    };
    let to_u64 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    shift_tree(
        &dir,
        |u| to_u64(unmap_id(&remap.uids, u64::from(u))),
        |g| to_u64(unmap_id(&remap.gids, u64::from(g))),
    )
}

/// Host id → container id through `maps` (ids outside every range stay as they are).
pub fn unmap_id(maps: &[IdMapping], id: u64) -> u64 {
    maps.iter()
        .find_map(|m| {
            let h = u64::from(m.host_id);
            (id >= h && id - h < u64::from(m.size)).then(|| u64::from(m.container_id) + (id - h))
        })
        .unwrap_or(id)
}

/// The writer a container's layer tar goes through: for a remapped container, ids are turned
/// back into the container's (its writable layer holds host-shifted ids), so committed and
/// built images carry the ids the container saw, as docker's do.
pub fn layer_writer<'a, W: Write + 'a>(d: &Daemon, key: &str, w: W) -> Box<dyn Write + 'a> {
    let remap = d.config.userns.as_ref().filter(|_| {
        d.containers
            .get(key)
            .is_ok_and(|c| applies(d, &c.snapshot().host_config))
    });
    match remap {
        Some(r) => Box::new(Unshift::new(w, r.uids.clone(), r.gids.clone())),
        None => Box::new(w),
    }
}

const BLOCK: usize = 512;

enum TarState {
    Header,
    /// Bytes of entry data (with padding) still to pass through.
    Data(u64),
    /// A PAX extended header being collected: its header, data length, bytes still to read
    /// (with padding).
    Pax(Box<[u8; BLOCK]>, usize, u64),
}

/// Rewrites uid/gid of a tar stream (ustar fields and PAX records) from host ids back to
/// container ids; everything else passes through unchanged.
pub struct Unshift<W: Write> {
    out: W,
    uids: Vec<IdMapping>,
    gids: Vec<IdMapping>,
    buf: Vec<u8>,
    state: TarState,
    /// A PAX `size` for the next entry (its header says 0 then).
    pax_size: Option<u64>,
}

fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

fn parse_numeric(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|b| b & 0x80 != 0) {
        // base-256
        let mut v: u64 = u64::from(f[0] & 0x7f);
        for b in &f[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(v);
    }
    let s: String = f
        .iter()
        .take_while(|b| **b != 0)
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn set_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

impl<W: Write> Unshift<W> {
    pub fn new(out: W, uids: Vec<IdMapping>, gids: Vec<IdMapping>) -> Unshift<W> {
        Unshift {
            out,
            uids,
            gids,
            buf: Vec::with_capacity(BLOCK),
            state: TarState::Header,
            pax_size: None,
        }
    }

    fn header(&mut self, mut h: [u8; BLOCK]) -> std::io::Result<()> {
        if h.iter().all(|b| *b == 0) {
            return self.out.write_all(&h);
        }
        let size = parse_numeric(&h[124..136]).unwrap_or(0);
        match h[156] {
            b'x' => {
                self.state = TarState::Pax(Box::new(h), size as usize, padded(size));
                if size == 0 {
                    return self.finish_pax();
                }
                return Ok(());
            }
            b'g' => {}
            _ => {
                let mut changed = false;
                for (range, maps) in [(108..116, &self.uids), (116..124, &self.gids)] {
                    let f = &h[range.clone()];
                    if f[0] & 0x80 != 0 {
                        continue;
                    }
                    if let Some(v) = parse_numeric(f) {
                        let n = unmap_id(maps, v);
                        if n != v && n <= 0o7777777 {
                            h[range].copy_from_slice(format!("{n:07o}\0").as_bytes());
                            changed = true;
                        }
                    }
                }
                if changed {
                    set_checksum(&mut h);
                }
            }
        }
        let data = match (h[156], self.pax_size.take()) {
            (b'g', _) | (_, None) => size,
            (_, Some(s)) => s,
        };
        self.out.write_all(&h)?;
        if data > 0 {
            self.state = TarState::Data(padded(data));
        }
        Ok(())
    }

    fn finish_pax(&mut self) -> std::io::Result<()> {
        let TarState::Pax(mut h, len, _) = std::mem::replace(&mut self.state, TarState::Header)
        else {
            return Ok(());
        };
        let data = std::mem::take(&mut self.buf);
        let recs = &data[..len.min(data.len())];
        let mut out = Vec::new();
        let mut rest = recs;
        while !rest.is_empty() {
            let Some(sp) = rest.iter().position(|b| *b == b' ') else {
                break;
            };
            let Some(n) = std::str::from_utf8(&rest[..sp])
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
            else {
                break;
            };
            if n <= sp || n > rest.len() {
                break;
            }
            let rec = &rest[sp + 1..n];
            let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
            let (k, v) = match rec.iter().position(|b| *b == b'=') {
                Some(i) => (&rec[..i], &rec[i + 1..]),
                None => (rec, &b""[..]),
            };
            let num = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            let value = match (k, num) {
                (b"uid", Some(id)) => unmap_id(&self.uids, id).to_string().into_bytes(),
                (b"gid", Some(id)) => unmap_id(&self.gids, id).to_string().into_bytes(),
                _ => v.to_vec(),
            };
            if k == b"size" {
                self.pax_size = num;
            }
            let body = 3 + k.len() + value.len();
            let mut total = body + 1;
            while total.to_string().len() + body > total {
                total += 1;
            }
            out.extend_from_slice(total.to_string().as_bytes());
            out.push(b' ');
            out.extend_from_slice(k);
            out.push(b'=');
            out.extend_from_slice(&value);
            out.push(b'\n');
            rest = &rest[n..];
        }
        out.extend_from_slice(rest);
        h[124..136].copy_from_slice(format!("{:011o}\0", out.len()).as_bytes());
        set_checksum(&mut h);
        self.out.write_all(&h[..])?;
        self.out.write_all(&out)?;
        let pad = (padded(out.len() as u64) - out.len() as u64) as usize;
        self.out.write_all(&[0u8; BLOCK][..pad])
    }
}

impl<W: Write> Write for Unshift<W> {
    fn write(&mut self, mut input: &[u8]) -> std::io::Result<usize> {
        let total = input.len();
        while !input.is_empty() {
            match &mut self.state {
                TarState::Data(left) => {
                    let n = (*left).min(input.len() as u64) as usize;
                    self.out.write_all(&input[..n])?;
                    *left -= n as u64;
                    if *left == 0 {
                        self.state = TarState::Header;
                    }
                    input = &input[n..];
                }
                TarState::Pax(_, _, left) => {
                    let n = (*left).min(input.len() as u64) as usize;
                    self.buf.extend_from_slice(&input[..n]);
                    *left -= n as u64;
                    input = &input[n..];
                    if *left == 0 {
                        self.finish_pax()?;
                    }
                }
                TarState::Header => {
                    let n = (BLOCK - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if self.buf.len() == BLOCK {
                        let mut h = [0u8; BLOCK];
                        h.copy_from_slice(&self.buf);
                        self.buf.clear();
                        self.header(h)?;
                    }
                }
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if matches!(self.state, TarState::Header) && !self.buf.is_empty() {
            // Not a tar block boundary: pass it on unchanged.
            let b = std::mem::take(&mut self.buf);
            self.out.write_all(&b)?;
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod unshift_tests {
    use super::*;

    #[test]
    fn ids_go_back_to_the_containers() {
        let map = vec![IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }];
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, uid: u64, pax_uid: Option<&str>, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_path(name).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(uid);
            h.set_gid(uid);
            h.set_cksum();
            if let Some(u) = pax_uid {
                b.append_pax_extensions([
                    ("uid", u.as_bytes()),
                    ("gid", u.as_bytes()),
                    ("path", name.as_bytes()),
                ])
                .unwrap();
            }
            b.append(&h, data).unwrap();
        };
        add("small", 100_007, None, b"abc");
        add("big", 0, Some("165535"), &[7u8; 1000]);
        add("plain", 1000, None, b"");
        let tar = b.into_inner().unwrap();
        let mut out = Vec::new();
        {
            let mut w = Unshift::new(&mut out, map.clone(), map.clone());
            // Odd chunk sizes: the state machine must not care.
            for c in tar.chunks(77) {
                w.write_all(c).unwrap();
            }
            w.flush().unwrap();
        }
        let mut a = tar::Archive::new(&out[..]);
        let got: Vec<(String, u64, u64, usize)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let (u, g) = (e.header().uid().unwrap(), e.header().gid().unwrap());
                let mut pax_uid = None;
                if let Some(x) = e.pax_extensions().unwrap() {
                    for r in x {
                        let r = r.unwrap();
                        if r.key().unwrap() == "uid" {
                            pax_uid = r.value().unwrap().parse().ok();
                        }
                    }
                }
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (name, pax_uid.unwrap_or(u), g, data.len())
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("small".into(), 7, 7, 3),
                ("big".into(), 65535, 65535, 1000),
                ("plain".into(), 1000, 1000, 0)
            ]
        );
    }
}
