//! `docker load`: reads an image archive — Docker's `manifest.json` format (legacy and 25+)
//! or a plain OCI layout (`index.json`) — from a stream, in one pass.
//!
//! Every file is staged into a private temp directory while being hashed (blobs named by digest
//! are verified there). Only after the whole archive checked out are layers unpacked, blobs moved
//! into the store and the images recorded in one transaction: bad input changes nothing.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Component, Path};

use berth_storage::compression;
use serde::Deserialize;

use crate::config::{Descriptor, ImageConfig, Index, Manifest, chain_ids, host_platform, media};
use crate::content::{Staged, stage};
use crate::digest::Digest;
use crate::layers;
use crate::reference::Reference;
use crate::store::{ImageStore, NewImage};
use crate::{Error, Result};

/// Small JSON files are kept in memory; anything larger is staged on disk.
const INLINE_LIMIT: u64 = 4 << 20;

/// One image recorded by a load.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: Digest,
    pub tags: Vec<Reference>,
    /// Tags that pointed at another image before, with that image.
    pub moved: Vec<(Reference, Digest)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("invalid archive: {msg}"))
}

/// Cleans an archive path; refuses names that climb out of the archive.
fn clean(name: &Path) -> Result<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(invalid(format!(
                    "entry {:?} points outside the archive",
                    name.display().to_string()
                )));
            }
        }
    }
    Ok(parts.join("/"))
}

/// What the archive held, by path.
struct Contents {
    inline: HashMap<String, Vec<u8>>,
    staged: HashMap<String, Staged>,
    links: HashMap<String, String>,
}

impl Contents {
    fn resolve<'a>(&'a self, path: &'a str) -> &'a str {
        let mut p = path;
        for _ in 0..16 {
            match self.links.get(p) {
                Some(t) => p = t,
                None => break,
            }
        }
        p
    }

    fn bytes(&self, path: &str) -> Result<Vec<u8>> {
        let p = self.resolve(path);
        if let Some(b) = self.inline.get(p) {
            return Ok(b.clone());
        }
        if let Some(s) = self.staged.get(p) {
            if s.size > INLINE_LIMIT * 4 {
                return Err(invalid(format!("{path} is too large for a JSON document")));
            }
            return std::fs::read(&s.path).map_err(Error::io(format!("reading {path}")));
        }
        Err(invalid(format!(
            "{path} is named by the manifest but is not in the archive"
        )))
    }

    fn staged(&self, path: &str) -> Result<&Staged> {
        self.staged.get(self.resolve(path)).ok_or_else(|| {
            invalid(format!(
                "layer {path} is named by the manifest but is not in the archive"
            ))
        })
    }

    fn blob_path(d: &Digest) -> String {
        format!("blobs/{}/{}", d.algorithm(), d.hex())
    }
}

fn read_entries(input: impl Read, tmp: &Path) -> Result<Contents> {
    let (_, r) =
        compression::decompressed(BufReader::with_capacity(1 << 20, input)).map_err(invalid)?;
    let mut ar = tar::Archive::new(r);
    let mut c = Contents {
        inline: HashMap::new(),
        staged: HashMap::new(),
        links: HashMap::new(),
    };
    let mut n = 0u64;
    for entry in ar.entries().map_err(invalid)? {
        let mut entry = entry.map_err(invalid)?;
        let path = clean(&entry.path().map_err(invalid)?)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(invalid)?
                .ok_or_else(|| invalid(format!("link {path} has no target")))?;
            let joined = if kind.is_symlink() {
                Path::new(&path)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(&target)
            } else {
                target.to_path_buf()
            };
            let norm = normalize_lexically(&joined)
                .ok_or_else(|| invalid(format!("link {path} points outside the archive")))?;
            c.links.insert(path, norm);
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = entry.size();
        let json_like = path.ends_with(".json")
            || path == "repositories"
            || path == "oci-layout"
            || path.ends_with("/json")
            || path.ends_with("VERSION");
        if json_like && size <= INLINE_LIMIT && !path.starts_with("blobs/") {
            let mut b = Vec::with_capacity(size as usize);
            entry
                .read_to_end(&mut b)
                .map_err(|e| invalid(format!("reading {path}: {e}")))?;
            c.inline.insert(path, b);
            continue;
        }
        // `blobs/sha256/<hex>` must hash to its name.
        let expected: Option<Digest> = path
            .strip_prefix("blobs/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(alg, hex)| format!("{alg}:{hex}").parse().ok());
        n += 1;
        let dst = tmp.join(format!("f{n}"));
        let s = stage(&mut entry, &dst, expected.as_ref(), None, &path).map_err(invalid)?;
        c.staged.insert(path, s);
    }
    Ok(c)
}

/// Lexically resolves `a/b/../c`; None if it climbs above the root.
fn normalize_lexically(p: &Path) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.join("/"))
}

/// An image the archive describes, before anything is unpacked.
struct Planned {
    config_path: String,
    layer_paths: Vec<String>,
    tags: Vec<Reference>,
}

fn plan_docker(c: &Contents, manifest: &[u8]) -> Result<Vec<Planned>> {
    let entries: Vec<ManifestEntry> =
        serde_json::from_slice(manifest).map_err(|e| invalid(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let mut tags = Vec::new();
        for t in e.repo_tags.unwrap_or_default() {
            let r = Reference::parse_normalized(&t)
                .map_err(|err| invalid(format!("repo tag {t:?}: {err}")))?;
            tags.push(r.with_default_tag());
        }
        // Check early that everything named is present.
        c.bytes(&e.config)?;
        for l in &e.layers {
            c.staged(l)?;
        }
        out.push(Planned {
            config_path: e.config,
            layer_paths: e.layers,
            tags,
        });
    }
    Ok(out)
}

fn plan_oci(c: &Contents, index: &[u8]) -> Result<Vec<Planned>> {
    let idx: Index =
        serde_json::from_slice(index).map_err(|e| invalid(format!("index.json: {e}")))?;
    let mut out = Vec::new();
    let want = host_platform();
    let mut stack: Vec<(Descriptor, Option<String>)> =
        idx.manifests.into_iter().map(|d| (d, None)).collect();
    let mut guard = 0;
    while let Some((d, inherited_name)) = stack.pop() {
        guard += 1;
        if guard > 1024 {
            return Err(invalid("index.json nests too deeply"));
        }
        let name = d
            .annotations
            .as_ref()
            .and_then(|a| a.get("io.containerd.image.name").cloned())
            .or(inherited_name);
        let bytes = c.bytes(&Contents::blob_path(&d.digest))?;
        match d.media_type.as_str() {
            media::OCI_INDEX | media::DOCKER_MANIFEST_LIST => {
                let sub: Index = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("index {}: {e}", d.digest)))?;
                for m in sub.manifests {
                    let ok = m
                        .platform
                        .as_ref()
                        .is_none_or(|p| p.os == want.os && p.architecture == want.architecture);
                    if ok {
                        stack.push((m, name.clone()));
                    }
                }
            }
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => {
                let m: Manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(format!("manifest {}: {e}", d.digest)))?;
                let mut tags = Vec::new();
                if let Some(n) = &name
                    && let Ok(r) = Reference::parse_normalized(n)
                {
                    tags.push(r.with_default_tag());
                }
                let layer_paths: Vec<String> = m
                    .layers
                    .iter()
                    .map(|l| Contents::blob_path(&l.digest))
                    .collect();
                for l in &layer_paths {
                    c.staged(l)?;
                }
                out.push(Planned {
                    config_path: Contents::blob_path(&m.config.digest),
                    layer_paths,
                    tags,
                });
            }
            // Attestations and other artifacts are not images.
            _ => {}
        }
    }
    out.reverse();
    Ok(out)
}

/// Loads every image of the archive read from `input`.
pub fn load(store: &ImageStore, input: impl Read) -> Result<Vec<Loaded>> {
    let tmp = store.content.temp_dir("load")?;
    let contents = read_entries(input, tmp.path())?;
    let plans = if let Some(m) = contents.inline.get("manifest.json") {
        plan_docker(&contents, m)?
    } else if let Some(i) = contents.inline.get("index.json") {
        plan_oci(&contents, i)?
    } else {
        return Err(invalid(
            "no manifest.json or index.json found; is this an image archive made by docker save?",
        ));
    };
    if plans.is_empty() {
        return Err(invalid("it contains no images"));
    }

    // Parse every config before unpacking anything.
    let mut configs = Vec::new();
    for p in &plans {
        let bytes = contents.bytes(&p.config_path)?;
        let cfg: ImageConfig = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("image config {}: {e}", p.config_path)))?;
        if cfg.rootfs.diff_ids.len() != p.layer_paths.len() {
            return Err(invalid(format!(
                "image config {} lists {} layers but the manifest names {}",
                p.config_path,
                cfg.rootfs.diff_ids.len(),
                p.layer_paths.len()
            )));
        }
        configs.push((bytes, cfg));
    }

    let mut lease = store.lease();
    let mut created: Vec<Digest> = Vec::new();
    let result = (|| -> Result<Vec<Loaded>> {
        let mut out = Vec::new();
        for (p, (bytes, cfg)) in plans.iter().zip(&configs) {
            let chains = chain_ids(&cfg.rootfs.diff_ids);
            for ch in &chains {
                lease.add(ch);
            }
            let jobs: Vec<(usize, &Staged)> = p
                .layer_paths
                .iter()
                .enumerate()
                .map(|(i, lp)| Ok((i, contents.staged(lp)?)))
                .collect::<Result<_>>()?;
            for (_, s) in &jobs {
                lease.add(&s.digest);
            }
            let records = unpack_all(store, &jobs, &cfg.rootfs.diff_ids, &chains, &mut created)?;
            // Blobs go into the store only now that the layers checked out.
            for (_, s) in &jobs {
                store.content.commit_file(&s.path, &s.digest)?;
            }
            let (id, moved) = store.commit_image(
                NewImage {
                    config: bytes.clone(),
                    layers: records,
                    parent: None,
                },
                &p.tags,
            )?;
            out.push(Loaded {
                id,
                tags: p.tags.clone(),
                moved,
            });
        }
        Ok(out)
    })();
    if result.is_err() {
        for ch in &created {
            if store.layer(ch).ok().flatten().is_none() {
                let _ = store.snapshots.remove(ch.hex());
            }
        }
    }
    drop(lease);
    result
}

/// Unpacks the layers of one image; independent layers go in parallel when the driver allows.
fn unpack_all(
    store: &ImageStore,
    jobs: &[(usize, &Staged)],
    diff_ids: &[Digest],
    chains: &[Digest],
    created: &mut Vec<Digest>,
) -> Result<Vec<crate::store::LayerRecord>> {
    let parallel = matches!(store.snapshots.kind(), berth_storage::DriverKind::Overlay);
    for (i, _) in jobs {
        if !store.snapshots.exists(chains[*i].hex()) {
            created.push(chains[*i].clone());
        }
    }
    let one = |i: usize, s: &Staged| {
        let parent = if i == 0 { None } else { Some(&chains[i - 1]) };
        layers::unpack(store, &s.path, &s.digest, &diff_ids[i], &chains[i], parent)
    };
    if !parallel || jobs.len() < 2 {
        return jobs.iter().map(|(i, s)| one(*i, s)).collect();
    }
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<crate::store::LayerRecord>>>> =
        std::sync::Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|sc| {
        for _ in 0..workers.min(jobs.len()) {
            sc.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if k >= jobs.len() {
                        break;
                    }
                    let (i, s) = jobs[k];
                    let r = one(i, s);
                    results.lock().unwrap()[k] = Some(r);
                }
            });
        }
    });
    // A layer may hard-link a file of a lower layer, which exists only once that layer is
    // unpacked: retry failures in order, now that every other layer is in place.
    let results = results.into_inner().unwrap();
    jobs.iter()
        .zip(results)
        .map(|((i, s), r)| match r.expect("every job ran") {
            Ok(rec) => Ok(rec),
            Err(_) => one(*i, s),
        })
        .collect()
}
