//! `openhands-agent-server`: the agent server binary, with the Python server's flags.
//!
//! Process-wide settings are made here, not in the library: the soft open-files limit is
//! raised to the hard one, and after the shutdown signal the whole process ends within the
//! configured drain (`shutdown_drain_seconds`) even if a blocking thread is stuck.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use oh_server::{Config, Server};

/// OpenHands agent server (Rust).
#[derive(Debug, Parser)]
#[command(name = "openhands-agent-server", version, about)]
struct Cli {
    /// Address to bind (default 127.0.0.1 without session API keys, else 0.0.0.0).
    #[arg(long)]
    host: Option<IpAddr>,
    /// Port to bind.
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Accepted for compatibility with the Python server; no effect.
    #[arg(long)]
    reload: bool,
    /// Accepted for compatibility with the Python server; no effect.
    #[arg(long, value_name = "MODULES")]
    import_modules: Option<String>,
    /// Accepted for compatibility with the Python server; no effect.
    #[arg(long, value_name = "PATH")]
    extra_python_path: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::from(2);
        }
    };
    if let Some(host) = cli.host {
        config.host = host;
    }
    config.port = cli.port;
    // `--host` is bound as given, also by a dormant server (a warm pool passes
    // `--host 0.0.0.0`: its session keys only arrive with `POST /api/init`).
    if config.session_api_keys.is_empty() && config.host.is_unspecified() {
        if config.deferred_init {
            tracing::warn!(
                "listening on a wildcard address without session API keys (deferred init:                  they arrive with POST /api/init)"
            );
        } else {
            tracing::warn!("listening on a wildcard address without session API keys");
        }
    }
    raise_fd_limit();
    let drain = Duration::try_from_secs_f64(config.shutdown_drain_seconds)
        .unwrap_or(Duration::from_secs(8));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let signalled = Arc::new(OnceLock::new());
    let result = runtime.block_on(serve(config, Arc::clone(&signalled)));
    // Dropping the runtime would wait for every blocking-pool thread, forever if one is stuck
    // (a blocking `open()` of a FIFO): give them what is left of the drain, at most a second.
    let grace = signalled
        .get()
        .map_or(Duration::ZERO, |at: &Instant| {
            drain.saturating_sub(at.elapsed())
        })
        .clamp(Duration::from_millis(100), Duration::from_secs(1));
    runtime.shutdown_timeout(grace);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(
    config: Config,
    signalled: Arc<OnceLock<Instant>>,
) -> Result<(), oh_server::ServerError> {
    let server = Server::bind(config).await?;
    tracing::info!("listening on http://{}", server.local_addr());
    server
        .serve(async move {
            shutdown_signal().await;
            let _ = signalled.set(Instant::now());
        })
        .await
}

/// Raises the soft limit of open files to the hard one: each connection is a file descriptor,
/// and the default soft limit (often 1024) is small for a server.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let show = |n: Option<u64>| n.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(
                "cannot raise the open-files limit from {} to {}: {err}",
                show(limit.current),
                show(limit.maximum)
            );
            return;
        }
    }
    let now = getrlimit(Resource::Nofile);
    tracing::info!(
        "open-files limit: {} (hard {})",
        show(now.current),
        show(now.maximum)
    );
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
