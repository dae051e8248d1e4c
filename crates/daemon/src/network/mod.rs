//! Networks as berthd runs them: the records (`networks` table), the Linux bridges behind
//! them, IP allocation, berth's nftables table, and — per running container — its sandbox
//! (network namespace, veth endpoints, embedded DNS server, port proxies; `sandbox.rs`).
//!
//! Live state (allocated addresses, endpoints, published ports) is persisted in each
//! container's record (`ContainerRecord::network`), written with the container's state, and
//! rebuilt from those records when berthd starts: containers keep running (and reachable)
//! across a berthd restart or crash.

pub mod inspect;
pub mod record;
pub mod sandbox;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;

use berth_meta::Db;
use berth_network::ipam::{SubnetAlloc, pick_subnet};
use berth_network::netlink::Netlink;
use berth_network::{Ipv4Net, forward::IpForward, nft};
use std::sync::Arc;

use crate::config::NetConfig;
use crate::containers::{ContainerRecord, new_id, now_rfc3339};
use crate::http::ApiError;
pub use record::{IpamConf, NETWORKS, NetworkRecord};
pub use sandbox::{EndpointState, PortMap, SandboxState};

/// How docker's network set-up errors at container start begin.
pub const SETUP_FAILED: &str = "failed to set up container networking";

/// docker's option keys.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_HOST_BINDING: &str = "com.docker.network.bridge.host_binding_ipv4";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";

/// A network with its allocations and live endpoints.
pub(crate) struct Net {
    pub rec: NetworkRecord,
    pub alloc: Vec<SubnetAlloc>,
    /// Running containers on the network, by container ID.
    pub eps: BTreeMap<String, EndpointState>,
}

impl Net {
    fn new(rec: NetworkRecord) -> Net {
        let alloc = rec
            .config
            .iter()
            .map(|c| SubnetAlloc::new(c.subnet, c.ip_range, c.gateway))
            .collect();
        Net {
            rec,
            alloc,
            eps: BTreeMap::new(),
        }
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    pub nets: Vec<Net>,
    /// Published ports of running containers, by container ID.
    pub ports: HashMap<String, Vec<PortMap>>,
    pub next_ephemeral: u16,
}

impl Inner {
    pub fn by_id(&self, id: &str) -> Option<&Net> {
        self.nets.iter().find(|n| n.rec.id == id)
    }
    pub fn by_id_mut(&mut self, id: &str) -> Option<&mut Net> {
        self.nets.iter_mut().find(|n| n.rec.id == id)
    }
    /// docker's lookup order: full ID, exact name, unique ID prefix.
    pub fn find(&self, term: &str) -> Result<&Net, ApiError> {
        if term.is_empty() {
            return Err(not_found(term));
        }
        if let Some(n) = self.nets.iter().find(|n| n.rec.id == term) {
            return Ok(n);
        }
        if let Some(n) = self.nets.iter().find(|n| n.rec.name == term) {
            return Ok(n);
        }
        let by_prefix: Vec<&Net> = self
            .nets
            .iter()
            .filter(|n| n.rec.id.starts_with(term))
            .collect();
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(not_found(term)),
            k => Err(ApiError::bad_request(format!(
                "network {term} is ambiguous ({k} matches found based on ID prefix)"
            ))),
        }
    }
}

pub fn not_found(term: &str) -> ApiError {
    ApiError::not_found(format!("network {term} not found"))
}

pub fn forbidden(m: impl Into<String>) -> ApiError {
    ApiError::new(http::StatusCode::FORBIDDEN, m)
}

/// Per running container: what berthd serves for it.
#[derive(Default)]
pub(crate) struct Live {
    pub dns: Option<berth_network::dns::DnsServer>,
    pub proxies: Vec<berth_network::proxy::Proxy>,
}

pub struct Networks {
    pub cfg: NetConfig,
    db: Arc<Db>,
    /// `<exec-root>/netns`: one pinned namespace per container with a bridge endpoint.
    pub netns_dir: PathBuf,
    pub(crate) inner: Arc<Mutex<Inner>>,
    pub(crate) live: Mutex<HashMap<String, Live>>,
    /// The rules last applied; shared with background appliers.
    rules: Arc<Mutex<RulesState>>,
    fwd: IpForward,
    fwd_held: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct RulesState {
    /// None: unknown, apply in full.
    last: Option<nft::Ruleset>,
    /// Shut down: the table is gone and stays gone.
    closed: bool,
}

fn internal(what: &str) -> impl FnOnce(std::io::Error) -> ApiError + '_ {
    move |e| ApiError::internal(format!("{what}: {e}"))
}

impl Networks {
    /// Loads the records, makes sure the predefined networks and the bridges exist, rebuilds
    /// the allocations of running containers, removes leftovers of containers that are gone,
    /// and applies the rules. Blocking.
    pub fn open(
        cfg: NetConfig,
        db: Arc<Db>,
        exec_root: &std::path::Path,
        containers: &[ContainerRecord],
    ) -> anyhow::Result<Networks> {
        let netns_dir = exec_root.join("netns");
        std::fs::create_dir_all(&netns_dir)?;
        let recs: Vec<(String, NetworkRecord)> = db.read(|r| r.list(NETWORKS))?;
        let n = Networks {
            fwd: IpForward::new(std::path::Path::new("/run/berth-ip-forward"), exec_root),
            cfg,
            db,
            netns_dir,
            inner: Arc::new(Mutex::new(Inner {
                next_ephemeral: 0,
                ..Default::default()
            })),
            live: Mutex::new(HashMap::new()),
            rules: Default::default(),
            fwd_held: Default::default(),
        };
        let mut nets: Vec<NetworkRecord> = recs.into_iter().map(|(_, r)| r).collect();
        nets.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        // The predefined networks.
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if !nets.iter().any(|r| r.name == name) {
                let r = NetworkRecord::predefined(name, driver);
                n.db.write(|w| w.put(NETWORKS, &r.id, &r))?;
                nets.push(r);
            }
        }
        let mut nl = Netlink::open()?;
        match n.cfg.bridge.clone() {
            Some(bridge) => {
                let existing = nets.iter().position(|r| r.default_bridge);
                let taken: Vec<Ipv4Net> = nets
                    .iter()
                    .filter(|r| !r.default_bridge)
                    .flat_map(|r| r.config.iter().map(|c| c.subnet))
                    .collect();
                let rec =
                    n.default_bridge_record(&mut nl, &bridge, existing.map(|i| &nets[i]), &taken)?;
                n.db.write(|w| w.put(NETWORKS, &rec.id, &rec))?;
                match existing {
                    Some(i) => nets[i] = rec,
                    None => nets.insert(0, rec),
                }
            }
            None => {
                // `--bridge none`: no default bridge network.
                if let Some(i) = nets.iter().position(|r| r.default_bridge) {
                    let r = nets.remove(i);
                    n.db.write(|w| w.delete(NETWORKS, &r.id).map(|_| ()))?;
                }
            }
        }
        let mut inner = Inner::default();
        for r in nets {
            if r.driver == "bridge"
                && let Err(e) = ensure_bridge(&mut nl, &r)
            {
                tracing::warn!(network = %r.name, bridge = %r.bridge, "setting up the bridge: {e}");
            }
            inner.nets.push(Net::new(r));
        }
        // Running containers keep their addresses and ports.
        let mut keep = std::collections::HashSet::new();
        for c in containers {
            if !c.state.status.is_running() {
                continue;
            }
            let Some(sb) = &c.network else { continue };
            if sb.owned {
                keep.insert(sb.key.clone());
            }
            for ep in &sb.endpoints {
                if let Some(net) = inner.by_id_mut(&ep.network_id) {
                    for a in net.alloc.iter_mut() {
                        a.reserve(ep.ip.addr);
                    }
                    net.eps.insert(c.id.clone(), ep.clone());
                }
            }
            if !sb.ports.is_empty() {
                inner.ports.insert(c.id.clone(), sb.ports.clone());
            }
        }
        // Namespaces of containers that are gone (a crash before their teardown).
        if let Ok(rd) = std::fs::read_dir(&n.netns_dir) {
            for e in rd.flatten() {
                let p = e.path();
                if !keep.contains(&p.display().to_string()) {
                    tracing::info!(netns = %p.display(), "removing a leftover network namespace");
                    let _ = berth_network::netns::remove(&p);
                }
            }
        }
        *n.inner.lock().unwrap() = inner;
        n.update_forwarding();
        if let Err(e) = n.apply_rules() {
            tracing::warn!("applying nftables rules: {}", e.message);
        }
        Ok(n)
    }

    /// The default `bridge` network's record for this configuration: the Linux bridge named
    /// by `--bridge`, addressed by `--bip`, an address already on the bridge, or the first
    /// pool subnet that collides with no route of the host.
    fn default_bridge_record(
        &self,
        nl: &mut Netlink,
        bridge: &str,
        existing: Option<&NetworkRecord>,
        taken: &[Ipv4Net],
    ) -> anyhow::Result<NetworkRecord> {
        let link = nl.link(bridge)?;
        let on_bridge: Option<Ipv4Net> = match &link {
            Some(l) => nl
                .addrs()?
                .into_iter()
                .find(|(i, _)| *i == l.index)
                .map(|(_, a)| a),
            None => None,
        };
        let bip = match (self.cfg.bip, on_bridge) {
            (Some(b), _) => b,
            (None, Some(a)) => a,
            (None, None) => {
                let reuse = existing
                    .filter(|r| r.bridge == bridge)
                    .and_then(|r| r.config.first())
                    .map(|c| Ipv4Net {
                        addr: c.gateway,
                        prefix: c.subnet.prefix,
                    });
                match reuse {
                    Some(r) => r,
                    None => {
                        let mut avoid: Vec<Ipv4Net> = taken.to_vec();
                        avoid.extend(host_routes(nl, &[])?);
                        let s = pick_subnet(&self.cfg.pools, &avoid)
                            .map_err(|e| anyhow::anyhow!("default bridge network: {e}"))?;
                        Ipv4Net {
                            addr: SubnetAlloc::default_gateway(&s),
                            prefix: s.prefix,
                        }
                    }
                }
            }
        };
        let subnet = bip.trunc();
        if let Some(t) = taken.iter().find(|t| t.overlaps(&subnet)) {
            anyhow::bail!(
                "the default bridge's subnet {subnet} overlaps network subnet {t}; choose another --bip"
            );
        }
        let mut rec = existing.cloned().unwrap_or_else(|| NetworkRecord {
            id: new_id(),
            name: "bridge".into(),
            driver: "bridge".into(),
            created: now_rfc3339(),
            predefined: true,
            default_bridge: true,
            ipam_driver: "default".into(),
            ..Default::default()
        });
        // A bridge that existed before berth (named by the user) is never deleted by berth.
        let created = match (&link, existing) {
            (None, _) => true,
            (Some(_), Some(r)) if r.bridge == bridge => r.created_bridge,
            (Some(_), _) => false,
        };
        rec.bridge = bridge.to_string();
        rec.created_bridge = created;
        rec.config = vec![IpamConf {
            subnet,
            gateway: bip.addr,
            ip_range: None,
        }];
        rec.user_subnets = false;
        rec.options = BTreeMap::from([
            (OPT_DEFAULT_BRIDGE.to_string(), "true".to_string()),
            (OPT_ICC.to_string(), "true".to_string()),
            (OPT_MASQUERADE.to_string(), "true".to_string()),
            (OPT_HOST_BINDING.to_string(), "0.0.0.0".to_string()),
            (OPT_BRIDGE_NAME.to_string(), bridge.to_string()),
            (OPT_MTU.to_string(), "1500".to_string()),
        ]);
        Ok(rec)
    }

    /// Turns ip_forward on while a bridge network exists (and releases berth's claim when
    /// none is left).
    fn update_forwarding(&self) {
        use std::sync::atomic::Ordering;
        if !self.cfg.ip_forward {
            return;
        }
        let any_bridge = self
            .inner
            .lock()
            .unwrap()
            .nets
            .iter()
            .any(|n| n.rec.driver == "bridge");
        let held = self.fwd_held.load(Ordering::SeqCst);
        if any_bridge && !held {
            match self.fwd.acquire() {
                Ok(changed) => {
                    if changed {
                        tracing::info!("enabled net.ipv4.ip_forward (berth will restore it)");
                    }
                    self.fwd_held.store(true, Ordering::SeqCst);
                }
                Err(e) => tracing::warn!("enabling ip_forward: {e}"),
            }
        } else if !any_bridge && held {
            match self.fwd.release() {
                Ok(restored) => {
                    if restored {
                        tracing::info!("restored net.ipv4.ip_forward=0");
                    }
                }
                Err(e) => tracing::warn!("restoring ip_forward: {e}"),
            }
            self.fwd_held.store(false, Ordering::SeqCst);
        }
    }

    /// Replaces berth's nftables table with the current rules (unless unchanged). Blocking.
    pub fn apply_rules(&self) -> Result<(), ApiError> {
        apply(
            &self.cfg,
            self.fwd.berth_enabled(),
            &self.inner,
            &self.rules,
        )
    }

    /// The same, off the caller's path when the userland proxy serves every published port
    /// anyway (a `run -p` does not wait for nft); in step otherwise.
    pub fn apply_rules_soon(&self) -> Result<(), ApiError> {
        if !self.cfg.userland_proxy {
            return self.apply_rules();
        }
        let (cfg, fwd) = (self.cfg.clone(), self.fwd.berth_enabled());
        let (inner, rules) = (self.inner.clone(), self.rules.clone());
        std::thread::spawn(move || {
            if let Err(e) = apply(&cfg, fwd, &inner, &rules) {
                tracing::warn!("{}", e.message);
            }
        });
        Ok(())
    }

    /// At shutdown: with no container running, remove berth's rules, the bridges it made and
    /// its claim on ip_forward; with running containers keep everything (live-restore).
    pub fn shutdown(&self, running: usize) {
        if running > 0 {
            tracing::info!(
                running,
                "keeping network rules and bridges for running containers (live-restore)"
            );
            return;
        }
        self.live.lock().unwrap().clear();
        {
            let mut st = self.rules.lock().unwrap();
            st.closed = true;
            if self.cfg.iptables
                && let Err(e) = nft::delete(&self.cfg.nft_table)
            {
                tracing::warn!("removing nftables table: {e}");
            }
        }
        if let Ok(mut nl) = Netlink::open() {
            for n in self.inner.lock().unwrap().nets.iter() {
                if n.rec.driver == "bridge" && n.rec.created_bridge {
                    let _ = nl.delete_link(&n.rec.bridge);
                }
            }
        }
        if self.fwd_held.load(std::sync::atomic::Ordering::SeqCst) {
            let _ = self.fwd.release();
        }
        let _ = std::fs::remove_dir(&self.netns_dir);
    }

    fn save(&self, rec: &NetworkRecord) -> Result<(), ApiError> {
        self.db
            .write(|w| w.put(NETWORKS, &rec.id, rec))
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// A copy of a network's record.
    pub fn get(&self, term: &str) -> Result<NetworkRecord, ApiError> {
        Ok(self.inner.lock().unwrap().find(term)?.rec.clone())
    }

    /// Every network with its live endpoints (container ID → endpoint).
    pub fn list(&self) -> Vec<(NetworkRecord, BTreeMap<String, EndpointState>)> {
        self.inner
            .lock()
            .unwrap()
            .nets
            .iter()
            .map(|n| (n.rec.clone(), n.eps.clone()))
            .collect()
    }

    pub fn default_bridge(&self) -> Option<NetworkRecord> {
        self.inner
            .lock()
            .unwrap()
            .nets
            .iter()
            .find(|n| n.rec.default_bridge)
            .map(|n| n.rec.clone())
    }

    /// `POST /networks/create`. Blocking.
    pub fn create(&self, req: CreateRequest) -> Result<NetworkRecord, ApiError> {
        if req.name.is_empty() {
            return Err(ApiError::bad_request("network name must not be empty"));
        }
        if ["bridge", "host", "none", "default"].contains(&req.name.as_str()) {
            return Err(forbidden(format!(
                "operation is not permitted on predefined {} network ",
                req.name
            )));
        }
        let driver = if req.driver.is_empty() {
            "bridge".to_string()
        } else {
            req.driver.clone()
        };
        match driver.as_str() {
            "bridge" => {}
            "host" | "null" => {
                return Err(forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )));
            }
            other => {
                return Err(ApiError::not_found(format!(
                    "could not find plugin {other} in v1 plugin registry: plugin not found"
                )));
            }
        }
        if !req.ipam_driver.is_empty() && req.ipam_driver != "default" {
            return Err(ApiError::not_found(format!(
                "could not find plugin {} in v1 plugin registry: plugin not found",
                req.ipam_driver
            )));
        }
        // docker's ValidateIPAM, all errors at once.
        let mut errs = Vec::new();
        let mut confs = Vec::new();
        for c in &req.ipam {
            let subnet = match c.subnet.parse::<Ipv4Net>() {
                Ok(s) => s,
                Err(_) => {
                    if c.subnet.contains(':') {
                        // IPv6 subnets are ignored without --ipv6, as docker does.
                        continue;
                    }
                    errs.push(format!(
                        "invalid subnet {}: invalid CIDR block notation",
                        c.subnet
                    ));
                    continue;
                }
            };
            if !subnet.is_canonical() {
                errs.push(format!(
                    "invalid subnet {subnet}: it should be {}",
                    subnet.trunc()
                ));
            }
            let mut range = None;
            if !c.ip_range.is_empty() {
                match c.ip_range.parse::<Ipv4Net>() {
                    Err(_) => errs.push(format!(
                        "invalid ip-range {}: invalid CIDR block notation",
                        c.ip_range
                    )),
                    Ok(r) => {
                        if r.prefix < subnet.prefix {
                            errs.push(format!(
                                "invalid ip-range {}: CIDR block is bigger than its parent subnet {subnet}",
                                c.ip_range
                            ));
                        }
                        if !r.is_canonical() {
                            errs.push(format!("invalid ip-range {r}: it should be {}", r.trunc()));
                        }
                        if !subnet.overlaps(&r) {
                            errs.push(format!(
                                "invalid ip-range {}: parent subnet {subnet} doesn't contain ip-range",
                                c.ip_range
                            ));
                        }
                        range = Some(r);
                    }
                }
            }
            let mut gateway = SubnetAlloc::default_gateway(&subnet.trunc());
            if !c.gateway.is_empty() {
                match berth_network::addr::parse_ipv4(&c.gateway) {
                    None => errs.push(format!("invalid gateway {}: invalid address", c.gateway)),
                    Some(g) if !subnet.contains(g) => errs.push(format!(
                        "invalid gateway {}: parent subnet {subnet} doesn't contain this address",
                        c.gateway
                    )),
                    Some(g) => gateway = g,
                }
            }
            confs.push(IpamConf {
                subnet: subnet.trunc(),
                gateway,
                ip_range: range,
            });
        }
        if !errs.is_empty() {
            return Err(ApiError::bad_request(format!(
                "invalid network config:\n{}",
                errs.join("\n")
            )));
        }
        let id = new_id();
        let bridge = match req.options.get(OPT_BRIDGE_NAME) {
            Some(b) => {
                if !nft::valid_name(b) {
                    return Err(ApiError::bad_request(format!(
                        "invalid bridge name {b:?}: use up to 15 letters, digits, '-', '_' or '.'"
                    )));
                }
                b.clone()
            }
            None => format!("br-{}", &id[..12]),
        };
        if let Some(m) = req.options.get(OPT_MTU)
            && m.parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .is_none()
        {
            return Err(ApiError::bad_request(format!("invalid MTU value {m:?}")));
        }
        let user_subnets = !confs.is_empty();
        let mut nl = Netlink::open().map_err(internal("opening netlink"))?;
        // Overlaps are checked and the record inserted under one lock, so two concurrent
        // creates cannot both take a subnet.
        let rec = {
            let mut inner = self.inner.lock().unwrap();
            if inner.nets.iter().any(|n| n.rec.name == req.name) {
                return Err(ApiError::conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
            if inner.nets.iter().any(|n| n.rec.bridge == bridge) {
                return Err(forbidden(format!(
                    "bridge name {bridge} is already in use by another network"
                )));
            }
            let taken: Vec<Ipv4Net> = inner
                .nets
                .iter()
                .flat_map(|n| n.rec.config.iter().map(|c| c.subnet))
                .collect();
            for (i, c) in confs.iter().enumerate() {
                if taken.iter().any(|t| t.overlaps(&c.subnet))
                    || confs[..i].iter().any(|o| o.subnet.overlaps(&c.subnet))
                {
                    return Err(forbidden(
                        "invalid pool request: Pool overlaps with other one on this address space",
                    ));
                }
            }
            if confs.is_empty() {
                let mut avoid = taken.clone();
                avoid.extend(host_routes(&mut nl, &[]).map_err(internal("reading routes"))?);
                let s =
                    pick_subnet(&self.cfg.pools, &avoid).map_err(|e| forbidden(e.to_string()))?;
                confs.push(IpamConf {
                    subnet: s,
                    gateway: SubnetAlloc::default_gateway(&s),
                    ip_range: None,
                });
            }
            let rec = NetworkRecord {
                id: id.clone(),
                name: req.name.clone(),
                driver,
                created: now_rfc3339(),
                internal: req.internal,
                attachable: req.attachable,
                labels: req.labels.clone(),
                options: req.options.clone(),
                ipam_driver: "default".into(),
                ipam_options: req.ipam_options.clone(),
                config: confs,
                user_subnets,
                bridge: bridge.clone(),
                created_bridge: false,
                predefined: false,
                default_bridge: false,
            };
            inner.nets.push(Net::new(rec.clone()));
            rec
        };
        let undo = |nl: &mut Netlink, made: bool| {
            if made {
                let _ = nl.delete_link(&bridge);
            }
            self.inner.lock().unwrap().nets.retain(|n| n.rec.id != id);
        };
        let mut rec = rec;
        match nl.link(&bridge) {
            Ok(None) => rec.created_bridge = true,
            Ok(Some(_)) => {}
            Err(e) => {
                undo(&mut nl, false);
                return Err(ApiError::internal(format!(
                    "looking up bridge {bridge}: {e}"
                )));
            }
        }
        if let Err(e) = ensure_bridge(&mut nl, &rec) {
            undo(&mut nl, rec.created_bridge);
            return Err(ApiError::internal(format!(
                "failed to create bridge {bridge}: {e}"
            )));
        }
        if let Some(n) = self.inner.lock().unwrap().by_id_mut(&id) {
            n.rec.created_bridge = rec.created_bridge;
        }
        if let Err(e) = self.save(&rec) {
            undo(&mut nl, rec.created_bridge);
            return Err(e);
        }
        self.update_forwarding();
        if let Err(e) = self.apply_rules() {
            let _ = self.db.write(|w| w.delete(NETWORKS, &rec.id).map(|_| ()));
            undo(&mut nl, rec.created_bridge);
            let _ = self.apply_rules();
            return Err(e);
        }
        Ok(rec)
    }

    /// `DELETE /networks/{id}`: refused while running containers have endpoints on it.
    pub fn remove(&self, term: &str) -> Result<NetworkRecord, ApiError> {
        let rec = {
            let mut inner = self.inner.lock().unwrap();
            let n = inner.find(term)?;
            if n.rec.predefined {
                return Err(forbidden(format!(
                    "{} is a pre-defined network and cannot be removed",
                    n.rec.name
                )));
            }
            if !n.eps.is_empty() {
                return Err(forbidden(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    n.rec.name, n.rec.id
                )));
            }
            let id = n.rec.id.clone();
            let rec = n.rec.clone();
            self.db
                .write(|w| w.delete(NETWORKS, &id).map(|_| ()))
                .map_err(|e: berth_meta::Error| ApiError::internal(e.to_string()))?;
            inner.nets.retain(|n| n.rec.id != id);
            rec
        };
        if rec.driver == "bridge" && rec.created_bridge {
            match Netlink::open().and_then(|mut nl| nl.delete_link(&rec.bridge)) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
                Err(e) => tracing::warn!(bridge = %rec.bridge, "deleting bridge: {e}"),
            }
        }
        self.apply_rules()?;
        self.update_forwarding();
        Ok(rec)
    }
}

/// The rules for the current networks and published ports.
fn ruleset(cfg: &NetConfig, berth_forwarding: bool, inner: &Inner) -> nft::Ruleset {
    let mut rs = nft::Ruleset {
        table: cfg.nft_table.clone(),
        forward_drop: cfg.ip_forward && !cfg.ip_forward_no_drop && berth_forwarding,
        hairpin: !cfg.userland_proxy,
        ..Default::default()
    };
    for n in inner.nets.iter().filter(|n| n.rec.driver == "bridge") {
        rs.bridges.push(nft::BridgeRules {
            bridge: n.rec.bridge.clone(),
            subnets: n.rec.config.iter().map(|c| c.subnet).collect(),
            masquerade: n
                .rec
                .options
                .get(OPT_MASQUERADE)
                .is_none_or(|v| v != "false"),
            internal: n.rec.internal,
        });
    }
    let mut ids: Vec<&String> = inner.ports.keys().collect();
    ids.sort();
    for id in ids {
        for p in &inner.ports[id] {
            // Nothing reaches a loopback address through these hooks (prerouting never
            // sees it, output skips 127/8): the proxy serves those ports alone, and
            // publishing one costs no rule update.
            if p.host_ip.is_loopback() {
                continue;
            }
            rs.ports.push(nft::Dnat {
                proto: p.proto,
                host_ip: Some(p.host_ip),
                host_port: p.host_port,
                dest: p.dest,
                dest_port: p.container_port,
                bridge: p.bridge.clone(),
            });
        }
    }
    rs
}

/// Replaces berth's table with the rules for `inner` unless they are what was applied last.
/// Appliers (in step or in the background) take `rules` first, then `inner`: the last one to
/// run sees the latest state.
fn apply(
    cfg: &NetConfig,
    berth_forwarding: bool,
    inner: &Mutex<Inner>,
    rules: &Mutex<RulesState>,
) -> Result<(), ApiError> {
    if !cfg.iptables {
        return Ok(());
    }
    let mut st = rules.lock().unwrap();
    if st.closed {
        return Ok(());
    }
    let rs = ruleset(cfg, berth_forwarding, &inner.lock().unwrap());
    if st.last.as_ref() == Some(&rs) {
        return Ok(());
    }
    nft::apply(&rs).map_err(internal("programming nftables"))?;
    st.last = Some(rs);
    Ok(())
}

/// What `POST /networks/create` asks for.
#[derive(Debug, Default, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    pub ipam_driver: String,
    pub ipam_options: BTreeMap<String, String>,
    pub ipam: Vec<IpamRequest>,
}

#[derive(Debug, Default, Clone)]
pub struct IpamRequest {
    pub subnet: String,
    pub ip_range: String,
    pub gateway: String,
}

/// The host's routes, except those on the given bridges (the daemon's own).
fn host_routes(nl: &mut Netlink, own: &[u32]) -> std::io::Result<Vec<Ipv4Net>> {
    Ok(nl
        .routes()?
        .into_iter()
        .filter(|(_, oif)| oif.is_none_or(|o| !own.contains(&o)))
        .map(|(d, _)| d)
        .collect())
}

/// Creates the network's Linux bridge if missing, brings it up and gives it the gateway
/// address of each subnet.
fn ensure_bridge(nl: &mut Netlink, rec: &NetworkRecord) -> std::io::Result<()> {
    let mtu = rec.options.get(OPT_MTU).and_then(|m| m.parse().ok());
    let link = match nl.link(&rec.bridge)? {
        Some(l) => l,
        None => {
            nl.create_bridge(&rec.bridge, mtu.filter(|m| *m != 1500))?;
            nl.link(&rec.bridge)?
                .ok_or_else(|| std::io::Error::other("the new bridge vanished"))?
        }
    };
    if !link.up {
        nl.set_up(link.index)?;
    }
    let have: Vec<Ipv4Net> = nl
        .addrs()?
        .into_iter()
        .filter(|(i, _)| *i == link.index)
        .map(|(_, a)| a)
        .collect();
    for c in &rec.config {
        let want = Ipv4Net {
            addr: c.gateway,
            prefix: c.subnet.prefix,
        };
        if !have.contains(&want) {
            match nl.add_addr(link.index, want) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                r => r?,
            }
        }
    }
    Ok(())
}

/// Addresses are IPv4 only for now.
pub fn parse_ip(s: &str) -> Option<Ipv4Addr> {
    berth_network::addr::parse_ipv4(s)
}
