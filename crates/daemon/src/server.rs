//! The Engine API server: listens on the configured sockets, checks the `/vX.Y` prefix,
//! stamps Docker's headers on every answer, and dispatches to the handlers.

use std::sync::Arc;

use anyhow::{Context, bail};
use http::{HeaderValue, Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::daemon::Daemon;
use crate::handlers::{
    build, containers, distribution, events, exec, filesystem, images, limits, networks, system,
    volumes,
};
use crate::http::{ApiError, ApiResult, Query, Resp};
use berth_api::{API_VERSION, MIN_API_VERSION, parse_api_version};

/// Everything a handler gets about its request.
pub struct Ctx {
    pub daemon: Arc<Daemon>,
    pub method: Method,
    pub query: Query,
    /// The API version the client asked for (the newest if unversioned).
    pub version: (u32, u32),
    pub req: Request<Incoming>,
}

/// Binds every `-H` address; unix sockets replace a stale file and are made 0660.
pub fn bind(hosts: &[String]) -> anyhow::Result<Vec<(String, UnixListener)>> {
    let mut out = Vec::new();
    for h in hosts {
        let Some(path) = h.strip_prefix("unix://") else {
            bail!("unsupported host {h}: berthd listens on unix:///path sockets");
        };
        let path = std::path::Path::new(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if path.exists() {
            // Refuse to steal the socket of a daemon that is alive.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!("another daemon is already listening on {h}");
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        let l = UnixListener::bind(path).with_context(|| format!("listening on {h}"))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
        out.push((path.display().to_string(), l));
    }
    Ok(out)
}

/// Accepts connections until the task is dropped.
pub async fn serve(daemon: Arc<Daemon>, listener: UnixListener) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let d = daemon.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let d = d.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(d, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

/// Splits `/v1.47/images/json` into the version and the rest.
fn split_version(path: &str) -> Result<(Option<&str>, &str), ()> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((None, path));
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let v = &rest[..end];
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok((None, path));
    }
    Ok((Some(v), &rest[end..]))
}

fn check_version(v: &str) -> Result<(u32, u32), ApiError> {
    let parsed = parse_api_version(v)
        .ok_or_else(|| ApiError::bad_request(format!("invalid API version {v}")))?;
    let max = parse_api_version(API_VERSION).expect("constant");
    let min = parse_api_version(MIN_API_VERSION).expect("constant");
    if parsed > max {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if parsed < min {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(parsed)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn handle(daemon: Arc<Daemon>, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let mut resp = match route(daemon, req, &path).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert(
        "Server",
        HeaderValue::from_str(&format!("Berth/{} (linux)", berth_api::VERSION)).expect("ascii"),
    );
    resp
}

async fn route(daemon: Arc<Daemon>, req: Request<Incoming>, raw_path: &str) -> ApiResult {
    let (version, path) =
        split_version(raw_path).map_err(|_| ApiError::not_found("page not found"))?;
    let version = match version {
        Some(v) => check_version(v)?,
        None => parse_api_version(API_VERSION).expect("constant"),
    };
    let segs: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let query = Query::parse(req.uri().query());
    let ctx = Ctx {
        daemon,
        method: req.method().clone(),
        query,
        version,
        req,
    };
    use Method as M;
    match (&ctx.method, segs.as_slice()) {
        (&M::GET | &M::HEAD, ["_ping"]) => system::ping(ctx).await,
        (&M::GET, ["version"]) => system::version(ctx).await,
        (&M::GET, ["info"]) => system::info(ctx).await,
        (&M::GET, ["system", "df"]) => system::df(ctx).await,

        (&M::GET, ["images", "json"]) => images::list(ctx).await,
        (&M::POST, ["images", "create"]) => images::create(ctx).await,
        (&M::POST, ["images", "load"]) => images::load(ctx).await,
        (&M::GET, ["images", "get"]) => images::save(ctx, None).await,
        (&M::POST, ["images", "prune"]) => images::prune(ctx).await,
        (&M::GET, ["images", name @ .., "get"]) if !name.is_empty() => {
            let n = name.join("/");
            images::save(ctx, Some(n)).await
        }
        (&M::GET, ["images", name @ .., "json"]) if !name.is_empty() => {
            let n = name.join("/");
            images::inspect(ctx, &n).await
        }
        (&M::GET, ["images", name @ .., "history"]) if !name.is_empty() => {
            let n = name.join("/");
            images::history(ctx, &n).await
        }
        (&M::GET, ["images", "search"]) => distribution::search(ctx).await,
        (&M::POST, ["auth"]) => distribution::auth(ctx).await,
        (&M::GET, ["distribution", name @ .., "json"]) if !name.is_empty() => {
            let n = name.join("/");
            distribution::inspect(ctx, &n).await
        }
        (&M::POST, ["images", name @ .., "push"]) if !name.is_empty() => {
            let n = name.join("/");
            distribution::push(ctx, &n).await
        }
        (&M::POST, ["images", name @ .., "tag"]) if !name.is_empty() => {
            let n = name.join("/");
            images::tag(ctx, &n).await
        }
        (&M::DELETE, ["images", name @ ..]) if !name.is_empty() => {
            let n = name.join("/");
            images::delete(ctx, &n).await
        }

        (&M::POST, ["containers", "create"]) => containers::create(ctx).await,
        (&M::GET, ["containers", "json"]) => containers::list(ctx).await,
        (&M::POST, ["containers", "prune"]) => containers::prune(ctx).await,
        (&M::GET, ["containers", id, "json"]) => containers::inspect(ctx, id).await,
        (&M::POST, ["containers", id, "start"]) => containers::start(ctx, id).await,
        (&M::POST, ["containers", id, "stop"]) => containers::stop(ctx, id).await,
        (&M::POST, ["containers", id, "restart"]) => containers::restart(ctx, id).await,
        (&M::POST, ["containers", id, "kill"]) => containers::kill(ctx, id).await,
        (&M::POST, ["containers", id, "wait"]) => containers::wait(ctx, id).await,
        (&M::POST, ["containers", id, "pause"]) => containers::pause(ctx, id).await,
        (&M::POST, ["containers", id, "unpause"]) => containers::unpause(ctx, id).await,
        (&M::POST, ["containers", id, "rename"]) => containers::rename(ctx, id).await,
        (&M::POST, ["containers", id, "attach"]) => containers::attach(ctx, id).await,
        (&M::POST, ["containers", id, "resize"]) => containers::resize(ctx, id).await,
        (&M::GET, ["containers", id, "logs"]) => containers::logs(ctx, id).await,
        (&M::GET, ["containers", id, "top"]) => containers::top(ctx, id).await,
        (&M::GET, ["containers", id, "stats"]) => limits::stats(ctx, id).await,
        (&M::POST, ["containers", id, "update"]) => limits::update(ctx, id).await,
        (&M::POST, ["containers", id, "exec"]) => exec::create(ctx, id).await,
        (&M::DELETE, ["containers", id]) => containers::remove(ctx, id).await,
        (&M::GET, ["containers", id, "changes"]) => filesystem::changes(ctx, id).await,
        (&M::GET, ["containers", id, "export"]) => filesystem::export(ctx, id).await,
        (&M::HEAD, ["containers", id, "archive"]) => filesystem::archive_head(ctx, id).await,
        (&M::GET, ["containers", id, "archive"]) => filesystem::archive_get(ctx, id).await,
        (&M::PUT, ["containers", id, "archive"]) => filesystem::archive_put(ctx, id).await,
        (&M::POST, ["commit"]) => filesystem::commit(ctx).await,
        (&M::POST, ["build"]) => build::build(ctx).await,
        (&M::POST, ["build", "prune"]) => build::prune(ctx).await,
        (&M::GET, ["volumes"]) => volumes::list(ctx).await,
        (&M::POST, ["volumes", "create"]) => volumes::create(ctx).await,
        (&M::POST, ["volumes", "prune"]) => volumes::prune(ctx).await,
        (&M::GET, ["volumes", name]) => volumes::inspect(ctx, name).await,
        (&M::DELETE, ["volumes", name]) => volumes::remove(ctx, name).await,
        (&M::GET, ["networks"]) => networks::list(ctx).await,
        (&M::POST, ["networks", "create"]) => networks::create(ctx).await,
        (&M::POST, ["networks", "prune"]) => networks::prune(ctx).await,
        (&M::GET, ["networks", id]) => networks::inspect(ctx, id).await,
        (&M::DELETE, ["networks", id]) => networks::remove(ctx, id).await,
        (&M::POST, ["networks", id, "connect"]) => networks::connect(ctx, id).await,
        (&M::POST, ["networks", id, "disconnect"]) => networks::disconnect(ctx, id).await,
        (&M::GET, ["events"]) => events::events(ctx).await,
        (&M::POST, ["exec", id, "start"]) => exec::start(ctx, id).await,
        (&M::POST, ["exec", id, "resize"]) => exec::resize(ctx, id).await,
        (&M::GET, ["exec", id, "json"]) => exec::inspect(ctx, id).await,
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "page not found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix() {
        assert_eq!(
            split_version("/v1.47/images/json"),
            Ok((Some("1.47"), "/images/json"))
        );
        assert_eq!(split_version("/_ping"), Ok((None, "/_ping")));
        assert_eq!(split_version("/volumes"), Ok((None, "/volumes")));
        assert!(check_version("1.24").is_ok());
        assert!(check_version(API_VERSION).is_ok());
        let e = check_version("1.99").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.message,
            format!(
                "client version 1.99 is too new. Maximum supported API version is {API_VERSION}"
            )
        );
        assert!(
            check_version("1.12")
                .unwrap_err()
                .message
                .contains("too old")
        );
    }

    #[test]
    fn path_segments_are_decoded() {
        assert_eq!(percent_decode("a%3Ab"), "a:b");
        assert_eq!(percent_decode("a+b"), "a+b");
    }
}
