//! `exec`: `GET /containers/{id}/json`, `POST /containers/{id}/exec`, then `POST
//! /exec/{id}/start` (hijacked unless detached), TTY resize on `/exec/{id}/resize`, and the
//! exit code from `GET /exec/{id}/json`.

use std::sync::mpsc;

use berth_api::client::Body;
use berth_api::engine::{ExecConfig, ExecStartConfig, IdResponse};
use clap::Args;
use serde_json::Value;

use super::opts::kv::{read_env, validate_env};
use super::opts::{OptError, each};
use super::signals::SignalRouter;
use super::stream::{ESCAPE_MESSAGE, StreamEnd, StreamOptions, spawn_session};
use super::term::tty_size;
use super::{Cli, CmdResult, exit_with, leading_positional, stdin_is_terminal};

#[derive(Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long = "detach")]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,
    /// Give extended privileges to the command
    #[arg(long = "privileged")]
    privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long = "tty")]
    tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long = "user")]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// CONTAINER COMMAND [ARG...]
    #[arg(required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true, value_names = ["CONTAINER", "COMMAND"])]
    args: Vec<String>,
}

impl ExecArgs {
    fn container(&self) -> &str {
        &self.args[0]
    }
    fn command(&self) -> &[String] {
        &self.args[1..]
    }
}

/// docker's `parseExec`: the body of `POST /containers/{id}/exec`.
pub fn exec_config(a: &ExecArgs, console: Option<(u16, u16)>) -> Result<ExecConfig, OptError> {
    let env = each("env", Some('e'), &a.env, validate_env)?;
    let env = read_env(&a.env_file, &env)?;
    let attach = !a.detach;
    Ok(ExecConfig {
        user: a.user.clone().filter(|u| !u.is_empty()),
        privileged: Some(a.privileged),
        tty: Some(a.tty),
        console_size: console
            .filter(|_| a.tty)
            .map(|(h, w)| vec![h as usize, w as usize]),
        attach_stdin: Some(attach && a.interactive),
        attach_stdout: Some(attach),
        attach_stderr: Some(attach),
        detach_keys: a.detach_keys.clone().filter(|k| !k.is_empty()),
        env: Some(env).filter(|e| !e.is_empty()),
        working_dir: a.workdir.clone().filter(|w| !w.is_empty()),
        cmd: Some(a.command().to_vec()),
    })
}

pub fn exec(cli: &Cli, a: ExecArgs) -> CmdResult {
    leading_positional("exec", &a.args)?;
    let (h, w) = tty_size();
    let config = exec_config(&a, Some((h, w))).map_err(|e| match e {
        OptError::Flag { .. } => exit_with(125, format!("{e}\nSee 'docker exec --help'.")),
        OptError::Invalid(m) => exit_with(1, m),
    })?;
    let _: Value = cli
        .client
        .get_json(&format!("/containers/{}/json", a.container()))?;
    if !a.detach && a.tty && a.interactive && !stdin_is_terminal() {
        return Err(exit_with(1, "the input device is not a TTY"));
    }
    let created: IdResponse = cli.client.post_json(
        &format!("/containers/{}/exec", a.container()),
        Some(&config),
    )?;
    if created.id.is_empty() {
        return Err(exit_with(1, "exec ID empty"));
    }
    let id = created.id;
    let start = ExecStartConfig {
        detach: Some(a.detach),
        tty: Some(a.tty),
        console_size: config.console_size.clone(),
    };
    let start_path = format!("/exec/{id}/start");
    let body = Body::Bytes(
        serde_json::to_vec(&start).expect("exec start serializes"),
        "application/json",
    );
    if a.detach {
        cli.client.send("POST", &start_path, &[], body)?.check()?;
        return Ok(());
    }
    let signals = SignalRouter::block(false);
    let hijacked = cli.client.hijack(&start_path, body)?;
    let (tx, rx) = mpsc::channel();
    let opts = StreamOptions {
        stdin: a.interactive,
        stdout: true,
        stderr: true,
        tty: a.tty,
        detach_keys: a.detach_keys.clone(),
    };
    let terminal = spawn_session(hijacked, opts, move |end| {
        let _ = tx.send(end);
    })
    .map_err(|e| exit_with(1, e.to_string()))?;
    if a.tty && stdin_is_terminal() {
        let base = format!("/exec/{id}");
        let client = cli.client.clone();
        let resize = move || {
            let (h, w) = tty_size();
            if h != 0 || w != 0 {
                let q = berth_api::client::query(&[("h", h.to_string()), ("w", w.to_string())]);
                let _ = client.call("POST", &format!("{base}/resize{q}"));
            }
        };
        resize();
        signals.route(move |sig| {
            if sig == libc::SIGWINCH {
                resize();
            }
        });
    }
    let end = rx.recv().unwrap_or(StreamEnd::Done);
    terminal.restore();
    match end {
        StreamEnd::Detached => return Err(exit_with(1, ESCAPE_MESSAGE)),
        StreamEnd::Failed(e) => return Err(exit_with(1, e.to_string())),
        StreamEnd::Done => {}
    }
    let inspect: Value = match cli.client.get_json(&format!("/exec/{id}/json")) {
        Ok(v) => v,
        Err(berth_api::client::ClientError::Connect { .. }) => return Err(exit_with(-1, "")),
        Err(e) => return Err(e.into()),
    };
    let code = inspect.get("ExitCode").and_then(Value::as_i64).unwrap_or(0);
    if code != 0 {
        return Err(exit_with(code as i32, ""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: ExecArgs,
    }

    fn config(args: &[&str]) -> serde_json::Value {
        let mut argv = vec!["exec"];
        argv.extend_from_slice(args);
        let t = T::try_parse_from(argv).unwrap();
        serde_json::to_value(exec_config(&t.a, Some((24, 80))).unwrap()).unwrap()
    }

    #[test]
    fn exec_bodies() {
        let v = config(&[
            "-it", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "c1", "sh", "-c", "ls -l",
        ]);
        assert_eq!(v["Cmd"], serde_json::json!(["sh", "-c", "ls -l"]));
        assert_eq!(v["AttachStdin"], true);
        assert_eq!(v["AttachStdout"], true);
        assert_eq!(v["Tty"], true);
        assert_eq!(v["ConsoleSize"], serde_json::json!([24, 80]));
        assert_eq!(v["Env"], serde_json::json!(["A=1"]));
        assert_eq!(v["WorkingDir"], "/tmp");
        assert_eq!(v["User"], "nobody");
        // Everything after the container is the command, flags included (docker's
        // SetInterspersed(false)).
        let v = config(&["c1", "-it", "sh"]);
        assert_eq!(v["Cmd"], serde_json::json!(["-it", "sh"]));
        assert_eq!(v["Tty"], false);
        let v = config(&["-d", "c1", "touch", "/x"]);
        assert_eq!(v["AttachStdout"], false);
        assert_eq!(v["AttachStdin"], false);
        assert!(v.get("ConsoleSize").is_none());
    }
}
