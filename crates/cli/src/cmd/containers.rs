//! Container lifecycle and one-shot commands: stop, kill, restart, rm, wait, pause, unpause,
//! rename, top, port, diff, commit, export, prune, update.

use std::collections::BTreeMap;

use berth_api::client::{ClientError, query};
use berth_api::engine::{ContainerUpdateBody, ContainerUpdateResponse, PortBinding};
use berth_api::models::WaitResponse;
use clap::Args;
use serde_json::Value;

use super::opts::kv::parse_restart_policy;
use super::opts::values::{parse_cpus, parse_int, parse_mem, parse_mem_swap, parse_uint};
use super::opts::{OptError, opt};
use super::output::write_download;
use super::reference::Reference;
use super::{
    Cli, CmdResult, confirm, exit_with, filters_json, finish, leading_positional, opt_error,
    parallel,
};
use berth_cli::format::table::{TabConfig, TabWriter};
use berth_cli::format::units::human_size_4;

/// Prints each name that succeeded (in order) and fails with the others' errors.
fn report(names: &[String], results: Vec<Result<(), ClientError>>) -> CmdResult {
    let mut errors = Vec::new();
    for (name, r) in names.iter().zip(results) {
        match r {
            Ok(()) => println!("{name}"),
            Err(e) => errors.push(e.to_string()),
        }
    }
    finish(errors)
}

fn post(cli: &Cli, path: &str) -> Result<(), ClientError> {
    cli.client.call("POST", path).map(|_| ())
}

#[derive(Args)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal")]
    signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        alias = "time",
        allow_hyphen_values = true
    )]
    timeout: Option<String>,
    /// CONTAINER...
    #[arg(required = true)]
    containers: Vec<String>,
}

fn stop_query(cmd: &str, a: &StopArgs) -> Result<String, anyhow::Error> {
    let mut q = Vec::new();
    if let Some(t) =
        opt("timeout", Some('t'), &a.timeout, parse_int).map_err(|e| opt_error(cmd, e))?
    {
        q.push(("t", t.to_string()));
    }
    if let Some(s) = a.signal.as_ref().filter(|s| !s.is_empty()) {
        q.push(("signal", s.clone()));
    }
    Ok(query(&q))
}

pub fn stop(cli: &Cli, a: StopArgs) -> CmdResult {
    let q = stop_query("stop", &a)?;
    let results = parallel(&a.containers, |c| {
        post(cli, &format!("/containers/{c}/stop{q}"))
    });
    report(&a.containers, results)
}

pub fn restart(cli: &Cli, a: StopArgs) -> CmdResult {
    let q = stop_query("restart", &a)?;
    let results: Vec<_> = a
        .containers
        .iter()
        .map(|c| post(cli, &format!("/containers/{c}/restart{q}")))
        .collect();
    report(&a.containers, results)
}

#[derive(Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long = "signal")]
    signal: Option<String>,
    /// CONTAINER...
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(cli: &Cli, a: KillArgs) -> CmdResult {
    let q = match a.signal.as_ref().filter(|s| !s.is_empty()) {
        Some(s) => query(&[("signal", s.clone())]),
        None => String::new(),
    };
    let results = parallel(&a.containers, |c| {
        post(cli, &format!("/containers/{c}/kill{q}"))
    });
    report(&a.containers, results)
}

#[derive(Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Remove the specified link
    #[arg(short = 'l', long = "link")]
    link: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long = "volumes")]
    volumes: bool,
    /// CONTAINER...
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn rm(cli: &Cli, a: RmArgs) -> CmdResult {
    let mut q = Vec::new();
    if a.volumes {
        q.push(("v", "1".to_string()));
    }
    if a.link {
        q.push(("link", "1".to_string()));
    }
    if a.force {
        q.push(("force", "1".to_string()));
    }
    let q = query(&q);
    let results = parallel(&a.containers, |c| {
        let id = c.trim_matches('/');
        if id.is_empty() {
            return Err((false, "container name cannot be empty".to_string()));
        }
        cli.client
            .call("DELETE", &format!("/containers/{id}{q}"))
            .map(|_| ())
            .map_err(|e| (e.status() == Some(404), e.to_string()))
    });
    let mut errors = Vec::new();
    for (name, r) in a.containers.iter().zip(results) {
        match r {
            Ok(()) => println!("{name}"),
            // With --force a missing container is only reported.
            Err((true, e)) if a.force => eprintln!("{e}"),
            Err((_, e)) => errors.push(e),
        }
    }
    finish(errors)
}

#[derive(Args)]
pub struct NamesArgs {
    /// CONTAINER...
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn pause(cli: &Cli, a: NamesArgs) -> CmdResult {
    let results = parallel(&a.containers, |c| {
        post(cli, &format!("/containers/{c}/pause"))
    });
    report(&a.containers, results)
}

pub fn unpause(cli: &Cli, a: NamesArgs) -> CmdResult {
    let results = parallel(&a.containers, |c| {
        post(cli, &format!("/containers/{c}/unpause"))
    });
    report(&a.containers, results)
}

/// `POST /containers/{id}/wait[?condition=]`: the request is sent (and its headers read)
/// now; the body, which arrives when the condition is met, is read by the returned call.
pub fn start_wait(
    cli: &Cli,
    id: &str,
    condition: Option<&str>,
) -> Result<impl FnOnce() -> Result<WaitResponse, ClientError> + Send + use<>, ClientError> {
    let q = match condition {
        Some(c) => query(&[("condition", c.to_string())]),
        None => String::new(),
    };
    let resp = cli
        .client
        .send(
            "POST",
            &format!("/containers/{id}/wait{q}"),
            &[],
            berth_api::client::Body::Empty,
        )?
        .check()?;
    Ok(move || resp.json::<WaitResponse>())
}

pub fn wait(cli: &Cli, a: NamesArgs) -> CmdResult {
    let mut errors = Vec::new();
    for c in &a.containers {
        match start_wait(cli, c, None).and_then(|w| w()) {
            Ok(r) => println!("{}", r.status_code),
            Err(e) => errors.push(e.to_string()),
        }
    }
    finish(errors)
}

#[derive(Args)]
pub struct RenameArgs {
    /// CONTAINER
    container: String,
    /// NEW_NAME
    new_name: String,
}

pub fn rename(cli: &Cli, a: RenameArgs) -> CmdResult {
    let (old, new) = (a.container.trim(), a.new_name.trim());
    if old.is_empty() || new.is_empty() {
        return Err(exit_with(
            1,
            "Error: Neither old nor new names may be empty",
        ));
    }
    let path = format!(
        "/containers/{old}/rename{}",
        query(&[("name", new.to_string())])
    );
    if let Err(e) = post(cli, &path) {
        eprintln!("{e}");
        return Err(exit_with(
            1,
            format!("Error: failed to rename container named {old}"),
        ));
    }
    Ok(())
}

#[derive(Args)]
pub struct TopArgs {
    /// CONTAINER [ps OPTIONS]
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_names = ["CONTAINER", "ps OPTIONS"])]
    args: Vec<String>,
}

pub fn top(cli: &Cli, a: TopArgs) -> CmdResult {
    let (container, ps_args) = leading_positional("top", &a.args)?;
    let q = if ps_args.is_empty() {
        String::new()
    } else {
        query(&[("ps_args", ps_args.join(" "))])
    };
    let top: berth_api::engine::ContainerTopResponse = cli
        .client
        .get_json(&format!("/containers/{container}/top{q}"))?;
    let config = TabConfig {
        min_width: 20,
        tab_width: 1,
        padding: 3,
        ..TabConfig::DOCKER
    };
    let mut tw = TabWriter::with_config(std::io::stdout().lock(), config);
    use std::io::Write;
    writeln!(tw, "{}", top.titles.unwrap_or_default().join("\t"))?;
    for p in top.processes.unwrap_or_default() {
        writeln!(tw, "{}", p.join("\t"))?;
    }
    tw.flush()?;
    Ok(())
}

#[derive(Args)]
pub struct PortArgs {
    /// CONTAINER
    container: String,
    /// [PRIVATE_PORT[/PROTO]]
    port: Option<String>,
}

/// `host:port` as Go's `net.JoinHostPort` writes it.
fn join_host_port(b: &PortBinding) -> String {
    let host = b.host_ip.clone().unwrap_or_default();
    let port = b.host_port.clone().unwrap_or_default();
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The lines of `docker port` for a container's `NetworkSettings.Ports`.
pub fn port_lines(
    ports: &BTreeMap<String, Option<Vec<PortBinding>>>,
    filter: Option<&str>,
    container: &str,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    if let Some(p) = filter {
        let (port, proto) = p.split_once('/').unwrap_or((p, ""));
        let proto = if proto.is_empty() { "tcp" } else { proto };
        if let Err(e) = parse_uint(port, 16) {
            return Err(format!("Error: invalid port ({port}): {e}"));
        }
        let frontends = ports
            .get(&format!("{port}/{proto}"))
            .cloned()
            .flatten()
            .unwrap_or_default();
        if frontends.is_empty() {
            return Err(format!(
                "Error: No public port '{p}' published for {container}"
            ));
        }
        out.extend(frontends.iter().map(join_host_port));
    } else {
        for (from, frontends) in ports {
            for f in frontends.iter().flatten() {
                out.push(format!("{from} -> {}", join_host_port(f)));
            }
        }
    }
    out.sort_by(|a, b| natural_cmp(a, b));
    Ok(out)
}

/// `sortorder.NaturalLess`: digit runs compare by value.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let xe = x
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .unwrap_or(x.len());
                let ye = y
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .unwrap_or(y.len());
                let (xn, yn) = (&x[..xe], &y[..ye]);
                let xt = trim_zeros(xn);
                let yt = trim_zeros(yn);
                let ord = xt
                    .len()
                    .cmp(&yt.len())
                    .then(xt.cmp(yt))
                    .then(xn.len().cmp(&yn.len()));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                x = &x[xe..];
                y = &y[ye..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let i = s.iter().position(|c| *c != b'0').unwrap_or(s.len());
    &s[i..]
}

pub fn port(cli: &Cli, a: PortArgs) -> CmdResult {
    let c: Value = cli
        .client
        .get_json(&format!("/containers/{}/json", a.container))?;
    let ports: BTreeMap<String, Option<Vec<PortBinding>>> = c
        .pointer("/NetworkSettings/Ports")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default();
    let lines = port_lines(&ports, a.port.as_deref(), &a.container).map_err(|e| exit_with(1, e))?;
    if !lines.is_empty() {
        println!("{}", lines.join("\n"));
    }
    Ok(())
}

#[derive(Args)]
pub struct OneArgs {
    /// CONTAINER
    container: String,
}

/// The letter `docker diff` prints for a change kind.
pub fn change_letter(kind: i64) -> &'static str {
    match kind {
        0 => "C",
        1 => "A",
        2 => "D",
        _ => "",
    }
}

pub fn diff(cli: &Cli, a: OneArgs) -> CmdResult {
    let changes: Option<Vec<Value>> = cli
        .client
        .get_json(&format!("/containers/{}/changes", a.container))?;
    for c in changes.unwrap_or_default() {
        let kind = c.get("Kind").and_then(Value::as_i64).unwrap_or(-1);
        let path = c.get("Path").and_then(Value::as_str).unwrap_or("");
        println!("{} {path}", change_letter(kind));
    }
    Ok(())
}

#[derive(Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long = "author")]
    author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long = "message")]
    message: Option<String>,
    /// Pause container during commit
    #[arg(short = 'p', long = "pause", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::run_opts::go_bool, action = clap::ArgAction::Set, default_value = "true")]
    pause: bool,
    /// CONTAINER
    container: String,
    /// [REPOSITORY[:TAG]]
    reference: Option<String>,
}

/// The query of `POST /commit`, as docker's client builds it.
pub fn commit_query(
    container: &str,
    reference: Option<&str>,
    comment: &str,
    author: &str,
    changes: &[String],
    pause: bool,
) -> Result<String, String> {
    let (mut repo, mut tag) = (String::new(), String::new());
    if let Some(r) = reference.filter(|r| !r.is_empty()) {
        let parsed = Reference::parse(r)?;
        if parsed.digest.is_some() {
            return Err("refusing to create a tag with a digest reference".into());
        }
        let parsed = parsed.with_default_tag();
        tag = parsed.tag.clone().unwrap_or_default();
        repo = parsed.name();
    }
    let mut q = vec![
        ("container", container.to_string()),
        ("repo", repo),
        ("tag", tag),
        ("comment", comment.to_string()),
        ("author", author.to_string()),
    ];
    q.extend(changes.iter().map(|c| ("changes", c.clone())));
    if !pause {
        q.push(("pause", "0".to_string()));
    }
    Ok(query(&q))
}

pub fn commit(cli: &Cli, a: CommitArgs) -> CmdResult {
    let q = commit_query(
        &a.container,
        a.reference.as_deref(),
        a.message.as_deref().unwrap_or(""),
        a.author.as_deref().unwrap_or(""),
        &a.change,
        a.pause,
    )
    .map_err(|e| exit_with(1, e))?;
    let resp: berth_api::engine::IdResponse = cli
        .client
        .post_json::<(), _>(&format!("/commit{q}"), None)?;
    println!("{}", resp.id);
    Ok(())
}

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output")]
    output: Option<String>,
    /// CONTAINER
    container: String,
}

pub fn export(cli: &Cli, a: ExportArgs) -> CmdResult {
    if a.output.is_none() && super::stdout_is_terminal() {
        return Err(exit_with(
            1,
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    let resp = cli
        .client
        .send(
            "GET",
            &format!("/containers/{}/export", a.container),
            &[],
            berth_api::client::Body::Empty,
        )?
        .check()?;
    write_download(resp, a.output.as_deref(), "failed to export container")
}

#[derive(Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    filter: Vec<String>,
}

pub fn prune(cli: &Cli, a: PruneArgs) -> CmdResult {
    if !a.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )
    {
        return Ok(());
    }
    let q = match filters_json(&a.filter)? {
        Some(f) => query(&[("filters", f)]),
        None => String::new(),
    };
    let report: berth_api::engine::ContainerPruneResponse = cli
        .client
        .post_json::<(), _>(&format!("/containers/prune{q}"), None)?;
    let deleted = report.containers_deleted.unwrap_or_default();
    let mut reclaimed = 0;
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &deleted {
            println!("{id}");
        }
        println!();
        reclaimed = report.space_reclaimed.unwrap_or(0);
    }
    println!("Total reclaimed space: {}", human_size_4(reclaimed as f64));
    Ok(())
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    cpu_quota: Option<String>,
    /// Limit the CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<String>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory")]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Kernel memory limit (deprecated)
    #[arg(long = "kernel-memory", hide = true)]
    kernel_memory: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart")]
    restart: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus")]
    cpus: Option<String>,
    /// CONTAINER...
    #[arg(required = true)]
    containers: Vec<String>,
}

impl UpdateArgs {
    fn flag_count(&self) -> usize {
        [
            &self.blkio_weight,
            &self.cpu_period,
            &self.cpu_quota,
            &self.cpu_rt_period,
            &self.cpu_rt_runtime,
            &self.cpuset_cpus,
            &self.cpuset_mems,
            &self.cpu_shares,
            &self.memory,
            &self.memory_reservation,
            &self.memory_swap,
            &self.kernel_memory,
            &self.restart,
            &self.pids_limit,
            &self.cpus,
        ]
        .iter()
        .filter(|f| f.is_some())
        .count()
    }

    /// The body of `POST /containers/{id}/update`.
    pub fn body(&self) -> Result<ContainerUpdateBody, OptError> {
        let int =
            |long: &str, short: Option<char>, v: &Option<String>| opt(long, short, v, parse_int);
        let nonzero = |v: Option<i64>| v.filter(|n| *n != 0);
        let restart = match self.restart.as_deref().filter(|r| !r.is_empty()) {
            Some(r) => Some(parse_restart_policy(r).map_err(OptError::Invalid)?),
            None => None,
        };
        Ok(ContainerUpdateBody {
            blkio_weight: opt("blkio-weight", None, &self.blkio_weight, |v| {
                parse_uint(v, 16)
            })?
            .map(|w| w as u16)
            .filter(|w| *w != 0),
            cpu_period: nonzero(int("cpu-period", None, &self.cpu_period)?),
            cpu_quota: nonzero(int("cpu-quota", None, &self.cpu_quota)?),
            cpu_realtime_period: nonzero(int("cpu-rt-period", None, &self.cpu_rt_period)?),
            cpu_realtime_runtime: nonzero(int("cpu-rt-runtime", None, &self.cpu_rt_runtime)?),
            cpuset_cpus: self.cpuset_cpus.clone().filter(|s| !s.is_empty()),
            cpuset_mems: self.cpuset_mems.clone().filter(|s| !s.is_empty()),
            cpu_shares: nonzero(int("cpu-shares", Some('c'), &self.cpu_shares)?),
            memory: nonzero(opt("memory", Some('m'), &self.memory, parse_mem)?),
            memory_reservation: nonzero(opt(
                "memory-reservation",
                None,
                &self.memory_reservation,
                parse_mem,
            )?),
            memory_swap: nonzero(opt("memory-swap", None, &self.memory_swap, parse_mem_swap)?),
            nano_cpus: nonzero(opt("cpus", None, &self.cpus, parse_cpus)?),
            pids_limit: nonzero(int("pids-limit", None, &self.pids_limit)?),
            restart_policy: restart,
            ..Default::default()
        })
    }
}

pub fn update(cli: &Cli, a: UpdateArgs) -> CmdResult {
    if a.flag_count() == 0 {
        return Err(exit_with(
            1,
            "you must provide one or more flags when using this command",
        ));
    }
    let body = a.body().map_err(|e| match e {
        OptError::Invalid(m) => exit_with(1, m),
        flag => exit_with(125, format!("{flag}\nSee 'docker update --help'.")),
    })?;
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    for c in &a.containers {
        match cli.client.post_json::<_, ContainerUpdateResponse>(
            &format!("/containers/{c}/update"),
            Some(&body),
        ) {
            Ok(r) => {
                println!("{c}");
                warnings.extend(r.warnings.unwrap_or_default());
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !warnings.is_empty() {
        println!("{}", warnings.join("\n"));
    }
    finish(errors)
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
    fn port_listing() {
        let mut ports = BTreeMap::new();
        ports.insert(
            "80/tcp".to_string(),
            Some(vec![binding("0.0.0.0", "8080"), binding("::", "8080")]),
        );
        ports.insert(
            "9000/tcp".to_string(),
            Some(vec![binding("0.0.0.0", "9000")]),
        );
        ports.insert("443/tcp".to_string(), None);
        assert_eq!(
            port_lines(&ports, None, "web").unwrap(),
            vec![
                "80/tcp -> 0.0.0.0:8080",
                "80/tcp -> [::]:8080",
                "9000/tcp -> 0.0.0.0:9000"
            ]
        );
        assert_eq!(
            port_lines(&ports, Some("80"), "web").unwrap(),
            vec!["0.0.0.0:8080", "[::]:8080"]
        );
        assert_eq!(
            port_lines(&ports, Some("443/tcp"), "web").unwrap_err(),
            "Error: No public port '443/tcp' published for web"
        );
        assert_eq!(
            port_lines(&ports, Some("http"), "web").unwrap_err(),
            "Error: invalid port (http): strconv.ParseUint: parsing \"http\": invalid syntax"
        );
        assert_eq!(natural_cmp("a9", "a10"), std::cmp::Ordering::Less);
    }

    #[test]
    fn commit_queries() {
        assert_eq!(
            commit_query("c1", Some("myimg"), "", "", &[], true).unwrap(),
            "?container=c1&repo=docker.io%2Flibrary%2Fmyimg&tag=latest&comment=&author="
        );
        assert_eq!(
            commit_query("c1", None, "msg", "me", &["CMD [\"sh\"]".into()], false).unwrap(),
            "?container=c1&repo=&tag=&comment=msg&author=me&changes=CMD%20%5B%22sh%22%5D&pause=0"
        );
        assert_eq!(
            commit_query(
                "c1",
                Some("a@sha256:0123456789abcdef0123456789abcdef"),
                "",
                "",
                &[],
                true
            )
            .unwrap_err(),
            "refusing to create a tag with a digest reference"
        );
    }

    #[test]
    fn diff_letters() {
        assert_eq!(change_letter(0), "C");
        assert_eq!(change_letter(1), "A");
        assert_eq!(change_letter(2), "D");
    }

    #[test]
    fn update_body() {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            a: UpdateArgs,
        }
        let t = T::try_parse_from([
            "update",
            "-m",
            "128m",
            "--cpus",
            "0.5",
            "--restart",
            "always",
            "c1",
        ])
        .unwrap();
        let v = serde_json::to_value(t.a.body().unwrap()).unwrap();
        assert_eq!(v["Memory"], 128 << 20);
        assert_eq!(v["NanoCpus"], 500_000_000);
        assert_eq!(v["RestartPolicy"]["Name"], "always");
        assert_eq!(t.a.flag_count(), 3);
    }
}
