//! Port flags: `-p/--publish` (`[ip:][hostPort:]containerPort[/proto]`, ranges, and the long
//! `published=…,target=…` form) and `--expose`, parsed as go-connections' `nat` package does.

use std::collections::{BTreeMap, BTreeSet};

use berth_api::engine::PortBinding;

/// Exposed ports (`80/tcp`) and their host bindings, keyed like the API's `PortMap`.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PortSpecs {
    pub exposed: BTreeSet<String>,
    pub bindings: BTreeMap<String, Vec<PortBinding>>,
}

/// `nat.ParsePortRange`: `80` or `8000-8010`.
pub fn parse_port_range(ports: &str) -> Result<(u64, u64), String> {
    if ports.is_empty() {
        return Err("empty string specified for ports".into());
    }
    let num = |s: &str| {
        s.parse::<u16>().map(u64::from).map_err(|_| {
            if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
                format!("strconv.ParseUint: parsing {s:?}: value out of range")
            } else {
                format!("strconv.ParseUint: parsing {s:?}: invalid syntax")
            }
        })
    };
    match ports.split_once('-') {
        None => {
            let p = num(ports)?;
            Ok((p, p))
        }
        Some((a, b)) => {
            let b = b.split('-').next().unwrap_or(b);
            let (start, end) = (num(a)?, num(b)?);
            if end < start {
                return Err(format!("invalid range specified for port: {ports}"));
            }
            Ok((start, end))
        }
    }
}

/// `nat.SplitProtoPort`: `80/udp` → ("udp", "80"); the protocol defaults to tcp.
pub fn split_proto_port(raw: &str) -> (String, String) {
    let (port, proto) = raw.split_once('/').unwrap_or((raw, ""));
    if port.is_empty() {
        return (String::new(), String::new());
    }
    let proto = if proto.is_empty() { "tcp" } else { proto };
    (proto.to_string(), port.to_string())
}

fn split_parts(raw: &str) -> (String, String, String) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.len() {
        1 => (String::new(), String::new(), parts[0].into()),
        2 => (String::new(), parts[0].into(), parts[1].into()),
        3 => (parts[0].into(), parts[1].into(), parts[2].into()),
        n => (
            parts[..n - 2].join(":"),
            parts[n - 2].into(),
            parts[n - 1].into(),
        ),
    }
}

/// `nat.ParsePortSpec`: one `-p` value, expanded to (port, binding) pairs.
pub fn parse_port_spec(raw: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let (mut ip, host_port, container) = split_parts(raw);
    let (proto, container_port) = split_proto_port(&container);
    let proto = proto.to_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    if ip.starts_with('[') {
        ip = match ip.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            Some(inner) if !inner.contains(['[', ']']) => inner.to_string(),
            _ => {
                return Err(format!(
                    "invalid IP address {ip}: address {ip}: missing ']' in address"
                ));
            }
        };
    }
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container_port.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    let (start, end) = parse_port_range(&container_port)
        .map_err(|_| format!("invalid containerPort: {container_port}"))?;
    let (mut host_start, mut host_end) = (0, 0);
    if !host_port.is_empty() {
        (host_start, host_end) =
            parse_port_range(&host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?;
        if end - start != host_end - host_start && end != start {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
            ));
        }
    }
    let count = end - start + 1;
    Ok((0..count)
        .map(|i| {
            let port = format!("{}/{proto}", start + i);
            let mut host = String::new();
            if !host_port.is_empty() {
                host = (host_start + i).to_string();
                if count == 1 && host_start != host_end {
                    host = format!("{host}-{host_end}");
                }
            }
            (
                port,
                PortBinding {
                    host_ip: Some(ip.clone()),
                    host_port: Some(host),
                },
            )
        })
        .collect())
}

/// docker's `convertToStandardNotation`: `published=8080,target=80,protocol=udp` →
/// `8080:80/udp`; other values pass through.
pub fn to_standard_notation(publish: &str) -> Result<String, String> {
    if !publish.contains('=') {
        return Ok(publish.to_string());
    }
    let mut params: BTreeMap<&str, &str> = BTreeMap::from([("protocol", "tcp")]);
    for param in publish.split(',') {
        match param.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                params.insert(k, v);
            }
            _ => {
                return Err(format!(
                    "invalid publish opts format (should be name=value but got '{param}')"
                ));
            }
        }
    }
    let get = |k: &str| params.get(k).copied().unwrap_or("");
    Ok(format!(
        "{}:{}/{}",
        get("published"),
        get("target"),
        get("protocol")
    ))
}

/// `-p` values and `--expose` values, as docker's `parse()` merges them.
pub fn parse_ports(publish: &[String], expose: &[String]) -> Result<PortSpecs, String> {
    let mut specs = PortSpecs::default();
    for p in publish {
        let std = to_standard_notation(p)?;
        for (port, binding) in parse_port_spec(&std)? {
            specs.exposed.insert(port.clone());
            specs.bindings.entry(port).or_default().push(binding);
        }
    }
    for e in expose {
        if e.contains(':') {
            return Err(format!("invalid port format for --expose: {e}"));
        }
        let (proto, port) = split_proto_port(e);
        let (start, end) = parse_port_range(&port)
            .map_err(|err| format!("invalid range format for --expose: {e}, error: {err}"))?;
        for p in start..=end {
            specs.exposed.insert(format!("{p}/{proto}"));
        }
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(ip: &str, port: &str) -> PortBinding {
        PortBinding {
            host_ip: Some(ip.into()),
            host_port: Some(port.into()),
        }
    }

    #[test]
    fn single_ports() {
        assert_eq!(
            parse_port_spec("80").unwrap(),
            vec![("80/tcp".to_string(), binding("", ""))]
        );
        assert_eq!(
            parse_port_spec("8080:80").unwrap(),
            vec![("80/tcp".to_string(), binding("", "8080"))]
        );
        assert_eq!(
            parse_port_spec("127.0.0.1:8080:80/udp").unwrap(),
            vec![("80/udp".to_string(), binding("127.0.0.1", "8080"))]
        );
        assert_eq!(
            parse_port_spec("127.0.0.1::80").unwrap(),
            vec![("80/tcp".to_string(), binding("127.0.0.1", ""))]
        );
        assert_eq!(
            parse_port_spec("[::1]:8080:80").unwrap(),
            vec![("80/tcp".to_string(), binding("::1", "8080"))]
        );
        assert_eq!(
            parse_port_spec("80/SCTP").unwrap()[0].0,
            "80/sctp".to_string()
        );
    }

    #[test]
    fn ranges() {
        let got = parse_port_spec("8000-8001:80-81").unwrap();
        assert_eq!(
            got,
            vec![
                ("80/tcp".to_string(), binding("", "8000")),
                ("81/tcp".to_string(), binding("", "8001")),
            ]
        );
        // One container port published on a host range: the daemon picks one.
        assert_eq!(
            parse_port_spec("8000-8010:80").unwrap(),
            vec![("80/tcp".to_string(), binding("", "8000-8010"))]
        );
        assert_eq!(parse_port_spec("1000-1002").unwrap().len(), 3);
        assert_eq!(
            parse_port_spec("8000-8002:80-81").unwrap_err(),
            "invalid ranges specified for container and host Ports: 80-81 and 8000-8002"
        );
    }

    #[test]
    fn bad_specs() {
        assert_eq!(parse_port_spec("80/foo").unwrap_err(), "invalid proto: foo");
        assert_eq!(
            parse_port_spec("abc").unwrap_err(),
            "invalid containerPort: abc"
        );
        assert_eq!(parse_port_spec("x:80").unwrap_err(), "invalid hostPort: x");
        assert_eq!(
            parse_port_spec("1.2.3:80:80").unwrap_err(),
            "invalid IP address: 1.2.3"
        );
        // docker checks the (empty) protocol first.
        assert_eq!(parse_port_spec("8080:").unwrap_err(), "invalid proto: ");
        assert_eq!(
            parse_port_spec("70000").unwrap_err(),
            "invalid containerPort: 70000"
        );
    }

    #[test]
    fn long_form_and_expose() {
        assert_eq!(
            to_standard_notation("published=8080,target=80").unwrap(),
            "8080:80/tcp"
        );
        assert_eq!(
            to_standard_notation("target=53,published=5353,protocol=udp").unwrap(),
            "5353:53/udp"
        );
        assert_eq!(
            to_standard_notation("published=1,oops").unwrap_err(),
            "invalid publish opts format (should be name=value but got 'oops')"
        );
        let specs = parse_ports(
            &["8080:80".into(), "9090:80".into()],
            &["443".into(), "7000-7001/udp".into(), "80".into()],
        )
        .unwrap();
        assert_eq!(
            specs.exposed.iter().cloned().collect::<Vec<_>>(),
            vec!["443/tcp", "7000/udp", "7001/udp", "80/tcp"]
        );
        assert_eq!(specs.bindings["80/tcp"].len(), 2);
        assert_eq!(
            parse_ports(&[], &["1:2".into()]).unwrap_err(),
            "invalid port format for --expose: 1:2"
        );
        assert_eq!(
            parse_ports(&[], &["x".into()]).unwrap_err(),
            "invalid range format for --expose: x, error: strconv.ParseUint: parsing \"x\": invalid syntax"
        );
    }
}
