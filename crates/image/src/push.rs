//! Small hooks the registry client needs after a push or pull: recording a repo digest
//! (`name@sha256:…`) for an image, and swapping a layer's stored blob for the compressed copy a
//! push made (so the next push finds it on the registry with one HEAD).

use crate::digest::Digest;
use crate::reference::Reference;
use crate::store::{
    BlobRef, IMAGES, ImageRecord, ImageStore, LAYERS, LayerRecord, REFS, RefRecord,
};
use crate::{Error, Result};

/// Points the digest reference `r` (`name@sha256:…`) at `image`, unless it already points at
/// some image (a digest names one manifest: the first image recorded for it stays, as docker's
/// `addDigestReference`).
pub fn add_repo_digest(store: &ImageStore, r: &Reference, image: &Digest) -> Result<()> {
    if r.digest().is_none() {
        return Err(Error::Invalid(format!("{r} is not a digest reference")));
    }
    store.db.write(|w| -> Result<()> {
        if w.get::<ImageRecord>(IMAGES, image.hex())?.is_none() {
            return Err(Error::NotFound(format!("No such image: {image}")));
        }
        let key = r.to_string();
        if w.get::<RefRecord>(REFS, &key)?.is_none() {
            w.put(
                REFS,
                &key,
                &RefRecord {
                    image: image.clone(),
                },
            )?;
        }
        Ok(())
    })
}

/// Replaces the blob of layer `chain_id` with `new` (already in the content store, holding the
/// same tar compressed), if the layer still names `old`. Returns whether it changed; the old
/// blob is left for garbage collection.
pub fn replace_layer_blob(
    store: &ImageStore,
    chain_id: &Digest,
    old: &Digest,
    new: BlobRef,
) -> Result<bool> {
    if !store.content.exists(&new.digest) {
        return Err(Error::NotFound(format!(
            "blob {} is not in the store",
            new.digest
        )));
    }
    store.db.write(|w| -> Result<bool> {
        let Some(mut l) = w.get::<LayerRecord>(LAYERS, chain_id.hex())? else {
            return Ok(false);
        };
        if l.blob.digest != *old {
            return Ok(false);
        }
        l.blob = new;
        w.put(LAYERS, chain_id.hex(), &l)?;
        Ok(true)
    })
}
