//! `stats`: one `GET /containers/{id}/stats?stream=0|1` per container, computed and shown as
//! docker's CLI does (CPU % from the deltas against `precpu_stats`, memory without the
//! inactive page cache, summed network and block I/O), refreshed every 500 ms unless
//! `--no-stream`. Without container names it follows start/die events.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_api::client::{Body, Client, query};
use berth_api::models::ContainerSummary;
use clap::Args;
use serde_json::{Value, json};

use super::output::print_list;
use super::{Cli, CmdResult, finish};
use berth_cli::format::template::render_list;
use berth_cli::format::text::truncate_id;
use berth_cli::format::units::{bytes_size, human_size};

#[derive(Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all")]
    all: bool,
    /// Format output using a custom template
    #[arg(long = "format")]
    format: Option<String>,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// [CONTAINER...]
    containers: Vec<String>,
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

fn headers() -> Value {
    json!({
        "Container": "CONTAINER", "Name": "NAME", "ID": "CONTAINER ID", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

/// docker's `StatsEntry`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsEntry {
    pub container: String,
    pub name: String,
    pub id: String,
    pub cpu_percentage: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percentage: f64,
    pub network_rx: f64,
    pub network_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids_current: u64,
    pub is_invalid: bool,
}

fn u(v: &Value, p: &str) -> u64 {
    v.pointer(p).and_then(Value::as_u64).unwrap_or(0)
}

/// One stats sample as docker's `collect` turns it into a table entry.
pub fn entry_from_stats(container: &str, v: &Value) -> StatsEntry {
    let cpu_delta = u(v, "/cpu_stats/cpu_usage/total_usage") as f64
        - u(v, "/precpu_stats/cpu_usage/total_usage") as f64;
    let system_delta =
        u(v, "/cpu_stats/system_cpu_usage") as f64 - u(v, "/precpu_stats/system_cpu_usage") as f64;
    let mut online = u(v, "/cpu_stats/online_cpus") as f64;
    if online == 0.0 {
        online = v
            .pointer("/cpu_stats/cpu_usage/percpu_usage")
            .and_then(Value::as_array)
            .map(|a| a.len())
            .unwrap_or(0) as f64;
    }
    let cpu = if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    };
    let (mut read, mut write) = (0u64, 0u64);
    for e in v
        .pointer("/blkio_stats/io_service_bytes_recursive")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let value = e.get("value").and_then(Value::as_u64).unwrap_or(0);
        match e
            .get("op")
            .and_then(Value::as_str)
            .and_then(|o| o.chars().next())
        {
            Some('r' | 'R') => read += value,
            Some('w' | 'W') => write += value,
            _ => {}
        }
    }
    let usage = u(v, "/memory_stats/usage");
    let stat = |k: &str| {
        v.pointer(&format!("/memory_stats/stats/{k}"))
            .and_then(Value::as_u64)
    };
    let mem = match stat("total_inactive_file") {
        Some(x) if x < usage => (usage - x) as f64,
        _ => {
            let x = stat("inactive_file").unwrap_or(0);
            if x < usage {
                (usage - x) as f64
            } else {
                usage as f64
            }
        }
    };
    let limit = u(v, "/memory_stats/limit") as f64;
    let (mut rx, mut tx) = (0.0, 0.0);
    if let Some(nets) = v.get("networks").and_then(Value::as_object) {
        for n in nets.values() {
            rx += n.get("rx_bytes").and_then(Value::as_u64).unwrap_or(0) as f64;
            tx += n.get("tx_bytes").and_then(Value::as_u64).unwrap_or(0) as f64;
        }
    }
    StatsEntry {
        container: container.to_string(),
        name: v
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        id: v
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        cpu_percentage: cpu,
        memory: mem,
        memory_limit: limit,
        memory_percentage: if limit != 0.0 {
            mem / limit * 100.0
        } else {
            0.0
        },
        network_rx: rx,
        network_tx: tx,
        block_read: read as f64,
        block_write: write as f64,
        pids_current: u(v, "/pids_stats/current"),
        is_invalid: false,
    }
}

/// docker's `statsContext` fields for one entry.
pub fn row(e: &StatsEntry, trunc: bool) -> Value {
    let pct = |x: f64| format!("{x:.2}%");
    let invalid = e.is_invalid;
    // Keys in Go's order (sorted), as docker's JSON output has them.
    json!({
        "BlockIO": if invalid { "--".to_string() } else {
            format!("{} / {}", human_size(e.block_read), human_size(e.block_write))
        },
        "CPUPerc": if invalid { "--".to_string() } else { pct(e.cpu_percentage) },
        "Container": e.container,
        "ID": if trunc { truncate_id(&e.id) } else { e.id.clone() },
        "MemPerc": if invalid { "--".to_string() } else { pct(e.memory_percentage) },
        "MemUsage": if invalid { "-- / --".to_string() } else {
            format!("{} / {}", bytes_size(e.memory), bytes_size(e.memory_limit))
        },
        "Name": if e.name.len() > 1 { e.name[1..].to_string() } else { "--".to_string() },
        "NetIO": if invalid { "--".to_string() } else {
            format!("{} / {}", human_size(e.network_rx), human_size(e.network_tx))
        },
        "PIDs": if invalid { "--".to_string() } else { e.pids_current.to_string() },
    })
}

/// One container being watched.
struct Slot {
    entry: StatsEntry,
    /// Set once the first sample (or an error) arrived.
    ready: bool,
    error: Option<String>,
}

type Slots = Arc<Mutex<Vec<(String, Arc<Mutex<Slot>>)>>>;

fn collect(client: Client, container: String, stream: bool, slot: Arc<Mutex<Slot>>) {
    let q = query(&[("stream", if stream { "1" } else { "0" }.to_string())]);
    let resp = client
        .send(
            "GET",
            &format!("/containers/{container}/stats{q}"),
            &[],
            Body::Empty,
        )
        .and_then(|r| r.check());
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
            s.error = Some(e.to_string());
            s.entry.is_invalid = true;
            s.ready = true;
            return;
        }
    };
    for v in serde_json::Deserializer::from_reader(resp).into_iter::<Value>() {
        let Ok(v) = v else { break };
        let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
        s.entry = entry_from_stats(&container, &v);
        s.error = None;
        s.ready = true;
        if !stream {
            return;
        }
    }
    let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
    s.ready = true;
}

fn add(slots: &Slots, client: &Client, id: &str, stream: bool) {
    let mut list = slots.lock().unwrap_or_else(|p| p.into_inner());
    if list
        .iter()
        .any(|(c, _)| c == id || (id.len() >= 12 && c.starts_with(id)))
    {
        return;
    }
    let slot = Arc::new(Mutex::new(Slot {
        entry: StatsEntry {
            container: id.to_string(),
            ..Default::default()
        },
        ready: false,
        error: None,
    }));
    list.push((id.to_string(), slot.clone()));
    let (client, id) = (client.clone(), id.to_string());
    std::thread::spawn(move || collect(client, id, stream, slot));
}

/// Follows container events: start (and create with `-a`) adds, die removes (without `-a`).
fn follow_events(slots: Slots, client: Client, all: bool) {
    std::thread::spawn(move || {
        let filters = r#"{"type":["container"]}"#.to_string();
        let Ok(resp) = client
            .send(
                "GET",
                &format!("/events{}", query(&[("filters", filters)])),
                &[],
                Body::Empty,
            )
            .and_then(|r| r.check())
        else {
            return;
        };
        for e in serde_json::Deserializer::from_reader(resp).into_iter::<Value>() {
            let Ok(e) = e else { break };
            let action = e.get("Action").and_then(Value::as_str).unwrap_or("");
            let Some(id) = e.pointer("/Actor/ID").and_then(Value::as_str) else {
                continue;
            };
            match action {
                "start" => add(&slots, &client, id, true),
                "create" if all => add(&slots, &client, id, true),
                "die" if !all => slots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|(c, _)| c != id),
                _ => {}
            }
        }
    });
}

/// Waits (up to 2 s each, as docker) for every slot's first sample.
fn wait_first(slots: &Slots) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let pending = slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|(_, s)| !s.lock().unwrap_or_else(|p| p.into_inner()).ready);
        if !pending {
            return;
        }
        if Instant::now() >= deadline {
            for (_, s) in slots.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                let mut s = s.lock().unwrap_or_else(|p| p.into_inner());
                if !s.ready {
                    s.entry = StatsEntry {
                        container: s.entry.container.clone(),
                        is_invalid: true,
                        ..Default::default()
                    };
                    s.error = Some("timeout waiting for stats".into());
                    s.ready = true;
                }
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn snapshot(slots: &Slots, trunc: bool) -> Vec<Value> {
    slots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|(_, s)| row(&s.lock().unwrap_or_else(|p| p.into_inner()).entry, trunc))
        .collect()
}

pub fn stats(cli: &Cli, a: StatsArgs) -> CmdResult {
    let slots: Slots = Arc::new(Mutex::new(Vec::new()));
    let stream = !a.no_stream;
    let show_all = a.containers.is_empty();
    if show_all {
        if stream {
            follow_events(slots.clone(), cli.client.clone(), a.all);
        }
        let q = if a.all { "?all=1" } else { "" };
        let list: Vec<ContainerSummary> = cli.client.get_json(&format!("/containers/json{q}"))?;
        for c in &list {
            add(&slots, &cli.client, &c.id, stream);
        }
        wait_first(&slots);
    } else {
        for c in &a.containers {
            add(&slots, &cli.client, c, stream);
        }
        wait_first(&slots);
        let errors: Vec<String> = slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter_map(|(_, s)| s.lock().unwrap_or_else(|p| p.into_inner()).error.clone())
            .collect();
        finish(errors)?;
    }
    let format = a.format.clone().unwrap_or_default();
    let trunc = !a.no_trunc;
    if !stream {
        return print_list(
            Some(&format),
            DEFAULT_FORMAT,
            &headers(),
            &snapshot(&slots, trunc),
        );
    }
    let mut out = std::io::stdout();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let rows = snapshot(&slots, trunc);
        if rows.is_empty() && !show_all {
            write!(out, "\x1b[H\x1b[J")?;
            out.flush()?;
            return Ok(());
        }
        let mut table = Vec::new();
        render_list(&format, DEFAULT_FORMAT, &headers(), &rows, &mut table)
            .map_err(|e| super::exit_with(1, e.to_string()))?;
        let mut frame = b"\x1b[H".to_vec();
        let text = String::from_utf8_lossy(&table);
        for line in text.split('\n') {
            frame.extend_from_slice(line.as_bytes());
            frame.extend_from_slice(b"\x1b[K\n");
        }
        frame.extend_from_slice(b"\x1b[J");
        out.write_all(&frame)?;
        out.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        json!({
            "name": "/web", "id": "0123456789abcdef0123",
            "cpu_stats": {"cpu_usage": {"total_usage": 300_000_000u64}, "system_cpu_usage": 20_000_000_000u64, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100_000_000u64}, "system_cpu_usage": 10_000_000_000u64},
            "memory_stats": {"usage": 10_485_760u64, "limit": 1_073_741_824u64, "stats": {"total_inactive_file": 2_097_152u64}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 4096},
                {"major": 8, "minor": 0, "op": "Write", "value": 8192},
                {"major": 8, "minor": 0, "op": "Total", "value": 12288}
            ]},
            "pids_stats": {"current": 3},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 500}, "eth1": {"rx_bytes": 500, "tx_bytes": 0}}
        })
    }

    #[test]
    fn computed_like_docker() {
        let e = entry_from_stats("web", &sample());
        assert!(
            (e.cpu_percentage - 4.0).abs() < 1e-9,
            "{}",
            e.cpu_percentage
        );
        assert_eq!(e.memory, 8_388_608.0);
        assert_eq!(e.memory_limit, 1_073_741_824.0);
        assert_eq!((e.block_read, e.block_write), (4096.0, 8192.0));
        assert_eq!((e.network_rx, e.network_tx), (2000.0, 500.0));
        assert_eq!(e.pids_current, 3);
        let r = row(&e, true);
        assert_eq!(r["Name"], "web");
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["CPUPerc"], "4.00%");
        assert_eq!(r["MemUsage"], "8MiB / 1GiB");
        assert_eq!(r["MemPerc"], "0.78%");
        assert_eq!(r["NetIO"], "2kB / 500B");
        assert_eq!(r["BlockIO"], "4.1kB / 8.19kB");
        assert_eq!(r["PIDs"], "3");
    }

    #[test]
    fn cgroup_v2_memory_and_invalid_rows() {
        let v = json!({"memory_stats": {"usage": 1000, "stats": {"inactive_file": 400}}});
        assert_eq!(entry_from_stats("c", &v).memory, 600.0);
        let v = json!({"memory_stats": {"usage": 1000, "stats": {"inactive_file": 4000}}});
        assert_eq!(entry_from_stats("c", &v).memory, 1000.0);
        let bad = StatsEntry {
            container: "c".into(),
            is_invalid: true,
            ..Default::default()
        };
        let r = row(&bad, true);
        assert_eq!(r["CPUPerc"], "--");
        assert_eq!(r["MemUsage"], "-- / --");
        assert_eq!(r["Name"], "--");
    }

    #[test]
    fn table_layout() {
        let rows = vec![row(&entry_from_stats("web", &sample()), true)];
        let mut out = Vec::new();
        render_list("", DEFAULT_FORMAT, &headers(), &rows, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O      BLOCK I/O        PIDS"
        );
    }
}
