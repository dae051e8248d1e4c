//! What berth remembers about a container (the `containers` table), and docker's state words.

use berth_api::engine::{ContainerConfig, HostConfig};
use berth_meta::Table;
use serde::{Deserialize, Serialize};

pub const CONTAINERS: Table = Table::new("containers");

/// Go's zero time, which docker prints for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
    /// Running in docker's sense: the process exists (paused containers are running).
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
    /// The shim serving the running container (0 when none).
    #[serde(default)]
    pub shim_pid: i64,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            oom_killed: false,
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            shim_pid: 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// With docker's leading slash: `/web`.
    pub name: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// The image ID the container was created from.
    pub image: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    #[serde(default)]
    pub networking: Option<serde_json::Value>,
    pub state: State,
    pub restart_count: i64,
    /// The process docker shows as Path + Args (entrypoint + cmd, resolved at create).
    pub path: String,
    pub args: Vec<String>,
    /// Set by `docker stop`/`kill` so restart policies do not undo them; cleared by start.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Whether the container has ever been started (for restart policies at daemon start).
    #[serde(default)]
    pub has_been_started: bool,
    /// Volumes, binds and tmpfs mounts, resolved at create.
    #[serde(default)]
    pub mounts: Vec<super::mounts::MountPoint>,
    /// The network sandbox while the container runs (addresses, ports, namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::network::SandboxState>,
}

impl ContainerRecord {
    pub fn short_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
    pub fn image_name(&self) -> &str {
        self.config.image.as_deref().unwrap_or("")
    }
}
