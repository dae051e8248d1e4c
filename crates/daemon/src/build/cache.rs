//! The build cache index: one metadata table mapping a step's cache key to the image the step
//! produced. An entry whose image is gone is a miss (and is dropped).

use std::collections::{BTreeMap, HashSet};

use berth_image::Digest;
use berth_image::config::chain_ids;
use berth_meta::Table;
use serde::{Deserialize, Serialize};

use crate::daemon::Daemon;
use crate::http::ApiError;

pub const BUILD_CACHE: Table = Table::new("build_cache");

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheRecord {
    pub image: Digest,
    /// The instruction, as `system df -v` shows it.
    pub description: String,
    /// Bytes of the layer the step added (0 for config-only steps).
    pub size: u64,
    pub created: i64,
    pub last_used: i64,
    pub usage_count: u64,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// The image cached under `key`, if it (and its layers) still exist.
pub fn lookup(d: &Daemon, key: &str) -> Result<Option<Digest>, ApiError> {
    let Some(rec) = d
        .images
        .db
        .read(|r| r.get::<CacheRecord>(BUILD_CACHE, key))
        .map_err(internal)?
    else {
        return Ok(None);
    };
    match d.images.image(&rec.image)? {
        Some(img) => {
            if let Some(top) = chain_ids(&img.diff_ids).last()
                && !d.images.snapshots.exists(top.hex())
            {
                return Ok(None);
            }
            Ok(Some(rec.image))
        }
        None => Ok(None),
    }
}

/// Records new entries and bumps the usage of hit ones, in one transaction.
pub fn record(d: &Daemon, new: &[(String, CacheRecord)], hits: &[String]) -> Result<(), ApiError> {
    if new.is_empty() && hits.is_empty() {
        return Ok(());
    }
    let t = now();
    d.images
        .db
        .write(|w| -> Result<(), berth_meta::Error> {
            for (k, r) in new {
                w.put(BUILD_CACHE, k, r)?;
            }
            for k in hits {
                if let Some(mut r) = w.get::<CacheRecord>(BUILD_CACHE, k)? {
                    r.last_used = t;
                    r.usage_count += 1;
                    w.put(BUILD_CACHE, k, &r)?;
                }
            }
            Ok(())
        })
        .map_err(internal)
}

/// Images that are (ancestors of) a tagged image or a container's: removing their cache
/// entries frees nothing.
fn shared_images(d: &Daemon) -> Result<HashSet<Digest>, ApiError> {
    let images: BTreeMap<Digest, Option<Digest>> = d
        .images
        .images()?
        .into_iter()
        .map(|i| (i.id, i.parent))
        .collect();
    let mut roots: Vec<Digest> = d.images.refs()?.into_iter().map(|(_, i)| i).collect();
    for c in d.containers.all() {
        if let Ok(id) = c.snapshot().image.parse::<Digest>() {
            roots.push(id);
        }
    }
    let mut out = HashSet::new();
    for r in roots {
        let mut cur = Some(r);
        while let Some(id) = cur {
            if !out.insert(id.clone()) {
                break;
            }
            cur = images.get(&id).cloned().flatten();
        }
    }
    Ok(out)
}

/// `system df`'s BuildCache items.
pub fn usage(d: &Daemon) -> Result<Vec<serde_json::Value>, ApiError> {
    let recs: Vec<(String, CacheRecord)> = d
        .images
        .db
        .read(|r| r.list(BUILD_CACHE))
        .map_err(internal)?;
    let shared = shared_images(d)?;
    let fmt = |t: i64| {
        humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t as u64))
            .to_string()
    };
    let mut out = Vec::new();
    for (k, r) in recs {
        if d.images.image(&r.image)?.is_none() {
            continue;
        }
        out.push(serde_json::json!({
            "ID": &k[..25.min(k.len())],
            "Parents": null,
            "Type": "regular",
            "Description": r.description,
            "InUse": false,
            "Shared": shared.contains(&r.image),
            "Size": r.size,
            "CreatedAt": fmt(r.created),
            "LastUsedAt": fmt(r.last_used),
            "UsageCount": r.usage_count,
        }));
    }
    Ok(out)
}

/// `POST /build/prune`: drops cache entries (all, or only those whose images are not part of
/// a tagged image) and deletes the intermediate images only the cache kept.
pub fn prune(d: &Daemon, all: bool) -> Result<(Vec<String>, u64), ApiError> {
    let recs: Vec<(String, CacheRecord)> = d
        .images
        .db
        .read(|r| r.list(BUILD_CACHE))
        .map_err(internal)?;
    let shared = shared_images(d)?;
    let drop: Vec<(String, CacheRecord)> = recs
        .into_iter()
        .filter(|(_, r)| all || !shared.contains(&r.image))
        .collect();
    d.images
        .db
        .write(|w| -> Result<(), berth_meta::Error> {
            for (k, _) in &drop {
                w.delete(BUILD_CACHE, k)?;
            }
            Ok(())
        })
        .map_err(internal)?;
    // Delete the unshared images, children first (a parent goes once it has no child).
    let mut reclaimed = 0u64;
    let mut ids = Vec::new();
    let mut candidates: Vec<Digest> = drop
        .iter()
        .map(|(_, r)| r.image.clone())
        .filter(|i| !shared.contains(i))
        .collect();
    candidates.sort();
    candidates.dedup();
    loop {
        let images = d.images.images()?;
        let parents: HashSet<Digest> = images.iter().filter_map(|i| i.parent.clone()).collect();
        let before = candidates.len();
        let mut keep = Vec::new();
        for c in candidates {
            if parents.contains(&c) {
                keep.push(c);
                continue;
            }
            let size = d.images.image(&c)?.map(|i| i.size).unwrap_or(0);
            match d
                .images
                .delete(&c.to_string(), false, false, &NoContainers(d))
            {
                Ok(_) => {
                    reclaimed += size;
                    ids.push(c.to_string());
                }
                Err(berth_image::Error::NotFound(_)) => {}
                Err(_) => {}
            }
        }
        candidates = keep;
        if candidates.len() == before || candidates.is_empty() {
            break;
        }
    }
    let _ = d.images.collect_garbage();
    for (k, _) in &drop {
        if !ids.contains(k) {
            ids.push(k.clone());
        }
    }
    Ok((ids, reclaimed))
}

/// Image users for deletes made by the builder: containers of this daemon.
struct NoContainers<'a>(&'a Daemon);

impl berth_image::store::ImageUsers for NoContainers<'_> {
    fn user_of(&self, id: &Digest) -> Option<(bool, String)> {
        self.0.containers.image_user(&id.to_string())
    }
}
