//! Builds the OCI runtime config (`config.json`) of a container from its record, and the
//! files berth generates for it (/etc/hostname, /etc/hosts, /etc/resolv.conf).

use std::path::Path;

use berth_runtime::spec::{
    Capabilities, ConsoleSize, Linux, Mount, Namespace, Process, Rlimit, Root, Spec,
};

use super::record::ContainerRecord;
use crate::http::ApiError;

/// Docker's default capabilities.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows (for `--privileged` and `--cap-add ALL`).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's masked and read-only /proc and /sys paths.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn normalize_cap(c: &str) -> String {
    let up = c.trim().to_ascii_uppercase();
    if up.starts_with("CAP_") || up == "ALL" {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capabilities this process may pass on (its bounding set): "all capabilities" means
/// all the host grants, as docker's privileged mode does (this VM withholds CAP_SYS_RESOURCE).
fn available_caps() -> Vec<&'static str> {
    let bnd = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        })
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bnd & (1u64 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The capability set from docker's defaults, `--cap-add`, `--cap-drop` and `--privileged`.
pub fn capabilities(
    add: &[String],
    drop: &[String],
    privileged: bool,
) -> Result<Vec<String>, ApiError> {
    if privileged {
        return Ok(available_caps().iter().map(|s| s.to_string()).collect());
    }
    let add: Vec<String> = add.iter().map(|c| normalize_cap(c)).collect();
    let drop: Vec<String> = drop.iter().map(|c| normalize_cap(c)).collect();
    for c in add.iter().chain(drop.iter()) {
        if c != "ALL" && !ALL_CAPS.contains(&c.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown capability: \"{c}\""
            )));
        }
    }
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .filter(|c| !drop.iter().any(|d| d == *c))
            .map(|s| s.to_string())
            .collect()
    };
    if add.iter().any(|c| c == "ALL") {
        caps = available_caps()
            .iter()
            .filter(|c| !drop.iter().any(|d| d == *c))
            .map(|s| s.to_string())
            .collect();
    } else {
        for c in add {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    Ok(caps)
}

/// The seccomp profile from `--security-opt seccomp=…`: docker's default, none for
/// `unconfined` or `--privileged`, or the JSON profile the client sent.
pub fn seccomp_profile(
    security_opt: &[String],
    privileged: bool,
) -> Result<Option<serde_json::Value>, ApiError> {
    let mut chosen: Option<&str> = None;
    for o in security_opt {
        if let Some(v) = o
            .strip_prefix("seccomp=")
            .or_else(|| o.strip_prefix("seccomp:"))
        {
            chosen = Some(v);
        }
    }
    match chosen {
        Some("unconfined") => Ok(None),
        Some("builtin") | None if !privileged => Ok(Some(berth_runtime::default_seccomp_profile())),
        None | Some("builtin") => Ok(None),
        Some(json) => {
            let v: serde_json::Value = serde_json::from_str(json).map_err(|e| {
                ApiError::bad_request(format!("Decoding seccomp profile failed: {e}"))
            })?;
            // Compile once here so a bad profile fails the create, not the start.
            berth_runtime::seccomp::compile(&v, &[])
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Ok(Some(v))
        }
    }
}

/// The image's environment with the container's on top; PATH and HOSTNAME as docker adds them.
pub fn environment(
    image_env: &[String],
    container_env: &[String],
    hostname: &str,
    tty: bool,
) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: &str| {
        let key = kv.split_once('=').map(|(k, _)| k).unwrap_or(kv);
        env.retain(|e| e.split_once('=').map(|(k, _)| k).unwrap_or(e) != key);
        env.push(kv.to_string());
    };
    set(DEFAULT_PATH);
    set(&format!("HOSTNAME={hostname}"));
    for e in image_env.iter().chain(container_env) {
        set(e);
    }
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env
}

/// The resolved user as the OCI config wants it, and docker's HOME from its passwd entry.
pub fn process_user(
    u: &berth_runtime::user::User,
    env: &mut Vec<String>,
) -> berth_runtime::spec::User {
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", u.home));
    }
    berth_runtime::spec::User {
        uid: u.uid,
        gid: u.gid,
        umask: None,
        additional_gids: u.additional_gids.clone(),
    }
}

fn mount(dest: &str, kind: &str, source: &str, opts: &[&str]) -> Mount {
    Mount {
        destination: dest.into(),
        kind: kind.into(),
        source: source.into(),
        options: opts.iter().map(|s| s.to_string()).collect(),
    }
}

/// Everything the spec needs that is not in the record.
pub struct SpecInputs<'a> {
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub user: berth_runtime::spec::User,
    pub env: Vec<String>,
    pub hostname: String,
    pub cgroups_path: String,
    /// Volumes, binds and tmpfs mounts, after the standard ones.
    pub mounts: Vec<Mount>,
    /// Namespaces shared with the host or joined from another container (`--ipc/--pid/--uts`).
    pub shared: Vec<(&'static str, super::namespaces::Share)>,
}

pub fn build(rec: &ContainerRecord, inp: SpecInputs) -> Result<Spec, ApiError> {
    let hc = &rec.host_config;
    let privileged = hc.privileged.unwrap_or(false);
    let caps = capabilities(
        hc.cap_add.as_deref().unwrap_or(&[]),
        hc.cap_drop.as_deref().unwrap_or(&[]),
        privileged,
    )?;
    let cwd = rec
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "the working directory '{cwd}' is invalid, it needs to be an absolute path"
        )));
    }
    let shm_size = hc.shm_size.filter(|s| *s > 0).unwrap_or(64 << 20);
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        // The container's own cgroup, read-only unless privileged (as docker mounts it).
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            if privileged {
                &["nosuid", "noexec", "nodev", "relatime"]
            } else {
                &["nosuid", "noexec", "nodev", "relatime", "ro"]
            },
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        Mount {
            destination: "/dev/shm".into(),
            kind: "tmpfs".into(),
            source: "shm".into(),
            options: vec![
                "nosuid".into(),
                "noexec".into(),
                "nodev".into(),
                "mode=1777".into(),
                format!("size={shm_size}"),
            ],
        },
    ];
    for f in ["hostname", "hosts", "resolv.conf"] {
        let src = inp.bundle.join(f);
        mounts.push(Mount {
            destination: format!("/etc/{f}"),
            kind: "bind".into(),
            source: src.display().to_string(),
            options: vec!["rbind".into(), "rprivate".into()],
        });
    }
    mounts.extend(inp.mounts);
    let network_mode = hc.network_mode.as_deref().unwrap_or("default");
    use super::namespaces::Share;
    let mut namespaces: Vec<Namespace> = Vec::new();
    for kind in ["mount", "uts", "ipc", "pid", "cgroup"] {
        let path = match inp.shared.iter().find(|(k, _)| *k == kind).map(|(_, s)| s) {
            Some(Share::Host) => continue,
            Some(Share::Join(p)) => Some(p.clone()),
            None => None,
        };
        namespaces.push(Namespace {
            kind: kind.into(),
            path,
        });
    }
    // The host's UTS namespace keeps the host's names.
    let own_uts = namespaces
        .iter()
        .any(|n| n.kind == "uts" && n.path.is_none());
    if network_mode != "host" {
        // A namespace berthd prepared (bridge networks) or another container's (`container:`).
        let path = rec
            .network
            .as_ref()
            .map(|n| n.key.clone())
            .filter(|k| !k.is_empty());
        namespaces.push(Namespace {
            kind: "network".into(),
            path,
        });
    }
    let rlimits = hc
        .ulimits
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .filter_map(|u| {
            let name = u.name.as_deref()?;
            Some(Rlimit {
                kind: format!("RLIMIT_{}", name.to_ascii_uppercase()),
                soft: u.soft.unwrap_or(0).max(0) as u64,
                hard: u.hard.unwrap_or(0).max(0) as u64,
            })
        })
        .collect();
    let no_new_privs = hc.security_opt.as_deref().unwrap_or(&[]).iter().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true"
    });
    let console = hc
        .console_size
        .as_ref()
        .filter(|v| v.len() == 2 && v[0] > 0)
        .map(|v| ConsoleSize {
            height: v[0] as u16,
            width: v[1] as u16,
        });
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    let resources = super::resources::to_oci(hc)?;
    Ok(Spec {
        oci_version: "1.1.0".into(),
        process: Process {
            terminal: rec.tty(),
            console_size: console,
            user: inp.user,
            args,
            env: inp.env,
            cwd,
            capabilities: Some(Capabilities {
                bounding: caps.clone(),
                effective: caps.clone(),
                permitted: caps,
                inheritable: Vec::new(),
                ambient: Vec::new(),
            }),
            rlimits,
            no_new_privileges: no_new_privs,
            oom_score_adj: hc.oom_score_adj.map(|v| v as i32),
        },
        root: Root {
            path: inp.rootfs.display().to_string(),
            readonly: hc.readonly_rootfs.unwrap_or(false),
        },
        hostname: if own_uts { inp.hostname } else { String::new() },
        domainname: if own_uts {
            rec.config.domainname.clone().unwrap_or_default()
        } else {
            String::new()
        },
        mounts,
        linux: Linux {
            namespaces,
            cgroups_path: Some(inp.cgroups_path),
            resources: Some(resources),
            masked_paths: if privileged {
                vec![]
            } else {
                MASKED_PATHS.iter().map(|s| s.to_string()).collect()
            },
            readonly_paths: if privileged {
                vec![]
            } else {
                READONLY_PATHS.iter().map(|s| s.to_string()).collect()
            },
            sysctl: hc
                .sysctls
                .clone()
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
            seccomp: seccomp_profile(hc.security_opt.as_deref().unwrap_or(&[]), privileged)?,
            devices: super::resources::device_nodes(hc)?,
            ..Default::default()
        },
        annotations: Default::default(),
    })
}

/// Writes /etc/hostname, /etc/hosts and /etc/resolv.conf for the container into its bundle
/// (the network module decides the contents of the last two).
pub fn write_etc_files(
    bundle: &Path,
    hostname: &str,
    hosts: &str,
    resolv: &str,
) -> std::io::Result<()> {
    let write = |name: &str, text: &str| -> std::io::Result<()> {
        let tmp = bundle.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, bundle.join(name))
    };
    write("hostname", &format!("{hostname}\n"))?;
    write("hosts", hosts)?;
    write("resolv.conf", resolv)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_docker() {
        let c = capabilities(&[], &[], false).unwrap();
        assert_eq!(c.len(), 14);
        let c = capabilities(&["net_admin".into()], &["CHOWN".into()], false).unwrap();
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert!(capabilities(&["ALL".into()], &[], false).unwrap().len() > 30);
        assert!(
            capabilities(&[], &["ALL".into()], false)
                .unwrap()
                .is_empty()
        );
        let e = capabilities(&["BOGUS".into()], &[], false).unwrap_err();
        assert_eq!(e.message, "unknown capability: \"CAP_BOGUS\"");
    }

    #[test]
    fn env_merges_like_docker() {
        let env = environment(
            &["PATH=/bin".into(), "A=1".into()],
            &["A=2".into()],
            "h",
            true,
        );
        assert_eq!(env, vec!["HOSTNAME=h", "PATH=/bin", "A=2", "TERM=xterm"]);
    }
}
