//! The agent server in an OpenHands Cloud sandbox: `OpenHandsCloudWorkspace` asks the Cloud
//! API at `OPENHANDS_CLOUD_API_URL` (default `https://app.all-hands.dev`) with
//! `OPENHANDS_CLOUD_API_KEY` for a sandbox, waits until it runs and hands back a remote
//! workspace; a command and a file round trip show the sandbox, then a conversation runs
//! there with the LLM settings the Cloud holds for the user (`get_llm()`, or `LLM_*` from
//! the environment when set), and the sandbox is deleted afterwards.
//!
//! Without `OPENHANDS_CLOUD_API_KEY` the example says what it needs and exits successfully.
//! Our sandbox server does not serve the Cloud API yet, so there is no local run of it.
//!
//! ```sh
//! OPENHANDS_CLOUD_API_KEY=... cargo run -p openhands-examples --example cloud_workspace
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

use openhands::prelude::*;

/// The reference's default Cloud API.
const DEFAULT_CLOUD_API_URL: &str = "https://app.all-hands.dev";

const TASK: &str = "Write the kernel name and the current user id into FACTS.txt in the \
    current directory, show it, then finish.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();
    let key = std::env::var("OPENHANDS_CLOUD_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let url = std::env::var("OPENHANDS_CLOUD_API_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_CLOUD_API_URL.to_owned());
    let Some(key) = key else {
        if common::llm_from_env().is_none() {
            common::say_conversation_skipped();
        }
        println!(
            "SKIP: needs OPENHANDS_CLOUD_API_KEY (and OPENHANDS_CLOUD_API_URL, default \
             {DEFAULT_CLOUD_API_URL}) to ask OpenHands Cloud for a sandbox"
        );
        return Ok(());
    };
    let mut builder = OpenHandsCloudWorkspace::builder(&url, key);
    if let Ok(spec) = std::env::var("OPENHANDS_SANDBOX_SPEC_ID") {
        builder = builder.sandbox_spec_id(spec);
    }
    let workspace = builder.start().await?;
    println!("Sandbox ready at {}", workspace.url());
    let llm = match common::llm_from_env() {
        Some(llm) => Some(llm),
        None => workspace.get_llm(None).await.ok(),
    };
    let result = common::sandbox_tour(&workspace, llm, TASK).await;
    workspace.cleanup().await?;
    println!("Sandbox deleted.");
    result
}
