//! `network create|ls|inspect|rm|prune|connect|disconnect`, as the docker CLI has them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use berth_api::client::{Body, query};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{print_inspect, print_list};
use super::{Cli, CmdResult, confirm, exit_with, filters_json};

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Create a network
    Create(CreateArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(RmArgs),
}

pub fn run(cli: &Cli, c: NetworkCommand) -> CmdResult {
    match c {
        NetworkCommand::Connect(a) => connect(cli, a),
        NetworkCommand::Create(a) => create(cli, a),
        NetworkCommand::Disconnect(a) => disconnect(cli, a),
        NetworkCommand::Inspect(a) => inspect(cli, a),
        NetworkCommand::Ls(a) => ls(cli, a),
        NetworkCommand::Prune(a) => prune(cli, a),
        NetworkCommand::Rm(a) => rm(cli, a),
    }
}

#[derive(Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long = "driver", default_value = "bridge")]
    driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Set metadata on a network
    #[arg(long = "label")]
    label: Vec<String>,
    /// Restrict external access to the network
    #[arg(long = "internal")]
    internal: bool,
    /// Enable manual container attachment
    #[arg(long = "attachable")]
    attachable: bool,
    /// Create swarm routing-mesh network
    #[arg(long = "ingress")]
    ingress: bool,
    /// Enable or disable IPv6 address assignment
    #[arg(long = "ipv6")]
    ipv6: bool,
    /// Control the network's scope
    #[arg(long = "scope")]
    scope: Option<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    ipam_driver: String,
    /// Set IPAM driver specific options
    #[arg(long = "ipam-opt")]
    ipam_opt: Vec<String>,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long = "subnet", value_delimiter = ',')]
    subnet: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range", value_delimiter = ',')]
    ip_range: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long = "gateway", value_delimiter = ',')]
    gateway: Vec<String>,
    /// Auxiliary IPv4 or IPv6 addresses used by Network driver
    #[arg(long = "aux-address")]
    aux_address: Vec<String>,
    /// NETWORK
    name: String,
}

fn kv(items: &[String], flag: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut m = serde_json::Map::new();
    for i in items {
        let (k, v) = match i.split_once('=') {
            Some(kv) => kv,
            None if flag == "label" => (i.as_str(), ""),
            None => {
                return Err(exit_with(
                    125,
                    format!(
                        "invalid argument \"{i}\" for \"{flag}\" flag: invalid key value pair format in driver options"
                    ),
                ));
            }
        };
        m.insert(k.to_string(), json!(v));
    }
    Ok(m)
}

/// An IPv4 prefix as Go's `net.ParseCIDR` reads it: (network, bits).
fn parse_cidr(s: &str) -> Option<(u32, u8)> {
    let (a, p) = s.split_once('/')?;
    let ip: Ipv4Addr = a.parse().ok()?;
    let bits: u8 = p.parse().ok().filter(|b| *b <= 32)?;
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Some((u32::from(ip) & mask, bits))
}

fn contains(subnet: &str, data: &str) -> Result<bool, String> {
    let (net, bits) = parse_cidr(subnet)
        .ok_or_else(|| format!("invalid subnet: invalid CIDR address: {subnet}"))?;
    let ip: Ipv4Addr = if data.contains('/') {
        let (a, _) = data.split_once('/').unwrap();
        a.parse()
            .map_err(|_| format!("invalid CIDR address: {data}"))?
    } else {
        match data.parse() {
            Ok(ip) => ip,
            Err(_) => return Ok(false),
        }
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Ok(u32::from(ip) & mask == net)
}

/// docker's `createIPAMConfig`: subnets, ranges and gateways grouped by subnet.
pub fn ipam_config(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
) -> Result<Vec<Value>, String> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    let mut data: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for s in subnets {
        for (k, _, _) in &data {
            if contains(s, k)? || contains(k, s)? {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        data.push((s.clone(), None, None));
    }
    for r in ranges {
        if parse_cidr(r).is_none() {
            return Err(format!(
                "invalid argument \"{r}\" for \"--ip-range\" flag: invalid CIDR address: {r}"
            ));
        }
        let mut matched = false;
        for (s, range, _) in data.iter_mut() {
            if !contains(s, r)? {
                continue;
            }
            if let Some(old) = range {
                return Err(format!(
                    "cannot configure multiple ranges ({r}, {old}) on the same subnet ({s})"
                ));
            }
            *range = Some(r.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in gateways {
        if g.parse::<Ipv4Addr>().is_err() {
            return Err(format!(
                "invalid argument \"{g}\" for \"--gateway\" flag: invalid string being converted to IP address: {g}"
            ));
        }
        let mut matched = false;
        for (s, _, gw) in data.iter_mut() {
            if !contains(s, g)? {
                continue;
            }
            if let Some(old) = gw {
                return Err(format!(
                    "cannot configure multiple gateways ({g}, {old}) for the same subnet ({s})"
                ));
            }
            *gw = Some(g.clone());
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    Ok(data
        .into_iter()
        .map(|(s, r, g)| {
            let mut m = json!({"Subnet": s});
            if let Some(r) = r {
                m["IPRange"] = json!(r);
            }
            if let Some(g) = g {
                m["Gateway"] = json!(g);
            }
            m
        })
        .collect())
}

fn create(cli: &Cli, a: CreateArgs) -> CmdResult {
    let config = ipam_config(&a.subnet, &a.ip_range, &a.gateway).map_err(|e| exit_with(1, e))?;
    let mut aux = serde_json::Map::new();
    for x in &a.aux_address {
        let (k, v) = x.split_once('=').ok_or_else(|| {
            exit_with(
                125,
                format!("invalid argument \"{x}\" for \"--aux-address\" flag: bad format"),
            )
        })?;
        aux.insert(k.into(), json!(v));
    }
    let mut config = config;
    if !aux.is_empty()
        && let Some(first) = config.first_mut()
    {
        first["AuxiliaryAddresses"] = Value::Object(aux);
    }
    let body = json!({
        "Name": a.name,
        "Driver": a.driver,
        "Options": kv(&a.opt, "--opt")?,
        "Labels": kv(&a.label, "label")?,
        "Internal": a.internal,
        "Attachable": a.attachable,
        "Ingress": a.ingress,
        "EnableIPv6": a.ipv6,
        "Scope": a.scope.unwrap_or_default(),
        "IPAM": {
            "Driver": a.ipam_driver,
            "Options": kv(&a.ipam_opt, "--ipam-opt")?,
            "Config": config,
        },
    });
    let v: Value = cli.client.post_json("/networks/create", Some(&body))?;
    println!("{}", v["Id"].as_str().unwrap_or(""));
    Ok(())
}

#[derive(Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long = "format")]
    format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only display network IDs
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
}

fn ls(cli: &Cli, a: LsArgs) -> CmdResult {
    let q = match filters_json(&a.filter)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let mut nets: Vec<Value> = cli.client.get_json(&format!("/networks{q}"))?;
    nets.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    let id = |v: &Value| -> String {
        let id = v["Id"].as_str().unwrap_or("");
        if a.no_trunc {
            id.to_string()
        } else {
            id.chars().take(12).collect()
        }
    };
    if a.quiet {
        for v in &nets {
            println!("{}", id(v));
        }
        return Ok(());
    }
    let rows: Vec<Value> = nets
        .iter()
        .map(|v| {
            let labels: Vec<String> = v["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or("")))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "ID": id(v), "Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"],
                "IPv4": v["EnableIPv4"].as_bool().unwrap_or(true).to_string(),
                "IPv6": v["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
                "Internal": v["Internal"].as_bool().unwrap_or(false).to_string(),
                "Labels": labels.join(","), "CreatedAt": v["Created"],
            })
        })
        .collect();
    let headers = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED"});
    print_list(
        a.format.as_deref(),
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
        &headers,
        &rows,
    )
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    format: Option<String>,
    /// Verbose output for diagnostics
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// NETWORK...
    #[arg(required = true)]
    names: Vec<String>,
}

fn inspect(cli: &Cli, a: InspectArgs) -> CmdResult {
    let mut found = Vec::new();
    let mut failed = false;
    let q = if a.verbose { "?verbose=true" } else { "" };
    for n in &a.names {
        match cli.client.get_json::<Value>(&format!(
            "/networks/{}{q}",
            berth_api::client::encode_component(n)
        )) {
            Ok(v) => found.push(v),
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    print_inspect(a.format.as_deref(), &found)?;
    if failed {
        Err(exit_with(1, ""))
    } else {
        Ok(())
    }
}

#[derive(Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// NETWORK...
    #[arg(required = true)]
    names: Vec<String>,
}

fn rm(cli: &Cli, a: RmArgs) -> CmdResult {
    let mut failed = false;
    for n in &a.names {
        match cli.client.call(
            "DELETE",
            &format!("/networks/{}", berth_api::client::encode_component(n)),
        ) {
            Ok(_) => println!("{n}"),
            Err(e) if a.force && e.status() == Some(404) => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(exit_with(1, ""))
    } else {
        Ok(())
    }
}

#[derive(Args)]
pub struct PruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    force: bool,
}

fn prune(cli: &Cli, a: PruneArgs) -> CmdResult {
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?",
        )
    {
        return Ok(());
    }
    let q = match filters_json(&a.filter)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let r: Value = cli
        .client
        .post_json::<(), _>(&format!("/networks/prune{q}"), None)?;
    if let Some(list) = r["NetworksDeleted"].as_array()
        && !list.is_empty()
    {
        println!("Deleted Networks:");
        for v in list {
            println!("{}", v.as_str().unwrap_or(""));
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias")]
    alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long = "ip")]
    ip: Option<String>,
    /// IPv6 address (e.g., "2001:db8::33")
    #[arg(long = "ip6")]
    ip6: Option<String>,
    /// Add link to another container
    #[arg(long = "link")]
    link: Vec<String>,
    /// Add a link-local address for the container
    #[arg(long = "link-local-ip")]
    link_local_ip: Vec<String>,
    /// driver options for the network
    #[arg(long = "driver-opt")]
    driver_opt: Vec<String>,
    /// Highest gw-priority provides the default gateway
    #[arg(long = "gw-priority", default_value_t = 0)]
    gw_priority: i64,
    /// NETWORK
    network: String,
    /// CONTAINER
    container: String,
}

fn post_status(cli: &Cli, path: &str, body: &Value) -> CmdResult {
    cli.client
        .send(
            "POST",
            path,
            &[],
            Body::Bytes(serde_json::to_vec(body)?, "application/json"),
        )?
        .check()?;
    Ok(())
}

fn connect(cli: &Cli, a: ConnectArgs) -> CmdResult {
    let mut ep = serde_json::Map::new();
    if a.ip.is_some() || a.ip6.is_some() || !a.link_local_ip.is_empty() {
        ep.insert(
            "IPAMConfig".into(),
            json!({
                "IPv4Address": a.ip.unwrap_or_default(),
                "IPv6Address": a.ip6.unwrap_or_default(),
                "LinkLocalIPs": a.link_local_ip,
            }),
        );
    }
    if !a.alias.is_empty() {
        ep.insert("Aliases".into(), json!(a.alias));
    }
    if !a.link.is_empty() {
        ep.insert("Links".into(), json!(a.link));
    }
    if !a.driver_opt.is_empty() {
        let m: BTreeMap<String, String> = a
            .driver_opt
            .iter()
            .filter_map(|o| {
                o.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect();
        ep.insert("DriverOpts".into(), json!(m));
    }
    if a.gw_priority != 0 {
        ep.insert("GwPriority".into(), json!(a.gw_priority));
    }
    post_status(
        cli,
        &format!(
            "/networks/{}/connect",
            berth_api::client::encode_component(&a.network)
        ),
        &json!({"Container": a.container, "EndpointConfig": ep}),
    )
}

#[derive(Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// NETWORK
    network: String,
    /// CONTAINER
    container: String,
}

fn disconnect(cli: &Cli, a: DisconnectArgs) -> CmdResult {
    post_status(
        cli,
        &format!(
            "/networks/{}/disconnect",
            berth_api::client::encode_component(&a.network)
        ),
        &json!({"Container": a.container, "Force": a.force}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn ipam_like_docker_cli() {
        let c = ipam_config(
            &v(&["10.210.5.0/24"]),
            &v(&["10.210.5.128/25"]),
            &v(&["10.210.5.1"]),
        )
        .unwrap();
        assert_eq!(
            c[0],
            json!({"Subnet": "10.210.5.0/24", "IPRange": "10.210.5.128/25", "Gateway": "10.210.5.1"})
        );
        assert_eq!(
            ipam_config(&v(&["10.210.5.0/24"]), &[], &v(&["10.9.9.1"])).unwrap_err(),
            "no matching subnet for gateway 10.9.9.1"
        );
        assert_eq!(
            ipam_config(&v(&["10.210.5.0/24", "10.210.5.0/25"]), &[], &[]).unwrap_err(),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            ipam_config(&[], &[], &v(&["10.0.0.1"])).unwrap_err(),
            "every ip-range or gateway must have a corresponding subnet"
        );
        // A bad CIDR alone goes to the daemon (which names it), as with docker.
        assert!(ipam_config(&v(&["10.0.0.0/33"]), &[], &[]).is_ok());
    }
}
