//! The agent server in a local Docker container: `DockerWorkspace` starts the agent-server
//! image (build it with `cargo xtask image`), waits for its health check and hands back a
//! remote workspace; commands and a file round trip show the sandbox, then a conversation
//! runs inside the container with its events streaming back, and the cost is printed. The
//! container is removed at the end (also on errors and panics). Ctrl-C is handled here, by
//! the application: it drops the workspace, whose guard removes the container.
//!
//! Reads `LLM_API_KEY`, `LLM_MODEL` and `LLM_BASE_URL` like the other examples; without a
//! key the conversation is skipped. When `LLM_BASE_URL` points at this machine's loopback,
//! the container shares the host's network so it can reach it. Without a reachable Docker
//! Engine or without the image, the example says so (`SKIP: …`) and exits successfully.
//!
//! ```sh
//! cargo xtask image
//! cargo run -p openhands-examples --example docker_sandboxed_server
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

use openhands::docker::{DEFAULT_IMAGE, Error as DockerError};
use openhands::prelude::*;

const TASK: &str = "Write the kernel name and the current user id into FACTS.txt in the \
    current directory, show it, then finish.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();
    // The library leaves signals to the application: on Ctrl-C, `run` (and the workspace it
    // owns) is dropped, and dropping the workspace removes its container.
    tokio::select! {
        result = run() => result,
        _ = tokio::signal::ctrl_c() => {
            println!("Interrupted: the workspace was dropped and its container removed.");
            Ok(())
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let image = std::env::var("AGENT_SERVER_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
    let llm = common::llm_from_env();
    let loopback_llm = llm
        .as_ref()
        .and_then(|l| l.base_url.as_deref())
        .is_some_and(|url| url.contains("://127.0.0.1") || url.contains("://localhost"));
    let mut builder = DockerWorkspace::builder().image(&image).detach_logs(false);
    if loopback_llm {
        builder = builder.network("host");
    }
    let docker = match builder.start().await {
        Ok(docker) => docker,
        Err(e @ (DockerError::DaemonUnreachable(_) | DockerError::ImageMissing { .. })) => {
            println!("SKIP: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    println!(
        "Container {} ({}) serves {}",
        docker.container_name(),
        docker.image(),
        docker.workspace().host()
    );
    let result = common::sandbox_tour(docker.workspace(), llm, TASK).await;
    docker.cleanup().await?;
    println!("Container removed.");
    result
}
