//! `docker pull`: resolve the manifest (through an index, picking the platform), fetch the
//! config, download the missing layers in parallel (resuming broken transfers with `Range`,
//! verifying digests as bytes arrive), unpack them in order as they complete, and only then
//! commit the blobs and the image record. A failure leaves nothing behind.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use berth_image::config::{
    Descriptor, ImageConfig, Index, Manifest, Platform, chain_ids, host_platform, media,
};
use berth_image::digest::{Algorithm, Digester};
use berth_image::store::{LayerRecord, NewImage, REFS, RefRecord};
use berth_image::{Digest, ImageStore, Reference};

use crate::auth::AuthConfig;
use crate::client::{Repo, ReqBody, api_error, endpoints, header, read_body, response_error};
use crate::config::RegistryConfig;
use crate::progress::{Progress, ProgressReader};
use crate::transport::url_error;
use crate::unpack::{Layer, unpack};
use crate::{Error, Result, platform, sources};

/// docker's limit on manifest bodies.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Image configs are small JSON documents; refuse anything absurd.
pub const MAX_CONFIG: u64 = 16 << 20;
/// Attempts per layer download (the first and four resumptions), as moby.
const ATTEMPTS: u32 = 5;

pub const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

pub fn accept_header() -> String {
    [
        media::OCI_INDEX,
        media::DOCKER_MANIFEST_LIST,
        media::OCI_MANIFEST,
        media::DOCKER_MANIFEST,
    ]
    .join(", ")
}

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from an index (default: the host's).
    pub platform: Option<Platform>,
    pub auth: AuthConfig,
}

/// One image a pull recorded.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub id: Digest,
    /// The reference pulled (tag or digest).
    pub reference: Reference,
    /// The manifest (or index) digest recorded as the repo digest.
    pub manifest_digest: Digest,
    /// True when the reference now points at an image it did not point at before.
    pub updated: bool,
}

/// Pulls `reference`: a tag, a digest, or a bare name (every tag of the repository).
pub fn pull(
    store: &ImageStore,
    cfg: &RegistryConfig,
    reference: &Reference,
    opts: &PullOptions,
    out: &dyn Progress,
) -> Result<Vec<Pulled>> {
    if reference.familiar_name() == "scratch" {
        return Err(Error::Invalid("'scratch' is a reserved name".into()));
    }
    let domain = reference.domain().to_string();
    let path = reference.path().to_string();
    let eps = endpoints(cfg, &domain, true);
    let (mirrors, direct): (Vec<_>, Vec<_>) = eps.into_iter().partition(|e| e.mirror);
    let mut last: Option<Error> = None;
    for m in &mirrors {
        let attempt = Repo::connect(std::slice::from_ref(m), &domain, &path, &opts.auth, false)
            .and_then(|repo| pull_repository(store, cfg, &repo, reference, opts, out));
        match attempt {
            Ok(v) => return Ok(v),
            Err(e) => {
                tracing::info!(
                    "pull from mirror {} failed, trying the next endpoint: {e}",
                    m.base
                );
                last = Some(e);
            }
        }
    }
    match Repo::connect(&direct, &domain, &path, &opts.auth, false) {
        Ok(repo) => pull_repository(store, cfg, &repo, reference, opts, out),
        Err(e) => Err(last
            .filter(|_| matches!(e, Error::Transport(_)))
            .unwrap_or(e)),
    }
}

fn pull_repository(
    store: &ImageStore,
    cfg: &RegistryConfig,
    repo: &Repo,
    reference: &Reference,
    opts: &PullOptions,
    out: &dyn Progress,
) -> Result<Vec<Pulled>> {
    let mut pulled = Vec::new();
    if reference.is_name_only() {
        for t in list_tags(repo)? {
            let r = reference.clone().with_tag(&t).map_err(|e| {
                Error::registry(format!("the registry listed an invalid tag {t:?}: {e}"))
            })?;
            pulled.push(pull_one(store, cfg, repo, &r, opts, out)?);
        }
    } else {
        pulled.push(pull_one(store, cfg, repo, reference, opts, out)?);
    }
    let updated = pulled.iter().any(|p| p.updated);
    out.status(
        None,
        &format!(
            "Status: {} for {}",
            if updated {
                "Downloaded newer image"
            } else {
                "Image is up to date"
            },
            reference.familiar_string()
        ),
    );
    Ok(pulled)
}

/// `GET /v2/<name>/tags/list`, following `Link` pagination.
pub fn list_tags(repo: &Repo) -> Result<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Tags {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let mut url = repo.url("tags/list");
    let mut all = Vec::new();
    for _ in 0..1000 {
        let mut resp = repo.request("GET", &url, &[], ReqBody::None, &[])?;
        if !resp.status().is_success() {
            return Err(not_found_or(resp, repo, None));
        }
        let next = header(&resp, "link").and_then(|l| {
            let start = l.find('<')? + 1;
            let end = l[start..].find('>')? + start;
            url::Url::parse(&repo.ep.base)
                .ok()?
                .join(&l[start..end])
                .ok()
                .map(|u| u.to_string())
        });
        let body = read_body(&mut resp, MAX_MANIFEST, "tag list")?;
        let t: Tags = serde_json::from_slice(&body)
            .map_err(|e| Error::registry(format!("decoding the tag list: {e}")))?;
        all.extend(t.tags.unwrap_or_default());
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    Ok(all)
}

/// Turns a failed manifest/tag request into docker's not-found wording.
fn not_found_or(
    resp: ureq::http::Response<ureq::Body>,
    repo: &Repo,
    reference: Option<&Reference>,
) -> Error {
    let mut resp = resp;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    let e = api_error(status, &body);
    let name = Reference::with_name(&format!("{}/{}", repo.domain, repo.path))
        .map(|r| r.familiar_name())
        .unwrap_or_else(|_| repo.path.clone());
    match e.code.as_deref() {
        Some("DENIED") => Error::NotFound(format!(
            "pull access denied for {name}, repository does not exist or may require 'docker login': {}",
            e.text
        )),
        Some("MANIFEST_UNKNOWN") => Error::NotFound(format!(
            "manifest for {} not found: {}",
            reference.map(|r| r.familiar_string()).unwrap_or(name),
            e.text
        )),
        Some("NAME_UNKNOWN") => Error::NotFound(format!("repository {name} not found: {}", e.text)),
        Some("UNAUTHORIZED") => Error::Unauthorized(e.text),
        _ if status == 404 => Error::NotFound(format!(
            "manifest for {} not found: {}",
            reference.map(|r| r.familiar_string()).unwrap_or(name),
            e.text
        )),
        _ => Error::Registry(e.text),
    }
}

/// A manifest as fetched: its bytes, media type and digest (checked).
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

/// The media type of a manifest: the `Content-Type` unless generic, else the document's own.
fn sniff_media_type(content_type: Option<&str>, body: &[u8]) -> String {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .unwrap_or_default();
    if !ct.is_empty()
        && ct != "application/json"
        && ct != "text/plain"
        && ct != "application/octet-stream"
    {
        return ct;
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
        #[serde(default)]
        fs_layers: Option<serde_json::Value>,
        #[serde(default)]
        schema_version: Option<u32>,
    }
    let Ok(p) = serde_json::from_slice::<Probe>(body) else {
        return ct;
    };
    if let Some(m) = p.media_type {
        return m;
    }
    if p.manifests.is_some() {
        media::OCI_INDEX.into()
    } else if p.config.is_some() {
        media::OCI_MANIFEST.into()
    } else if p.fs_layers.is_some() || p.schema_version == Some(1) {
        SCHEMA1.into()
    } else {
        ct
    }
}

/// `GET /v2/<name>/manifests/<tag|digest>`, at most 4 MiB, digest verified.
pub fn fetch_manifest(
    repo: &Repo,
    reference: &Reference,
    by: &str,
    expect: Option<&Digest>,
) -> Result<Fetched> {
    let url = repo.url(&format!("manifests/{by}"));
    let resp = repo
        .request(
            "GET",
            &url,
            &[("Accept", accept_header())],
            ReqBody::None,
            &[],
        )
        .map_err(|e| match e {
            Error::Unauthorized(m) if m == "no basic auth credentials" => {
                Error::Unauthorized(url_error("GET", &url, m))
            }
            other => other,
        })?;
    if !resp.status().is_success() {
        return Err(not_found_or(resp, repo, Some(reference)));
    }
    let mut resp = resp;
    let content_type = header(&resp, "content-type");
    let claimed = header(&resp, "docker-content-digest");
    let bytes = read_body(&mut resp, MAX_MANIFEST, "manifest")?;
    let digest = Digest::sha256_of(&bytes);
    if let Some(e) = expect {
        if e.algorithm() != Algorithm::Sha256 {
            return Err(Error::registry(format!(
                "manifest verification failed for digest {e}: only sha256 digests are supported"
            )));
        }
        if *e != digest {
            return Err(Error::registry(format!(
                "manifest verification failed for digest {e}"
            )));
        }
    } else if let Some(c) = claimed.and_then(|c| c.parse::<Digest>().ok())
        && c.algorithm() == Algorithm::Sha256
        && c != digest
    {
        return Err(Error::registry(format!(
            "manifest verification failed for digest {c}: the registry sent content with digest {digest}"
        )));
    }
    Ok(Fetched {
        media_type: sniff_media_type(content_type.as_deref(), &bytes),
        bytes,
        digest,
    })
}

fn deprecated_schema1(r: &Reference) -> Error {
    Error::Invalid(format!(
        "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of {} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/",
        r.familiar_string()
    ))
}

/// Picks the manifest for `want` from an index, as docker does (first match wins).
pub fn select_platform<'a>(idx: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    idx.manifests.iter().find(|d| {
        (d.media_type == media::OCI_MANIFEST || d.media_type == media::DOCKER_MANIFEST)
            && d.platform
                .as_ref()
                .is_some_and(|p| platform::matches(want, p))
    })
}

/// Resolves a reference to an image manifest: (manifest, the digest to record, and the bytes).
pub fn resolve(
    repo: &Repo,
    reference: &Reference,
    want: &Platform,
    on_first: &mut dyn FnMut(),
) -> Result<(Manifest, Digest)> {
    let by = match reference.digest() {
        Some(d) => d.to_string(),
        None => reference.tag().unwrap_or("latest").to_string(),
    };
    let top = fetch_manifest(repo, reference, &by, reference.digest())?;
    on_first();
    let record = top.digest.clone();
    let manifest_bytes = match top.media_type.as_str() {
        media::OCI_INDEX | media::DOCKER_MANIFEST_LIST => {
            let idx: Index = serde_json::from_slice(&top.bytes)
                .map_err(|e| Error::registry(format!("invalid manifest list: {e}")))?;
            let d = select_platform(&idx, want).ok_or_else(|| {
                Error::NotFound(format!(
                    "no matching manifest for {} in the manifest list entries",
                    platform::format(want)
                ))
            })?;
            let child = fetch_manifest(repo, reference, &d.digest.to_string(), Some(&d.digest))?;
            match child.media_type.as_str() {
                media::OCI_MANIFEST | media::DOCKER_MANIFEST => child.bytes,
                SCHEMA1 | SCHEMA1_SIGNED => return Err(deprecated_schema1(reference)),
                other => {
                    return Err(Error::registry(format!(
                        "unsupported manifest media type {other} in the manifest list"
                    )));
                }
            }
        }
        media::OCI_MANIFEST | media::DOCKER_MANIFEST => top.bytes,
        SCHEMA1 | SCHEMA1_SIGNED => return Err(deprecated_schema1(reference)),
        other => {
            return Err(Error::registry(format!(
                "unsupported manifest format: {}",
                if other.is_empty() {
                    "unknown media type"
                } else {
                    other
                }
            )));
        }
    };
    let m: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| Error::registry(format!("invalid image manifest: {e}")))?;
    Ok((m, record))
}

fn check_media_types(m: &Manifest) -> Result<()> {
    let cfg = m.config.media_type.as_str();
    if cfg != media::DOCKER_CONFIG && cfg != media::OCI_CONFIG {
        let class = if cfg.contains("helm") {
            "Helm chart"
        } else if cfg.contains("in-toto") || cfg.contains("cosign") {
            "signature"
        } else {
            "unknown"
        };
        return Err(Error::Invalid(format!(
            "Encountered remote \"{cfg}\"({class}) when fetching"
        )));
    }
    for l in &m.layers {
        let t = l.media_type.as_str();
        let ok = matches!(
            t,
            media::DOCKER_LAYER
                | media::DOCKER_LAYER_GZIP
                | media::OCI_LAYER
                | media::OCI_LAYER_GZIP
                | media::OCI_LAYER_ZSTD
                | "application/vnd.oci.image.layer.nondistributable.v1.tar"
                | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
                | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
        ) || (t == media::DOCKER_FOREIGN_LAYER && l.urls.is_none());
        if !ok {
            return Err(Error::Invalid(format!("unsupported media type {t}")));
        }
        if l.size < 0 {
            return Err(Error::registry(format!(
                "layer {} has a negative size",
                l.digest
            )));
        }
    }
    Ok(())
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

fn ref_target(store: &ImageStore, r: &Reference) -> Option<Digest> {
    store
        .db
        .read(|t| t.get::<RefRecord>(REFS, &r.to_string()))
        .ok()
        .flatten()
        .map(|r| r.image)
}

fn pull_one(
    store: &ImageStore,
    cfg: &RegistryConfig,
    repo: &Repo,
    reference: &Reference,
    opts: &PullOptions,
    out: &dyn Progress,
) -> Result<Pulled> {
    let want = opts.platform.clone().unwrap_or_else(host_platform);
    let label = match reference.digest() {
        Some(_) => reference.to_string(),
        None => reference.tag().unwrap_or("latest").to_string(),
    };
    let mut announce = || out.status(Some(&label), &format!("Pulling from {}", repo.path));
    let (manifest, manifest_digest) = resolve(repo, reference, &want, &mut announce)?;
    check_media_types(&manifest)?;
    let id = manifest.config.digest.clone();
    let digest_ref = reference
        .without_tag_or_digest()
        .with_digest(manifest_digest.clone());
    let mut names = vec![digest_ref.clone()];
    if reference.digest().is_none() {
        names.push(reference.clone().with_default_tag());
    }
    let before = ref_target(store, &names[names.len() - 1]);

    let existing = store.image(&id)?.filter(|img| {
        chain_ids(&img.diff_ids)
            .iter()
            .all(|c| store.layer(c).ok().flatten().is_some() && store.snapshots.exists(c.hex()))
    });
    let (config_bytes, records) = match existing {
        Some(img) => {
            let bytes = store.content.read(&id)?;
            let mut recs = Vec::new();
            for c in chain_ids(&img.diff_ids) {
                recs.push(store.layer(&c)?.ok_or_else(|| {
                    Error::registry(format!("layer {c} disappeared during the pull"))
                })?);
            }
            (bytes, recs)
        }
        None => {
            let bytes = fetch_config(repo, &manifest.config)?;
            let records = download_layers(
                store,
                repo,
                &manifest,
                &bytes,
                cfg.max_concurrent_downloads,
                out,
            )?;
            (bytes, records)
        }
    };
    let layer_blobs: Vec<Digest> = records.iter().map(|l| l.blob.digest.clone()).collect();
    let (image_id, _) = store.commit_image(
        NewImage {
            config: config_bytes,
            layers: records,
            parent: None,
        },
        &names,
    )?;
    sources::record(
        store,
        &format!("{}/{}", repo.domain, repo.path),
        &layer_blobs,
    );
    out.status(None, &format!("Digest: {manifest_digest}"));
    Ok(Pulled {
        updated: before.as_ref() != Some(&image_id),
        id: image_id,
        reference: reference.clone(),
        manifest_digest,
    })
}

/// Fetches and verifies the image config blob.
fn fetch_config(repo: &Repo, d: &Descriptor) -> Result<Vec<u8>> {
    let url = repo.url(&format!("blobs/{}", d.digest));
    let mut last = None;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250 << (attempt - 1)));
        }
        let mut resp = match repo.request("GET", &url, &[], ReqBody::None, &[]) {
            Ok(r) => r,
            Err(e @ Error::Transport(_)) => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        if !resp.status().is_success() {
            return Err(response_error(resp));
        }
        let bytes = match read_body(&mut resp, MAX_CONFIG, "image config") {
            Ok(b) => b,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        if Digest::sha256_of(&bytes) != d.digest {
            return Err(Error::registry(format!(
                "image config verification failed for digest {}",
                d.digest
            )));
        }
        return Ok(bytes);
    }
    Err(last.unwrap_or_else(|| Error::registry("image config download failed")))
}

/// Downloads and unpacks the layers the store lacks; returns every layer's record.
fn download_layers(
    store: &ImageStore,
    repo: &Repo,
    manifest: &Manifest,
    config_bytes: &[u8],
    concurrency: usize,
    out: &dyn Progress,
) -> Result<Vec<LayerRecord>> {
    let cfg: ImageConfig = serde_json::from_slice(config_bytes).map_err(|e| {
        Error::registry(format!(
            "invalid image config {}: {e}",
            manifest.config.digest
        ))
    })?;
    if cfg.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::registry(
            "layers from manifest don't match image configuration",
        ));
    }
    if !cfg.os.is_empty() && cfg.os != "linux" {
        return Err(Error::Invalid(format!(
            "image operating system \"{}\" cannot be used on this platform: operating system is not supported",
            cfg.os
        )));
    }
    let diff_ids = &cfg.rootfs.diff_ids;
    let chains = chain_ids(diff_ids);
    let n = chains.len();
    let mut records: Vec<LayerRecord> = Vec::with_capacity(n);
    // Layers already present (a prefix of the stack) are reused.
    let mut k = 0;
    while k < n {
        match store.layer(&chains[k])? {
            Some(rec) if store.snapshots.exists(chains[k].hex()) => {
                out.update(&short(&manifest.layers[k].digest), "Already exists");
                records.push(rec);
                k += 1;
            }
            _ => break,
        }
    }
    if k == n {
        return Ok(records);
    }
    // Each distinct blob is downloaded once.
    let mut jobs: Vec<Descriptor> = Vec::new();
    let mut job_of: HashMap<Digest, usize> = HashMap::new();
    for l in &manifest.layers[k..] {
        if !job_of.contains_key(&l.digest) {
            job_of.insert(l.digest.clone(), jobs.len());
            jobs.push(l.clone());
        }
    }
    for l in &manifest.layers[k..] {
        out.update(&short(&l.digest), "Pulling fs layer");
    }
    let workers = concurrency.min(jobs.len()).max(1);
    for j in jobs.iter().skip(workers) {
        out.update(&short(&j.digest), "Waiting");
    }
    let mut lease = store.lease();
    for c in &chains[k..] {
        lease.add(c);
    }
    for j in &jobs {
        lease.add(&j.digest);
    }
    let tmp = store.content.temp_dir("pull")?;
    let cancel = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    // With overlay a layer does not need its parent on disk to be unpacked, so each download
    // worker hands what it fetched to a thread of its own that unpacks it while the worker
    // starts the next download (layers in parallel); a failure there (a hard
    // link to a file of a lower layer not there yet) is retried in order below. The copy
    // driver builds each layer on a copy of its parent: in order only.
    let parallel = matches!(store.snapshots.kind(), berth_storage::DriverKind::Overlay);
    let first_layer: Vec<usize> = jobs
        .iter()
        .map(|jd| {
            k + manifest.layers[k..]
                .iter()
                .position(|l| l.digest == jd.digest)
                .unwrap_or(0)
        })
        .collect();
    let created: Vec<Digest> = chains[k..]
        .iter()
        .filter(|c| !store.snapshots.exists(c.hex()))
        .cloned()
        .collect();
    type Done = (usize, Result<PathBuf>, Option<Result<LayerRecord>>);
    let (tx, rx) = mpsc::channel::<Done>();
    let unpack_layer = |i: usize, path: &Path| -> Result<LayerRecord> {
        let l = &manifest.layers[i];
        let id = short(&l.digest);
        let layer = Layer {
            path,
            blob: &l.digest,
            diff_id: &diff_ids[i],
            chain_id: &chains[i],
            parent: if i == 0 { None } else { Some(&chains[i - 1]) },
        };
        let started = std::time::Instant::now();
        let r = unpack(store, &layer, out, &id);
        tracing::debug!(
            chain = %chains[i],
            ms = started.elapsed().as_millis() as u64,
            ok = r.is_ok(),
            "layer unpacked"
        );
        if r.is_ok() {
            out.update(&id, "Pull complete");
        }
        r
    };
    let result = std::thread::scope(|sc| -> Result<Vec<LayerRecord>> {
        for _ in 0..workers {
            let tx = tx.clone();
            let (jobs, next, cancel, tmp) = (&jobs, &next, &cancel, tmp.path());
            let (first_layer, unpack_layer) = (&first_layer, &unpack_layer);
            sc.spawn(move || {
                loop {
                    let j = next.fetch_add(1, Ordering::SeqCst);
                    if j >= jobs.len() || cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    let dst = tmp.join(format!("layer-{j}"));
                    let started = std::time::Instant::now();
                    let r = download_blob(repo, &jobs[j], &dst, out, cancel).map(|_| dst);
                    tracing::debug!(
                        blob = %jobs[j].digest,
                        size = jobs[j].size,
                        ms = started.elapsed().as_millis() as u64,
                        ok = r.is_ok(),
                        "layer downloaded"
                    );
                    match r {
                        // Unpacked beside the next download, not before it.
                        Ok(p) if parallel && !cancel.load(Ordering::SeqCst) => {
                            let tx = tx.clone();
                            sc.spawn(move || {
                                let rec = unpack_layer(first_layer[j], &p);
                                let _ = tx.send((j, Ok(p), Some(rec)));
                            });
                        }
                        Ok(p) => {
                            let _ = tx.send((j, Ok(p), None));
                        }
                        Err(e) => {
                            let _ = tx.send((j, Err(e), None));
                            break;
                        }
                    }
                }
            });
        }
        drop(tx);
        let mut done: HashMap<usize, PathBuf> = HashMap::new();
        let mut early: HashMap<usize, LayerRecord> = HashMap::new();
        let fail = |e: Error| {
            cancel.store(true, Ordering::SeqCst);
            Err(e)
        };
        let mut unpacked = Vec::new();
        for i in k..n {
            let l = &manifest.layers[i];
            let j = job_of[&l.digest];
            while !done.contains_key(&j) {
                match rx.recv() {
                    Ok((jj, Ok(p), rec)) => {
                        if let Some(Ok(rec)) = rec {
                            early.insert(first_layer[jj], rec);
                        }
                        done.insert(jj, p);
                    }
                    Ok((_, Err(e), _)) => return fail(e),
                    Err(_) => return fail(Error::registry("layer downloads ended early")),
                }
            }
            if let Some(rec) = early.remove(&i) {
                unpacked.push(rec);
                continue;
            }
            match unpack_layer(i, &done[&j]) {
                Ok(rec) => unpacked.push(rec),
                Err(e) => return fail(e),
            }
        }
        // Blobs go into the store only now that every layer checked out.
        for (j, p) in &done {
            store.content.commit_file(p, &jobs[*j].digest)?;
        }
        store.content.sync_dir();
        Ok(unpacked)
    });
    match result {
        Ok(mut recs) => {
            records.append(&mut recs);
            drop(lease);
            Ok(records)
        }
        Err(e) => {
            for c in &created {
                if store.layer(c).ok().flatten().is_none() {
                    let _ = store.snapshots.remove(c.hex());
                }
            }
            drop(lease);
            Err(e)
        }
    }
}

/// Downloads one blob into `dst`: hashed as it arrives, resumed with `Range` after a broken
/// transfer (up to five attempts), verified against its digest at the end.
pub fn download_blob(
    repo: &Repo,
    desc: &Descriptor,
    dst: &Path,
    out: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<()> {
    if desc.digest.algorithm() != Algorithm::Sha256 {
        return Err(Error::registry(format!(
            "unsupported digest algorithm {} for layer {}",
            desc.digest.algorithm().as_str(),
            desc.digest
        )));
    }
    let id = short(&desc.digest);
    let total = desc.size.max(0) as u64;
    let url = repo.url(&format!("blobs/{}", desc.digest));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(dst)
        .map_err(|e| Error::registry(format!("creating download file: {e}")))?;
    let mut hasher = Digester::new();
    let mut have: u64 = 0;
    let mut attempt = 0u32;
    let mut resumed = false;
    let mut last_err: Option<Error> = None;
    loop {
        if cancel.load(Ordering::SeqCst) {
            return Err(Error::registry("download cancelled"));
        }
        if attempt >= ATTEMPTS {
            return Err(last_err.unwrap_or_else(|| Error::registry("download failed")));
        }
        if attempt > 0 {
            let delay = Duration::from_millis(200u64 << (attempt - 1).min(4));
            if delay >= Duration::from_secs(1) {
                let s = delay.as_secs();
                out.status(
                    Some(&id),
                    &format!("Retrying in {s} second{}", if s == 1 { "" } else { "s" }),
                );
            }
            std::thread::sleep(delay);
        }
        attempt += 1;
        let mut headers = Vec::new();
        if have > 0 {
            headers.push(("Range", format!("bytes={have}-")));
        }
        let mut resp = match repo.request("GET", &url, &headers, ReqBody::None, &[]) {
            Ok(r) => r,
            Err(e @ Error::Transport(_)) => {
                last_err = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let status = resp.status().as_u16();
        match status {
            200 => {
                if have > 0 {
                    // No range support: start over.
                    restart(&mut f, &mut hasher, &mut have)?;
                }
            }
            206 if have > 0 => {
                let start = header(&resp, "content-range")
                    .and_then(|c| c.strip_prefix("bytes ").map(str::to_string))
                    .and_then(|c| c.split('-').next().and_then(|s| s.parse::<u64>().ok()));
                if start != Some(have) {
                    restart(&mut f, &mut hasher, &mut have)?;
                    last_err = Some(Error::registry(
                        "the registry answered a different byte range",
                    ));
                    continue;
                }
                resumed = true;
            }
            416 if have > 0 => {
                restart(&mut f, &mut hasher, &mut have)?;
                continue;
            }
            _ => {
                let e = response_error(resp);
                // Server errors may pass; client errors will not.
                if status >= 500 || status == 429 {
                    last_err = Some(e);
                    continue;
                }
                return Err(e);
            }
        }
        if have == 0 {
            out.progress(&id, "Downloading", 0, total);
        }
        let body = resp.body_mut().as_reader();
        let mut pr = ProgressReader::new(body, out, &id, "Downloading", have, total);
        let mut buf = vec![0u8; 256 * 1024];
        let mut broken = None;
        loop {
            if cancel.load(Ordering::SeqCst) {
                return Err(Error::registry("download cancelled"));
            }
            let n = match pr.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            };
            if total > 0 && have + n as u64 > total {
                return Err(Error::registry(format!(
                    "filesystem layer verification failed for digest {}: the registry sent more than the {total} bytes the manifest declares",
                    desc.digest
                )));
            }
            f.write_all(&buf[..n])
                .map_err(|e| Error::registry(format!("writing download file: {e}")))?;
            hasher.update(&buf[..n]);
            have += n as u64;
        }
        if let Some(e) = broken {
            tracing::info!("download of {} broke at {have} bytes: {e}", desc.digest);
            last_err = Some(Error::registry(format!(
                "failed to download layer {}: {}",
                desc.digest,
                url_error("GET", &url, e)
            )));
            continue;
        }
        if total > 0 && have < total {
            last_err = Some(Error::registry(format!(
                "failed to download layer {}: unexpected EOF after {have} of {total} bytes",
                desc.digest
            )));
            continue;
        }
        out.update(&id, "Verifying Checksum");
        let (actual, _) = std::mem::take(&mut hasher).finish();
        if actual != desc.digest {
            if resumed {
                // The resumed parts may not belong together: one more try from scratch.
                resumed = false;
                restart(&mut f, &mut hasher, &mut have)?;
                last_err = Some(layer_mismatch(&desc.digest));
                continue;
            }
            return Err(layer_mismatch(&desc.digest));
        }
        f.sync_all()
            .map_err(|e| Error::registry(format!("syncing download file: {e}")))?;
        out.update(&id, "Download complete");
        return Ok(());
    }
}

fn layer_mismatch(d: &Digest) -> Error {
    Error::registry(format!(
        "filesystem layer verification failed for digest {d}"
    ))
}

fn restart(f: &mut File, hasher: &mut Digester, have: &mut u64) -> Result<()> {
    f.seek(SeekFrom::Start(0))
        .and_then(|_| f.set_len(0))
        .map_err(|e| Error::registry(format!("truncating download file: {e}")))?;
    *hasher = Digester::new();
    *have = 0;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_sniffing() {
        assert_eq!(
            sniff_media_type(Some("application/vnd.oci.image.index.v1+json"), b"{}"),
            media::OCI_INDEX
        );
        assert_eq!(
            sniff_media_type(
                Some("application/json"),
                br#"{"schemaVersion":2,"manifests":[]}"#
            ),
            media::OCI_INDEX
        );
        assert_eq!(
            sniff_media_type(None, br#"{"schemaVersion":2,"config":{}}"#),
            media::OCI_MANIFEST
        );
        assert_eq!(
            sniff_media_type(None, br#"{"schemaVersion":1,"fsLayers":[]}"#),
            SCHEMA1
        );
    }
}
