//! berthd: berth's daemon. Serves the Docker Engine API on unix sockets until SIGTERM/SIGINT.

use berth_daemon::{config, daemon, server};
use clap::Parser;

fn main() {
    let flags = config::Flags::parse();
    let cfg = match config::Config::from_flags(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            std::process::exit(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{},hyper=info",
            level_directive(&cfg.log_level)
        ))
    });
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cfg)) {
        tracing::error!("{e:#}");
        eprintln!("berthd: {e:#}");
        std::process::exit(1);
    }
}

fn level_directive(l: &str) -> &str {
    match l {
        "fatal" => "error",
        other => other,
    }
}

async fn run(cfg: config::Config) -> anyhow::Result<()> {
    // Handlers first: a SIGTERM that arrives while starting still shuts down cleanly.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let hosts = cfg.hosts.clone();
    let pidfile = cfg.pidfile.clone();
    let d = tokio::task::spawn_blocking(move || daemon::Daemon::open(cfg)).await??;
    let listeners = server::bind(&hosts)?;
    write_pidfile(&pidfile)?;
    let mut sockets = Vec::new();
    for (path, l) in listeners {
        tracing::info!("API listening on {path}");
        sockets.push(path);
        tokio::spawn(server::serve(d.clone(), l));
    }
    // Reconnect to running containers and apply restart policies, while already serving.
    tokio::spawn({
        let d = d.clone();
        async move { berth_daemon::containers::lifecycle::restore(&d).await }
    });
    tracing::info!(data_root = %d.config.data_root.display(), driver = daemon::driver_name(d.images.snapshots.kind()), "berthd {} started", berth_api::VERSION);
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    // Network rules and bridges go unless containers still run (live-restore keeps them).
    let running = d
        .containers
        .all()
        .iter()
        .filter(|c| c.status().is_running())
        .count();
    let d2 = d.clone();
    let _ = tokio::task::spawn_blocking(move || d2.networks.shutdown(running)).await;
    for s in &sockets {
        let _ = std::fs::remove_file(s);
    }
    let _ = std::fs::remove_file(&pidfile);
    tracing::info!("berthd stopped");
    Ok(())
}

fn write_pidfile(p: &std::path::Path) -> anyhow::Result<()> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = p.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
    std::fs::rename(&tmp, p)?;
    Ok(())
}
