//! Resource flags (`-m`, `--memory-swap`, `-c`, `--cpus`, `--cpuset-cpus`, `--pids-limit`,
//! `--blkio-weight`, `--device-*-bps/iops`…): docker's validation and defaults, and the OCI
//! `linux.resources` they become.

use berth_api::engine::HostConfig;
use berth_runtime::spec::{Device, Resources};
use serde_json::{Value, json};

use crate::http::ApiError;

/// docker's minimum memory limit.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::bad_request(m)
}

fn host_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Parses a cpuset list (`0-2,4`) and checks every CPU exists.
fn check_cpuset(list: &str, available: usize, what: &str) -> Result<(), ApiError> {
    let invalid = || bad(format!("Invalid value {list} for {what}"));
    for part in list.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<usize>().map_err(|_| invalid())?,
                b.trim().parse::<usize>().map_err(|_| invalid())?,
            ),
            None => {
                let n = part.trim().parse::<usize>().map_err(|_| invalid())?;
                (n, n)
            }
        };
        if a > b {
            return Err(invalid());
        }
        if what == "cpuset.cpus" && b >= available {
            return Err(bad(format!(
                "Requested CPUs are not available - requested {list}, available: 0-{}",
                available - 1
            )));
        }
    }
    Ok(())
}

/// The device's major:minor for a throttle entry (`/dev/loop0`).
fn device_numbers(path: &str) -> Result<(i64, i64), ApiError> {
    let st = rustix::fs::stat(path).map_err(|e| {
        bad(format!(
            "error gathering device information while adding custom device \"{path}\": {e}"
        ))
    })?;
    let rdev = st.st_rdev;
    Ok((
        rustix::fs::major(rdev) as i64,
        rustix::fs::minor(rdev) as i64,
    ))
}

/// `--device` nodes (`/dev/loop3[:/dev/xvdc[:rwm]]`) as OCI devices: the host node's type,
/// numbers and mode, at the path the container sees.
pub fn device_nodes(hc: &HostConfig) -> Result<Vec<Device>, ApiError> {
    let mut out = Vec::new();
    if hc.privileged.unwrap_or(false) {
        host_devices(std::path::Path::new("/dev"), &mut out);
    }
    for m in hc.devices.as_deref().unwrap_or(&[]) {
        let host = m.path_on_host.clone().unwrap_or_default();
        let err = |why: String| {
            bad(format!(
                "error gathering device information while adding custom device \"{host}\": {why}"
            ))
        };
        let st = rustix::fs::stat(host.as_str()).map_err(|e| err(e.to_string()))?;
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::CharacterDevice => "c",
            rustix::fs::FileType::BlockDevice => "b",
            _ => return Err(err("not a device node".into())),
        };
        let path = m
            .path_in_container
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| host.clone());
        if !path.starts_with('/') {
            return Err(bad(format!("{path} is not an absolute path")));
        }
        out.push(Device {
            kind: kind.into(),
            path,
            major: rustix::fs::major(st.st_rdev) as i64,
            minor: rustix::fs::minor(st.st_rdev) as i64,
            file_mode: Some(st.st_mode & 0o7777),
            uid: Some(st.st_uid),
            gid: Some(st.st_gid),
        });
    }
    Ok(out)
}

/// `--sysctl`: only keys the container's own namespaces hold (docker's list: IPC `kernel.*`
/// knobs, `fs.mqueue.*`, and `net.*` unless the network is the host's).
pub fn check_sysctls(hc: &HostConfig) -> Result<(), ApiError> {
    let host_net = hc.network_mode.as_deref() == Some("host");
    let host_ipc = hc.ipc_mode.as_deref() == Some("host");
    for (k, v) in hc.sysctls.iter().flatten() {
        let ipc =
            berth_api::IPC_NAMESPACED_SYSCTLS.contains(&k.as_str()) || k.starts_with("fs.mqueue.");
        let ok = (ipc && !host_ipc) || (k.starts_with("net.") && !host_net);
        if !ok {
            return Err(bad(format!("sysctl '{k}={v}' is not allowed")));
        }
    }
    Ok(())
}

/// Every device node under `dir` (for `--privileged`), as docker's HostDevices: not the
/// per-container filesystems (pts, shm, mqueue) nor symlinks.
fn host_devices(dir: &std::path::Path, out: &mut Vec<Device>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(st) = rustix::fs::lstat(&path) else {
            continue;
        };
        let kind = match rustix::fs::FileType::from_raw_mode(st.st_mode) {
            rustix::fs::FileType::Directory => {
                let name = e.file_name();
                if !["pts", "shm", "mqueue", "fd", ".lxc", ".udev"]
                    .contains(&name.to_str().unwrap_or(""))
                {
                    host_devices(&path, out);
                }
                continue;
            }
            rustix::fs::FileType::CharacterDevice => "c",
            rustix::fs::FileType::BlockDevice => "b",
            _ => continue,
        };
        if path == std::path::Path::new("/dev/console") {
            continue;
        }
        out.push(Device {
            kind: kind.into(),
            path: path.display().to_string(),
            major: rustix::fs::major(st.st_rdev) as i64,
            minor: rustix::fs::minor(st.st_rdev) as i64,
            file_mode: Some(st.st_mode & 0o7777),
            uid: Some(st.st_uid),
            gid: Some(st.st_gid),
        });
    }
}

/// Validates the resource settings (docker's messages) and fills docker's defaults in place
/// (memory-swap twice the memory when unset). Returns warnings.
pub fn validate(hc: &mut HostConfig) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    device_nodes(hc)?;
    check_sysctls(hc)?;
    let memory = hc.memory.unwrap_or(0);
    if memory > 0 && memory < MIN_MEMORY {
        return Err(bad("Minimum memory limit allowed is 6MB"));
    }
    let swap = hc.memory_swap.unwrap_or(0);
    if swap > 0 && memory <= 0 {
        return Err(bad(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if memory > 0 && swap > 0 && swap < memory {
        return Err(bad(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if memory > 0 && swap == 0 {
        // docker: unset swap means as much swap as memory (twice in total).
        hc.memory_swap = Some(memory * 2);
    }
    if let Some(r) = hc.memory_reservation.filter(|r| *r > 0) {
        if r < MIN_MEMORY {
            return Err(bad("Minimum memory reservation allowed is 6MB"));
        }
        if memory > 0 && memory < r {
            return Err(bad(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s != -1)
        && !(0..=100).contains(&s)
    {
        return Err(bad(format!(
            "Invalid value: {s}, valid memory swappiness range is 0-100"
        )));
    }
    if hc.oom_kill_disable.unwrap_or(false) && memory <= 0 {
        warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into());
    }
    let cpus = host_cpus();
    if let Some(n) = hc.nano_cpus.filter(|n| *n != 0) {
        if n < 0 || n > cpus as i64 * 1_000_000_000 {
            return Err(bad(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
        if hc.cpu_quota.unwrap_or(0) > 0 || hc.cpu_period.unwrap_or(0) > 0 {
            return Err(bad(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
    }
    if let Some(p) = hc.cpu_period.filter(|p| *p != 0)
        && !(1000..=1_000_000).contains(&p)
    {
        return Err(bad(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if let Some(q) = hc.cpu_quota.filter(|q| *q > 0)
        && q < 1000
    {
        return Err(bad("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
    }
    if let Some(c) = hc.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        check_cpuset(c, cpus, "cpuset.cpus")?;
    }
    if let Some(m) = hc.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        check_cpuset(m, usize::MAX, "cpuset.mems")?;
    }
    if let Some(w) = hc.blkio_weight.filter(|w| *w != 0)
        && !(10..=1000).contains(&w)
    {
        return Err(bad("Range of blkio weight is from 10 to 1000"));
    }
    if !berth_runtime::cgroup::blkio_weight_supported() {
        if hc.blkio_weight.unwrap_or(0) > 0 {
            warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
            hc.blkio_weight = Some(0);
        }
        if hc
            .blkio_weight_device
            .as_ref()
            .is_some_and(|d| !d.is_empty())
        {
            warnings.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".into());
            hc.blkio_weight_device = Some(Vec::new());
        }
    }
    Ok(warnings)
}

/// The OCI resources for the container's settings.
pub fn to_oci(hc: &HostConfig) -> Result<Resources, ApiError> {
    let mut memory = serde_json::Map::new();
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        memory.insert("limit".into(), json!(m));
    }
    if let Some(s) = hc.memory_swap.filter(|s| *s != 0) {
        memory.insert("swap".into(), json!(s));
    }
    if let Some(r) = hc.memory_reservation.filter(|r| *r > 0) {
        memory.insert("reservation".into(), json!(r));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
        memory.insert("swappiness".into(), json!(s));
    }
    if hc.oom_kill_disable.unwrap_or(false) {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.insert("shares".into(), json!(s.clamp(2, 262_144)));
    }
    match hc.nano_cpus.filter(|n| *n > 0) {
        Some(n) => {
            // docker: --cpus as a CFS quota over a 100 ms period.
            cpu.insert("period".into(), json!(100_000));
            cpu.insert("quota".into(), json!(n * 100_000 / 1_000_000_000));
        }
        None => {
            if let Some(p) = hc.cpu_period.filter(|p| *p > 0) {
                cpu.insert("period".into(), json!(p));
            }
            if let Some(q) = hc.cpu_quota.filter(|q| *q != 0) {
                cpu.insert("quota".into(), json!(q));
            }
        }
    }
    if let Some(c) = hc.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = hc.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        cpu.insert("mems".into(), json!(m));
    }
    let mut bio = serde_json::Map::new();
    if let Some(w) = hc.blkio_weight.filter(|w| *w > 0) {
        bio.insert("weight".into(), json!(w));
    }
    let mut weight_devs = Vec::new();
    for w in hc.blkio_weight_device.as_deref().unwrap_or(&[]) {
        if let (Some(p), Some(weight)) = (&w.path, w.weight) {
            let (major, minor) = device_numbers(p)?;
            weight_devs.push(json!({"major": major, "minor": minor, "weight": weight}));
        }
    }
    if !weight_devs.is_empty() {
        bio.insert("weightDevice".into(), Value::Array(weight_devs));
    }
    for (list, key) in [
        (&hc.blkio_device_read_bps, "throttleReadBpsDevice"),
        (&hc.blkio_device_write_bps, "throttleWriteBpsDevice"),
        (&hc.blkio_device_read_iops, "throttleReadIOPSDevice"),
        (&hc.blkio_device_write_iops, "throttleWriteIOPSDevice"),
    ] {
        let mut out = Vec::new();
        for t in list.as_deref().unwrap_or(&[]) {
            if let (Some(p), Some(rate)) = (&t.path, t.rate) {
                let (major, minor) = device_numbers(p)?;
                out.push(json!({"major": major, "minor": minor, "rate": rate}));
            }
        }
        if !out.is_empty() {
            bio.insert(key.into(), Value::Array(out));
        }
    }
    let pids = hc
        .pids_limit
        .filter(|p| *p != 0)
        .map(|p| json!({"limit": if p < 0 { -1 } else { p }}));
    let obj = |m: serde_json::Map<String, Value>| (!m.is_empty()).then_some(Value::Object(m));
    // Privileged containers may use every device (their nodes come from device_nodes).
    let devices = if hc.privileged.unwrap_or(false) {
        vec![json!({"allow": true, "access": "rwm"})]
    } else {
        Vec::new()
    };
    Ok(Resources {
        memory: obj(memory),
        cpu: obj(cpu),
        pids,
        block_io: obj(bio),
        devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(j: Value) -> HostConfig {
        serde_json::from_value(j).unwrap()
    }

    #[test]
    fn docker_rules_and_defaults() {
        let mut h = hc(json!({"Memory": 1024}));
        assert_eq!(
            validate(&mut h).unwrap_err().message,
            "Minimum memory limit allowed is 6MB"
        );
        let mut h = hc(json!({"Memory": 209715200, "MemorySwap": 104857600}));
        assert!(
            validate(&mut h)
                .unwrap_err()
                .message
                .starts_with("Minimum memoryswap limit")
        );
        let mut h = hc(json!({"Memory": 67108864}));
        validate(&mut h).unwrap();
        assert_eq!(
            h.memory_swap,
            Some(134217728),
            "unset swap: twice the memory"
        );
        let mut h = hc(json!({"NanoCpus": 99_000_000_000i64}));
        assert!(
            validate(&mut h)
                .unwrap_err()
                .message
                .starts_with("Range of CPUs is from 0.01 to")
        );
        let mut h = hc(json!({"CpusetCpus": "0-99"}));
        assert!(
            validate(&mut h)
                .unwrap_err()
                .message
                .starts_with("Requested CPUs are not available")
        );
        let mut h = hc(json!({"MemorySwappiness": 101}));
        assert!(validate(&mut h).is_err());
        let r = to_oci(&hc(json!({"Memory": 209715200, "MemorySwap": 314572800, "CpuShares": 512, "NanoCpus": 1_500_000_000i64, "PidsLimit": 20}))).unwrap();
        assert_eq!(r.memory.unwrap()["swap"], 314572800);
        let cpu = r.cpu.unwrap();
        assert_eq!(
            (
                cpu["shares"].as_i64(),
                cpu["quota"].as_i64(),
                cpu["period"].as_i64()
            ),
            (Some(512), Some(150_000), Some(100_000))
        );
        assert_eq!(r.pids.unwrap()["limit"], 20);
    }
}
