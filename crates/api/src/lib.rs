//! The Docker Engine API as berth speaks it: the models both sides share, the version numbers,
//! and the small synchronous HTTP client the CLI uses to reach the daemon.

pub mod client;
pub mod models;
pub mod stream;

/// The newest Engine API version berthd serves and the CLI asks for.
pub const API_VERSION: &str = "1.47";
/// The oldest API version berthd still accepts in a `/vX.Y/` path.
pub const MIN_API_VERSION: &str = "1.24";
/// berth's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Where berthd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

/// The `kernel.*` sysctls a container's own IPC namespace holds (docker's list); with
/// `fs.mqueue.*` and `net.*` they are the only ones `--sysctl` may set.
pub const IPC_NAMESPACED_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// bollard's generated Engine API models, used where our own shapes add nothing.
pub use bollard_stubs::models as engine;

/// Parses "1.47" into (1, 47) for comparisons.
pub fn parse_api_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}
