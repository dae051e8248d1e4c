//! `docker save`: writes images as Docker 25+ does — an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) that also carries Docker's `manifest.json` and
//! `repositories`, so both `docker load` and OCI tools (skopeo, podman) read it.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};

use serde_json::json;

use crate::config::{Descriptor, Index, Manifest, chain_ids, media};
use crate::digest::Digest;
use crate::layers;
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageStore, LayerRecord};
use crate::{Error, Result};

struct Entry {
    image: ImageRecord,
    tags: Vec<Reference>,
}

/// Resolves the names to save: a reference saves that tag; an ID saves the image untagged
/// (Docker's rule). The same image named twice is written once with all its named tags.
fn collect(store: &ImageStore, names: &[String]) -> Result<Vec<Entry>> {
    let mut out: Vec<Entry> = Vec::new();
    for name in names {
        let img = store.resolve(name)?;
        let tag = match Reference::parse_normalized(name) {
            Ok(r) if !img.id.hex().starts_with(name.trim_start_matches("sha256:")) => {
                let r = r.with_default_tag();
                if r.digest().is_some() { None } else { Some(r) }
            }
            _ => None,
        };
        // A repository name without a tag saves every tag of that repository.
        let mut tags: Vec<Reference> = tag.into_iter().collect();
        if let Ok(r) = Reference::parse_normalized(name)
            && r.tag().is_none()
            && r.digest().is_none()
        {
            tags = store
                .names_of(&img.id)?
                .tags
                .into_iter()
                .filter(|t| t.name() == r.name())
                .collect();
        }
        match out.iter_mut().find(|e| e.image.id == img.id) {
            Some(e) => {
                for t in tags {
                    if !e.tags.contains(&t) {
                        e.tags.push(t);
                    }
                }
            }
            None => out.push(Entry { image: img, tags }),
        }
    }
    Ok(out)
}

fn header(path: &str, size: u64, mtime: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).expect("archive paths are short");
    h.set_size(size);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(mtime);
    h.set_entry_type(kind);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

fn add_bytes<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    bytes: &[u8],
    mtime: u64,
) -> Result<()> {
    let mut h = header(path, bytes.len() as u64, mtime, tar::EntryType::Regular);
    b.append_data(&mut h, path, bytes)
        .map_err(Error::io("writing archive"))
}

/// A reader that fails if the layer's bytes are not what was recorded.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let cap = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..cap])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "stored layer is shorter than recorded",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Writes the named images as one archive to `out`.
pub fn save(store: &ImageStore, names: &[String], out: impl Write) -> Result<()> {
    let entries = collect(store, names)?;
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    let mtime = 0;
    let mut written: HashSet<Digest> = HashSet::new();
    let mut docker_manifest = Vec::new();
    let mut index_manifests = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();

    let mut dir = header("blobs/", 0, mtime, tar::EntryType::Directory);
    b.append_data(&mut dir, "blobs/", io::empty())
        .map_err(Error::io("writing archive"))?;
    let mut dir = header("blobs/sha256/", 0, mtime, tar::EntryType::Directory);
    b.append_data(&mut dir, "blobs/sha256/", io::empty())
        .map_err(Error::io("writing archive"))?;

    for e in &entries {
        let chains = chain_ids(&e.image.diff_ids);
        let mut layer_descs = Vec::new();
        let mut layer_paths = Vec::new();
        for ch in &chains {
            let l: LayerRecord = store.layer(ch)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "layer {ch} of image {} is missing from the store",
                    e.image.id
                ))
            })?;
            let path = format!("blobs/sha256/{}", l.diff_id.hex());
            if written.insert(l.diff_id.clone()) {
                let mut h = header(&path, l.tar_size, mtime, tar::EntryType::Regular);
                let r = Exact {
                    inner: layers::open_uncompressed(store, &l)?,
                    left: l.tar_size,
                };
                b.append_data(&mut h, &path, r)
                    .map_err(Error::io(format!("writing layer {}", l.diff_id)))?;
            }
            layer_descs.push(Descriptor {
                media_type: media::OCI_LAYER.into(),
                digest: l.diff_id.clone(),
                size: l.tar_size as i64,
                urls: None,
                annotations: None,
                platform: None,
            });
            layer_paths.push(path);
        }
        let config = store.content.read(&e.image.id)?;
        let config_path = format!("blobs/sha256/{}", e.image.id.hex());
        if written.insert(e.image.id.clone()) {
            add_bytes(&mut b, &config_path, &config, mtime)?;
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: media::OCI_CONFIG.into(),
                digest: e.image.id.clone(),
                size: config.len() as i64,
                urls: None,
                annotations: None,
                platform: None,
            },
            layers: layer_descs,
            annotations: None,
        };
        let mbytes = serde_json::to_vec(&manifest).expect("manifest serializes");
        let mdigest = Digest::sha256_of(&mbytes);
        if written.insert(mdigest.clone()) {
            add_bytes(
                &mut b,
                &format!("blobs/sha256/{}", mdigest.hex()),
                &mbytes,
                mtime,
            )?;
        }
        let mdesc = |annotations: Option<BTreeMap<String, String>>| Descriptor {
            media_type: media::OCI_MANIFEST.into(),
            digest: mdigest.clone(),
            size: mbytes.len() as i64,
            urls: None,
            annotations,
            platform: None,
        };
        if e.tags.is_empty() {
            index_manifests.push(mdesc(None));
        }
        for t in &e.tags {
            let mut a = BTreeMap::new();
            a.insert("io.containerd.image.name".to_string(), t.to_string());
            if let Some(tag) = t.tag() {
                a.insert(
                    "org.opencontainers.image.ref.name".to_string(),
                    tag.to_string(),
                );
                repositories.entry(t.familiar_name()).or_default().insert(
                    tag.to_string(),
                    e.image
                        .diff_ids
                        .last()
                        .map(|d| d.hex().to_string())
                        .unwrap_or_default(),
                );
            }
            index_manifests.push(mdesc(Some(a)));
        }
        docker_manifest.push(json!({
            "Config": config_path,
            "RepoTags": e.tags.iter().map(|t| t.familiar_string()).collect::<Vec<_>>(),
            "Layers": layer_paths,
        }));
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.into()),
        manifests: index_manifests,
        annotations: None,
    };
    add_bytes(
        &mut b,
        "index.json",
        &serde_json::to_vec(&index).expect("index serializes"),
        mtime,
    )?;
    add_bytes(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&docker_manifest).expect("serializes"),
        mtime,
    )?;
    add_bytes(
        &mut b,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        mtime,
    )?;
    if !repositories.is_empty() {
        add_bytes(
            &mut b,
            "repositories",
            &serde_json::to_vec(&repositories).expect("serializes"),
            mtime,
        )?;
    }
    b.into_inner()
        .map_err(Error::io("writing archive"))?
        .flush()
        .map_err(Error::io("writing archive"))?;
    Ok(())
}
