//! The registry settings of daemon.json, with docker's defaults: `insecure-registries`
//! (hostnames or CIDRs; 127.0.0.0/8 is always insecure), `registry-mirrors` (for Docker Hub),
//! `max-concurrent-downloads` (3) and `max-concurrent-uploads` (5).

use std::net::{IpAddr, ToSocketAddrs};

use serde_json::{Map, Value};

/// Docker Hub's registry endpoint.
pub const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
/// Docker Hub's index (search, and the key its credentials are stored under).
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";
pub const INDEX_HOST: &str = "index.docker.io";

#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Hostnames (`host:port`) and CIDRs that are reached over plain HTTP or unverified TLS.
    pub insecure: Vec<String>,
    /// Mirror URLs tried before Docker Hub on pulls.
    pub mirrors: Vec<String>,
    pub max_concurrent_downloads: usize,
    pub max_concurrent_uploads: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            insecure: Vec::new(),
            mirrors: Vec::new(),
            max_concurrent_downloads: 3,
            max_concurrent_uploads: 5,
        }
    }
}

fn strings(file: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match file.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{key} in the configuration file must be strings"))
            })
            .collect(),
        Some(v) => Err(format!(
            "invalid value for {key} in the configuration file: {v}"
        )),
    }
}

fn count(file: &Map<String, Value>, key: &str, default: usize) -> Result<usize, String> {
    match file.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Ok(n as usize),
            _ => Err(format!("invalid {key}: {v} (want a positive number)")),
        },
    }
}

impl RegistryConfig {
    /// Reads the registry keys of a daemon.json (already parsed).
    pub fn from_daemon_json(file: &Map<String, Value>) -> Result<RegistryConfig, String> {
        let mut mirrors = Vec::new();
        for m in strings(file, "registry-mirrors")? {
            let m = m.trim_end_matches('/').to_string();
            if !(m.starts_with("http://") || m.starts_with("https://")) {
                return Err(format!(
                    "invalid mirror: unsupported scheme \"{}\" in \"{m}\": must use either 'https' or 'http'",
                    m.split("://").next().unwrap_or("")
                ));
            }
            mirrors.push(m);
        }
        Ok(RegistryConfig {
            insecure: strings(file, "insecure-registries")?,
            mirrors,
            max_concurrent_downloads: count(file, "max-concurrent-downloads", 3)?,
            max_concurrent_uploads: count(file, "max-concurrent-uploads", 5)?,
        })
    }

    /// Docker's `isSecureIndex` turned around: a registry named in `insecure-registries`, or
    /// whose address falls in an insecure CIDR (127.0.0.0/8 always), is insecure.
    pub fn is_insecure(&self, host: &str) -> bool {
        let host = host.trim_end_matches('/');
        if self.insecure.iter().any(|h| h == host) {
            return true;
        }
        let bare = host_without_port(host);
        if bare == "localhost" {
            return true;
        }
        let ips: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) if bare.contains('.') || bare.contains(':') => {
                // Docker resolves names and checks their addresses against the CIDRs.
                if self.insecure.iter().all(|c| !c.contains('/')) {
                    Vec::new()
                } else {
                    (bare, 0)
                        .to_socket_addrs()
                        .map(|a| a.map(|s| s.ip()).collect())
                        .unwrap_or_default()
                }
            }
            Err(_) => Vec::new(),
        };
        ips.iter().any(|ip| {
            ip.is_loopback() && ip.is_ipv4()
                || self
                    .insecure
                    .iter()
                    .filter_map(|c| parse_cidr(c))
                    .any(|(net, bits)| in_cidr(*ip, net, bits))
        })
    }
}

/// `host:port` → `host` (also `[::1]:5000` → `::1`).
pub fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, b) = s.split_once('/')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let c = RegistryConfig {
            insecure: vec!["myreg:5000".into(), "10.1.0.0/16".into()],
            ..Default::default()
        };
        assert!(c.is_insecure("127.0.0.1:5000"));
        assert!(c.is_insecure("127.3.4.5"));
        assert!(c.is_insecure("localhost:5000"));
        assert!(c.is_insecure("myreg:5000"));
        assert!(c.is_insecure("10.1.2.3:443"));
        assert!(!c.is_insecure("10.2.2.3:443"));
        assert!(!c.is_insecure("myreg:5001"));
        assert!(!c.is_insecure("registry-1.docker.io"));
        assert_eq!(host_without_port("[::1]:5000"), "::1");
        assert_eq!(host_without_port("h:5000"), "h");
    }

    #[test]
    fn daemon_json_keys() {
        let v: Value = serde_json::json!({
            "insecure-registries": ["a:1"], "registry-mirrors": ["https://m.example/"],
            "max-concurrent-downloads": 7
        });
        let c = RegistryConfig::from_daemon_json(v.as_object().unwrap()).unwrap();
        assert_eq!(c.insecure, vec!["a:1"]);
        assert_eq!(c.mirrors, vec!["https://m.example"]);
        assert_eq!(c.max_concurrent_downloads, 7);
        assert_eq!(c.max_concurrent_uploads, 5);
        let bad = serde_json::json!({"registry-mirrors": ["ftp://x"]});
        assert!(RegistryConfig::from_daemon_json(bad.as_object().unwrap()).is_err());
    }
}
