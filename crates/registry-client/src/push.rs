//! `docker push`: for every layer (top first, in parallel), an existence check (HEAD), a
//! cross-repository mount when the blob is known in another repository of the same registry, or
//! an upload (monolithic for small blobs, a streamed PATCH then PUT for large ones); then the
//! config and the manifest (Docker schema 2 unless a layer is zstd, then OCI). Layers stored
//! uncompressed are gzipped on the way; the compressed blob is kept (or, for incompressible
//! content, the digest it was pushed as is remembered), so the next push of the layer is a
//! single HEAD.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use berth_image::config::{Descriptor, chain_ids, media};
use berth_image::digest::{DigestReader, DigestWriter};
use berth_image::store::{BlobRef, LayerRecord, REFS, RefRecord};
use berth_image::{Digest, ImageStore, Reference};
use serde::Serialize;

use crate::auth::AuthConfig;
use crate::client::{Repo, ReqBody, endpoints, header, response_error};
use crate::config::RegistryConfig;
use crate::progress::{Progress, ProgressReader};
use crate::stored_gzip::{self, StoredGzip};
use crate::{Error, Result, sources};

/// Blobs up to this size go up in one PUT.
const MONOLITHIC_MAX: u64 = 1 << 20;

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub auth: AuthConfig,
}

/// One tag pushed.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub tag: String,
    pub digest: Digest,
    pub size: usize,
}

/// Refuses what docker refuses before it starts: a digest reference, and an official
/// ("root") name on Docker Hub.
pub fn check_pushable(r: &Reference) -> Result<()> {
    if r.digest().is_some() {
        return Err(Error::Invalid("cannot push a digest reference".into()));
    }
    if r.domain() == "docker.io"
        && let Some(rest) = r.path().strip_prefix("library/")
        && !rest.contains('/')
    {
        return Err(Error::Invalid(format!(
            "You cannot push a \"root\" repository. Please rename your repository to docker.io/<user>/<repo> (ex: docker.io/<user>/{rest})"
        )));
    }
    Ok(())
}

/// Pushes `reference` (a tag, or a bare name: every tag of the repository).
pub fn push(
    store: &ImageStore,
    cfg: &RegistryConfig,
    reference: &Reference,
    opts: &PushOptions,
    out: &dyn Progress,
) -> Result<Vec<Pushed>> {
    check_pushable(reference)?;
    let name = reference.without_tag_or_digest();
    out.status(None, &format!("The push refers to repository [{name}]"));
    let mut tags: Vec<(String, Digest)> = Vec::new();
    for (key, image) in store.refs()? {
        if let Ok(r) = Reference::parse_normalized(&key)
            && r.name() == name.name()
            && let Some(t) = r.tag()
        {
            tags.push((t.to_string(), image));
        }
    }
    if tags.is_empty() {
        return Err(Error::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            name.familiar_name()
        )));
    }
    if let Some(t) = reference.tag() {
        tags.retain(|(tag, _)| tag == t);
        if tags.is_empty() {
            return Err(Error::NotFound(format!(
                "tag does not exist: {}",
                reference.familiar_string()
            )));
        }
    }
    let eps = endpoints(cfg, reference.domain(), false);
    let repo = Repo::connect(&eps, reference.domain(), reference.path(), &opts.auth, true)?;
    let state = PushState::default();
    let mut pushed = Vec::new();
    for (tag, image) in tags {
        pushed.push(push_tag(
            store, cfg, &repo, &name, &tag, &image, &state, out,
        )?);
    }
    Ok(pushed)
}

/// What this push learnt: blobs known to exist remotely (by diff ID).
#[derive(Default)]
struct PushState {
    remote: Mutex<HashMap<Digest, Descriptor>>,
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// A pushed layer's descriptor, and the compressed blob made for it, if any.
type LayerPushed = (Descriptor, Option<Compressed>);

/// A layer blob compressed during the push, to keep in the store.
struct Compressed {
    chain_id: Digest,
    old: Digest,
    path: PathBuf,
    blob: BlobRef,
}

#[allow(clippy::too_many_arguments)]
fn push_tag(
    store: &ImageStore,
    cfg: &RegistryConfig,
    repo: &Repo,
    name: &Reference,
    tag: &str,
    image: &Digest,
    state: &PushState,
    out: &dyn Progress,
) -> Result<Pushed> {
    let img = store.image(image)?.ok_or_else(|| {
        Error::NotFound(format!(
            "could not find image from tag {}:{tag}",
            name.familiar_name()
        ))
    })?;
    let config_bytes = store.content.read(image)?;
    let chains = chain_ids(&img.diff_ids);
    let mut layers: Vec<LayerRecord> = Vec::new();
    for c in &chains {
        layers.push(store.layer(c)?.ok_or_else(|| {
            Error::registry(format!(
                "failed to get top layer from image: layer {c} is missing"
            ))
        })?);
    }
    let oci = layers
        .iter()
        .any(|l| l.blob.media_type == media::OCI_LAYER_ZSTD);
    // Top layer first, as docker lists them.
    let order: Vec<usize> = (0..layers.len()).rev().collect();
    for &i in &order {
        out.update(&short(&layers[i].diff_id), "Preparing");
    }
    let workers = cfg.max_concurrent_uploads.min(order.len()).max(1);
    for &i in order.iter().skip(workers) {
        out.update(&short(&layers[i].diff_id), "Waiting");
    }
    let tmp = store.content.temp_dir("push")?;
    let mut lease = store.lease();
    let next = AtomicUsize::new(0);
    let cancel = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<LayerPushed>>>> =
        Mutex::new((0..layers.len()).map(|_| None).collect());
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= order.len() || cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    let i = order[k];
                    let r = push_layer(
                        store,
                        repo,
                        &layers[i],
                        oci,
                        tmp.path(),
                        state,
                        out,
                        &cancel,
                    );
                    if r.is_err() {
                        cancel.store(true, Ordering::SeqCst);
                    }
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    let mut descs = Vec::new();
    let mut compressed = Vec::new();
    let mut first_err = None;
    for r in results.into_inner().unwrap().into_iter().flatten() {
        match r {
            Ok((d, c)) => {
                descs.push(d);
                compressed.extend(c);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    // Keep what was compressed even if another layer failed: it is valid and on the registry.
    let mut replaced = false;
    for c in &compressed {
        lease.add(&c.blob.digest);
        store.content.commit_file(&c.path, &c.blob.digest)?;
        store.content.sync_dir();
        replaced |=
            berth_image::push::replace_layer_blob(store, &c.chain_id, &c.old, c.blob.clone())?;
    }
    if let Some(e) = first_err {
        drop(lease);
        return Err(e);
    }
    if descs.len() != layers.len() {
        return Err(Error::registry("not every layer was pushed"));
    }

    // The config, then the manifest.
    let config_media = if oci {
        media::OCI_CONFIG
    } else {
        media::DOCKER_CONFIG
    };
    let config_desc = Descriptor {
        media_type: config_media.into(),
        digest: image.clone(),
        size: config_bytes.len() as i64,
        urls: None,
        annotations: None,
        platform: None,
    };
    if !blob_exists(repo, image)? {
        upload(
            repo,
            &mut &config_bytes[..],
            Some(config_bytes.len() as u64),
            image,
            None,
            None,
        )?;
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct ManifestOut<'a> {
        schema_version: u32,
        media_type: &'a str,
        config: &'a Descriptor,
        layers: &'a [Descriptor],
    }
    let manifest_type = if oci {
        media::OCI_MANIFEST
    } else {
        media::DOCKER_MANIFEST
    };
    let m = ManifestOut {
        schema_version: 2,
        media_type: manifest_type,
        config: &config_desc,
        layers: &descs,
    };
    let mut bytes = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut bytes, fmt);
    m.serialize(&mut ser)
        .map_err(|e| Error::registry(e.to_string()))?;
    let digest = Digest::sha256_of(&bytes);
    let url = repo.url(&format!("manifests/{tag}"));
    let resp = repo.request(
        "PUT",
        &url,
        &[("Content-Type", manifest_type.to_string())],
        ReqBody::Bytes(&bytes),
        &[],
    )?;
    if !resp.status().is_success() {
        return Err(response_error(resp));
    }
    out.status(
        None,
        &format!("{tag}: digest: {digest} size: {}", bytes.len()),
    );
    let digest_ref = name.clone().with_digest(digest.clone());
    berth_image::push::add_repo_digest(store, &digest_ref, image)?;
    sources::record(
        store,
        &format!("{}/{}", repo.domain, repo.path),
        &descs.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(),
    );
    out.aux(serde_json::json!({"Tag": tag, "Digest": digest.to_string(), "Size": bytes.len()}));
    drop(lease);
    if replaced {
        // The uncompressed copies are garbage now.
        let _ = store.collect_garbage();
    }
    Ok(Pushed {
        tag: tag.to_string(),
        digest,
        size: bytes.len(),
    })
}

fn blob_exists(repo: &Repo, d: &Digest) -> Result<bool> {
    let url = repo.url(&format!("blobs/{d}"));
    let resp = repo.request("HEAD", &url, &[], ReqBody::None, &[])?;
    match resp.status().as_u16() {
        200..=299 => Ok(true),
        404 => Ok(false),
        _ => Err(response_error(resp)),
    }
}

fn layer_media_type(stored: &str, oci: bool) -> &'static str {
    let compressed = stored == media::OCI_LAYER_GZIP || stored == media::DOCKER_LAYER_GZIP;
    let zstd = stored == media::OCI_LAYER_ZSTD;
    match (oci, compressed, zstd) {
        (_, _, true) => media::OCI_LAYER_ZSTD,
        (true, true, _) => media::OCI_LAYER_GZIP,
        (true, false, _) => media::OCI_LAYER,
        (false, true, _) => media::DOCKER_LAYER_GZIP,
        (false, false, _) => media::DOCKER_LAYER,
    }
}

#[allow(clippy::too_many_arguments)]
fn push_layer(
    store: &ImageStore,
    repo: &Repo,
    l: &LayerRecord,
    oci: bool,
    tmp: &std::path::Path,
    state: &PushState,
    out: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<LayerPushed> {
    let id = short(&l.diff_id);
    if let Some(d) = state.remote.lock().unwrap().get(&l.diff_id).cloned() {
        out.update(&id, "Layer already exists");
        return Ok((d, None));
    }
    let uncompressed =
        l.blob.media_type == media::OCI_LAYER || l.blob.media_type == media::DOCKER_LAYER;
    let desc = |digest: Digest, size: u64, stored_type: &str| Descriptor {
        media_type: layer_media_type(stored_type, oci).into(),
        digest,
        size: size as i64,
        urls: None,
        annotations: None,
        platform: None,
    };
    let remember = |d: &Descriptor| {
        state
            .remote
            .lock()
            .unwrap()
            .insert(l.diff_id.clone(), d.clone());
    };
    let gzip = |session: Option<String>| -> Result<LayerPushed> {
        let (blob, kept) = push_gzipped(store, repo, l, tmp, out, &id, cancel, session)?;
        let d = desc(blob.digest, blob.size, media::OCI_LAYER_GZIP);
        remember(&d);
        out.update(&id, "Pushed");
        Ok((d, kept))
    };
    let mut known = sources::lookup(store, &l.blob.digest);
    // What to look for remotely: the blob as stored, or the gzip blob an uncompressed layer was
    // pushed as before (when that copy was not kept).
    let mut target = l.blob.clone();
    let mut remade = false;
    if uncompressed && known.is_empty() {
        match sources::pushed_as(store, &l.blob.digest) {
            Some(b) => {
                known = sources::lookup(store, &b.digest);
                target = b;
                remade = true;
            }
            // Never pushed or pulled as is: gzip it on the way.
            None => return gzip(None),
        }
    }
    let d = desc(target.digest.clone(), target.size, &target.media_type);
    if blob_exists(repo, &target.digest)? {
        out.update(&id, "Layer already exists");
        remember(&d);
        return Ok((d, None));
    }
    // A cross-repository mount from a repository of the same registry that has the blob.
    let prefix = format!("{}/", repo.domain);
    let mut session = None;
    for src in known.iter().filter_map(|k| k.strip_prefix(&prefix)) {
        if src == repo.path {
            continue;
        }
        let mut u = url::Url::parse(&repo.url("blobs/uploads/"))
            .map_err(|e| Error::registry(e.to_string()))?;
        u.query_pairs_mut()
            .append_pair("mount", &target.digest.to_string())
            .append_pair("from", src);
        let resp = repo.request(
            "POST",
            u.as_str(),
            &[("Content-Length", "0".into())],
            ReqBody::None,
            &[format!("repository:{src}:pull")],
        )?;
        match resp.status().as_u16() {
            201 => {
                out.update(&id, &format!("Mounted from {src}"));
                remember(&d);
                return Ok((d, None));
            }
            202 => {
                session = header(&resp, "location");
                break;
            }
            _ => {}
        }
    }
    if remade {
        // Not on this registry: gzip the layer again (stored blocks: the same bytes).
        return gzip(session);
    }
    let f = store.content.open_blob(&l.blob.digest)?;
    let mut pr = ProgressReader::new(
        BufReader::with_capacity(1 << 20, f),
        out,
        &id,
        "Pushing",
        0,
        l.blob.size,
    );
    upload(
        repo,
        &mut pr,
        Some(l.blob.size),
        &l.blob.digest,
        session,
        Some(cancel),
    )?;
    remember(&d);
    out.update(&id, "Pushed");
    Ok((d, None))
}

/// Starts an upload session: the `Location` to send the blob to.
fn start_upload(repo: &Repo) -> Result<String> {
    let url = repo.url("blobs/uploads/");
    let resp = repo.request(
        "POST",
        &url,
        &[("Content-Length", "0".into())],
        ReqBody::None,
        &[],
    )?;
    if resp.status().as_u16() != 202 && !resp.status().is_success() {
        return Err(response_error(resp));
    }
    header(&resp, "location")
        .ok_or_else(|| Error::registry("the registry started an upload without a Location"))
}

fn absolute(repo: &Repo, loc: &str) -> Result<url::Url> {
    url::Url::parse(&repo.ep.base)
        .and_then(|b| b.join(loc))
        .map_err(|e| Error::registry(format!("invalid upload location {loc:?}: {e}")))
}

/// A reader that stops with an error once `cancel` is set (another layer failed).
struct Cancellable<'a, R> {
    inner: R,
    cancel: Option<&'a AtomicBool>,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
            return Err(io::Error::other("push cancelled"));
        }
        self.inner.read(buf)
    }
}

/// Uploads a blob whose digest is known (monolithic when small, else PATCH + PUT).
fn upload(
    repo: &Repo,
    r: &mut dyn Read,
    len: Option<u64>,
    digest: &Digest,
    session: Option<String>,
    cancel: Option<&AtomicBool>,
) -> Result<()> {
    let loc = match session {
        Some(s) => s,
        None => start_upload(repo)?,
    };
    let mut r = Cancellable { inner: r, cancel };
    if len.is_some_and(|n| n <= MONOLITHIC_MAX) {
        let mut u = absolute(repo, &loc)?;
        u.query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let resp = repo.request(
            "PUT",
            u.as_str(),
            &[("Content-Type", "application/octet-stream".into())],
            ReqBody::Reader(&mut r, len),
            &[],
        )?;
        if !resp.status().is_success() {
            return Err(response_error(resp));
        }
        return Ok(());
    }
    let loc = patch(repo, &loc, &mut r, len)?;
    finish_upload(repo, &loc, digest)
}

/// Streams the whole blob in one PATCH; returns the next Location.
fn patch(repo: &Repo, loc: &str, r: &mut dyn Read, len: Option<u64>) -> Result<String> {
    let u = absolute(repo, loc)?;
    let mut headers = vec![("Content-Type", "application/octet-stream".to_string())];
    if let Some(n) = len
        && n > 0
    {
        headers.push(("Content-Range", format!("0-{}", n - 1)));
    }
    let resp = repo.request("PATCH", u.as_str(), &headers, ReqBody::Reader(r, len), &[])?;
    if !resp.status().is_success() {
        return Err(response_error(resp));
    }
    Ok(header(&resp, "location").unwrap_or_else(|| loc.to_string()))
}

fn finish_upload(repo: &Repo, loc: &str, digest: &Digest) -> Result<()> {
    let mut u = absolute(repo, loc)?;
    u.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    let resp = repo.request(
        "PUT",
        u.as_str(),
        &[("Content-Length", "0".into())],
        ReqBody::None,
        &[],
    )?;
    if !resp.status().is_success() {
        return Err(response_error(resp));
    }
    Ok(())
}

/// Hashes everything read through it, and copies it to `copy`.
struct Tee<R, W: Write> {
    inner: R,
    copy: DigestWriter<W>,
    failed: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.failed = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

/// Streams `src` gzipped in one PATCH to the upload at `loc`, copying the gzip bytes to `copy`:
/// returns the copy, the gzip blob's digest and size, and the Location to finish at.
fn stream_gzip<W: Write>(
    repo: &Repo,
    loc: &str,
    src: impl Read,
    level: flate2::Compression,
    copy: W,
    cancel: &AtomicBool,
) -> Result<(W, Digest, u64, String)> {
    let gz = flate2::read::GzEncoder::new(src, level);
    let mut tee = Tee {
        inner: BufReader::with_capacity(1 << 20, gz),
        copy: DigestWriter::new(copy),
        failed: None,
    };
    let mut c = Cancellable {
        inner: &mut tee,
        cancel: Some(cancel),
    };
    let next = patch(repo, loc, &mut c, None)?;
    if let Some(e) = tee.failed.take() {
        return Err(Error::registry(format!(
            "keeping the compressed layer: {e}"
        )));
    }
    let (w, digest, size) = tee.copy.finish();
    Ok((w, digest, size, next))
}

/// Pushes an uncompressed layer gzipped. Compressed content is kept (it replaces the layer's
/// blob in the store, so the next push needs no compression); stored-block gzip of
/// incompressible content is not (remaking it costs a copy, keeping it would write the whole
/// layer again): push remembers which blob it became instead.
#[allow(clippy::too_many_arguments)]
fn push_gzipped(
    store: &ImageStore,
    repo: &Repo,
    l: &LayerRecord,
    tmp: &std::path::Path,
    out: &dyn Progress,
    id: &str,
    cancel: &AtomicBool,
    session: Option<String>,
) -> Result<(BlobRef, Option<Compressed>)> {
    let loc = match session {
        Some(s) => s,
        None => start_upload(repo)?,
    };
    let level = compression_level(store, &l.blob.digest)?;
    let src = store.content.open_blob(&l.blob.digest)?;
    let blob = |digest, size| BlobRef {
        digest,
        media_type: media::OCI_LAYER_GZIP.into(),
        size,
    };
    if level == flate2::Compression::none() {
        let len = stored_gzip::size(l.blob.size);
        let progress = ProgressReader::new(src, out, id, "Pushing", 0, l.blob.size);
        let mut body = DigestReader::new(Cancellable {
            inner: StoredGzip::new(progress, l.blob.size),
            cancel: Some(cancel),
        });
        let next = patch(repo, &loc, &mut body, Some(len))?;
        let (_, digest, size) = body.finish();
        if size != len {
            return Err(Error::registry(format!(
                "layer {} changed while it was pushed",
                l.blob.digest
            )));
        }
        finish_upload(repo, &next, &digest)?;
        let b = blob(digest, size);
        sources::record_pushed_as(store, &l.blob.digest, &b);
        return Ok((b, None));
    }
    let progress = ProgressReader::new(
        BufReader::with_capacity(1 << 20, src),
        out,
        id,
        "Pushing",
        0,
        l.blob.size,
    );
    let path = tmp.join(format!("gz-{}", l.chain_id.hex()));
    let file = File::create(&path)
        .map_err(|e| Error::registry(format!("creating {}: {e}", path.display())))?;
    let (w, digest, size, next) = stream_gzip(
        repo,
        &loc,
        progress,
        level,
        io::BufWriter::with_capacity(1 << 20, file),
        cancel,
    )?;
    let f = w
        .into_inner()
        .map_err(|e| Error::registry(format!("keeping the compressed layer: {}", e.error())))?;
    f.sync_all()
        .map_err(|e| Error::registry(format!("keeping the compressed layer: {e}")))?;
    finish_upload(repo, &next, &digest)?;
    let b = blob(digest, size);
    Ok((
        b.clone(),
        Some(Compressed {
            chain_id: l.chain_id.clone(),
            old: l.blob.digest.clone(),
            path,
            blob: b,
        }),
    ))
}

/// gzip's fastest level, or no compression at all (stored blocks) when a sample of the layer
/// does not shrink: already-compressed or random content only costs CPU to deflate, and
/// stored blocks inflate at memory speed on pull. Decided from the content alone, so the same
/// layer always gives the same blob.
fn compression_level(store: &ImageStore, blob: &Digest) -> Result<flate2::Compression> {
    use std::io::{Seek, SeekFrom};
    const PART: u64 = 256 << 10;
    let mut f = store.content.open_blob(blob)?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    if size < 4 * PART {
        return Ok(flate2::Compression::fast());
    }
    // Three parts: the start, the middle and the end of the layer.
    let mut sample = Vec::with_capacity(3 * PART as usize);
    for at in [0, size / 2, size - PART] {
        f.seek(SeekFrom::Start(at))
            .and_then(|_| (&mut f).take(PART).read_to_end(&mut sample))
            .map_err(|e| Error::registry(format!("reading layer {blob}: {e}")))?;
    }
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(sample.len()),
        flate2::Compression::fast(),
    );
    enc.write_all(&sample)
        .map_err(|e| Error::registry(e.to_string()))?;
    let packed = enc.finish().map_err(|e| Error::registry(e.to_string()))?;
    if packed.len() as f64 >= sample.len() as f64 * 0.95 {
        Ok(flate2::Compression::none())
    } else {
        Ok(flate2::Compression::fast())
    }
}

/// The local image a reference names, if any (for callers that check before pushing).
pub fn local_image(store: &ImageStore, r: &Reference) -> Option<Digest> {
    store
        .db
        .read(|t| t.get::<RefRecord>(REFS, &r.to_string()))
        .ok()
        .flatten()
        .map(|r| r.image)
}
