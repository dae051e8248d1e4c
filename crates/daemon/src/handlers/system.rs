//! `/_ping`, `/version`, `/info`, `/system/df`.

use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::json;

use crate::daemon::driver_name;
use crate::handlers::images::summaries;
use crate::http::{ApiResult, full, ok_json};
use crate::server::Ctx;
use berth_api::{API_VERSION, MIN_API_VERSION, VERSION};

pub async fn ping(ctx: Ctx) -> ApiResult {
    let head = ctx.method == Method::HEAD;
    let mut r = Response::new(full(if head { "" } else { "OK" }));
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        "Content-Type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if head {
        h.insert("Content-Length", HeaderValue::from_static("0"));
    }
    Ok(r)
}

fn kernel_version() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

fn arch() -> String {
    berth_image::config::host_platform().architecture
}

pub async fn version(_ctx: Ctx) -> ApiResult {
    let details = json!({
        "ApiVersion": API_VERSION,
        "Arch": arch(),
        "BuildTime": "",
        "Experimental": "false",
        "GitCommit": "",
        "GoVersion": "",
        "KernelVersion": kernel_version(),
        "MinAPIVersion": MIN_API_VERSION,
        "Os": "linux",
    });
    ok_json(&json!({
        "Platform": {"Name": "berth"},
        "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    }))
}

/// cgroup v2 when /sys/fs/cgroup is the unified hierarchy itself; v1 (incl. hybrid) otherwise.
pub fn cgroup_version() -> &'static str {
    match rustix::fs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.f_type == 0x6367_7270 => "2",
        _ => "1",
    }
}

fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<i64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

pub async fn info(ctx: Ctx) -> ApiResult {
    let d = &ctx.daemon;
    let images = d
        .images
        .images()
        .map_err(crate::http::ApiError::from)?
        .len();
    let counts = crate::handlers::containers::counts(d);
    let driver = driver_name(d.images.snapshots.kind());
    let cg = cgroup_version();
    let now = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    ok_json(&json!({
        "ID": d.id,
        "Containers": counts["total"],
        "ContainersRunning": counts["running"],
        "ContainersPaused": counts["paused"],
        "ContainersStopped": counts["stopped"],
        "Images": images,
        "Driver": driver,
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none"],
            "Authorization": null,
            "Log": ["json-file"],
        },
        "MemoryLimit": true,
        "SwapLimit": true,
        "KernelMemoryTCP": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "BridgeNfIptables": false,
        "BridgeNfIp6tables": false,
        "Debug": d.config.log_level == "debug",
        "NFd": std::fs::read_dir("/proc/self/fd").map(|r| r.count()).unwrap_or(0),
        "OomKillDisable": cg == "1",
        "NGoroutines": 0,
        "SystemTime": now,
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cg,
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": null,
            "AllowNondistributableArtifactsHostnames": null,
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {"docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true}},
            "Mirrors": null,
        },
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "GenericResources": null,
        "DockerRootDir": d.config.data_root.display().to_string(),
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Name": hostname(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": VERSION,
        "Runtimes": {"berth": {"path": "berth-shim"}},
        "DefaultRuntime": "berth",
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": false,
            "Error": "",
            "RemoteManagers": null,
        },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": if d.config.userns.is_some() {
            vec!["name=seccomp,profile=builtin", "name=userns"]
        } else {
            vec!["name=seccomp,profile=builtin"]
        },
        "Warnings": null,
    }))
}

pub async fn df(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let (images, layers_size, containers, volumes, build_cache) =
        tokio::task::spawn_blocking(move || {
            let mut images = summaries(&d, true)?;
            let recs: Vec<_> = d.containers.all().iter().map(|c| c.snapshot()).collect();
            for i in &mut images {
                i.containers = recs.iter().filter(|r| r.image == i.id).count() as i64;
            }
            let mut seen = std::collections::HashSet::new();
            let mut layers_size = 0i64;
            for i in d.images.images()? {
                for c in berth_image::config::chain_ids(&i.diff_ids) {
                    if seen.insert(c.clone())
                        && let Some(l) = d.images.layer(&c)?
                    {
                        layers_size += l.size as i64;
                    }
                }
            }
            let containers: Vec<serde_json::Value> = recs
                .iter()
                .map(|r| {
                    json!({
                        "Id": r.id,
                        "Names": [r.name],
                        "Image": r.image_name(),
                        "ImageID": r.image,
                        "State": r.state.status.as_str(),
                        "SizeRw": d.images.snapshots.usage(&r.id).unwrap_or(0),
                        "SizeRootFs": 0,
                    })
                })
                .collect();
            let volumes: Vec<serde_json::Value> = d
                .volumes
                .list()
                .map_err(crate::containers::mounts::volume_error)?
                .iter()
                .map(|v| crate::handlers::volumes::volume_json(&d, v, true))
                .collect();
            let build_cache = crate::build::cache::usage(&d)?;
            Ok::<_, crate::http::ApiError>((images, layers_size, containers, volumes, build_cache))
        })
        .await??;
    ok_json(&berth_api::models::DiskUsage {
        layers_size,
        images,
        containers,
        volumes,
        build_cache,
    })
}
