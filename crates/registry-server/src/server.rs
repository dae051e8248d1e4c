//! The HTTP side: listener, routing, authorization, and the distribution API handlers.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::auth::{self, AccessEntry, Claims, Htpasswd};
use crate::body::Body;
use crate::error::{Code, RegistryError, Result};
use crate::manifest::{self, Kind, MAX_MANIFEST_SIZE};
use crate::names::{self, Algorithm, ByteRange, Digest, DigestError, Hasher};
use crate::storage::Storage;

/// How the registry is run; the CLI's `serve` flags.
#[derive(Clone, Debug)]
pub struct Config {
    pub root: PathBuf,
    /// Users for basic auth, and for the token endpoint.
    pub htpasswd: Option<PathBuf>,
    /// Token auth: clients are sent to `realm` for a bearer token.
    pub token: Option<TokenConfig>,
    /// Pulls without credentials are allowed (pushes and deletes still need them).
    pub anonymous_pull: bool,
    /// Manifest and blob deletes are allowed (otherwise 405 UNSUPPORTED).
    pub delete_enabled: bool,
    /// Upload sessions open at once before new ones get 429 TOOMANYREQUESTS.
    pub max_uploads: usize,
    /// Bytes of manifests kept in memory.
    pub manifest_cache_bytes: usize,
    /// Upload sessions idle this long are dropped with their data.
    pub upload_ttl: Duration,
}

impl Config {
    pub fn new(root: impl Into<PathBuf>) -> Config {
        Config {
            root: root.into(),
            htpasswd: None,
            token: None,
            anonymous_pull: false,
            delete_enabled: true,
            max_uploads: 1024,
            manifest_cache_bytes: 64 << 20,
            upload_ttl: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// Where clients get tokens: an absolute URL, or a path (`/token`) that is served here and
    /// announced as `http://<Host header><path>`.
    pub realm: String,
    pub service: String,
    pub issuer: String,
    pub secret: Vec<u8>,
    /// Seconds a token stays valid.
    pub expiration: u64,
}

// ---------------------------------------------------------------------------------------------

struct CachedManifest {
    digest: HeaderValue,
    etag: HeaderValue,
    media_type: HeaderValue,
    body: Bytes,
}

/// Manifests by request path (`/v2/<name>/manifests/<ref>`), bounded in bytes. Mutations drop a
/// repository's entries and bump the generation, so a read that raced with a write never
/// re-inserts what the write replaced.
struct ManifestCache {
    map: RwLock<HashMap<Box<str>, Arc<CachedManifest>>>,
    bytes: AtomicUsize,
    generation: AtomicU64,
    limit: usize,
}

impl ManifestCache {
    fn get(&self, key: &str) -> Option<Arc<CachedManifest>> {
        self.map.read().unwrap().get(key).cloned()
    }

    fn insert(&self, key: &str, generation: u64, m: Arc<CachedManifest>) {
        let size = m.body.len() + key.len();
        if size > self.limit / 4 {
            return;
        }
        let mut map = self.map.write().unwrap();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if self.bytes.load(Ordering::Relaxed) + size > self.limit {
            map.clear();
            self.bytes.store(0, Ordering::Relaxed);
        }
        if map.insert(key.into(), m).is_none() {
            self.bytes.fetch_add(size, Ordering::Relaxed);
        }
    }

    fn invalidate_repo(&self, name: &str) {
        let prefix = format!("/v2/{name}/manifests/");
        let mut map = self.map.write().unwrap();
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut freed = 0;
        map.retain(|k, v| {
            let keep = !k.starts_with(&prefix);
            if !keep {
                freed += k.len() + v.body.len();
            }
            keep
        });
        self.bytes.fetch_sub(freed, Ordering::Relaxed);
    }
}

struct Session {
    name: String,
    size: u64,
    /// The running hash of `data`; None after a restart (then the file is hashed at close).
    hasher: Option<Hasher>,
    touched: Instant,
    /// Closed or cancelled while a request waited for the lock.
    done: bool,
}

/// The registry: storage, users, caches, sessions.
pub struct Registry {
    cfg: Config,
    storage: Storage,
    htpasswd: Option<Arc<Htpasswd>>,
    cache: ManifestCache,
    uploads: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
    repos: RwLock<BTreeSet<String>>,
    token_path: Option<String>,
    _lock: std::fs::File,
}

/// The lock every process using a root holds (`serve` shared by nobody else, `gc` likewise).
pub fn lock_root(root: &std::path::Path) -> io::Result<std::fs::File> {
    std::fs::create_dir_all(root)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(root.join(".lock"))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!(
                "{} is in use by another berth-registry process",
                root.display()
            ),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

impl Registry {
    pub fn open(cfg: Config) -> io::Result<Registry> {
        let lock = lock_root(&cfg.root)?;
        let storage = Storage::open(&cfg.root)?;
        let htpasswd = match &cfg.htpasswd {
            Some(p) => Some(Arc::new(Htpasswd::load(p)?)),
            None => None,
        };
        let token_path = cfg.token.as_ref().map(|t| {
            if t.realm.starts_with('/') {
                t.realm.clone()
            } else {
                url::Url::parse(&t.realm)
                    .map(|u| u.path().to_string())
                    .unwrap_or_else(|_| "/token".into())
            }
        });
        let repos = storage.list_repositories()?.into_iter().collect();
        let reg = Registry {
            cache: ManifestCache {
                map: RwLock::new(HashMap::new()),
                bytes: AtomicUsize::new(0),
                generation: AtomicU64::new(0),
                limit: cfg.manifest_cache_bytes,
            },
            cfg,
            storage,
            htpasswd,
            uploads: Mutex::new(HashMap::new()),
            repos: RwLock::new(repos),
            token_path,
            _lock: lock,
        };
        reg.sweep_uploads();
        Ok(reg)
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    fn note_repo(&self, name: &str) {
        if !self.repos.read().unwrap().contains(name) {
            self.repos.write().unwrap().insert(name.to_string());
        }
    }

    /// Drops sessions idle past the TTL, and upload directories nobody touched for as long.
    fn sweep_uploads(&self) {
        let ttl = self.cfg.upload_ttl;
        let mut stale = Vec::new();
        {
            let mut map = self.uploads.lock().unwrap();
            map.retain(|id, s| match s.try_lock() {
                Ok(s) if s.touched.elapsed() > ttl => {
                    stale.push(id.clone());
                    false
                }
                _ => true,
            });
        }
        for id in stale {
            let _ = std::fs::remove_dir_all(self.storage.upload_dir(&id));
        }
        let live: Vec<String> = self.uploads.lock().unwrap().keys().cloned().collect();
        if let Ok(rd) = std::fs::read_dir(self.storage.root().join("uploads")) {
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name().to_string_lossy().into_owned();
                if live.contains(&name) {
                    continue;
                }
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > ttl);
                if old {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Serving

/// A bound registry, ready to run.
pub struct Server {
    registry: Arc<Registry>,
    listener: tokio::net::TcpListener,
}

impl Server {
    /// Opens the registry and binds `addr`. Must be called inside a tokio runtime.
    pub async fn bind(cfg: Config, addr: SocketAddr) -> io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Ok(Server {
            registry: Arc::new(Registry::open(cfg)?),
            listener,
        })
    }

    /// Uses an already bound listener. Must be called inside a tokio runtime.
    pub fn from_std(cfg: Config, listener: std::net::TcpListener) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        Ok(Server {
            registry: Arc::new(Registry::open(cfg)?),
            listener: tokio::net::TcpListener::from_std(listener)?,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish (up to
    /// `SHUTDOWN_GRACE`) while idle keep-alive connections close.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let reg = self.registry.clone();
        let sweeper = tokio::spawn({
            let reg = reg.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(600));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let r = reg.clone();
                    let _ = tokio::task::spawn_blocking(move || r.sweep_uploads()).await;
                }
            }
        });
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let reg = reg.clone();
            let svc = service_fn(move |req| {
                let reg = reg.clone();
                async move { Ok::<_, Infallible>(handle(reg, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(60))
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
            });
        }
        drop(self.listener);
        sweeper.abort();
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway");
        }
    }
}

/// How long a stopping server waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A registry serving on its own runtime thread; dropping it stops the server and releases the
/// root. For tests and embedding.
pub struct Background {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn start(cfg: Config, listener: std::net::TcpListener) -> io::Result<Background> {
        let addr = listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let server = {
            let _g = rt.enter();
            Server::from_std(cfg, listener)?
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            rt.block_on(server.run(async move {
                let _ = rx.await;
            }));
            rt.shutdown_timeout(Duration::from_secs(5));
        });
        Ok(Background {
            addr,
            stop: Some(tx),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

type Resp = Response<Body>;

static API_VERSION: HeaderValue = HeaderValue::from_static("registry/2.0");
static JSON: HeaderValue = HeaderValue::from_static("application/json");
static OCTET: HeaderValue = HeaderValue::from_static("application/octet-stream");
static DIST_API: HeaderName = HeaderName::from_static("docker-distribution-api-version");
static CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
static UPLOAD_UUID: HeaderName = HeaderName::from_static("docker-upload-uuid");
static RANGE_H: HeaderName = HeaderName::from_static("range");

struct Ctx {
    reg: Arc<Registry>,
    method: Method,
    parts: http::request::Parts,
    body: Option<Incoming>,
}

impl Ctx {
    fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn query(&self) -> Vec<(String, String)> {
        self.parts
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn query_one(&self, key: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    fn take_body(&mut self) -> Incoming {
        self.body.take().expect("request body taken once")
    }
}

async fn handle(reg: Arc<Registry>, req: http::Request<Incoming>) -> Resp {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    // Cloning the URI shares its bytes; the path is borrowed unless it needs decoding.
    let uri = parts.uri.clone();
    let path: std::borrow::Cow<str> = if uri.path().contains('%') {
        percent_decode(uri.path()).into()
    } else {
        uri.path().into()
    };
    let mut ctx = Ctx {
        reg,
        method: parts.method.clone(),
        parts,
        body: Some(body),
    };
    let mut resp = match dispatch(&mut ctx, &path).await {
        Ok(r) => r,
        Err(e) => {
            // Read what the client is still sending (bounded) so the answer reaches it and the
            // connection can be reused.
            if let Some(b) = ctx.body.take() {
                drain(b).await;
            }
            error_response(e, ctx.method == Method::HEAD)
        }
    };
    resp.headers_mut()
        .insert(DIST_API.clone(), API_VERSION.clone());
    if tracing::enabled!(tracing::Level::DEBUG) {
        tracing::debug!(method = %ctx.method, path = %path, status = resp.status().as_u16(),
            micros = started.elapsed().as_micros() as u64, "request");
    }
    resp
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|v| v as u8)
}

async fn drain(mut body: Incoming) {
    let limit = 16 << 20;
    let mut seen = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(f)) = body.frame().await {
            if let Some(d) = f.data_ref() {
                seen += d.len();
                if seen > limit {
                    break;
                }
            }
        }
    })
    .await;
}

fn error_response(e: RegistryError, head: bool) -> Resp {
    let body = e.body();
    let mut b = Response::builder()
        .status(e.status)
        .header(header::CONTENT_TYPE, JSON.clone());
    for (k, v) in e.headers {
        b = b.header(k, v);
    }
    if head {
        b = b.header(header::CONTENT_LENGTH, body.len());
        b.body(Body::Empty).expect("response")
    } else {
        b.body(Body::full(body)).expect("response")
    }
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, JSON.clone())
        .body(Body::full(serde_json::to_vec(v).expect("json")))
        .expect("response")
}

fn empty(status: StatusCode) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, "0")
}

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Route::Base
        } else {
            Route::NotFound
        };
    };
    if rest.is_empty() {
        return Route::Base;
    }
    if rest == "_catalog" {
        return Route::Catalog;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name);
    }
    let Some((head, last)) = rest.rsplit_once('/') else {
        return Route::NotFound;
    };
    let Some((name, kw)) = head.rsplit_once('/') else {
        return Route::NotFound;
    };
    match kw {
        "manifests" => Route::Manifest(name, last),
        "referrers" => Route::Referrers(name, last),
        "blobs" if last == "uploads" => Route::UploadStart(name),
        "blobs" => Route::Blob(name, last),
        "uploads" => match name.strip_suffix("/blobs") {
            Some(n) if last.is_empty() => Route::UploadStart(n),
            Some(n) => Route::Upload(n, last),
            None => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

fn check_name(name: &str) -> Result<()> {
    if names::valid_name(name) {
        Ok(())
    } else {
        Err(RegistryError::new(Code::NameInvalid).detail(serde_json::json!({ "name": name })))
    }
}

fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| match e {
        DigestError::Malformed => {
            RegistryError::msg(Code::DigestInvalid, format!("invalid digest {s:?}"))
        }
        DigestError::Unsupported => RegistryError::msg(
            Code::DigestInvalid,
            format!("unsupported digest algorithm in {s:?}"),
        ),
    })
}

fn method_not_allowed() -> RegistryError {
    RegistryError::msg(Code::Unsupported, "method not allowed")
        .status(StatusCode::METHOD_NOT_ALLOWED)
}

async fn dispatch(ctx: &mut Ctx, path: &str) -> Result<Resp> {
    use Method as M;
    if let Some(tp) = &ctx.reg.token_path
        && path == tp
    {
        return token_endpoint(ctx).await;
    }
    match path {
        "/v1/search" => {
            authorize(ctx, Need::Search).await?;
            return search(ctx);
        }
        "/v1/_ping" | "/v1/_ping/" => {
            return Ok(Response::builder()
                .header(header::CONTENT_TYPE, JSON.clone())
                .header("x-docker-registry-standalone", "true")
                .body(Body::full(Bytes::from_static(b"true")))
                .expect("response"));
        }
        _ => {}
    }
    let method = ctx.method.clone();
    match route(path) {
        Route::Base => match method {
            M::GET | M::HEAD => {
                authorize(ctx, Need::Authenticated).await?;
                Ok(Response::builder()
                    .header(header::CONTENT_TYPE, JSON.clone())
                    .body(if method == M::HEAD {
                        Body::Empty
                    } else {
                        Body::full(Bytes::from_static(b"{}"))
                    })
                    .expect("response"))
            }
            _ => Err(method_not_allowed()),
        },
        Route::Catalog => match method {
            M::GET => {
                authorize(ctx, Need::Catalog).await?;
                catalog(ctx)
            }
            _ => Err(method_not_allowed()),
        },
        Route::Tags(name) => {
            check_name(name)?;
            match method {
                M::GET => {
                    authorize(ctx, Need::Pull(name)).await?;
                    tags_list(ctx, name)
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::Manifest(name, reference) => {
            check_name(name)?;
            match method {
                M::GET | M::HEAD => {
                    authorize(ctx, Need::Pull(name)).await?;
                    get_manifest(ctx, path, name, reference).await
                }
                M::PUT => {
                    authorize(ctx, Need::Push(name)).await?;
                    put_manifest(ctx, name, reference).await
                }
                M::DELETE => {
                    authorize(ctx, Need::Delete(name)).await?;
                    delete_manifest(ctx, name, reference).await
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::Blob(name, digest) => {
            check_name(name)?;
            match method {
                M::GET | M::HEAD => {
                    authorize(ctx, Need::Pull(name)).await?;
                    get_blob(ctx, name, digest).await
                }
                M::DELETE => {
                    authorize(ctx, Need::Delete(name)).await?;
                    delete_blob(ctx, name, digest).await
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::UploadStart(name) => {
            check_name(name)?;
            match method {
                M::POST => {
                    let claims = authorize(ctx, Need::Push(name)).await?;
                    start_upload(ctx, name, claims).await
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::Upload(name, id) => {
            check_name(name)?;
            match method {
                M::GET | M::PATCH | M::PUT | M::DELETE => {
                    authorize(ctx, Need::Push(name)).await?;
                }
                _ => return Err(method_not_allowed()),
            }
            let session = ctx.reg.session(name, id)?;
            match method {
                M::GET => upload_status(name, id, &session).await,
                M::PATCH => patch_upload(ctx, name, id, &session).await,
                M::PUT => put_upload(ctx, name, id, &session).await,
                _ => cancel_upload(ctx, id, &session).await,
            }
        }
        Route::Referrers(name, digest) => {
            check_name(name)?;
            match method {
                M::GET => {
                    authorize(ctx, Need::Pull(name)).await?;
                    referrers(ctx, name, digest)
                }
                _ => Err(method_not_allowed()),
            }
        }
        Route::NotFound => {
            Err(RegistryError::msg(Code::Unsupported, "page not found")
                .status(StatusCode::NOT_FOUND))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authorization

#[derive(Clone, Copy)]
enum Need<'a> {
    /// Any valid credentials (`GET /v2/`).
    Authenticated,
    Search,
    Catalog,
    Pull(&'a str),
    Push(&'a str),
    Delete(&'a str),
}

impl Need<'_> {
    fn is_read(&self) -> bool {
        matches!(self, Need::Pull(_) | Need::Search)
    }

    /// The token scope a client must ask for.
    fn scope(&self) -> Option<String> {
        match self {
            Need::Authenticated | Need::Search => None,
            Need::Catalog => Some("registry:catalog:*".into()),
            Need::Pull(n) => Some(format!("repository:{n}:pull")),
            Need::Push(n) => Some(format!("repository:{n}:pull,push")),
            Need::Delete(n) => Some(format!("repository:{n}:delete")),
        }
    }

    fn allowed_by(&self, c: &Claims) -> bool {
        match self {
            Need::Authenticated | Need::Search => true,
            Need::Catalog => c.allows("registry", "catalog", &["*"]),
            Need::Pull(n) => c.allows("repository", n, &["pull"]),
            Need::Push(n) => c.allows("repository", n, &["push"]),
            Need::Delete(n) => {
                c.allows("repository", n, &["delete"]) || c.allows("repository", n, &["*"])
            }
        }
    }
}

/// The caller's rights: everything (no auth configured, or a basic-auth user), or a token's.
enum Grant {
    All,
    Anonymous,
    Token(Claims),
}

impl Grant {
    fn may_pull(&self, name: &str, anonymous_pull: bool) -> bool {
        match self {
            Grant::All => true,
            Grant::Anonymous => anonymous_pull,
            Grant::Token(c) => c.allows("repository", name, &["pull"]),
        }
    }
}

fn basic_challenge() -> RegistryError {
    RegistryError::new(Code::Unauthorized).header(
        "www-authenticate",
        r#"Basic realm="berth-registry",charset="UTF-8""#,
    )
}

fn realm_url(ctx: &Ctx, t: &TokenConfig) -> String {
    if t.realm.starts_with('/') {
        let host = ctx.header(header::HOST).unwrap_or("127.0.0.1");
        format!("http://{host}{}", t.realm)
    } else {
        t.realm.clone()
    }
}

fn bearer_challenge(ctx: &Ctx, t: &TokenConfig, need: Need, error: Option<&str>) -> String {
    let mut c = format!(
        r#"Bearer realm="{}",service="{}""#,
        realm_url(ctx, t),
        t.service
    );
    if let Some(s) = need.scope() {
        c.push_str(&format!(r#",scope="{s}""#));
    }
    if let Some(e) = error {
        c.push_str(&format!(r#",error="{e}""#));
    }
    c
}

async fn check_basic(reg: &Arc<Registry>, user: String, pass: String) -> bool {
    let Some(h) = reg.htpasswd.clone() else {
        return false;
    };
    if h.verified_cached(&user, &pass) {
        return true;
    }
    tokio::task::spawn_blocking(move || h.verify(&user, &pass))
        .await
        .unwrap_or(false)
}

async fn authorize(ctx: &Ctx, need: Need<'_>) -> Result<Grant> {
    let reg = ctx.reg.clone();
    let authz = ctx.header(header::AUTHORIZATION).map(str::to_string);
    if let Some(t) = &reg.cfg.token {
        if let Some(tok) = authz.as_deref().and_then(auth::parse_bearer) {
            let claims = auth::verify_token(&t.secret, tok, &t.service, auth::now_secs()).map_err(
                |why| {
                    RegistryError::msg(Code::Unauthorized, format!("invalid token: {why}")).header(
                        "www-authenticate",
                        &bearer_challenge(ctx, t, need, Some("invalid_token")),
                    )
                },
            )?;
            if need.allowed_by(&claims) {
                return Ok(Grant::Token(claims));
            }
            if need.is_read() && reg.cfg.anonymous_pull {
                return Ok(Grant::Token(claims));
            }
            // An anonymous token needs credentials (a plain challenge, as for no token at
            // all); a user's token lacks the right (insufficient_scope, which clients report
            // as "denied").
            let (code, error) = if claims.sub.is_empty() {
                (Code::Unauthorized, None)
            } else {
                (Code::Denied, Some("insufficient_scope"))
            };
            return Err(RegistryError::new(code)
                .status(StatusCode::UNAUTHORIZED)
                .detail(serde_json::json!({ "scope": need.scope() }))
                .header("www-authenticate", &bearer_challenge(ctx, t, need, error)));
        }
        // Basic credentials are accepted by the search endpoint, which docker calls without
        // the token dance.
        if matches!(need, Need::Search)
            && let Some((u, p)) = authz.as_deref().and_then(auth::parse_basic)
            && check_basic(&reg, u, p).await
        {
            return Ok(Grant::All);
        }
        if need.is_read() && reg.cfg.anonymous_pull {
            return Ok(Grant::Anonymous);
        }
        return Err(RegistryError::new(Code::Unauthorized)
            .header("www-authenticate", &bearer_challenge(ctx, t, need, None)));
    }
    if reg.htpasswd.is_some() {
        if let Some((u, p)) = authz.as_deref().and_then(auth::parse_basic) {
            if check_basic(&reg, u, p).await {
                return Ok(Grant::All);
            }
            return Err(basic_challenge());
        }
        if need.is_read() && reg.cfg.anonymous_pull {
            return Ok(Grant::Anonymous);
        }
        return Err(basic_challenge());
    }
    Ok(Grant::All)
}

async fn token_endpoint(ctx: &mut Ctx) -> Result<Resp> {
    let reg = ctx.reg.clone();
    let Some(t) = reg.cfg.token.clone() else {
        return Err(
            RegistryError::msg(Code::Unsupported, "page not found").status(StatusCode::NOT_FOUND)
        );
    };
    let mut params = ctx.query();
    let mut user: Option<(String, String)> = ctx
        .header(header::AUTHORIZATION)
        .and_then(auth::parse_basic);
    match ctx.method {
        Method::GET => {}
        Method::POST => {
            // OAuth2 password grant (RFC 6749 4.3), as docker sends it with a refresh token or
            // when forced.
            let body = read_limited(ctx.take_body(), 64 * 1024)
                .await?
                .ok_or_else(|| RegistryError::msg(Code::Unsupported, "request too large"))?;
            let form: Vec<(String, String)> =
                url::form_urlencoded::parse(&body).into_owned().collect();
            let get = |k: &str| form.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
            match get("grant_type").as_deref() {
                Some("password") => {
                    if let (Some(u), Some(p)) = (get("username"), get("password")) {
                        user = Some((u, p));
                    }
                }
                other => {
                    return Ok(json_response(
                        StatusCode::BAD_REQUEST,
                        &serde_json::json!({"error": "unsupported_grant_type",
                            "error_description": format!("grant_type {other:?} is not supported")}),
                    ));
                }
            }
            params.extend(form);
        }
        _ => return Err(method_not_allowed()),
    }
    if let Some((_, svc)) = params.iter().find(|(k, _)| k == "service")
        && svc != &t.service
    {
        return Err(RegistryError::msg(
            Code::Denied,
            format!("unknown service {svc:?}; this registry is {:?}", t.service),
        )
        .status(StatusCode::BAD_REQUEST));
    }
    let subject = match user {
        Some((u, p)) => {
            if !check_basic(&reg, u.clone(), p).await {
                return Err(basic_challenge());
            }
            Some(u)
        }
        None => None,
    };
    let mut access = Vec::new();
    for (_, scope) in params.iter().filter(|(k, _)| k == "scope") {
        for s in scope.split(' ') {
            let Some(req) = auth::parse_scope(s) else {
                continue;
            };
            let grantable: &[&str] = match (req.kind.as_str(), &subject) {
                ("repository", _) if !names::valid_name(&req.name) => &[],
                ("repository", Some(_)) => &["pull", "push", "delete", "*"],
                ("repository", None) if reg.cfg.anonymous_pull => &["pull"],
                ("registry", Some(_)) if req.name == "catalog" => &["*"],
                _ => &[],
            };
            let actions: Vec<String> = req
                .actions
                .iter()
                .filter(|a| grantable.contains(&a.as_str()))
                .cloned()
                .collect();
            if !actions.is_empty() {
                access.push(AccessEntry {
                    kind: req.kind,
                    name: req.name,
                    actions,
                });
            }
        }
    }
    let now = auth::now_secs();
    let claims = Claims {
        iss: t.issuer.clone(),
        sub: subject.unwrap_or_default(),
        aud: t.service.clone(),
        exp: now + t.expiration,
        nbf: now.saturating_sub(1),
        iat: now,
        jti: auth::random_id(),
        access,
    };
    let token = auth::sign_token(&t.secret, &claims);
    let issued = httpdate_rfc3339(now);
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": t.expiration,
            "issued_at": issued,
        }),
    ))
}

/// `2024-01-02T03:04:05Z` for a Unix time.
fn httpdate_rfc3339(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Bodies

/// Reads a whole body; None when it exceeds `limit`.
async fn read_limited(mut body: Incoming, limit: usize) -> Result<Option<Bytes>> {
    let mut buf = BytesMut::new();
    while let Some(f) = body.frame().await {
        let f = f.map_err(|e| {
            RegistryError::msg(
                Code::BlobUploadInvalid,
                format!("reading the request body: {e}"),
            )
        })?;
        if let Some(d) = f.data_ref() {
            if buf.len() + d.len() > limit {
                return Ok(None);
            }
            buf.extend_from_slice(d);
        }
    }
    Ok(Some(buf.freeze()))
}

/// Writes batches of body frames to a file on the blocking pool, one batch in flight while the
/// next is hashed and gathered.
struct BatchWriter {
    file: Option<std::fs::File>,
    pending: Option<tokio::task::JoinHandle<(std::fs::File, io::Result<()>)>>,
    batch: Vec<Bytes>,
    batch_len: usize,
}

const WRITE_BATCH: usize = 4 << 20;

impl BatchWriter {
    fn new(file: std::fs::File) -> BatchWriter {
        BatchWriter {
            file: Some(file),
            pending: None,
            batch: Vec::new(),
            batch_len: 0,
        }
    }

    async fn push(&mut self, b: Bytes) -> io::Result<()> {
        self.batch_len += b.len();
        self.batch.push(b);
        if self.batch_len >= WRITE_BATCH {
            self.submit().await?;
        }
        Ok(())
    }

    /// Waits for the write in flight and gets the file back.
    async fn settle(&mut self) -> io::Result<()> {
        if let Some(h) = self.pending.take() {
            let (f, r) = h.await.map_err(io::Error::other)?;
            self.file = Some(f);
            r?;
        }
        Ok(())
    }

    async fn submit(&mut self) -> io::Result<()> {
        self.settle().await?;
        let mut f = self.file.take().expect("file is back after settle");
        let batch = std::mem::take(&mut self.batch);
        self.batch_len = 0;
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let r = batch
                .iter()
                .try_for_each(|b| io::Write::write_all(&mut f, b));
            (f, r)
        }));
        Ok(())
    }

    async fn finish(&mut self) -> io::Result<()> {
        if !self.batch.is_empty() {
            self.submit().await?;
        }
        self.settle().await
    }

    /// Cuts the file back to `len` after a failure.
    async fn truncate(mut self, len: u64) {
        self.batch.clear();
        let _ = self.settle().await;
        if let Some(f) = self.file.take() {
            let _ = tokio::task::spawn_blocking(move || f.set_len(len)).await;
        }
    }
}

/// Appends a request body to an upload file, hashing as it goes. On any failure the file is cut
/// back to where it was, so a session never holds half a chunk.
async fn append_body(
    reg: &Registry,
    id: &str,
    s: &mut Session,
    mut body: Incoming,
    expect: Option<u64>,
) -> Result<u64> {
    let path = reg.storage.upload_dir(id).join("data");
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                RegistryError::new(Code::BlobUploadUnknown)
            } else {
                RegistryError::internal(e)
            }
        })?;
    let mut w = BatchWriter::new(f);
    let start = s.size;
    let saved = s.hasher.clone();
    let mut written = 0u64;
    let mut failure: Option<RegistryError> = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(fr) => {
                if let Ok(d) = fr.into_data() {
                    if let Some(h) = &mut s.hasher {
                        h.update(&d);
                    }
                    written += d.len() as u64;
                    if let Err(e) = w.push(d).await {
                        failure = Some(RegistryError::internal(e));
                        break;
                    }
                }
            }
            Err(e) => {
                failure = Some(RegistryError::msg(
                    Code::BlobUploadInvalid,
                    format!("reading the upload body: {e}"),
                ));
                break;
            }
        }
    }
    if failure.is_none() {
        if let Err(e) = w.finish().await {
            failure = Some(RegistryError::internal(e));
        } else if let Some(n) = expect
            && n != written
        {
            failure = Some(RegistryError::msg(
                Code::SizeInvalid,
                format!("Content-Range announces {n} bytes, the body had {written}"),
            ));
        }
    }
    if let Some(e) = failure {
        w.truncate(start).await;
        s.hasher = saved;
        return Err(e);
    }
    s.size = start + written;
    Ok(written)
}

// ---------------------------------------------------------------------------------------------
// Manifests

async fn get_manifest(ctx: &Ctx, path: &str, name: &str, reference: &str) -> Result<Resp> {
    let reg = &ctx.reg;
    let head = ctx.method == Method::HEAD;
    let m = match reg.cache.get(path) {
        Some(m) => m,
        None => {
            let generation = reg.cache.generation.load(Ordering::Acquire);
            let digest = if reference.contains(':') {
                parse_digest(reference)?
            } else if names::valid_tag(reference) {
                reg.storage
                    .resolve_tag(name, reference)?
                    .ok_or_else(|| manifest_unknown(reference))?
            } else {
                return Err(manifest_unknown(reference));
            };
            let stored = reg
                .storage
                .get_manifest(name, &digest)?
                .ok_or_else(|| manifest_unknown(reference))?;
            let d = digest.to_string();
            let m = Arc::new(CachedManifest {
                etag: HeaderValue::from_str(&format!("\"{d}\"")).expect("ascii"),
                digest: HeaderValue::from_str(&d).expect("ascii"),
                media_type: HeaderValue::from_str(&stored.media_type)
                    .unwrap_or_else(|_| HeaderValue::from_static(manifest::OCI_MANIFEST)),
                body: Bytes::from(stored.bytes),
            });
            reg.cache.insert(path, generation, m.clone());
            m
        }
    };
    if let Some(inm) = ctx.parts.headers.get(header::IF_NONE_MATCH)
        && (inm == m.etag || inm == m.digest)
    {
        return Ok(empty(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, m.etag.clone())
            .header(CONTENT_DIGEST.clone(), m.digest.clone())
            .body(Body::Empty)
            .expect("response"));
    }
    let mut r = Response::new(if head {
        Body::Empty
    } else {
        Body::Full(Some(m.body.clone()))
    });
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, m.media_type.clone());
    h.insert(CONTENT_DIGEST.clone(), m.digest.clone());
    h.insert(header::ETAG, m.etag.clone());
    if head {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(m.body.len()));
    }
    Ok(r)
}

fn manifest_unknown(reference: &str) -> RegistryError {
    let detail = if reference.contains(':') {
        serde_json::json!({ "Digest": reference })
    } else {
        serde_json::json!({ "Tag": reference })
    };
    RegistryError::new(Code::ManifestUnknown).detail(detail)
}

async fn put_manifest(ctx: &mut Ctx, name: &str, reference: &str) -> Result<Resp> {
    let reg = ctx.reg.clone();
    let by_digest = if reference.contains(':') {
        Some(parse_digest(reference)?)
    } else if names::valid_tag(reference) {
        None
    } else {
        return Err(RegistryError::msg(
            Code::ManifestInvalid,
            format!("invalid tag {reference:?}"),
        ));
    };
    let mut extra_tags = Vec::new();
    for (k, v) in ctx.query() {
        if k == "tag" {
            if !names::valid_tag(&v) {
                return Err(RegistryError::msg(
                    Code::ManifestInvalid,
                    format!("invalid tag {v:?}"),
                ));
            }
            extra_tags.push(v);
        }
    }
    let too_large = || {
        RegistryError::msg(
            Code::ManifestInvalid,
            format!("manifest exceeds the {MAX_MANIFEST_SIZE}-byte limit"),
        )
        .status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if let Some(len) = ctx
        .header(header::CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        && len > MAX_MANIFEST_SIZE as u64
    {
        return Err(too_large());
    }
    let content_type = ctx.header(header::CONTENT_TYPE).map(str::to_string);
    let bytes = read_limited(ctx.take_body(), MAX_MANIFEST_SIZE)
        .await?
        .ok_or_else(too_large)?;
    let parsed = manifest::parse(&bytes, content_type.as_deref())?;
    let alg = by_digest
        .as_ref()
        .map(Digest::algorithm)
        .unwrap_or(Algorithm::Sha256);
    let digest = Digest::of(alg, &bytes);
    if let Some(want) = &by_digest
        && want != &digest
    {
        return Err(RegistryError::msg(
            Code::DigestInvalid,
            format!("manifest digest is {digest}, not {want}"),
        ));
    }
    // Everything the manifest references must already be in this repository.
    let mut missing = Vec::new();
    match parsed.kind {
        Kind::Image => {
            for b in &parsed.blobs {
                if !reg.storage.has_blob_in_repo(name, b) || reg.storage.blob_size(b).is_none() {
                    missing.push(b.clone());
                }
            }
        }
        Kind::Index => {
            for m in &parsed.manifests {
                if !reg.storage.has_manifest(name, m) {
                    missing.push(m.clone());
                }
            }
        }
    }
    if !missing.is_empty() {
        let mut e = RegistryError::new(Code::ManifestBlobUnknown);
        e.errors.clear();
        for d in missing {
            e.errors.push((
                Code::ManifestBlobUnknown,
                format!("{} unknown to registry", d),
                serde_json::json!({ "digest": d.to_string() }),
            ));
        }
        return Err(e);
    }
    let mut tags: Vec<String> = Vec::new();
    if by_digest.is_none() {
        tags.push(reference.to_string());
    }
    tags.extend(extra_tags.iter().cloned());
    let descriptor = parsed
        .subject
        .as_ref()
        .map(|_| parsed.referrer_descriptor(&digest, bytes.len()));
    {
        let reg = reg.clone();
        let name = name.to_string();
        let digest = digest.clone();
        let subject = parsed.subject.clone();
        let media_type = parsed.media_type.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            reg.storage.put_blob_bytes(&digest, &bytes)?;
            let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
            reg.storage.link_manifest(
                &name,
                &digest,
                &media_type,
                subject.as_ref().zip(descriptor.as_deref()),
                &tag_refs,
            )
        })
        .await
        .map_err(RegistryError::internal)??;
    }
    reg.note_repo(name);
    reg.cache.invalidate_repo(name);
    let mut b = empty(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/manifests/{digest}"))
        .header(CONTENT_DIGEST.clone(), digest.to_string());
    if let Some(s) = &parsed.subject {
        b = b.header("oci-subject", s.to_string());
    }
    for t in &extra_tags {
        b = b.header("oci-tag", t.as_str());
    }
    Ok(b.body(Body::Empty).expect("response"))
}

async fn delete_manifest(ctx: &Ctx, name: &str, reference: &str) -> Result<Resp> {
    let reg = ctx.reg.clone();
    if !reg.cfg.delete_enabled {
        return Err(RegistryError::msg(
            Code::Unsupported,
            "deletes are disabled on this registry",
        ));
    }
    let found = if reference.contains(':') {
        let d = parse_digest(reference)?;
        let (r, n) = (reg.clone(), name.to_string());
        tokio::task::spawn_blocking(move || r.storage.delete_manifest(&n, &d))
            .await
            .map_err(RegistryError::internal)??
    } else if names::valid_tag(reference) {
        reg.storage.delete_tag(name, reference)?
    } else {
        false
    };
    reg.cache.invalidate_repo(name);
    if !found {
        return Err(manifest_unknown(reference));
    }
    Ok(empty(StatusCode::ACCEPTED)
        .body(Body::Empty)
        .expect("response"))
}

// ---------------------------------------------------------------------------------------------
// Tags, catalog, referrers, search

/// `n` and `last` of a paginated list; `n` None means "no limit asked".
fn pagination(ctx: &Ctx) -> Result<(Option<usize>, Option<String>)> {
    let n = match ctx.query_one("n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            RegistryError::msg(Code::Unsupported, format!("invalid n {v:?}"))
                .status(StatusCode::BAD_REQUEST)
        })?),
        None => None,
    };
    Ok((n, ctx.query_one("last")))
}

/// Applies `last` and `n` to a sorted list; the bool says more entries follow.
fn paginate(
    all: &[String],
    n: Option<usize>,
    last: Option<&str>,
    cap: usize,
) -> (Vec<String>, bool) {
    let start = match last {
        Some(l) => all.partition_point(|x| x.as_str() <= l),
        None => 0,
    };
    let rest = &all[start..];
    let limit = n.unwrap_or(cap).min(cap);
    let page: Vec<String> = rest.iter().take(limit).cloned().collect();
    let more = rest.len() > page.len() && limit > 0;
    (page, more)
}

fn tags_list(ctx: &Ctx, name: &str) -> Result<Resp> {
    let (n, last) = pagination(ctx)?;
    let tags = ctx.reg.storage.list_tags(name)?.ok_or_else(|| {
        RegistryError::new(Code::NameUnknown).detail(serde_json::json!({ "name": name }))
    })?;
    let (page, more) = paginate(&tags, n, last.as_deref(), usize::MAX);
    let mut r = json_response(
        StatusCode::OK,
        &serde_json::json!({ "name": name, "tags": page }),
    );
    if more && let Some(l) = page.last() {
        let link = format!(
            "</v2/{name}/tags/list?last={l}&n={}>; rel=\"next\"",
            n.unwrap_or(page.len())
        );
        r.headers_mut()
            .insert(header::LINK, HeaderValue::from_str(&link).expect("ascii"));
    }
    Ok(r)
}

fn catalog(ctx: &Ctx) -> Result<Resp> {
    let (n, last) = pagination(ctx)?;
    let repos: Vec<String> = ctx.reg.repos.read().unwrap().iter().cloned().collect();
    let (page, more) = paginate(&repos, n, last.as_deref(), 10_000);
    let mut r = json_response(StatusCode::OK, &serde_json::json!({ "repositories": page }));
    if more && let Some(l) = page.last() {
        let link = format!(
            "</v2/_catalog?last={l}&n={}>; rel=\"next\"",
            n.unwrap_or(page.len())
        );
        r.headers_mut()
            .insert(header::LINK, HeaderValue::from_str(&link).expect("ascii"));
    }
    Ok(r)
}

fn referrers(ctx: &Ctx, name: &str, digest: &str) -> Result<Resp> {
    let subject = parse_digest(digest)?;
    let filter = ctx.query_one("artifactType").filter(|s| !s.is_empty());
    let mut list = Vec::new();
    for raw in ctx.reg.storage.referrers(name, &subject)? {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
            continue;
        };
        // Entries whose manifest was deleted without its referrer record are skipped.
        let Some(d) = v
            .get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| Digest::parse(d).ok())
        else {
            continue;
        };
        if !ctx.reg.storage.has_manifest(name, &d) {
            continue;
        }
        if let Some(f) = &filter
            && v.get("artifactType").and_then(|a| a.as_str()) != Some(f.as_str())
        {
            continue;
        }
        list.push(v);
    }
    let mut r = json_response(
        StatusCode::OK,
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest::OCI_INDEX,
            "manifests": list,
        }),
    );
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(manifest::OCI_INDEX),
    );
    if filter.is_some() {
        r.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}

fn search(ctx: &Ctx) -> Result<Resp> {
    let q = ctx.query_one("q").unwrap_or_default();
    let n = ctx
        .query_one("n")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(25)
        .min(100);
    let page = ctx
        .query_one("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|&p| p > 0)
        .unwrap_or(1);
    let needle = q.to_ascii_lowercase();
    let matches: Vec<String> = ctx
        .reg
        .repos
        .read()
        .unwrap()
        .iter()
        .filter(|r| r.contains(&needle))
        .cloned()
        .collect();
    let results: Vec<serde_json::Value> = matches
        .iter()
        .skip((page - 1) * n)
        .take(n)
        .map(|name| {
            serde_json::json!({
                "name": name,
                "description": "",
                "star_count": 0,
                "is_official": false,
                "is_automated": false,
                "is_trusted": false,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "num_results": matches.len(),
            "num_pages": matches.len().div_ceil(n).max(1),
            "page": page,
            "page_size": n,
            "query": q,
            "results": results,
        }),
    ))
}

// ---------------------------------------------------------------------------------------------
// Blobs

async fn get_blob(ctx: &Ctx, name: &str, digest: &str) -> Result<Resp> {
    let d = parse_digest(digest)?;
    let reg = &ctx.reg;
    let unknown =
        || RegistryError::new(Code::BlobUnknown).detail(serde_json::json!({ "digest": digest }));
    if !reg.storage.has_blob_in_repo(name, &d) {
        return Err(unknown());
    }
    let mut file = match tokio::fs::File::open(reg.storage.blob_path(&d)).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata().await?.len();
    let ds = d.to_string();
    let base = |status| {
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, OCTET.clone())
            .header(CONTENT_DIGEST.clone(), ds.as_str())
            .header(header::ETAG, format!("\"{ds}\""))
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CACHE_CONTROL, "max-age=31536000")
    };
    let head = ctx.method == Method::HEAD;
    let range = ctx
        .header(header::RANGE)
        .map(|r| names::parse_range(r, size))
        .unwrap_or(ByteRange::Full);
    match range {
        ByteRange::Full => {
            let b = base(StatusCode::OK).header(header::CONTENT_LENGTH, size);
            Ok(b.body(if head {
                Body::Empty
            } else {
                Body::file(file, size)
            })
            .expect("response"))
        }
        ByteRange::Partial(start, end) => {
            let len = end - start + 1;
            let b = base(StatusCode::PARTIAL_CONTENT)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"))
                .header(header::CONTENT_LENGTH, len);
            if head {
                return Ok(b.body(Body::Empty).expect("response"));
            }
            use tokio::io::AsyncSeekExt;
            file.seek(io::SeekFrom::Start(start)).await?;
            Ok(b.body(Body::file(file, len)).expect("response"))
        }
        ByteRange::Unsatisfiable => Ok(Response::builder()
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{size}"))
            .header(CONTENT_DIGEST.clone(), ds.as_str())
            .header(header::CONTENT_LENGTH, 0)
            .body(Body::Empty)
            .expect("response")),
    }
}

async fn delete_blob(ctx: &Ctx, name: &str, digest: &str) -> Result<Resp> {
    let d = parse_digest(digest)?;
    if !ctx.reg.cfg.delete_enabled {
        return Err(RegistryError::msg(
            Code::Unsupported,
            "deletes are disabled on this registry",
        ));
    }
    if !ctx.reg.storage.unlink_layer(name, &d)? {
        return Err(
            RegistryError::new(Code::BlobUnknown).detail(serde_json::json!({ "digest": digest }))
        );
    }
    Ok(empty(StatusCode::ACCEPTED)
        .header(CONTENT_DIGEST.clone(), d.to_string())
        .body(Body::Empty)
        .expect("response"))
}

// ---------------------------------------------------------------------------------------------
// Uploads

impl Registry {
    /// The live session `id` of repository `name`, reloaded from disk after a restart.
    fn session(&self, name: &str, id: &str) -> Result<Arc<tokio::sync::Mutex<Session>>> {
        let unknown = || {
            RegistryError::new(Code::BlobUploadUnknown).detail(serde_json::json!({ "uuid": id }))
        };
        if !names::valid_upload_id(id) {
            return Err(unknown());
        }
        let mut map = self.uploads.lock().unwrap();
        if let Some(s) = map.get(id) {
            return Ok(s.clone());
        }
        let dir = self.storage.upload_dir(id);
        let owner = std::fs::read_to_string(dir.join("repo")).map_err(|_| unknown())?;
        if owner.trim() != name {
            return Err(unknown());
        }
        let size = std::fs::metadata(dir.join("data"))
            .map_err(|_| unknown())?
            .len();
        let s = Arc::new(tokio::sync::Mutex::new(Session {
            name: name.to_string(),
            size,
            hasher: if size == 0 {
                Some(Algorithm::Sha256.hasher())
            } else {
                None
            },
            touched: Instant::now(),
            done: false,
        }));
        map.insert(id.to_string(), s.clone());
        Ok(s)
    }

    fn new_session(
        &self,
        name: &str,
        alg: Algorithm,
    ) -> Result<(String, Arc<tokio::sync::Mutex<Session>>)> {
        if self.uploads.lock().unwrap().len() >= self.cfg.max_uploads {
            return Err(RegistryError::msg(
                Code::TooManyRequests,
                "too many uploads in progress; retry later",
            )
            .header("retry-after", "5"));
        }
        let id = names::new_upload_id();
        let dir = self.storage.upload_dir(&id);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("repo"), name)?;
        std::fs::File::create(dir.join("data"))?;
        let s = Arc::new(tokio::sync::Mutex::new(Session {
            name: name.to_string(),
            size: 0,
            hasher: Some(alg.hasher()),
            touched: Instant::now(),
            done: false,
        }));
        self.uploads.lock().unwrap().insert(id.clone(), s.clone());
        Ok((id, s))
    }

    fn end_session(&self, id: &str, s: &mut Session) {
        s.done = true;
        self.uploads.lock().unwrap().remove(id);
        let _ = std::fs::remove_dir_all(self.storage.upload_dir(id));
    }
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn range_value(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

fn upload_accepted(status: StatusCode, name: &str, id: &str, size: u64) -> Resp {
    empty(status)
        .header(header::LOCATION, upload_location(name, id))
        .header(RANGE_H.clone(), range_value(size))
        .header(UPLOAD_UUID.clone(), id)
        .body(Body::Empty)
        .expect("response")
}

fn blob_created(name: &str, d: &Digest) -> Resp {
    empty(StatusCode::CREATED)
        .header(header::LOCATION, format!("/v2/{name}/blobs/{d}"))
        .header(CONTENT_DIGEST.clone(), d.to_string())
        .body(Body::Empty)
        .expect("response")
}

async fn start_upload(ctx: &mut Ctx, name: &str, grant: Grant) -> Result<Resp> {
    let reg = ctx.reg.clone();
    let q = ctx.query();
    let get = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    // Cross-repository mount: link the blob when `from` has it and the caller may read it;
    // otherwise fall back to a normal upload, as the spec allows.
    if let Some(mount) = get("mount") {
        let d = parse_digest(&mount)?;
        let from = get("from");
        let source_ok = match &from {
            Some(f) => {
                names::valid_name(f)
                    && reg.storage.has_blob_in_repo(f, &d)
                    && grant.may_pull(f, reg.cfg.anonymous_pull)
            }
            None => false,
        };
        if source_ok && reg.storage.blob_size(&d).is_some() {
            reg.storage.link_layer(name, &d)?;
            reg.note_repo(name);
            return Ok(blob_created(name, &d));
        }
    }
    let alg = match get("digest-algorithm") {
        Some(a) => Algorithm::parse(&a).ok_or_else(|| {
            RegistryError::msg(
                Code::DigestInvalid,
                format!("unsupported digest algorithm {a:?}"),
            )
        })?,
        None => Algorithm::Sha256,
    };
    if let Some(digest) = get("digest") {
        // Monolithic upload in one POST.
        let d = parse_digest(&digest)?;
        let (id, session) = reg.new_session(name, d.algorithm())?;
        let mut s = session.lock().await;
        let body = ctx.take_body();
        if let Err(e) = append_body(&reg, &id, &mut s, body, None).await {
            reg.end_session(&id, &mut s);
            return Err(e);
        }
        return finish_upload(&reg, name, &id, &mut s, &d).await;
    }
    let (id, _) = reg.new_session(name, alg)?;
    Ok(upload_accepted(StatusCode::ACCEPTED, name, &id, 0))
}

async fn upload_status(
    name: &str,
    id: &str,
    session: &tokio::sync::Mutex<Session>,
) -> Result<Resp> {
    let s = session.lock().await;
    if s.done {
        return Err(RegistryError::new(Code::BlobUploadUnknown));
    }
    Ok(upload_accepted(StatusCode::NO_CONTENT, name, id, s.size))
}

/// Checks a chunk's `Content-Range` against the session; returns the announced length.
fn check_chunk_range(ctx: &Ctx, name: &str, id: &str, size: u64) -> Result<Option<u64>> {
    let Some(cr) = ctx.header(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let Some((start, end)) = names::parse_content_range(cr) else {
        return Err(RegistryError::msg(
            Code::BlobUploadInvalid,
            format!("invalid Content-Range {cr:?}: want <start>-<end>"),
        ));
    };
    if start != size || end < start {
        return Err(RegistryError::msg(
            Code::BlobUploadInvalid,
            format!("chunk {start}-{end} does not continue the upload, which has {size} bytes"),
        )
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .header("location", &upload_location(name, id))
        .header("range", &range_value(size))
        .header("docker-upload-uuid", id));
    }
    Ok(Some(end - start + 1))
}

async fn patch_upload(
    ctx: &mut Ctx,
    name: &str,
    id: &str,
    session: &tokio::sync::Mutex<Session>,
) -> Result<Resp> {
    let reg = ctx.reg.clone();
    let mut s = session.lock().await;
    if s.done || s.name != name {
        return Err(RegistryError::new(Code::BlobUploadUnknown));
    }
    s.touched = Instant::now();
    let expect = check_chunk_range(ctx, name, id, s.size)?;
    append_body(&reg, id, &mut s, ctx.take_body(), expect).await?;
    Ok(upload_accepted(StatusCode::ACCEPTED, name, id, s.size))
}

async fn put_upload(
    ctx: &mut Ctx,
    name: &str,
    id: &str,
    session: &tokio::sync::Mutex<Session>,
) -> Result<Resp> {
    let reg = ctx.reg.clone();
    let Some(digest) = ctx.query_one("digest") else {
        return Err(RegistryError::msg(
            Code::DigestInvalid,
            "the digest parameter is required",
        ));
    };
    let d = parse_digest(&digest)?;
    let mut s = session.lock().await;
    if s.done || s.name != name {
        return Err(RegistryError::new(Code::BlobUploadUnknown));
    }
    s.touched = Instant::now();
    let expect = check_chunk_range(ctx, name, id, s.size)?;
    append_body(&reg, id, &mut s, ctx.take_body(), expect).await?;
    finish_upload(&reg, name, id, &mut s, &d).await
}

/// Verifies the upload against `want`, then moves it into the blob store and links it.
async fn finish_upload(
    reg: &Arc<Registry>,
    name: &str,
    id: &str,
    s: &mut Session,
    want: &Digest,
) -> Result<Resp> {
    let path = reg.storage.upload_dir(id).join("data");
    let hasher = s
        .hasher
        .clone()
        .filter(|h| h.algorithm() == want.algorithm());
    let alg = want.algorithm();
    let (r, p) = (reg.clone(), path.clone());
    let w = want.clone();
    let n = name.to_string();
    let result = tokio::task::spawn_blocking(move || -> io::Result<Option<Digest>> {
        let f = std::fs::File::open(&p)?;
        f.sync_all()?;
        let got = match hasher {
            Some(h) => h.finish(),
            None => {
                let mut h = alg.hasher();
                let mut f = f;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let k = io::Read::read(&mut f, &mut buf)?;
                    if k == 0 {
                        break;
                    }
                    h.update(&buf[..k]);
                }
                h.finish()
            }
        };
        if got != w {
            return Ok(Some(got));
        }
        r.storage.commit_blob(&p, &w)?;
        r.storage.link_layer(&n, &w)?;
        Ok(None)
    })
    .await
    .map_err(RegistryError::internal)?;
    let mismatch = match result {
        Ok(m) => m,
        Err(e) => {
            reg.end_session(id, s);
            return Err(e.into());
        }
    };
    reg.end_session(id, s);
    if let Some(got) = mismatch {
        return Err(RegistryError::msg(
            Code::DigestInvalid,
            format!("upload digest is {got}, not {want}"),
        )
        .detail(serde_json::json!({ "digest": want.to_string() })));
    }
    reg.note_repo(name);
    Ok(blob_created(name, want))
}

async fn cancel_upload(ctx: &Ctx, id: &str, session: &tokio::sync::Mutex<Session>) -> Result<Resp> {
    let mut s = session.lock().await;
    if s.done {
        return Err(RegistryError::new(Code::BlobUploadUnknown));
    }
    ctx.reg.end_session(id, &mut s);
    Ok(empty(StatusCode::NO_CONTENT)
        .body(Body::Empty)
        .expect("response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/v2/"), Route::Base);
        assert_eq!(route("/v2"), Route::Base);
        assert_eq!(route("/v2/_catalog"), Route::Catalog);
        assert_eq!(route("/v2/a/b/tags/list"), Route::Tags("a/b"));
        assert_eq!(
            route("/v2/a/b/manifests/latest"),
            Route::Manifest("a/b", "latest")
        );
        assert_eq!(
            route("/v2/a/blobs/sha256:00"),
            Route::Blob("a", "sha256:00")
        );
        assert_eq!(route("/v2/a/b/blobs/uploads/"), Route::UploadStart("a/b"));
        assert_eq!(route("/v2/a/b/blobs/uploads"), Route::UploadStart("a/b"));
        assert_eq!(route("/v2/a/blobs/uploads/xyz"), Route::Upload("a", "xyz"));
        assert_eq!(
            route("/v2/a/referrers/sha256:1"),
            Route::Referrers("a", "sha256:1")
        );
        assert_eq!(route("/v2/x"), Route::NotFound);
        assert_eq!(route("/v3/x"), Route::NotFound);
        assert_eq!(route("/v2/a/uploads/x"), Route::NotFound);
    }

    #[test]
    fn pages() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            paginate(&all, Some(2), None, usize::MAX),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            paginate(&all, Some(2), Some("b"), usize::MAX),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(paginate(&all, Some(0), None, usize::MAX), (vec![], false));
        assert_eq!(paginate(&all, None, Some("a"), usize::MAX).0.len(), 3);
        assert_eq!(
            paginate(&all, None, Some("bb"), usize::MAX).0,
            vec!["c".to_string(), "d".into()]
        );
    }

    #[test]
    fn dates() {
        assert_eq!(httpdate_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(httpdate_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(httpdate_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn decoding() {
        assert_eq!(
            percent_decode("/v2/a/manifests/sha256%3Aab"),
            "/v2/a/manifests/sha256:ab"
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
