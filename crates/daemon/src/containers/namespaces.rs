//! `--ipc`, `--pid` and `--uts`: which namespaces a container makes of its own, shares with
//! the host, or joins from another running container (`container:<name|id>`).

use berth_api::engine::HostConfig;

use crate::daemon::Daemon;
use crate::http::ApiError;

/// What the container does about one namespace kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Share {
    /// The host's: no namespace of its own.
    Host,
    /// Another container's, by its `/proc/<pid>/ns/<kind>` path.
    Join(String),
}

fn modes(hc: &HostConfig) -> [(&'static str, &'static str, String); 3] {
    [
        ("ipc", "IPC", hc.ipc_mode.clone().unwrap_or_default()),
        ("pid", "PID", hc.pid_mode.clone().unwrap_or_default()),
        ("uts", "UTS", hc.uts_mode.clone().unwrap_or_default()),
    ]
}

/// Checks the modes at create: known words, and named containers that exist.
pub fn check(d: &Daemon, hc: &HostConfig, hostname_given: bool) -> Result<(), ApiError> {
    for (kind, label, mode) in modes(hc) {
        match (kind, mode.as_str()) {
            (_, "" | "host") => {}
            ("ipc", "private" | "shareable" | "none") => {}
            ("ipc" | "pid", m) if m.starts_with("container:") => {
                // 400, not 404: the docker CLI answers a 404 on create by pulling the image.
                d.containers
                    .get(&m["container:".len()..])
                    .map_err(|e| ApiError::bad_request(e.message))?;
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid {label} mode: {mode}"
                )));
            }
        }
    }
    if hc.uts_mode.as_deref() == Some("host") && hostname_given {
        return Err(ApiError::bad_request(
            "Conflicting options: hostname and the UTS mode",
        ));
    }
    Ok(())
}

/// The namespaces not made fresh at start, resolving joined containers to their init's
/// namespace files (they must be running).
pub fn resolve(d: &Daemon, hc: &HostConfig) -> Result<Vec<(&'static str, Share)>, ApiError> {
    let mut out = Vec::new();
    for (kind, label, mode) in modes(hc) {
        if mode == "host" {
            out.push((kind, Share::Host));
        } else if let Some(name) = mode.strip_prefix("container:") {
            let c = d.containers.get(name)?;
            let rec = c.snapshot();
            if !rec.state.status.is_running() || rec.state.pid <= 0 {
                return Err(ApiError::conflict(format!(
                    "cannot join {label} of a non running container: {}",
                    c.id
                )));
            }
            out.push((
                kind,
                Share::Join(format!("/proc/{}/ns/{kind}", rec.state.pid)),
            ));
        }
    }
    Ok(out)
}
