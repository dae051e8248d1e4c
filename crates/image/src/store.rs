//! Image metadata: images, their references (tags and repo digests) and layers, kept in the
//! metadata database; blobs in the content store; unpacked layers in the snapshotter.
//!
//! Rules that decide what survives a delete (untag vs delete, conflicts, dangling parents) live
//! here, with Docker's wording, so the API layer only translates errors to status codes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_meta::{Db, Table};
use berth_storage::Snapshotter;
use serde::{Deserialize, Serialize};

use crate::config::{ImageConfig, chain_ids};
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::reference::{self, Reference};
use crate::{Error, Result};

pub const IMAGES: Table = Table::new("images");
pub const REFS: Table = Table::new("image_refs");
pub const LAYERS: Table = Table::new("layers");

/// Where a layer's tar can be read from: a blob in the content store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlobRef {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Bytes of file content in the layer (Docker's layer size).
    pub size: u64,
    /// Length of the uncompressed tar (needed to write it into an archive).
    pub tar_size: u64,
    pub blob: BlobRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub id: Digest,
    pub diff_ids: Vec<Digest>,
    /// Sum of the layers' sizes.
    pub size: u64,
    /// Unix nanoseconds, from the config's `created`.
    pub created_ns: i64,
    /// The local image this one was built or committed from, if any.
    #[serde(default)]
    pub parent: Option<Digest>,
    #[serde(default)]
    pub last_tag_time: Option<String>,
}

impl ImageRecord {
    pub fn top_chain_id(&self) -> Option<Digest> {
        chain_ids(&self.diff_ids).pop()
    }
}

/// The references naming one image: tags (`name:tag`) and repo digests (`name@sha256:…`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageNames {
    pub tags: Vec<Reference>,
    pub digests: Vec<Reference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefRecord {
    pub image: Digest,
}

/// One item of an image delete report.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteItem {
    Untagged(String),
    Deleted(Digest),
}

/// Who else uses an image (containers, later). Returns a conflict message tail when in use.
pub trait ImageUsers: Send + Sync {
    /// `Some((running, container_id))` if a container uses the image.
    fn user_of(&self, image: &Digest) -> Option<(bool, String)>;
}

/// No users: images are free to go (until containers exist).
pub struct NoUsers;
impl ImageUsers for NoUsers {
    fn user_of(&self, _: &Digest) -> Option<(bool, String)> {
        None
    }
}

/// In-flight operations hold leases on what they are about to reference, so garbage collection
/// running at the same time never removes it.
#[derive(Default)]
struct Leases {
    held: HashMap<String, usize>,
}

/// A set of leased keys (chain IDs, blob digests), released on drop.
pub struct Lease {
    store: Arc<Mutex<Leases>>,
    keys: Vec<String>,
}

impl Lease {
    pub fn add(&mut self, key: &Digest) {
        let k = key.to_string();
        *self
            .store
            .lock()
            .unwrap()
            .held
            .entry(k.clone())
            .or_default() += 1;
        self.keys.push(k);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut l = self.store.lock().unwrap();
        for k in &self.keys {
            if let Some(n) = l.held.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    l.held.remove(k);
                }
            }
        }
    }
}

pub struct ImageStore {
    pub db: Arc<Db>,
    pub content: ContentStore,
    pub snapshots: Snapshotter,
    leases: Arc<Mutex<Leases>>,
    /// Serializes reference-changing decisions and garbage collection.
    gc_lock: Mutex<()>,
}

/// What a new image consists of, ready to be recorded.
pub struct NewImage {
    pub config: Vec<u8>,
    pub layers: Vec<LayerRecord>,
    pub parent: Option<Digest>,
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Parses an RFC 3339 time (any offset) into unix nanoseconds (0 if absent or unreadable).
pub fn unix_nanos(t: Option<&str>) -> i64 {
    t.and_then(parse_rfc3339_any)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// RFC 3339 with `Z` or a numeric offset (humantime only reads `Z`).
pub fn parse_rfc3339_any(s: &str) -> Option<std::time::SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Some(t);
    }
    let s = s.trim();
    let (body, sign, off) = match s.rfind(['+', '-']) {
        Some(i) if i > 10 => (
            &s[..i],
            if &s[i..i + 1] == "+" { 1i64 } else { -1 },
            &s[i + 1..],
        ),
        _ => return None,
    };
    let (h, m) = off.split_once(':')?;
    let secs = (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60) * sign;
    let t = humantime::parse_rfc3339_weak(&format!("{body}Z")).ok()?;
    if secs >= 0 {
        t.checked_sub(std::time::Duration::from_secs(secs as u64))
    } else {
        t.checked_add(std::time::Duration::from_secs((-secs) as u64))
    }
}

impl ImageStore {
    pub fn open(db: Arc<Db>, data_root: &Path, snapshots: Snapshotter) -> Result<ImageStore> {
        let content = ContentStore::open(&data_root.join("content"), &data_root.join("tmp"))?;
        let store = ImageStore {
            db,
            content,
            snapshots,
            leases: Arc::default(),
            gc_lock: Mutex::new(()),
        };
        Ok(store)
    }

    pub fn lease(&self) -> Lease {
        Lease {
            store: self.leases.clone(),
            keys: Vec::new(),
        }
    }

    // ---- lookups ----

    pub fn image(&self, id: &Digest) -> Result<Option<ImageRecord>> {
        Ok(self.db.read(|r| r.get(IMAGES, id.hex()))?)
    }

    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        Ok(self
            .db
            .read(|r| r.list::<ImageRecord>(IMAGES))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// All references, as (full reference string, image).
    pub fn refs(&self) -> Result<Vec<(String, Digest)>> {
        Ok(self
            .db
            .read(|r| r.list::<RefRecord>(REFS))?
            .into_iter()
            .map(|(k, v)| (k, v.image))
            .collect())
    }

    pub fn layer(&self, chain_id: &Digest) -> Result<Option<LayerRecord>> {
        Ok(self.db.read(|r| r.get(LAYERS, chain_id.hex()))?)
    }

    pub fn config(&self, id: &Digest) -> Result<ImageConfig> {
        let bytes = self.content.read(id)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Invalid(format!("image config {id}: {e}")))
    }

    /// Every image's names, grouped by image.
    pub fn names_by_image(&self) -> Result<HashMap<Digest, ImageNames>> {
        let mut m: HashMap<Digest, ImageNames> = HashMap::new();
        for (r, img) in self.refs()? {
            let Ok(parsed) = Reference::parse_normalized(&r) else {
                continue;
            };
            let e = m.entry(img).or_default();
            if parsed.digest().is_some() {
                e.digests.push(parsed);
            } else {
                e.tags.push(parsed);
            }
        }
        Ok(m)
    }

    /// One image's names.
    pub fn names_of(&self, id: &Digest) -> Result<ImageNames> {
        Ok(self.names_by_image()?.remove(id).unwrap_or_default())
    }

    /// Resolves what a user typed (reference, full ID, `sha256:` ID, short ID) to an image,
    /// as Docker does.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord> {
        let not_found = || Error::NotFound(format!("No such image: {name}"));
        if name.is_empty() {
            return Err(not_found());
        }
        let hexpart = name.strip_prefix("sha256:").unwrap_or(name);
        if reference::is_full_id(name) {
            let d: Digest = format!("sha256:{hexpart}")
                .parse()
                .map_err(|_| not_found())?;
            return self.image(&d)?.ok_or_else(not_found);
        }
        if let Ok(r) = Reference::parse_normalized(name) {
            let r = r.with_default_tag();
            if let Some(rec) = self.db.read(|t| t.get::<RefRecord>(REFS, &r.to_string()))? {
                return self.image(&rec.image)?.ok_or_else(not_found);
            }
        }
        if reference::looks_like_id_prefix(name) {
            let mut found: Vec<ImageRecord> = self
                .images()?
                .into_iter()
                .filter(|i| i.id.hex().starts_with(hexpart))
                .collect();
            match found.len() {
                0 => {}
                1 => return Ok(found.pop().unwrap()),
                _ => {
                    return Err(Error::Ambiguous(format!(
                        "multiple IDs found with provided prefix: {hexpart}"
                    )));
                }
            }
        }
        Err(not_found())
    }

    // ---- creating ----

    /// Records a new image and its layers (which must already be unpacked and their blobs
    /// stored), tagging it with `tags`. Returns the image ID and the tags that moved away from
    /// another image, with that image (Docker reports those on load).
    pub fn commit_image(
        &self,
        new: NewImage,
        tags: &[Reference],
    ) -> Result<(Digest, Vec<(Reference, Digest)>)> {
        let config: ImageConfig = serde_json::from_slice(&new.config)
            .map_err(|e| Error::Invalid(format!("invalid image config: {e}")))?;
        if config.rootfs.diff_ids.len() != new.layers.len() {
            return Err(Error::Invalid(format!(
                "image config lists {} layers but {} were provided",
                config.rootfs.diff_ids.len(),
                new.layers.len()
            )));
        }
        for (l, d) in new.layers.iter().zip(&config.rootfs.diff_ids) {
            if l.diff_id != *d {
                return Err(Error::Invalid(format!(
                    "layer {} does not match the config's diff ID {d}",
                    l.diff_id
                )));
            }
        }
        let id = self.content.put_bytes(&new.config)?;
        let record = ImageRecord {
            id: id.clone(),
            diff_ids: config.rootfs.diff_ids.clone(),
            size: new.layers.iter().map(|l| l.size).sum(),
            created_ns: unix_nanos(config.created.as_deref()),
            parent: new.parent.clone(),
            last_tag_time: if tags.is_empty() {
                None
            } else {
                Some(now_rfc3339())
            },
        };
        self.content.sync_dir();
        let _g = self.gc_lock.lock().unwrap();
        let moved = self.db.write(|w| -> Result<Vec<(Reference, Digest)>> {
            for l in &new.layers {
                if w.get::<LayerRecord>(LAYERS, l.chain_id.hex())?.is_none() {
                    w.put(LAYERS, l.chain_id.hex(), l)?;
                }
            }
            if let Some(old) = w.get::<ImageRecord>(IMAGES, id.hex())? {
                // Same image again: keep its original record (parent, tag time).
                let mut keep = old;
                if !tags.is_empty() {
                    keep.last_tag_time = record.last_tag_time.clone();
                }
                w.put(IMAGES, id.hex(), &keep)?;
            } else {
                w.put(IMAGES, id.hex(), &record)?;
            }
            let mut moved = Vec::new();
            for t in tags {
                let key = t.to_string();
                if let Some(prev) = w.get::<RefRecord>(REFS, &key)?
                    && prev.image != id
                {
                    moved.push((t.clone(), prev.image));
                }
                w.put(REFS, &key, &RefRecord { image: id.clone() })?;
            }
            Ok(moved)
        })?;
        Ok((id, moved))
    }

    /// Points `reference` (defaulting to `:latest`) at image `id`.
    pub fn tag(&self, id: &Digest, reference: &Reference) -> Result<()> {
        let _g = self.gc_lock.lock().unwrap();
        let r = reference.clone().with_default_tag();
        self.db.write(|w| -> Result<()> {
            let mut img: ImageRecord = w
                .get(IMAGES, id.hex())?
                .ok_or_else(|| Error::NotFound(format!("No such image: {id}")))?;
            img.last_tag_time = Some(now_rfc3339());
            w.put(IMAGES, id.hex(), &img)?;
            w.put(REFS, &r.to_string(), &RefRecord { image: id.clone() })?;
            Ok(())
        })
    }

    // ---- deleting ----

    /// `docker rmi NAME`: untag, and delete the image when nothing refers to it any more.
    pub fn delete(
        &self,
        name: &str,
        force: bool,
        prune_parents: bool,
        users: &dyn ImageUsers,
    ) -> Result<Vec<DeleteItem>> {
        let img = self.resolve(name)?;
        let id = img.id.clone();
        let short = &id.hex()[..12];
        let by_reference = self.named_reference(name, &id)?;
        let mut report = Vec::new();
        let _g = self.gc_lock.lock().unwrap();
        let deleted = self.db.write(|w| -> Result<Vec<Digest>> {
            let all_refs: Vec<(String, RefRecord)> = w.list(REFS)?;
            let mine: Vec<Reference> = all_refs
                .iter()
                .filter(|(_, r)| r.image == id)
                .filter_map(|(k, _)| Reference::parse_normalized(k).ok())
                .collect();
            if let Some(r) = &by_reference {
                // Removing one name: untag it; delete the image only if it was the last name.
                w.delete(REFS, &r.to_string())?;
                report.push(DeleteItem::Untagged(r.familiar_string()));
                let remaining: Vec<&Reference> = mine.iter().filter(|m| *m != r).collect();
                // Digest references of the same repository go with its last tag.
                let same_repo_tags = remaining.iter().filter(|m| m.digest().is_none() && m.name() == r.name()).count();
                let mut others = 0;
                for m in &remaining {
                    if r.digest().is_none() && m.digest().is_some() && m.name() == r.name() && same_repo_tags == 0 {
                        w.delete(REFS, &m.to_string())?;
                        report.push(DeleteItem::Untagged(m.familiar_string()));
                    } else {
                        others += 1;
                    }
                }
                if others > 0 {
                    return Ok(Vec::new());
                }
            } else {
                // Removing by ID: every name goes, but names in several repositories need -f.
                let repos: BTreeSet<String> = mine.iter().map(|m| m.name()).collect();
                if repos.len() > 1 && !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                    )));
                }
            }
            if let Some((running, cid)) = users.user_of(&id) {
                if running {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
                        &cid[..12.min(cid.len())]
                    )));
                }
                if !force {
                    return Err(Error::Conflict(format!(
                        "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
                        &cid[..12.min(cid.len())]
                    )));
                }
            }
            let images: Vec<(String, ImageRecord)> = w.list(IMAGES)?;
            if images.iter().any(|(_, i)| i.parent.as_ref() == Some(&id)) {
                if by_reference.is_some() {
                    // Untagged; the image stays as the parent of others.
                    return Ok(Vec::new());
                }
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {short} (cannot be forced) - image has dependent child images"
                )));
            }
            for m in &mine {
                if w.delete(REFS, &m.to_string())? {
                    report.push(DeleteItem::Untagged(m.familiar_string()));
                }
            }
            let mut deleted = vec![id.clone()];
            w.delete(IMAGES, id.hex())?;
            // Untagged parents with no other children go too (Docker's default `noprune=false`).
            let mut parent = img.parent.clone();
            if !prune_parents {
                parent = None;
            }
            while let Some(p) = parent.take() {
                let Some(prec) = w.get::<ImageRecord>(IMAGES, p.hex())? else { break };
                let has_refs = w.list::<RefRecord>(REFS)?.iter().any(|(_, r)| r.image == p);
                let other_children = w
                    .list::<ImageRecord>(IMAGES)?
                    .iter()
                    .any(|(_, i)| i.parent.as_ref() == Some(&p));
                if has_refs || other_children || users.user_of(&p).is_some() {
                    break;
                }
                w.delete(IMAGES, p.hex())?;
                deleted.push(p.clone());
                parent = prec.parent.clone();
            }
            Ok(deleted)
        })?;
        for d in &deleted {
            report.push(DeleteItem::Deleted(d.clone()));
        }
        if !deleted.is_empty() {
            for layer in self.collect_garbage_locked()? {
                report.push(DeleteItem::Deleted(layer));
            }
        }
        Ok(report)
    }

    /// If `name` names the image by reference (not by ID), that reference.
    fn named_reference(&self, name: &str, id: &Digest) -> Result<Option<Reference>> {
        let hexpart = name.strip_prefix("sha256:").unwrap_or(name);
        if reference::looks_like_id_prefix(name) && id.hex().starts_with(hexpart) {
            // Docker prefers the reference when a name could be both; check the refs table.
            if let Ok(r) = Reference::parse_normalized(name) {
                let r = r.with_default_tag();
                if self
                    .db
                    .read(|t| t.get::<RefRecord>(REFS, &r.to_string()))?
                    .is_some()
                {
                    return Ok(Some(r));
                }
            }
            return Ok(None);
        }
        match Reference::parse_normalized(name) {
            Ok(r) => Ok(Some(r.with_default_tag())),
            Err(_) => Ok(None),
        }
    }

    /// Removes layers, snapshots and blobs no image (and no lease) refers to. Returns the
    /// chain IDs of removed layers.
    pub fn collect_garbage(&self) -> Result<Vec<Digest>> {
        let _g = self.gc_lock.lock().unwrap();
        self.collect_garbage_locked()
    }

    fn collect_garbage_locked(&self) -> Result<Vec<Digest>> {
        let leased: HashSet<String> = self.leases.lock().unwrap().held.keys().cloned().collect();
        let images = self.images()?;
        let mut live_chains: HashSet<Digest> = HashSet::new();
        let mut live_blobs: HashSet<Digest> = HashSet::new();
        for i in &images {
            live_blobs.insert(i.id.clone());
            live_chains.extend(chain_ids(&i.diff_ids));
        }
        let layers: Vec<(String, LayerRecord)> = self.db.read(|r| r.list(LAYERS))?;
        let mut dead = Vec::new();
        for (_, l) in &layers {
            if live_chains.contains(&l.chain_id) || leased.contains(&l.chain_id.to_string()) {
                live_blobs.insert(l.blob.digest.clone());
            } else {
                dead.push(l.clone());
            }
        }
        if !dead.is_empty() {
            self.db.write(|w| -> Result<()> {
                for l in &dead {
                    w.delete(LAYERS, l.chain_id.hex())?;
                }
                Ok(())
            })?;
        }
        for l in &dead {
            let _ = self.snapshots.remove(l.chain_id.hex());
        }
        for b in self.content.list() {
            if !live_blobs.contains(&b) && !leased.contains(&b.to_string()) {
                self.content.delete(&b);
            }
        }
        Ok(dead.into_iter().map(|l| l.chain_id).collect())
    }

    /// Start-up cleanup after a crash: snapshots of layers that were never recorded (a load cut
    /// short), given the set of snapshot keys other subsystems own (containers).
    pub fn remove_unrecorded_snapshots(&self, owned_elsewhere: &HashSet<String>) -> Result<usize> {
        let layers: HashSet<String> = self
            .db
            .read(|r| r.list::<LayerRecord>(LAYERS))?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut n = 0;
        for s in self.snapshots.list().map_err(Error::from)? {
            if !layers.contains(&s) && !owned_elsewhere.contains(&s) {
                let _ = self.snapshots.remove(&s);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Images a given image's layers are built on, for `history` and filters: image ID by
    /// top chain ID.
    pub fn images_by_top_chain(&self) -> Result<BTreeMap<Digest, Digest>> {
        let mut m = BTreeMap::new();
        for i in self.images()? {
            if let Some(c) = i.top_chain_id() {
                m.entry(c).or_insert(i.id);
            }
        }
        Ok(m)
    }
}
