//! An agent server in this process ([`LocalServer`]) and a conversation on it, driven
//! through the real HTTP API and event WebSocket, exactly as a remote server would be.
//!
//! The server gets a fresh session API key and a temporary root. The example checks the
//! server, runs `pwd` in the workspace and round-trips a file; then the agent writes and runs
//! a shell script while every event prints as it streams in, and the script is downloaded
//! back. The conversation is deleted on the server when it closes, and the server stops
//! gracefully at the end.
//!
//! Needs `LLM_API_KEY` for the conversation (optionally `LLM_MODEL`, default
//! `anthropic/claude-sonnet-4-5`, and `LLM_BASE_URL`); without it the conversation is
//! skipped and only the workspace operations run.
//!
//! ```sh
//! cargo run -p openhands-examples --example local_agent_server
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use openhands::prelude::*;

const TASK: &str = "Create a shell script hello.sh in the current directory that prints \
    'Hello from the agent server', run it with sh, then finish.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();
    let server = LocalServer::builder()
        .api_key(format!("example-{}", uuid::Uuid::new_v4().simple()))
        .start()
        .await?;
    println!(
        "Agent server on {} (state under {})",
        server.url(),
        server.root().display()
    );
    let result = demo(&server).await;
    server.shutdown().await?;
    println!("Agent server stopped.");
    result
}

async fn demo(server: &LocalServer) -> anyhow::Result<()> {
    let workspace = server.workspace()?;
    workspace
        .wait_until_healthy(Duration::from_secs(10))
        .await?;
    let info = workspace.server_info().await?;
    println!("Server version {} (SDK {})", info.version, info.sdk_version);

    let working_dir = workspace.working_dir().to_owned();
    let pwd = workspace
        .execute_command("pwd", Some(&working_dir), Duration::from_secs(10))
        .await?;
    println!(
        "`{}` exited {} with: {}",
        pwd.command,
        pwd.exit_code,
        pwd.stdout.trim()
    );

    let scratch = tempfile::tempdir()?;
    let note = scratch.path().join("note.txt");
    std::fs::write(&note, "uploaded by the local_agent_server example\n")?;
    let uploaded = workspace.file_upload(&note, "notes/note.txt").await?;
    println!(
        "Uploaded {} bytes to {}",
        uploaded.file_size.unwrap_or(0),
        uploaded.destination_path
    );
    let copy = scratch.path().join("note-copy.txt");
    workspace.file_download("notes/note.txt", &copy).await?;
    anyhow::ensure!(
        std::fs::read(&note)? == std::fs::read(&copy)?,
        "the downloaded copy differs from the upload"
    );
    println!("Downloaded it back: identical.");

    let Some(llm) = common::llm_from_env() else {
        common::say_conversation_skipped();
        return Ok(());
    };
    let conversation = Conversation::new(
        common::default_agent(llm),
        &workspace,
        [common::print_events()],
    )
    .await?;
    println!(
        "Conversation {} (remote: {})",
        conversation.id(),
        !conversation.is_local()
    );
    let outcome = common::run_task(&conversation, TASK).await;
    if outcome.is_ok() {
        summarize(&conversation);
    }
    conversation.close().await;
    outcome?;

    let script = scratch.path().join("hello.sh");
    workspace
        .file_download("hello.sh", &script)
        .await
        .context("downloading the agent's hello.sh")?;
    println!(
        "The agent's hello.sh:\n{}",
        std::fs::read_to_string(&script)?
    );
    Ok(())
}

/// How many events of each kind, and the last few.
fn summarize(conversation: &Conversation) {
    let events = conversation.events();
    let mut kinds = BTreeMap::<&str, usize>::new();
    for event in &events {
        *kinds.entry(event.kind()).or_default() += 1;
    }
    println!("{} events:", events.len());
    for (kind, count) in kinds {
        println!("  {count:3} {kind}");
    }
    println!("The last five:");
    for event in events.iter().rev().take(5).rev() {
        println!(
            "  {} {}",
            event.timestamp().unwrap_or("?"),
            common::describe(event)
        );
    }
}
