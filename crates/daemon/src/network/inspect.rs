//! docker's JSON for networks (`network inspect`/`ls`) and for a container's
//! NetworkSettings (`inspect`) and Ports (`ps`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::NetworkRecord;
use super::sandbox::{EndpointState, Mode, endpoints_config, mode_of};
use crate::containers::ContainerRecord;
use crate::daemon::Daemon;

/// `GET /networks/{id}`; `containers` adds the Containers map (names looked up by ID).
pub fn network_json(
    d: &Daemon,
    r: &NetworkRecord,
    eps: Option<&BTreeMap<String, EndpointState>>,
) -> Value {
    let config: Vec<Value> = r
        .config
        .iter()
        .map(|c| {
            let mut m = json!({"Subnet": c.subnet.to_string(), "Gateway": c.gateway.to_string()});
            if let Some(rg) = c.ip_range {
                m["IPRange"] = json!(rg.to_string());
            }
            m
        })
        .collect();
    let mut containers = serde_json::Map::new();
    if let Some(eps) = eps {
        for (cid, ep) in eps {
            let name = d
                .containers
                .get(cid)
                .map(|c| c.snapshot().short_name().to_string())
                .unwrap_or_default();
            containers.insert(
                cid.clone(),
                json!({
                    "Name": name,
                    "EndpointID": ep.endpoint_id,
                    "MacAddress": ep.mac,
                    "IPv4Address": ep.ip.to_string(),
                    "IPv6Address": "",
                }),
            );
        }
    }
    json!({
        "Name": r.name,
        "Id": r.id,
        "Created": r.created,
        "Scope": "local",
        "Driver": r.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": if r.ipam_driver.is_empty() { "default" } else { r.ipam_driver.as_str() },
            "Options": if r.ipam_options.is_empty() { Value::Null } else { json!(r.ipam_options) },
            "Config": config,
        },
        "Internal": r.internal,
        "Attachable": r.attachable,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": r.options,
        "Labels": r.labels,
    })
}

fn endpoint_json(
    d: &Daemon,
    rec: &ContainerRecord,
    name: &str,
    ep_live: Option<&EndpointState>,
    settings: Option<&berth_api::engine::EndpointSettings>,
) -> Value {
    let s = settings.cloned().unwrap_or_default();
    let net_id = ep_live
        .map(|e| e.network_id.clone())
        .or(s.network_id.clone())
        .or_else(|| d.networks.get(name).ok().map(|n| n.id))
        .unwrap_or_default();
    let mut dns_names = Vec::new();
    if let Some(e) = ep_live {
        let user = d
            .networks
            .get(&e.network_id)
            .is_ok_and(|n| n.user_defined());
        if user {
            dns_names.push(rec.short_name().to_string());
            dns_names.extend(e.aliases.iter().cloned());
            dns_names.push(rec.id[..12].to_string());
        }
    }
    json!({
        "IPAMConfig": s.ipam_config.as_ref().map(|c| json!({"IPv4Address": c.ipv4_address.clone().unwrap_or_default()})),
        "Links": s.links,
        "Aliases": s.aliases,
        "MacAddress": ep_live.map(|e| e.mac.clone()).or(s.mac_address.clone()).unwrap_or_default(),
        "DriverOpts": s.driver_opts,
        "GwPriority": s.gw_priority.unwrap_or(0),
        "NetworkID": net_id,
        "EndpointID": ep_live.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": ep_live.and_then(|e| e.gateway).map(|g| g.to_string()).unwrap_or_default(),
        "IPAddress": ep_live.map(|e| e.ip.addr.to_string()).unwrap_or_default(),
        "IPPrefixLen": ep_live.map(|e| e.ip.prefix).unwrap_or(0),
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": if dns_names.is_empty() { Value::Null } else { json!(dns_names) },
    })
}

/// The Ports map: published bindings while running, exposed ports (null) otherwise.
pub fn ports_json(rec: &ContainerRecord) -> Value {
    let mut m = serde_json::Map::new();
    for p in rec.config.exposed_ports.clone().unwrap_or_default() {
        let key = if p.contains('/') {
            p
        } else {
            format!("{p}/tcp")
        };
        m.insert(key, Value::Null);
    }
    if rec.state.status.is_running()
        && let Some(sb) = &rec.network
    {
        for p in &sb.ports {
            let key = format!("{}/{}", p.container_port, p.proto.as_str());
            let e = m.entry(key).or_insert(Value::Null);
            if !e.is_array() {
                *e = json!([]);
            }
            e.as_array_mut().unwrap().push(json!({
                "HostIp": p.host_ip.to_string(),
                "HostPort": p.host_port.to_string(),
            }));
        }
    }
    Value::Object(m)
}

/// `NetworkSettings` of `inspect`.
pub fn network_settings(d: &Daemon, rec: &ContainerRecord) -> Value {
    let running = rec.state.status.is_running();
    let sb = rec.network.clone().filter(|_| running).unwrap_or_default();
    let mut networks = serde_json::Map::new();
    let mode = mode_of(rec);
    match &mode {
        Mode::Host | Mode::None => {
            let name = if mode == Mode::Host { "host" } else { "none" };
            networks.insert(name.into(), endpoint_json(d, rec, name, None, None));
        }
        Mode::Container(_) => {}
        Mode::Bridge(nets) => {
            let cfg = endpoints_config(rec);
            for n in nets {
                let live = sb.endpoints.iter().find(|e| &e.network == n);
                networks.insert(n.clone(), endpoint_json(d, rec, n, live, cfg.get(n)));
            }
            for e in &sb.endpoints {
                if !networks.contains_key(&e.network) {
                    networks.insert(
                        e.network.clone(),
                        endpoint_json(d, rec, &e.network, Some(e), None),
                    );
                }
            }
        }
    }
    // The deprecated top-level fields describe the default bridge endpoint.
    let default = sb.endpoints.iter().find(|e| {
        d.networks
            .get(&e.network_id)
            .is_ok_and(|n| n.default_bridge)
    });
    let key = if sb.owned {
        sb.key.clone()
    } else {
        String::new()
    };
    json!({
        "Bridge": "",
        "SandboxID": sb.id,
        "SandboxKey": key,
        "Ports": ports_json(rec),
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": default.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
        "Gateway": default.and_then(|e| e.gateway).map(|g| g.to_string()).unwrap_or_default(),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": default.map(|e| e.ip.addr.to_string()).unwrap_or_default(),
        "IPPrefixLen": default.map(|e| e.ip.prefix).unwrap_or(0),
        "IPv6Gateway": "",
        "MacAddress": default.map(|e| e.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    })
}

/// `Ports` of `ps` (docker's PortSummary list).
pub fn port_summary(rec: &ContainerRecord) -> Value {
    let mut out = Vec::new();
    let mut published = std::collections::HashSet::new();
    if rec.state.status.is_running()
        && let Some(sb) = &rec.network
    {
        for p in &sb.ports {
            published.insert((p.container_port, p.proto.as_str()));
            out.push(json!({
                "IP": p.host_ip.to_string(),
                "PrivatePort": p.container_port,
                "PublicPort": p.host_port,
                "Type": p.proto.as_str(),
            }));
        }
    }
    for e in rec.config.exposed_ports.clone().unwrap_or_default() {
        let (port, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        if !published.contains(&(port, proto)) {
            out.push(json!({"PrivatePort": port, "Type": proto}));
        }
    }
    Value::Array(out)
}

/// `NetworkSettings.Networks` of `ps`.
pub fn summary_networks(d: &Daemon, rec: &ContainerRecord) -> Value {
    network_settings(d, rec)["Networks"].clone()
}
