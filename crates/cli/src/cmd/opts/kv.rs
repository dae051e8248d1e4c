//! docker's validators for the list flags of `create`/`run`/`exec` (github.com/docker/cli
//! `opts` and `cli/command/container/opts.go`): environment, labels, env and label files,
//! sysctls, hosts, DNS, links, restart policies, ulimits, devices and block-IO limits. Each
//! returns the value docker would store, or docker's message.

use std::net::IpAddr;

use berth_api::engine::{
    DeviceMapping, ResourcesBlkioWeightDevice, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum, ThrottleDevice,
};

use super::values::{parse_mem, parse_uint};

/// `opts.ValidateEnv`: `KEY=value` as given; a bare `KEY` takes its value from our
/// environment when set there.
pub fn validate_env(val: &str) -> Result<String, String> {
    let (k, has_value) = match val.split_once('=') {
        Some((k, _)) => (k, true),
        None => (val, false),
    };
    if k.is_empty() {
        return Err(format!("invalid environment variable: {val}"));
    }
    if has_value {
        return Ok(val.to_string());
    }
    match std::env::var_os(k) {
        Some(v) => Ok(format!("{k}={}", v.to_string_lossy())),
        None => Ok(val.to_string()),
    }
}

/// `opts.ValidateLabel`.
pub fn validate_label(val: &str) -> Result<String, String> {
    let key = val.split_once('=').map(|(k, _)| k).unwrap_or(val);
    let key = key.trim_start_matches([' ', '\t']);
    if key.is_empty() {
        return Err(format!("invalid label '{val}': empty name"));
    }
    if key.contains([' ', '\t']) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(val.to_string())
}

/// `opts.ValidateSysctl`: only namespaced sysctls docker allows.
pub fn validate_sysctl(val: &str) -> Result<String, String> {
    let not_allowed = || format!("sysctl '{val}' is not allowed");
    let (k, _) = val.split_once('=').ok_or_else(not_allowed)?;
    if k.is_empty() {
        return Err(not_allowed());
    }
    if berth_api::IPC_NAMESPACED_SYSCTLS.contains(&k)
        || k.starts_with("net.")
        || k.starts_with("fs.mqueue.")
    {
        Ok(val.to_string())
    } else {
        Err(not_allowed())
    }
}

/// Go's `net.ParseIP(…).String()`.
pub fn canonical_ip(s: &str) -> Option<String> {
    let ip: IpAddr = s.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    })
}

/// `opts.ValidateIPAddress` (`--dns`).
pub fn validate_ip(val: &str) -> Result<String, String> {
    canonical_ip(val.trim()).ok_or_else(|| format!("IP address is not correctly formatted: {val}"))
}

/// `opts.ValidateDNSSearch`.
pub fn validate_dns_search(val: &str) -> Result<String, String> {
    let v = val.trim_matches(' ');
    if v == "." {
        return Ok(v.to_string());
    }
    let bad = || format!("{v} is not a valid domain");
    if !v.chars().any(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let body = v.trim_end_matches(char::is_whitespace);
    let body = body.strip_suffix('.').unwrap_or(body);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if body.split('.').all(label_ok) && body.len() < 255 {
        Ok(body.to_string())
    } else {
        Err(bad())
    }
}

/// `opts.ValidateExtraHost` (`--add-host host:ip`, `host=ip`, `host:host-gateway`).
pub fn validate_extra_host(val: &str) -> Result<String, String> {
    let (k, v) = val
        .split_once('=')
        .or_else(|| val.split_once(':'))
        .ok_or_else(|| format!("bad format for add-host: {val:?}"))?;
    if k.is_empty() || k.contains(':') {
        return Err(format!("bad format for add-host: {val:?}"));
    }
    let mut v = v;
    if v != "host-gateway" {
        if v.len() > 2 && v.starts_with('[') && v.ends_with(']') {
            v = &v[1..v.len() - 1];
        }
        if canonical_ip(v.trim()).is_none() {
            return Err(format!("invalid IP address in add-host: {v:?}"));
        }
    }
    Ok(format!("{k}:{v}"))
}

/// `opts.ValidateLink` (`name[:alias]`).
pub fn validate_link(val: &str) -> Result<String, String> {
    if val.is_empty() {
        return Err("empty string specified for links".into());
    }
    if val.splitn(3, ':').count() > 2 {
        return Err(format!("bad format for links: {val}"));
    }
    Ok(val.to_string())
}

/// `-a/--attach`: one of the three streams, case-insensitive.
pub fn validate_attach(val: &str) -> Result<String, String> {
    let s = val.to_lowercase();
    if ["stdin", "stdout", "stderr"].contains(&s.as_str()) {
        Ok(s)
    } else {
        Err("valid streams are STDIN, STDOUT and STDERR".into())
    }
}

/// Go's `net.ParseMAC` for the forms docker users write.
pub fn valid_mac(s: &str) -> bool {
    let s = s.trim();
    let hex_pairs = |parts: Vec<&str>| {
        matches!(parts.len(), 6 | 8 | 20)
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
    };
    if s.contains(':') {
        return hex_pairs(s.split(':').collect());
    }
    if s.contains('-') {
        return hex_pairs(s.split('-').collect());
    }
    let groups: Vec<&str> = s.split('.').collect();
    matches!(groups.len(), 3 | 4 | 10)
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Finds a variable's value for a bare name in an env file.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// docker's `kvfile.Parse`: `KEY=value` lines; `#` comments and blank lines skipped; a bare
/// `KEY` is looked up with `lookup` (env files) or dropped (label files).
pub fn parse_kv_file(path: &str, lookup: Option<Lookup>) -> Result<Vec<String>, String> {
    let data = std::fs::read(path).map_err(|e| crate::cmd::go_path_error("open", path, &e))?;
    parse_kv_lines(&data, lookup).map_err(|e| format!("invalid env file ({path}): {e}"))
}

fn parse_kv_lines(data: &[u8], lookup: Option<Lookup>) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, raw) in data.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if i == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let line = std::str::from_utf8(raw)
            .map_err(|_| format!("invalid utf8 bytes at line {}: {:?}", i + 1, raw))?;
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, has_value) = match line.split_once('=') {
            Some((k, _)) => (k, true),
            None => (line, false),
        };
        if key.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if key.contains([' ', '\t']) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        if has_value {
            out.push(line.to_string());
        } else if let Some(f) = lookup
            && let Some(v) = f(line)
        {
            out.push(format!("{key}={v}"));
        }
    }
    Ok(out)
}

/// `opts.ReadKVEnvStrings`: env files first (bare names from our environment), then `-e`.
pub fn read_env(files: &[String], env: &[String]) -> Result<Vec<String>, String> {
    let lookup = |k: &str| std::env::var(k).ok();
    let mut out = Vec::new();
    for f in files {
        out.extend(parse_kv_file(f, Some(&lookup))?);
    }
    out.extend(env.iter().cloned());
    Ok(out)
}

/// `opts.ReadKVStrings` for labels: label files first, then `-l`.
pub fn read_labels(files: &[String], labels: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for f in files {
        out.extend(parse_kv_file(f, None)?);
    }
    out.extend(labels.iter().cloned());
    Ok(out)
}

/// `opts.ConvertKVStringsToMap`: `k=v` (a bare `k` maps to "").
pub fn kv_map(values: &[String]) -> std::collections::HashMap<String, String> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

/// `opts.ParseRestartPolicy` plus the checks of the API's `ValidateRestartPolicy`.
pub fn parse_restart_policy(policy: &str) -> Result<RestartPolicy, String> {
    if policy.is_empty() {
        return Ok(RestartPolicy::default());
    }
    let (name, count) = match policy.split_once(':') {
        Some(("", _)) => {
            return Err("invalid restart policy format: no policy provided before colon".into());
        }
        Some((n, c)) => (n, c),
        None => (policy, ""),
    };
    let mut retries = 0i64;
    if !count.is_empty() {
        retries = count.parse::<i64>().map_err(|_| {
            "invalid restart policy format: maximum retry count must be an integer".to_string()
        })?;
    }
    let kind = match name {
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => {
            return Err(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ));
        }
    };
    if kind == RestartPolicyNameEnum::ON_FAILURE {
        if retries < 0 {
            return Err("invalid restart policy: maximum retry count cannot be negative".into());
        }
    } else if retries != 0 {
        let mut msg =
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                .to_string();
        if retries < 0 {
            msg.push_str(" and cannot be negative");
        }
        return Err(msg);
    }
    Ok(RestartPolicy {
        name: Some(kind),
        maximum_retry_count: Some(retries),
    })
}

/// True unless the policy restarts (docker's `RestartPolicy.IsNone`).
pub fn restart_is_none(p: &RestartPolicy) -> bool {
    matches!(
        p.name,
        None | Some(RestartPolicyNameEnum::NO) | Some(RestartPolicyNameEnum::EMPTY)
    )
}

const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// go-units' `ParseUlimit`: `name=soft[:hard]`.
pub fn parse_ulimit(val: &str) -> Result<ResourcesUlimits, String> {
    let (name, limits) = val
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {val}"))?;
    if !ULIMITS.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [s] => {
            let s = int(s)?;
            (s, s)
        }
        [s, h] => (int(s)?, int(h)?),
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ));
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            ));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok(ResourcesUlimits {
        name: Some(name.to_string()),
        soft: Some(soft),
        hard: Some(hard),
    })
}

fn device_and_value(val: &str) -> Result<(&str, &str), String> {
    let (k, v) = val
        .split_once(':')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("bad format: {val}"))?;
    if !k.starts_with("/dev/") {
        return Err(format!("bad format for device path: {val}"));
    }
    Ok((k, v))
}

/// `opts.ValidateThrottleBpsDevice` (`/dev/sda:10mb`).
pub fn parse_throttle_bps(val: &str) -> Result<ThrottleDevice, String> {
    let (path, v) = device_and_value(val)?;
    let rate = parse_mem(v).ok().filter(|r| *r >= 0).ok_or_else(|| {
        format!("invalid rate for device: {val}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb")
    })?;
    Ok(ThrottleDevice {
        path: Some(path.to_string()),
        rate: Some(rate),
    })
}

/// `opts.ValidateThrottleIOpsDevice` (`/dev/sda:1000`).
pub fn parse_throttle_iops(val: &str) -> Result<ThrottleDevice, String> {
    let (path, v) = device_and_value(val)?;
    let rate = v.parse::<u64>().map_err(|_| {
        format!("invalid rate for device: {val}. The correct format is <device-path>:<number>. Number must be a positive integer")
    })?;
    Ok(ThrottleDevice {
        path: Some(path.to_string()),
        rate: Some(rate as i64),
    })
}

/// `opts.ValidateWeightDevice` (`/dev/sda:200`, 10–1000 or 0).
pub fn parse_weight_device(val: &str) -> Result<ResourcesBlkioWeightDevice, String> {
    let (path, v) = device_and_value(val)?;
    let weight = parse_uint(v, 16)
        .ok()
        .filter(|w| *w == 0 || (10..=1000).contains(w))
        .ok_or_else(|| format!("invalid weight for device: {val}"))?;
    Ok(ResourcesBlkioWeightDevice {
        path: Some(path.to_string()),
        weight: Some(weight as usize),
    })
}

/// `validateDeviceCgroupRule`: `[acb] major:minor [rwm]`.
pub fn validate_device_cgroup_rule(val: &str) -> Result<String, String> {
    let bad = || format!("invalid device cgroup format '{val}'");
    let parts: Vec<&str> = val.split(' ').collect();
    let num = |s: &str| s == "*" || (!s.is_empty() && s.chars().all(|c| c.is_ascii_digit()));
    match parts.as_slice() {
        [kind, nums, mode]
            if matches!(*kind, "a" | "c" | "b")
                && nums.split_once(':').is_some_and(|(a, b)| num(a) && num(b))
                && (1..=3).contains(&mode.len())
                && mode.chars().all(|c| "rwm".contains(c)) =>
        {
            Ok(val.to_string())
        }
        _ => Err(bad()),
    }
}

fn valid_device_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return false;
    }
    let mut seen = String::new();
    for c in mode.chars() {
        if !"rwm".contains(c) || seen.contains(c) {
            return false;
        }
        seen.push(c);
    }
    true
}

/// CDI device names (`vendor.com/class=name`) go to the daemon as device requests.
pub fn is_cdi_name(device: &str) -> bool {
    match device.split_once('=') {
        Some((kind, name)) => {
            !name.is_empty()
                && kind
                    .split_once('/')
                    .is_some_and(|(v, c)| !v.is_empty() && !c.is_empty() && !c.contains('/'))
        }
        None => false,
    }
}

/// `--device host[:container][:perms]` for a Linux daemon: docker's `validateLinuxPath`, then
/// `parseLinuxDevice`.
pub fn parse_device(val: &str) -> Result<DeviceMapping, String> {
    let bad = || format!("bad format for path: {val}");
    if val.matches(':').count() > 2 {
        return Err(bad());
    }
    let split: Vec<&str> = val.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(bad());
    }
    let clean = super::clean_path;
    let (container_path, validated) = match split.as_slice() {
        [p] => (p.to_string(), clean(p)),
        [a, b] if valid_device_mode(b) => (a.to_string(), format!("{}:{b}", clean(a))),
        [a, b] => (b.to_string(), format!("{a}:{}", clean(b))),
        [a, b, mode] => {
            if !valid_device_mode(mode) {
                return Err(format!("bad mode specified: {mode}"));
            }
            (b.to_string(), format!("{a}:{b}:{mode}"))
        }
        _ => return Err(bad()),
    };
    if !container_path.starts_with('/') {
        return Err(format!("{container_path} is not an absolute path"));
    }
    let arr: Vec<&str> = validated.splitn(4, ':').collect();
    let (mut src, mut dst, mut perms) = ("", "", "rwm");
    if arr.len() == 3 {
        perms = arr[2];
    }
    if arr.len() >= 2 {
        if valid_device_mode(arr[1]) {
            perms = arr[1];
        } else {
            dst = arr[1];
        }
    }
    if !arr.is_empty() {
        src = arr[0];
    }
    if dst.is_empty() {
        dst = src;
    }
    Ok(DeviceMapping {
        path_on_host: Some(src.to_string()),
        path_in_container: Some(dst.to_string()),
        cgroup_permissions: Some(perms.to_string()),
    })
}

/// Normalizes `--cap-add`/`--cap-drop` as docker's client does: upper case, `CAP_` prefix
/// (except `ALL`), duplicates dropped, sorted.
pub fn normalize_caps(caps: &[String]) -> Vec<String> {
    let mut out: Vec<String> = caps
        .iter()
        .map(|c| {
            let c = c.to_uppercase();
            if c == "ALL" || c.starts_with("CAP_") {
                c
            } else {
                format!("CAP_{c}")
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `parseSecurityOpts`: `key=value` or `key:value` (only `no-new-privileges` may be bare);
/// a seccomp profile path is replaced by the file's compacted JSON.
pub fn parse_security_opts(opts: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(opts.len());
    for opt in opts {
        let (k, v, ok) = match opt.split_once('=') {
            Some((k, v)) => (k, v, true),
            None if opt != "no-new-privileges" => match opt.split_once(':') {
                Some((k, v)) => (k, v, true),
                None => (opt.as_str(), "", false),
            },
            None => (opt.as_str(), "", false),
        };
        if (!ok || v.is_empty()) && k != "no-new-privileges" {
            return Err(format!("Invalid --security-opt: {opt:?}"));
        }
        if k == "seccomp" && v != "builtin" && v != "unconfined" {
            let data = std::fs::read(v).map_err(|e| {
                format!(
                    "opening seccomp profile ({v}) failed: {}",
                    crate::cmd::go_path_error("open", v, &e)
                )
            })?;
            let json: serde_json::Value = serde_json::from_slice(&data)
                .map_err(|e| format!("compacting json for seccomp profile ({v}) failed: {e}"))?;
            out.push(format!("seccomp={json}"));
            continue;
        }
        out.push(opt.clone());
    }
    Ok(out)
}

/// `parseStorageOpts`.
pub fn parse_storage_opts(
    opts: &[String],
) -> Result<std::collections::HashMap<String, String>, String> {
    let mut m = std::collections::HashMap::new();
    for o in opts {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| "invalid storage option".to_string())?;
        m.insert(k.to_string(), v.to_string());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values() {
        assert_eq!(validate_env("A=1").unwrap(), "A=1");
        assert_eq!(validate_env("A=").unwrap(), "A=");
        assert_eq!(
            validate_env("=x").unwrap_err(),
            "invalid environment variable: =x"
        );
        // SAFETY: tests in this module do not read this variable concurrently.
        unsafe { std::env::set_var("BERTH_TEST_ENV_FROM_HOST", "from host") };
        assert_eq!(
            validate_env("BERTH_TEST_ENV_FROM_HOST").unwrap(),
            "BERTH_TEST_ENV_FROM_HOST=from host"
        );
        assert_eq!(
            validate_env("BERTH_TEST_SURELY_UNSET").unwrap(),
            "BERTH_TEST_SURELY_UNSET"
        );
    }

    #[test]
    fn env_file_lines() {
        let lookup = |k: &str| (k == "HOME_X").then(|| "/root".to_string());
        let got = parse_kv_lines(
            b"\xEF\xBB\xBF# comment\nA=1\n\n  B = x\nHOME_X\nMISSING\nC=a=b\r\n",
            Some(&lookup),
        );
        assert_eq!(
            got.unwrap_err(),
            "variable 'B ' contains whitespaces",
            "docker refuses spaces in names"
        );
        let got = parse_kv_lines(b"# c\nA=1\nHOME_X\nMISSING\nC=a=b\r\n", Some(&lookup)).unwrap();
        assert_eq!(got, vec!["A=1", "HOME_X=/root", "C=a=b"]);
        let labels = parse_kv_lines(b"a=b\nbare\n", None).unwrap();
        assert_eq!(labels, vec!["a=b"]);
        assert_eq!(
            parse_kv_lines(b"=x\n", None).unwrap_err(),
            "no variable name on line '=x'"
        );
        let missing = parse_kv_file("/nonexistent/env", None).unwrap_err();
        assert_eq!(missing, "open /nonexistent/env: no such file or directory");
    }

    #[test]
    fn labels_and_sysctls() {
        assert!(validate_label("a=b").is_ok());
        assert!(validate_label("a").is_ok());
        assert_eq!(
            validate_label("=b").unwrap_err(),
            "invalid label '=b': empty name"
        );
        assert_eq!(
            validate_label("a b=c").unwrap_err(),
            "label 'a b' contains whitespaces"
        );
        assert!(validate_sysctl("net.ipv4.ip_forward=1").is_ok());
        assert!(validate_sysctl("kernel.shmmax=1").is_ok());
        assert_eq!(
            validate_sysctl("kernel.panic=1").unwrap_err(),
            "sysctl 'kernel.panic=1' is not allowed"
        );
        let m = kv_map(&["a=b".into(), "c".into(), "d=e=f".into()]);
        assert_eq!(m["a"], "b");
        assert_eq!(m["c"], "");
        assert_eq!(m["d"], "e=f");
    }

    #[test]
    fn hosts_dns_links() {
        assert_eq!(validate_extra_host("db:10.0.0.2").unwrap(), "db:10.0.0.2");
        assert_eq!(validate_extra_host("db=::1").unwrap(), "db:::1");
        assert_eq!(validate_extra_host("db:[::1]").unwrap(), "db:::1");
        assert_eq!(
            validate_extra_host("gw:host-gateway").unwrap(),
            "gw:host-gateway"
        );
        assert_eq!(
            validate_extra_host("nohost").unwrap_err(),
            "bad format for add-host: \"nohost\""
        );
        assert_eq!(
            validate_extra_host("db:notanip").unwrap_err(),
            "invalid IP address in add-host: \"notanip\""
        );
        assert_eq!(validate_ip(" 8.8.8.8").unwrap(), "8.8.8.8");
        assert_eq!(
            validate_ip("8.8.8").unwrap_err(),
            "IP address is not correctly formatted: 8.8.8"
        );
        assert_eq!(validate_dns_search("example.com.").unwrap(), "example.com");
        assert_eq!(validate_dns_search(".").unwrap(), ".");
        assert_eq!(
            validate_dns_search("123").unwrap_err(),
            "123 is not a valid domain"
        );
        assert_eq!(
            validate_dns_search("-bad.com").unwrap_err(),
            "-bad.com is not a valid domain"
        );
        assert!(validate_link("db:alias").is_ok());
        assert_eq!(
            validate_link("a:b:c").unwrap_err(),
            "bad format for links: a:b:c"
        );
        assert_eq!(validate_attach("STDIN").unwrap(), "stdin");
        assert_eq!(
            validate_attach("foo").unwrap_err(),
            "valid streams are STDIN, STDOUT and STDERR"
        );
        assert!(valid_mac("92:d0:c6:0a:29:33"));
        assert!(valid_mac("92-d0-c6-0a-29-33"));
        assert!(valid_mac("0123.4567.89ab"));
        assert!(!valid_mac("92:d0:c6:0a:29"));
        assert!(!valid_mac("zz:d0:c6:0a:29:33"));
    }

    #[test]
    fn restart_policies() {
        let p = parse_restart_policy("on-failure:3").unwrap();
        assert_eq!(p.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(p.maximum_retry_count, Some(3));
        assert!(restart_is_none(&parse_restart_policy("no").unwrap()));
        assert!(restart_is_none(&parse_restart_policy("").unwrap()));
        assert!(!restart_is_none(&parse_restart_policy("always").unwrap()));
        assert_eq!(
            parse_restart_policy("foo").unwrap_err(),
            "invalid restart policy: unknown policy 'foo'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        );
        assert_eq!(
            parse_restart_policy("always:3").unwrap_err(),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        );
        assert_eq!(
            parse_restart_policy("no:-1").unwrap_err(),
            "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"
        );
        assert_eq!(
            parse_restart_policy("on-failure:-2").unwrap_err(),
            "invalid restart policy: maximum retry count cannot be negative"
        );
        assert_eq!(
            parse_restart_policy(":3").unwrap_err(),
            "invalid restart policy format: no policy provided before colon"
        );
        assert_eq!(
            parse_restart_policy("on-failure:x").unwrap_err(),
            "invalid restart policy format: maximum retry count must be an integer"
        );
    }

    #[test]
    fn ulimits() {
        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!(
            (u.name.as_deref(), u.soft, u.hard),
            (Some("nofile"), Some(1024), Some(2048))
        );
        let u = parse_ulimit("nproc=10").unwrap();
        assert_eq!((u.soft, u.hard), (Some(10), Some(10)));
        assert!(parse_ulimit("core=-1").is_ok());
        assert_eq!(
            parse_ulimit("foo=1").unwrap_err(),
            "invalid ulimit type: foo"
        );
        assert_eq!(
            parse_ulimit("nofile").unwrap_err(),
            "invalid ulimit argument: nofile"
        );
        assert_eq!(
            parse_ulimit("nofile=2:1").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: 2 > 1"
        );
        assert_eq!(
            parse_ulimit("nofile=-1:5").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 5"
        );
        assert_eq!(
            parse_ulimit("nofile=1:2:3").unwrap_err(),
            "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"
        );
        assert_eq!(
            parse_ulimit("nofile=x").unwrap_err(),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
    }

    #[test]
    fn block_io_devices() {
        let t = parse_throttle_bps("/dev/sda:1mb").unwrap();
        assert_eq!(
            (t.path.as_deref(), t.rate),
            (Some("/dev/sda"), Some(1 << 20))
        );
        assert_eq!(
            parse_throttle_bps("sda:1mb").unwrap_err(),
            "bad format for device path: sda:1mb"
        );
        assert_eq!(
            parse_throttle_bps("/dev/sda").unwrap_err(),
            "bad format: /dev/sda"
        );
        assert!(
            parse_throttle_bps("/dev/sda:x")
                .unwrap_err()
                .starts_with("invalid rate for device: /dev/sda:x.")
        );
        assert_eq!(parse_throttle_iops("/dev/sda:100").unwrap().rate, Some(100));
        assert!(parse_throttle_iops("/dev/sda:1k").is_err());
        assert_eq!(
            parse_weight_device("/dev/sda:200").unwrap().weight,
            Some(200)
        );
        assert_eq!(parse_weight_device("/dev/sda:0").unwrap().weight, Some(0));
        assert_eq!(
            parse_weight_device("/dev/sda:5").unwrap_err(),
            "invalid weight for device: /dev/sda:5"
        );
    }

    #[test]
    fn devices() {
        let d = parse_device("/dev/fuse").unwrap();
        assert_eq!(d.path_on_host.as_deref(), Some("/dev/fuse"));
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/fuse"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rwm"));
        let d = parse_device("/dev/sda:/dev/xvda:r").unwrap();
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/xvda"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("r"));
        let d = parse_device("/dev/sda:rw").unwrap();
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/sda"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rw"));
        assert_eq!(
            parse_device("/dev/sda:/dev/xvda:rwx").unwrap_err(),
            "bad mode specified: rwx"
        );
        assert_eq!(
            parse_device("/dev/sda:xvda").unwrap_err(),
            "xvda is not an absolute path"
        );
        assert_eq!(parse_device(":/x").unwrap_err(), "bad format for path: :/x");
        assert!(is_cdi_name("nvidia.com/gpu=all"));
        assert!(!is_cdi_name("/dev/sda"));
        assert!(validate_device_cgroup_rule("c 1:3 mr").is_ok());
        assert!(validate_device_cgroup_rule("a *:* rwm").is_ok());
        assert_eq!(
            validate_device_cgroup_rule("x 1:3 r").unwrap_err(),
            "invalid device cgroup format 'x 1:3 r'"
        );
    }

    #[test]
    fn caps_security_storage() {
        assert_eq!(
            normalize_caps(&["net_admin".into(), "CAP_NET_ADMIN".into(), "all".into()]),
            vec!["ALL", "CAP_NET_ADMIN"]
        );
        assert_eq!(
            parse_security_opts(&["no-new-privileges".into(), "label:disable".into()]).unwrap(),
            vec!["no-new-privileges", "label:disable"]
        );
        assert_eq!(
            parse_security_opts(&["apparmor".into()]).unwrap_err(),
            "Invalid --security-opt: \"apparmor\""
        );
        let dir = std::env::temp_dir().join(format!("berth-seccomp-{}", std::process::id()));
        std::fs::write(&dir, "{ \"defaultAction\" : \"SCMP_ACT_ALLOW\" }\n").unwrap();
        let got = parse_security_opts(&[format!("seccomp={}", dir.display())]).unwrap();
        assert_eq!(got, vec!["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]);
        let _ = std::fs::remove_file(&dir);
        assert_eq!(
            parse_storage_opts(&["size=10G".into()]).unwrap()["size"],
            "10G"
        );
        assert_eq!(
            parse_storage_opts(&["size".into()]).unwrap_err(),
            "invalid storage option"
        );
    }
}
