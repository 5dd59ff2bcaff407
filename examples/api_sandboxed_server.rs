//! The agent server in a sandbox from a runtime API: `ApiRemoteWorkspace` asks the runtime
//! API for a sandbox running the agent-server image, waits until it is ready and hands back a
//! remote workspace; a command and a file round trip show the sandbox, then a conversation
//! runs there (write facts about the project into FACTS.txt), with the cost printed at the
//! end. The sandbox is stopped afterwards.
//!
//! With `RUNTIME_API_URL` and `RUNTIME_API_KEY` it uses that runtime API (ours, the
//! `openhands-sandbox-server` binary, or a hosted one). Without them it starts our sandbox
//! server in this process, on the local Docker Engine, and stops it at the end; without a
//! reachable Engine or without the image (`cargo xtask image`) it says so (`SKIP: …`) and
//! exits successfully. It reads `LLM_API_KEY`, `LLM_MODEL` and `LLM_BASE_URL` like the
//! others; when `LLM_BASE_URL` points at this machine's loopback, the sandboxes share the
//! host's network so they can reach it.
//!
//! ```sh
//! cargo xtask image
//! cargo run -p openhands-examples --example api_sandboxed_server
//! # or, against a running sandbox server:
//! RUNTIME_API_URL=http://127.0.0.1:8090 RUNTIME_API_KEY=... \
//!   cargo run -p openhands-examples --example api_sandboxed_server
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

use std::time::Instant;

use openhands::api::PullPolicy;
use openhands::prelude::*;

const IMAGE: &str = "openhands-agent-server:latest";

const TASK: &str = "Write the kernel name and the current user id into FACTS.txt in the \
    current directory, show it, then finish.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();
    let llm = common::llm_from_env();
    let image = std::env::var("AGENT_SERVER_IMAGE").unwrap_or_else(|_| IMAGE.to_owned());
    let given = std::env::var("RUNTIME_API_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .zip(
            std::env::var("RUNTIME_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()),
        );
    let (url, key, local) = match given {
        Some((url, key)) => (url, key, None),
        None => {
            let loopback_llm = llm
                .as_ref()
                .and_then(|l| l.base_url.as_deref())
                .is_some_and(|u| u.contains("://127.0.0.1") || u.contains("://localhost"));
            match common::start_sandbox_server(&image, loopback_llm, |_| {}).await {
                Ok(started) => started,
                Err(skip) => {
                    println!("SKIP: {skip}");
                    return Ok(());
                }
            }
        }
    };
    let started = Instant::now();
    let sandbox = ApiRemoteWorkspace::builder(&url, key.as_str(), &image)
        .image_pull_policy(if local.is_some() {
            PullPolicy::Never
        } else {
            PullPolicy::IfNotPresent
        })
        .working_dir("/workspace/project")
        .start()
        .await?;
    println!(
        "Sandbox {} (session {}) ready at {} in {:.2} s",
        sandbox.runtime_id(),
        sandbox.session_id(),
        sandbox.url(),
        started.elapsed().as_secs_f64()
    );
    let result = common::sandbox_tour(sandbox.workspace(), llm, TASK).await;
    sandbox.cleanup().await?;
    println!("Sandbox stopped.");
    if let Some(local) = local {
        local.stop().await?;
    }
    result
}
