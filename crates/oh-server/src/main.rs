//! `openhands-agent-server`: the agent server binary, with the Python server's flags.

use std::net::IpAddr;
use std::process::ExitCode;

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
    if config.session_api_keys.is_empty() && config.host.is_unspecified() {
        tracing::warn!("listening on a wildcard address without session API keys");
    }
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
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), oh_server::ServerError> {
    let server = Server::bind(config).await?;
    tracing::info!("listening on http://{}", server.local_addr());
    server.serve(shutdown_signal()).await
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
