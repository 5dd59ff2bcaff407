//! The agent server in a sandbox from the OpenHands Cloud API: `OpenHandsCloudWorkspace` asks
//! the Cloud for a sandbox, waits until it runs and hands back a remote workspace. A command
//! shows where it runs; then a conversation runs there with the LLM settings and secrets the
//! Cloud keeps for the user (`get_llm()`, `get_secrets()`: the agent server fetches secret
//! values itself, the client never sees them), writes FACTS.txt, shows and deletes it, and
//! the cost is printed. The sandbox is deleted afterwards.
//!
//! With `OPENHANDS_CLOUD_API_KEY` (and `OPENHANDS_CLOUD_API_URL`, default
//! `https://app.all-hands.dev`) it uses that Cloud. Without them it starts our sandbox server
//! in this process on the local Docker Engine, serving the Cloud API to one user whose LLM
//! settings are `LLM_API_KEY`, `LLM_MODEL` and `LLM_BASE_URL` and who has one secret; without
//! a reachable Engine or the image (`cargo xtask image`) it says so (`SKIP: …`) and exits
//! successfully. The sandboxes share the host's network: the agent server inside looks the
//! secrets up at the sandbox server's loopback URL (and may find the LLM there).
//!
//! ```sh
//! cargo xtask image
//! LLM_API_KEY=... cargo run -p openhands-examples --example cloud_workspace
//! # or, against a Cloud (ours: `openhands-sandbox-server --users FILE`):
//! OPENHANDS_CLOUD_API_URL=http://127.0.0.1:8090 OPENHANDS_CLOUD_API_KEY=... \
//!   cargo run -p openhands-examples --example cloud_workspace
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

use std::time::Duration;

use openhands::prelude::*;

/// The reference's default Cloud API.
const DEFAULT_CLOUD_API_URL: &str = "https://app.all-hands.dev";

/// The agent-server image of a local run.
const IMAGE: &str = "openhands-agent-server:latest";

const TASK: &str = "Write the kernel name and the current user id into FACTS.txt in the \
    current directory and show it; then delete FACTS.txt and finish.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();
    let given = std::env::var("OPENHANDS_CLOUD_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .map(|key| {
            let url = std::env::var("OPENHANDS_CLOUD_API_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| DEFAULT_CLOUD_API_URL.to_owned());
            (url, key)
        });
    let users = tempfile::tempdir()?;
    let (url, key, local) = match given {
        Some((url, key)) => (url, key, None),
        None => match start_local_cloud(users.path()).await {
            Ok(started) => started,
            Err(skip) => {
                println!("SKIP: {skip}");
                return Ok(());
            }
        },
    };
    let mut builder = OpenHandsCloudWorkspace::builder(&url, key.as_str());
    match std::env::var("OPENHANDS_SANDBOX_SPEC_ID") {
        Ok(spec) if !spec.is_empty() => builder = builder.sandbox_spec_id(spec),
        _ if local.is_some() => builder = builder.sandbox_spec_id(IMAGE),
        _ => {}
    }
    let cloud = builder.start().await?;
    println!(
        "Sandbox {} ready at {}",
        cloud.sandbox_id().unwrap_or("?"),
        cloud.url()
    );
    let result = tour(&cloud).await;
    cloud.cleanup().await?;
    println!("Sandbox deleted.");
    if let Some(local) = local {
        local.stop().await?;
    }
    result
}

/// The command, then the conversation with the user's LLM and secrets.
async fn tour(cloud: &OpenHandsCloudWorkspace) -> anyhow::Result<()> {
    let t = Duration::from_secs(30);
    let here = Some(cloud.working_dir());
    let hello = cloud
        .workspace()
        .execute_command("echo 'Hello from the sandbox' && pwd", here, t)
        .await?;
    println!("{}", hello.stdout.trim_end());

    let llm = cloud.get_llm(None).await?;
    if llm.model.is_empty() {
        println!("The user has no LLM settings: skipping the conversation part.");
        return Ok(());
    }
    let secrets = cloud.get_secrets(None).await?;
    println!(
        "LLM {} from the user's settings; secrets {:?} (looked up by the agent server)",
        llm.model,
        secrets.keys().collect::<Vec<_>>()
    );
    let conversation = Conversation::builder(common::default_agent(llm), cloud)
        .callbacks([common::print_events()])
        .secrets(secrets)
        .build()
        .await?;
    let outcome = common::run_task(&conversation, TASK).await;
    conversation.close().await;
    outcome?;
    let gone = cloud
        .workspace()
        .execute_command("test ! -e FACTS.txt", here, t)
        .await?;
    println!(
        "FACTS.txt {}",
        if gone.exit_code == 0 {
            "was deleted"
        } else {
            "is still there"
        }
    );
    Ok(())
}

/// Our sandbox server with a users file of one user: the LLM from `LLM_*` and one secret.
async fn start_local_cloud(
    dir: &std::path::Path,
) -> Result<(String, String, Option<common::Local>), String> {
    let llm = common::llm_from_env();
    if llm.is_none() {
        common::say_conversation_skipped();
    }
    let key = format!("example-user-{}", uuid::Uuid::new_v4().simple());
    let settings = llm.map(|l| {
        serde_json::json!({
            "model": l.model,
            "api_key": l.api_key.as_ref().map(|k| k.expose().to_owned()),
            "base_url": l.base_url,
        })
    });
    let users = serde_json::json!({"users": [{
        "id": "example",
        "api_key": key,
        "llm": settings.unwrap_or_else(|| serde_json::json!({})),
        "secrets": {"EXAMPLE_TOKEN": {"value": uuid::Uuid::new_v4().simple().to_string(),
                                      "description": "a token the agent may use"}},
    }]});
    let path = dir.join("users.json");
    std::fs::write(&path, users.to_string()).map_err(|e| e.to_string())?;
    let (url, _runtime_key, local) =
        // Host networking: the agent server looks the secrets up at the sandbox server's
        // loopback URL (and may call an LLM there).
        common::start_sandbox_server(IMAGE, true, |c| c.users_file = Some(path)).await?;
    Ok((url, key, local))
}
