//! Filesystem steps of a build: turning an active snapshot (a RUN container's, or a scratch
//! one the builder mounts itself for COPY/ADD/WORKDIR) into a layer, recording step images,
//! and writing COPY/ADD content straight from the context — no container involved.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek};
use std::path::{Path, PathBuf};

use berth_build::context::{Context, Entry, Kind, has_wildcards};
use berth_build::dockerignore::clean;
use berth_image::config::{History, ImageConfig, RootFs, RunConfig, chain_ids, host_platform};
use berth_image::store::{BlobRef, LayerRecord, Lease, NewImage};
use berth_image::{Digest, digest::DigestWriter};
use berth_storage::pathcopy;

use super::BuildError;
use crate::daemon::Daemon;

macro_rules! tryio {
    ($e:expr, $what:expr) => {
        $e.map_err(|e| BuildError::msg(format!("{}: {e}", $what)))?
    };
}

/// A layer about to be recorded, and the lease that protects it until then.
pub struct NewLayer {
    pub record: LayerRecord,
    pub _lease: Lease,
}

/// Writes active snapshot `key`'s changes as a layer blob and adopts the snapshot as the
/// layer (no re-extraction). `key` is gone afterwards. Blocking.
pub fn layer_from_active(
    d: &Daemon,
    key: &str,
    parent_diff_ids: &[Digest],
) -> Result<NewLayer, BuildError> {
    let images = &d.images;
    let tmp = tryio!(images.content.temp_dir("build-layer"), "staging a layer");
    let path = tmp.path().join("layer.tar");
    let f = tryio!(File::create(&path), "creating the layer blob");
    let mut w = DigestWriter::new(BufWriter::with_capacity(1 << 20, f));
    // A remapped RUN container's layer holds host-shifted ids: back to the container's.
    let lw = crate::userns::layer_writer(d, key, &mut w);
    tryio!(images.snapshots.diff_tar(key, lw), "writing the layer");
    let (bw, diff_id, tar_size) = w.finish();
    let f = tryio!(
        bw.into_inner().map_err(|e| e.into_error()),
        "writing the layer"
    );
    tryio!(f.sync_all(), "syncing the layer blob");
    let mut diff_ids = parent_diff_ids.to_vec();
    diff_ids.push(diff_id.clone());
    let chains = chain_ids(&diff_ids);
    let chain = chains.last().cloned().expect("one layer at least");
    let parent = chains.len().checked_sub(2).map(|i| chains[i].clone());
    let mut lease = images.lease();
    lease.add(&chain);
    lease.add(&diff_id);
    if images.snapshots.exists(chain.hex()) {
        let _ = images.snapshots.remove(key);
    } else {
        // The RUN container's exit cleanup unmounts its rootfs on another task: wait for it.
        let t = std::time::Instant::now();
        while images.snapshots.is_mounted(key).unwrap_or(false)
            && t.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // A remapped RUN container's upper dir holds host-shifted ids: back to the container's.
        if let Err(e) = crate::userns::unshift_upper(d, key) {
            return Err(BuildError::msg(format!("committing the layer: {e:#}")));
        }
        match images.snapshots.commit(key, chain.hex()) {
            Ok(()) => {}
            Err(berth_storage::Error::AlreadyExists(_)) => {
                let _ = images.snapshots.remove(key);
            }
            Err(e) => return Err(BuildError::msg(format!("committing the layer: {e}"))),
        }
    }
    let size = images.snapshots.usage(chain.hex()).unwrap_or(tar_size);
    tryio!(
        images.content.commit_file(&path, &diff_id),
        "storing the layer"
    );
    Ok(NewLayer {
        record: LayerRecord {
            chain_id: chain,
            diff_id: diff_id.clone(),
            parent,
            size,
            tar_size,
            blob: BlobRef {
                digest: diff_id,
                media_type: berth_image::config::media::OCI_LAYER.to_string(),
                size: tar_size,
            },
        },
        _lease: lease,
    })
}

/// Records a step's image: the parent's layers (plus `layer`), `config`, and one more history
/// entry. Blocking.
pub fn commit_step(
    d: &Daemon,
    parent: Option<&Digest>,
    layer: Option<&LayerRecord>,
    config: &RunConfig,
    author: Option<&str>,
    created_by: &str,
) -> Result<Digest, BuildError> {
    let images = &d.images;
    let (parent_cfg, mut diff_ids) = match parent {
        Some(p) => {
            let rec = images
                .image(p)?
                .ok_or_else(|| BuildError::msg(format!("No such image: {p}")))?;
            (Some(images.config(p)?), rec.diff_ids)
        }
        None => (None, Vec::new()),
    };
    let mut layers = Vec::new();
    for ch in chain_ids(&diff_ids) {
        layers.push(
            images
                .layer(&ch)?
                .ok_or_else(|| BuildError::msg(format!("layer {ch} is missing")))?,
        );
    }
    if let Some(l) = layer {
        diff_ids.push(l.diff_id.clone());
        layers.push(l.clone());
    }
    let now = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let mut history = parent_cfg
        .as_ref()
        .map(|c| c.history.clone())
        .unwrap_or_default();
    history.push(History {
        created: Some(now.clone()),
        created_by: Some(created_by.to_string()),
        author: None,
        comment: None,
        empty_layer: layer.is_none(),
    });
    let platform = host_platform();
    let cfg = ImageConfig {
        created: Some(now),
        author: author.map(str::to_string),
        architecture: parent_cfg
            .as_ref()
            .map(|c| c.architecture.clone())
            .filter(|a| !a.is_empty())
            .unwrap_or(platform.architecture),
        os: parent_cfg
            .as_ref()
            .map(|c| c.os.clone())
            .filter(|o| !o.is_empty())
            .unwrap_or(platform.os),
        variant: parent_cfg.as_ref().and_then(|c| c.variant.clone()),
        os_version: None,
        config: Some(config.clone()),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history,
        extra: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec(&cfg).expect("config serializes");
    let (id, _) = images.commit_image(
        NewImage {
            config: bytes,
            layers,
            parent: parent.cloned(),
        },
        &[],
    )?;
    Ok(id)
}

/// A scratch snapshot on top of an image, mounted for the builder's own file operations.
pub struct Scratch<'a> {
    d: &'a Daemon,
    pub key: String,
    pub root: PathBuf,
    mounted: bool,
    done: bool,
}

impl<'a> Scratch<'a> {
    pub fn new(d: &'a Daemon, parent_chain: Option<&Digest>) -> Result<Scratch<'a>, BuildError> {
        let key = format!("build-{}", &crate::containers::new_id()[..24]);
        tryio!(
            d.images
                .snapshots
                .prepare(&key, parent_chain.map(|c| c.hex())),
            "preparing a snapshot"
        );
        // Throwaway until committed: no fsync per file (committing syncs once).
        let _ = d.images.snapshots.set_volatile(&key);
        let root = d.config.exec_root.join("build").join(&key);
        let mut s = Scratch {
            d,
            key,
            root,
            mounted: false,
            done: false,
        };
        tryio!(std::fs::create_dir_all(&s.root), "creating a mount point");
        tryio!(
            d.images.snapshots.mount(&s.key, &s.root),
            "mounting the snapshot"
        );
        s.mounted = true;
        Ok(s)
    }

    pub fn unmount(&mut self) -> Result<(), BuildError> {
        if self.mounted {
            tryio!(
                self.d.images.snapshots.unmount(&self.root),
                "unmounting the snapshot"
            );
            self.mounted = false;
            let _ = std::fs::remove_dir(&self.root);
        }
        Ok(())
    }

    /// Unmounts and turns the changes into a layer.
    pub fn into_layer(mut self, parent_diff_ids: &[Digest]) -> Result<NewLayer, BuildError> {
        self.unmount()?;
        let l = layer_from_active(self.d, &self.key, parent_diff_ids);
        self.done = true;
        if l.is_err() {
            let _ = self.d.images.snapshots.remove(&self.key);
        }
        l
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let _ = self.unmount();
        if !self.done {
            let _ = self.d.images.snapshots.remove(&self.key);
        }
    }
}

/// Whether `path` is (or leads through symlinks to) a directory inside the mounted root.
pub fn is_dir(root: &Path, path: &str) -> bool {
    let p = format!("{}/", path.trim_end_matches('/'));
    pathcopy::stat(root, &p).is_ok_and(|s| s.mode & (1 << 31) != 0)
}

pub fn exists(root: &Path, path: &str) -> bool {
    pathcopy::stat(root, path).is_ok()
}

/// A tar being written for one extraction into the scratch root.
pub struct TarOut {
    b: tar::Builder<BufWriter<File>>,
    path: PathBuf,
    pub entries: usize,
    mtime: u64,
}

impl TarOut {
    pub fn new(path: PathBuf) -> Result<TarOut, BuildError> {
        let f = tryio!(
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path),
            "creating a temp file"
        );
        let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, f));
        b.mode(tar::HeaderMode::Complete);
        Ok(TarOut {
            b,
            path,
            entries: 0,
            mtime: super::cache::now() as u64,
        })
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        h.set_size(0);
        h
    }

    pub fn dir(&mut self, path: &str, mode: u32, owner: (u64, u64)) -> Result<(), BuildError> {
        let mut h = Self::header(
            tar::EntryType::Directory,
            mode,
            owner.0,
            owner.1,
            self.mtime,
        );
        tryio!(
            self.b.append_data(
                &mut h,
                format!("{}/", path.trim_matches('/')),
                std::io::empty()
            ),
            "writing a directory entry"
        );
        self.entries += 1;
        Ok(())
    }

    pub fn file(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u64, u64),
        mtime: u64,
        size: u64,
        data: impl Read,
    ) -> Result<(), BuildError> {
        let mut h = Self::header(tar::EntryType::Regular, mode, owner.0, owner.1, mtime);
        h.set_size(size);
        tryio!(
            self.b.append_data(&mut h, path.trim_matches('/'), data),
            "writing a file entry"
        );
        self.entries += 1;
        Ok(())
    }

    pub fn symlink(
        &mut self,
        path: &str,
        target: &str,
        owner: (u64, u64),
        mtime: u64,
    ) -> Result<(), BuildError> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, owner.0, owner.1, mtime);
        tryio!(
            self.b.append_link(&mut h, path.trim_matches('/'), target),
            "writing a symlink entry"
        );
        self.entries += 1;
        Ok(())
    }

    /// Finishes the tar and extracts it at `/` of `root`.
    pub fn extract_into(self, root: &Path) -> Result<(), BuildError> {
        let w = tryio!(self.b.into_inner(), "finishing a tar");
        let mut f = tryio!(
            w.into_inner().map_err(|e| e.into_error()),
            "finishing a tar"
        );
        tryio!(f.rewind(), "rewinding a tar");
        let r = std::io::BufReader::with_capacity(1 << 20, f);
        tryio!(pathcopy::extract(root, "/", r), "copying files");
        let _ = std::fs::remove_file(&self.path);
        Ok(())
    }
}

/// Docker's `normalizeDest`/`normalizeWorkdir`: relative paths are taken from the working
/// directory; a trailing slash is kept (it means "a directory").
pub fn normalize_dest(workdir: &str, dest: &str) -> String {
    let slash = dest.ends_with('/') || dest.ends_with("/.") || dest == ".";
    let abs = if dest.starts_with('/') {
        clean(dest)
    } else {
        let wd = if workdir.is_empty() { "/" } else { workdir };
        clean(&format!("{wd}/{dest}"))
    };
    if slash && abs != "/" {
        format!("{abs}/")
    } else {
        abs
    }
}

/// Creates the missing directories of `dir` (absolute) with `mode` and `owner`.
pub fn mkdirs(
    root: &Path,
    dir: &str,
    owner: (u64, u64),
    out: &mut TarOut,
) -> Result<(), BuildError> {
    let mut cur = String::new();
    for c in dir.trim_matches('/').split('/').filter(|c| !c.is_empty()) {
        cur.push('/');
        cur.push_str(c);
        if !exists(root, &cur) {
            out.dir(&cur, 0o755, owner)?;
        }
    }
    Ok(())
}

/// One matched source of a COPY/ADD from the context.
pub struct Source<'c> {
    pub entry: &'c Entry,
    /// The name used when the source lands inside a destination directory.
    pub base: String,
}

/// Resolves COPY/ADD sources in the context with docker's rules: wildcards match paths
/// (`filepath.Match`), others must exist; sources may not leave the context.
pub fn context_sources<'c>(
    ctx: &'c Context,
    sources: &[String],
    cmd: &str,
) -> Result<Vec<Source<'c>>, BuildError> {
    let mut out = Vec::new();
    for orig in sources {
        let trimmed = orig.trim_start_matches('/');
        let trimmed = trimmed.strip_prefix("./").unwrap_or(trimmed);
        let c = clean(if trimmed.is_empty() { "." } else { trimmed });
        if c == ".." || c.starts_with("../") {
            return Err(BuildError::msg(format!(
                "{cmd} failed: forbidden path outside the build context: {orig} ()"
            )));
        }
        if has_wildcards(&c) {
            for e in ctx.glob(&c) {
                let e = ctx.resolve(&e.path, true).unwrap_or(e);
                out.push(Source {
                    base: e.path.rsplit('/').next().unwrap_or("").to_string(),
                    entry: e,
                });
            }
            continue;
        }
        if c == "." {
            // The whole context: a directory source.
            out.push(Source {
                entry: &ROOT_ENTRY,
                base: String::new(),
            });
            continue;
        }
        let Some(e) = ctx.resolve(&c, true) else {
            return Err(BuildError::msg(format!(
                "{cmd} failed: file not found in build context or excluded by .dockerignore: stat {c}: file does not exist"
            )));
        };
        out.push(Source {
            entry: e,
            base: c.rsplit('/').next().unwrap_or("").to_string(),
        });
    }
    if out.is_empty() {
        return Err(BuildError::msg(format!(
            "{cmd} failed: no source files were specified"
        )));
    }
    Ok(out)
}

/// Stand-in entry for the context root (`COPY . /app`).
pub static ROOT_ENTRY: Entry = Entry {
    path: String::new(),
    kind: Kind::Dir,
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0,
    offset: 0,
    link: String::new(),
    digest: [0; 32],
};

/// The entries below a context directory source (not the directory itself), with their path
/// relative to it.
pub fn below<'c>(ctx: &'c Context, dir: &'c Entry) -> Vec<(String, &'c Entry)> {
    if dir.path.is_empty() {
        return ctx.entries.values().map(|e| (e.path.clone(), e)).collect();
    }
    ctx.walk(&dir.path)
        .skip(1)
        .map(|e| (e.path[dir.path.len() + 1..].to_string(), e))
        .collect()
}

/// Parses `--chmod` (octal).
pub fn parse_chmod(s: &str) -> Result<u32, BuildError> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            BuildError::msg(format!(
                "invalid chmod parameter: {s:?}: use octal, e.g. 0755"
            ))
        })
}

/// Resolves `--chown=user[:group]` against the destination image's /etc/passwd and /etc/group
/// (docker: a lone user is also the group).
pub fn parse_chown(root: &Path, s: &str) -> Result<(u64, u64), BuildError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (u, g) = match parts.as_slice() {
        [u] => (*u, *u),
        [u, g] => (*u, *g),
        _ => {
            return Err(BuildError::msg(format!("invalid chown string format: {s}")));
        }
    };
    let num = |x: &str| x.parse::<u64>().ok();
    if let (Some(a), Some(b)) = (num(u), num(g)) {
        return Ok((a, b));
    }
    let user = berth_runtime::user::resolve(root, &format!("{u}:{g}")).map_err(|e| {
        BuildError::msg(format!(
            "unable to convert uid/gid chown string to host mapping: {e}"
        ))
    })?;
    Ok((user.uid as u64, user.gid as u64))
}

pub fn io_err(what: &str) -> impl Fn(std::io::Error) -> BuildError + '_ {
    move |e| BuildError::msg(format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dest_normalization() {
        assert_eq!(normalize_dest("/app", "x"), "/app/x");
        assert_eq!(normalize_dest("/app", "x/"), "/app/x/");
        assert_eq!(normalize_dest("", "."), "/");
        assert_eq!(normalize_dest("/w", "."), "/w/");
        assert_eq!(normalize_dest("/w", "/abs/../b"), "/b");
    }
}
