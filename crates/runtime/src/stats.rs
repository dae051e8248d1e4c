//! Usage counters read from a container's cgroup (v1 files or v2's unified ones), in the
//! units docker's stats API reports: nanoseconds of CPU, bytes of memory and block I/O.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::cgroup::{Cgroup, Version};

/// One block-I/O counter of one device (`op` is docker's: Read, Write, Sync, Async, Discard, Total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// A snapshot of a cgroup's counters. Missing files leave zeros.
#[derive(Debug, Clone, Default)]
pub struct CgroupStats {
    pub cpu_total_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// Per-CPU usage (v1 only; v2 has no per-CPU accounting).
    pub percpu_ns: Vec<u64>,
    pub throttle_periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
    pub memory_usage: u64,
    pub memory_max_usage: u64,
    /// The limit, or `None` when unlimited.
    pub memory_limit: Option<u64>,
    pub memory_failcnt: u64,
    pub memory_stat: BTreeMap<String, u64>,
    pub pids_current: u64,
    pub pids_limit: Option<u64>,
    pub io_bytes: Vec<IoEntry>,
    pub io_ops: Vec<IoEntry>,
}

fn read(dir: Option<&Path>, file: &str) -> Option<String> {
    fs::read_to_string(dir?.join(file)).ok()
}

fn read_u64(dir: Option<&Path>, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat).
fn key_values(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// A limit file's value: `max` and v1's "no limit" (near i64::MAX) are unlimited.
fn limit(text: Option<String>) -> Option<u64> {
    let v: u64 = text?.trim().parse().ok()?;
    (v < (1 << 62)).then_some(v)
}

/// v1 `blkio.*` lines: `8:0 Read 4096` (a final `Total N` line has no device).
fn v1_io(text: &str) -> Vec<IoEntry> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (maj, min) = f.next()?.split_once(':')?;
            Some(IoEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: f.next()?.to_string(),
                value: f.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// v2 `io.stat` lines (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 …`) as docker's v1-style entries.
fn v2_io(text: &str) -> (Vec<IoEntry>, Vec<IoEntry>) {
    let (mut bytes, mut ops) = (Vec::new(), Vec::new());
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let Some((maj, min)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse() else { continue };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "read"),
                "wbytes" => (&mut bytes, "write"),
                "rios" => (&mut ops, "read"),
                "wios" => (&mut ops, "write"),
                _ => continue,
            };
            list.push(IoEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    (bytes, ops)
}

/// The CPU clock ticks per second that cpuacct.stat counts in (USER_HZ).
fn user_hz() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}

impl Cgroup {
    /// Reads the cgroup's counters.
    pub fn stats(&self) -> CgroupStats {
        match self.version() {
            Version::V1 => self.stats_v1(),
            Version::V2 => self.stats_v2(),
        }
    }

    fn stats_v1(&self) -> CgroupStats {
        let acct = self.dir_with("cpuacct");
        let cpu = self.dir_with("cpu");
        let mem = self.dir_with("memory");
        let pids = self.dir_with("pids");
        let blkio = self.dir_with("blkio");
        let tick_ns = 1_000_000_000 / user_hz();
        let cpustat = read(acct, "cpuacct.stat")
            .map(|t| key_values(&t))
            .unwrap_or_default();
        let throttling = read(cpu, "cpu.stat")
            .map(|t| key_values(&t))
            .unwrap_or_default();
        // The CFQ counters are empty without CFQ/BFQ; the throttle layer counts every I/O.
        let io = |name: &str| {
            let direct = read(blkio, &format!("blkio.{name}_recursive")).map(|t| v1_io(&t));
            match direct.filter(|v| !v.is_empty()) {
                Some(v) => v,
                None => read(blkio, &format!("blkio.throttle.{name}"))
                    .map(|t| v1_io(&t))
                    .unwrap_or_default(),
            }
        };
        CgroupStats {
            cpu_total_ns: read_u64(acct, "cpuacct.usage").unwrap_or(0),
            cpu_user_ns: cpustat.get("user").copied().unwrap_or(0) * tick_ns,
            cpu_system_ns: cpustat.get("system").copied().unwrap_or(0) * tick_ns,
            percpu_ns: read(acct, "cpuacct.usage_percpu")
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|n| n.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
            throttle_periods: throttling.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: throttling.get("nr_throttled").copied().unwrap_or(0),
            throttled_ns: throttling.get("throttled_time").copied().unwrap_or(0),
            memory_usage: read_u64(mem, "memory.usage_in_bytes").unwrap_or(0),
            memory_max_usage: read_u64(mem, "memory.max_usage_in_bytes").unwrap_or(0),
            memory_limit: limit(read(mem, "memory.limit_in_bytes")),
            memory_failcnt: read_u64(mem, "memory.failcnt").unwrap_or(0),
            memory_stat: read(mem, "memory.stat")
                .map(|t| key_values(&t))
                .unwrap_or_default(),
            pids_current: read_u64(pids, "pids.current").unwrap_or(0),
            pids_limit: limit(read(pids, "pids.max")),
            io_bytes: io("io_service_bytes"),
            io_ops: io("io_serviced"),
        }
    }

    fn stats_v2(&self) -> CgroupStats {
        let d = self.dirs().first().map(|p| p.as_path());
        let cpu = read(d, "cpu.stat")
            .map(|t| key_values(&t))
            .unwrap_or_default();
        let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
        let (io_bytes, io_ops) = read(d, "io.stat").map(|t| v2_io(&t)).unwrap_or_default();
        let usage = read_u64(d, "memory.current").unwrap_or(0);
        CgroupStats {
            cpu_total_ns: us("usage_usec"),
            cpu_user_ns: us("user_usec"),
            cpu_system_ns: us("system_usec"),
            percpu_ns: Vec::new(),
            throttle_periods: cpu.get("nr_periods").copied().unwrap_or(0),
            throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
            throttled_ns: us("throttled_usec"),
            memory_usage: usage,
            memory_max_usage: read_u64(d, "memory.peak").unwrap_or(usage),
            memory_limit: limit(read(d, "memory.max")),
            memory_failcnt: 0,
            memory_stat: read(d, "memory.stat")
                .map(|t| key_values(&t))
                .unwrap_or_default(),
            pids_current: read_u64(d, "pids.current").unwrap_or(0),
            pids_limit: limit(read(d, "pids.max")),
            io_bytes,
            io_ops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::Layout;

    #[test]
    fn v2_files_on_a_fake_tree() {
        let root = tempfile::tempdir().unwrap();
        let cg = Cgroup::open_in(Layout::V2(root.path().to_path_buf()), "/c1").unwrap();
        let d = root.path().join("c1");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 7\n").unwrap();
        fs::write(d.join("memory.current"), "4096\n").unwrap();
        fs::write(d.join("memory.max"), "max\n").unwrap();
        fs::write(d.join("memory.stat"), "anon 10\ninactive_file 20\n").unwrap();
        fs::write(d.join("pids.current"), "2\n").unwrap();
        fs::write(d.join("pids.max"), "20\n").unwrap();
        fs::write(
            d.join("io.stat"),
            "7:0 rbytes=512 wbytes=1048576 rios=1 wios=8 dbytes=0 dios=0\n",
        )
        .unwrap();
        let s = cg.stats();
        assert_eq!(
            (s.cpu_total_ns, s.cpu_user_ns, s.cpu_system_ns),
            (1_500_000, 1_000_000, 500_000)
        );
        assert_eq!((s.throttled_periods, s.throttled_ns), (1, 7000));
        assert_eq!((s.memory_usage, s.memory_limit), (4096, None));
        assert_eq!(s.memory_stat["inactive_file"], 20);
        assert_eq!((s.pids_current, s.pids_limit), (2, Some(20)));
        assert_eq!(s.io_bytes.len(), 2);
        assert_eq!(
            s.io_bytes[1],
            IoEntry {
                major: 7,
                minor: 0,
                op: "write".into(),
                value: 1048576
            }
        );
        assert_eq!(s.io_ops[1].value, 8);
    }

    #[test]
    fn v1_blkio_lines() {
        let e = v1_io("7:0 Read 512\n7:0 Write 4096\n7:0 Total 4608\nTotal 4608\n");
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].op, "Write");
        assert_eq!(limit(Some("9223372036854771712\n".into())), None);
        assert_eq!(limit(Some("max\n".into())), None);
        assert_eq!(limit(Some("67108864\n".into())), Some(67108864));
    }
}
