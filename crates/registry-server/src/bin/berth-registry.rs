//! `berth-registry`: serve an OCI distribution registry, collect its garbage, make htpasswd
//! lines.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use berth_registry_server::{Config, Server, TokenConfig, gc};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth-registry",
    version,
    about = "An OCI distribution registry"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the registry API until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Delete blobs no manifest references (offline: the registry must be stopped).
    Gc {
        #[arg(long)]
        root: PathBuf,
        /// Only print what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Also delete manifests that no tag reaches.
        #[arg(long)]
        delete_untagged: bool,
    },
    /// Print an htpasswd line (bcrypt) for USER; the password is read from stdin.
    Htpasswd {
        user: String,
        /// The password (default: first line of stdin).
        #[arg(long, short = 'p')]
        password: Option<String>,
        /// bcrypt cost.
        #[arg(long, default_value_t = 10)]
        cost: u32,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// Data directory (blobs, repositories, uploads).
    #[arg(long)]
    root: PathBuf,
    /// htpasswd file with bcrypt ($2y$) users: basic auth, or the token endpoint's users.
    #[arg(long)]
    htpasswd: Option<PathBuf>,
    /// Token auth: the realm clients fetch tokens from (an absolute URL, or a path such as
    /// /token served by this registry and announced with the request's Host).
    #[arg(long, requires = "token_secret")]
    token_realm: Option<String>,
    /// File holding the HS256 secret that signs tokens.
    #[arg(long, requires = "token_realm")]
    token_secret: Option<PathBuf>,
    /// The token service name.
    #[arg(long, default_value = "berth-registry")]
    token_service: String,
    /// The token issuer.
    #[arg(long, default_value = "berth-registry")]
    token_issuer: String,
    /// Seconds a token stays valid.
    #[arg(long, default_value_t = 900)]
    token_expiration: u64,
    /// Allow pulls without credentials.
    #[arg(long)]
    anonymous_pull: bool,
    /// Refuse manifest and blob deletes (405).
    #[arg(long)]
    disable_delete: bool,
    /// Upload sessions open at once before 429.
    #[arg(long, default_value_t = 1024)]
    max_uploads: usize,
    /// Megabytes of manifests cached in memory.
    #[arg(long, default_value_t = 64)]
    manifest_cache_mb: usize,
    /// Hours an idle upload session is kept.
    #[arg(long, default_value_t = 24)]
    upload_ttl_hours: u64,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Serve(a) => serve(a),
        Cmd::Gc {
            root,
            dry_run,
            delete_untagged,
        } => gc::run(
            &root,
            gc::GcOptions {
                dry_run,
                delete_untagged,
            },
            &mut std::io::stdout().lock(),
        )
        .map(|_| ())
        .map_err(|e| format!("gc: {e}")),
        Cmd::Htpasswd {
            user,
            password,
            cost,
        } => htpasswd(&user, password, cost),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth-registry: {e}");
            ExitCode::FAILURE
        }
    }
}

fn htpasswd(user: &str, password: Option<String>, cost: u32) -> Result<(), String> {
    let password = match password {
        Some(p) => p,
        None => {
            if std::io::stdin().is_terminal() {
                eprint!("Password: ");
                let _ = std::io::stderr().flush();
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| format!("reading the password: {e}"))?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    let line = berth_registry_server::auth::htpasswd_line(user, &password, cost)?;
    println!("{line}");
    Ok(())
}

fn serve(a: ServeArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "berth_registry_server={0},berth_registry={0}",
        a.log_level
    ))
    .map_err(|e| format!("--log-level: {e}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let token = match (a.token_realm, a.token_secret) {
        (Some(realm), Some(secret_file)) => {
            let secret = std::fs::read(&secret_file)
                .map_err(|e| format!("reading {}: {e}", secret_file.display()))?;
            let secret = secret.trim_ascii().to_vec();
            if secret.len() < 16 {
                return Err(format!(
                    "{}: the token secret must be at least 16 bytes",
                    secret_file.display()
                ));
            }
            Some(TokenConfig {
                realm,
                service: a.token_service,
                issuer: a.token_issuer,
                secret,
                expiration: a.token_expiration,
            })
        }
        _ => None,
    };
    if token.is_some() && a.htpasswd.is_none() {
        tracing::warn!("token auth without --htpasswd: only anonymous tokens can be issued");
    }
    let mut cfg = Config::new(a.root);
    cfg.htpasswd = a.htpasswd;
    cfg.token = token;
    cfg.anonymous_pull = a.anonymous_pull;
    cfg.delete_enabled = !a.disable_delete;
    cfg.max_uploads = a.max_uploads;
    cfg.manifest_cache_bytes = a.manifest_cache_mb << 20;
    cfg.upload_ttl = Duration::from_secs(a.upload_ttl_hours * 3600);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let server = Server::bind(cfg.clone(), a.addr)
            .await
            .map_err(|e| format!("serving {} on {}: {e}", cfg.root.display(), a.addr))?;
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, root = %cfg.root.display(), "berth-registry listening");
        // The bound address on stdout, for scripts that start us on port 0.
        println!("listening on {addr}");
        let _ = std::io::stdout().flush();
        server.run(shutdown_signal()).await;
        tracing::info!("berth-registry stopped");
        Ok(())
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
