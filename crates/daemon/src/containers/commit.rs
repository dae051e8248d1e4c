//! Making a new image from a parent image, optionally plus a container's changes as a layer:
//! `docker commit`, and each step of a Dockerfile build.

use std::collections::BTreeMap;

use berth_image::config::{History, ImageConfig, RootFs, RunConfig, chain_ids, host_platform};
use berth_image::store::{LayerRecord, NewImage};
use berth_image::{Digest, Reference};
use serde_json::json;

use crate::daemon::Daemon;
use crate::http::ApiError;

/// What the new image is made of.
pub struct NewImageSpec {
    /// The image it builds on (None: from scratch).
    pub parent: Option<Digest>,
    /// A container (snapshot key) whose changes become a new layer; None: no new layer
    /// (a metadata-only step, recorded as an empty-layer history entry).
    pub layer_from: Option<String>,
    pub config: RunConfig,
    /// The history entry for this step (`empty_layer` is set from `layer_from`).
    pub history: History,
    pub author: Option<String>,
    pub comment: Option<String>,
    /// The container the layer came from, recorded as docker's `container` field.
    pub container: Option<String>,
    pub tags: Vec<Reference>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Writes a container's changes as an uncompressed layer blob and unpacks it as the next
/// layer on `parent_diff_ids`. Blocking.
fn layer_from_container(
    d: &Daemon,
    key: &str,
    parent_diff_ids: &[Digest],
) -> Result<LayerRecord, ApiError> {
    let images = &d.images;
    let tmp = images.content.temp_dir("commit")?;
    let layer_path = tmp.path().join("layer.tar");
    let f = std::fs::File::create(&layer_path).map_err(internal)?;
    let mut w = berth_image::digest::DigestWriter::new(std::io::BufWriter::new(f));
    images
        .snapshots
        .diff_tar(key, crate::userns::layer_writer(d, key, &mut w))
        .map_err(internal)?;
    let (bw, diff_id, _) = w.finish();
    let f = bw.into_inner().map_err(|e| internal(e.into_error()))?;
    f.sync_all().map_err(internal)?;
    let mut diff_ids = parent_diff_ids.to_vec();
    diff_ids.push(diff_id.clone());
    let chains = chain_ids(&diff_ids);
    let chain = chains.last().cloned().expect("at least one layer");
    let parent_chain = chains.len().checked_sub(2).map(|i| chains[i].clone());
    let mut lease = images.lease();
    lease.add(&chain);
    lease.add(&diff_id);
    let layer = berth_image::layers::unpack(
        images,
        &layer_path,
        &diff_id,
        &diff_id,
        &chain,
        parent_chain.as_ref(),
    )?;
    images.content.commit_file(&layer_path, &diff_id)?;
    Ok(layer)
}

/// Records the new image and returns its ID. Blocking.
pub fn create_image(d: &Daemon, spec: NewImageSpec) -> Result<Digest, ApiError> {
    let images = &d.images;
    let (parent_cfg, parent_diff_ids) = match &spec.parent {
        Some(p) => {
            let rec = images
                .image(p)?
                .ok_or_else(|| ApiError::not_found(format!("No such image: {p}")))?;
            (Some(images.config(p)?), rec.diff_ids)
        }
        None => (None, Vec::new()),
    };
    let mut layers: Vec<LayerRecord> = Vec::new();
    for ch in chain_ids(&parent_diff_ids) {
        layers.push(
            images
                .layer(&ch)?
                .ok_or_else(|| internal(format!("layer {ch} is missing")))?,
        );
    }
    let mut diff_ids = parent_diff_ids.clone();
    if let Some(key) = &spec.layer_from {
        let layer = layer_from_container(d, key, &parent_diff_ids)?;
        diff_ids.push(layer.diff_id.clone());
        layers.push(layer);
    }
    let now = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let mut history = parent_cfg
        .as_ref()
        .map(|c| c.history.clone())
        .unwrap_or_default();
    history.push(History {
        created: Some(now.clone()),
        empty_layer: spec.layer_from.is_none(),
        ..spec.history
    });
    let mut extra = BTreeMap::new();
    if let Some(c) = &spec.container {
        extra.insert("container".to_string(), json!(c));
    }
    if let Some(c) = &spec.comment {
        extra.insert("comment".to_string(), json!(c));
    }
    let platform = host_platform();
    let cfg = ImageConfig {
        created: Some(now),
        author: spec.author.clone(),
        architecture: parent_cfg
            .as_ref()
            .map(|c| c.architecture.clone())
            .unwrap_or(platform.architecture),
        os: parent_cfg
            .as_ref()
            .map(|c| c.os.clone())
            .unwrap_or(platform.os),
        variant: parent_cfg.as_ref().and_then(|c| c.variant.clone()),
        os_version: parent_cfg.as_ref().and_then(|c| c.os_version.clone()),
        config: Some(spec.config),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history,
        extra,
    };
    let bytes = serde_json::to_vec(&cfg).expect("config serializes");
    let (id, _) = images.commit_image(
        NewImage {
            config: bytes,
            layers,
            parent: spec.parent,
        },
        &spec.tags,
    )?;
    Ok(id)
}
