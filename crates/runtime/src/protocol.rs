//! How berthd and a container's shim talk.
//!
//! ## Launch
//! berthd writes the bundle (`<bundle>/config.json`, a [`crate::spec::Spec`], and
//! `<bundle>/shim.json`, a [`ShimConfig`]), then runs
//! `berth-shim <bundle>` with fd 3 the write end of a pipe. The shim detaches (double fork,
//! new session, `PR_SET_CHILD_SUBREAPER`), so its life does not depend on berthd's. It creates
//! the container — namespaces, mounts, pivot_root, cgroup, everything up to the final `execve`
//! — and then writes one [`Ready`] JSON line to fd 3 and closes it. On failure it cleans up what
//! it made, writes `Ready { error: Some(..) }` and exits.
//!
//! ## Socket
//! The shim listens on `<state_dir>/shim.sock`. Each connection begins with one [`Request`]
//! as a JSON line. The shim answers with one [`Reply`] JSON line. `attach` and `exec` then carry
//! framed streams on the same connection:
//! - shim → client: `[kind: u8][len: u32 big-endian][payload]` with kind [`FRAME_STDOUT`],
//!   [`FRAME_STDERR`] and, for exec, a final [`FRAME_EXIT`] whose payload is the exit code as
//!   i32 big-endian.
//! - client → shim: `[kind][len][payload]` with [`FRAME_STDIN`] data, and
//!   [`FRAME_CLOSE_STDIN`] (empty payload) to close the process's stdin. A client that only
//!   disconnects has *detached*: the process's stdin stays open.
//!
//! ## Files in `state_dir` (berthd reads them even when the shim is gone)
//! - `shim.pid`: the shim's pid; `init.pid`: the container init's pid (host view).
//! - `exit.json`: an [`ExitStatus`], written (temp + fsync + rename) when the init has exited.
//!   The shim writes it *before* it answers waiters and before it exits, so a berthd that was
//!   down reads the real exit code when it comes back.
//!
//! The shim exits once the init has exited, every exec process is gone (they die with the
//! container's PID namespace), the log is flushed, and `exit.json` is written.
//!
//! ## Shim behaviour where the above leaves a choice
//! - Launch: the launched process forks, waits for that child and exits 0 (berthd reaps it);
//!   the child calls `setsid`, forks the shim and exits. The shim first re-executes itself from
//!   a detached read-only bind mount of its binary (CVE-2019-5736), so fd 3 must not be
//!   CLOEXEC. `Ready` errors from before the fork come from the launched process itself.
//! - A terminal (`process.terminal`) is allocated *inside* the container from its own devpts
//!   (so `tty` prints `/dev/pts/0`, as with docker); the master stays in the shim.
//! - Every connection gets exactly one reply line. After `state`, `start`, `signal`, `resize`,
//!   errors, and the `wait` reply, the shim closes the connection. `attach` and `exec` stay
//!   open for frames; `wait` stays open until the init exits.
//! - `start` replies `{pid}`. A failed start replies `{error, exit_code}` (127 not found, 126
//!   cannot invoke, none otherwise), the init and its cgroup are already gone, and the shim
//!   finishes as if the init had exited with `exit_code` (128 when there is none).
//! - `attach` after the init has exited replies `{}` and closes at once (EOF). Output before
//!   an attach is only in the log. TTY output is [`FRAME_STDOUT`].
//! - Stdin: frames from an attacher that asked for `stdin` go to the container's stdin (only
//!   with `open_stdin`). [`FRAME_CLOSE_STDIN`] from such an attacher closes it (after pending
//!   data is written; for a terminal it only stops input). With `stdin_once`, the first stdin
//!   attacher disconnecting closes it too.
//! - A slow attacher loses output past 256 KiB queued for it (the log never loses any). An
//!   exec's client is the exec's only reader: the shim stops reading the exec's output instead.
//! - `exec` replies `{pid}` once the process has exec'd, or `{error, exit_code}`. Its frames end
//!   with [`FRAME_EXIT`], then the shim closes the connection. An exec client that disconnects
//!   detaches: the process runs on, its output is discarded, its stdin stays open.
//! - `signal` with `all` goes to every process in the container's cgroup (SIGKILL with the
//!   freezer on v1, `cgroup.kill` on v2); after exit it replies `{error}`.
//! - `state` replies `{pid, running, exit}`; `running` is true between a successful start and
//!   the init's exit.
//! - At exit the shim reads remaining output (up to 2 s for pipes still held open), writes
//!   `exit.json`, answers waiters, ends attach streams, SIGKILLs whatever is left in the
//!   cgroup, sends exec clients their exit frames, gives clients up to 2 s to read, removes
//!   `shim.sock` and exits 0. The cgroup itself is left for berthd to remove
//!   (`berth_runtime::cgroup::Cgroup::remove_path`).

use serde::{Deserialize, Serialize};

use crate::spec::{ConsoleSize, Process};

pub const FRAME_STDIN: u8 = 0;
pub const FRAME_STDOUT: u8 = 1;
pub const FRAME_STDERR: u8 = 2;
pub const FRAME_EXIT: u8 = 3;
pub const FRAME_CLOSE_STDIN: u8 = 4;

/// `<bundle>/shim.json`: what the shim needs besides the OCI config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ShimConfig {
    pub id: String,
    /// Directory for the socket and the pid/exit files (under berthd's exec root).
    pub state_dir: String,
    /// docker's json-file log (`<data-root>/containers/<id>/<id>-json.log`).
    pub log_path: String,
    /// Rotate when the log reaches this many bytes (`--log-opt max-size`); 0 = never.
    #[serde(default)]
    pub log_max_size: u64,
    /// Files kept, including the current one (`--log-opt max-file`), at least 1.
    #[serde(default = "one")]
    pub log_max_files: u32,
    /// `-i`: the container's stdin is a pipe the shim keeps open for attachers.
    #[serde(default)]
    pub open_stdin: bool,
    /// docker's StdinOnce: close the container's stdin when the first attached client closes it.
    #[serde(default)]
    pub stdin_once: bool,
    /// Path of the `berth-shim` binary's own sealed copy is not needed: the shim never runs
    /// inside the container. Kept for future use by exec helpers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_root: Option<String>,
}

fn one() -> u32 {
    1
}

/// The line the shim writes on fd 3 when the container is created (or could not be).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ready {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_pid: Option<i32>,
    /// What went wrong, worded for the user (e.g. `exec: "nope": executable file not found in $PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The exit status docker reports for that failure (126, 127…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Let the created init `execve`. The reply comes after the exec succeeded or failed.
    Start,
    /// Stream the container's output (and feed its stdin).
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    /// Resize the container's terminal, or an exec's (`exec` = its id).
    Resize {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exec: Option<String>,
        size: ConsoleSize,
    },
    /// Send a signal to the init, or to every process of the container (`all`).
    Signal { signal: i32, all: bool },
    /// Reply once the init has exited (immediately if it has).
    Wait,
    /// Current state.
    State,
    /// Run a process in the container; the reply carries its pid, then frames follow until
    /// [`FRAME_EXIT`].
    Exec {
        id: String,
        process: Box<Process>,
        #[serde(default)]
        stdin: bool,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a failed `start`/`exec`: the status docker reports (126 not executable, 127 not found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitStatus>,
}

/// How the init ended. Written to `exit.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// docker's convention: the exit code, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// The cgroup saw an OOM kill while the container ran.
    #[serde(default)]
    pub oom_killed: bool,
    /// RFC 3339 with nanoseconds, UTC.
    pub finished_at: String,
}
