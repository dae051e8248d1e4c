//! `GET /containers/{id}/stats`: docker's stats JSON built from the container's cgroup
//! counters, the host's CPU time and the container's network interfaces.

use std::time::SystemTime;

use berth_runtime::{CgroupStats, IoEntry};
use serde_json::{Value, json};

use super::{Container, lifecycle};
use crate::daemon::Daemon;

/// What one reading of a container gives.
pub struct Sample {
    read: SystemTime,
    /// `None` when the container is not running (docker then reports zeros).
    cg: Option<CgroupStats>,
    system_ns: u64,
    online_cpus: u64,
    /// Interface name and /proc/net/dev counters.
    nets: Vec<(String, [u64; 8])>,
}

/// Reads the container's counters now (blocking: files under /sys and /proc).
pub fn sample(d: &Daemon, c: &Container) -> Sample {
    let rec = c.snapshot();
    let running = rec.state.status.is_running() && rec.state.pid > 0;
    let cg = running
        .then(|| berth_runtime::cgroup::Cgroup::open(&lifecycle::cgroup_of(d, c)).ok())
        .flatten()
        .map(|g| g.stats());
    let host_net = rec.host_config.network_mode.as_deref() == Some("host");
    Sample {
        read: SystemTime::now(),
        nets: if running && !host_net {
            net_dev(rec.state.pid)
        } else {
            Vec::new()
        },
        cg,
        system_ns: system_cpu_ns(),
        // SAFETY: sysconf has no preconditions.
        online_cpus: unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u64,
    }
}

/// The host's total CPU time (the first seven fields of /proc/stat's `cpu` line), in ns.
fn system_cpu_ns() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let ticks: u64 = s
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
}

/// The host's memory, which docker reports as the limit of an unlimited container.
fn host_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The container's interfaces but `lo`, from /proc/<pid>/net/dev (its network namespace).
fn net_dev(pid: i64) -> Vec<(String, [u64; 8])> {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) else {
        return Vec::new();
    };
    s.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            let n: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            // rx: bytes packets errs drop …(4 more); tx: bytes packets errs drop …
            (name != "lo" && n.len() >= 12).then(|| {
                (
                    name.to_string(),
                    [n[0], n[1], n[2], n[3], n[8], n[9], n[10], n[11]],
                )
            })
        })
        .collect()
}

fn time(t: Option<SystemTime>) -> String {
    match t {
        Some(t) => humantime::format_rfc3339_nanos(t).to_string(),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn io_list(entries: &[IoEntry]) -> Value {
    if entries.is_empty() {
        return Value::Null;
    }
    entries
        .iter()
        .map(|e| json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
        .collect()
}

fn cpu_stats(s: Option<&Sample>) -> Value {
    let Some(s) = s else {
        return json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        });
    };
    let cg = s.cg.clone().unwrap_or_default();
    let mut usage = json!({
        "total_usage": cg.cpu_total_ns,
        "usage_in_kernelmode": cg.cpu_system_ns,
        "usage_in_usermode": cg.cpu_user_ns,
    });
    if !cg.percpu_ns.is_empty() {
        usage["percpu_usage"] = json!(cg.percpu_ns);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": s.system_ns,
        "online_cpus": s.online_cpus,
        "throttling_data": {
            "periods": cg.throttle_periods,
            "throttled_periods": cg.throttled_periods,
            "throttled_time": cg.throttled_ns,
        },
    })
}

/// docker's stats document for `cur`, with `prev` as the `precpu_stats` reading.
pub fn render(c: &Container, cur: &Sample, prev: Option<&Sample>) -> Value {
    let name = c.snapshot().name;
    let Some(cg) = &cur.cg else {
        // Not running: docker's zeroed document.
        return json!({
            "name": name, "id": c.id,
            "read": time(None), "preread": time(None),
            "pids_stats": {}, "blkio_stats": blkio(&[], &[]), "num_procs": 0, "storage_stats": {},
            "cpu_stats": cpu_stats(None), "precpu_stats": cpu_stats(None), "memory_stats": {},
        });
    };
    let host_mem = host_memory();
    let limit = match (cg.memory_limit, host_mem) {
        (Some(l), Some(h)) => l.min(h),
        (l, h) => l.or(h).unwrap_or(0),
    };
    let mut memory = json!({
        "usage": cg.memory_usage,
        "max_usage": cg.memory_max_usage,
        "stats": cg.memory_stat,
        "limit": limit,
    });
    if cg.memory_failcnt > 0 {
        memory["failcnt"] = json!(cg.memory_failcnt);
    }
    let mut pids = json!({"current": cg.pids_current});
    if let Some(l) = cg.pids_limit {
        pids["limit"] = json!(l);
    }
    let mut doc = json!({
        "name": name,
        "id": c.id,
        "read": time(Some(cur.read)),
        "preread": time(prev.map(|p| p.read)),
        "pids_stats": pids,
        "blkio_stats": blkio(&cg.io_bytes, &cg.io_ops),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(Some(cur)),
        "precpu_stats": cpu_stats(prev.filter(|p| p.cg.is_some())),
        "memory_stats": memory,
    });
    if !cur.nets.is_empty() {
        let nets: serde_json::Map<String, Value> = cur
            .nets
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    json!({
                        "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                        "tx_bytes": v[4], "tx_packets": v[5], "tx_errors": v[6], "tx_dropped": v[7],
                    }),
                )
            })
            .collect();
        doc["networks"] = Value::Object(nets);
    }
    doc
}

fn blkio(bytes: &[IoEntry], ops: &[IoEntry]) -> Value {
    json!({
        "io_service_bytes_recursive": io_list(bytes),
        "io_serviced_recursive": io_list(ops),
        "io_queue_recursive": null,
        "io_service_time_recursive": null,
        "io_wait_time_recursive": null,
        "io_merged_recursive": null,
        "io_time_recursive": null,
        "sectors_recursive": null,
    })
}
