//! Registries: `POST /images/create?fromImage=` (pull), `POST /images/{name}/push`, `POST /auth`
//! (login check), `GET /images/search`, `GET /distribution/{name}/json`.
//!
//! Pull and push answer docker's JSON progress stream. As in moby, a failure before the first
//! message is an ordinary error answer (404 for a missing image, 401 for refused credentials);
//! once the stream has started, failures travel in it as `{"errorDetail":…,"error":…}`.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use berth_api::stream::{JsonMessage, ProgressDetail};
use berth_image::Reference;
use berth_registry_client::progress::{Progress, bar};
use berth_registry_client::pull::PullOptions;
use berth_registry_client::push::PushOptions;
use berth_registry_client::search::SearchFilters;
use berth_registry_client::{AuthConfig, Error as RegError, RegistryConfig, platform};
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::daemon::Daemon;
use crate::http::{ApiError, ApiResult, body_bytes, ok_json, streaming};
use crate::server::Ctx;

fn api_error(e: RegError) -> ApiError {
    match e {
        RegError::NotFound(m) => ApiError::not_found(m),
        RegError::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, m),
        RegError::Invalid(m) => ApiError::bad_request(m),
        RegError::Image(e) => e.into(),
        RegError::Registry(m) | RegError::Transport(m) => ApiError::internal(m),
    }
}

/// daemon.json's registry settings.
fn registry_config(d: &Daemon) -> Result<RegistryConfig, ApiError> {
    RegistryConfig::from_daemon_json(&d.config.file).map_err(ApiError::internal)
}

fn auth_header(ctx: &Ctx) -> AuthConfig {
    AuthConfig::from_header(
        ctx.req
            .headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    )
}

/// Progress events as JSON lines on the response channel.
struct StreamProgress {
    tx: mpsc::Sender<Bytes>,
    sent: AtomicBool,
}

impl StreamProgress {
    fn send(&self, m: &JsonMessage) {
        self.sent.store(true, Ordering::SeqCst);
        // A client that went away stops reading; the operation itself carries on, as it
        // would for another client waiting on the same image.
        let _ = self.tx.blocking_send(Bytes::from(m.to_line()));
    }
}

impl Progress for StreamProgress {
    fn status(&self, id: Option<&str>, text: &str) {
        self.send(&JsonMessage {
            status: Some(text.to_string()),
            id: id.map(str::to_string),
            ..Default::default()
        });
    }
    fn update(&self, id: &str, action: &str) {
        self.send(&JsonMessage {
            status: Some(action.to_string()),
            id: Some(id.to_string()),
            progress_detail: Some(ProgressDetail::default()),
            ..Default::default()
        });
    }
    fn progress(&self, id: &str, action: &str, current: u64, total: u64) {
        self.send(&JsonMessage {
            status: Some(action.to_string()),
            id: Some(id.to_string()),
            progress_detail: Some(ProgressDetail {
                current: Some(current as i64),
                total: (total > 0).then_some(total as i64),
            }),
            progress: Some(bar(current, total)).filter(|s| !s.is_empty()),
            ..Default::default()
        });
    }
    fn aux(&self, value: serde_json::Value) {
        self.send(&JsonMessage {
            progress_detail: Some(ProgressDetail::default()),
            aux: Some(value),
            ..Default::default()
        });
    }
}

/// Runs `job` off the async threads, answering its progress as docker's JSON stream. An error
/// before any output is an ordinary error answer.
async fn progress_stream(
    job: impl FnOnce(&dyn Progress) -> Result<(), RegError> + Send + 'static,
) -> ApiResult {
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    let (done_tx, done_rx) = oneshot::channel::<Result<(), RegError>>();
    tokio::task::spawn_blocking(move || {
        let p = StreamProgress {
            tx,
            sent: AtomicBool::new(false),
        };
        let r = job(&p);
        let r = match r {
            Err(e) if p.sent.load(Ordering::SeqCst) => {
                tracing::info!("registry operation failed: {e}");
                p.send(&JsonMessage::error(e.to_string()));
                Ok(())
            }
            other => other,
        };
        let _ = done_tx.send(r);
    });
    let Some(first) = rx.recv().await else {
        // Nothing was said: the outcome is the answer.
        return match done_rx.await {
            Ok(Ok(())) => Ok(streaming(
                StatusCode::OK,
                "application/json",
                mpsc::channel(1).1,
            )),
            Ok(Err(e)) => Err(api_error(e)),
            Err(_) => Err(ApiError::internal(
                "the registry operation ended unexpectedly",
            )),
        };
    };
    let (btx, brx) = mpsc::channel::<io::Result<Bytes>>(256);
    tokio::spawn(async move {
        if btx.send(Ok(first)).await.is_err() {
            return;
        }
        while let Some(line) = rx.recv().await {
            if btx.send(Ok(line)).await.is_err() {
                // The client left; drain so the job never blocks.
                while rx.recv().await.is_some() {}
                return;
            }
        }
    });
    Ok(streaming(StatusCode::OK, "application/json", brx))
}

/// docker's reading of `fromImage` + `tag` (a tag or a digest; none pulls every tag).
fn pull_reference(image: &str, tag: &str) -> Result<Reference, ApiError> {
    let r = Reference::parse_normalized(image).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if tag.is_empty() {
        return Ok(r);
    }
    if let Ok(d) = tag.parse::<berth_image::Digest>() {
        return Ok(r.without_tag_or_digest().with_digest(d));
    }
    r.with_tag(tag)
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

fn image_event(d: &Daemon, action: &str, r: &Reference) {
    let mut attrs = BTreeMap::new();
    attrs.insert("name".to_string(), r.familiar_name());
    d.events
        .publish("image", action, &r.familiar_string(), attrs);
}

/// `POST /images/create?fromImage=…&tag=…&platform=…` with `X-Registry-Auth`.
pub async fn pull(ctx: Ctx) -> ApiResult {
    let image = ctx.query.get("fromImage").unwrap_or("").to_string();
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let reference = pull_reference(&image, &tag)?;
    let platform = match ctx
        .query
        .get("platform")
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        Some(p) => Some(platform::parse(p).map_err(api_error)?),
        None => None,
    };
    let d: Arc<Daemon> = ctx.daemon.clone();
    let cfg = registry_config(&d)?;
    let opts = PullOptions {
        platform,
        auth: auth_header(&ctx),
    };
    progress_stream(move |out| {
        let pulled = berth_registry_client::pull::pull(&d.images, &cfg, &reference, &opts, out)?;
        for p in &pulled {
            image_event(&d, "pull", &p.reference);
        }
        Ok(())
    })
    .await
}

/// `POST /images/{name}/push?tag=…` with `X-Registry-Auth`.
pub async fn push(ctx: Ctx, name: &str) -> ApiResult {
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let mut reference =
        Reference::parse_normalized(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !tag.is_empty() {
        reference = reference
            .with_tag(&tag)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    berth_registry_client::push::check_pushable(&reference).map_err(api_error)?;
    let d: Arc<Daemon> = ctx.daemon.clone();
    let cfg = registry_config(&d)?;
    let opts = PushOptions {
        auth: auth_header(&ctx),
    };
    progress_stream(move |out| {
        let pushed = berth_registry_client::push::push(&d.images, &cfg, &reference, &opts, out)?;
        for p in &pushed {
            if let Ok(r) = reference.without_tag_or_digest().with_tag(&p.tag) {
                image_event(&d, "push", &r);
            }
        }
        Ok(())
    })
    .await
}

/// `POST /auth`: checks the credentials against the registry.
pub async fn auth(ctx: Ctx) -> ApiResult {
    let body = body_bytes(ctx.req.into_body(), 1 << 20).await?;
    let auth: AuthConfig = serde_json::from_slice::<AuthConfig>(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid auth configuration: {e}")))?
        .normalized();
    let d = ctx.daemon.clone();
    let cfg = registry_config(&d)?;
    let token =
        tokio::task::spawn_blocking(move || berth_registry_client::login::login(&cfg, &auth))
            .await?
            .map_err(api_error)?;
    ok_json(&json!({"Status": "Login Succeeded", "IdentityToken": token}))
}

/// `GET /images/search?term=…&limit=…&filters=…`.
pub async fn search(ctx: Ctx) -> ApiResult {
    let term = ctx.query.get("term").unwrap_or("").to_string();
    let limit = match ctx.query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        ),
        None => None,
    };
    let f = ctx.query.filters()?;
    f.only(&["is-automated", "is-official", "stars"])?;
    let mut stars = None;
    for s in f.get("stars") {
        let n: i64 = s
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid filter 'stars={s}'")))?;
        stars = Some(stars.map_or(n, |m: i64| m.max(n)));
    }
    let filters = SearchFilters {
        is_official: f.bool("is-official")?,
        is_automated: f.bool("is-automated")?,
        stars,
    };
    let auth = auth_header(&ctx);
    let d = ctx.daemon.clone();
    let cfg = registry_config(&d)?;
    let results = tokio::task::spawn_blocking(move || {
        berth_registry_client::search::search(&cfg, &term, limit, &filters, &auth)
    })
    .await?
    .map_err(api_error)?;
    ok_json(&results)
}

/// `GET /distribution/{name}/json`.
pub async fn inspect(ctx: Ctx, name: &str) -> ApiResult {
    let r = Reference::parse_normalized(name)
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .with_default_tag();
    let auth = auth_header(&ctx);
    let d = ctx.daemon.clone();
    let cfg = registry_config(&d)?;
    let out = tokio::task::spawn_blocking(move || {
        berth_registry_client::inspect::inspect(&cfg, &r, &auth)
    })
    .await?
    .map_err(api_error)?;
    ok_json(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_references_follow_moby() {
        assert_eq!(
            pull_reference("busybox", "latest").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert!(pull_reference("busybox", "").unwrap().is_name_only());
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            pull_reference("127.0.0.1:5000/x", &d).unwrap().to_string(),
            format!("127.0.0.1:5000/x@{d}")
        );
        assert!(pull_reference("Bad", "x").is_err());
        assert!(pull_reference("x", "bad tag").is_err());
    }
}
