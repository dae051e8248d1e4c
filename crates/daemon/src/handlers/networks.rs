//! `/networks`: create, list, inspect, remove, prune, connect, disconnect.

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_api::engine::EndpointSettings;
use http::StatusCode;
use serde_json::{Value, json};

use crate::daemon::Daemon;
use crate::http::{ApiError, ApiResult, body_bytes, ok_json, parse_time_filter, status_only};
use crate::network::inspect::network_json;
use crate::network::{CreateRequest, IpamRequest, NetworkRecord, sandbox};
use crate::server::Ctx;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

async fn json_body(ctx: Ctx) -> Result<(Arc<Daemon>, Value), ApiError> {
    let d = ctx.daemon.clone();
    let bytes = body_bytes(ctx.req.into_body(), 1 << 20).await?;
    if bytes.is_empty() {
        return Ok((d, json!({})));
    }
    let v = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    Ok((d, v))
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn event(d: &Daemon, action: &str, r: &NetworkRecord, extra: &[(&str, String)]) {
    let mut attrs = BTreeMap::from([
        ("name".to_string(), r.name.clone()),
        ("type".to_string(), r.driver.clone()),
    ]);
    for (k, v) in extra {
        attrs.insert(k.to_string(), v.clone());
    }
    d.events.publish("network", action, &r.id, attrs);
}

/// `POST /networks/create`.
pub async fn create(ctx: Ctx) -> ApiResult {
    let (d, body) = json_body(ctx).await?;
    let s = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let b = |k: &str| body.get(k).and_then(Value::as_bool).unwrap_or(false);
    if b("EnableIPv6") {
        return Err(ApiError::bad_request(
            "berth does not support IPv6 networks yet (--ipv6)",
        ));
    }
    if b("Ingress") {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
        ));
    }
    let ipam = body.get("IPAM").cloned().unwrap_or(Value::Null);
    let configs: Vec<IpamRequest> = ipam
        .get("Config")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| {
                    let g = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    IpamRequest {
                        subnet: g("Subnet"),
                        ip_range: g("IPRange"),
                        gateway: g("Gateway"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let req = CreateRequest {
        name: s("Name"),
        driver: s("Driver"),
        internal: b("Internal"),
        attachable: b("Attachable"),
        labels: str_map(body.get("Labels").unwrap_or(&Value::Null)),
        options: str_map(body.get("Options").unwrap_or(&Value::Null)),
        ipam_driver: ipam
            .get("Driver")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        ipam_options: str_map(ipam.get("Options").unwrap_or(&Value::Null)),
        ipam: configs,
    };
    let d2 = d.clone();
    let rec = blocking(move || d2.networks.create(req)).await?;
    event(&d, "create", &rec, &[]);
    Ok(crate::http::json(
        StatusCode::CREATED,
        &json!({"Id": rec.id, "Warning": ""}),
    ))
}

/// `GET /networks/{id}`.
pub async fn inspect(ctx: Ctx, id: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let rec = d.networks.get(id)?;
    let eps = d
        .networks
        .list()
        .into_iter()
        .find(|(r, _)| r.id == rec.id)
        .map(|(_, e)| e)
        .unwrap_or_default();
    ok_json(&network_json(&d, &rec, Some(&eps)))
}

/// `GET /networks`.
pub async fn list(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let f = ctx.query.filters()?;
    f.only(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
    for t in f.get("type") {
        if t != "custom" && t != "builtin" {
            return Err(ApiError::bad_request(format!(
                "invalid filter: 'type'='{t}'"
            )));
        }
    }
    let dangling = f.bool("dangling")?;
    let mut out = Vec::new();
    for (r, eps) in d.networks.list() {
        let pass = |key: &str, test: &dyn Fn(&str) -> bool| {
            let v = f.get(key);
            v.is_empty() || v.iter().any(|x| test(x))
        };
        if !pass("driver", &|x| x == r.driver)
            || !pass("id", &|x| r.id.starts_with(x))
            || !pass("name", &|x| r.name.contains(x))
            || !pass("scope", &|x| x == "local")
            || !pass("type", &|x| (x == "builtin") == r.predefined)
            || !f.labels_match("label", &r.labels)
        {
            continue;
        }
        if let Some(want) = dangling {
            let unused = !r.predefined && eps.is_empty();
            if unused != want {
                continue;
            }
        }
        out.push(network_json(&d, &r, None));
    }
    ok_json(&out)
}

/// `DELETE /networks/{id}`.
pub async fn remove(ctx: Ctx, id: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let id = id.to_string();
    let d2 = d.clone();
    let rec = blocking(move || d2.networks.remove(&id)).await?;
    event(&d, "destroy", &rec, &[]);
    status_only(StatusCode::NO_CONTENT)
}

/// `POST /networks/prune`.
pub async fn prune(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let f = ctx.query.filters()?;
    f.only(&["until", "label", "label!"])?;
    let until = match f.get("until").first() {
        Some(u) => Some(parse_time_filter(u)? * 1_000_000_000),
        None => None,
    };
    let mut deleted = Vec::new();
    for (r, eps) in d.networks.list() {
        if r.predefined || !eps.is_empty() {
            continue;
        }
        if until.is_some_and(|u| berth_image::store::unix_nanos(Some(&r.created)) >= u) {
            continue;
        }
        if !f.labels_match("label", &r.labels) {
            continue;
        }
        if f.get("label!").iter().any(|l| match l.split_once('=') {
            Some((k, v)) => r.labels.get(k).is_some_and(|x| x == v),
            None => r.labels.contains_key(l.as_str()),
        }) {
            continue;
        }
        let d2 = d.clone();
        let id = r.id.clone();
        let res = blocking(move || d2.networks.remove(&id)).await;
        if let Ok(rec) = res {
            event(&d, "destroy", &rec, &[]);
            deleted.push(rec.name);
        }
    }
    ok_json(&json!({"NetworksDeleted": deleted}))
}

/// `POST /networks/{id}/connect`.
pub async fn connect(ctx: Ctx, id: &str) -> ApiResult {
    let id = id.to_string();
    let (d, body) = json_body(ctx).await?;
    let net = d.networks.get(&id)?;
    let cname = body.get("Container").and_then(Value::as_str).unwrap_or("");
    let c = d.containers.get(cname)?;
    let settings: EndpointSettings = match body.get("EndpointConfig") {
        None | Some(Value::Null) => EndpointSettings::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid endpoint settings: {e}")))?,
    };
    sandbox::connect(&d, &c, &net, settings).await?;
    event(&d, "connect", &net, &[("container", c.id.clone())]);
    status_only(StatusCode::OK)
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(ctx: Ctx, id: &str) -> ApiResult {
    let id = id.to_string();
    let (d, body) = json_body(ctx).await?;
    let net = d.networks.get(&id)?;
    let cname = body.get("Container").and_then(Value::as_str).unwrap_or("");
    let force = body.get("Force").and_then(Value::as_bool).unwrap_or(false);
    let c = d.containers.get(cname)?;
    sandbox::disconnect(&d, &c, &net, force).await?;
    event(&d, "disconnect", &net, &[("container", c.id.clone())]);
    status_only(StatusCode::OK)
}
