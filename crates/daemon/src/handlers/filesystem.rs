//! A container's filesystem from outside: `diff` (changes), `export`, `cp` (archive
//! HEAD/GET/PUT) and `commit`.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use berth_api::engine::ContainerConfig;
use berth_image::config::{History, ImageConfig, RunConfig};
use http::{HeaderValue, Response, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;

use crate::containers::Container;
use crate::containers::lifecycle::{self, is_mounted};
use crate::daemon::Daemon;
use crate::http::{
    ApiError, ApiResult, ChannelWriter, body_reader, empty_body, ok_json, streaming,
};
use crate::server::Ctx;

/// Paths berth creates in every container (mount points), which `docker diff` does not show.
const HIDDEN: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/.dockerenv",
];

fn storage_err(e: berth_storage::Error) -> ApiError {
    match e {
        berth_storage::Error::NotFound(p) => {
            ApiError::not_found(format!("Could not find the file {p} in container"))
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// Runs `f` on the container's mounted root (mounting it for the call if the container is not
/// running), in a blocking thread. The container's lifecycle lock is held meanwhile.
async fn with_rootfs<T: Send + 'static>(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    f: impl FnOnce(PathBuf) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _op = c.op.lock().await;
    let d2 = d.clone();
    let id = c.id.clone();
    tokio::task::spawn_blocking(move || {
        let rootfs = d2.containers.paths.rootfs(&id);
        if is_mounted(&rootfs) {
            return f(rootfs);
        }
        std::fs::create_dir_all(&rootfs)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", rootfs.display())))?;
        d2.images
            .snapshots
            .mount(&id, &rootfs)
            .map_err(|e| ApiError::internal(format!("mounting the container's filesystem: {e}")))?;
        let out = f(rootfs.clone());
        let _ = d2.images.snapshots.unmount(&rootfs);
        out
    })
    .await?
}

/// Like [`with_rootfs`], for one container path: a path under a volume or bind mount is
/// served from the mount's host directory (what the container sees there).
async fn with_path<T: Send + 'static>(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    path: String,
    f: impl FnOnce(PathBuf, String) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if let Some((src, rest)) = crate::containers::mounts::host_location(&c.snapshot(), &path) {
        return tokio::task::spawn_blocking(move || f(PathBuf::from(src), rest)).await?;
    }
    with_rootfs(d, c, move |root| f(root, path)).await
}

/// `GET /containers/{id}/changes`.
pub async fn changes(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let id = c.id.clone();
    let list = tokio::task::spawn_blocking(move || d.images.snapshots.changes(&id))
        .await?
        .map_err(storage_err)?;
    let out: Vec<serde_json::Value> = list
        .iter()
        .filter(|ch| !HIDDEN.contains(&ch.path.as_str()))
        .map(|ch| json!({"Path": ch.path, "Kind": ch.kind.api_kind()}))
        .collect();
    ok_json(&out)
}

/// `GET /containers/{id}/export`: the whole filesystem as a tar.
pub async fn export(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let (tx, rx) = mpsc::channel(4);
    let (d2, c2) = (d.clone(), c.clone());
    tokio::spawn(async move {
        let res = with_rootfs(&d2, &c2, move |root| {
            let mut w = ChannelWriter::new(tx);
            if let Err(e) = berth_storage::layer::write_tree(&root, &mut w) {
                w.fail(std::io::Error::other(e.to_string()));
            }
            Ok(())
        })
        .await;
        if let Err(e) = res {
            tracing::warn!("export failed: {}", e.message);
        }
    });
    d.events.publish(
        "container",
        "export",
        &c.id,
        lifecycle::event_attrs(&c.snapshot()),
    );
    Ok(streaming(StatusCode::OK, "application/x-tar", rx))
}

fn stat_header(s: &berth_storage::pathcopy::PathStat) -> HeaderValue {
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::new(
            s.mtime.0.max(0) as u64,
            s.mtime.1.clamp(0, 999_999_999) as u32,
        );
    let v = json!({
        "name": s.name,
        "size": s.size,
        "mode": s.mode,
        "mtime": humantime::format_rfc3339_nanos(t).to_string(),
        "linkTarget": s.link_target,
    });
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(serde_json::to_vec(&v).expect("serializes"));
    HeaderValue::from_str(&b64).expect("base64 is ascii")
}

/// The stat of a mount point carries the container path's name.
fn named_for(
    mut s: berth_storage::pathcopy::PathStat,
    inner: &str,
    shown: &str,
) -> berth_storage::pathcopy::PathStat {
    if inner == "/" {
        s.name = base_name(shown);
    }
    s
}

fn base_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_string()
}

fn path_param(ctx: &Ctx) -> Result<String, ApiError> {
    match ctx.query.get("path") {
        Some(p) if !p.is_empty() => Ok(if p.starts_with('/') {
            p.to_string()
        } else {
            format!("/{p}")
        }),
        _ => Err(ApiError::bad_request(
            "path is required: give the path inside the container",
        )),
    }
}

/// `HEAD /containers/{id}/archive`: the stat of a path.
pub async fn archive_head(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let path = path_param(&ctx)?;
    let cname = c.snapshot().short_name().to_string();
    let shown = path.clone();
    let st = with_path(&d, &c, path, move |root, path| {
        berth_storage::pathcopy::stat(&root, &path)
            .map(|s| named_for(s, &path, &shown))
            .map_err(|e| not_in_container(e, &shown, &cname))
    })
    .await?;
    let mut r = Response::new(empty_body());
    r.headers_mut()
        .insert("X-Docker-Container-Path-Stat", stat_header(&st));
    Ok(r)
}

fn not_in_container(e: berth_storage::Error, path: &str, cname: &str) -> ApiError {
    match e {
        berth_storage::Error::NotFound(_) => ApiError::not_found(format!(
            "Could not find the file {path} in container {cname}"
        )),
        other => ApiError::internal(other.to_string()),
    }
}

/// `GET /containers/{id}/archive`: a tar of one path, with its stat in a header.
pub async fn archive_get(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let path = path_param(&ctx)?;
    let cname = c.snapshot().short_name().to_string();
    let (tx, rx) = mpsc::channel(4);
    let (stat_tx, stat_rx) = tokio::sync::oneshot::channel();
    let (d2, c2) = (d.clone(), c.clone());
    tokio::spawn(async move {
        let shown = path.clone();
        let _ = with_path(&d2, &c2, path, move |root, path| {
            let st = berth_storage::pathcopy::stat(&root, &path)
                .map(|s| named_for(s, &path, &shown))
                .map_err(|e| not_in_container(e, &shown, &cname));
            let ok = st.is_ok();
            let _ = stat_tx.send(st);
            if ok {
                let mut w = ChannelWriter::new(tx);
                // A mount point itself is named after it, not after its host directory.
                let as_name = (path == "/").then(|| base_name(&shown));
                if let Err(e) =
                    berth_storage::pathcopy::tar(&root, &path, as_name.as_deref(), &mut w)
                {
                    w.fail(std::io::Error::other(e.to_string()));
                }
            }
            Ok(())
        })
        .await;
    });
    let st = stat_rx
        .await
        .map_err(|_| ApiError::internal("copy failed"))??;
    let mut r = streaming(StatusCode::OK, "application/x-tar", rx);
    r.headers_mut()
        .insert("X-Docker-Container-Path-Stat", stat_header(&st));
    Ok(r)
}

/// `PUT /containers/{id}/archive`: extracts a tar into a directory of the container.
pub async fn archive_put(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let path = path_param(&ctx)?;
    if c.snapshot().host_config.readonly_rootfs.unwrap_or(false) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "container rootfs is marked read-only",
        ));
    }
    let cname = c.snapshot().short_name().to_string();
    let body = ctx.req.into_body();
    let shown = path.clone();
    with_path(&d, &c, path, move |root, path| {
        berth_storage::pathcopy::extract(&root, &path, body_reader(body)).map_err(|e| match e {
            berth_storage::Error::InvalidState { .. } => {
                ApiError::bad_request(format!("extraction point is not a directory: {shown}"))
            }
            other => not_in_container(other, &shown, &cname),
        })
    })
    .await?;
    let mut r = Response::new(empty_body());
    *r.status_mut() = StatusCode::OK;
    Ok(r)
}

/// The image config of a commit: the parent's, with the container's settings and the
/// request's overrides.
fn committed_config(
    parent: &ImageConfig,
    container: &ContainerConfig,
    overrides: Option<&ContainerConfig>,
) -> RunConfig {
    let mut run = parent.config.clone().unwrap_or_default();
    let pick = |o: Option<&ContainerConfig>| o.cloned().unwrap_or_default();
    let o = pick(overrides);
    let c = container;
    if let Some(v) = o.cmd.clone().or(c.cmd.clone()) {
        run.cmd = Some(v);
    }
    if let Some(v) = o.entrypoint.clone().or(c.entrypoint.clone()) {
        run.entrypoint = Some(v);
    }
    if let Some(v) = o.env.clone().or(c.env.clone()) {
        run.env = Some(v);
    }
    if let Some(v) = o
        .working_dir
        .clone()
        .or(c.working_dir.clone())
        .filter(|w| !w.is_empty())
    {
        run.working_dir = Some(v);
    }
    if let Some(v) = o.user.clone().or(c.user.clone()).filter(|u| !u.is_empty()) {
        run.user = Some(v);
    }
    let mut labels = run.labels.clone().unwrap_or_default();
    labels.extend(c.labels.clone().unwrap_or_default());
    labels.extend(o.labels.clone().unwrap_or_default());
    run.labels = if labels.is_empty() {
        None
    } else {
        Some(labels)
    };
    if let Some(p) = o.exposed_ports.clone().or(c.exposed_ports.clone()) {
        run.exposed_ports = Some(p.into_iter().map(|k| (k, json!({}))).collect());
    }
    if let Some(v) = o.volumes.clone().or(c.volumes.clone()) {
        run.volumes = Some(v.into_iter().map(|k| (k, json!({}))).collect());
    }
    if let Some(s) = o.stop_signal.clone().or(c.stop_signal.clone()) {
        run.stop_signal = Some(s);
    }
    run
}

/// `POST /commit`.
pub async fn commit(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let name = ctx.query.get("container").unwrap_or("").to_string();
    let c = d.containers.get(&name)?;
    let repo = ctx.query.get("repo").unwrap_or("").to_string();
    let tag = ctx.query.get("tag").unwrap_or("").to_string();
    let comment = ctx.query.get("comment").unwrap_or("").to_string();
    let author = ctx.query.get("author").unwrap_or("").to_string();
    let pause = ctx
        .query
        .get("pause")
        .is_none_or(|_| ctx.query.bool("pause"));
    let changes = ctx.query.all("changes");
    let tag_ref = if repo.is_empty() {
        None
    } else {
        let r = berth_image::Reference::parse_normalized(&repo)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Some(if tag.is_empty() {
            r.with_default_tag()
        } else {
            r.with_tag(&tag)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        })
    };
    let bytes = crate::http::body_bytes(ctx.req.into_body(), 4 << 20).await?;
    let overrides: Option<ContainerConfig> =
        if bytes.iter().all(|b| b.is_ascii_whitespace()) || &bytes[..] == b"null" {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("invalid config: {e}")))?,
            )
        };
    let paused_here = pause && c.status() == crate::containers::Status::Running;
    if paused_here {
        lifecycle::pause(&d, &c).await?;
    }
    let rec = c.snapshot();
    let d2 = d.clone();
    let result = tokio::task::spawn_blocking(move || -> Result<berth_image::Digest, ApiError> {
        let parent: berth_image::Digest = rec
            .image
            .parse()
            .map_err(|_| ApiError::internal("bad image id"))?;
        let parent_cfg = d2.images.config(&parent)?;
        let mut run = committed_config(&parent_cfg, &rec.config, overrides.as_ref());
        for ch in &changes {
            berth_image::import::apply_change(&mut run, ch)?;
        }
        let mut cmdline = vec![rec.path.clone()];
        cmdline.extend(rec.args.iter().cloned());
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        crate::containers::commit::create_image(
            &d2,
            crate::containers::commit::NewImageSpec {
                parent: Some(parent),
                layer_from: Some(rec.id.clone()),
                config: run,
                history: History {
                    created_by: Some(cmdline.join(" ")),
                    author: nonempty(author.clone()),
                    comment: nonempty(comment.clone()),
                    ..Default::default()
                },
                author: nonempty(author),
                comment: nonempty(comment),
                container: Some(rec.id.clone()),
                tags: tag_ref.into_iter().collect(),
            },
        )
    })
    .await?;
    if paused_here {
        let _ = lifecycle::unpause(&d, &c).await;
    }
    let id = result?;
    let mut attrs = lifecycle::event_attrs(&c.snapshot());
    attrs.insert("imageID".into(), id.to_string());
    d.events.publish("container", "commit", &c.id, attrs);
    Ok(crate::http::json(
        StatusCode::CREATED,
        &json!({"Id": id.to_string()}),
    ))
}
