//! Where blobs came from: for each layer blob, the repositories (`host/path`) it was pulled from
//! or pushed to. Push uses it for cross-repository mounts and to skip existence checks that
//! cannot succeed. (moby keeps the same facts in its "v2 metadata" service.)

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
