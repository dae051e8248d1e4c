//! Where blobs came from: for each layer blob, the repositories (`host/path`) it was pulled from
//! or pushed to. Push uses it for cross-repository mounts and to skip existence checks that
//! cannot succeed. (moby keeps the same facts in its "v2 metadata" service.)

use berth_image::store::BlobRef;
use berth_image::{Digest, ImageStore};
use berth_meta::Table;

pub const SOURCES: Table = Table::new("registry_sources");

const KEEP: usize = 16;

/// Records that `repo` (`host/path`) holds each of `blobs`.
pub fn record(store: &ImageStore, repo: &str, blobs: &[Digest]) {
    let res = store.db.write(|w| -> berth_meta::Result<()> {
        for b in blobs {
            let key = b.to_string();
            let mut repos: Vec<String> = w.get(SOURCES, &key)?.unwrap_or_default();
            repos.retain(|r| r != repo);
            repos.insert(0, repo.to_string());
            repos.truncate(KEEP);
            w.put(SOURCES, &key, &repos)?;
        }
        Ok(())
    });
    if let Err(e) = res {
        tracing::warn!("recording blob sources: {e}");
    }
}

/// The repositories known to hold `blob`, most recent first.
pub fn lookup(store: &ImageStore, blob: &Digest) -> Vec<String> {
    store
        .db
        .read(|r| r.get::<Vec<String>>(SOURCES, &blob.to_string()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Uncompressed local layer blob → the gzip blob pushed for it, when push did not keep that
/// copy (stored-block gzip of incompressible content: cheap to remake, and keeping it would
/// write the layer again). Lets the next push find the layer remotely with one HEAD.
pub const PUSHED_AS: Table = Table::new("registry_pushed_as");

/// Records that `local` was pushed as `remote`.
pub fn record_pushed_as(store: &ImageStore, local: &Digest, remote: &BlobRef) {
    let res = store
        .db
        .write(|w| w.put(PUSHED_AS, &local.to_string(), remote));
    if let Err(e) = res {
        tracing::warn!("recording the pushed form of {local}: {e}");
    }
}

/// The blob `local` was last pushed as, if push recorded one.
pub fn pushed_as(store: &ImageStore, local: &Digest) -> Option<BlobRef> {
    store
        .db
        .read(|r| r.get::<BlobRef>(PUSHED_AS, &local.to_string()))
        .ok()
        .flatten()
}
