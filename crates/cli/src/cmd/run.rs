//! `create`, `run`, `start` and `attach`, with the request sequences of the docker CLI:
//! create (pulling a missing image), attach (hijacked) and wait *before* start, TTY resize on
//! start and SIGWINCH, signal forwarding, and the exit status from the wait.

use std::sync::mpsc;
use std::time::Duration;

use berth_api::client::{Body, Client, ClientError, query};
use berth_api::engine::ContainerCreateResponse;
use berth_api::models::WaitResponse;
use clap::Args;
use serde_json::Value;

use super::containers::start_wait;
use super::reference::{Reference, is_full_id};
use super::run_opts::{ContainerFlags, CreateRequest};
use super::signals::{SignalRouter, signal_name};
use super::stream::{StreamEnd, StreamOptions, spawn_session};
use super::term::tty_size;
use super::{
    Cli, CmdResult, exit_with, leading_positional, opt_error, stdin_is_terminal,
    stdout_is_terminal, with_help,
};

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    flags: ContainerFlags,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_names = ["IMAGE", "COMMAND"])]
    args: Vec<String>,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long = "detach", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::run_opts::go_bool, action = clap::ArgAction::Set, default_value = "false")]
    detach: bool,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::run_opts::go_bool, action = clap::ArgAction::Set, default_value = "true")]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    #[command(flatten)]
    flags: ContainerFlags,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_names = ["IMAGE", "COMMAND"])]
    args: Vec<String>,
}

/// `--pull` values.
fn validate_pull(v: &str) -> Result<(), String> {
    match v {
        "always" | "missing" | "never" | "" => Ok(()),
        _ => Err(format!(
            "invalid pull option: '{v}': must be one of \"always\", \"missing\" or \"never\""
        )),
    }
}

/// docker's `CheckTty`.
fn check_tty(attach_stdin: bool, tty: bool) -> CmdResult {
    if tty && attach_stdin && !stdin_is_terminal() {
        return Err(exit_with(1, "the input device is not a TTY"));
    }
    Ok(())
}

/// docker's `toStatusError` for `run`: 127 for a missing executable, 126 for one that cannot
/// be run, 125 for anything else.
pub fn run_status_error(msg: &str) -> anyhow::Error {
    let code = if msg.contains("executable file not found")
        || msg.contains("no such file or directory")
        || msg.contains("system cannot find the file specified")
    {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    };
    with_help("run", msg, code)
}

/// `POST /images/create?fromImage=…&tag=…`, its progress on stderr (unless quiet).
fn pull_image(cli: &Cli, image: &str, platform: Option<&str>, quiet: bool) -> CmdResult {
    let r = Reference::parse(image).map_err(|e| exit_with(1, e))?;
    let tag = match &r.digest {
        Some(d) => d.clone(),
        None => r.tag.clone().unwrap_or_else(|| "latest".into()),
    };
    let mut q = vec![("fromImage", r.name()), ("tag", tag)];
    if let Some(p) = platform {
        q.push(("platform", p.to_lowercase()));
    }
    let resp = cli
        .client
        .send(
            "POST",
            &format!("/images/create{}", query(&q)),
            &[("X-Registry-Auth", super::registry::auth_for_image(image))],
            Body::Empty,
        )?
        .check()?;
    if quiet {
        super::registry::display_stream(resp, &mut std::io::sink(), false)
    } else {
        super::registry::display_stream(resp, &mut std::io::stderr().lock(), false)
    }
}

/// docker's `--cidfile`: refused if it exists, created before the container, removed if the
/// container could not be made.
struct CidFile {
    path: Option<String>,
    written: bool,
}

impl CidFile {
    fn new(path: Option<&str>) -> Result<CidFile, String> {
        if let Some(p) = path {
            if std::path::Path::new(p).exists() {
                return Err(format!(
                    "container ID file found, make sure the other container isn't running or delete {p}"
                ));
            }
            std::fs::File::create(p).map_err(|e| {
                format!(
                    "failed to create the container ID file: {}",
                    super::go_path_error("open", p, &e)
                )
            })?;
        }
        Ok(CidFile {
            path: path.map(str::to_string),
            written: false,
        })
    }

    fn write(&mut self, id: &str) -> Result<(), String> {
        if let Some(p) = &self.path {
            std::fs::write(p, id)
                .map_err(|e| format!("failed to write the container ID to the file: {e}"))?;
            self.written = true;
        }
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.path
            && !self.written
        {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// docker's `createContainer`: the ID of the new container.
fn create_container(
    cli: &Cli,
    req: &mut CreateRequest,
    flags: &ContainerFlags,
) -> anyhow::Result<String> {
    let image = req.body.image.clone().unwrap_or_default();
    let named = if is_full_id(&image) {
        None
    } else {
        Some(Reference::parse(&image).map_err(|e| exit_with(1, e))?)
    };
    let mut cid = CidFile::new(flags.cidfile.as_deref().filter(|p| !p.is_empty()))
        .map_err(|e| exit_with(1, e))?;
    if flags.pull == "always" {
        pull_image(cli, &image, req.platform.as_deref(), flags.quiet)?;
    }
    let (h, w) = tty_size();
    if let Some(hc) = req.body.host_config.as_mut() {
        hc.console_size = Some(vec![h as usize, w as usize]);
    }
    let mut q = Vec::new();
    if let Some(p) = &req.platform {
        q.push(("platform", p.clone()));
    }
    if let Some(n) = &req.name {
        q.push(("name", n.clone()));
    }
    let path = format!("/containers/create{}", query(&q));
    let created = match cli
        .client
        .post_json::<_, ContainerCreateResponse>(&path, Some(&req.body))
    {
        Ok(r) => r,
        Err(e) if e.status() == Some(404) && named.is_some() && flags.pull == "missing" => {
            if !flags.quiet {
                let shown = named
                    .clone()
                    .map(|r| r.with_default_tag().familiar_string());
                eprintln!(
                    "Unable to find image '{}' locally",
                    shown.unwrap_or_default()
                );
            }
            pull_image(cli, &image, req.platform.as_deref(), flags.quiet)?;
            cli.client.post_json(&path, Some(&req.body))?
        }
        Err(e) => return Err(e.into()),
    };
    let mut warnings = created.warnings.clone();
    let dns = req
        .body
        .host_config
        .as_ref()
        .and_then(|h| h.dns.clone())
        .unwrap_or_default();
    if let Some(lo) = dns.iter().find(|d| {
        d.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    }) {
        warnings.push(format!("Localhost DNS ({lo}) may fail in containers."));
    }
    for w in &warnings {
        eprintln!("WARNING: {w}");
    }
    cid.write(&created.id).map_err(|e| exit_with(1, e))?;
    Ok(created.id)
}

pub fn create(cli: &Cli, a: CreateArgs) -> CmdResult {
    validate_pull(&a.flags.pull).map_err(|e| with_help("create", e, 125))?;
    let (image, args) = leading_positional("create", &a.args)?;
    let mut req = a
        .flags
        .to_request(image, args)
        .map_err(|e| opt_error("create", e))?;
    let id = create_container(cli, &mut req, &a.flags)?;
    println!("{id}");
    Ok(())
}

/// The path of `POST /containers/{id}/attach` for the given streams.
pub fn attach_path(
    id: &str,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    keys: Option<&str>,
) -> String {
    let mut q = vec![("stream", "1".to_string())];
    if stdin {
        q.push(("stdin", "1".into()));
    }
    if stdout {
        q.push(("stdout", "1".into()));
    }
    if stderr {
        q.push(("stderr", "1".into()));
    }
    if let Some(k) = keys.filter(|k| !k.is_empty()) {
        q.push(("detachKeys", k.to_string()));
    }
    format!("/containers/{id}/attach{}", query(&q))
}

/// `POST {base}/resize?h=&w=` (base is `/containers/{id}` or `/exec/{id}`); a zero size is
/// not sent.
fn resize(client: &Client, base: &str, h: u16, w: u16) -> Result<(), ClientError> {
    if h == 0 && w == 0 {
        return Ok(());
    }
    let q = query(&[("h", h.to_string()), ("w", w.to_string())]);
    client
        .call("POST", &format!("{base}/resize{q}"))
        .map(|_| ())
}

/// docker's `initTtySize`: resize now, and if that fails retry a few times in the background.
fn init_tty_size(client: &Client, base: &str) {
    let (h, w) = tty_size();
    if resize(client, base, h, w).is_ok() {
        return;
    }
    let (client, base) = (client.clone(), base.to_string());
    std::thread::spawn(move || {
        for retry in 0..10u64 {
            std::thread::sleep(Duration::from_millis((retry + 1) * 10));
            let (h, w) = tty_size();
            if resize(&client, &base, h, w).is_ok() {
                return;
            }
        }
        eprintln!("failed to resize tty, using default size");
    });
}

/// Routes blocked signals: SIGWINCH resizes `resize_base` (when set), the others are sent to
/// the container when `proxy_to` is set.
fn route_signals(
    router: &SignalRouter,
    client: &Client,
    resize_base: Option<String>,
    proxy_to: Option<String>,
) {
    let client = client.clone();
    router.route(move |sig| {
        if sig == libc::SIGWINCH {
            if let Some(base) = &resize_base {
                let (h, w) = tty_size();
                let _ = resize(&client, base, h, w);
            }
            return;
        }
        if let (Some(id), Some(name)) = (&proxy_to, signal_name(sig)) {
            let q = query(&[("signal", name.to_string())]);
            let _ = client.call("POST", &format!("/containers/{id}/kill{q}"));
        }
    });
}

enum Event {
    Stream(StreamEnd),
    Exit(i64),
}

/// Starts waiting for the container in the background; the status (125 when the wait
/// fails, as docker reports it) arrives as [`Event::Exit`].
fn wait_in_background(cli: &Cli, id: &str, condition: Option<&str>, tx: mpsc::Sender<Event>) {
    wait_with_report(cli, id, condition, tx, true)
}

fn wait_with_report(
    cli: &Cli,
    id: &str,
    condition: Option<&str>,
    tx: mpsc::Sender<Event>,
    report: bool,
) {
    let pending = start_wait(cli, id, condition);
    std::thread::spawn(move || {
        let status = match pending.and_then(|w| w()) {
            Ok(WaitResponse { error: Some(e), .. }) if !e.message.is_empty() => {
                if report {
                    eprintln!("Error waiting for container: {}", e.message);
                }
                125
            }
            Ok(r) => r.status_code,
            Err(e) => {
                if report {
                    eprintln!("error waiting for container: {e}");
                }
                125
            }
        };
        let _ = tx.send(Event::Exit(status));
    });
}

/// Exit status for a finished session: the container's, or 0 when the stream ended while
/// the container runs on (the user detached). The container must be seen running for about a
/// second, so an exit the daemon has not recorded yet is not taken for a detach.
fn status_after_stream(cli: &Cli, id: &str, rx: &mpsc::Receiver<Event>) -> i64 {
    let running = || {
        cli.client
            .get_json::<Value>(&format!("/containers/{id}/json"))
            .ok()
            .and_then(|c| c.pointer("/State/Running").and_then(Value::as_bool))
            .unwrap_or(false)
    };
    for _ in 0..4 {
        match rx.recv_timeout(Duration::from_millis(250)) {
            Ok(Event::Exit(s)) => return s,
            Ok(Event::Stream(_)) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return 0,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !running() {
                    // It has exited: the wait answers shortly.
                    return match rx.recv() {
                        Ok(Event::Exit(s)) => s,
                        _ => 0,
                    };
                }
            }
        }
    }
    0
}

fn exit_status(status: i64) -> CmdResult {
    if status == 0 {
        Ok(())
    } else {
        Err(exit_with(status as i32, ""))
    }
}

pub fn run(cli: &Cli, a: RunArgs) -> CmdResult {
    validate_pull(&a.flags.pull).map_err(|e| with_help("run", e, 125))?;
    let (image, args) = leading_positional("run", &a.args)?;
    let mut req = a
        .flags
        .to_request(image, args)
        .map_err(|e| opt_error("run", e))?;
    let tty = req.body.tty == Some(true);
    if !a.detach {
        check_tty(req.body.attach_stdin == Some(true), tty)?;
    } else {
        if req.attach_given {
            return Err(exit_with(
                1,
                "conflicting options: cannot specify both --attach and --detach",
            ));
        }
        req.body.attach_stdin = Some(false);
        req.body.attach_stdout = Some(false);
        req.body.attach_stderr = Some(false);
        req.body.stdin_once = Some(false);
    }
    let id =
        create_container(cli, &mut req, &a.flags).map_err(|e| run_status_error(&e.to_string()))?;
    let (stdin, stdout, stderr) = (
        req.body.attach_stdin == Some(true),
        req.body.attach_stdout == Some(true),
        req.body.attach_stderr == Some(true),
    );
    let attach = stdin || stdout || stderr;
    let auto_remove = a.flags.rm;
    let condition = if auto_remove { "removed" } else { "next-exit" };
    if !attach {
        // `-d`: the ID, the wait docker also issues, then start.
        println!("{id}");
        // docker abandons this wait when it exits: nothing it says is shown.
        let (tx, _rx) = mpsc::channel();
        wait_with_report(cli, &id, Some(condition), tx, false);
        return cli
            .client
            .call("POST", &format!("/containers/{id}/start"))
            .map(|_| ())
            .map_err(|e| run_status_error(&e.to_string()));
    }

    // Block signals before any thread starts, so the signal thread alone receives them.
    let signals = SignalRouter::block(a.sig_proxy);
    let (tx, rx) = mpsc::channel();
    let h = cli.client.hijack(
        &attach_path(&id, stdin, stdout, stderr, a.detach_keys.as_deref()),
        Body::Empty,
    )?;
    let opts = StreamOptions {
        stdin,
        stdout,
        stderr,
        tty,
        detach_keys: a.detach_keys.clone(),
    };
    let stream_tx = tx.clone();
    let terminal = spawn_session(h, opts, move |end| {
        let _ = stream_tx.send(Event::Stream(end));
    })
    .map_err(|e| exit_with(1, e.to_string()))?;
    wait_in_background(cli, &id, Some(condition), tx);

    if let Err(e) = cli.client.call("POST", &format!("/containers/{id}/start")) {
        terminal.restore();
        if auto_remove {
            let _ = rx.recv_timeout(Duration::from_secs(10));
        }
        return Err(run_status_error(&e.to_string()));
    }
    let resize_base = (tty && stdout_is_terminal()).then(|| format!("/containers/{id}"));
    if let Some(base) = &resize_base {
        init_tty_size(&cli.client, base);
    }
    route_signals(
        &signals,
        &cli.client,
        resize_base,
        a.sig_proxy.then(|| id.clone()),
    );

    let status = match rx.recv() {
        Ok(Event::Stream(StreamEnd::Detached)) => return Ok(()),
        Ok(Event::Stream(StreamEnd::Failed(e))) => return Err(exit_with(1, e.to_string())),
        Ok(Event::Stream(StreamEnd::Done)) => status_after_stream(cli, &id, &rx),
        Ok(Event::Exit(status)) => {
            if stdout || stderr {
                // Let the output drain: the daemon closes it after the exit.
                while let Ok(ev) = rx.recv() {
                    if matches!(ev, Event::Stream(_)) {
                        break;
                    }
                }
            }
            status
        }
        Err(_) => 0,
    };
    drop(terminal);
    exit_status(status)
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long = "attach")]
    attach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Attach container's STDIN
    #[arg(short = 'i', long = "interactive")]
    interactive: bool,
    /// Restore from this checkpoint
    #[arg(long = "checkpoint", hide = true)]
    checkpoint: Option<String>,
    /// Use a custom checkpoint storage directory
    #[arg(long = "checkpoint-dir", hide = true)]
    checkpoint_dir: Option<String>,
    /// CONTAINER...
    #[arg(required = true)]
    containers: Vec<String>,
}

/// What `start`/`attach` need from `GET /containers/{id}/json`.
struct Target {
    id: String,
    tty: bool,
    open_stdin: bool,
    auto_remove: bool,
    running: bool,
    paused: bool,
    restarting: bool,
}

fn target(cli: &Cli, name: &str) -> Result<Target, ClientError> {
    let c: Value = cli.client.get_json(&format!("/containers/{name}/json"))?;
    let b = |p: &str| c.pointer(p).and_then(Value::as_bool).unwrap_or(false);
    Ok(Target {
        id: c
            .get("Id")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_string(),
        tty: b("/Config/Tty"),
        open_stdin: b("/Config/OpenStdin"),
        auto_remove: b("/HostConfig/AutoRemove"),
        running: b("/State/Running"),
        paused: b("/State/Paused"),
        restarting: b("/State/Restarting"),
    })
}

pub fn start(cli: &Cli, a: StartArgs) -> CmdResult {
    let mut q = Vec::new();
    if let Some(c) = &a.checkpoint {
        q.push(("checkpoint", c.clone()));
    }
    if let Some(d) = &a.checkpoint_dir {
        q.push(("checkpoint-dir", d.clone()));
    }
    let q = query(&q);
    if !(a.attach || a.interactive) {
        let mut failed = Vec::new();
        for c in &a.containers {
            match cli
                .client
                .call("POST", &format!("/containers/{c}/start{q}"))
            {
                Ok(_) => println!("{c}"),
                Err(e) => {
                    eprintln!("{e}");
                    failed.push(c.clone());
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        return Err(exit_with(
            1,
            format!("Error: failed to start containers: {}", failed.join(", ")),
        ));
    }
    if a.containers.len() > 1 {
        return Err(exit_with(
            1,
            "you cannot start and attach multiple containers at once",
        ));
    }
    let t = target(cli, &a.containers[0])?;
    let signals = SignalRouter::block(!t.tty);
    let stdin = a.interactive && t.open_stdin;
    let h = cli.client.hijack(
        &attach_path(&t.id, stdin, true, true, a.detach_keys.as_deref()),
        Body::Empty,
    )?;
    let (tx, rx) = mpsc::channel();
    let stream_tx = tx.clone();
    let opts = StreamOptions {
        stdin,
        stdout: true,
        stderr: true,
        tty: t.tty,
        detach_keys: a.detach_keys.clone(),
    };
    let terminal = spawn_session(h, opts, move |end| {
        let _ = stream_tx.send(Event::Stream(end));
    })
    .map_err(|e| exit_with(1, e.to_string()))?;
    let condition = if t.auto_remove {
        "removed"
    } else {
        "next-exit"
    };
    wait_in_background(cli, &t.id, Some(condition), tx);
    if let Err(e) = cli
        .client
        .call("POST", &format!("/containers/{}/start{q}", t.id))
    {
        terminal.restore();
        return Err(e.into());
    }
    let resize_base = (t.tty && stdout_is_terminal()).then(|| format!("/containers/{}", t.id));
    if let Some(base) = &resize_base {
        init_tty_size(&cli.client, base);
    }
    route_signals(
        &signals,
        &cli.client,
        resize_base,
        (!t.tty).then(|| t.id.clone()),
    );
    let status = session_status(cli, &t.id, &rx)?;
    drop(terminal);
    exit_status(status)
}

/// Waits for the session to end (start -a / attach): detaching is not an error for `start`.
fn session_status(cli: &Cli, id: &str, rx: &mpsc::Receiver<Event>) -> anyhow::Result<i64> {
    loop {
        match rx.recv() {
            Ok(Event::Stream(StreamEnd::Detached)) => return Ok(0),
            Ok(Event::Stream(StreamEnd::Failed(e))) => return Err(exit_with(1, e.to_string())),
            Ok(Event::Stream(StreamEnd::Done)) => return Ok(status_after_stream(cli, id, rx)),
            Ok(Event::Exit(_)) => continue,
            Err(_) => return Ok(0),
        }
    }
}

#[derive(Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = super::run_opts::go_bool, action = clap::ArgAction::Set, default_value = "true")]
    sig_proxy: bool,
    /// CONTAINER
    container: String,
}

fn check_attachable(t: &Target) -> CmdResult {
    if !t.running {
        return Err(exit_with(
            1,
            "You cannot attach to a stopped container, start it first",
        ));
    }
    if t.paused {
        return Err(exit_with(
            1,
            "You cannot attach to a paused container, unpause it first",
        ));
    }
    if t.restarting {
        return Err(exit_with(
            1,
            "You cannot attach to a restarting container, wait until it is running",
        ));
    }
    Ok(())
}

pub fn attach(cli: &Cli, a: AttachArgs) -> CmdResult {
    let signals = SignalRouter::block(a.sig_proxy);
    let (tx, rx) = mpsc::channel();
    wait_in_background(cli, &a.container, None, tx.clone());
    let t = target(cli, &a.container)?;
    check_attachable(&t)?;
    check_tty(!a.no_stdin, t.tty)?;
    let stdin = !a.no_stdin && t.open_stdin;
    let h = cli.client.hijack(
        &attach_path(&t.id, stdin, true, true, a.detach_keys.as_deref()),
        Body::Empty,
    )?;
    check_attachable(&target(cli, &t.id)?)?;
    let stream_tx = tx.clone();
    let opts = StreamOptions {
        stdin,
        stdout: true,
        stderr: true,
        tty: t.tty,
        detach_keys: a.detach_keys.clone(),
    };
    let terminal = spawn_session(h, opts, move |end| {
        let _ = stream_tx.send(Event::Stream(end));
    })
    .map_err(|e| exit_with(1, e.to_string()))?;
    let resize_base = (t.tty && stdout_is_terminal()).then(|| format!("/containers/{}", t.id));
    if let Some(base) = &resize_base {
        // docker resizes one row and column larger first, so the process sees a change.
        let (h, w) = tty_size();
        let _ = resize(&cli.client, base, h + 1, w + 1);
        init_tty_size(&cli.client, base);
    }
    route_signals(
        &signals,
        &cli.client,
        resize_base,
        (a.sig_proxy && !t.tty).then(|| t.id.clone()),
    );
    let status = loop {
        match rx.recv() {
            // docker attach reports the detach as an error.
            Ok(Event::Stream(StreamEnd::Detached)) => {
                return Err(exit_with(1, super::stream::ESCAPE_MESSAGE));
            }
            Ok(Event::Stream(StreamEnd::Failed(e))) => return Err(exit_with(1, e.to_string())),
            Ok(Event::Stream(StreamEnd::Done)) => break status_after_stream(cli, &t.id, &rx),
            Ok(Event::Exit(_)) => continue,
            Err(_) => break 0,
        }
    };
    drop(terminal);
    exit_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_paths() {
        assert_eq!(
            attach_path("abc", true, true, true, None),
            "/containers/abc/attach?stream=1&stdin=1&stdout=1&stderr=1"
        );
        assert_eq!(
            attach_path("abc", false, true, false, Some("ctrl-a,b")),
            "/containers/abc/attach?stream=1&stdout=1&detachKeys=ctrl-a%2Cb"
        );
    }

    #[test]
    fn status_errors() {
        let code = |m: &str| {
            run_status_error(m)
                .downcast_ref::<super::super::Exit>()
                .unwrap()
                .code
        };
        assert_eq!(
            code("exec: \"nosuch\": executable file not found in $PATH"),
            127
        );
        assert_eq!(code("exec /bin/x: permission denied"), 126);
        assert_eq!(code("Error response from daemon: No such image: x"), 125);
        let e = run_status_error("Error response from daemon: boom");
        assert_eq!(
            e.to_string(),
            "docker: Error response from daemon: boom\n\nRun 'docker run --help' for more information"
        );
        assert_eq!(
            validate_pull("sometimes").unwrap_err(),
            "invalid pull option: 'sometimes': must be one of \"always\", \"missing\" or \"never\""
        );
    }
}
