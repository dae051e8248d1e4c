//! `/containers/…`: create, start, stop, kill, restart, remove, wait, inspect, list, logs,
//! attach, rename, pause, unpause, prune.

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::engine::ContainerCreateBody;
use berth_runtime::protocol::Request;
use http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::containers::lifecycle::{self, Started, status_text};
use crate::containers::record::{ContainerRecord, Status};
use crate::containers::{Container, logs, shim};
use crate::daemon::{Daemon, driver_name};
use crate::http::{
    ApiError, ApiResult, ChannelWriter, body_bytes, ok_json, parse_time_filter, status_only,
    streaming,
};
use crate::server::Ctx;
use crate::stream::{ProxyOpts, parse_detach_keys, proxy, upgrade_response};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub async fn create(ctx: Ctx) -> ApiResult {
    let name = ctx.query.get("name").map(str::to_string);
    let bytes = body_bytes(ctx.req.into_body(), 16 << 20).await?;
    let raw: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!("invalid JSON for the container config: {e}"))
    })?;
    check_restart_name(&raw)?;
    let body: ContainerCreateBody = serde_json::from_value(raw).map_err(|e| {
        ApiError::bad_request(format!("invalid JSON for the container config: {e}"))
    })?;
    let (id, warnings) = lifecycle::create(&ctx.daemon, name, body).await?;
    Ok(crate::http::json(
        StatusCode::CREATED,
        &json!({"Id": id, "Warnings": warnings}),
    ))
}

/// docker's wording for an unknown restart policy (the typed model would only say "unknown variant").
fn check_restart_name(raw: &Value) -> Result<(), ApiError> {
    let name = raw
        .pointer("/HostConfig/RestartPolicy/Name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if ["", "no", "always", "unless-stopped", "on-failure"].contains(&name) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "invalid restart policy: unknown policy '{name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
    )))
}

pub async fn start(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    match lifecycle::start(&ctx.daemon, &c).await? {
        Started::Now => status_only(StatusCode::NO_CONTENT),
        Started::AlreadyRunning => status_only(StatusCode::NOT_MODIFIED),
    }
}

fn timeout_param(ctx: &Ctx) -> Result<Option<i64>, ApiError> {
    match ctx.query.get("t").or(ctx.query.get("timeout")) {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}"))),
    }
}

pub async fn stop(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    let t = timeout_param(&ctx)?;
    let sig = ctx.query.get("signal").filter(|s| !s.is_empty());
    if lifecycle::stop(&ctx.daemon, &c, t, sig).await? {
        status_only(StatusCode::NO_CONTENT)
    } else {
        status_only(StatusCode::NOT_MODIFIED)
    }
}

pub async fn restart(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    let t = timeout_param(&ctx)?;
    let sig = ctx.query.get("signal").filter(|s| !s.is_empty());
    lifecycle::restart(&ctx.daemon, &c, t, sig).await?;
    status_only(StatusCode::NO_CONTENT)
}

pub async fn kill(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    let sig = ctx
        .query
        .get("signal")
        .filter(|s| !s.is_empty())
        .unwrap_or("SIGKILL");
    lifecycle::kill(&ctx.daemon, &c, sig).await?;
    status_only(StatusCode::NO_CONTENT)
}

pub async fn remove(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    if ctx.query.bool("link") {
        return Err(ApiError::bad_request("berth has no legacy links to remove"));
    }
    lifecycle::remove(
        &ctx.daemon,
        &c,
        ctx.query.bool("force"),
        ctx.query.bool("v"),
    )
    .await?;
    status_only(StatusCode::NO_CONTENT)
}

pub async fn pause(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    lifecycle::pause(&ctx.daemon, &c).await?;
    status_only(StatusCode::NO_CONTENT)
}

pub async fn unpause(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    lifecycle::unpause(&ctx.daemon, &c).await?;
    status_only(StatusCode::NO_CONTENT)
}

pub async fn rename(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    let new = ctx.query.get("name").unwrap_or("").to_string();
    if new.is_empty() {
        return Err(ApiError::bad_request(
            "Neither old nor new names may be empty",
        ));
    }
    if !crate::containers::valid_name(&new) {
        return Err(ApiError::bad_request(format!(
            "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let old = ctx.daemon.containers.rename(&c, &new)?;
    let mut attrs = lifecycle::event_attrs(&c.snapshot());
    attrs.insert("oldName".into(), old);
    ctx.daemon
        .events
        .publish("container", "rename", &c.id, attrs);
    status_only(StatusCode::NO_CONTENT)
}

/// `POST /containers/{id}/wait`: the status line and headers go out at once (the docker CLI
/// waits for them before it starts the container); the body follows when the condition holds.
pub async fn wait(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    let condition = ctx
        .query
        .get("condition")
        .unwrap_or("not-running")
        .to_string();
    if !["not-running", "next-exit", "removed", ""].contains(&condition.as_str()) {
        return Err(ApiError::bad_request(format!(
            "invalid condition: \"{condition}\""
        )));
    }
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        let body = match lifecycle::wait(&c, &condition).await {
            Ok((code, err)) => {
                json!({"StatusCode": code, "Error": err.map(|m| json!({"Message": m}))})
            }
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.message}}),
        };
        let mut line = serde_json::to_vec(&body).expect("serializes");
        line.push(b'\n');
        let _ = tx.send(Ok(bytes::Bytes::from(line))).await;
    });
    Ok(streaming(StatusCode::OK, "application/json", rx))
}

/// `GET /containers/{id}/json`.
pub fn inspect_json(d: &Daemon, c: &Container) -> Value {
    let rec = c.snapshot();
    let st = &rec.state;
    let paths = &d.containers.paths;
    let bundle = paths.bundle(&rec.id);
    let mut config = serde_json::to_value(&rec.config).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut config {
        for (k, v) in [
            ("Hostname", json!("")),
            ("Domainname", json!("")),
            ("User", json!("")),
            ("AttachStdin", json!(false)),
            ("AttachStdout", json!(false)),
            ("AttachStderr", json!(false)),
            ("Tty", json!(false)),
            ("OpenStdin", json!(false)),
            ("StdinOnce", json!(false)),
            ("Env", json!(null)),
            ("Cmd", json!(null)),
            ("Image", json!("")),
            ("Volumes", json!(null)),
            ("WorkingDir", json!("")),
            ("Entrypoint", json!(null)),
            ("OnBuild", json!(null)),
            ("Labels", json!({})),
        ] {
            m.entry(k).or_insert(v);
        }
    }
    let mut host_config = serde_json::to_value(&rec.host_config).unwrap_or(json!({}));
    if let Value::Object(m) = &mut host_config {
        for (k, v) in [
            ("NetworkMode", json!("bridge")),
            (
                "RestartPolicy",
                json!({"Name": "no", "MaximumRetryCount": 0}),
            ),
            ("AutoRemove", json!(false)),
            ("Privileged", json!(false)),
            ("LogConfig", json!({"Type": "json-file", "Config": {}})),
            ("Binds", json!(null)),
            ("PortBindings", json!({})),
        ] {
            m.entry(k).or_insert(v);
        }
    }
    json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.path,
        "Args": rec.args,
        "State": {
            "Status": st.status.as_str(),
            "Running": st.status.is_running(),
            "Paused": st.status == Status::Paused,
            "Restarting": st.status == Status::Restarting,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": st.pid,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": rec.image,
        "ResolvConfPath": bundle.join("resolv.conf").display().to_string(),
        "HostnamePath": bundle.join("hostname").display().to_string(),
        "HostsPath": bundle.join("hosts").display().to_string(),
        "LogPath": paths.log(&rec.id).display().to_string(),
        "Name": rec.name,
        "RestartCount": rec.restart_count,
        "Driver": driver_name(d.images.snapshots.kind()),
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config,
        "GraphDriver": {
            "Name": driver_name(d.images.snapshots.kind()),
            "Data": {"MergedDir": paths.rootfs(&rec.id).display().to_string()},
        },
        "Mounts": crate::containers::mounts::inspect(&rec),
        "Config": config,
        "NetworkSettings": crate::network::inspect::network_settings(d, &rec),
    })
}

pub async fn inspect(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    ok_json(&inspect_json(&ctx.daemon, &c))
}

/// A container's process as `ps` shows it: the command line joined by spaces.
fn command_line(rec: &ContainerRecord) -> String {
    let mut parts = vec![rec.path.clone()];
    parts.extend(rec.args.iter().cloned());
    parts.join(" ")
}

fn summary(d: &Daemon, rec: &ContainerRecord, now: i64) -> Value {
    json!({
        "Id": rec.id,
        "Names": [rec.name],
        "Image": rec.image_name(),
        "ImageID": rec.image,
        "Command": command_line(rec),
        "Created": berth_image::store::unix_nanos(Some(&rec.created)) / 1_000_000_000,
        "Ports": crate::network::inspect::port_summary(rec),
        "Labels": rec.config.labels.clone().unwrap_or_default(),
        "State": rec.state.status.as_str(),
        "Status": status_text(rec, now),
        "HostConfig": {"NetworkMode": rec.host_config.network_mode.clone().unwrap_or_else(|| "bridge".into())},
        "NetworkSettings": {"Networks": crate::network::inspect::summary_networks(d, rec)},
        "Mounts": crate::containers::mounts::inspect(rec),
        "SizeRw": null,
        "SizeRootFs": null,
    })
}

/// `GET /containers/json`.
pub async fn list(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let all = ctx.query.bool("all");
    let limit: Option<usize> = ctx
        .query
        .get("limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    let f = ctx.query.filters()?;
    f.only(&[
        "status", "name", "id", "label", "ancestor", "exited", "before", "since", "volume",
        "network", "health", "is-task", "publish", "expose",
    ])?;
    for s in f.get("status") {
        if ![
            "created",
            "restarting",
            "running",
            "removing",
            "paused",
            "exited",
            "dead",
        ]
        .contains(&s.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "invalid filter 'status={s}'"
            )));
        }
    }
    let mut recs: Vec<ContainerRecord> = d.containers.all().iter().map(|c| c.snapshot()).collect();
    recs.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    let created_of =
        |name: &str| -> Result<String, ApiError> { Ok(d.containers.get(name)?.snapshot().created) };
    let before: Vec<String> = f
        .get("before")
        .iter()
        .map(|n| created_of(n))
        .collect::<Result<_, _>>()?;
    let since: Vec<String> = f
        .get("since")
        .iter()
        .map(|n| created_of(n))
        .collect::<Result<_, _>>()?;
    // `ancestor=` names an image: match its ID (and images built on it, by parent).
    let mut ancestors: Vec<String> = Vec::new();
    for a in f.get("ancestor") {
        if let Ok(img) = d.images.resolve(a) {
            ancestors.push(img.id.to_string());
        }
    }
    let now = now_ns();
    let explicit_status = !f.get("status").is_empty() || !f.get("exited").is_empty();
    let mut out = Vec::new();
    for rec in &recs {
        if !all && !explicit_status && !rec.state.status.is_running() {
            continue;
        }
        if !f.get("status").is_empty()
            && !f
                .get("status")
                .iter()
                .any(|s| s == rec.state.status.as_str())
        {
            continue;
        }
        if !f.get("exited").is_empty()
            && (rec.state.status != Status::Exited
                || !f
                    .get("exited")
                    .iter()
                    .any(|e| e.parse::<i64>().ok() == Some(rec.state.exit_code)))
        {
            continue;
        }
        if !f.get("id").is_empty() && !f.get("id").iter().any(|p| rec.id.starts_with(p.as_str())) {
            continue;
        }
        if !f.get("name").is_empty()
            && !f
                .get("name")
                .iter()
                .any(|n| rec.short_name().contains(n.trim_start_matches('/')))
        {
            continue;
        }
        let labels: std::collections::BTreeMap<String, String> = rec
            .config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if !f.labels_match("label", &labels) {
            continue;
        }
        if !f.get("ancestor").is_empty()
            && !ancestors.contains(&rec.image)
            && !f.get("ancestor").iter().any(|a| a == rec.image_name())
        {
            continue;
        }
        if before.iter().any(|b| rec.created >= *b) || since.iter().any(|s| rec.created <= *s) {
            continue;
        }
        out.push(summary(&d, rec, now));
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
    }
    ok_json(&out)
}

/// `GET /containers/{id}/logs`.
pub async fn logs(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    let q = &ctx.query;
    if !q.bool("stdout") && !q.bool("stderr") {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let time = |k: &str| -> Result<Option<i64>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => {
                // Docker sends unix seconds with a fraction; durations and RFC 3339 work too.
                if let Ok(f) = v.parse::<f64>() {
                    return Ok(Some((f * 1e9) as i64));
                }
                Ok(Some(parse_time_filter(v)? * 1_000_000_000))
            }
        }
    };
    let tail = match q.get("tail").unwrap_or("all") {
        "all" | "" => None,
        t => Some(
            t.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid value for tail: {t}")))?
                .max(0) as usize,
        ),
    };
    let rec = c.snapshot();
    let opts = logs::Options {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        since_ns: time("since")?,
        until_ns: time("until")?,
        tail,
        timestamps: q.bool("timestamps"),
        follow: q.bool("follow"),
        raw: rec.tty(),
    };
    let path = ctx.daemon.containers.paths.log(&rec.id);
    let (tx, rx) = mpsc::channel(8);
    let cont = c.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter::new(tx);
        // Follow until the container stops (or the client leaves: writes then fail).
        let running = || {
            cont.status().is_running() && !cont.removed.load(std::sync::atomic::Ordering::SeqCst)
        };
        if let Err(e) = logs::copy(&path, &opts, &mut w, running)
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            tracing::debug!("logs stream ended: {e}");
        }
    });
    let ct = if rec.tty() {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(streaming(StatusCode::OK, ct, rx))
}

/// `POST /containers/{id}/attach`: hijacks the connection and streams the container's I/O.
pub async fn attach(mut ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let rec = c.snapshot();
    let q = &ctx.query;
    let want_stdin = q.bool("stdin");
    let request = Request::Attach {
        stdin: want_stdin,
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
    };
    let keys = parse_detach_keys(
        q.get("detachKeys")
            .filter(|k| !k.is_empty())
            .unwrap_or("ctrl-p,ctrl-q"),
    )
    .map_err(ApiError::bad_request)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    match rec.state.status {
        Status::Running | Status::Paused => {
            let sock = d.containers.paths.socket(&c.id);
            let res = shim::call(&sock, &request).await.map(|(_, s)| s);
            let _ = tx.send(res);
        }
        Status::Created | Status::Restarting => {
            c.pending_attach
                .lock()
                .unwrap()
                .push(shim::PendingAttach { request, tx });
        }
        _ => {
            return Err(ApiError::conflict(
                "You cannot attach to a stopped container, start it first",
            ));
        }
    }
    let on_upgrade = hyper::upgrade::on(&mut ctx.req);
    let tty = rec.tty();
    let opts = ProxyOpts {
        tty,
        stdin: want_stdin,
        close_stdin_on_eof: rec.config.stdin_once.unwrap_or(false),
        detach_keys: keys,
    };
    lifecycle_attach_event(&d, &c);
    tokio::spawn(async move {
        let client = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!("attach upgrade failed: {e}");
                return;
            }
        };
        match rx.await {
            Ok(Ok(shim_conn)) => {
                let ended = proxy(client, shim_conn, opts).await;
                tracing::debug!(container = %c.id, ?ended, "attach ended");
            }
            _ => drop(client),
        }
    });
    Ok(upgrade_response(tty))
}

fn lifecycle_attach_event(d: &Daemon, c: &Container) {
    d.events.publish(
        "container",
        "attach",
        &c.id,
        lifecycle::event_attrs(&c.snapshot()),
    );
}

/// `POST /containers/{id}/resize`.
pub async fn resize(ctx: Ctx, name: &str) -> ApiResult {
    let c = ctx.daemon.containers.get(name)?;
    let (h, w) = size_params(&ctx)?;
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let sock = ctx.daemon.containers.paths.socket(&c.id);
    let size = berth_runtime::spec::ConsoleSize {
        height: h,
        width: w,
    };
    shim::request(&sock, &Request::Resize { exec: None, size })
        .await
        .map_err(|e| ApiError::internal(format!("cannot resize container {}: {e}", c.id)))?;
    status_only(StatusCode::OK)
}

pub fn size_params(ctx: &Ctx) -> Result<(u16, u16), ApiError> {
    let get = |k: &str| -> Result<u16, ApiError> {
        let v = ctx.query.get(k).unwrap_or("0");
        v.parse::<u16>()
            .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v}")))
    };
    Ok((get("h")?, get("w")?))
}

/// `GET /containers/{id}/top`: the host's `ps` (with the given options), keeping the rows of the
/// container's processes, as docker does.
pub async fn top(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "container {} is not running",
            c.id
        )));
    }
    let args: Vec<String> = match ctx.query.get("ps_args").filter(|a| !a.is_empty()) {
        Some(a) => a.split_whitespace().map(str::to_string).collect(),
        None => vec!["-ef".to_string()],
    };
    let cg = lifecycle::cgroup_of(&d, &c);
    let pids = tokio::task::spawn_blocking(move || {
        berth_runtime::cgroup::Cgroup::open(&cg).and_then(|g| g.procs())
    })
    .await?
    .map_err(|e| ApiError::internal(format!("reading the container's processes: {e}")))?;
    let out = tokio::process::Command::new("ps")
        .args(&args)
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
    let mut processes = Vec::new();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) may contain spaces.
        let mut row: Vec<String> = fields
            .iter()
            .take(titles.len() - 1)
            .map(|f| f.to_string())
            .collect();
        row.push(
            fields
                .iter()
                .skip(titles.len() - 1)
                .cloned()
                .collect::<Vec<_>>()
                .join(" "),
        );
        processes.push(row);
    }
    ok_json(&json!({"Titles": titles, "Processes": processes}))
}

/// `POST /containers/prune`.
pub async fn prune(ctx: Ctx) -> ApiResult {
    let d = ctx.daemon.clone();
    let f = ctx.query.filters()?;
    f.only(&["until", "label", "label!"])?;
    let until: Vec<i64> = f
        .get("until")
        .iter()
        .map(|v| parse_time_filter(v))
        .collect::<Result<_, _>>()?;
    let mut deleted = Vec::new();
    let mut reclaimed: i64 = 0;
    for c in d.containers.all() {
        let rec = c.snapshot();
        if !lifecycle::is_stopped(&rec) {
            continue;
        }
        let created = berth_image::store::unix_nanos(Some(&rec.created)) / 1_000_000_000;
        if until.iter().any(|u| created >= *u) {
            continue;
        }
        let labels: std::collections::BTreeMap<String, String> = rec
            .config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if !f.labels_match("label", &labels) {
            continue;
        }
        if f.get("label!").iter().any(|l| match l.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(l.as_str()),
        }) {
            continue;
        }
        let id = c.id.clone();
        let d2 = d.clone();
        let size = tokio::task::spawn_blocking(move || d2.images.snapshots.usage(&id).unwrap_or(0))
            .await?;
        if lifecycle::remove(&d, &c, false, false).await.is_ok() {
            reclaimed += size as i64;
            deleted.push(c.id.clone());
        }
    }
    ok_json(
        &json!({"ContainersDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed}),
    )
}

/// Containers by image ID, for image deletes.
pub struct ContainerUsers(pub Arc<Daemon>);

impl berth_image::store::ImageUsers for ContainerUsers {
    fn user_of(&self, image: &berth_image::Digest) -> Option<(bool, String)> {
        self.0.containers.image_user(&image.to_string())
    }
}

/// Counts for `info`.
pub fn counts(d: &Daemon) -> HashMap<&'static str, usize> {
    let mut m = HashMap::from([("total", 0), ("running", 0), ("paused", 0), ("stopped", 0)]);
    for c in d.containers.all() {
        *m.get_mut("total").unwrap() += 1;
        match c.status() {
            Status::Running | Status::Restarting => *m.get_mut("running").unwrap() += 1,
            Status::Paused => *m.get_mut("paused").unwrap() += 1,
            _ => *m.get_mut("stopped").unwrap() += 1,
        }
    }
    m
}
