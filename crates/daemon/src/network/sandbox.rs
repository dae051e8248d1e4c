//! A container's network sandbox: its network namespace, one veth endpoint per network,
//! the embedded DNS server (user-defined networks), published ports, and the /etc files.
//!
//! Start: berthd creates the namespace (pinned at `<exec-root>/netns/<id>`), the veth pairs
//! (the container's end made directly inside the namespace as eth0, eth1…), addresses and
//! the default route, binds the DNS sockets inside it and the proxy listeners outside; the
//! spec then names the namespace by path and the runtime joins it. Exit: the proxies and DNS
//! sockets close and the namespace is unpinned (the kernel removes its veth pairs).

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use berth_api::engine::{ContainerCreateBody, EndpointSettings, NetworkingConfig};
use berth_network::files::{self, ResolvConf};
use berth_network::ipam::{format_mac, mac_for, parse_mac};
use berth_network::netlink::Netlink;
use berth_network::nft::Proto;
use berth_network::{Ipv4Net, dns, netns, proxy};
use serde::{Deserialize, Serialize};

use super::{Live, Net, OPT_HOST_BINDING, OPT_MTU, forbidden, not_found, parse_ip};
use crate::containers::{Container, ContainerRecord, new_id};
use crate::daemon::Daemon;
use crate::http::ApiError;

/// What a running container's networking is (kept in its record).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxState {
    pub id: String,
    /// The namespace the container joins (`""`: host or a fresh one from the runtime).
    pub key: String,
    /// berth pinned the namespace at `key` (and removes it at exit).
    pub owned: bool,
    pub endpoints: Vec<EndpointState>,
    pub ports: Vec<PortMap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointState {
    pub network_id: String,
    pub network: String,
    pub endpoint_id: String,
    /// Inside the container: eth0, eth1…
    pub ifname: String,
    /// The host end of the veth pair.
    pub veth: String,
    pub ip: Ipv4Net,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `target:alias` (user-defined networks: names only this container resolves).
    #[serde(default)]
    pub links: Vec<String>,
    #[serde(default)]
    pub static_ip: bool,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMap {
    pub proto: Proto,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub dest: Ipv4Addr,
    pub bridge: String,
}

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Host,
    None,
    Container(String),
    /// Networks by name, the primary (eth0) first.
    Bridge(Vec<String>),
}

fn mode_name(rec: &ContainerRecord) -> String {
    match rec.host_config.network_mode.as_deref() {
        None | Some("") | Some("default") => "bridge".into(),
        Some(m) => m.to_string(),
    }
}

/// The endpoints the container is configured with (network name → settings).
pub fn endpoints_config(rec: &ContainerRecord) -> BTreeMap<String, EndpointSettings> {
    rec.networking
        .as_ref()
        .and_then(|v| serde_json::from_value::<NetworkingConfig>(v.clone()).ok())
        .and_then(|n| n.endpoints_config)
        .map(|m| m.into_iter().collect())
        .unwrap_or_default()
}

pub fn set_endpoints_config(rec: &mut ContainerRecord, eps: &BTreeMap<String, EndpointSettings>) {
    let cfg = NetworkingConfig {
        endpoints_config: Some(eps.clone().into_iter().collect()),
    };
    rec.networking = serde_json::to_value(cfg).ok();
}

pub fn mode_of(rec: &ContainerRecord) -> Mode {
    let m = mode_name(rec);
    match m.as_str() {
        "host" => Mode::Host,
        "none" => Mode::None,
        _ => {
            if let Some(c) = m.strip_prefix("container:") {
                return Mode::Container(c.to_string());
            }
            let mut nets = vec![m.clone()];
            for k in endpoints_config(rec).keys() {
                if *k != m {
                    nets.push(k.clone());
                }
            }
            Mode::Bridge(nets)
        }
    }
}

fn conflict(what: &str) -> ApiError {
    ApiError::bad_request(format!("conflicting options: {what}"))
}

/// At create: checks the network settings as docker does and settles them: NetworkMode
/// `default` becomes `bridge`, the mode's network joins EndpointsConfig, names resolve.
pub fn check_create(d: &Daemon, body: &mut ContainerCreateBody) -> Result<(), ApiError> {
    let hc = body.host_config.get_or_insert_with(Default::default);
    let default_net = if d.networks.default_bridge().is_some() {
        "bridge"
    } else {
        "none"
    };
    let mode = match hc.network_mode.as_deref() {
        None | Some("") | Some("default") => default_net.to_string(),
        Some(m) => m.to_string(),
    };
    let has_ports = hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
        || hc.publish_all_ports.unwrap_or(false);
    let links = hc.links.clone().unwrap_or_default();
    if let Some(target) = mode.strip_prefix("container:") {
        // 400, not 404: the docker CLI answers a 404 on create by pulling the image.
        let t = d
            .containers
            .get(target)
            .map_err(|e| ApiError::bad_request(e.message))?;
        if body.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
            return Err(conflict("hostname and the network mode"));
        }
        if hc.dns.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(conflict("dns and the network mode"));
        }
        if hc.extra_hosts.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(conflict("custom host-to-IP mapping and the network mode"));
        }
        if has_ports || body.exposed_ports.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err(conflict(
                "port publishing and the container type network mode",
            ));
        }
        if !links.is_empty() {
            return Err(conflict(
                "container type network can't be used with links. This would result in undefined behavior",
            ));
        }
        body.hostname = t.snapshot().config.hostname.clone();
        hc.network_mode = Some(mode);
        body.networking_config = None;
        return Ok(());
    }
    if mode == "host" && !links.is_empty() {
        return Err(conflict(
            "host type networking can't be used with links. This would result in undefined behavior",
        ));
    }
    let mut eps: BTreeMap<String, EndpointSettings> = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.clone())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    if let Some(e) = eps.remove("default") {
        eps.insert(default_net.to_string(), e);
    }
    if mode == "host" || mode == "none" {
        hc.network_mode = Some(mode.clone());
        body.networking_config = None;
        return Ok(());
    }
    // The mode names a bridge network (by name, ID or prefix): settle on its name. One that
    // does not exist fails the start, not the create (docker's order: the CLI would take a
    // 404 here for a missing image and pull).
    let Ok(primary) = d.networks.get(&mode) else {
        hc.network_mode = Some(mode);
        return Ok(());
    };
    if primary.driver != "bridge" {
        hc.network_mode = Some(primary.name.clone());
        body.networking_config = None;
        return Ok(());
    }
    let mut settled: BTreeMap<String, EndpointSettings> = BTreeMap::new();
    if let Some(e) = eps.remove(&mode) {
        settled.insert(primary.name.clone(), e);
    } else {
        settled.insert(primary.name.clone(), EndpointSettings::default());
    }
    for (k, v) in eps {
        let n = d.networks.get(&k)?;
        if n.driver != "bridge" {
            return Err(ApiError::bad_request(format!(
                "container cannot be connected to network {k} of driver {}",
                n.driver
            )));
        }
        settled.insert(n.name.clone(), v);
    }
    for (name, ep) in settled.iter_mut() {
        let n = d.networks.get(name)?;
        validate_endpoint(&n, ep)?;
        ep.network_id = Some(n.id.clone());
    }
    if let Some(mac) = body_mac(body) {
        if parse_mac(&mac).is_none() {
            return Err(ApiError::bad_request(format!("invalid MAC address: {mac}")));
        }
        if let Some(ep) = settled.get_mut(&primary.name) {
            ep.mac_address.get_or_insert(mac);
        }
    }
    for l in &links {
        let target = l.split(':').next().unwrap_or("").trim_start_matches('/');
        d.containers
            .get(target)
            .map_err(|_| ApiError::bad_request(format!("could not get container for {target}")))?;
    }
    let hc = body.host_config.get_or_insert_with(Default::default);
    hc.network_mode = Some(primary.name.clone());
    body.networking_config = Some(NetworkingConfig {
        endpoints_config: Some(settled.into_iter().collect()),
    });
    Ok(())
}

#[allow(deprecated)]
fn body_mac(body: &ContainerCreateBody) -> Option<String> {
    serde_json::to_value(body)
        .ok()?
        .get("MacAddress")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// docker's checks of one endpoint's settings against its network.
fn validate_endpoint(n: &super::NetworkRecord, ep: &EndpointSettings) -> Result<(), ApiError> {
    let ip = ep
        .ipam_config
        .as_ref()
        .and_then(|c| c.ipv4_address.clone())
        .filter(|s| !s.is_empty());
    if let Some(ip) = ip {
        if !n.user_defined() {
            return Err(ApiError::bad_request(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        if !n.user_subnets {
            return Err(ApiError::bad_request(
                "user specified IP address is supported only when connecting to networks with user configured subnets",
            ));
        }
        let addr = parse_ip(&ip)
            .ok_or_else(|| ApiError::bad_request(format!("invalid IPv4 address: {ip}")))?;
        if !n.config.iter().any(|c| c.subnet.contains(addr)) {
            return Err(ApiError::bad_request(format!(
                "invalid endpoint settings:\nno configured subnet or ip-range contain the IP address {ip}"
            )));
        }
    }
    if ep.aliases.as_ref().is_some_and(|a| !a.is_empty()) && !n.user_defined() {
        return Err(ApiError::bad_request(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    if let Some(mac) = ep.mac_address.as_deref().filter(|m| !m.is_empty())
        && parse_mac(mac).is_none()
    {
        return Err(ApiError::bad_request(format!("invalid MAC address: {mac}")));
    }
    Ok(())
}

/// The namespace path berth pins for a container.
fn netns_path(d: &Daemon, id: &str) -> PathBuf {
    d.networks.netns_dir.join(&id[..16.min(id.len())])
}

/// Where the container joins `target`'s network stack.
fn joined_key(d: &Daemon, target: &str) -> Result<(String, String), ApiError> {
    let t = d.containers.get(target)?;
    let r = t.snapshot();
    if !r.state.status.is_running() {
        return Err(ApiError::conflict(format!(
            "cannot join network namespace of a non running container: {}",
            t.id
        )));
    }
    match &r.network {
        Some(sb) if !sb.key.is_empty() => Ok((sb.key.clone(), t.id.clone())),
        _ if r.host_config.network_mode.as_deref() == Some("host") => Err(ApiError::bad_request(
            "cannot join the network of a container that uses the host's network",
        )),
        _ => Ok((format!("/proc/{}/ns/net", r.state.pid), t.id.clone())),
    }
}

/// An allocation made for one endpoint, before anything is plumbed.
struct Planned {
    ep: EndpointState,
    bridge: String,
    mtu: Option<u32>,
    internal: bool,
    user_defined: bool,
}

/// Reserves addresses on `nets` for container `id` (released again on error).
fn plan_endpoints(
    d: &Daemon,
    nets: &[String],
    cfg: &BTreeMap<String, EndpointSettings>,
    first_if: usize,
) -> Result<Vec<Planned>, ApiError> {
    let mut inner = d.networks.inner.lock().unwrap();
    let mut out: Vec<Planned> = Vec::new();
    let mut fail = None;
    for (i, name) in nets.iter().enumerate() {
        let Ok(n) = inner.find(name) else {
            fail = Some(not_found(name));
            break;
        };
        let net_id = n.rec.id.clone();
        let settings = cfg.get(name).cloned().unwrap_or_default();
        if let Err(e) = validate_endpoint(&n.rec, &settings) {
            fail = Some(e);
            break;
        }
        let want = settings
            .ipam_config
            .as_ref()
            .and_then(|c| c.ipv4_address.as_deref())
            .and_then(parse_ip);
        let n = inner.by_id_mut(&net_id).expect("found above");
        let mut got = None;
        let mut last_err = None;
        for (k, a) in n.alloc.iter_mut().enumerate() {
            if want.is_some_and(|w| !a.subnet.contains(w)) {
                continue;
            }
            match a.request(want) {
                Ok(ip) => {
                    got = Some((k, ip));
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some((k, ip)) = got else {
            let e = last_err.map(|e| e.to_string()).unwrap_or_else(|| {
                "no configured subnet or ip-range contain the IP address".into()
            });
            fail = Some(ApiError::internal(format!(
                "failed to set up container networking: {e}"
            )));
            break;
        };
        let conf = &n.rec.config[k];
        let mac = settings
            .mac_address
            .as_deref()
            .and_then(parse_mac)
            .unwrap_or_else(|| mac_for(ip));
        out.push(Planned {
            ep: EndpointState {
                network_id: net_id,
                network: n.rec.name.clone(),
                endpoint_id: new_id(),
                ifname: format!("eth{}", first_if + i),
                veth: format!("veth{}", &new_id()[..7]),
                ip: Ipv4Net {
                    addr: ip,
                    prefix: conf.subnet.prefix,
                },
                gateway: (!n.rec.internal).then_some(conf.gateway),
                mac: format_mac(&mac),
                aliases: settings.aliases.clone().unwrap_or_default(),
                links: settings.links.clone().unwrap_or_default(),
                static_ip: want.is_some(),
            },
            bridge: n.rec.bridge.clone(),
            mtu: n
                .rec
                .options
                .get(OPT_MTU)
                .and_then(|m| m.parse().ok())
                .filter(|m| *m != 1500),
            internal: n.rec.internal,
            user_defined: n.rec.user_defined(),
        });
    }
    if let Some(e) = fail {
        release_addresses(&mut inner.nets, out.iter().map(|p| &p.ep));
        return Err(e);
    }
    Ok(out)
}

fn release_addresses<'a>(nets: &mut [Net], eps: impl Iterator<Item = &'a EndpointState>) {
    for ep in eps {
        if let Some(n) = nets.iter_mut().find(|n| n.rec.id == ep.network_id) {
            for a in n.alloc.iter_mut() {
                if a.subnet.contains(ep.ip.addr) {
                    a.release(ep.ip.addr);
                }
            }
        }
    }
}

/// `80/tcp` → (80, tcp).
fn parse_port_key(k: &str) -> Option<(u16, Proto)> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let proto = match proto {
        "tcp" | "" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    Some((p.parse().ok().filter(|p| *p > 0)?, proto))
}

fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .filter(|(a, b)| a <= b)
        .unwrap_or((32768, 60999))
}

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

fn bind(proto: Proto, ip: Ipv4Addr, port: u16) -> std::io::Result<Bound> {
    let a = SocketAddr::from((ip, port));
    Ok(match proto {
        Proto::Tcp => Bound::Tcp(proxy::bind_tcp(a)?),
        Proto::Udp => Bound::Udp(proxy::bind_udp(a)?),
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => "address already in use".into(),
        Some(libc::EADDRNOTAVAIL) => "cannot assign requested address".into(),
        Some(libc::EACCES) => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Settles the container's published ports (`-p`, `-P`): host ports from the bindings or the
/// ephemeral range, checked against berth's own bindings and (with the userland proxy)
/// bound on the host. Returns the mappings and the bound sockets.
fn plan_ports(
    d: &Daemon,
    rec: &ContainerRecord,
    primary: &Planned,
    ep_name: &str,
) -> Result<(Vec<PortMap>, Vec<Bound>), ApiError> {
    let hc = &rec.host_config;
    let mut wanted: Vec<(u16, Proto, Option<String>, Option<String>)> = Vec::new();
    let mut bound_keys = HashSet::new();
    let mut keys: Vec<(&String, &Option<Vec<berth_api::engine::PortBinding>>)> = hc
        .port_bindings
        .as_ref()
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    keys.sort_by_key(|(k, _)| parse_port_key(k));
    for (k, bindings) in keys {
        let Some((port, proto)) = parse_port_key(k) else {
            return Err(ApiError::bad_request(format!(
                "invalid port specification: {k:?}"
            )));
        };
        bound_keys.insert((port, proto));
        let list = bindings.clone().unwrap_or_default();
        if list.is_empty() {
            wanted.push((port, proto, None, None));
        }
        for b in list {
            wanted.push((port, proto, b.host_ip.clone(), b.host_port.clone()));
        }
    }
    if hc.publish_all_ports.unwrap_or(false) {
        let mut exposed: Vec<(u16, Proto)> = rec
            .config
            .exposed_ports
            .clone()
            .unwrap_or_default()
            .iter()
            .filter_map(|k| parse_port_key(k))
            .collect();
        exposed.sort();
        for (port, proto) in exposed {
            if !bound_keys.contains(&(port, proto)) {
                wanted.push((port, proto, None, None));
            }
        }
    }
    if wanted.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let default_ip = {
        let inner = d.networks.inner.lock().unwrap();
        inner
            .by_id(&primary.ep.network_id)
            .and_then(|n| n.rec.options.get(OPT_HOST_BINDING).cloned())
            .and_then(|s| parse_ip(&s))
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    };
    let (lo, hi) = ephemeral_range();
    let mut inner = d.networks.inner.lock().unwrap();
    let mut maps: Vec<PortMap> = Vec::new();
    let mut socks = Vec::new();
    let taken = |maps: &[PortMap], inner: &super::Inner, proto: Proto, ip: Ipv4Addr, port: u16| {
        let clash = |m: &PortMap| {
            m.proto == proto
                && m.host_port == port
                && (m.host_ip == ip || m.host_ip.is_unspecified() || ip.is_unspecified())
        };
        maps.iter().any(clash) || inner.ports.values().flatten().any(clash)
    };
    for (port, proto, host_ip, host_port) in wanted {
        let ip = match host_ip.as_deref().filter(|s| !s.is_empty()) {
            None => default_ip,
            Some(s) if s.contains(':') => continue, // IPv6 bindings: not served (IPv4 only)
            Some(s) => parse_ip(s).ok_or_else(|| {
                ApiError::bad_request(format!("invalid IP address in port binding: {s}"))
            })?,
        };
        let range: Option<(u16, u16)> = match host_port.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let (a, b) = s.split_once('-').unwrap_or((s, s));
                let a: u16 = a
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid host port: {s}")))?;
                let b: u16 = b
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid host port: {s}")))?;
                Some((a, b.max(a)))
            }
        };
        let mut chosen = None;
        let mut last_err: Option<String> = None;
        let candidates: Box<dyn Iterator<Item = u16>> = match range {
            Some((a, b)) => Box::new(a..=b),
            None => {
                let span = (hi - lo) as u32 + 1;
                let start = if (lo..=hi).contains(&inner.next_ephemeral) {
                    inner.next_ephemeral
                } else {
                    lo
                };
                Box::new((0..span).map(move |i| lo + (((start - lo) as u32 + i) % span) as u16))
            }
        };
        for p in candidates {
            if taken(&maps, &inner, proto, ip, p) {
                last_err = Some(format!(
                    "Bind for {ip}:{p} failed: port is already allocated"
                ));
                continue;
            }
            if d.networks.cfg.userland_proxy {
                match bind(proto, ip, p) {
                    Ok(s) => socks.push(s),
                    Err(e) => {
                        last_err = Some(format!(
                            "Error starting userland proxy: listen {}4 {ip}:{p}: bind: {}",
                            proto.as_str(),
                            io_reason(&e)
                        ));
                        continue;
                    }
                }
            }
            chosen = Some(p);
            break;
        }
        let Some(p) = chosen else {
            return Err(ApiError::internal(format!(
                "failed to set up container networking: driver failed programming external connectivity on endpoint {ep_name} ({}): {}",
                primary.ep.endpoint_id,
                last_err.unwrap_or_else(|| "no available port".into())
            )));
        };
        if range.is_none() {
            inner.next_ephemeral = if p >= hi { lo } else { p + 1 };
        }
        maps.push(PortMap {
            proto,
            container_port: port,
            host_ip: ip,
            host_port: p,
            dest: primary.ep.ip.addr,
            bridge: primary.bridge.clone(),
        });
    }
    Ok((maps, socks))
}

/// DNS sockets bound inside the namespace.
type DnsSockets = (std::net::UdpSocket, std::net::TcpListener);

fn bind_dns() -> std::io::Result<DnsSockets> {
    let a = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 11), 53));
    Ok((
        std::net::UdpSocket::bind(a)?,
        std::net::TcpListener::bind(a)?,
    ))
}

/// Creates the veth pairs of `planned` into the namespace at `key` and configures their
/// container ends through `ns` (a netlink socket inside that namespace).
fn plumb(
    ns: &mut Netlink,
    key: &Path,
    planned: &[Planned],
    default_route: bool,
) -> std::io::Result<()> {
    let mut host = Netlink::open()?;
    let nsfd = netns::open(key)?;
    let mut routed = !default_route;
    for p in planned {
        let br = host
            .link(&p.bridge)?
            .ok_or_else(|| std::io::Error::other(format!("bridge {} is missing", p.bridge)))?;
        let mac = parse_mac(&p.ep.mac);
        use std::os::fd::AsRawFd;
        host.create_veth(
            &p.ep.veth,
            br.index,
            &p.ep.ifname,
            nsfd.as_raw_fd(),
            mac,
            p.mtu,
        )?;
        let l = ns
            .link(&p.ep.ifname)?
            .ok_or_else(|| std::io::Error::other("the container end of the veth pair vanished"))?;
        if !l.up {
            ns.set_up(l.index)?;
        }
        ns.add_addr(l.index, p.ep.ip)?;
        if !routed && !p.internal {
            ns.add_route(None, p.ep.gateway, l.index)?;
            routed = true;
        }
    }
    Ok(())
}

/// Builds the container's sandbox before its shim starts (blocking). On success the state is
/// in `rec.network`; on failure nothing is left behind.
pub fn setup(d: &Arc<Daemon>, rec: &mut ContainerRecord) -> Result<(), ApiError> {
    rec.network = None;
    let nets = match mode_of(rec) {
        Mode::Host | Mode::None => return Ok(()),
        Mode::Container(target) => {
            let (key, _) = joined_key(d, &target)?;
            rec.network = Some(SandboxState {
                id: new_id(),
                key,
                owned: false,
                ..Default::default()
            });
            return Ok(());
        }
        Mode::Bridge(nets) => nets,
    };
    let cfg = endpoints_config(rec);
    let planned = plan_endpoints(d, &nets, &cfg, 0)?;
    let release = |planned: &[Planned]| {
        let mut inner = d.networks.inner.lock().unwrap();
        release_addresses(&mut inner.nets, planned.iter().map(|p| &p.ep));
    };
    let ports = match plan_ports(d, rec, &planned[0], rec.short_name()) {
        Ok(p) => p,
        Err(e) => {
            release(&planned);
            return Err(e);
        }
    };
    let key = netns_path(d, &rec.id);
    let want_dns = planned.iter().any(|p| p.user_defined);
    let _ = netns::remove(&key);
    let made = netns::create(&key, || {
        let mut nl = Netlink::open()?;
        nl.set_up(1)?; // lo
        let dns = if want_dns { Some(bind_dns()?) } else { None };
        Ok((nl, dns))
    })
    .and_then(|(mut nl, dns)| {
        plumb(&mut nl, &key, &planned, true)?;
        Ok(dns)
    });
    let dns_socks = match made {
        Ok(s) => s,
        Err(e) => {
            let _ = netns::remove(&key);
            release(&planned);
            return Err(ApiError::internal(format!(
                "failed to set up container networking: {e}"
            )));
        }
    };
    let (maps, socks) = ports;
    let mut live = Live::default();
    if let Some((u, t)) = dns_socks {
        match dns::serve(u, t, resolver(d, &rec.id, rec)) {
            Ok(s) => live.dns = Some(s),
            Err(e) => tracing::warn!(container = %rec.id, "embedded DNS: {e}"),
        }
    }
    for (m, s) in maps.iter().zip(socks) {
        let target = SocketAddr::from((m.dest, m.container_port));
        let p = match s {
            Bound::Tcp(l) => proxy::tcp(l, target),
            Bound::Udp(u) => proxy::udp(u, target),
        };
        match p {
            Ok(p) => live.proxies.push(p),
            Err(e) => tracing::warn!(container = %rec.id, "port proxy: {e}"),
        }
    }
    let eps: Vec<EndpointState> = planned.into_iter().map(|p| p.ep).collect();
    {
        let mut inner = d.networks.inner.lock().unwrap();
        for ep in &eps {
            if let Some(n) = inner.by_id_mut(&ep.network_id) {
                n.eps.insert(rec.id.clone(), ep.clone());
            }
        }
        if !maps.is_empty() {
            inner.ports.insert(rec.id.clone(), maps.clone());
        }
    }
    d.networks.live.lock().unwrap().insert(rec.id.clone(), live);
    rec.network = Some(SandboxState {
        id: new_id(),
        key: key.display().to_string(),
        owned: true,
        endpoints: eps,
        ports: maps.clone(),
    });
    // The proxies already serve the ports: the DNAT rules follow (in the background).
    if !maps.is_empty()
        && let Err(e) = d.networks.apply_rules_soon()
    {
        teardown(d, &rec.id, rec.network.take());
        return Err(e);
    }
    Ok(())
}

/// Undoes [`setup`] once the container's init is gone (blocking).
pub fn teardown(d: &Daemon, id: &str, state: Option<SandboxState>) {
    let live = d.networks.live.lock().unwrap().remove(id);
    drop(live);
    let Some(sb) = state else { return };
    if !sb.owned {
        return;
    }
    let had_ports = {
        let mut inner = d.networks.inner.lock().unwrap();
        for n in inner.nets.iter_mut() {
            n.eps.remove(id);
        }
        release_addresses(&mut inner.nets, sb.endpoints.iter());
        inner.ports.remove(id).is_some()
    };
    if let Err(e) = netns::remove(Path::new(&sb.key)) {
        tracing::warn!(container = %id, "removing network namespace {}: {e}", sb.key);
    }
    if had_ports && let Err(e) = d.networks.apply_rules_soon() {
        tracing::warn!("{}", e.message);
    }
}

/// After a berthd restart: the DNS servers and port proxies of running containers.
pub fn restore(d: &Arc<Daemon>) {
    for c in d.containers.all() {
        let rec = c.snapshot();
        if !rec.state.status.is_running() {
            continue;
        }
        let Some(sb) = &rec.network else { continue };
        if !sb.owned || d.networks.live.lock().unwrap().contains_key(&rec.id) {
            continue;
        }
        let mut live = Live::default();
        let user = {
            let inner = d.networks.inner.lock().unwrap();
            sb.endpoints.iter().any(|e| {
                inner
                    .by_id(&e.network_id)
                    .is_some_and(|n| n.rec.user_defined())
            })
        };
        if user {
            match netns::enter(Path::new(&sb.key), bind_dns) {
                Ok((u, t)) => match dns::serve(u, t, resolver(d, &rec.id, &rec)) {
                    Ok(s) => live.dns = Some(s),
                    Err(e) => tracing::warn!(container = %rec.id, "embedded DNS: {e}"),
                },
                Err(e) => tracing::warn!(container = %rec.id, "embedded DNS: {e}"),
            }
        }
        if d.networks.cfg.userland_proxy {
            for m in &sb.ports {
                let target = SocketAddr::from((m.dest, m.container_port));
                let p = bind(m.proto, m.host_ip, m.host_port).and_then(|b| match b {
                    Bound::Tcp(l) => proxy::tcp(l, target),
                    Bound::Udp(u) => proxy::udp(u, target),
                });
                match p {
                    Ok(p) => live.proxies.push(p),
                    Err(e) => {
                        tracing::warn!(container = %rec.id, port = m.host_port, "port proxy: {e}")
                    }
                }
            }
        }
        d.networks.live.lock().unwrap().insert(rec.id.clone(), live);
    }
}

/// The embedded DNS server's view for one container.
struct View {
    d: Weak<Daemon>,
    id: String,
    upstreams: Vec<SocketAddr>,
}

fn resolver(d: &Arc<Daemon>, id: &str, rec: &ContainerRecord) -> Arc<dyn dns::Resolver> {
    let servers: Vec<String> = match rec.host_config.dns.as_ref().filter(|v| !v.is_empty()) {
        Some(v) => v.clone(),
        None if !d.networks.cfg.dns.is_empty() => d.networks.cfg.dns.clone(),
        None => host_resolv().nameservers,
    };
    let upstreams = servers
        .iter()
        .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    Arc::new(View {
        d: Arc::downgrade(d),
        id: id.to_string(),
        upstreams,
    })
}

/// Name candidates on the container's user-defined networks.
struct Candidate {
    cid: String,
    ip: Ipv4Addr,
    aliases: Vec<String>,
    network: String,
}

impl View {
    fn candidates(&self, d: &Daemon) -> (Vec<Candidate>, Vec<(String, String, String)>) {
        let inner = d.networks.inner.lock().unwrap();
        let mut out = Vec::new();
        let mut links = Vec::new();
        for n in inner.nets.iter().filter(|n| n.rec.user_defined()) {
            let Some(me) = n.eps.get(&self.id) else {
                continue;
            };
            for l in &me.links {
                let (t, a) = l.split_once(':').unwrap_or((l, l));
                links.push((
                    n.rec.name.clone(),
                    t.trim_start_matches('/').to_string(),
                    a.trim_start_matches('/').to_lowercase(),
                ));
            }
            for (cid, ep) in &n.eps {
                out.push(Candidate {
                    cid: cid.clone(),
                    ip: ep.ip.addr,
                    aliases: ep.aliases.iter().map(|a| a.to_lowercase()).collect(),
                    network: n.rec.name.clone(),
                });
            }
        }
        (out, links)
    }
}

fn container_name(d: &Daemon, cid: &str) -> Option<String> {
    let c = d.containers.get(cid).ok()?;
    let r = c.rec.lock().unwrap();
    Some(r.name.trim_start_matches('/').to_string())
}

impl dns::Resolver for View {
    fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        let d = self.d.upgrade()?;
        let (cands, links) = self.candidates(&d);
        let mut ips = Vec::new();
        for c in &cands {
            // `name` or `name.network`.
            let base = match name.strip_suffix(&format!(".{}", c.network.to_lowercase())) {
                Some(b) => b,
                None => name,
            };
            let hit = c.aliases.iter().any(|a| a == base)
                || (base.len() == 12 && c.cid.starts_with(base))
                || container_name(&d, &c.cid).is_some_and(|n| n.to_lowercase() == base);
            if hit && !ips.contains(&c.ip) {
                ips.push(c.ip);
            }
        }
        for (net, target, alias) in &links {
            if alias == name {
                for c in cands.iter().filter(|c| &c.network == net) {
                    if container_name(&d, &c.cid).as_deref() == Some(target.as_str())
                        && !ips.contains(&c.ip)
                    {
                        ips.push(c.ip);
                    }
                }
            }
        }
        (!ips.is_empty()).then_some(ips)
    }

    fn reverse(&self, ip: Ipv4Addr) -> Option<String> {
        let d = self.d.upgrade()?;
        let (cands, _) = self.candidates(&d);
        let c = cands.iter().find(|c| c.ip == ip)?;
        Some(format!("{}.{}", container_name(&d, &c.cid)?, c.network))
    }

    fn upstreams(&self) -> Vec<SocketAddr> {
        let Some(d) = self.d.upgrade() else {
            return Vec::new();
        };
        // Containers only on internal networks get no answers from outside.
        let external = {
            let inner = d.networks.inner.lock().unwrap();
            inner
                .nets
                .iter()
                .any(|n| !n.rec.internal && n.eps.contains_key(&self.id))
        };
        if external {
            self.upstreams.clone()
        } else {
            Vec::new()
        }
    }
}

fn host_resolv() -> ResolvConf {
    files::parse_resolv(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

/// The container's /etc/hosts and /etc/resolv.conf (after [`setup`]).
pub fn etc_files(d: &Daemon, rec: &ContainerRecord, hostname: &str) -> (String, String) {
    let hc = &rec.host_config;
    let mode = mode_of(rec);
    if let Mode::Container(target) = &mode
        && let Ok(t) = d.containers.get(target)
    {
        let b = d.containers.paths.bundle(&t.id);
        return (
            std::fs::read_to_string(b.join("hosts")).unwrap_or_default(),
            std::fs::read_to_string(b.join("resolv.conf")).unwrap_or_default(),
        );
    }
    let gateway_ip = d
        .networks
        .default_bridge()
        .and_then(|b| b.config.first().map(|c| c.gateway.to_string()));
    let mut extra: Vec<(String, Vec<String>)> = Vec::new();
    for e in hc.extra_hosts.as_deref().unwrap_or(&[]) {
        let (name, ip) = e
            .split_once('=')
            .or_else(|| e.split_once(':'))
            .unwrap_or((e.as_str(), ""));
        let ip = if ip == "host-gateway" {
            gateway_ip.clone().unwrap_or_default()
        } else {
            ip.trim_start_matches('[').trim_end_matches(']').to_string()
        };
        if !ip.is_empty() {
            extra.push((ip, vec![name.to_string()]));
        }
    }
    let host_text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host = files::parse_resolv(&host_text);
    let cfg = &d.networks.cfg;
    let pick = |mine: Option<&Vec<String>>, daemon: &Vec<String>, hosts: &Vec<String>| match mine
        .filter(|v| !v.is_empty())
    {
        Some(v) => v.clone(),
        None if !daemon.is_empty() => daemon.clone(),
        None => hosts.clone(),
    };
    let search = pick(hc.dns_search.as_ref(), &cfg.dns_search, &host.search);
    let options = pick(hc.dns_options.as_ref(), &cfg.dns_opts, &host.options);
    if mode == Mode::Host {
        let mut hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for (ip, names) in &extra {
            hosts.push_str(&format!("{ip}\t{}\n", names.join(" ")));
        }
        let custom = hc.dns.as_ref().is_some_and(|v| !v.is_empty())
            || hc.dns_search.as_ref().is_some_and(|v| !v.is_empty())
            || hc.dns_options.as_ref().is_some_and(|v| !v.is_empty());
        let resolv = if custom {
            files::render_resolv(
                &ResolvConf {
                    nameservers: pick(hc.dns.as_ref(), &cfg.dns, &host.nameservers),
                    search,
                    options,
                },
                "",
            )
        } else {
            host_text
        };
        return (hosts, resolv);
    }
    let sb = rec.network.clone().unwrap_or_default();
    let user = {
        let inner = d.networks.inner.lock().unwrap();
        sb.endpoints.iter().any(|e| {
            inner
                .by_id(&e.network_id)
                .is_some_and(|n| n.rec.user_defined())
        })
    };
    let mut entries = extra;
    // Legacy links on the default bridge: /etc/hosts entries.
    if !user {
        for l in hc.links.as_deref().unwrap_or(&[]) {
            let (target, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            let target = target.trim_start_matches('/');
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            let Ok(t) = d.containers.get(target) else {
                continue;
            };
            let tr = t.snapshot();
            let ip = tr
                .network
                .as_ref()
                .and_then(|s| s.endpoints.first())
                .map(|e| e.ip.addr.to_string());
            if let Some(ip) = ip {
                let mut names = vec![alias.to_string()];
                for n in [
                    tr.config.hostname.clone().unwrap_or_default(),
                    tr.short_name().to_string(),
                ] {
                    if !n.is_empty() && !names.contains(&n) {
                        names.push(n);
                    }
                }
                entries.push((ip, names));
            }
        }
    }
    let fqdn = rec
        .config
        .domainname
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|dn| format!("{hostname}.{dn}"));
    for ep in &sb.endpoints {
        let mut names = Vec::new();
        if let Some(f) = &fqdn {
            names.push(f.clone());
        }
        names.push(hostname.to_string());
        entries.push((ep.ip.addr.to_string(), names));
    }
    let hosts = files::hosts(&entries);
    let resolv = if user {
        let mut opts = options;
        if !opts.iter().any(|o| o.starts_with("ndots:")) {
            opts.push("ndots:0".into());
        }
        files::render_resolv(
            &ResolvConf {
                nameservers: vec!["127.0.0.11".into()],
                search,
                options: opts,
            },
            "Embedded DNS server (forwards to the daemon's or the host's resolvers).",
        )
    } else {
        let mut ns = pick(
            hc.dns.as_ref(),
            &cfg.dns,
            &host
                .nameservers
                .iter()
                .filter(|n| !files::is_loopback(n))
                .cloned()
                .collect(),
        );
        if ns.is_empty() {
            ns = vec!["8.8.8.8".into(), "8.8.4.4".into()];
        }
        files::render_resolv(
            &ResolvConf {
                nameservers: ns,
                search,
                options,
            },
            "",
        )
    };
    (hosts, resolv)
}

/// `POST /networks/{id}/connect`.
pub async fn connect(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    net: &super::NetworkRecord,
    mut settings: EndpointSettings,
) -> Result<(), ApiError> {
    let _op = c.op.lock().await;
    let rec = c.snapshot();
    match mode_of(&rec) {
        Mode::Host => {
            return Err(forbidden(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        Mode::None | Mode::Container(_) => {
            return Err(forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network",
            ));
        }
        Mode::Bridge(_) => {}
    }
    if net.driver != "bridge" {
        return Err(forbidden(
            "container cannot be disconnected from host network or connected to host network",
        ));
    }
    let mut eps = endpoints_config(&rec);
    let running = rec.state.status.is_running();
    let connected = eps.contains_key(&net.name)
        || rec
            .network
            .as_ref()
            .is_some_and(|s| s.endpoints.iter().any(|e| e.network_id == net.id));
    if connected {
        return Err(forbidden(format!(
            "endpoint with name {} already exists in network {}",
            rec.short_name(),
            net.name
        )));
    }
    validate_endpoint(net, &settings)?;
    settings.network_id = Some(net.id.clone());
    eps.insert(net.name.clone(), settings.clone());
    if running && let Some(sb) = rec.network.clone().filter(|s| s.owned) {
        let d2 = d.clone();
        let id = rec.id.clone();
        let name = net.name.clone();
        let cfg = eps.clone();
        let next = sb.endpoints.len();
        let rec2 = rec.clone();
        let ep = tokio::task::spawn_blocking(move || -> Result<EndpointState, ApiError> {
            let planned = plan_endpoints(&d2, &[name], &cfg, next)?;
            let key = PathBuf::from(&sb.key);
            let r = netns::enter(&key, Netlink::open).and_then(|mut ns| {
                plumb(
                    &mut ns,
                    &key,
                    &planned,
                    !sb.endpoints.iter().any(|e| e.gateway.is_some()),
                )
            });
            if let Err(e) = r {
                let mut inner = d2.networks.inner.lock().unwrap();
                release_addresses(&mut inner.nets, planned.iter().map(|p| &p.ep));
                return Err(ApiError::internal(format!(
                    "failed to set up container networking: {e}"
                )));
            }
            let p = planned.into_iter().next().expect("one endpoint");
            let want_dns = p.user_defined
                && d2
                    .networks
                    .live
                    .lock()
                    .unwrap()
                    .get(&id)
                    .is_none_or(|l| l.dns.is_none());
            d2.networks
                .inner
                .lock()
                .unwrap()
                .by_id_mut(&p.ep.network_id)
                .map(|n| n.eps.insert(id.clone(), p.ep.clone()));
            if want_dns {
                match netns::enter(&key, bind_dns) {
                    Ok((u, t)) => {
                        if let Ok(s) = dns::serve(u, t, resolver(&d2, &id, &rec2)) {
                            d2.networks
                                .live
                                .lock()
                                .unwrap()
                                .entry(id.clone())
                                .or_default()
                                .dns = Some(s);
                        }
                    }
                    Err(e) => tracing::warn!(container = %id, "embedded DNS: {e}"),
                }
            }
            Ok(p.ep)
        })
        .await??;
        let mut g = c.rec.lock().unwrap();
        if let Some(s) = g.network.as_mut() {
            s.endpoints.push(ep);
        }
    }
    set_endpoints_config(&mut c.rec.lock().unwrap(), &eps);
    d.containers.save(c)?;
    Ok(())
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    net: &super::NetworkRecord,
    _force: bool,
) -> Result<(), ApiError> {
    let _op = c.op.lock().await;
    let rec = c.snapshot();
    if mode_of(&rec) == Mode::Host || net.driver != "bridge" {
        return Err(forbidden(
            "container cannot be disconnected from host network or connected to host network",
        ));
    }
    let mut eps = endpoints_config(&rec);
    let live_ep = rec
        .network
        .as_ref()
        .and_then(|s| s.endpoints.iter().find(|e| e.network_id == net.id).cloned());
    if eps.remove(&net.name).is_none() && live_ep.is_none() {
        return Err(forbidden(format!(
            "container {} is not connected to network {}",
            rec.id, net.name
        )));
    }
    if let Some(ep) = live_ep {
        let d2 = d.clone();
        let id = rec.id.clone();
        let ep2 = ep.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = Netlink::open().and_then(|mut nl| nl.delete_link(&ep2.veth))
                && e.raw_os_error() != Some(libc::ENODEV)
            {
                tracing::warn!(container = %id, "deleting {}: {e}", ep2.veth);
            }
            let mut inner = d2.networks.inner.lock().unwrap();
            if let Some(n) = inner.by_id_mut(&ep2.network_id) {
                n.eps.remove(&id);
            }
            release_addresses(&mut inner.nets, std::iter::once(&ep2));
        })
        .await?;
        let mut g = c.rec.lock().unwrap();
        if let Some(s) = g.network.as_mut() {
            s.endpoints.retain(|e| e.network_id != ep.network_id);
        }
    }
    let mut g = c.rec.lock().unwrap();
    // The primary network may go: the next configured one (or none) takes its place.
    if g.host_config.network_mode.as_deref() == Some(net.name.as_str()) {
        g.host_config.network_mode =
            Some(eps.keys().next().cloned().unwrap_or_else(|| "none".into()));
    }
    set_endpoints_config(&mut g, &eps);
    drop(g);
    d.containers.save(c)?;
    Ok(())
}
