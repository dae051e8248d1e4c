//! `/volumes`: create, list, inspect, remove, prune (the local driver).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_volume::store::VolumeRecord;
use http::StatusCode;
use serde_json::{Value, json};

use crate::containers::mounts::{users_of, volume_error};
use crate::daemon::Daemon;
use crate::http::{ApiError, ApiResult, body_bytes, ok_json, status_only};
use crate::server::Ctx;

/// docker's Volume JSON; `usage` adds UsageData (`system df -v`).
pub fn volume_json(d: &Daemon, v: &VolumeRecord, usage: bool) -> Value {
    let mut j = json!({
        "CreatedAt": v.created_at,
        "Driver": "local",
        "Labels": v.labels,
        "Mountpoint": d.volumes.data_path(&v.name).display().to_string(),
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    });
    if usage {
        j["UsageData"] =
            json!({"Size": d.volumes.usage(&v.name), "RefCount": users_of(d, &v.name).len()});
    }
    j
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

pub async fn create(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let bytes = body_bytes(ctx.req.into_body(), 1 << 20).await?;
    let body: Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid volume config: {e}")))?
    };
    let name = body
        .get("Name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_string);
    let driver = body
        .get("Driver")
        .and_then(Value::as_str)
        .unwrap_or("local");
    if !driver.is_empty() && driver != "local" {
        return Err(ApiError::not_found(format!(
            "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        )));
    }
    let map = |k: &str| -> BTreeMap<String, String> {
        body.get(k)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (labels, opts) = (map("Labels"), map("DriverOpts"));
    let v = blocking(move || {
        let name = name.unwrap_or_else(crate::containers::new_id);
        let v = d
            .volumes
            .create(&name, labels, opts)
            .map_err(volume_error)?;
        Ok(volume_json(&d, &v, false))
    })
    .await?;
    ctx.daemon.events.publish(
        "volume",
        "create",
        v["Name"].as_str().unwrap_or(""),
        BTreeMap::from([("driver".to_string(), "local".to_string())]),
    );
    Ok(crate::http::json(StatusCode::CREATED, &v))
}

pub async fn inspect(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let name = name.to_string();
    let v = blocking(move || {
        Ok(volume_json(
            &d,
            &d.volumes.get(&name).map_err(volume_error)?,
            false,
        ))
    })
    .await?;
    ok_json(&v)
}

fn matches_labels(f: &crate::http::Filters, key: &str, labels: &BTreeMap<String, String>) -> bool {
    f.labels_match(key, labels)
}

pub async fn list(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let f = ctx.query.filters()?;
    f.only(&["dangling", "name", "label", "driver"])?;
    let dangling = f.bool("dangling")?;
    let out = blocking(move || {
        let mut vols = Vec::new();
        for v in d.volumes.list().map_err(volume_error)? {
            if dangling.is_some_and(|want| users_of(&d, &v.name).is_empty() != want) {
                continue;
            }
            if !f.get("name").is_empty()
                && !f.get("name").iter().any(|n| v.name.contains(n.as_str()))
            {
                continue;
            }
            if !f.get("driver").is_empty() && !f.get("driver").iter().any(|x| x == "local") {
                continue;
            }
            if !matches_labels(&f, "label", &v.labels) {
                continue;
            }
            vols.push(volume_json(&d, &v, false));
        }
        Ok(vols)
    })
    .await?;
    ok_json(&json!({"Volumes": out, "Warnings": null}))
}

pub async fn remove(ctx: Ctx, name: &str) -> ApiResult {
    let d: Arc<Daemon> = ctx.daemon.clone();
    let force = ctx.query.bool("force");
    let name = name.to_string();
    let d2 = d.clone();
    let n2 = name.clone();
    blocking(move || {
        if d2.volumes.get(&n2).is_err() && force {
            return Ok(());
        }
        d2.volumes.get(&n2).map_err(volume_error)?;
        let users = users_of(&d2, &n2);
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "remove {n2}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        d2.volumes.remove(&n2).map_err(volume_error)
    })
    .await?;
    d.events.publish(
        "volume",
        "destroy",
        &name,
        BTreeMap::from([("driver".to_string(), "local".to_string())]),
    );
    status_only(StatusCode::NO_CONTENT)
}

/// `POST /volumes/prune`: unused anonymous volumes (all unused ones with `all=true`), as docker 23+.
pub async fn prune(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let f = ctx.query.filters()?;
    f.only(&["label", "label!", "all"])?;
    let all = f.bool("all")?.unwrap_or(false);
    let (deleted, reclaimed) = blocking(move || {
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for v in d.volumes.list().map_err(volume_error)? {
            if !all && !v.anonymous() {
                continue;
            }
            if !users_of(&d, &v.name).is_empty() || !matches_labels(&f, "label", &v.labels) {
                continue;
            }
            if f.get("label!").iter().any(|l| match l.split_once('=') {
                Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
                None => v.labels.contains_key(l.as_str()),
            }) {
                continue;
            }
            let size = d.volumes.usage(&v.name);
            if d.volumes.remove(&v.name).is_ok() {
                reclaimed += size;
                deleted.push(v.name);
            }
        }
        Ok((deleted, reclaimed))
    })
    .await?;
    ok_json(
        &json!({"VolumesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed}),
    )
}
