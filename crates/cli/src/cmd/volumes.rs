//! `volume create|ls|inspect|rm|prune`.

use berth_api::client::query;
use berth_cli::format::units::human_size;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{print_inspect, print_list};
use super::{Cli, CmdResult, confirm, exit_with, filters_json};

#[derive(Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

pub fn run(cli: &Cli, c: VolumeCommand) -> CmdResult {
    match c {
        VolumeCommand::Create(a) => create(cli, a),
        VolumeCommand::Ls(a) => ls(cli, a),
        VolumeCommand::Inspect(a) => inspect(cli, a),
        VolumeCommand::Rm(a) => rm(cli, a),
        VolumeCommand::Prune(a) => prune(cli, a),
    }
}

#[derive(Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long = "driver", default_value = "local")]
    driver: String,
    /// Set metadata for a volume
    #[arg(long = "label")]
    label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name")]
    name: Option<String>,
    /// VOLUME
    volume: Option<String>,
}

fn kv_map(items: &[String], what: &str) -> anyhow::Result<serde_json::Map<String, Value>> {
    let mut m = serde_json::Map::new();
    for i in items {
        let (k, v) = match i.split_once('=') {
            Some((k, v)) => (k, v),
            None if what == "label" => (i.as_str(), ""),
            None => {
                return Err(exit_with(
                    125,
                    format!(
                        "invalid argument \"{i}\" for \"-o, --opt\" flag: invalid key value pair format in driver options"
                    ),
                ));
            }
        };
        m.insert(k.to_string(), json!(v));
    }
    Ok(m)
}

fn create(cli: &Cli, a: CreateArgs) -> CmdResult {
    if let (Some(n), Some(v)) = (&a.name, &a.volume)
        && n != v
    {
        return Err(exit_with(
            1,
            "conflicting options: cannot specify a volume-name through both --name and as a positional arg",
        ));
    }
    let name = a.volume.or(a.name).unwrap_or_default();
    let body = json!({
        "Name": name,
        "Driver": a.driver,
        "DriverOpts": kv_map(&a.opt, "opt")?,
        "Labels": kv_map(&a.label, "label")?,
    });
    let v: Value = cli.client.post_json("/volumes/create", Some(&body))?;
    println!("{}", v["Name"].as_str().unwrap_or(""));
    Ok(())
}

#[derive(Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long = "format")]
    format: Option<String>,
    /// Only display volume names
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
}

fn ls(cli: &Cli, a: LsArgs) -> CmdResult {
    let q = match filters_json(&a.filter)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let v: Value = cli.client.get_json(&format!("/volumes{q}"))?;
    let mut vols: Vec<Value> = v["Volumes"].as_array().cloned().unwrap_or_default();
    vols.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    if a.quiet {
        for v in &vols {
            println!("{}", v["Name"].as_str().unwrap_or(""));
        }
        return Ok(());
    }
    let rows: Vec<Value> = vols
        .iter()
        .map(|v| {
            let labels: Vec<String> = v["Labels"]
                .as_object()
                .map(|m| m.iter().map(|(k, x)| format!("{k}={}", x.as_str().unwrap_or(""))).collect())
                .unwrap_or_default();
            json!({
                "Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"], "Mountpoint": v["Mountpoint"],
                "Labels": labels.join(","), "Size": "N/A", "Links": "N/A",
            })
        })
        .collect();
    let headers = json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE", "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Size": "SIZE", "Links": "LINKS"});
    print_list(
        a.format.as_deref(),
        "table {{.Driver}}\t{{.Name}}",
        &headers,
        &rows,
    )
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    format: Option<String>,
    /// VOLUME...
    #[arg(required = true)]
    names: Vec<String>,
}

fn inspect(cli: &Cli, a: InspectArgs) -> CmdResult {
    let mut found = Vec::new();
    let mut failed = false;
    for n in &a.names {
        match cli.client.get_json::<Value>(&format!("/volumes/{n}")) {
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
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// VOLUME...
    #[arg(required = true)]
    names: Vec<String>,
}

fn rm(cli: &Cli, a: RmArgs) -> CmdResult {
    let q = if a.force { "?force=1" } else { "" };
    let mut failed = false;
    for n in &a.names {
        match cli.client.call("DELETE", &format!("/volumes/{n}{q}")) {
            Ok(_) => println!("{n}"),
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
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    force: bool,
}

fn prune(cli: &Cli, a: PruneArgs) -> CmdResult {
    let warning = if a.all {
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !a.force && !confirm(&format!("{warning}\nAre you sure you want to continue?")) {
        return Ok(());
    }
    let mut filters = a.filter.clone();
    if a.all {
        filters.push("all=true".into());
    }
    let q = match filters_json(&filters)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let r: Value = cli
        .client
        .post_json::<(), _>(&format!("/volumes/prune{q}"), None)?;
    if let Some(list) = r["VolumesDeleted"].as_array()
        && !list.is_empty()
    {
        println!("Deleted Volumes:");
        for v in list {
            println!("{}", v.as_str().unwrap_or(""));
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(r["SpaceReclaimed"].as_f64().unwrap_or(0.0))
    );
    Ok(())
}
