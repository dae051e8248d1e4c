//! The flags of `create` and `run` (docker's `addFlags` in cli/command/container/opts.go)
//! and their translation into the body of `POST /containers/create`. Values are kept as
//! given and validated here, so errors carry docker's wording.

use std::collections::HashMap;

use berth_api::engine::{
    ContainerCreateBody, DeviceRequest, HealthConfig, HostConfig, HostConfigCgroupnsModeEnum,
    HostConfigIsolationEnum, HostConfigLogConfig, NetworkingConfig, PortMap,
};
use clap::{ArgAction, Args};

use super::opts::kv::{self, kv_map};
use super::opts::mounts::{parse_mount, parse_tmpfs, split_volumes};
use super::opts::network::{
    LegacyNetworkFlags, NetworkAttachment, network_endpoints, parse_network,
};
use super::opts::ports::parse_ports;
use super::opts::values::{
    parse_cpus, parse_duration, parse_int, parse_mem, parse_mem_swap, parse_uint,
};
use super::opts::{OptError, each, opt};

/// Every flag `create` and `run` share.
#[derive(Args, Debug, Default, Clone)]
pub struct ContainerFlags {
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Add a host device to the container
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// GPU devices to add to the container ('all' to pass all GPUs)
    #[arg(long = "gpus")]
    pub gpus: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long = "entrypoint")]
    pub entrypoint: Option<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long = "hostname")]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long = "domainname")]
    pub domainname: Option<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub interactive: bool,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub read_only: bool,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart", default_value = "no")]
    pub restart: String,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<String>,
    /// Sysctl options
    #[arg(long = "sysctl")]
    pub sysctl: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub tty: bool,
    /// Ulimit options
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long = "rm", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub rm: bool,

    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long = "privileged", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub privileged: bool,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// User namespace to use
    #[arg(long = "userns")]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long = "cgroupns")]
    pub cgroupns: Option<String>,

    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long = "dns")]
    pub dns: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long = "ip6")]
    pub ip6: Option<String>,
    /// Add link to another container
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub publish_all: bool,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,

    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Optional volume driver for the container
    #[arg(long = "volume-driver")]
    pub volume_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Storage driver options for the container
    #[arg(long = "storage-opt")]
    pub storage_opt: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount")]
    pub mount: Vec<String>,

    /// Command to run to check health
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long = "health-retries", allow_hyphen_values = true)]
    pub health_retries: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval", allow_hyphen_values = true)]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub no_healthcheck: bool,

    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<String>,
    /// Block IO weight (relative device weight)
    #[arg(long = "blkio-weight-device")]
    pub blkio_weight_device: Vec<String>,
    /// Write the container ID to the file
    #[arg(long = "cidfile")]
    pub cidfile: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// CPU count (Windows only)
    #[arg(long = "cpu-count", hide = true)]
    pub cpu_count: Option<String>,
    /// CPU percent (Windows only)
    #[arg(long = "cpu-percent", hide = true)]
    pub cpu_percent: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// Limit CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<String>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus")]
    pub cpus: Option<String>,
    /// Limit read rate (bytes per second) from a device
    #[arg(long = "device-read-bps")]
    pub device_read_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long = "device-read-iops")]
    pub device_read_iops: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long = "device-write-bps")]
    pub device_write_bps: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long = "device-write-iops")]
    pub device_write_iops: Vec<String>,
    /// Maximum IO bandwidth limit for the system drive (Windows only)
    #[arg(long = "io-maxbandwidth", hide = true)]
    pub io_maxbandwidth: Option<String>,
    /// Maximum IOps limit for the system drive (Windows only)
    #[arg(long = "io-maxiops", hide = true)]
    pub io_maxiops: Option<String>,
    /// Kernel memory limit
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long = "memory-swappiness", allow_hyphen_values = true)]
    pub memory_swappiness: Option<String>,
    /// Disable OOM Killer
    #[arg(long = "oom-kill-disable", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,

    /// Optional parent cgroup for the container
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// IPC mode to use
    #[arg(long = "ipc")]
    pub ipc: Option<String>,
    /// Container isolation technology
    #[arg(long = "isolation")]
    pub isolation: Option<String>,
    /// PID namespace to use
    #[arg(long = "pid")]
    pub pid: Option<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// UTS namespace to use
    #[arg(long = "uts")]
    pub uts: Option<String>,
    /// Runtime to use for this container
    #[arg(long = "runtime")]
    pub runtime: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long = "init", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set)]
    pub init: Option<bool>,
    /// Add an annotation to the container (passed through to the OCI runtime)
    #[arg(long = "annotation")]
    pub annotation: Vec<String>,

    /// Assign a name to the container
    #[arg(long = "name")]
    pub name: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long = "pull", default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short = 'q', long = "quiet", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "false")]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform", env = "DOCKER_DEFAULT_PLATFORM", hide_env = true)]
    pub platform: Option<String>,
    /// Skip image verification
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, action = ArgAction::Set, default_value = "true")]
    pub disable_content_trust: bool,
    /// Print usage
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// pflag's bool values (`--rm=false`, `-t=1`).
pub fn go_bool(s: &str) -> Result<bool, String> {
    super::opts::values::parse_bool(s)
}

/// What `create`/`run` send, and what they need to know about it afterwards.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub body: ContainerCreateBody,
    /// `?name=`
    pub name: Option<String>,
    /// `?platform=` (normalized `os/arch[/variant]`)
    pub platform: Option<String>,
    /// `--attach` was given (conflicts with `--detach`).
    pub attach_given: bool,
}

fn int_flag(long: &str, short: Option<char>, v: &Option<String>) -> Result<Option<i64>, OptError> {
    opt(long, short, v, parse_int)
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.clone().filter(|v| !v.is_empty())
}

/// docker's `platforms.Parse` + `Normalize`, printed as the API's `os/arch[/variant]`.
pub fn normalize_platform(p: &str) -> Result<String, String> {
    let parts: Vec<String> = p.split('/').map(|s| s.to_lowercase()).collect();
    let known_os = ["linux", "windows", "darwin", "freebsd"];
    let (os, arch, variant) = match parts.as_slice() {
        [one] if known_os.contains(&one.as_str()) => (one.clone(), host_arch(), String::new()),
        [arch] => ("linux".to_string(), arch.clone(), String::new()),
        [os, arch] => (os.clone(), arch.clone(), String::new()),
        [os, arch, variant] => (os.clone(), arch.clone(), variant.clone()),
        _ => {
            return Err(format!(
                "error parsing specified platform: {p:?}: invalid platform specifier"
            ));
        }
    };
    if os.is_empty() || arch.is_empty() {
        return Err(format!(
            "error parsing specified platform: {p:?}: invalid platform specifier"
        ));
    }
    let (arch, variant) = match (arch.as_str(), variant.as_str()) {
        ("x86_64" | "x86-64" | "amd64", "v1") => ("amd64".to_string(), String::new()),
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_string(), v.to_string()),
        ("aarch64" | "arm64", "8" | "v8") => ("arm64".to_string(), String::new()),
        ("aarch64" | "arm64", v) => ("arm64".to_string(), v.to_string()),
        ("armhf", _) => ("arm".to_string(), "v7".to_string()),
        ("armel", _) => ("arm".to_string(), "v6".to_string()),
        ("arm", "") => ("arm".to_string(), "v7".to_string()),
        ("arm", v @ ("5" | "6" | "7" | "8")) => ("arm".to_string(), format!("v{v}")),
        ("i386" | "386", v) => ("386".to_string(), v.to_string()),
        (a, v) => (a.to_string(), v.to_string()),
    };
    Ok(if variant.is_empty() {
        format!("{os}/{arch}")
    } else {
        format!("{os}/{arch}/{variant}")
    })
}

fn host_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
    .to_string()
}

/// docker's `GpuOpts.Set`: `all`, a count, or `count=…,device=…,driver=…,capabilities=…`.
fn parse_gpus(value: &str) -> Result<DeviceRequest, String> {
    let mut req = DeviceRequest {
        capabilities: Some(vec![vec!["gpu".to_string()]]),
        ..Default::default()
    };
    let fields = super::opts::mounts::split_csv(value)?;
    let mut seen = std::collections::HashSet::new();
    for field in fields {
        let (key, val) = field.split_once('=').unwrap_or((field.as_str(), ""));
        if !seen.insert(key.to_string()) {
            return Err(format!(
                "gpu request key '{key}' can be specified only once"
            ));
        }
        match key {
            "driver" => req.driver = Some(val.to_string()),
            "count" => req.count = Some(gpu_count(val)?),
            "device" => {
                req.device_ids = Some(val.split(',').map(str::to_string).collect());
            }
            "capabilities" => {
                req.capabilities = Some(vec![val.split(',').map(str::to_string).collect()]);
            }
            "options" => {
                req.options = Some(kv_map(&super::opts::mounts::split_csv(val)?));
            }
            _ if val.is_empty() => req.count = Some(gpu_count(key)?),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if req.count.is_some() && req.device_ids.is_some() {
        return Err("cannot set both Count and DeviceIDs on device request".into());
    }
    Ok(req)
}

fn gpu_count(s: &str) -> Result<i64, String> {
    if s == "all" {
        return Ok(-1);
    }
    s.parse::<i64>()
        .map_err(|_| format!("invalid count ({s}): value must be either \"all\" or an integer"))
}

impl ContainerFlags {
    /// docker's `parse()`: the create request for `image` running `args`.
    pub fn to_request(&self, image: &str, args: &[String]) -> Result<CreateRequest, OptError> {
        let attach = each("attach", Some('a'), &self.attach, kv::validate_attach)?;
        each(
            "device-cgroup-rule",
            None,
            &self.device_cgroup_rule,
            kv::validate_device_cgroup_rule,
        )?;
        let env = each("env", Some('e'), &self.env, kv::validate_env)?;
        let labels = each("label", Some('l'), &self.label, kv::validate_label)?;
        let sysctls = each("sysctl", None, &self.sysctl, kv::validate_sysctl)?;
        let ulimits = each("ulimit", None, &self.ulimit, kv::parse_ulimit)?;
        let extra_hosts = each("add-host", None, &self.add_host, kv::validate_extra_host)?;
        let dns = each("dns", None, &self.dns, kv::validate_ip)?;
        let dns_search = each(
            "dns-search",
            None,
            &self.dns_search,
            kv::validate_dns_search,
        )?;
        let links = each("link", None, &self.link, kv::validate_link)?;
        let networks: Vec<NetworkAttachment> = each("network", None, &self.network, parse_network)?;
        let mounts = each("mount", None, &self.mount, parse_mount)?;
        let weight_devices = each(
            "blkio-weight-device",
            None,
            &self.blkio_weight_device,
            kv::parse_weight_device,
        )?;
        let read_bps = each(
            "device-read-bps",
            None,
            &self.device_read_bps,
            kv::parse_throttle_bps,
        )?;
        let write_bps = each(
            "device-write-bps",
            None,
            &self.device_write_bps,
            kv::parse_throttle_bps,
        )?;
        let read_iops = each(
            "device-read-iops",
            None,
            &self.device_read_iops,
            kv::parse_throttle_iops,
        )?;
        let write_iops = each(
            "device-write-iops",
            None,
            &self.device_write_iops,
            kv::parse_throttle_iops,
        )?;
        let gpus = opt("gpus", None, &self.gpus, parse_gpus)?;
        let memory = opt("memory", Some('m'), &self.memory, parse_mem)?;
        let memory_reservation = opt(
            "memory-reservation",
            None,
            &self.memory_reservation,
            parse_mem,
        )?;
        let memory_swap = opt("memory-swap", None, &self.memory_swap, parse_mem_swap)?;
        let kernel_memory = opt("kernel-memory", None, &self.kernel_memory, parse_mem)?;
        let shm_size = opt("shm-size", None, &self.shm_size, parse_mem)?;
        let io_max_bandwidth = opt("io-maxbandwidth", None, &self.io_maxbandwidth, parse_mem)?;
        let io_max_iops = opt("io-maxiops", None, &self.io_maxiops, |v| parse_uint(v, 64))?;
        let nano_cpus = opt("cpus", None, &self.cpus, parse_cpus)?;
        let blkio_weight = opt("blkio-weight", None, &self.blkio_weight, |v| {
            parse_uint(v, 16)
        })?;
        let stop_timeout = int_flag("stop-timeout", None, &self.stop_timeout)?;
        let cpu_shares = int_flag("cpu-shares", Some('c'), &self.cpu_shares)?;
        let cpu_period = int_flag("cpu-period", None, &self.cpu_period)?;
        let cpu_quota = int_flag("cpu-quota", None, &self.cpu_quota)?;
        let cpu_rt_period = int_flag("cpu-rt-period", None, &self.cpu_rt_period)?;
        let cpu_rt_runtime = int_flag("cpu-rt-runtime", None, &self.cpu_rt_runtime)?;
        let cpu_count = int_flag("cpu-count", None, &self.cpu_count)?;
        let cpu_percent = int_flag("cpu-percent", None, &self.cpu_percent)?;
        let swappiness =
            int_flag("memory-swappiness", None, &self.memory_swappiness)?.unwrap_or(-1);
        let oom_score_adj = int_flag("oom-score-adj", None, &self.oom_score_adj)?;
        let pids_limit = int_flag("pids-limit", None, &self.pids_limit)?.unwrap_or(0);
        let health_retries = int_flag("health-retries", None, &self.health_retries)?.unwrap_or(0);
        let duration = |long: &str, v: &Option<String>| opt(long, None, v, parse_duration);
        let health_interval = duration("health-interval", &self.health_interval)?.unwrap_or(0);
        let health_timeout = duration("health-timeout", &self.health_timeout)?.unwrap_or(0);
        let health_start_period =
            duration("health-start-period", &self.health_start_period)?.unwrap_or(0);
        let health_start_interval =
            duration("health-start-interval", &self.health_start_interval)?.unwrap_or(0);

        // From here on docker reports the bare message.
        let invalid = OptError::Invalid;
        let platform = match nonempty(&self.platform) {
            Some(p) => Some(normalize_platform(&p).map_err(invalid)?),
            None => None,
        };
        let mut attach_stdin = attach.iter().any(|a| a == "stdin");
        let mut attach_stdout = attach.iter().any(|a| a == "stdout");
        let mut attach_stderr = attach.iter().any(|a| a == "stderr");
        if let Some(mac) = nonempty(&self.mac_address)
            && !kv::valid_mac(&mac)
        {
            return Err(invalid(format!("{mac} is not a valid mac address")));
        }
        if self.interactive {
            attach_stdin = true;
        }
        if attach.is_empty() {
            attach_stdout = true;
            attach_stderr = true;
        }
        if swappiness != -1 && !(0..=100).contains(&swappiness) {
            return Err(invalid(format!(
                "invalid value: {swappiness}. Valid memory swappiness range is 0-100"
            )));
        }
        let (binds, volumes) = split_volumes(&self.volume).map_err(invalid)?;
        let tmpfs = parse_tmpfs(&self.tmpfs);
        let entrypoint = self.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![String::new()]
            } else {
                vec![e.clone()]
            }
        });
        let ports = parse_ports(&self.publish, &self.expose).map_err(invalid)?;

        let mut devices = Vec::new();
        let mut cdi = Vec::new();
        for d in &self.device {
            if kv::is_cdi_name(d) {
                cdi.push(d.clone());
            } else {
                devices.push(kv::parse_device(d).map_err(invalid)?);
            }
        }
        let env = kv::read_env(&self.env_file, &dedupe_env(&env)).map_err(invalid)?;
        let labels = kv::read_labels(&self.label_file, &labels).map_err(invalid)?;

        let pid = self.pid.clone().unwrap_or_default();
        if !(pid.is_empty() || pid == "host" || valid_container_ref(&pid)) {
            return Err(invalid("--pid: invalid PID mode".into()));
        }
        let uts = self.uts.clone().unwrap_or_default();
        if !(uts.is_empty() || uts == "host") {
            return Err(invalid("--uts: invalid UTS mode".into()));
        }
        let userns = self.userns.clone().unwrap_or_default();
        if !(userns.is_empty() || userns == "host") {
            return Err(invalid("--userns: invalid USER mode".into()));
        }
        let cgroupns = match self.cgroupns.as_deref().unwrap_or("") {
            "" => None,
            "private" => Some(HostConfigCgroupnsModeEnum::PRIVATE),
            "host" => Some(HostConfigCgroupnsModeEnum::HOST),
            _ => return Err(invalid("--cgroupns: invalid CGROUP mode".into())),
        };
        let restart = kv::parse_restart_policy(&self.restart).map_err(invalid)?;
        let log_driver = self.log_driver.clone().unwrap_or_default();
        if log_driver == "none" && !self.log_opt.is_empty() {
            return Err(invalid(format!(
                "invalid logging opts for driver {log_driver}"
            )));
        }
        let security = kv::parse_security_opts(&self.security_opt).map_err(invalid)?;
        let (security, masked, readonly_paths) = split_system_paths(security);
        let storage = kv::parse_storage_opts(&self.storage_opt).map_err(invalid)?;

        let healthcheck = self.healthcheck(
            health_interval,
            health_timeout,
            health_start_period,
            health_start_interval,
            health_retries,
        )?;

        let mut device_requests: Vec<DeviceRequest> = gpus.into_iter().collect();
        if !cdi.is_empty() {
            device_requests.push(DeviceRequest {
                driver: Some("cdi".into()),
                device_ids: Some(cdi),
                ..Default::default()
            });
        }

        if self.rm && !kv::restart_is_none(&restart) {
            return Err(invalid(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        let legacy = LegacyNetworkFlags {
            aliases: self.network_alias.clone(),
            links: links.clone(),
            ipv4: self.ip.clone().unwrap_or_default(),
            ipv6: self.ip6.clone().unwrap_or_default(),
            link_local_ips: self.link_local_ip.clone(),
            mac_address: self.mac_address.clone().unwrap_or_default(),
        };
        let (network_mode, endpoints) = network_endpoints(&networks, &legacy).map_err(invalid)?;

        let isolation = match self
            .isolation
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .as_str()
        {
            "" => None,
            "default" => Some(HostConfigIsolationEnum::DEFAULT),
            "process" => Some(HostConfigIsolationEnum::PROCESS),
            "hyperv" => Some(HostConfigIsolationEnum::HYPERV),
            other => {
                return Err(invalid(format!("invalid isolation '{other}' on linux")));
            }
        };

        let port_bindings: PortMap = ports
            .bindings
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let host_config = HostConfig {
            binds: Some(binds).filter(|b| !b.is_empty()),
            container_id_file: nonempty(&self.cidfile),
            oom_score_adj: oom_score_adj.filter(|v| *v != 0),
            auto_remove: Some(self.rm),
            privileged: Some(self.privileged),
            port_bindings: Some(port_bindings).filter(|p| !p.is_empty()),
            links: Some(links).filter(|l| !l.is_empty()),
            publish_all_ports: Some(self.publish_all),
            dns: Some(dns),
            dns_search: Some(dns_search),
            dns_options: Some(self.dns_option.clone()),
            extra_hosts: Some(extra_hosts).filter(|h| !h.is_empty()),
            volumes_from: Some(self.volumes_from.clone()).filter(|v| !v.is_empty()),
            ipc_mode: nonempty(&self.ipc),
            network_mode: Some(network_mode.clone()),
            pid_mode: Some(pid).filter(|p| !p.is_empty()),
            uts_mode: Some(uts).filter(|u| !u.is_empty()),
            userns_mode: Some(userns).filter(|u| !u.is_empty()),
            cgroupns_mode: cgroupns,
            cap_add: Some(kv::normalize_caps(&self.cap_add)).filter(|c| !c.is_empty()),
            cap_drop: Some(kv::normalize_caps(&self.cap_drop)).filter(|c| !c.is_empty()),
            group_add: Some(self.group_add.clone()).filter(|g| !g.is_empty()),
            restart_policy: Some(restart),
            security_opt: Some(security).filter(|s| !s.is_empty()),
            storage_opt: Some(storage).filter(|s| !s.is_empty()),
            readonly_rootfs: Some(self.read_only),
            log_config: Some(HostConfigLogConfig {
                typ: Some(log_driver),
                config: Some(kv_map(&self.log_opt)),
            }),
            volume_driver: nonempty(&self.volume_driver),
            isolation,
            shm_size: shm_size.filter(|s| *s != 0),
            tmpfs: Some(tmpfs).filter(|t| !t.is_empty()),
            sysctls: Some(kv_map(&sysctls)).filter(|s| !s.is_empty()),
            runtime: nonempty(&self.runtime),
            mounts: Some(mounts).filter(|m| !m.is_empty()),
            masked_paths: masked,
            readonly_paths,
            annotations: Some(kv_map(&self.annotation)).filter(|a| !a.is_empty()),
            init: self.init,
            cgroup_parent: nonempty(&self.cgroup_parent),
            memory: memory.filter(|m| *m != 0),
            memory_reservation: memory_reservation.filter(|m| *m != 0),
            memory_swap: memory_swap.filter(|m| *m != 0),
            memory_swappiness: Some(swappiness),
            oom_kill_disable: Some(self.oom_kill_disable),
            nano_cpus: nano_cpus.filter(|n| *n != 0),
            cpu_count: cpu_count.filter(|n| *n != 0),
            cpu_percent: cpu_percent.filter(|n| *n != 0),
            cpu_shares: cpu_shares.filter(|n| *n != 0),
            cpu_period: cpu_period.filter(|n| *n != 0),
            cpuset_cpus: nonempty(&self.cpuset_cpus),
            cpuset_mems: nonempty(&self.cpuset_mems),
            cpu_quota: cpu_quota.filter(|n| *n != 0),
            cpu_realtime_period: cpu_rt_period.filter(|n| *n != 0),
            cpu_realtime_runtime: cpu_rt_runtime.filter(|n| *n != 0),
            pids_limit: Some(pids_limit),
            blkio_weight: blkio_weight.map(|w| w as u16).filter(|w| *w != 0),
            blkio_weight_device: Some(weight_devices).filter(|v| !v.is_empty()),
            blkio_device_read_bps: Some(read_bps).filter(|v| !v.is_empty()),
            blkio_device_write_bps: Some(write_bps).filter(|v| !v.is_empty()),
            blkio_device_read_iops: Some(read_iops).filter(|v| !v.is_empty()),
            blkio_device_write_iops: Some(write_iops).filter(|v| !v.is_empty()),
            io_maximum_iops: io_max_iops.map(|v| v as i64).filter(|v| *v != 0),
            io_maximum_bandwidth: io_max_bandwidth.filter(|v| *v != 0),
            ulimits: Some(ulimits).filter(|u| !u.is_empty()),
            device_cgroup_rules: Some(self.device_cgroup_rule.clone()).filter(|v| !v.is_empty()),
            devices: Some(devices).filter(|d| !d.is_empty()),
            device_requests: Some(device_requests).filter(|d| !d.is_empty()),
            ..Default::default()
        };
        let _ = kernel_memory; // cleared by docker's client for API >= 1.42

        let open_stdin = self.interactive;
        let body = ContainerCreateBody {
            hostname: nonempty(&self.hostname),
            domainname: nonempty(&self.domainname),
            exposed_ports: Some(ports.exposed.into_iter().collect::<Vec<_>>())
                .filter(|p| !p.is_empty()),
            user: nonempty(&self.user),
            tty: Some(self.tty),
            open_stdin: Some(open_stdin),
            stdin_once: Some(open_stdin && attach_stdin),
            attach_stdin: Some(attach_stdin),
            attach_stdout: Some(attach_stdout),
            attach_stderr: Some(attach_stderr),
            env: Some(env).filter(|e| !e.is_empty()),
            cmd: Some(args.to_vec()).filter(|a| !a.is_empty()),
            image: Some(image.to_string()),
            volumes: Some(volumes).filter(|v| !v.is_empty()),
            entrypoint,
            working_dir: nonempty(&self.workdir),
            labels: Some(kv_map(&labels)).filter(|l| !l.is_empty()),
            stop_signal: nonempty(&self.stop_signal),
            stop_timeout,
            healthcheck,
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(endpoints),
            }),
            ..Default::default()
        };
        Ok(CreateRequest {
            body,
            name: nonempty(&self.name),
            platform,
            attach_given: !attach.is_empty(),
        })
    }

    fn healthcheck(
        &self,
        interval: i64,
        timeout: i64,
        start_period: i64,
        start_interval: i64,
        retries: i64,
    ) -> Result<Option<HealthConfig>, OptError> {
        let cmd = self.health_cmd.clone().unwrap_or_default();
        let have = !cmd.is_empty()
            || interval != 0
            || timeout != 0
            || start_period != 0
            || retries != 0
            || start_interval != 0;
        let invalid = |m: &str| Err(OptError::Invalid(m.to_string()));
        if self.no_healthcheck {
            if have {
                return invalid("--no-healthcheck conflicts with --health-* options");
            }
            return Ok(Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }));
        }
        if !have {
            return Ok(None);
        }
        if interval < 0 {
            return invalid("--health-interval cannot be negative");
        }
        if timeout < 0 {
            return invalid("--health-timeout cannot be negative");
        }
        if retries < 0 {
            return invalid("--health-retries cannot be negative");
        }
        if start_period < 0 {
            return invalid("--health-start-period cannot be negative");
        }
        if start_interval < 0 {
            return invalid("--health-start-interval cannot be negative");
        }
        Ok(Some(HealthConfig {
            test: (!cmd.is_empty()).then(|| vec!["CMD-SHELL".to_string(), cmd]),
            interval: Some(interval),
            timeout: Some(timeout),
            retries: Some(retries),
            start_period: Some(start_period),
            start_interval: Some(start_interval),
        }))
    }
}

/// docker's `-e` handling goes through a map: a repeated name keeps its last value.
fn dedupe_env(env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for e in env {
        let key = e.split_once('=').map(|(k, _)| k).unwrap_or(e).to_string();
        match index.get(&key) {
            Some(&i) => out[i] = e.clone(),
            None => {
                index.insert(key, out.len());
                out.push(e.clone());
            }
        }
    }
    out
}

/// `container:<name>` (docker's `validContainer`).
fn valid_container_ref(mode: &str) -> bool {
    mode.strip_prefix("container:")
        .is_some_and(|c| !c.is_empty())
}

/// docker's `parseSystemPaths`: `systempaths=unconfined` is handled by the client, as empty
/// masked and read-only path lists.
fn split_system_paths(
    opts: Vec<String>,
) -> (Vec<String>, Option<Vec<String>>, Option<Vec<String>>) {
    let mut unconfined = false;
    let kept: Vec<String> = opts
        .into_iter()
        .filter(|o| {
            let u = o == "systempaths=unconfined";
            unconfined |= u;
            !u
        })
        .collect();
    if unconfined {
        (kept, Some(vec![]), Some(vec![]))
    } else {
        (kept, None, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::engine::RestartPolicyNameEnum;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct T {
        #[command(flatten)]
        f: ContainerFlags,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    }

    fn parse(argv: &[&str]) -> Result<CreateRequest, OptError> {
        let mut full = vec!["run"];
        full.extend_from_slice(argv);
        let t = T::try_parse_from(full).map_err(|e| OptError::Invalid(e.to_string()))?;
        t.f.to_request(&t.args[0], &t.args[1..])
    }

    fn json(r: &CreateRequest) -> serde_json::Value {
        serde_json::to_value(&r.body).unwrap()
    }

    #[test]
    fn defaults_match_docker() {
        let r = parse(&["busybox"]).unwrap();
        let v = json(&r);
        assert_eq!(v["Image"], "busybox");
        assert_eq!(v["AttachStdout"], true);
        assert_eq!(v["AttachStderr"], true);
        assert_eq!(v["AttachStdin"], false);
        assert_eq!(v["OpenStdin"], false);
        assert_eq!(v["Tty"], false);
        assert!(v.get("Cmd").is_none());
        let hc = &v["HostConfig"];
        assert_eq!(hc["NetworkMode"], "default");
        assert_eq!(hc["RestartPolicy"]["Name"], "no");
        assert_eq!(hc["MemorySwappiness"], -1);
        assert_eq!(hc["PidsLimit"], 0);
        assert_eq!(hc["OomKillDisable"], false);
        assert_eq!(hc["Dns"], serde_json::json!([]));
        assert_eq!(hc["DnsSearch"], serde_json::json!([]));
        assert_eq!(hc["DnsOptions"], serde_json::json!([]));
        assert_eq!(
            hc["LogConfig"],
            serde_json::json!({"Type": "", "Config": {}})
        );
        assert!(hc.get("Init").is_none());
        assert_eq!(
            v["NetworkingConfig"]["EndpointsConfig"],
            serde_json::json!({"default": {}})
        );
        assert_eq!(r.name, None);
    }

    #[test]
    fn command_after_image_keeps_its_flags() {
        let r = parse(&["-it", "--rm", "busybox", "ls", "-la", "--color"]).unwrap();
        let v = json(&r);
        assert_eq!(v["Cmd"], serde_json::json!(["ls", "-la", "--color"]));
        assert_eq!(v["Tty"], true);
        assert_eq!(v["OpenStdin"], true);
        assert_eq!(v["AttachStdin"], true);
        assert_eq!(v["StdinOnce"], true);
        assert_eq!(v["HostConfig"]["AutoRemove"], true);
        let r = parse(&["busybox", "-la", "--rm"]).unwrap();
        assert_eq!(json(&r)["Cmd"], serde_json::json!(["-la", "--rm"]));
        assert_eq!(json(&r)["HostConfig"]["AutoRemove"], false);
        let r = parse(&["--rm=false", "-t=false", "busybox"]).unwrap();
        assert_eq!(json(&r)["HostConfig"]["AutoRemove"], false);
        assert_eq!(json(&r)["Tty"], false);
    }

    #[test]
    fn resources_and_units() {
        let r = parse(&[
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--cpus",
            "1.5",
            "-c",
            "512",
            "--pids-limit",
            "100",
            "--shm-size",
            "1g",
            "--memory-swappiness",
            "10",
            "--ulimit",
            "nofile=10:20",
            "--blkio-weight",
            "300",
            "--device-read-bps",
            "/dev/sda:1mb",
            "busybox",
        ])
        .unwrap();
        let hc = &json(&r)["HostConfig"];
        assert_eq!(hc["Memory"], 64 << 20);
        assert_eq!(hc["MemorySwap"], -1);
        assert_eq!(hc["NanoCpus"], 1_500_000_000i64);
        assert_eq!(hc["CpuShares"], 512);
        assert_eq!(hc["PidsLimit"], 100);
        assert_eq!(hc["ShmSize"], 1i64 << 30);
        assert_eq!(hc["MemorySwappiness"], 10);
        assert_eq!(hc["BlkioWeight"], 300);
        assert_eq!(
            hc["Ulimits"],
            serde_json::json!([{"Name": "nofile", "Soft": 10, "Hard": 20}])
        );
        assert_eq!(
            hc["BlkioDeviceReadBps"],
            serde_json::json!([{"Path": "/dev/sda", "Rate": 1 << 20}])
        );
    }

    #[test]
    fn flag_errors_use_docker_wording() {
        assert_eq!(
            parse(&["-m", "lots", "busybox"]).unwrap_err().to_string(),
            "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"
        );
        assert_eq!(
            parse(&["-p", "80/foo", "busybox"]).unwrap_err().to_string(),
            "invalid proto: foo"
        );
        assert_eq!(
            parse(&["-c", "x", "busybox"]).unwrap_err().to_string(),
            "invalid argument \"x\" for \"-c, --cpu-shares\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse(&["--health-interval", "5", "busybox"])
                .unwrap_err()
                .to_string(),
            "invalid argument \"5\" for \"--health-interval\" flag: time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse(&["--restart", "sometimes", "busybox"])
                .unwrap_err()
                .to_string(),
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        );
        assert_eq!(
            parse(&["--rm", "--restart", "always", "busybox"])
                .unwrap_err()
                .to_string(),
            "conflicting options: cannot specify both --restart and --rm"
        );
        assert_eq!(
            parse(&["--memory-swappiness", "101", "busybox"])
                .unwrap_err()
                .to_string(),
            "invalid value: 101. Valid memory swappiness range is 0-100"
        );
        assert_eq!(
            parse(&["--no-healthcheck", "--health-cmd", "true", "busybox"])
                .unwrap_err()
                .to_string(),
            "--no-healthcheck conflicts with --health-* options"
        );
        assert_eq!(
            parse(&["--pid", "bogus", "busybox"])
                .unwrap_err()
                .to_string(),
            "--pid: invalid PID mode"
        );
        assert_eq!(
            parse(&["-a", "foo", "busybox"]).unwrap_err().to_string(),
            "invalid argument \"foo\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
        );
    }

    #[test]
    fn env_labels_ports_volumes() {
        let r = parse(&[
            "-e",
            "A=1",
            "-e",
            "B=2",
            "-e",
            "A=3",
            "-l",
            "x=y",
            "-l",
            "bare",
            "-p",
            "127.0.0.1:8080:80",
            "--expose",
            "443",
            "-v",
            "/data",
            "-v",
            "/h:/c:ro",
            "--tmpfs",
            "/run:size=1m",
            "busybox",
        ])
        .unwrap();
        let v = json(&r);
        assert_eq!(v["Env"], serde_json::json!(["A=3", "B=2"]));
        assert_eq!(v["Labels"]["x"], "y");
        assert_eq!(v["Labels"]["bare"], "");
        assert_eq!(
            v["ExposedPorts"],
            serde_json::json!({"443/tcp": {}, "80/tcp": {}})
        );
        assert_eq!(
            v["HostConfig"]["PortBindings"]["80/tcp"],
            serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}])
        );
        assert_eq!(v["Volumes"], serde_json::json!({"/data": {}}));
        assert_eq!(v["HostConfig"]["Binds"], serde_json::json!(["/h:/c:ro"]));
        assert_eq!(v["HostConfig"]["Tmpfs"]["/run"], "size=1m");
    }

    #[test]
    fn misc_config() {
        let r = parse(&[
            "--name",
            "web",
            "--entrypoint",
            "",
            "-w",
            "/srv",
            "-u",
            "1000:1000",
            "-h",
            "box",
            "--stop-timeout",
            "5",
            "--stop-signal",
            "SIGINT",
            "--init",
            "--restart",
            "on-failure:2",
            "--cap-add",
            "net_admin",
            "--security-opt",
            "systempaths=unconfined",
            "--health-cmd",
            "true",
            "--health-interval",
            "30s",
            "--network",
            "mynet",
            "--network-alias",
            "w",
            "--platform",
            "linux/x86_64",
            "busybox",
        ])
        .unwrap();
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.platform.as_deref(), Some("linux/amd64"));
        let v = json(&r);
        assert_eq!(v["Entrypoint"], serde_json::json!([""]));
        assert_eq!(v["WorkingDir"], "/srv");
        assert_eq!(v["User"], "1000:1000");
        assert_eq!(v["Hostname"], "box");
        assert_eq!(v["StopTimeout"], 5);
        assert_eq!(v["StopSignal"], "SIGINT");
        assert_eq!(
            v["Healthcheck"],
            serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000i64,
                "Timeout": 0, "Retries": 0, "StartPeriod": 0, "StartInterval": 0})
        );
        let hc = &v["HostConfig"];
        assert_eq!(hc["Init"], true);
        assert_eq!(hc["CapAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
        assert_eq!(hc["MaskedPaths"], serde_json::json!([]));
        assert_eq!(hc["ReadonlyPaths"], serde_json::json!([]));
        assert!(hc.get("SecurityOpt").is_none());
        assert_eq!(hc["NetworkMode"], "mynet");
        assert_eq!(
            v["NetworkingConfig"]["EndpointsConfig"]["mynet"]["Aliases"],
            serde_json::json!(["w"])
        );
        let rp = &r.body.host_config.as_ref().unwrap().restart_policy;
        assert_eq!(
            rp.as_ref().unwrap().name,
            Some(RestartPolicyNameEnum::ON_FAILURE)
        );
    }

    #[test]
    fn platforms() {
        assert_eq!(normalize_platform("linux/arm64/v8").unwrap(), "linux/arm64");
        assert_eq!(normalize_platform("linux/arm").unwrap(), "linux/arm/v7");
        assert_eq!(normalize_platform("amd64").unwrap(), "linux/amd64");
        assert!(normalize_platform("a/b/c/d").is_err());
    }

    #[test]
    fn gpus() {
        assert_eq!(parse_gpus("all").unwrap().count, Some(-1));
        assert_eq!(parse_gpus("2").unwrap().count, Some(2));
        let r = parse_gpus("\"device=0,1\",capabilities=compute").unwrap();
        assert_eq!(r.device_ids, Some(vec!["0".to_string(), "1".to_string()]));
        assert_eq!(r.capabilities, Some(vec![vec!["compute".to_string()]]));
    }
}
