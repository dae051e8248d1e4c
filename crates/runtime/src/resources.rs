//! OCI `linux.resources` written into a container's cgroup, on v1 (one file per knob in each
//! controller's hierarchy) and v2 (the unified files). Used at create and by `docker update`.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::spec::Resources;

fn num(v: Option<&Value>, k: &str) -> Option<i64> {
    v.and_then(|v| v.get(k)).and_then(Value::as_i64)
}

fn text(v: Option<&Value>, k: &str) -> Option<String> {
    v.and_then(|v| v.get(k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn write(f: &Path, s: &str) -> Result<()> {
    fs::write(f, s).map_err(|e| Error::io(format!("writing {s:?} to {}", f.display()), e))
}

fn read_i64(f: &Path) -> Option<i64> {
    fs::read_to_string(f).ok()?.trim().parse().ok()
}

/// One throttle/weight device entry: (major, minor, value).
fn devices(v: Option<&Value>, list: &str, value_key: &str) -> Vec<(i64, i64, i64)> {
    v.and_then(|v| v.get(list))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|d| {
                    Some((
                        d.get("major")?.as_i64()?,
                        d.get("minor")?.as_i64()?,
                        d.get(value_key)?.as_i64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// v1: writes the knobs into the controller directories found by `dir(controller)`.
/// Returns warnings for knobs this kernel lacks (docker accepts and warns, e.g. blkio weight
/// without CFQ/BFQ).
pub(crate) fn apply_v1(
    r: &Resources,
    dir: &dyn Fn(&str) -> Option<PathBuf>,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let mem = r.memory.as_ref();
    if let Some(d) = dir("memory") {
        let limit_f = d.join("memory.limit_in_bytes");
        let memsw_f = d.join("memory.memsw.limit_in_bytes");
        let limit = num(mem, "limit");
        let swap = num(mem, "swap");
        // The kernel keeps limit ≤ memsw: raising both writes memsw first, lowering limit first.
        let cur_memsw = read_i64(&memsw_f);
        let memsw_first = matches!((limit, cur_memsw), (Some(l), Some(c)) if l > c || l < 0);
        if memsw_first
            && let Some(s) = swap
            && memsw_f.exists()
        {
            write(&memsw_f, &s.to_string())?;
        }
        if let Some(l) = limit {
            write(&limit_f, &l.to_string())?;
        }
        if !memsw_first
            && let Some(s) = swap
            && memsw_f.exists()
        {
            write(&memsw_f, &s.to_string())?;
        }
        if let Some(v) = num(mem, "reservation") {
            write(&d.join("memory.soft_limit_in_bytes"), &v.to_string())?;
        }
        if let Some(v) = num(mem, "swappiness").filter(|v| (0..=100).contains(v)) {
            write(&d.join("memory.swappiness"), &v.to_string())?;
        }
        if mem
            .and_then(|m| m.get("disableOOMKiller"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            write(&d.join("memory.oom_control"), "1")?;
        }
    }
    let cpu = r.cpu.as_ref();
    if let Some(d) = dir("cpu") {
        if let Some(v) = num(cpu, "shares").filter(|v| *v > 0) {
            write(&d.join("cpu.shares"), &v.to_string())?;
        }
        // The period first: a quota is checked against it.
        if let Some(v) = num(cpu, "period").filter(|v| *v > 0) {
            write(&d.join("cpu.cfs_period_us"), &v.to_string())?;
        }
        if let Some(v) = num(cpu, "quota").filter(|v| *v != 0) {
            write(&d.join("cpu.cfs_quota_us"), &v.to_string())?;
        }
    }
    if let Some(d) = dir("cpuset") {
        if let Some(v) = text(cpu, "cpus") {
            write(&d.join("cpuset.cpus"), &v)?;
        }
        if let Some(v) = text(cpu, "mems") {
            write(&d.join("cpuset.mems"), &v)?;
        }
    }
    if let (Some(v), Some(d)) = (num(r.pids.as_ref(), "limit"), dir("pids")) {
        write(
            &d.join("pids.max"),
            &if v <= 0 { "max".into() } else { v.to_string() },
        )?;
    }
    let bio = r.block_io.as_ref();
    if let Some(d) = dir("blkio") {
        if let Some(w) = num(bio, "weight").filter(|w| *w > 0) {
            let f = d.join("blkio.weight");
            if f.exists() {
                write(&f, &w.to_string())?;
            } else {
                warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
            }
        }
        for (maj, min, w) in devices(bio, "weightDevice", "weight") {
            let f = d.join("blkio.weight_device");
            if f.exists() {
                write(&f, &format!("{maj}:{min} {w}"))?;
            } else {
                warnings.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".into());
            }
        }
        for (list, file) in [
            ("throttleReadBpsDevice", "blkio.throttle.read_bps_device"),
            ("throttleWriteBpsDevice", "blkio.throttle.write_bps_device"),
            ("throttleReadIOPSDevice", "blkio.throttle.read_iops_device"),
            (
                "throttleWriteIOPSDevice",
                "blkio.throttle.write_iops_device",
            ),
        ] {
            for (maj, min, rate) in devices(bio, list, "rate") {
                write(&d.join(file), &format!("{maj}:{min} {rate}"))?;
            }
        }
    }
    Ok(warnings)
}

/// docker's conversion of cpu shares (2..262144) to a v2 weight (1..10000).
pub fn shares_to_weight(shares: i64) -> i64 {
    if shares <= 0 {
        return 100;
    }
    1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142
}

/// v2: the unified files in `d`.
pub(crate) fn apply_v2(r: &Resources, d: &Path) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    let max = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    let mem = r.memory.as_ref();
    let limit = num(mem, "limit");
    if let Some(l) = limit {
        write(&d.join("memory.max"), &max(l))?;
    }
    if let Some(s) = num(mem, "swap") {
        // OCI swap is memory+swap; v2 counts swap alone.
        let v = match limit {
            Some(l) if s >= 0 && l >= 0 => (s - l).max(0),
            _ => -1,
        };
        let f = d.join("memory.swap.max");
        if f.exists() {
            write(&f, &max(v))?;
        }
    }
    if let Some(v) = num(mem, "reservation") {
        write(&d.join("memory.low"), &v.to_string())?;
    }
    let cpu = r.cpu.as_ref();
    if let Some(s) = num(cpu, "shares").filter(|v| *v > 0) {
        write(&d.join("cpu.weight"), &shares_to_weight(s).to_string())?;
    }
    let quota = num(cpu, "quota");
    let period = num(cpu, "period").filter(|p| *p > 0);
    if quota.is_some() || period.is_some() {
        let q = quota
            .filter(|q| *q > 0)
            .map(|q| q.to_string())
            .unwrap_or_else(|| "max".into());
        write(
            &d.join("cpu.max"),
            &format!("{q} {}", period.unwrap_or(100_000)),
        )?;
    }
    if let Some(v) = text(cpu, "cpus") {
        write(&d.join("cpuset.cpus"), &v)?;
    }
    if let Some(v) = text(cpu, "mems") {
        write(&d.join("cpuset.mems"), &v)?;
    }
    if let Some(v) = num(r.pids.as_ref(), "limit") {
        write(
            &d.join("pids.max"),
            &if v <= 0 { "max".into() } else { v.to_string() },
        )?;
    }
    let bio = r.block_io.as_ref();
    if let Some(w) = num(bio, "weight").filter(|w| *w > 0) {
        let f = d.join("io.weight");
        if f.exists() {
            // blkio weights (10..1000) scale to io weights (1..10000).
            write(&f, &format!("default {}", 1 + (w - 10) * 9999 / 990))?;
        } else {
            warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
        }
    }
    for (list, key) in [
        ("throttleReadBpsDevice", "rbps"),
        ("throttleWriteBpsDevice", "wbps"),
        ("throttleReadIOPSDevice", "riops"),
        ("throttleWriteIOPSDevice", "wiops"),
    ] {
        for (maj, min, rate) in devices(bio, list, "rate") {
            write(&d.join("io.max"), &format!("{maj}:{min} {key}={rate}"))?;
        }
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_files_get_docker_values() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        for c in ["memory", "cpu", "cpuset", "pids", "blkio"] {
            std::fs::create_dir_all(root.join(c)).unwrap();
        }
        std::fs::write(
            root.join("memory/memory.memsw.limit_in_bytes"),
            "9223372036854771712",
        )
        .unwrap();
        let r = Resources {
            memory: Some(
                serde_json::json!({"limit": 209715200, "swap": 314572800, "reservation": 100, "swappiness": 10}),
            ),
            cpu: Some(
                serde_json::json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"}),
            ),
            pids: Some(serde_json::json!({"limit": 20})),
            block_io: Some(
                serde_json::json!({"weight": 300, "throttleWriteBpsDevice": [{"major": 7, "minor": 0, "rate": 1048576}]}),
            ),
            devices: vec![],
        };
        let warnings = apply_v1(&r, &|c| Some(root.join(c))).unwrap();
        let rd = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
        assert_eq!(rd("memory/memory.limit_in_bytes"), "209715200");
        assert_eq!(rd("memory/memory.memsw.limit_in_bytes"), "314572800");
        assert_eq!(rd("memory/memory.soft_limit_in_bytes"), "100");
        assert_eq!(rd("cpu/cpu.shares"), "512");
        assert_eq!(rd("cpu/cpu.cfs_quota_us"), "50000");
        assert_eq!(rd("cpuset/cpuset.cpus"), "0");
        assert_eq!(rd("pids/pids.max"), "20");
        assert_eq!(rd("blkio/blkio.throttle.write_bps_device"), "7:0 1048576");
        assert_eq!(
            warnings.len(),
            1,
            "no blkio.weight file here: a warning, as docker"
        );
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn v2_files_get_docker_values() {
        // The same settings as the v1 test, on a cgroupfs-shaped v2 directory.
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::write(d.join("memory.swap.max"), "max").unwrap();
        std::fs::write(d.join("io.weight"), "default 100").unwrap();
        let r = Resources {
            memory: Some(
                serde_json::json!({"limit": 209715200, "swap": 314572800, "reservation": 104857600}),
            ),
            cpu: Some(
                serde_json::json!({"shares": 512, "quota": 150000, "period": 100000, "cpus": "0"}),
            ),
            pids: Some(serde_json::json!({"limit": 20})),
            block_io: Some(
                serde_json::json!({"weight": 300, "throttleWriteBpsDevice": [{"major": 7, "minor": 0, "rate": 1048576}]}),
            ),
            devices: vec![],
        };
        let warnings = apply_v2(&r, d).unwrap();
        let rd = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(rd("memory.max"), "209715200");
        assert_eq!(rd("memory.swap.max"), "104857600", "v2 counts swap alone");
        assert_eq!(rd("memory.low"), "104857600");
        assert_eq!(rd("cpu.weight"), shares_to_weight(512).to_string());
        assert_eq!(rd("cpu.max"), "150000 100000");
        assert_eq!(rd("cpuset.cpus"), "0");
        assert_eq!(rd("pids.max"), "20");
        assert_eq!(rd("io.weight"), format!("default {}", 1 + 290 * 9999 / 990));
        assert_eq!(rd("io.max"), "7:0 wbps=1048576");
        assert!(warnings.is_empty());
        // Unlimited values are "max".
        let r = Resources {
            memory: Some(serde_json::json!({"limit": -1, "swap": -1})),
            pids: Some(serde_json::json!({"limit": -1})),
            ..Default::default()
        };
        apply_v2(&r, d).unwrap();
        assert_eq!(
            (rd("memory.max"), rd("memory.swap.max"), rd("pids.max")),
            ("max".into(), "max".into(), "max".into())
        );
    }
}
