//! `ps` / `container ls`: docker's columns, truncation and `--format` fields for
//! `GET /containers/json`.

use berth_api::client::query;
use berth_api::models::{ContainerSummary, PortSummary};
use clap::Args;
use serde_json::{Value, json};

use super::output::{created_since, print_list};
use super::reference::{Reference, is_full_id};
use super::{Cli, CmdResult, filters_json};
use berth_cli::format::gofmt::quote;
use berth_cli::format::text::{ellipsis, truncate_id};
use berth_cli::format::time::go_time_string;
use berth_cli::format::units::human_size;

#[derive(Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long = "format")]
    format: Option<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long = "latest")]
    latest: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Only display container IDs
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Display total file sizes
    #[arg(short = 's', long = "size", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::run_opts::go_bool, action = clap::ArgAction::Set)]
    size: Option<bool>,
}

const DEFAULT_FORMAT: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// The `--format` header names.
fn headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE", "Command": "COMMAND",
        "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE",
        "Status": "STATUS", "Size": "SIZE", "Labels": "LABELS", "Mounts": "MOUNTS",
        "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS", "Platform": "PLATFORM",
    })
}

/// docker's `ContainerContext.Image`: with truncation, an image ID shows as 12 digits and a
/// reference in its familiar form without digest.
pub fn display_image(image: &str, image_id: &str, trunc: bool) -> String {
    if image.is_empty() {
        return "<no image>".into();
    }
    if trunc {
        if truncate_id(image_id) == truncate_id(image) {
            return truncate_id(image_id);
        }
        if !is_full_id(image)
            && let Ok(r) = Reference::parse(image)
        {
            let mut r = r;
            r.digest = None;
            return r.familiar_string();
        }
    }
    image.to_string()
}

/// docker's `DisplayablePorts`: consecutive ports grouped into ranges, host mappings last.
pub fn displayable_ports(ports: &[PortSummary]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_by(|a, b| {
        a.private_port
            .cmp(&b.private_port)
            .then_with(|| a.ip.cmp(&b.ip))
            .then_with(|| a.public_port.cmp(&b.public_port))
            .then_with(|| a.kind.cmp(&b.kind))
    });
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in &ports {
        let current = p.private_port;
        let mut key = p.kind.clone();
        if let Some(ip) = p.ip.as_deref().filter(|ip| !ip.is_empty()) {
            let public = p.public_port.unwrap_or(0);
            if public != current {
                host_mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(ip, &public.to_string()),
                    p.private_port,
                    p.kind
                ));
                continue;
            }
            key = format!("{ip}/{}", p.kind);
        }
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            None => groups.push((key, current, current)),
            Some(g) if current == g.2.wrapping_add(1) => g.2 = current,
            Some(g) => {
                result.push(form_group(&g.0, g.1, g.2));
                g.1 = current;
                g.2 = current;
            }
        }
    }
    for (k, first, last) in &groups {
        result.push(form_group(k, *first, *last));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn form_group(key: &str, start: u16, last: u16) -> String {
    let (ip, kind) = match key.rsplit_once('/') {
        Some((ip, kind)) => (ip, kind),
        None => ("", key),
    };
    let mut group = start.to_string();
    if start != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{group}", join_host_port(ip, &group));
    }
    format!("{group}/{kind}")
}

/// One row of `ps` for templates, with docker's field names and values.
pub fn row(c: &ContainerSummary, trunc: bool, label_map: bool) -> Value {
    let names: Vec<String> = c
        .names
        .iter()
        .map(|n| n.strip_prefix('/').unwrap_or(n).to_string())
        .collect();
    let names = if trunc {
        match names.iter().find(|n| !n.contains('/')) {
            Some(n) => vec![n.clone()],
            None => names,
        }
    } else {
        names
    };
    let mut labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    let mounts: Vec<String> = c
        .mounts
        .iter()
        .map(|m| {
            let name = if m.name.is_empty() {
                &m.source
            } else {
                &m.name
            };
            if trunc {
                ellipsis(name, 15)
            } else {
                name.clone()
            }
        })
        .collect();
    let networks: Vec<&String> = c
        .network_settings
        .as_ref()
        .map(|n| n.networks.keys().collect())
        .unwrap_or_default();
    let size_rw = c.size_rw.unwrap_or(0);
    let size_root = c.size_root_fs.unwrap_or(0);
    let size = if size_root > 0 {
        format!(
            "{} (virtual {})",
            human_size(size_rw as f64),
            human_size(size_root as f64)
        )
    } else {
        human_size(size_rw as f64)
    };
    let platform = c
        .image_manifest_descriptor
        .as_ref()
        .and_then(|d| d.get("platform"))
        .map(|p| {
            let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let mut out = format!("{}/{}", s("os"), s("architecture"));
            if !s("variant").is_empty() {
                out = format!("{out}/{}", s("variant"));
            }
            Value::String(out)
        })
        .unwrap_or(Value::Null);
    let command = if trunc {
        ellipsis(&c.command, 20)
    } else {
        c.command.clone()
    };
    let mut v = json!({
        "Command": quote(&command),
        "CreatedAt": go_time_string(c.created),
        "ID": if trunc { truncate_id(&c.id) } else { c.id.clone() },
        "Image": display_image(&c.image, &c.image_id, trunc),
        "Labels": labels.join(","),
        "LocalVolumes": c.mounts.iter().filter(|m| m.driver == "local").count().to_string(),
        "Mounts": mounts.join(","),
        "Names": names.join(","),
        "Networks": networks.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(","),
        "Platform": platform,
        "Ports": displayable_ports(&c.ports),
        "RunningFor": created_since(c.created),
        "Size": size,
        "State": c.state,
        "Status": c.status,
    });
    if label_map {
        v["LabelMap"] = serde_json::to_value(&c.labels).unwrap_or(Value::Null);
    }
    v
}

/// docker's `.Label "key"` is a method call, which gtmpl cannot make: it is rewritten as
/// `index .LabelMap "key"` over a map the row then carries.
pub fn rewrite_label_calls(format: &str) -> (String, bool) {
    if !format.contains(".Label ") {
        return (format.to_string(), false);
    }
    (format.replace(".Label ", "index .LabelMap "), true)
}

pub fn ps(cli: &Cli, a: PsArgs) -> CmdResult {
    let format = a.format.clone().unwrap_or_default();
    if a.quiet && !format.is_empty() {
        eprintln!("WARNING: Ignoring custom format, because both --format and --quiet are set.");
    }
    let mut size = a.size.unwrap_or(false);
    if !format.is_empty() && !a.quiet && a.size.is_none() && format.contains(".Size") {
        size = true;
    }
    let mut limit = a.last;
    if a.latest && limit == -1 {
        limit = 1;
    }
    let mut q: Vec<(&str, String)> = Vec::new();
    if a.all {
        q.push(("all", "1".into()));
    }
    if limit > 0 {
        q.push(("limit", limit.to_string()));
    }
    if size {
        q.push(("size", "1".into()));
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let list: Vec<ContainerSummary> = cli
        .client
        .get_json(&format!("/containers/json{}", query(&q)))?;
    let trunc = !a.no_trunc;
    if a.quiet {
        for c in &list {
            println!(
                "{}",
                if trunc {
                    truncate_id(&c.id)
                } else {
                    c.id.clone()
                }
            );
        }
        return Ok(());
    }
    let (format, label_map) = rewrite_label_calls(&format);
    let rows: Vec<Value> = list.iter().map(|c| row(c, trunc, label_map)).collect();
    let default = if size {
        format!("{DEFAULT_FORMAT}\t{{{{.Size}}}}")
    } else {
        DEFAULT_FORMAT.to_string()
    };
    let format = if format == "raw" {
        let mut raw = "container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\ncreated_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\nstatus: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\nports: {{- pad .Ports 1 0}}\n".to_string();
        if size {
            raw.push_str("size: {{.Size}}\\n");
        }
        raw
    } else {
        format
    };
    print_list(Some(&format), &default, &headers(), &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::models::{MountPointSummary, SummaryNetworkSettings};
    use berth_cli::format::template::render_list;

    fn port(ip: Option<&str>, private: u16, public: Option<u16>, kind: &str) -> PortSummary {
        PortSummary {
            ip: ip.map(str::to_string),
            private_port: private,
            public_port: public,
            kind: kind.into(),
        }
    }

    #[test]
    fn ports_like_docker() {
        assert_eq!(displayable_ports(&[]), "");
        assert_eq!(displayable_ports(&[port(None, 80, None, "tcp")]), "80/tcp");
        assert_eq!(
            displayable_ports(&[
                port(Some("0.0.0.0"), 80, Some(8080), "tcp"),
                port(Some("::"), 80, Some(8080), "tcp"),
            ]),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(
            displayable_ports(&[
                port(None, 6000, None, "tcp"),
                port(None, 6001, None, "tcp"),
                port(None, 6002, None, "tcp"),
                port(None, 6010, None, "tcp"),
                port(None, 53, None, "udp"),
            ]),
            // docker flushes a finished range before the groups still open.
            "6000-6002/tcp, 53/udp, 6010/tcp"
        );
        assert_eq!(
            displayable_ports(&[
                port(Some("4.3.2.1"), 9998, Some(9998), "udp"),
                port(Some("4.3.2.1"), 9999, Some(9999), "udp"),
            ]),
            "4.3.2.1:9998-9999->9998-9999/udp"
        );
    }

    #[test]
    fn images_as_docker_shows_them() {
        let id = "sha256:9a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef";
        assert_eq!(display_image("busybox", id, true), "busybox");
        assert_eq!(
            display_image("docker.io/library/busybox:latest", id, true),
            "busybox:latest"
        );
        assert_eq!(
            display_image("busybox@sha256:0123456789abcdef0123456789abcdef", id, true),
            "busybox"
        );
        assert_eq!(display_image(id, id, true), "9a1b2c3d4e5f");
        assert_eq!(display_image(&id[7..19], id, true), "9a1b2c3d4e5f");
        assert_eq!(
            display_image("docker.io/library/busybox:latest", id, false),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(display_image("", id, true), "<no image>");
    }

    fn sample() -> ContainerSummary {
        ContainerSummary {
            id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            names: vec!["/web".into(), "/other/link".into()],
            image: "busybox".into(),
            image_id: "sha256:ffff".into(),
            command: "sh -c 'while true; do sleep 1; done'".into(),
            created: super::super::now_secs() - 7,
            ports: vec![port(Some("0.0.0.0"), 80, Some(8080), "tcp")],
            labels: [
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "1".to_string()),
            ]
            .into(),
            state: "running".into(),
            status: "Up 5 seconds".into(),
            network_settings: Some(SummaryNetworkSettings {
                networks: [("bridge".to_string(), Value::Null)].into(),
            }),
            mounts: vec![MountPointSummary {
                name: "0123456789abcdef0123".into(),
                driver: "local".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn row_fields() {
        let r = row(&sample(), true, false);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Names"], "web");
        assert_eq!(r["Command"], "\"sh -c 'while true; …\"");
        assert_eq!(r["RunningFor"], "7 seconds ago");
        assert_eq!(r["Ports"], "0.0.0.0:8080->80/tcp");
        assert_eq!(r["Labels"], "a=1,b=2");
        assert_eq!(r["Mounts"], "0123456789abcd…");
        assert_eq!(r["LocalVolumes"], "1");
        assert_eq!(r["Networks"], "bridge");
        assert_eq!(r["Size"], "0B");
        assert!(r.get("LabelMap").is_none());
        let full = row(&sample(), false, true);
        assert_eq!(full["Names"], "web,other/link");
        assert_eq!(full["LabelMap"]["a"], "1");
    }

    #[test]
    fn default_table() {
        let rows = vec![row(&sample(), true, false)];
        let mut out = Vec::new();
        render_list("", DEFAULT_FORMAT, &headers(), &rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS                  NAMES"
        );
        assert_eq!(
            lines.next().unwrap(),
            "0123456789ab   busybox   \"sh -c 'while true; …\"   7 seconds ago   Up 5 seconds   0.0.0.0:8080->80/tcp   web"
        );
    }

    #[test]
    fn label_method_calls() {
        let (f, used) = rewrite_label_calls("{{.Names}} {{.Label \"a\"}}");
        assert!(used);
        let rows = vec![row(&sample(), true, used)];
        let mut out = Vec::new();
        render_list(&f, DEFAULT_FORMAT, &headers(), &rows, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "web 1\n");
    }
}
