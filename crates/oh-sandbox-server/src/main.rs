//! `openhands-sandbox-server`: the runtime API (and, with `--users`, the Cloud API) over
//! Docker or Docker Swarm.
//!
//! Process-wide settings are made here, not in the library: logging, the signals that stop
//! the server (SIGINT, SIGTERM), and SIGHUP, which re-reads the users file. Sandboxes keep
//! running across a restart.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use oh_protocol::SecretString;
use oh_sandbox_server::{BackendKind, Config, SandboxServer};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    Docker,
    Swarm,
}

/// OpenHands sandbox server: hands out agent-server sandboxes over the runtime API.
#[derive(Debug, Parser)]
#[command(name = "openhands-sandbox-server", version, about)]
struct Cli {
    /// Address the API listens on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port the API listens on (0: any free port, printed at start).
    #[arg(long, default_value_t = 8090)]
    port: u16,
    /// Where sandbox records are kept.
    #[arg(long, default_value = "sandbox-state")]
    state_dir: PathBuf,
    /// The engine sandboxes run on.
    #[arg(long, value_enum, default_value = "docker")]
    backend: Backend,
    /// Image of warm-pool members (and the default agent server).
    #[arg(long, default_value = "openhands-agent-server:latest")]
    image: String,
    /// Docker network of the sandboxes (`host`: they reach services on the host's loopback).
    #[arg(long)]
    network: Option<String>,
    /// A runtime API key (repeatable); else `OH_RUNTIME_API_KEYS_0`, `_1`, …
    #[arg(long = "api-key", env = "OH_RUNTIME_API_KEY", hide_env_values = true)]
    api_keys: Vec<String>,
    /// Host in the sandbox URLs handed to clients.
    #[arg(long, default_value = "127.0.0.1")]
    public_host: String,
    /// Host address sandbox ports are published on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Sandboxes running at once (429 past it).
    #[arg(long, default_value_t = 32)]
    max_sandboxes: usize,
    /// Warm pool size: dormant agent servers kept ready.
    #[arg(long, default_value_t = 0)]
    warm: usize,
    /// Seconds `/start` and `/resume` wait for a healthy sandbox before answering.
    #[arg(long, default_value_t = 60.0)]
    start_wait_seconds: f64,
    /// Seconds a sandbox may take to become healthy before it is failed and removed.
    #[arg(long, default_value_t = 300.0)]
    startup_deadline_seconds: f64,
    /// Seconds without agent-server activity before a sandbox is paused (0: never).
    #[arg(long, default_value_t = 1800.0)]
    idle_timeout_seconds: f64,
    /// Seconds between checks of running sandboxes against the engine.
    #[arg(long, default_value_t = 5.0)]
    check_interval_seconds: f64,
    /// Seconds the records of stopped or failed sandboxes are kept.
    #[arg(long, default_value_t = 3600.0)]
    stopped_retention_seconds: f64,
    /// CPUs per unit of resource_factor (0: no limit).
    #[arg(long, default_value_t = 0.0)]
    cpus_per_factor: f64,
    /// MiB of memory per unit of resource_factor (0: no limit).
    #[arg(long, default_value_t = 0)]
    memory_mib_per_factor: u64,
    /// Users of the Cloud API (`/api/v1`, Bearer keys): a JSON file, re-read when it changes
    /// or on SIGHUP. Without it there is no Cloud API.
    #[arg(long, env = "OH_SANDBOX_USERS_FILE")]
    users: Option<PathBuf>,
}

fn seconds(name: &str, value: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{name} must be a non-negative number"))
}

fn config(cli: Cli) -> Result<Config, String> {
    let mut keys: Vec<SecretString> = cli.api_keys.into_iter().map(SecretString::new).collect();
    if keys.is_empty() {
        keys = Config::keys_from_env();
    }
    let mut config = Config::new(cli.state_dir, "");
    config.api_keys = keys;
    config.host = cli.host;
    config.port = cli.port;
    config.backend = match cli.backend {
        Backend::Docker => BackendKind::Docker,
        Backend::Swarm => BackendKind::Swarm,
    };
    config.image = cli.image;
    config.network = cli.network.filter(|n| !n.is_empty());
    config.public_host = cli.public_host;
    config.bind_address = cli.bind_address;
    config.max_sandboxes = cli.max_sandboxes;
    config.warm = cli.warm;
    config.start_wait = seconds("start-wait-seconds", cli.start_wait_seconds)?;
    config.startup_deadline = seconds("startup-deadline-seconds", cli.startup_deadline_seconds)?;
    let idle = seconds("idle-timeout-seconds", cli.idle_timeout_seconds)?;
    config.idle_timeout = (!idle.is_zero()).then_some(idle);
    config.check_interval = seconds("check-interval-seconds", cli.check_interval_seconds)?
        .max(Duration::from_millis(100));
    config.stopped_retention = seconds("stopped-retention-seconds", cli.stopped_retention_seconds)?;
    config.cpus_per_factor = cli.cpus_per_factor.max(0.0);
    config.memory_mib_per_factor = cli.memory_mib_per_factor;
    config.users_file = cli.users;
    Ok(config)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match config(Cli::parse()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let server = match SandboxServer::bind(config).await {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!("runtime API listening on http://{}", server.local_addr());
    if let Some(users) = server.users() {
        tracing::info!("Cloud API on http://{}/api/v1", server.local_addr());
        reload_on_hangup(users);
    }
    match server.serve(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Re-reads the users file on every SIGHUP.
fn reload_on_hangup(users: oh_sandbox_server::UsersHandle) {
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangup) => {
            tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: re-reading the users file");
                    let users = users.clone();
                    let _ = tokio::task::spawn_blocking(move || users.reload()).await;
                }
            });
        }
        Err(e) => tracing::warn!("cannot listen for SIGHUP: {e}"),
    }
    #[cfg(not(unix))]
    drop(users);
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down; sandboxes keep running");
}
