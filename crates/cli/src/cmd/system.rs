//! `version`, `info`, `system df`.

use clap::Args;
use serde_json::{Value, json};

use super::output::{print_list, render_value};
use super::{Cli, CmdResult};
use berth_cli::format::units::{bytes_size, human_size};

#[derive(Args)]
pub struct VersionArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    format: Option<String>,
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

pub fn version(cli: &Cli, a: VersionArgs) -> CmdResult {
    let client = json!({
        "Version": berth_api::VERSION,
        "ApiVersion": berth_api::API_VERSION,
        "Os": "linux",
        "Arch": berth_arch(),
        "Context": "default",
    });
    let server: Result<Value, _> = cli.client.get_json("/version");
    if let Some(f) = &a.format {
        let server = server.as_ref().ok().cloned().unwrap_or(Value::Null);
        println!(
            "{}",
            render_value(f, &json!({"Client": client, "Server": server}))?
        );
        return server_err(server_result(server));
    }
    println!("Client:");
    println!(" Version:           {}", berth_api::VERSION);
    println!(" API version:       {}", berth_api::API_VERSION);
    println!(" OS/Arch:           linux/{}", berth_arch());
    println!(" Context:           default");
    let server = server?;
    println!();
    println!(
        "Server: {}",
        server
            .pointer("/Platform/Name")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    for c in server
        .get("Components")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        println!(" {}:", s(&c, "Name"));
        println!("  Version:          {}", s(&c, "Version"));
        let d = c.get("Details").cloned().unwrap_or(Value::Null);
        if !s(&d, "ApiVersion").is_empty() {
            println!(
                "  API version:      {} (minimum version {})",
                s(&d, "ApiVersion"),
                s(&d, "MinAPIVersion")
            );
            println!("  OS/Arch:          {}/{}", s(&d, "Os"), s(&d, "Arch"));
            println!("  Experimental:     {}", s(&d, "Experimental"));
        }
    }
    Ok(())
}

fn server_result(v: Value) -> Result<Value, ()> {
    if v.is_null() { Err(()) } else { Ok(v) }
}

fn server_err(r: Result<Value, ()>) -> CmdResult {
    match r {
        Ok(_) => Ok(()),
        Err(()) => Err(super::exit_with(1, "")),
    }
}

fn berth_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    format: Option<String>,
}

pub fn info(cli: &Cli, a: InfoArgs) -> CmdResult {
    let i: Value = cli.client.get_json("/info")?;
    if let Some(f) = &a.format {
        println!("{}", render_value(f, &i)?);
        return Ok(());
    }
    let n = |k: &str| i.get(k).map(|v| v.to_string()).unwrap_or_default();
    println!("Client:");
    println!(" Version:    {}", berth_api::VERSION);
    println!(" Context:    default");
    println!();
    println!("Server:");
    println!(" Containers: {}", n("Containers"));
    println!("  Running: {}", n("ContainersRunning"));
    println!("  Paused: {}", n("ContainersPaused"));
    println!("  Stopped: {}", n("ContainersStopped"));
    println!(" Images: {}", n("Images"));
    println!(" Server Version: {}", s(&i, "ServerVersion"));
    println!(" Storage Driver: {}", s(&i, "Driver"));
    for pair in i
        .get("DriverStatus")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        if let Some(p) = pair.as_array()
            && p.len() == 2
        {
            println!(
                "  {}: {}",
                p[0].as_str().unwrap_or(""),
                p[1].as_str().unwrap_or("")
            );
        }
    }
    println!(" Logging Driver: {}", s(&i, "LoggingDriver"));
    println!(" Cgroup Driver: {}", s(&i, "CgroupDriver"));
    println!(" Cgroup Version: {}", s(&i, "CgroupVersion"));
    println!(
        " Swarm: {}",
        i.pointer("/Swarm/LocalNodeState")
            .and_then(Value::as_str)
            .unwrap_or("inactive")
    );
    println!(" Default Runtime: {}", s(&i, "DefaultRuntime"));
    println!(" Kernel Version: {}", s(&i, "KernelVersion"));
    println!(" Operating System: {}", s(&i, "OperatingSystem"));
    println!(" OSType: {}", s(&i, "OSType"));
    println!(" Architecture: {}", s(&i, "Architecture"));
    println!(" CPUs: {}", n("NCPU"));
    println!(
        " Total Memory: {}",
        bytes_size(i.get("MemTotal").and_then(Value::as_f64).unwrap_or(0.0))
    );
    println!(" Name: {}", s(&i, "Name"));
    println!(" ID: {}", s(&i, "ID"));
    println!(" Docker Root Dir: {}", s(&i, "DockerRootDir"));
    println!(" Debug Mode: {}", n("Debug"));
    println!(" Experimental: {}", n("ExperimentalBuild"));
    println!(" Live Restore Enabled: {}", n("LiveRestoreEnabled"));
    Ok(())
}

#[derive(Args)]
pub struct DfArgs {
    /// Format output using a custom template
    #[arg(long = "format")]
    format: Option<String>,
    /// Show detailed information on space usage
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
}

pub fn df(cli: &Cli, a: DfArgs) -> CmdResult {
    let du: Value = cli.client.get_json("/system/df")?;
    let arr = |k: &str| {
        du.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_i64).unwrap_or(0);
    let pct = |r: i64, t: i64| {
        if t > 0 {
            format!(" ({}%)", r * 100 / t)
        } else {
            String::new()
        }
    };
    let row = |kind: &str, total: usize, active: usize, size: i64, reclaim: i64| {
        json!({"Type": kind, "TotalCount": total.to_string(), "Active": active.to_string(),
               "Size": human_size(size as f64), "Reclaimable": format!("{}{}", human_size(reclaim as f64), pct(reclaim, size))})
    };
    let images = arr("Images");
    let layers = du.get("LayersSize").and_then(Value::as_i64).unwrap_or(0);
    let used: Vec<&Value> = images.iter().filter(|i| num(i, "Containers") > 0).collect();
    let used_size: i64 = used.iter().map(|i| num(i, "Size")).sum();
    let containers = arr("Containers");
    let running = containers
        .iter()
        .filter(|c| c["State"] == "running" || c["State"] == "paused")
        .count();
    let csize: i64 = containers.iter().map(|c| num(c, "SizeRw")).sum();
    let creclaim: i64 = containers
        .iter()
        .filter(|c| c["State"] != "running" && c["State"] != "paused")
        .map(|c| num(c, "SizeRw"))
        .sum();
    let volumes = arr("Volumes");
    let vusage = |v: &Value, k: &str| {
        v.pointer(&format!("/UsageData/{k}"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let vactive = volumes.iter().filter(|v| vusage(v, "RefCount") > 0).count();
    let vsize: i64 = volumes.iter().map(|v| vusage(v, "Size")).sum();
    let vreclaim: i64 = volumes
        .iter()
        .filter(|v| vusage(v, "RefCount") == 0)
        .map(|v| vusage(v, "Size"))
        .sum();
    let rows = vec![
        row(
            "Images",
            images.len(),
            used.len(),
            layers,
            (layers - used_size).max(0),
        ),
        row("Containers", containers.len(), running, csize, creclaim),
        row("Local Volumes", volumes.len(), vactive, vsize, vreclaim),
        row("Build Cache", arr("BuildCache").len(), 0, 0, 0),
    ];
    let _ = a.verbose;
    let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    print_list(
        a.format.as_deref(),
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        &headers,
        &rows,
    )
}
