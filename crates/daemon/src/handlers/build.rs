//! `POST /build` (the classic builder's API: a context tar in, a JSON stream out) and
//! `POST /build/prune`.

use std::collections::BTreeMap;

use berth_image::Reference;
use http::StatusCode;
use serde_json::json;
use tokio::sync::mpsc;

use crate::build;
use crate::http::{ApiError, ApiResult, body_reader, ok_json, streaming};
use crate::server::Ctx;

fn json_param<T: serde::de::DeserializeOwned + Default>(
    ctx: &Ctx,
    name: &str,
) -> Result<T, ApiError> {
    match ctx.query.get(name).filter(|v| !v.is_empty()) {
        None => Ok(T::default()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid {name} parameter: {e}"))),
    }
}

pub async fn build(ctx: Ctx) -> ApiResult {
    let q = &ctx.query;
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "remote build contexts are not supported: send the context as the request body",
        ));
    }
    let mut tags = Vec::new();
    for t in q.all("t") {
        let r = Reference::parse_normalized(&t)
            .map_err(|_| ApiError::bad_request(format!("invalid reference format: {t}")))?;
        if r.digest().is_some() {
            return Err(ApiError::bad_request(format!(
                "invalid reference format: {t}: a build tag cannot have a digest"
            )));
        }
        tags.push(r.with_default_tag());
    }
    let build_args: BTreeMap<String, Option<String>> = json_param(&ctx, "buildargs")?;
    let labels: BTreeMap<String, String> = json_param(&ctx, "labels")?;
    let opts = build::Options {
        tags,
        build_args,
        labels,
        no_cache: q.bool("nocache"),
        force_remove: q.bool("forcerm"),
        target: q
            .get("target")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        quiet: q.bool("q"),
        network_mode: q
            .get("networkmode")
            .filter(|n| !n.is_empty())
            .unwrap_or("default")
            .to_string(),
    };
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let host = berth_image::config::host_platform();
        let want = p.trim_start_matches("linux/");
        if !p.starts_with("linux") || (want != "linux" && !want.starts_with(&host.architecture)) {
            return Err(ApiError::bad_request(format!(
                "berth builds for {}/{} only, not {p}",
                host.os, host.architecture
            )));
        }
    }
    let dockerfile = q.get("dockerfile").unwrap_or("Dockerfile").to_string();
    let d = ctx.daemon.clone();
    let body = ctx.req.into_body();
    let d2 = d.clone();
    let prepared =
        tokio::task::spawn_blocking(move || build::prepare(&d2, body_reader(body), &dockerfile))
            .await??;
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(build::run(d, prepared, opts, tx));
    Ok(streaming(StatusCode::OK, "application/json", rx))
}

pub async fn prune(ctx: Ctx) -> ApiResult {
    let all = ctx.query.bool("all");
    let d = ctx.daemon.clone();
    let (ids, reclaimed) =
        tokio::task::spawn_blocking(move || build::cache::prune(&d, all)).await??;
    ok_json(&json!({"CachesDeleted": ids, "SpaceReclaimed": reclaimed}))
}
