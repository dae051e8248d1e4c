//! berth's nftables rules: one `table ip <name>` holding NAT (masquerade, published-port
//! DNAT) and forwarding (isolation between bridges, internal networks). The whole table is
//! replaced in one `nft -f` transaction, so the kernel never sees half a rule set.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use crate::addr::Ipv4Net;

/// One bridge network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnets: Vec<Ipv4Net>,
    pub masquerade: bool,
    pub internal: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A published port: `host_ip:host_port/proto` → `dest:dest_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dnat {
    pub proto: Proto,
    /// None: every local address.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub dest: Ipv4Addr,
    pub dest_port: u16,
    /// The bridge the destination sits on.
    pub bridge: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub table: String,
    pub bridges: Vec<BridgeRules>,
    pub ports: Vec<Dnat>,
    /// Drop forwarded traffic that no berth rule accepts (docker's FORWARD policy DROP).
    pub forward_drop: bool,
    /// Without the userland proxy, containers reach published ports of their own bridge
    /// through DNAT and need hairpin masquerade.
    pub hairpin: bool,
}

/// Interface and table names go into the rules quoted; allow only safe characters.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub fn valid_table(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl Ruleset {
    /// The table definition in nft's own syntax.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let t = &self.table;
        let _ = writeln!(s, "table ip {t} {{");
        s.push_str("\tset bridges {\n\t\ttype ifname\n");
        if !self.bridges.is_empty() {
            let names: Vec<String> = self
                .bridges
                .iter()
                .map(|b| format!("\"{}\"", b.bridge))
                .collect();
            let _ = writeln!(s, "\t\telements = {{ {} }}", names.join(", "));
        }
        s.push_str("\t}\n");
        s.push_str(
            "\tchain prerouting {\n\t\ttype nat hook prerouting priority -100; policy accept;\n\t\tfib daddr type local jump ports\n\t}\n",
        );
        s.push_str(
            "\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n\t\tip daddr != 127.0.0.0/8 fib daddr type local jump ports\n\t}\n",
        );
        s.push_str("\tchain ports {\n");
        for p in &self.ports {
            s.push_str("\t\t");
            if !self.hairpin {
                let _ = write!(s, "iifname != \"{}\" ", p.bridge);
            }
            if let Some(ip) = p.host_ip.filter(|ip| !ip.is_unspecified()) {
                let _ = write!(s, "ip daddr {ip} ");
            }
            let _ = writeln!(
                s,
                "{} dport {} dnat to {}:{}",
                p.proto.as_str(),
                p.host_port,
                p.dest,
                p.dest_port
            );
        }
        s.push_str("\t}\n");
        s.push_str(
            "\tchain postrouting {\n\t\ttype nat hook postrouting priority 100; policy accept;\n",
        );
        for b in &self.bridges {
            for n in &b.subnets {
                if self.hairpin {
                    let _ = writeln!(
                        s,
                        "\t\toifname \"{}\" ip saddr {} ct status dnat masquerade",
                        b.bridge,
                        n.trunc()
                    );
                }
                if b.masquerade && !b.internal {
                    let _ = writeln!(
                        s,
                        "\t\tip saddr {} oifname != \"{}\" masquerade",
                        n.trunc(),
                        b.bridge
                    );
                }
            }
        }
        s.push_str("\t}\n");
        let policy = if self.forward_drop { "drop" } else { "accept" };
        let _ = writeln!(
            s,
            "\tchain forward {{\n\t\ttype filter hook forward priority 0; policy {policy};"
        );
        for b in self.bridges.iter().filter(|b| b.internal) {
            let _ = writeln!(
                s,
                "\t\tiifname \"{0}\" oifname != \"{0}\" drop\n\t\toifname \"{0}\" iifname != \"{0}\" drop",
                b.bridge
            );
        }
        s.push_str("\t\tct state established,related accept\n\t\tct status dnat accept\n");
        for b in &self.bridges {
            let _ = writeln!(
                s,
                "\t\tiifname \"{0}\" oifname @bridges oifname != \"{0}\" drop",
                b.bridge
            );
        }
        if self.forward_drop {
            s.push_str("\t\tiifname @bridges accept\n");
            // With br_netfilter, frames bridged inside other bridges (another daemon's, a VM
            // host's) pass this hook too: the drop policy is not for them.
            s.push_str(
                "\t\tiifname != @bridges oifname != @bridges meta iifkind \"bridge\" meta oifkind \"bridge\" accept\n",
            );
        }
        s.push_str("\t}\n}\n");
        s
    }
}

fn run_nft(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("running nft: {e}")))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "nft failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Replaces berth's table with `rs`, atomically.
pub fn apply(rs: &Ruleset) -> io::Result<()> {
    let t = &rs.table;
    let script = format!("table ip {t} {{}}\ndelete table ip {t}\n{}", rs.render());
    run_nft(&script)
}

/// Removes berth's table (if present).
pub fn delete(table: &str) -> io::Result<()> {
    run_nft(&format!("table ip {table} {{}}\ndelete table ip {table}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nat_isolation_and_ports() {
        let rs = Ruleset {
            table: "berth".into(),
            bridges: vec![
                BridgeRules {
                    bridge: "berth0".into(),
                    subnets: vec!["10.210.1.0/24".parse().unwrap()],
                    masquerade: true,
                    internal: false,
                },
                BridgeRules {
                    bridge: "br-int".into(),
                    subnets: vec!["10.210.2.0/24".parse().unwrap()],
                    masquerade: true,
                    internal: true,
                },
            ],
            ports: vec![Dnat {
                proto: Proto::Tcp,
                host_ip: Some(Ipv4Addr::new(127, 0, 0, 1)),
                host_port: 8080,
                dest: Ipv4Addr::new(10, 210, 1, 2),
                dest_port: 80,
                bridge: "berth0".into(),
            }],
            forward_drop: false,
            hairpin: false,
        };
        let text = rs.render();
        assert!(text.contains("ip saddr 10.210.1.0/24 oifname != \"berth0\" masquerade"));
        assert!(!text.contains("ip saddr 10.210.2.0/24 oifname"), "{text}");
        assert!(text.contains(
            "iifname != \"berth0\" ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.210.1.2:80"
        ));
        assert!(text.contains("iifname \"br-int\" oifname != \"br-int\" drop"));
        assert!(text.contains("iifname \"berth0\" oifname @bridges oifname != \"berth0\" drop"));
        assert!(text.contains("policy accept;"));
        let dropping = Ruleset {
            forward_drop: true,
            ..rs.clone()
        }
        .render();
        assert!(dropping.contains("policy drop;"));
        assert!(dropping.contains("meta iifkind \"bridge\" meta oifkind \"bridge\" accept"));
        assert!(valid_name("br-0a1b2c3d4e5f") && !valid_name("a\"b") && !valid_name(""));
        assert!(valid_table("berth_t1") && !valid_table("1x") && !valid_table("a-b"));
    }
}
