//! Unpacking layer blobs into snapshots, verifying their diff IDs on the way.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use berth_storage::compression::{self, Compression};

use crate::config::media;
use crate::digest::{Digest, DigestReader};
use crate::store::{BlobRef, ImageStore, LayerRecord};
use crate::{Error, Result};

/// Media type of a layer blob in the given compression (OCI names).
pub fn layer_media_type(c: Compression) -> &'static str {
    match c {
        Compression::None => media::OCI_LAYER,
        Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
    }
}

/// Hashes the uncompressed content of a layer blob: its diff ID and tar length.
pub fn diff_id_of(path: &Path) -> Result<(Digest, u64, Compression)> {
    let f = File::open(path).map_err(Error::io(format!("opening {}", path.display())))?;
    let (c, r) = compression::decompressed(BufReader::with_capacity(1 << 20, f))
        .map_err(Error::io("reading layer"))?;
    let mut dr = DigestReader::new(r);
    io::copy(&mut dr, &mut io::sink()).map_err(Error::io("reading layer"))?;
    let (_, d, n) = dr.finish();
    Ok((d, n, c))
}

/// Unpacks the layer blob at `path` as snapshot `chain_id` over `parent`, checking that the
/// uncompressed tar hashes to `diff_id`. If the snapshot exists already, nothing is read.
pub fn unpack(
    store: &ImageStore,
    path: &Path,
    blob_digest: &Digest,
    diff_id: &Digest,
    chain_id: &Digest,
    parent: Option<&Digest>,
) -> Result<LayerRecord> {
    if let Some(existing) = store.layer(chain_id)?
        && store.snapshots.exists(chain_id.hex())
    {
        return Ok(existing);
    }
    let f = File::open(path).map_err(Error::io(format!("opening {}", path.display())))?;
    let blob_size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let (c, r) = compression::decompressed(BufReader::with_capacity(1 << 20, f))
        .map_err(|e| Error::Invalid(format!("layer {diff_id}: {e}")))?;
    let mut dr = DigestReader::new(r);
    let stats = store
        .snapshots
        .create_layer(chain_id.hex(), parent.map(|p| p.hex()), &mut dr, None)
        .map_err(|e| Error::Invalid(format!("layer {diff_id}: {e}")))?;
    // Whatever follows the tar's end marker is part of the blob's digest too.
    let drained = io::copy(&mut dr, &mut io::sink());
    let (_, actual, tar_size) = dr.finish();
    if drained.is_err() || actual != *diff_id {
        let _ = store.snapshots.remove(chain_id.hex());
        return Err(Error::Invalid(format!(
            "layer content does not match its diff ID: expected {diff_id}, got {actual}"
        )));
    }
    Ok(LayerRecord {
        chain_id: chain_id.clone(),
        diff_id: diff_id.clone(),
        parent: parent.cloned(),
        size: stats.size,
        tar_size,
        blob: BlobRef {
            digest: blob_digest.clone(),
            media_type: layer_media_type(c).to_string(),
            size: blob_size,
        },
    })
}

/// A reader over a stored layer as an uncompressed tar (for `save`).
pub fn open_uncompressed(store: &ImageStore, layer: &LayerRecord) -> Result<Box<dyn Read>> {
    let f = store.content.open_blob(&layer.blob.digest)?;
    let (_, r) = compression::decompressed(BufReader::with_capacity(1 << 20, f))
        .map_err(Error::io(format!("reading layer {}", layer.diff_id)))?;
    Ok(r)
}
