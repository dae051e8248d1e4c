//! A container's mounts: `-v`, `--mount`, `--tmpfs`, image VOLUMEs and `--volumes-from`,
//! resolved at create (volumes made, bind sources checked) and turned into OCI mounts at start
//! (volumes filled from the image when empty, docker's copy-up).

use std::path::Path;

use berth_runtime::spec::Mount;
use berth_volume::spec::{
    Kind, MountSpec, parse_bind, parse_mount, parse_tmpfs, parse_volumes_from,
};
use berth_volume::store::ANONYMOUS_LABEL;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::new_id;
use super::record::ContainerRecord;
use crate::daemon::Daemon;
use crate::http::ApiError;

/// One resolved mount of a container (kept in its record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountPoint {
    pub kind: Kind,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: String,
    /// Host path: the bind source, or the volume's `_data`; empty for tmpfs.
    pub source: String,
    pub destination: String,
    pub rw: bool,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub propagation: String,
    /// Fill an empty volume with the image's content at start.
    #[serde(default)]
    pub copy: bool,
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
}

pub fn volume_error(e: berth_volume::Error) -> ApiError {
    match e {
        berth_volume::Error::Invalid(m) => ApiError::bad_request(m),
        berth_volume::Error::NotFound(m) => ApiError::not_found(m),
        berth_volume::Error::Conflict(m) => ApiError::conflict(m),
        other => ApiError::internal(other.to_string()),
    }
}

/// Resolves every mount of a container being created. Volumes are made here (named ones
/// reused); bad specifications fail before anything is made.
pub fn resolve(
    d: &Daemon,
    hc: &berth_api::engine::HostConfig,
    image_volumes: &[String],
) -> Result<Vec<MountPoint>, ApiError> {
    let mut specs: Vec<MountSpec> = Vec::new();
    for b in hc.binds.as_deref().unwrap_or(&[]) {
        specs.push(parse_bind(b).map_err(volume_error)?);
    }
    for m in hc.mounts.as_deref().unwrap_or(&[]) {
        specs.push(parse_mount(m).map_err(volume_error)?);
    }
    for (target, opts) in hc.tmpfs.clone().unwrap_or_default() {
        specs.push(parse_tmpfs(&target, &opts).map_err(volume_error)?);
    }
    let mut seen: Vec<String> = Vec::new();
    for s in &specs {
        let t = s.target.trim_end_matches('/').to_string();
        if seen.contains(&t) {
            return Err(ApiError::bad_request(format!(
                "Duplicate mount point: {}",
                s.target
            )));
        }
        seen.push(t);
    }
    // `--volumes-from`: the other container's mounts, with an optional mode override.
    let mut from: Vec<MountPoint> = Vec::new();
    for v in hc.volumes_from.as_deref().unwrap_or(&[]) {
        let (name, ro) = parse_volumes_from(v).map_err(volume_error)?;
        let other = d.containers.get(&name)?.snapshot();
        for m in other.mounts.iter().filter(|m| m.kind != Kind::Tmpfs) {
            let t = m.destination.trim_end_matches('/').to_string();
            if seen.contains(&t) {
                continue;
            }
            seen.push(t);
            let mut m = m.clone();
            if let Some(ro) = ro {
                m.rw = !ro;
                m.mode = if ro { "ro".into() } else { "rw".into() };
            }
            m.copy = false;
            from.push(m);
        }
    }
    // Image VOLUMEs not covered by a mount become anonymous volumes.
    for v in image_volumes {
        let t = v.trim_end_matches('/').to_string();
        if !seen.contains(&t) {
            seen.push(t);
            specs.push(parse_bind(v).map_err(volume_error)?);
        }
    }
    // Checks done: now make what is needed.
    let mut out = Vec::new();
    for s in specs {
        out.push(materialize(d, s)?);
    }
    out.extend(from);
    Ok(out)
}

fn materialize(d: &Daemon, s: MountSpec) -> Result<MountPoint, ApiError> {
    match s.kind {
        Kind::Bind => {
            let p = Path::new(&s.source);
            if !p.exists() {
                if !s.create_source {
                    return Err(ApiError::bad_request(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        s.source
                    )));
                }
                std::fs::create_dir_all(p).map_err(|e| {
                    ApiError::internal(format!(
                        "error while creating mount source path '{}': {e}",
                        s.source
                    ))
                })?;
            }
            // A symlinked source is resolved on the host side, as docker does.
            let source = std::fs::canonicalize(p)
                .map_err(|e| ApiError::internal(format!("resolving {}: {e}", s.source)))?;
            Ok(MountPoint {
                kind: Kind::Bind,
                name: String::new(),
                source: source.display().to_string(),
                destination: s.target,
                rw: !s.read_only,
                mode: s.mode,
                propagation: if s.propagation.is_empty() {
                    "rprivate".into()
                } else {
                    s.propagation
                },
                copy: false,
                tmpfs_options: Vec::new(),
            })
        }
        Kind::Volume => {
            let anonymous = s.source.is_empty();
            let name = if anonymous {
                new_id()
            } else {
                s.source.clone()
            };
            let mut labels = s.volume_labels.clone();
            if anonymous {
                labels.insert(ANONYMOUS_LABEL.to_string(), String::new());
            }
            d.volumes
                .create(&name, labels, s.volume_options.clone())
                .map_err(volume_error)?;
            Ok(MountPoint {
                kind: Kind::Volume,
                source: d.volumes.data_path(&name).display().to_string(),
                name,
                destination: s.target,
                rw: !s.read_only,
                mode: s.mode,
                propagation: String::new(),
                copy: !s.nocopy,
                tmpfs_options: Vec::new(),
            })
        }
        Kind::Tmpfs => Ok(MountPoint {
            kind: Kind::Tmpfs,
            name: String::new(),
            source: String::new(),
            destination: s.target,
            rw: !s.read_only,
            mode: s.mode,
            propagation: String::new(),
            copy: false,
            tmpfs_options: s.tmpfs_options,
        }),
    }
}

/// At start: makes volumes available (mounting option-backed ones), fills empty volumes from
/// the image, and returns the OCI mounts. Blocking.
pub fn prepare(d: &Daemon, rec: &ContainerRecord, rootfs: &Path) -> Result<Vec<Mount>, ApiError> {
    let mut out = Vec::new();
    for m in &rec.mounts {
        let mut options = Vec::new();
        let (kind, source) = match m.kind {
            Kind::Volume => {
                let path = d.volumes.acquire(&m.name).map_err(volume_error)?;
                let empty = std::fs::read_dir(&path)
                    .map(|mut r| r.next().is_none())
                    .unwrap_or(false);
                if m.copy && empty {
                    berth_storage::pathcopy::copy_up(rootfs, &m.destination, &path).map_err(
                        |e| {
                            ApiError::internal(format!(
                                "copying image content into volume {}: {e}",
                                m.name
                            ))
                        },
                    )?;
                }
                options.extend(["rbind".to_string(), "rprivate".to_string()]);
                ("bind", path.display().to_string())
            }
            Kind::Bind => {
                options.push("rbind".to_string());
                options.push(m.propagation.clone());
                ("bind", m.source.clone())
            }
            Kind::Tmpfs => {
                options.extend(["nosuid", "nodev", "noexec"].map(str::to_string));
                options.extend(m.tmpfs_options.iter().cloned());
                ("tmpfs", "tmpfs".to_string())
            }
        };
        if !m.rw {
            options.push("ro".to_string());
        }
        out.push(Mount {
            destination: m.destination.clone(),
            kind: kind.into(),
            source,
            options,
        });
    }
    Ok(out)
}

/// After the container stopped: option-backed volumes it held may be unmounted.
pub fn release(d: &Daemon, rec: &ContainerRecord) {
    for m in rec.mounts.iter().filter(|m| m.kind == Kind::Volume) {
        d.volumes.release(&m.name);
    }
}

/// `inspect`'s Mounts.
pub fn inspect(rec: &ContainerRecord) -> Vec<Value> {
    rec.mounts
        .iter()
        .map(|m| match m.kind {
            Kind::Volume => json!({
                "Type": "volume", "Name": m.name, "Source": m.source, "Destination": m.destination,
                "Driver": "local", "Mode": m.mode, "RW": m.rw, "Propagation": "",
            }),
            Kind::Bind => json!({
                "Type": "bind", "Source": m.source, "Destination": m.destination,
                "Mode": m.mode, "RW": m.rw, "Propagation": m.propagation,
            }),
            Kind::Tmpfs => json!({
                "Type": "tmpfs", "Source": "", "Destination": m.destination,
                "Mode": m.mode, "RW": m.rw, "Propagation": "",
            }),
        })
        .collect()
}

/// The containers (IDs) using a volume.
pub fn users_of(d: &Daemon, volume: &str) -> Vec<String> {
    d.containers
        .all()
        .iter()
        .filter(|c| {
            c.rec
                .lock()
                .unwrap()
                .mounts
                .iter()
                .any(|m| m.kind == Kind::Volume && m.name == volume)
        })
        .map(|c| c.id.clone())
        .collect()
}

/// `rm -v`: the container's anonymous volumes that no other container uses.
pub fn remove_anonymous(d: &Daemon, rec: &ContainerRecord) {
    for m in rec.mounts.iter().filter(|m| m.kind == Kind::Volume) {
        let Ok(v) = d.volumes.get(&m.name) else {
            continue;
        };
        if !v.anonymous() {
            continue;
        }
        if users_of(d, &m.name).iter().any(|id| *id != rec.id) {
            continue;
        }
        if let Err(e) = d.volumes.remove(&m.name) {
            tracing::warn!(volume = %m.name, "removing anonymous volume: {e}");
        }
    }
}

/// Where a container path lives on the host when a mount covers it: (host root, path inside it).
pub fn host_location(rec: &ContainerRecord, path: &str) -> Option<(String, String)> {
    let clean = format!("/{}", path.trim_start_matches('/'));
    rec.mounts
        .iter()
        .filter(|m| m.kind != Kind::Tmpfs)
        .filter_map(|m| {
            let dest = m.destination.trim_end_matches('/');
            let rest = clean.strip_prefix(dest)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| {
                (
                    dest.len(),
                    m.source.clone(),
                    format!("/{}", rest.trim_start_matches('/')),
                )
            })
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, src, rest)| {
            let rest = if path.ends_with('/') && !rest.ends_with('/') {
                format!("{rest}/")
            } else {
                rest
            };
            (src, rest)
        })
}
