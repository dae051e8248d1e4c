//! Unpacking a downloaded layer into the snapshotter with docker's `Extracting` progress
//! (bytes of the blob read), checking the uncompressed tar against its diff ID.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use berth_image::digest::DigestReader;
use berth_image::layers::layer_media_type;
use berth_image::store::{BlobRef, LayerRecord};
use berth_image::{Digest, ImageStore};
use berth_storage::compression;

use crate::progress::{Progress, ProgressReader};
use crate::{Error, Result};

pub struct Layer<'a> {
    pub path: &'a Path,
    pub blob: &'a Digest,
    pub diff_id: &'a Digest,
    pub chain_id: &'a Digest,
    pub parent: Option<&'a Digest>,
}

pub fn unpack(store: &ImageStore, l: &Layer, sink: &dyn Progress, id: &str) -> Result<LayerRecord> {
    let f = File::open(l.path)
        .map_err(|e| Error::registry(format!("opening downloaded layer: {e}")))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let counted = ProgressReader::new(f, sink, id, "Extracting", 0, size);
    let (c, r) = compression::decompressed(BufReader::with_capacity(1 << 20, counted))
        .map_err(|e| Error::registry(format!("layer {}: {e}", l.blob)))?;
    let mut dr = DigestReader::new(r);
    let existed = store.snapshots.exists(l.chain_id.hex());
    let stats = store
        .snapshots
        .create_layer(l.chain_id.hex(), l.parent.map(|p| p.hex()), &mut dr, None)
        .map_err(|e| Error::registry(format!("failed to register layer: {e}")))?;
    // Whatever follows the tar's end marker belongs to the diff ID too.
    let drained = io::copy(&mut dr, &mut io::sink());
    let (_, actual, tar_size) = dr.finish();
    if drained.is_err() || actual != *l.diff_id {
        let _ = store.snapshots.remove(l.chain_id.hex());
        return Err(Error::registry(format!(
            "failed to register layer: layer content does not match its diff ID: expected {}, got {actual}",
            l.diff_id
        )));
    }
    Ok(LayerRecord {
        chain_id: l.chain_id.clone(),
        diff_id: l.diff_id.clone(),
        parent: l.parent.cloned(),
        // A concurrent pull may have published the snapshot first.
        size: if existed {
            store
                .snapshots
                .usage(l.chain_id.hex())
                .unwrap_or(stats.size)
        } else {
            stats.size
        },
        tar_size,
        blob: BlobRef {
            digest: l.blob.clone(),
            media_type: layer_media_type(c).to_string(),
            size,
        },
    })
}
