//! The container lifecycle: create, start (through a shim), stop, kill, wait, remove,
//! pause, restart policies, and reconnecting to running containers when berthd starts.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use berth_api::engine::{ContainerConfig, ContainerCreateBody, HostConfig, RestartPolicyNameEnum};
use berth_runtime::protocol::{ExitStatus, Request, ShimConfig};
use http::StatusCode;

use super::record::{ContainerRecord, State, Status, ZERO_TIME};
use super::{Container, mounts, new_id, now_rfc3339, random_name, shim, spec, valid_name};
use crate::daemon::Daemon;
use crate::http::ApiError;

fn internal(context: &str) -> impl FnOnce(std::io::Error) -> ApiError + '_ {
    move |e| ApiError::internal(format!("{context}: {e}"))
}

/// Attributes docker attaches to container events.
pub fn event_attrs(rec: &ContainerRecord) -> BTreeMap<String, String> {
    let mut a: BTreeMap<String, String> = rec
        .config
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    a.insert("image".into(), rec.image_name().to_string());
    a.insert("name".into(), rec.short_name().to_string());
    a
}

fn publish(d: &Daemon, c: &Container, action: &str, extra: &[(&str, String)]) {
    let rec = c.snapshot();
    let mut attrs = event_attrs(&rec);
    for (k, v) in extra {
        attrs.insert(k.to_string(), v.clone());
    }
    d.events.publish("container", action, &c.id, attrs);
}

/// Parses a signal as docker accepts it: `SIGTERM`, `TERM`, `15`.
pub fn parse_signal(s: &str) -> Result<i32, ApiError> {
    let bad = || ApiError::bad_request(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let name = s.trim().to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => {
            if let Some(rt) = name.strip_prefix("RTMIN+") {
                return rt
                    .parse::<i32>()
                    .ok()
                    .map(|n| 34 + n)
                    .filter(|n| *n <= 64)
                    .ok_or_else(bad);
            }
            return Err(bad());
        }
    };
    Ok(n)
}

/// Validates a restart policy as docker does.
pub fn check_restart_policy(hc: &HostConfig) -> Result<(), ApiError> {
    let Some(p) = &hc.restart_policy else {
        return Ok(());
    };
    let retries = p.maximum_retry_count.unwrap_or(0);
    match p.name {
        Some(RestartPolicyNameEnum::ON_FAILURE) => {
            if retries < 0 {
                return Err(ApiError::bad_request(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        Some(RestartPolicyNameEnum::ALWAYS) | Some(RestartPolicyNameEnum::UNLESS_STOPPED) => {
            if retries != 0 {
                return Err(ApiError::bad_request(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
            }
            if hc.auto_remove.unwrap_or(false) {
                return Err(ApiError::bad_request(
                    "conflicting options: cannot specify both --restart and --rm",
                ));
            }
        }
        _ => {
            if retries != 0 {
                return Err(ApiError::bad_request(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                ));
            }
        }
    }
    Ok(())
}

/// `POST /containers/create`.
pub async fn create(
    d: &Arc<Daemon>,
    name: Option<String>,
    mut body: ContainerCreateBody,
) -> Result<(String, Vec<String>), ApiError> {
    let image_name = body.image.clone().unwrap_or_default();
    if image_name.is_empty() {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    }
    crate::network::sandbox::check_create(d, &mut body)?;
    let named = name.as_ref().is_some_and(|n| !n.is_empty());
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => {
            if !valid_name(&n) {
                return Err(ApiError::bad_request(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            format!("/{}", n.trim_start_matches('/'))
        }
        None => format!("/{}", random_name()),
    };
    let mut hc = body.host_config.clone().unwrap_or_default();
    check_restart_policy(&hc)?;
    check_cgroup_parent(&hc).map_err(ApiError::bad_request)?;
    let warnings = super::resources::validate(&mut hc)?;
    super::spec::capabilities(
        hc.cap_add.as_deref().unwrap_or(&[]),
        hc.cap_drop.as_deref().unwrap_or(&[]),
        hc.privileged.unwrap_or(false),
    )?;
    super::namespaces::check(
        d,
        &hc,
        body.hostname.as_deref().is_some_and(|h| !h.is_empty()),
    )?;
    super::spec::seccomp_profile(
        hc.security_opt.as_deref().unwrap_or(&[]),
        hc.privileged.unwrap_or(false),
    )?;
    crate::userns::check(d, &hc)?;
    if let Some(w) = body.working_dir.as_deref().filter(|w| !w.is_empty())
        && !w.starts_with('/')
    {
        return Err(ApiError::bad_request(format!(
            "the working directory '{w}' is invalid, it needs to be an absolute path"
        )));
    }
    let d2 = d.clone();
    let lookup = image_name.clone();
    let img = tokio::task::spawn_blocking(move || d2.images.resolve(&lookup))
        .await?
        .map_err(|e| match e {
            berth_image::Error::NotFound(_) => {
                ApiError::not_found(format!("No such image: {image_name}"))
            }
            other => other.into(),
        })?;
    let d2 = d.clone();
    let img_id = img.id.clone();
    let image_cfg = tokio::task::spawn_blocking(move || d2.images.config(&img_id)).await??;
    let run = image_cfg.config.clone().unwrap_or_default();

    // The container's config: the request over the image's defaults, as docker merges them.
    let mut config = ContainerConfig {
        hostname: body.hostname.clone(),
        domainname: body.domainname.clone(),
        user: body
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or(run.user.clone()),
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        exposed_ports: body.exposed_ports.clone(),
        tty: body.tty,
        open_stdin: body.open_stdin,
        stdin_once: body.stdin_once,
        env: body.env.clone(),
        cmd: body.cmd.clone(),
        healthcheck: body.healthcheck.clone(),
        args_escaped: body.args_escaped,
        image: Some(image_name.clone()),
        volumes: body.volumes.clone(),
        working_dir: body
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or(run.working_dir.clone()),
        entrypoint: body.entrypoint.clone(),
        network_disabled: body.network_disabled,
        on_build: body.on_build.clone(),
        labels: body.labels.clone(),
        stop_signal: body.stop_signal.clone().or(run.stop_signal.clone()),
        stop_timeout: body.stop_timeout,
        shell: body.shell.clone(),
    };
    // An explicit entrypoint resets the image's CMD, as docker does.
    let entry_given = body.entrypoint.is_some();
    let entrypoint: Vec<String> = match &body.entrypoint {
        Some(e) => e.clone(),
        None => run.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = match &body.cmd {
        Some(c) if !c.is_empty() => c.clone(),
        _ if entry_given => Vec::new(),
        _ => run.cmd.clone().unwrap_or_default(),
    };
    if config.cmd.is_none() && !entry_given {
        config.cmd = run.cmd.clone();
    }
    if config.entrypoint.is_none() {
        config.entrypoint = run.entrypoint.clone();
    }
    let mut env: Vec<String> = run.env.clone().unwrap_or_default();
    for e in body.env.clone().unwrap_or_default() {
        let key = e
            .split_once('=')
            .map(|(k, _)| k.to_string())
            .unwrap_or(e.clone());
        env.retain(|x| x.split_once('=').map(|(k, _)| k) != Some(key.as_str()));
        env.push(e);
    }
    config.env = Some(env);
    let mut labels = run.labels.clone().unwrap_or_default();
    labels.extend(body.labels.clone().unwrap_or_default());
    config.labels = Some(labels.into_iter().collect());
    if config.exposed_ports.is_none() {
        config.exposed_ports = run
            .exposed_ports
            .as_ref()
            .map(|m| m.keys().cloned().collect());
    }
    // The image's VOLUMEs always add to the container's (docker merges them).
    let mut vols: Vec<String> = config.volumes.clone().unwrap_or_default();
    for v in run
        .volumes
        .as_ref()
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        if !vols.contains(&v) {
            vols.push(v);
        }
    }
    config.volumes = if vols.is_empty() { None } else { Some(vols) };
    let mut argv: Vec<String> = entrypoint;
    argv.extend(cmd);
    if argv.is_empty() {
        return Err(ApiError::bad_request("no command specified"));
    }
    // Mounts: volumes are made (and bind sources checked) before the container is recorded.
    let d2 = d.clone();
    let hc2 = hc.clone();
    let image_volumes: Vec<String> = config.volumes.clone().unwrap_or_default();
    let mounts =
        tokio::task::spawn_blocking(move || mounts::resolve(&d2, &hc2, &image_volumes)).await??;
    let id = new_id();
    if config.hostname.as_deref().unwrap_or("").is_empty() {
        config.hostname = Some(id[..12].to_string());
    }
    let rec = ContainerRecord {
        id: id.clone(),
        name,
        created: now_rfc3339(),
        image: img.id.to_string(),
        config,
        host_config: hc,
        networking: body
            .networking_config
            .as_ref()
            .and_then(|n| serde_json::to_value(n).ok()),
        state: State::default(),
        restart_count: 0,
        path: argv[0].clone(),
        args: argv[1..].to_vec(),
        manually_stopped: false,
        has_been_started: false,
        mounts,
        network: None,
    };
    // The writable layer first, so a recorded container always has one.
    let parent = img.top_chain_id();
    let d2 = d.clone();
    let key = id.clone();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(d2.containers.paths.bundle(&key))?;
        d2.images
            .snapshots
            .prepare(&key, parent.as_ref().map(|p| p.hex()))
            .map_err(std::io::Error::other)
    })
    .await?
    .map_err(internal("preparing the container's filesystem"))?;
    let rec_copy = rec.clone();
    let c = match d.containers.insert(rec, named) {
        Ok(c) => c,
        Err(e) => {
            let d2 = d.clone();
            let key = id.clone();
            let _ = tokio::task::spawn_blocking(move || {
                discard_files(&d2, &key);
                mounts::remove_anonymous(&d2, &rec_copy);
            })
            .await;
            return Err(e);
        }
    };
    publish(d, &c, "create", &[]);
    Ok((id, warnings))
}

/// Removes a container's snapshot, bundle and state directory.
fn discard_files(d: &Daemon, id: &str) {
    let rootfs = d.containers.paths.rootfs(id);
    if is_mounted(&rootfs) {
        let _ = d.images.snapshots.unmount(&rootfs);
    }
    let _ = d.images.snapshots.remove(id);
    let _ = std::fs::remove_dir_all(d.containers.paths.bundle(id));
    let _ = std::fs::remove_dir_all(d.containers.paths.state(id));
}

pub fn is_mounted(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.display().to_string();
    info.lines()
        .any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
}

fn atomic_write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What `start` found.
pub enum Started {
    Now,
    AlreadyRunning,
}

/// `POST /containers/{id}/start`.
pub async fn start(d: &Arc<Daemon>, c: &Arc<Container>) -> Result<Started, ApiError> {
    cancel_pending_restart(c);
    let res = {
        let _op = c.op.lock().await;
        start_locked(d, c).await
    };
    // As docker: a `--rm` container that could not start is removed (the CLI waits for it).
    if res.is_err() && c.snapshot().host_config.auto_remove.unwrap_or(false) {
        let _ = remove(d, c, true, true).await;
    }
    res
}

async fn start_locked(d: &Arc<Daemon>, c: &Arc<Container>) -> Result<Started, ApiError> {
    let rec = c.snapshot();
    match rec.state.status {
        Status::Running | Status::Restarting => return Ok(Started::AlreadyRunning),
        Status::Paused => {
            return Err(ApiError::conflict(
                "cannot start a paused container, try unpause instead",
            ));
        }
        Status::Removing | Status::Dead => {
            return Err(ApiError::conflict(format!(
                "container {} is marked for removal and cannot be started",
                c.id
            )));
        }
        _ => {}
    }
    let t0 = std::time::Instant::now();
    let d2 = d.clone();
    let mut rec2 = rec.clone();
    let c2 = c.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        // The network sandbox first: the spec names its namespace, /etc files its addresses.
        crate::network::sandbox::setup(&d2, &mut rec2)?;
        c2.rec.lock().unwrap().network = rec2.network.clone();
        prepare_bundle(&d2, &rec2)
    })
    .await?;
    let t_prepared = t0.elapsed();
    let sock = d.containers.paths.socket(&c.id);
    // A network that is gone is docker's 404 at start.
    let mut not_found = false;
    let ready = match prepared {
        Ok(()) => {
            let bin = d.containers.paths.shim_bin.clone();
            let bundle = d.containers.paths.bundle(&c.id);
            tokio::task::spawn_blocking(move || shim::launch(&bin, &bundle)).await?
        }
        Err(e) => {
            not_found = e.status == StatusCode::NOT_FOUND;
            Err(std::io::Error::other(e.message))
        }
    };
    let failure = match ready {
        // Network set-up errors read as docker's (no task was involved).
        Err(e) if not_found || e.to_string().starts_with(crate::network::SETUP_FAILED) => {
            Some((e.to_string(), 128))
        }
        Err(e) => Some((format!("failed to create task for container: {e}"), 128)),
        Ok(r) if r.error.is_some() => Some((
            format!(
                "failed to create task for container: {}",
                r.error.unwrap_or_default()
            ),
            r.exit_code.unwrap_or(128),
        )),
        Ok(r) => {
            let t_ready = t0.elapsed();
            // Attachers that were waiting get their streams before the process runs.
            let pending: Vec<shim::PendingAttach> =
                std::mem::take(&mut *c.pending_attach.lock().unwrap());
            for p in pending {
                let res = shim::call(&sock, &p.request).await.map(|(_, s)| s);
                let _ = p.tx.send(res);
            }
            // The waiter is registered before the process runs, so even an instant exit is
            // reported on this connection.
            let waiter = shim::send(&sock, &Request::Wait).await;
            match shim::call(&sock, &Request::Start).await {
                Ok((reply, _)) if reply.error.is_none() => {
                    {
                        let mut g = c.rec.lock().unwrap();
                        g.state = State {
                            status: Status::Running,
                            pid: r.init_pid.unwrap_or(0) as i64,
                            exit_code: 0,
                            error: String::new(),
                            oom_killed: false,
                            started_at: now_rfc3339(),
                            finished_at: g.state.finished_at.clone(),
                            shim_pid: r.shim_pid.unwrap_or(0) as i64,
                        };
                        g.has_been_started = true;
                        g.manually_stopped = false;
                    }
                    d.containers.save(c)?;
                    publish(d, c, "start", &[]);
                    spawn_monitor(d.clone(), c.clone(), waiter.ok());
                    tracing::debug!(
                        container = %c.id,
                        prepare_ms = t_prepared.as_secs_f64() * 1e3,
                        shim_ready_ms = t_ready.as_secs_f64() * 1e3,
                        started_ms = t0.elapsed().as_secs_f64() * 1e3,
                        "started"
                    );
                    None
                }
                Ok((reply, _)) => Some((
                    format!(
                        "failed to create task for container: {}",
                        reply.error.unwrap_or_default()
                    ),
                    reply.exit_code.unwrap_or(128),
                )),
                Err(e) => Some((format!("failed to start container: {e}"), 128)),
            }
        }
    };
    if let Some((msg, code)) = failure {
        // Nothing runs: leave the container created, with docker's exit code and error.
        {
            let mut g = c.rec.lock().unwrap();
            g.state.exit_code = code as i64;
            g.state.error = msg.clone();
            g.state.status = if g.has_been_started {
                Status::Exited
            } else {
                Status::Created
            };
        }
        d.containers.save(c)?;
        let d2 = d.clone();
        let id = c.id.clone();
        let _ = tokio::task::spawn_blocking(move || cleanup_after_exit(&d2, &id)).await;
        // Attachers still waiting will never get a stream.
        c.pending_attach.lock().unwrap().clear();
        c.exits.fetch_add(1, Ordering::SeqCst);
        c.notify();
        let status = if not_found {
            StatusCode::NOT_FOUND
        } else if code == 126 || code == 127 {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return Err(ApiError::new(status, msg));
    }
    Ok(Started::Now)
}

/// Mounts the rootfs and writes config.json, shim.json and the /etc files. Blocking.
fn prepare_bundle(d: &Daemon, rec: &ContainerRecord) -> Result<(), ApiError> {
    let paths = &d.containers.paths;
    let bundle = paths.bundle(&rec.id);
    let rootfs = paths.rootfs(&rec.id);
    std::fs::create_dir_all(&rootfs).map_err(internal("creating the rootfs mount point"))?;
    if !is_mounted(&rootfs) {
        if crate::userns::applies(d, &rec.host_config) {
            crate::userns::mount_rootfs(d, rec, &rootfs)?;
        } else {
            d.images.snapshots.mount(&rec.id, &rootfs).map_err(|e| {
                ApiError::internal(format!("mounting the container's filesystem: {e}"))
            })?;
        }
    }
    let result = (|| -> Result<(), ApiError> {
        let user = berth_runtime::user::resolve(&rootfs, rec.config.user.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let hostname = rec
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| rec.id[..12].to_string());
        let hc = &rec.host_config;
        let host_net =
            hc.network_mode.as_deref() == Some("host") || hc.uts_mode.as_deref() == Some("host");
        let hostname = if host_net {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        } else {
            hostname
        };
        let (hosts, resolv) = crate::network::sandbox::etc_files(d, rec, &hostname);
        spec::write_etc_files(&bundle, &hostname, &hosts, &resolv)
            .map_err(internal("writing /etc files"))?;
        let mut env = spec::environment(
            &[],
            rec.config.env.as_deref().unwrap_or(&[]),
            &hostname,
            rec.tty(),
        );
        let user = spec::process_user(&user, &mut env);
        let cgroups_path = cgroup_path(&paths.cgroup_parent, rec);
        let volumes = mounts::prepare(d, rec, &rootfs)?;
        let mut s = spec::build(
            rec,
            spec::SpecInputs {
                rootfs: &rootfs,
                bundle: &bundle,
                user,
                env,
                hostname,
                cgroups_path,
                mounts: volumes,
                shared: super::namespaces::resolve(d, hc)?,
            },
        )?;
        crate::userns::apply_spec(d, rec, &mut s);
        crate::userns::chown_files(d, rec, &bundle, &s)?;
        atomic_write(
            &bundle.join("config.json"),
            &serde_json::to_vec_pretty(&s).expect("spec serializes"),
        )
        .map_err(internal("writing config.json"))?;
        let state = paths.state(&rec.id);
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).map_err(internal("creating the state directory"))?;
        let (max_size, max_files) = log_options(&rec.host_config)?;
        let sc = ShimConfig {
            id: rec.id.clone(),
            state_dir: state.display().to_string(),
            log_path: paths.log(&rec.id).display().to_string(),
            log_max_size: max_size,
            log_max_files: max_files,
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            runtime_root: None,
        };
        atomic_write(
            &bundle.join("shim.json"),
            &serde_json::to_vec(&sc).expect("serializes"),
        )
        .map_err(internal("writing shim.json"))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = d.images.snapshots.unmount(&rootfs);
    }
    result
}

/// `--log-opt max-size=10m max-file=3` for the json-file driver.
fn log_options(hc: &HostConfig) -> Result<(u64, u32), ApiError> {
    let Some(lc) = &hc.log_config else {
        return Ok((0, 1));
    };
    if let Some(t) = lc.typ.as_deref()
        && !t.is_empty()
        && t != "json-file"
    {
        return Err(ApiError::bad_request(format!(
            "logger: no log driver named '{t}' is registered (berth has json-file)"
        )));
    }
    let opts = lc.config.clone().unwrap_or_default();
    let size = match opts.get("max-size") {
        Some(s) => parse_size(s)
            .ok_or_else(|| ApiError::bad_request(format!("invalid value for max-size: {s}")))?,
        None => 0,
    };
    let files = match opts.get("max-file") {
        Some(f) => f
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_request(format!("invalid value for max-file: {f}")))?,
        None => 1,
    };
    if files > 1 && size == 0 {
        return Err(ApiError::bad_request(
            "max-file cannot be set without max-size",
        ));
    }
    for k in opts.keys() {
        if ![
            "max-size",
            "max-file",
            "compress",
            "labels",
            "env",
            "env-regex",
            "tag",
            "mode",
            "max-buffer-size",
        ]
        .contains(&k.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "unknown log opt '{k}' for json-file log driver"
            )));
        }
    }
    Ok((size, files))
}

/// go-units RAMInBytes-style sizes: `10m`, `1g`, `512k`, `100`.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits: String = s
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = s[digits.len()..].trim_end_matches('b');
    let n: f64 = digits.parse().ok()?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// Waits for the container's exit on `waiter` (a sent `Wait`), or on a new connection.
fn spawn_monitor(d: Arc<Daemon>, c: Arc<Container>, waiter: Option<tokio::net::UnixStream>) {
    tokio::spawn(async move {
        let sock = d.containers.paths.socket(&c.id);
        let reply = match waiter {
            Some(mut conn) => shim::reply(&mut conn).await,
            None => shim::request(&sock, &Request::Wait).await,
        };
        let exit = match reply {
            Ok(r) => r.exit,
            Err(e) => {
                tracing::warn!(container = %c.id, "lost the shim: {e}");
                None
            }
        };
        let exit = exit
            .or_else(|| read_exit_file(&d, &c.id))
            .unwrap_or_else(|| ExitStatus {
                exit_code: 255,
                signal: None,
                oom_killed: false,
                finished_at: now_rfc3339(),
            });
        on_exit(&d, &c, exit).await;
    });
}

fn read_exit_file(d: &Daemon, id: &str) -> Option<ExitStatus> {
    let p = d.containers.paths.state(id).join("exit.json");
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

/// Undoes what start set up, once the init is gone. Blocking.
fn cleanup_after_exit(d: &Daemon, id: &str) {
    if let Ok(c) = d.containers.get(id) {
        mounts::release(d, &c.snapshot());
        let sandbox = c.rec.lock().unwrap().network.take();
        crate::network::sandbox::teardown(d, id, sandbox);
    }
    let rootfs = d.containers.paths.rootfs(id);
    if is_mounted(&rootfs)
        && let Err(e) = d.images.snapshots.unmount(&rootfs)
    {
        tracing::warn!(container = %id, "unmounting rootfs: {e}");
    }
    let cgroup = match d.containers.get(id) {
        Ok(c) => cgroup_of(d, &c),
        Err(_) => format!(
            "{}/{id}",
            d.containers.paths.cgroup_parent.trim_end_matches('/')
        ),
    };
    if let Err(e) = berth_runtime::cgroup::Cgroup::remove_path(&cgroup) {
        tracing::warn!(container = %id, "removing cgroup {cgroup}: {e}");
    }
    let _ = std::fs::remove_dir_all(d.containers.paths.state(id));
}

/// Records an exit, then applies `--rm` or the restart policy.
async fn on_exit(d: &Arc<Daemon>, c: &Arc<Container>, exit: ExitStatus) {
    let started_at;
    {
        let mut g = c.rec.lock().unwrap();
        started_at = g.state.started_at.clone();
        g.state.status = Status::Exited;
        g.state.exit_code = exit.exit_code as i64;
        g.state.oom_killed = exit.oom_killed;
        g.state.finished_at = exit.finished_at.clone();
        g.state.pid = 0;
        g.state.shim_pid = 0;
    }
    let d2 = d.clone();
    let id = c.id.clone();
    let _ = tokio::task::spawn_blocking(move || cleanup_after_exit(&d2, &id)).await;
    if let Err(e) = d.containers.save(c) {
        tracing::error!(container = %c.id, "recording the exit: {}", e.message);
    }
    if exit.oom_killed {
        publish(d, c, "oom", &[]);
    }
    publish(d, c, "die", &[("exitCode", exit.exit_code.to_string())]);
    c.exits.fetch_add(1, Ordering::SeqCst);
    c.notify();

    let rec = c.snapshot();
    if should_restart(&rec, exit.exit_code) {
        let ran = unix_nanos(&exit.finished_at) - unix_nanos(&started_at);
        schedule_restart(d.clone(), c.clone(), ran);
        return;
    }
    if rec.host_config.auto_remove.unwrap_or(false)
        && let Err(e) = remove(d, c, true, true).await
    {
        tracing::warn!(container = %c.id, "auto-remove failed: {}", e.message);
    }
}

fn unix_nanos(t: &str) -> i64 {
    berth_image::store::unix_nanos(Some(t))
}

fn should_restart(rec: &ContainerRecord, exit_code: i32) -> bool {
    if rec.manually_stopped {
        return false;
    }
    let Some(p) = &rec.host_config.restart_policy else {
        return false;
    };
    match p.name {
        Some(RestartPolicyNameEnum::ALWAYS) | Some(RestartPolicyNameEnum::UNLESS_STOPPED) => true,
        Some(RestartPolicyNameEnum::ON_FAILURE) => {
            let max = p.maximum_retry_count.unwrap_or(0);
            exit_code != 0 && (max == 0 || rec.restart_count < max)
        }
        _ => false,
    }
}

fn cancel_pending_restart(c: &Container) {
    if let Some(tx) = c.restart_cancel.lock().unwrap().take() {
        let _ = tx.send(());
    }
}

/// docker's back-off: 100 ms doubling per consecutive restart, at most a minute; a container
/// that ran 10 s or more starts over at 100 ms.
fn backoff(restart_count: i64, ran_ns: i64) -> Duration {
    if ran_ns >= 10_000_000_000 {
        return Duration::from_millis(100);
    }
    let exp = restart_count.clamp(0, 10) as u32;
    Duration::from_millis((100u64 << exp).min(60_000))
}

fn schedule_restart(d: Arc<Daemon>, c: Arc<Container>, ran_ns: i64) {
    let delay = {
        let mut g = c.rec.lock().unwrap();
        g.state.status = Status::Restarting;
        let delay = backoff(g.restart_count, ran_ns);
        g.restart_count += 1;
        delay
    };
    let _ = d.containers.save(&c);
    let (tx, rx) = tokio::sync::oneshot::channel();
    *c.restart_cancel.lock().unwrap() = Some(tx);
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = rx => {
                // A user stop or start took over; settle the state if still restarting.
                let mut changed = false;
                {
                    let mut g = c.rec.lock().unwrap();
                    if g.state.status == Status::Restarting {
                        g.state.status = Status::Exited;
                        changed = true;
                    }
                }
                if changed {
                    let _ = d.containers.save(&c);
                }
                return;
            }
        }
        c.restart_cancel.lock().unwrap().take();
        let _op = c.op.lock().await;
        if c.removed.load(Ordering::SeqCst) || c.status() != Status::Restarting {
            return;
        }
        c.rec.lock().unwrap().state.status = Status::Exited;
        match start_locked(&d, &c).await {
            Ok(_) => publish(&d, &c, "restart", &[]),
            Err(e) => tracing::warn!(container = %c.id, "restart failed: {}", e.message),
        }
    });
}

/// Sends a signal to the init through the shim.
async fn signal(d: &Daemon, c: &Container, sig: i32) -> Result<(), ApiError> {
    let sock = d.containers.paths.socket(&c.id);
    shim::request(
        &sock,
        &Request::Signal {
            signal: sig,
            all: false,
        },
    )
    .await
    .map_err(|e| ApiError::internal(format!("cannot kill container {}: {e}", c.id)))?;
    Ok(())
}

/// Waits until the exit counter passes `seen`, at most `timeout`.
async fn wait_exit(c: &Container, seen: u64, timeout: Duration) -> bool {
    let mut rx = c.changed.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if c.exits.load(Ordering::SeqCst) > seen || !c.status().is_running() {
            return true;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return false,
            Err(_) => return c.exits.load(Ordering::SeqCst) > seen,
        }
    }
}

/// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
/// Returns false if the container was not running (docker answers 304).
pub async fn stop(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    timeout: Option<i64>,
    sig: Option<&str>,
) -> Result<bool, ApiError> {
    cancel_pending_restart(c);
    let _op = c.op.lock().await;
    stop_locked(d, c, timeout, sig).await
}

async fn stop_locked(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    timeout: Option<i64>,
    sig: Option<&str>,
) -> Result<bool, ApiError> {
    let rec = c.snapshot();
    if !rec.state.status.is_running() {
        if rec.state.status == Status::Restarting || rec.state.status == Status::Exited {
            c.rec.lock().unwrap().manually_stopped = true;
            d.containers.save(c)?;
        }
        return Ok(false);
    }
    c.rec.lock().unwrap().manually_stopped = true;
    d.containers.save(c)?;
    let sig_name = sig
        .map(str::to_string)
        .or(rec.config.stop_signal.clone())
        .unwrap_or_else(|| "SIGTERM".into());
    let sig = parse_signal(&sig_name)?;
    let timeout = timeout.or(rec.config.stop_timeout).unwrap_or(10);
    let seen = c.exits.load(Ordering::SeqCst);
    if rec.state.status == Status::Paused {
        // A frozen process cannot act on the signal; thaw it after signalling.
        let _ = signal(d, c, sig).await;
        let _ = unpause_locked(d, c).await;
    } else {
        let _ = signal(d, c, sig).await;
    }
    let graceful = if timeout < 0 {
        wait_exit(c, seen, Duration::from_secs(u64::MAX / 4)).await
    } else {
        wait_exit(c, seen, Duration::from_secs(timeout as u64)).await
    };
    if !graceful {
        let _ = signal(d, c, 9).await;
        if !wait_exit(c, seen, Duration::from_secs(30)).await {
            return Err(ApiError::internal(format!(
                "container {} did not stop after SIGKILL",
                c.id
            )));
        }
    }
    publish(d, c, "stop", &[]);
    Ok(true)
}

/// `POST /containers/{id}/kill`.
pub async fn kill(d: &Arc<Daemon>, c: &Arc<Container>, sig: &str) -> Result<(), ApiError> {
    let n = parse_signal(sig)?;
    if !c.status().is_running() {
        return Err(ApiError::conflict(format!(
            "cannot kill container: {}: container {} is not running",
            c.id, c.id
        )));
    }
    if n == 9 || n == 15 || n == 2 {
        c.rec.lock().unwrap().manually_stopped = true;
        d.containers.save(c)?;
    }
    signal(d, c, n).await?;
    publish(d, c, "kill", &[("signal", n.to_string())]);
    Ok(())
}

/// `POST /containers/{id}/restart`.
pub async fn restart(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    timeout: Option<i64>,
    sig: Option<&str>,
) -> Result<(), ApiError> {
    cancel_pending_restart(c);
    let _op = c.op.lock().await;
    stop_locked(d, c, timeout, sig).await?;
    start_locked(d, c).await?;
    publish(d, c, "restart", &[]);
    Ok(())
}

/// `DELETE /containers/{id}`.
pub async fn remove(
    d: &Arc<Daemon>,
    c: &Arc<Container>,
    force: bool,
    volumes: bool,
) -> Result<(), ApiError> {
    cancel_pending_restart(c);
    let _op = c.op.lock().await;
    if c.removed.load(Ordering::SeqCst) {
        return Ok(());
    }
    let rec = c.snapshot();
    if rec.state.status.is_running() {
        if !force {
            let what = if rec.state.status == Status::Paused {
                "paused"
            } else {
                "running"
            };
            return Err(ApiError::conflict(format!(
                "cannot remove container \"{}\": container is {what}: stop the container before removing or force remove",
                rec.name
            )));
        }
        let seen = c.exits.load(Ordering::SeqCst);
        c.rec.lock().unwrap().manually_stopped = true;
        if rec.state.status == Status::Paused {
            let _ = signal(d, c, 9).await;
            let _ = unpause_locked(d, c).await;
        } else {
            let _ = signal(d, c, 9).await;
        }
        if !wait_exit(c, seen, Duration::from_secs(30)).await {
            return Err(ApiError::internal(format!(
                "could not kill container {} to remove it",
                c.id
            )));
        }
    }
    c.rec.lock().unwrap().state.status = Status::Removing;
    let d2 = d.clone();
    let id = c.id.clone();
    tokio::task::spawn_blocking(move || {
        cleanup_after_exit(&d2, &id);
        discard_files(&d2, &id);
    })
    .await?;
    d.containers.forget(c)?;
    if volumes {
        // Anonymous volumes go with the container unless another container still uses them.
        let d2 = d.clone();
        let rec = c.snapshot();
        tokio::task::spawn_blocking(move || mounts::remove_anonymous(&d2, &rec)).await?;
    }
    publish(d, c, "destroy", &[]);
    Ok(())
}

/// `POST /containers/{id}/wait`: blocks until the condition holds; returns the exit code.
pub async fn wait(c: &Arc<Container>, condition: &str) -> Result<(i64, Option<String>), ApiError> {
    let mut rx = c.changed.subscribe();
    let start_exits = c.exits.load(Ordering::SeqCst);
    loop {
        let removed = c.removed.load(Ordering::SeqCst);
        let rec = c.snapshot();
        let done = match condition {
            "removed" => removed,
            "next-exit" => c.exits.load(Ordering::SeqCst) > start_exits || removed,
            _ => !rec.state.status.is_running() || removed,
        };
        if done {
            let err = (!rec.state.error.is_empty()).then(|| rec.state.error.clone());
            return Ok((rec.state.exit_code, err));
        }
        if rx.changed().await.is_err() {
            let rec = c.snapshot();
            return Ok((rec.state.exit_code, None));
        }
    }
}

/// The container's cgroup (for pause, top, stats).
pub fn cgroup_of(d: &Daemon, c: &Container) -> String {
    cgroup_path(&d.containers.paths.cgroup_parent, &c.rec.lock().unwrap())
}

/// `<parent>/<id>`: the parent is the container's `--cgroup-parent` when it has one (relative
/// paths are taken from the root, as docker's cgroupfs driver does), else the daemon's.
pub fn cgroup_path(daemon_parent: &str, rec: &ContainerRecord) -> String {
    let parent = match rec.host_config.cgroup_parent.as_deref() {
        Some(p) if !p.is_empty() => format!("/{}", p.trim_matches('/')),
        _ => daemon_parent.to_string(),
    };
    format!("{}/{}", parent.trim_end_matches('/'), rec.id)
}

/// Refuses a `--cgroup-parent` that could leave the cgroup hierarchy.
pub fn check_cgroup_parent(hc: &HostConfig) -> Result<(), String> {
    match hc.cgroup_parent.as_deref() {
        Some(p) if p.split('/').any(|c| c == ".." || c == ".") => Err(format!(
            "invalid cgroup parent {p:?}: \".\" and \"..\" are not allowed"
        )),
        Some(p) if p.ends_with(".slice") => Err(format!(
            "invalid cgroup parent {p:?}: systemd slices need the systemd cgroup driver; berthd uses cgroupfs"
        )),
        _ => Ok(()),
    }
}

/// `POST /containers/{id}/pause`.
pub async fn pause(d: &Arc<Daemon>, c: &Arc<Container>) -> Result<(), ApiError> {
    let _op = c.op.lock().await;
    match c.status() {
        Status::Running => {}
        Status::Paused => {
            return Err(ApiError::conflict(format!(
                "Container {} is already paused",
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
    let cg = cgroup_of(d, c);
    tokio::task::spawn_blocking(move || {
        berth_runtime::cgroup::Cgroup::open(&cg).and_then(|g| g.freeze())
    })
    .await?
    .map_err(|e| ApiError::internal(format!("cannot pause container {}: {e}", c.id)))?;
    c.rec.lock().unwrap().state.status = Status::Paused;
    d.containers.save(c)?;
    publish(d, c, "pause", &[]);
    Ok(())
}

async fn unpause_locked(d: &Arc<Daemon>, c: &Arc<Container>) -> Result<(), ApiError> {
    let cg = cgroup_of(d, c);
    tokio::task::spawn_blocking(move || {
        berth_runtime::cgroup::Cgroup::open(&cg).and_then(|g| g.thaw())
    })
    .await?
    .map_err(|e| ApiError::internal(format!("cannot unpause container {}: {e}", c.id)))?;
    let mut changed = false;
    {
        let mut g = c.rec.lock().unwrap();
        if g.state.status == Status::Paused {
            g.state.status = Status::Running;
            changed = true;
        }
    }
    if changed {
        d.containers.save(c)?;
    }
    Ok(())
}

/// `POST /containers/{id}/unpause`.
pub async fn unpause(d: &Arc<Daemon>, c: &Arc<Container>) -> Result<(), ApiError> {
    let _op = c.op.lock().await;
    if c.status() != Status::Paused {
        return Err(ApiError::conflict(format!(
            "Container {} is not paused",
            c.id
        )));
    }
    unpause_locked(d, c).await?;
    publish(d, c, "unpause", &[]);
    Ok(())
}

/// At daemon start: reconnect to live shims, record exits that happened while berthd was
/// down, and start containers whose restart policy asks for it.
pub async fn restore(d: &Arc<Daemon>) {
    // Running containers get their DNS servers and port proxies back first.
    let d2 = d.clone();
    let _ = tokio::task::spawn_blocking(move || crate::network::sandbox::restore(&d2)).await;
    for c in d.containers.all() {
        let rec = c.snapshot();
        if !rec.state.status.is_running() {
            continue;
        }
        let sock = d.containers.paths.socket(&c.id);
        match shim::request(&sock, &Request::State).await {
            Ok(r) if r.running.unwrap_or(false) => {
                tracing::info!(container = %c.id, "reconnected to running container");
                spawn_monitor(d.clone(), c.clone(), None);
                continue;
            }
            _ => {}
        }
        let exit = read_exit_file(d, &c.id).unwrap_or_else(|| ExitStatus {
            exit_code: 255,
            signal: None,
            oom_killed: false,
            finished_at: now_rfc3339(),
        });
        tracing::info!(container = %c.id, code = exit.exit_code, "container exited while berthd was down");
        if rec.state.status == Status::Paused {
            c.rec.lock().unwrap().state.status = Status::Running;
        }
        on_exit(d, &c, exit).await;
    }
    for c in d.containers.all() {
        let rec = c.snapshot();
        if rec.state.status.is_running() || !rec.has_been_started {
            continue;
        }
        let name = rec.host_config.restart_policy.as_ref().and_then(|p| p.name);
        let wanted = match name {
            Some(RestartPolicyNameEnum::ALWAYS) => true,
            Some(RestartPolicyNameEnum::UNLESS_STOPPED) => !rec.manually_stopped,
            _ => false,
        };
        if wanted && let Err(e) = start(d, &c).await {
            tracing::warn!(container = %c.id, "restart at daemon start failed: {}", e.message);
        }
    }
}

/// Whether a container record describes a never-started or stopped container (for prune).
pub fn is_stopped(rec: &ContainerRecord) -> bool {
    matches!(
        rec.state.status,
        Status::Exited | Status::Created | Status::Dead
    )
}

/// docker's Status text: `Up 3 seconds`, `Exited (0) 2 minutes ago`, `Created`…
pub fn status_text(rec: &ContainerRecord, now_ns: i64) -> String {
    let since = |t: &str| -> String {
        let ns = unix_nanos(t);
        let d = Duration::from_nanos((now_ns - ns).max(0) as u64);
        berth_cli::format::units::human_duration(d)
    };
    match rec.state.status {
        Status::Running => format!("Up {}", since(&rec.state.started_at)),
        Status::Paused => format!("Up {} (Paused)", since(&rec.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            rec.state.exit_code,
            since(&rec.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Created => "Created".into(),
        Status::Exited => {
            if rec.state.finished_at == ZERO_TIME {
                format!("Exited ({})", rec.state.exit_code)
            } else {
                format!(
                    "Exited ({}) {} ago",
                    rec.state.exit_code,
                    since(&rec.state.finished_at)
                )
            }
        }
    }
}
