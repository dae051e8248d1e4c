//! `--network` (plain or `name=…,alias=…,ip=…` form) combined with `--network-alias`, `--ip`,
//! `--ip6`, `--link`, `--link-local-ip` and `--mac-address` into the API's endpoint
//! settings, as docker's `parseNetworkOpts` does.

use std::collections::HashMap;

use berth_api::engine::{EndpointIpamConfig, EndpointSettings};

use super::mounts::split_csv;

/// One `--network` value.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NetworkAttachment {
    pub target: String,
    pub aliases: Vec<String>,
    pub driver_opts: HashMap<String, String>,
    pub links: Vec<String>,
    pub ipv4: String,
    pub ipv6: String,
    pub link_local_ips: Vec<String>,
    pub mac_address: String,
    pub gw_priority: i64,
}

/// docker's test for the long syntax: a `word=word` pair anywhere in the value.
fn long_syntax(value: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let b: Vec<char> = value.chars().collect();
    (1..b.len().saturating_sub(1)).any(|i| b[i] == '=' && word(b[i - 1]) && word(b[i + 1]))
}

/// `NetworkOpt.Set`.
pub fn parse_network(value: &str) -> Result<NetworkAttachment, String> {
    if !long_syntax(value) {
        return Ok(NetworkAttachment {
            target: value.to_string(),
            ..Default::default()
        });
    }
    let mut n = NetworkAttachment::default();
    for field in split_csv(value)? {
        let lower = field.to_lowercase();
        let (key, val) = match lower.split_once('=') {
            Some((k, v)) if !k.is_empty() => (k.trim().to_string(), v.trim().to_string()),
            _ => return Err(format!("invalid field {field}")),
        };
        match key.as_str() {
            "name" => n.target = val,
            "alias" => n.aliases.push(val),
            "ip" => n.ipv4 = val,
            "ip6" => n.ipv6 = val,
            "mac-address" => n.mac_address = val,
            "link-local-ip" => n.link_local_ips.push(val),
            "driver-opt" => {
                let (k, v) = val
                    .split_once('=')
                    .filter(|(k, _)| !k.is_empty())
                    .ok_or("invalid key value pair format in driver options")?;
                n.driver_opts.insert(k.trim().into(), v.trim().into());
            }
            "gw-priority" => {
                n.gw_priority = val
                    .parse()
                    .map_err(|_| format!("invalid gw-priority ({val}): invalid syntax"))?
            }
            _ => return Err(format!("invalid field key {key}")),
        }
    }
    if n.target.is_empty() {
        return Err("network name/id is not specified".into());
    }
    Ok(n)
}

fn is_container_mode(mode: &str) -> bool {
    mode.strip_prefix("container:")
        .is_some_and(|c| !c.is_empty())
}

/// docker's `NetworkMode.IsUserDefined` on Linux.
pub fn is_user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !is_container_mode(mode)
}

/// The legacy per-container flags that apply to the first network.
#[derive(Debug, Default, Clone)]
pub struct LegacyNetworkFlags {
    pub aliases: Vec<String>,
    pub links: Vec<String>,
    pub ipv4: String,
    pub ipv6: String,
    pub link_local_ips: Vec<String>,
    pub mac_address: String,
}

fn apply_legacy(n: &mut NetworkAttachment, f: &LegacyNetworkFlags) -> Result<(), String> {
    let conflict = |what: &str| Err(format!("conflicting options: cannot specify both {what}"));
    if !n.aliases.is_empty() && !f.aliases.is_empty() {
        return conflict("--network-alias and per-network alias");
    }
    if !n.links.is_empty() && !f.links.is_empty() {
        return conflict("--link and per-network links");
    }
    if !n.ipv4.is_empty() && !f.ipv4.is_empty() {
        return conflict("--ip and per-network IPv4 address");
    }
    if !n.ipv6.is_empty() && !f.ipv6.is_empty() {
        return conflict("--ip6 and per-network IPv6 address");
    }
    if !n.mac_address.is_empty() && !f.mac_address.is_empty() {
        return conflict("--mac-address and per-network MAC address");
    }
    if !n.link_local_ips.is_empty() && !f.link_local_ips.is_empty() {
        return conflict("--link-local-ip and per-network link-local IP addresses");
    }
    if !f.aliases.is_empty() {
        n.aliases = f.aliases.clone();
    }
    if is_user_defined(&n.target) && !f.links.is_empty() {
        n.links = f.links.clone();
    }
    if !f.ipv4.is_empty() {
        n.ipv4 = f.ipv4.clone();
    }
    if !f.ipv6.is_empty() {
        n.ipv6 = f.ipv6.clone();
    }
    if !f.mac_address.is_empty() {
        n.mac_address = f.mac_address.clone();
    }
    if !f.link_local_ips.is_empty() {
        n.link_local_ips = f.link_local_ips.clone();
    }
    Ok(())
}

/// `parseNetworkAttachmentOpt`: `None` when the endpoint carries nothing.
fn endpoint(n: &NetworkAttachment) -> Result<EndpointSettings, String> {
    if n.target.trim().is_empty() {
        return Err("no name set for network".into());
    }
    if !is_user_defined(&n.target) {
        if !n.aliases.is_empty() {
            return Err(
                "network-scoped aliases are only supported for user-defined networks".into(),
            );
        }
        if !n.links.is_empty() {
            return Err("links are only supported for user-defined networks".into());
        }
    }
    let mut ep = EndpointSettings::default();
    if n.gw_priority != 0 {
        ep.gw_priority = Some(n.gw_priority);
    }
    if !n.aliases.is_empty() {
        ep.aliases = Some(n.aliases.clone());
    }
    if !n.driver_opts.is_empty() {
        ep.driver_opts = Some(n.driver_opts.clone());
    }
    if !n.links.is_empty() {
        ep.links = Some(n.links.clone());
    }
    if !n.ipv4.is_empty() || !n.ipv6.is_empty() || !n.link_local_ips.is_empty() {
        ep.ipam_config = Some(EndpointIpamConfig {
            ipv4_address: Some(n.ipv4.clone()).filter(|s| !s.is_empty()),
            ipv6_address: Some(n.ipv6.clone()).filter(|s| !s.is_empty()),
            link_local_ips: Some(n.link_local_ips.clone()).filter(|v| !v.is_empty()),
        });
    }
    if !n.mac_address.is_empty() {
        if !super::kv::valid_mac(&n.mac_address) {
            return Err(format!("{} is not a valid mac address", n.mac_address));
        }
        ep.mac_address = Some(n.mac_address.clone());
    }
    Ok(ep)
}

/// docker's `parseNetworkOpts`: the network mode and the endpoints to send.
pub fn network_endpoints(
    networks: &[NetworkAttachment],
    legacy: &LegacyNetworkFlags,
) -> Result<(String, HashMap<String, EndpointSettings>), String> {
    let mut endpoints = HashMap::new();
    if networks.is_empty() {
        let mut n = NetworkAttachment {
            target: "default".into(),
            ..Default::default()
        };
        apply_legacy(&mut n, legacy)?;
        endpoints.insert("default".to_string(), endpoint(&n)?);
        return Ok(("default".into(), endpoints));
    }
    let (mut user_defined, mut builtin) = (false, false);
    for (i, n) in networks.iter().enumerate() {
        let mut n = n.clone();
        if is_user_defined(&n.target) {
            user_defined = true;
        } else {
            builtin = true;
        }
        if i == 0 {
            apply_legacy(&mut n, legacy)?;
        }
        let ep = endpoint(&n)?;
        if endpoints.contains_key(&n.target) {
            return Err(format!(
                "network {:?} is specified multiple times",
                n.target
            ));
        }
        if i == 0 && networks.len() == 1 && ep == EndpointSettings::default() {
            continue;
        }
        endpoints.insert(n.target.clone(), ep);
    }
    if user_defined && builtin {
        return Err(
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
                .into(),
        );
    }
    Ok((networks[0].target.clone(), endpoints))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_long_network_values() {
        assert_eq!(parse_network("mynet").unwrap().target, "mynet");
        assert_eq!(
            parse_network("container:abc").unwrap().target,
            "container:abc"
        );
        let n = parse_network("name=mynet,alias=web,alias=www,ip=10.1.0.5,driver-opt=a=b").unwrap();
        assert_eq!(n.target, "mynet");
        assert_eq!(n.aliases, vec!["web", "www"]);
        assert_eq!(n.ipv4, "10.1.0.5");
        assert_eq!(n.driver_opts["a"], "b");
        assert_eq!(
            parse_network("alias=x").unwrap_err(),
            "network name/id is not specified"
        );
        assert_eq!(
            parse_network("name=x,foo=bar").unwrap_err(),
            "invalid field key foo"
        );
    }

    #[test]
    fn endpoints_from_flags() {
        let (mode, eps) = network_endpoints(&[], &LegacyNetworkFlags::default()).unwrap();
        assert_eq!(mode, "default");
        assert_eq!(eps["default"], EndpointSettings::default());

        let legacy = LegacyNetworkFlags {
            aliases: vec!["db".into()],
            ..Default::default()
        };
        assert_eq!(
            network_endpoints(&[], &legacy).unwrap_err(),
            "network-scoped aliases are only supported for user-defined networks"
        );
        let nets = vec![parse_network("mynet").unwrap()];
        let (mode, eps) = network_endpoints(&nets, &legacy).unwrap();
        assert_eq!(mode, "mynet");
        assert_eq!(eps["mynet"].aliases, Some(vec!["db".to_string()]));

        let (mode, eps) =
            network_endpoints(&[parse_network("host").unwrap()], &Default::default()).unwrap();
        assert_eq!(mode, "host");
        assert!(eps.is_empty(), "a lone plain network sends no endpoint");

        let both = vec![
            parse_network("host").unwrap(),
            parse_network("mynet").unwrap(),
        ];
        assert_eq!(
            network_endpoints(&both, &Default::default()).unwrap_err(),
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
        );
        let twice = vec![parse_network("a").unwrap(), parse_network("a").unwrap()];
        assert_eq!(
            network_endpoints(&twice, &Default::default()).unwrap_err(),
            "network \"a\" is specified multiple times"
        );
        let ip = LegacyNetworkFlags {
            ipv4: "10.0.0.9".into(),
            mac_address: "zz".into(),
            ..Default::default()
        };
        assert_eq!(
            network_endpoints(&nets, &ip).unwrap_err(),
            "zz is not a valid mac address"
        );
    }
}
