//! `docker exec`: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked),
//! `POST /exec/{id}/resize`, `GET /exec/{id}/json`. The container's shim runs the process.

use std::sync::{Arc, Mutex};

use berth_api::engine::ExecConfig;
use berth_runtime::protocol::Request;
use berth_runtime::spec::{Capabilities, ConsoleSize, Process};
use http::StatusCode;
use serde_json::json;

use crate::containers::record::Status;
use crate::containers::{lifecycle, new_id, shim, spec};
use crate::daemon::Daemon;
use crate::http::{ApiError, ApiResult, body_bytes, ok_json, status_only};
use crate::server::Ctx;
use crate::stream::{Ended, ProxyOpts, parse_detach_keys, proxy, upgrade_response};

/// One exec instance (kept in memory, like docker's).
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
}

#[derive(Default, Clone)]
pub struct ExecState {
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
}

fn no_such_exec(id: &str) -> ApiError {
    ApiError::not_found(format!("No such exec instance: {id}"))
}

fn get(d: &Daemon, id: &str) -> Result<Arc<Exec>, ApiError> {
    d.execs
        .lock()
        .unwrap()
        .get(id)
        .cloned()
        .ok_or_else(|| no_such_exec(id))
}

/// `POST /containers/{id}/exec`.
pub async fn create(ctx: Ctx, name: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let c = d.containers.get(name)?;
    let bytes = body_bytes(ctx.req.into_body(), 1 << 20).await?;
    let cfg: ExecConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid exec config: {e}")))?;
    if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    match c.status() {
        Status::Running => {}
        Status::Paused => {
            return Err(ApiError::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        Status::Restarting => {
            return Err(ApiError::conflict(format!(
                "Container {} is restarting, wait until the container is running",
                c.id
            )));
        }
        _ => {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
    }
    if let Some(k) = cfg.detach_keys.as_ref().filter(|k| !k.is_empty()) {
        parse_detach_keys(k).map_err(ApiError::bad_request)?;
    }
    let id = new_id();
    let e = Arc::new(Exec {
        id: id.clone(),
        container: c.id.clone(),
        config: cfg,
        state: Mutex::new(ExecState::default()),
    });
    d.execs.lock().unwrap().insert(id.clone(), e);
    let mut attrs = lifecycle::event_attrs(&c.snapshot());
    attrs.insert("execID".into(), id.clone());
    d.events.publish("container", "exec_create", &c.id, attrs);
    Ok(crate::http::json(StatusCode::CREATED, &json!({"Id": id})))
}

/// The process to run, from the exec config and the container's settings.
fn process(d: &Daemon, e: &Exec, console: Option<ConsoleSize>) -> Result<Process, ApiError> {
    let c = d.containers.get(&e.container)?;
    let rec = c.snapshot();
    let rootfs = d.containers.paths.rootfs(&rec.id);
    let user_spec = e
        .config
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .or(rec.config.user.clone())
        .unwrap_or_default();
    let user = berth_runtime::user::resolve(&rootfs, &user_spec)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let hostname = rec.config.hostname.clone().unwrap_or_default();
    let tty = e.config.tty.unwrap_or(false);
    let mut env = spec::environment(
        rec.config.env.as_deref().unwrap_or(&[]),
        e.config.env.as_deref().unwrap_or(&[]),
        &hostname,
        tty,
    );
    let user = spec::process_user(&user, &mut env);
    let hc = &rec.host_config;
    let caps = spec::capabilities(
        hc.cap_add.as_deref().unwrap_or(&[]),
        hc.cap_drop.as_deref().unwrap_or(&[]),
        hc.privileged.unwrap_or(false) || e.config.privileged.unwrap_or(false),
    )?;
    let cwd = e
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or(rec.config.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    Ok(Process {
        terminal: tty,
        console_size: console,
        user,
        args: e.config.cmd.clone().unwrap_or_default(),
        env,
        cwd,
        capabilities: Some(Capabilities {
            bounding: caps.clone(),
            effective: caps.clone(),
            permitted: caps,
            inheritable: Vec::new(),
            ambient: Vec::new(),
        }),
        rlimits: Vec::new(),
        no_new_privileges: false,
        oom_score_adj: None,
    })
}

/// `POST /exec/{id}/start`.
pub async fn start(mut ctx: Ctx, id: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let e = get(&d, id)?;
    // Take the upgrade handle before the body is consumed.
    let on_upgrade = hyper::upgrade::on(&mut ctx.req);
    let bytes = body_bytes(ctx.req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body: serde_json::Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes).unwrap_or(json!({}))
    };
    let detach = body
        .get("Detach")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let console = body
        .get("ConsoleSize")
        .and_then(|v| v.as_array())
        .filter(|a| a.len() == 2)
        .and_then(|a| {
            Some(ConsoleSize {
                height: a[0].as_u64()? as u16,
                width: a[1].as_u64()? as u16,
            })
        })
        .or_else(|| {
            e.config
                .console_size
                .as_ref()
                .filter(|v| v.len() == 2)
                .map(|v| ConsoleSize {
                    height: v[0] as u16,
                    width: v[1] as u16,
                })
        });
    {
        let mut st = e.state.lock().unwrap();
        if st.started {
            return Err(ApiError::conflict(format!(
                "Error: Exec command {id} has already run"
            )));
        }
        st.started = true;
    }
    let c = d.containers.get(&e.container)?;
    match c.status() {
        Status::Running => {}
        Status::Paused => {
            return Err(ApiError::conflict(format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            )));
        }
        _ => {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
    }
    let d2 = d.clone();
    let e2 = e.clone();
    let proc_ = tokio::task::spawn_blocking(move || process(&d2, &e2, console)).await??;
    let sock = d.containers.paths.socket(&c.id);
    let stdin = e.config.attach_stdin.unwrap_or(false) && !detach;
    let (reply, conn) = shim::call(
        &sock,
        &Request::Exec {
            id: e.id.clone(),
            process: Box::new(proc_),
            stdin,
        },
    )
    .await
    .map_err(|err| ApiError::internal(format!("cannot exec in container {}: {err}", c.id)))?;
    if let Some(msg) = reply.error {
        let code = reply.exit_code.unwrap_or(126) as i64;
        let mut st = e.state.lock().unwrap();
        st.exit_code = Some(code);
        let status = if code == 126 || code == 127 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return Err(ApiError::new(
            status,
            format!("OCI runtime exec failed: {msg}"),
        ));
    }
    {
        let mut st = e.state.lock().unwrap();
        st.running = true;
        st.pid = reply.pid.unwrap_or(0) as i64;
    }
    let mut attrs = lifecycle::event_attrs(&c.snapshot());
    attrs.insert("execID".into(), e.id.clone());
    d.events
        .publish("container", "exec_start", &c.id, attrs.clone());
    let tty = e.config.tty.unwrap_or(false);
    if detach {
        // Nobody reads the output; drain it to learn the exit code.
        tokio::spawn(async move {
            let mut conn = conn;
            let mut code = None;
            while let Ok(Some((kind, data))) = shim::read_frame(&mut conn).await {
                if kind == berth_runtime::protocol::FRAME_EXIT && data.len() == 4 {
                    code = Some(i32::from_be_bytes([data[0], data[1], data[2], data[3]]));
                }
            }
            finish(&d, &e, code, attrs);
        });
        return status_only(StatusCode::OK);
    }
    let keys = parse_detach_keys(
        e.config
            .detach_keys
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or("ctrl-p,ctrl-q"),
    )
    .map_err(ApiError::bad_request)?;
    let opts = ProxyOpts {
        tty,
        stdin,
        close_stdin_on_eof: true,
        detach_keys: keys,
    };
    tokio::spawn(async move {
        let Ok(client) = on_upgrade.await else { return };
        let ended = proxy(client, conn, opts).await;
        let code = match ended {
            Ended::Closed(c) => c,
            _ => None,
        };
        finish(&d, &e, code, attrs);
    });
    Ok(upgrade_response(tty))
}

fn finish(
    d: &Daemon,
    e: &Exec,
    code: Option<i32>,
    mut attrs: std::collections::BTreeMap<String, String>,
) {
    let code = code.unwrap_or(-1) as i64;
    {
        let mut st = e.state.lock().unwrap();
        st.running = false;
        st.exit_code = Some(code);
    }
    attrs.insert("exitCode".into(), code.to_string());
    d.events
        .publish("container", "exec_die", &e.container, attrs);
}

/// `POST /exec/{id}/resize`.
pub async fn resize(ctx: Ctx, id: &str) -> ApiResult {
    let d = ctx.daemon.clone();
    let e = get(&d, id)?;
    let (h, w) = crate::handlers::containers::size_params(&ctx)?;
    let sock = d.containers.paths.socket(&e.container);
    shim::request(
        &sock,
        &Request::Resize {
            exec: Some(e.id.clone()),
            size: ConsoleSize {
                height: h,
                width: w,
            },
        },
    )
    .await
    .map_err(|err| ApiError::internal(format!("cannot resize exec {id}: {err}")))?;
    status_only(StatusCode::OK)
}

/// `GET /exec/{id}/json`.
pub async fn inspect(ctx: Ctx, id: &str) -> ApiResult {
    let e = get(&ctx.daemon, id)?;
    let st = e.state.lock().unwrap().clone();
    let cmd = e.config.cmd.clone().unwrap_or_default();
    ok_json(&json!({
        "ID": e.id,
        "Running": st.running,
        "ExitCode": st.exit_code,
        "ProcessConfig": {
            "tty": e.config.tty.unwrap_or(false),
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.get(1..).map(|a| a.to_vec()).unwrap_or_default(),
            "privileged": e.config.privileged.unwrap_or(false),
            "user": e.config.user.clone().unwrap_or_default(),
        },
        "OpenStdin": e.config.attach_stdin.unwrap_or(false),
        "OpenStderr": e.config.attach_stderr.unwrap_or(false),
        "OpenStdout": e.config.attach_stdout.unwrap_or(false),
        "CanRemove": false,
        "ContainerID": e.container,
        "DetachKeys": e.config.detach_keys.clone().unwrap_or_default(),
        "Pid": st.pid,
    }))
}
