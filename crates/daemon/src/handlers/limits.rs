//! `GET /containers/{id}/stats` and `POST /containers/{id}/update`: reading and changing a
//! container's resource use and limits.

use std::time::Duration;

use berth_api::engine::ContainerUpdateBody;
use bytes::Bytes;
use http::StatusCode;
use serde_json::json;
use tokio::sync::mpsc;

use crate::containers::{lifecycle, resources, stats};
use crate::http::{ApiError, ApiResult, body_bytes, ok_json, streaming};
use crate::server::Ctx;

/// docker's collection interval.
const INTERVAL: Duration = Duration::from_secs(1);

/// One document (`stream=false`: with `precpu_stats` from a reading a moment before, unless
/// `one-shot`), or one per second until the client goes away.
pub async fn stats(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let stream = ctx.query.get("stream").is_none() || ctx.query.bool("stream");
    let one_shot = ctx.query.bool("one-shot");
    if one_shot && stream {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(2);
    tokio::spawn(async move {
        let mut prev: Option<stats::Sample> = None;
        loop {
            let (d2, c2) = (d.clone(), c.clone());
            let Ok(cur) = tokio::task::spawn_blocking(move || stats::sample(&d2, &c2)).await else {
                return;
            };
            // A single document still gets a CPU baseline, so clients can compute a percentage.
            if !stream && !one_shot && prev.is_none() && c.status().is_running() {
                prev = Some(cur);
                tokio::time::sleep(INTERVAL / 2).await;
                continue;
            }
            let mut line =
                serde_json::to_vec(&stats::render(&c, &cur, prev.as_ref())).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Ok(Bytes::from(line))).await.is_err() || !stream {
                return;
            }
            prev = Some(cur);
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(streaming(StatusCode::OK, "application/json", rx))
}

/// Copies the settings the client gave (non-zero ones, as docker does) onto `hc`.
fn merge(hc: &mut berth_api::engine::HostConfig, u: ContainerUpdateBody) -> Result<(), ApiError> {
    fn set<T>(dst: &mut Option<T>, v: Option<T>, given: impl Fn(&T) -> bool) {
        if let Some(v) = v.filter(|v| given(v)) {
            *dst = Some(v);
        }
    }
    if let Some(m) = u.memory.filter(|m| *m != 0) {
        let cur_swap = hc.memory_swap.unwrap_or(0);
        if cur_swap > 0 && m > cur_swap && u.memory_swap.unwrap_or(0) == 0 {
            return Err(ApiError::conflict(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time",
            ));
        }
        hc.memory = Some(m);
    }
    set(&mut hc.memory_swap, u.memory_swap, |v| *v != 0);
    set(&mut hc.memory_reservation, u.memory_reservation, |v| {
        *v != 0
    });
    set(&mut hc.memory_swappiness, u.memory_swappiness, |v| *v != -1);
    set(&mut hc.oom_kill_disable, u.oom_kill_disable, |_| true);
    set(&mut hc.cpu_shares, u.cpu_shares, |v| *v != 0);
    set(&mut hc.cpu_period, u.cpu_period, |v| *v != 0);
    set(&mut hc.cpu_quota, u.cpu_quota, |v| *v != 0);
    set(&mut hc.nano_cpus, u.nano_cpus, |v| *v != 0);
    set(&mut hc.cpuset_cpus, u.cpuset_cpus, |v| !v.is_empty());
    set(&mut hc.cpuset_mems, u.cpuset_mems, |v| !v.is_empty());
    set(&mut hc.pids_limit, u.pids_limit, |v| *v != 0);
    set(&mut hc.blkio_weight, u.blkio_weight, |v| *v != 0);
    set(&mut hc.blkio_weight_device, u.blkio_weight_device, |v| {
        !v.is_empty()
    });
    set(
        &mut hc.blkio_device_read_bps,
        u.blkio_device_read_bps,
        |v| !v.is_empty(),
    );
    set(
        &mut hc.blkio_device_write_bps,
        u.blkio_device_write_bps,
        |v| !v.is_empty(),
    );
    set(
        &mut hc.blkio_device_read_iops,
        u.blkio_device_read_iops,
        |v| !v.is_empty(),
    );
    set(
        &mut hc.blkio_device_write_iops,
        u.blkio_device_write_iops,
        |v| !v.is_empty(),
    );
    if let Some(p) = u.restart_policy {
        if hc.auto_remove.unwrap_or(false) && p.name.is_some_and(|n| n.to_string() != "no") {
            return Err(ApiError::bad_request(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        hc.restart_policy = Some(p);
    }
    Ok(())
}

/// Changes the limits in the record and, when the container runs, in its cgroup.
pub async fn update(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let bytes = body_bytes(ctx.req.into_body(), 1 << 20).await?;
    let body: ContainerUpdateBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON for the update: {e}")))?;
    let cannot = |e: ApiError| {
        ApiError::new(
            e.status,
            format!("Cannot update container {}: {}", c.id, e.message),
        )
    };
    let _op = c.op.lock().await;
    let mut hc = c.snapshot().host_config;
    merge(&mut hc, body).map_err(cannot)?;
    lifecycle::check_restart_policy(&hc).map_err(cannot)?;
    let mut warnings = resources::validate(&mut hc).map_err(cannot)?;
    if c.status().is_running() {
        let oci = resources::to_oci(&hc).map_err(cannot)?;
        let cg = lifecycle::cgroup_of(&d, &c);
        let applied = tokio::task::spawn_blocking(move || {
            berth_runtime::cgroup::Cgroup::open(&cg).and_then(|g| g.set_resources(&oci))
        })
        .await?
        .map_err(|e| cannot(ApiError::internal(e.to_string())))?;
        warnings.extend(applied);
    }
    c.rec.lock().unwrap().host_config = hc;
    d.containers.save(&c)?;
    let attrs = lifecycle::event_attrs(&c.snapshot());
    d.events.publish("container", "update", &c.id, attrs);
    ok_json(&json!({"Warnings": warnings}))
}
