//! berthd's configuration: docker's flag names, merged with a daemon.json using docker's keys.
//! As dockerd does, an unknown key or a setting given both as a flag and in the file is an error.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Map, Value};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";

#[derive(Parser, Debug, Default)]
#[command(
    name = "berthd",
    version,
    about = "berth's container engine daemon (serves the Docker Engine API)"
)]
pub struct Flags {
    /// Root directory of persistent berth state
    #[arg(long = "data-root")]
    pub data_root: Option<PathBuf>,
    /// Root directory for execution state files
    #[arg(long = "exec-root")]
    pub exec_root: Option<PathBuf>,
    /// Daemon socket(s) to connect to (unix:///path)
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Daemon configuration file
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")
    #[arg(short = 'l', long = "log-level")]
    pub log_level: Option<String>,
    /// Enable debug mode
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,
    /// Storage driver to use ("overlay2" or "vfs")
    #[arg(short = 's', long = "storage-driver")]
    pub storage_driver: Option<String>,
    /// Path to use for daemon PID file
    #[arg(short = 'p', long = "pidfile")]
    pub pidfile: Option<PathBuf>,
    /// Set parent cgroup for all containers
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Attach containers to a network bridge ("none" disables the default bridge network)
    #[arg(short = 'b', long = "bridge")]
    pub bridge: Option<String>,
    /// Specify default-bridge IPv4 network (gateway address with prefix, e.g. 10.210.1.1/24)
    #[arg(long = "bip")]
    pub bip: Option<String>,
    /// Default address pools for node specific local networks (base=CIDR,size=N)
    #[arg(long = "default-address-pool", alias = "default-address-pools")]
    pub default_address_pools: Vec<String>,
    /// DNS server to use
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// DNS search domains to use
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// DNS options to use
    #[arg(long = "dns-opt")]
    pub dns_opt: Vec<String>,
    /// Enable addition of nftables rules
    #[arg(long = "iptables", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub iptables: Option<bool>,
    /// Enable net.ipv4.ip_forward
    #[arg(long = "ip-forward", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ip_forward: Option<bool>,
    /// Do not set the forward policy to drop when enabling IP forwarding
    #[arg(long = "ip-forward-no-drop", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub ip_forward_no_drop: Option<bool>,
    /// Use userland proxy for loopback traffic
    #[arg(long = "userland-proxy", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub userland_proxy: Option<bool>,
    /// Name of berth's nftables table (berth-specific; one per daemon on a host)
    #[arg(long = "nft-table")]
    pub nft_table: Option<String>,
    /// User/Group setting for user namespaces ("default" or user[:group])
    #[arg(long = "userns-remap")]
    pub userns_remap: Option<String>,
}

/// Network settings (docker's names: bridge, bip, default-address-pools, dns, iptables…).
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The default bridge's Linux bridge name; None when disabled (`--bridge none`).
    pub bridge: Option<String>,
    /// Whether the bridge name was chosen by the user (then it may already exist).
    pub bridge_given: bool,
    pub bip: Option<berth_network::Ipv4Net>,
    pub pools: Vec<berth_network::ipam::AddressPool>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_opts: Vec<String>,
    pub iptables: bool,
    pub ip_forward: bool,
    pub ip_forward_no_drop: bool,
    pub userland_proxy: bool,
    pub nft_table: String,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            bridge: Some("berth0".into()),
            bridge_given: false,
            bip: None,
            pools: berth_network::ipam::default_pools(),
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_opts: Vec::new(),
            iptables: true,
            ip_forward: true,
            ip_forward_no_drop: false,
            userland_proxy: true,
            nft_table: "berth".into(),
        }
    }
}

/// The settled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub hosts: Vec<String>,
    pub log_level: String,
    pub storage_driver: Option<String>,
    pub pidfile: PathBuf,
    /// Parent of every container's cgroup (`/berth`).
    pub cgroup_parent: String,
    /// The whole file, for settings later subsystems read (dns, registries…).
    pub file: Map<String, Value>,
    pub net: NetConfig,
    /// `--userns-remap` as given (`default`, `user[:group]`).
    pub userns_remap: Option<String>,
    /// Its id maps, resolved when the daemon opens.
    pub userns: Option<std::sync::Arc<crate::userns::Remap>>,
}

/// Keys berthd understands in daemon.json (docker's names).
const KNOWN_KEYS: &[&str] = &[
    "data-root",
    "exec-root",
    "hosts",
    "log-level",
    "debug",
    "storage-driver",
    "pidfile",
    // Read by subsystems as they land; accepted now so one daemon.json serves docker and berth.
    "bridge",
    "bip",
    "default-address-pools",
    "dns",
    "dns-search",
    "dns-opts",
    "insecure-registries",
    "registry-mirrors",
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "live-restore",
    "userns-remap",
    "log-driver",
    "log-opts",
    "default-ulimits",
    "features",
    "experimental",
    "iptables",
    "ip-forward",
    "ip-masq",
    "ip-forward-no-drop",
    "mtu",
    "storage-opts",
    "cgroup-parent",
    "default-runtime",
    "shutdown-timeout",
    "userland-proxy",
];

fn file_str(file: &Map<String, Value>, key: &str) -> anyhow::Result<Option<String>> {
    match file.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => bail!("invalid value for {key} in the configuration file: {v} (want a string)"),
    }
}

impl Config {
    pub fn from_flags(flags: Flags) -> anyhow::Result<Config> {
        let (path, explicit) = match &flags.config_file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let file = read_file(&path, explicit)?;
        let unknown: Vec<&String> = file
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
            .collect();
        if !unknown.is_empty() {
            let names: Vec<&str> = unknown.iter().map(|s| s.as_str()).collect();
            bail!(
                "unable to configure the berth daemon with file {}: the following directives don't match any configuration option: {}",
                path.display(),
                names.join(", ")
            );
        }
        let mut conflicts = Vec::new();
        let net = net_config(&flags, &file, &mut conflicts)?;
        let mut pick = |key: &str, flag: Option<String>| -> anyhow::Result<Option<String>> {
            let from_file = file_str(&file, key)?;
            match (flag, from_file) {
                (Some(f), Some(v)) => {
                    conflicts.push(format!("{key}: (from flag: {f}, from file: {v})"));
                    Ok(Some(f))
                }
                (Some(f), None) => Ok(Some(f)),
                (None, v) => Ok(v),
            }
        };
        let data_root = pick(
            "data-root",
            flags.data_root.map(|p| p.display().to_string()),
        )?;
        let exec_root = pick(
            "exec-root",
            flags.exec_root.map(|p| p.display().to_string()),
        )?;
        let log_level = pick("log-level", flags.log_level)?;
        let storage_driver = pick("storage-driver", flags.storage_driver)?;
        let pidfile = pick("pidfile", flags.pidfile.map(|p| p.display().to_string()))?;
        let cgroup_parent = pick("cgroup-parent", flags.cgroup_parent)?;
        let userns_remap = pick("userns-remap", flags.userns_remap)?.filter(|s| !s.is_empty());
        let file_hosts: Vec<String> = match file.get("hosts") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .context("hosts in the configuration file must be strings")
                })
                .collect::<anyhow::Result<_>>()?,
            Some(v) => bail!("invalid value for hosts in the configuration file: {v}"),
        };
        if !flags.hosts.is_empty() && !file_hosts.is_empty() {
            conflicts.push(format!(
                "hosts: (from flag: {:?}, from file: {:?})",
                flags.hosts, file_hosts
            ));
        }
        if !conflicts.is_empty() {
            bail!(
                "unable to configure the berth daemon with file {}: the following directives are specified both as a flag and in the configuration file: {}",
                path.display(),
                conflicts.join(", ")
            );
        }
        let exec_root = PathBuf::from(exec_root.unwrap_or_else(|| "/run/berth".into()));
        let mut hosts = if flags.hosts.is_empty() {
            file_hosts
        } else {
            flags.hosts
        };
        if hosts.is_empty() {
            hosts.push(format!("unix://{}", exec_root.join("berth.sock").display()));
        }
        let debug = flags.debug || file.get("debug").and_then(Value::as_bool).unwrap_or(false);
        let log_level = match log_level {
            Some(l) => l,
            None if debug => "debug".into(),
            None => "info".into(),
        };
        if !["debug", "info", "warn", "error", "fatal", "trace"].contains(&log_level.as_str()) {
            bail!("unable to parse logging level: {log_level}");
        }
        let pidfile = pidfile
            .map(PathBuf::from)
            .unwrap_or_else(|| exec_root.join("berthd.pid"));
        Ok(Config {
            data_root: PathBuf::from(data_root.unwrap_or_else(|| "/var/lib/berth".into())),
            exec_root,
            hosts,
            log_level,
            storage_driver,
            pidfile,
            cgroup_parent: format!(
                "/{}",
                cgroup_parent
                    .unwrap_or_else(|| "berth".into())
                    .trim_matches('/')
            ),
            file,
            net,
            userns_remap,
            userns: None,
        })
    }
}

fn file_list(file: &Map<String, Value>, key: &str) -> anyhow::Result<Vec<String>> {
    match file.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .with_context(|| format!("{key} in the configuration file must be strings"))
            })
            .collect(),
        Some(v) => bail!("invalid value for {key} in the configuration file: {v}"),
    }
}

fn file_bool(file: &Map<String, Value>, key: &str) -> anyhow::Result<Option<bool>> {
    match file.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => {
            bail!("invalid value for {key} in the configuration file: {v} (want true or false)")
        }
    }
}

/// The network settings from flags and daemon.json, with docker's validation.
fn net_config(
    flags: &Flags,
    file: &Map<String, Value>,
    conflicts: &mut Vec<String>,
) -> anyhow::Result<NetConfig> {
    let mut n = NetConfig::default();
    let mut one = |key: &str, flag: Option<String>| -> anyhow::Result<Option<String>> {
        let f = file_str(file, key)?;
        if let (Some(a), Some(b)) = (&flag, &f) {
            conflicts.push(format!("{key}: (from flag: {a}, from file: {b})"));
        }
        Ok(flag.or(f))
    };
    if let Some(b) = one("bridge", flags.bridge.clone())? {
        if b == "none" {
            n.bridge = None;
        } else {
            if !berth_network::nft::valid_name(&b) {
                bail!("invalid bridge name {b:?}: use up to 15 letters, digits, '-', '_' or '.'");
            }
            n.bridge = Some(b);
            n.bridge_given = true;
        }
    }
    if let Some(b) = one("bip", flags.bip.clone())? {
        let net: berth_network::Ipv4Net = b.parse().map_err(|_| {
            anyhow::anyhow!("invalid bip {b:?}: want an address with a prefix, e.g. 10.210.1.1/24")
        })?;
        if net.is_canonical() && net.prefix < 31 {
            bail!(
                "invalid bip {b}: the bridge address must be a host address (e.g. {}/{})",
                net.nth(1).unwrap(),
                net.prefix
            );
        }
        n.bip = Some(net);
    }
    let mut pools = Vec::new();
    for p in &flags.default_address_pools {
        pools.push(
            berth_network::ipam::parse_pool(p)
                .map_err(|e| anyhow::anyhow!("invalid default-address-pool {p:?}: {e}"))?,
        );
    }
    match file.get("default-address-pools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            if !pools.is_empty() {
                conflicts.push("default-address-pools".into());
            }
            for v in a {
                let base = v.get("base").and_then(Value::as_str).unwrap_or("");
                let size = v.get("size").and_then(Value::as_u64).unwrap_or(0);
                pools.push(
                    berth_network::ipam::parse_pool(&format!("base={base},size={size}")).map_err(
                        |e| anyhow::anyhow!("invalid default-address-pools entry {v}: {e}"),
                    )?,
                );
            }
        }
        Some(v) => bail!("invalid value for default-address-pools in the configuration file: {v}"),
    }
    if !pools.is_empty() {
        n.pools = pools;
    }
    let list = |key: &str,
                flag: &Vec<String>,
                conflicts: &mut Vec<String>|
     -> anyhow::Result<Vec<String>> {
        let f = file_list(file, key)?;
        if !flag.is_empty() && !f.is_empty() {
            conflicts.push(format!("{key}: (from flag: {flag:?}, from file: {f:?})"));
        }
        Ok(if flag.is_empty() { f } else { flag.clone() })
    };
    n.dns = list("dns", &flags.dns, conflicts)?;
    for d in &n.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            bail!("{d} is not an ip address");
        }
    }
    n.dns_search = list("dns-search", &flags.dns_search, conflicts)?;
    n.dns_opts = list("dns-opts", &flags.dns_opt, conflicts)?;
    let mut flag_bool = |key: &str, flag: Option<bool>, default: bool| -> anyhow::Result<bool> {
        let f = file_bool(file, key)?;
        if let (Some(a), Some(b)) = (flag, f) {
            conflicts.push(format!("{key}: (from flag: {a}, from file: {b})"));
        }
        Ok(flag.or(f).unwrap_or(default))
    };
    n.iptables = flag_bool("iptables", flags.iptables, true)?;
    n.ip_forward = flag_bool("ip-forward", flags.ip_forward, true)?;
    n.ip_forward_no_drop = flag_bool("ip-forward-no-drop", flags.ip_forward_no_drop, false)?;
    n.userland_proxy = flag_bool("userland-proxy", flags.userland_proxy, true)?;
    if let Some(t) = &flags.nft_table {
        if !berth_network::nft::valid_table(t) {
            bail!("invalid nft table name {t:?}: letters, digits and '_', starting with a letter");
        }
        n.nft_table = t.clone();
    }
    Ok(n)
}

fn read_file(path: &Path, explicit: bool) -> anyhow::Result<Map<String, Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(Map::new()),
        Err(e) => bail!(
            "unable to configure the berth daemon with file {}: {e}",
            path.display()
        ),
    };
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => bail!(
            "unable to configure the berth daemon with file {}: the file must hold a JSON object",
            path.display()
        ),
        Err(e) => bail!(
            "unable to configure the berth daemon with file {}: {e}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(json: &str, flags: Flags) -> anyhow::Result<Config> {
        let dir = tempfile_dir();
        let p = dir.join("daemon.json");
        std::fs::write(&p, json).unwrap();
        let c = Config::from_flags(Flags {
            config_file: Some(p),
            ..flags
        });
        let _ = std::fs::remove_dir_all(&dir);
        c
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "berthd-cfg-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn rand_suffix() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    #[test]
    fn defaults_follow_docker_layout() {
        let c = with_file("{}", Flags::default()).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/var/lib/berth"));
        assert_eq!(c.hosts, vec!["unix:///run/berth/berth.sock"]);
        assert_eq!(c.log_level, "info");
    }

    #[test]
    fn file_values_apply_and_conflicts_are_refused() {
        let c = with_file(
            r#"{"data-root":"/x","log-level":"debug"}"#,
            Flags::default(),
        )
        .unwrap();
        assert_eq!(c.data_root, PathBuf::from("/x"));
        assert_eq!(c.log_level, "debug");
        let err = with_file(
            r#"{"data-root":"/x"}"#,
            Flags {
                data_root: Some("/y".into()),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("specified both as a flag and in the configuration file: data-root"),
            "{err}"
        );
        let err = with_file(r#"{"nonsense":1}"#, Flags::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("don't match any configuration option: nonsense"),
            "{err}"
        );
        assert!(with_file("[1]", Flags::default()).is_err());
    }
}
