//! One function, two workspaces: `converse(agent, workspace)` lists the working directory,
//! uploads a file, runs a conversation that edits it (a closure prints the events), downloads
//! it back and reports the cost. `main` calls it with a directory on this machine and with a
//! Docker container; `?` works on every call because every backend's error is an
//! `openhands::Error`. Both runs end with the same listing.
//!
//! Needs `LLM_API_KEY` (optionally `LLM_MODEL`, `LLM_BASE_URL`), the Docker Engine and the
//! agent-server image (`AGENT_SERVER_IMAGE`, default the one `cargo xtask image` builds);
//! without them it says `SKIP:`. An LLM on this machine's loopback is reached from the
//! container through host networking.
//!
//! ```sh
//! LLM_API_KEY=... cargo run -p openhands-examples --example converse
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

use openhands::docker::{DEFAULT_IMAGE, Error as DockerError};
use openhands::prelude::*;
use openhands::{Error, callback};

const TASK: &str = "Append a line saying 'checked' to notes.txt in the current directory, \
    then finish.";

/// Runs the same steps in any workspace; returns the names in its working directory.
async fn converse(agent: Agent, workspace: Workspace) -> openhands::Result<String> {
    println!(
        "== {} at {}",
        workspace.kind(),
        workspace.working_dir().display()
    );
    let listing = workspace.execute_command("ls -la").await?;
    println!("$ ls -la\n{}", listing.stdout.trim_end());

    let scratch = tempfile::tempdir().map_err(|source| Error::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let notes = scratch.path().join("notes.txt");
    std::fs::write(&notes, "first line\n").map_err(|source| Error::Io {
        path: notes.clone(),
        source,
    })?;
    workspace.file_upload(&notes, "notes.txt").await?;

    let conversation = Conversation::new(
        agent,
        &workspace,
        [callback(|event| {
            println!("  - {}", common::describe(event))
        })],
    )
    .await?;
    conversation.send_message(TASK).await?;
    let status = conversation.run().await?;
    let cost = conversation.accumulated_cost().await?;
    conversation.close().await;

    let back = scratch.path().join("notes-back.txt");
    workspace.file_download("notes.txt", &back).await?;
    let text = std::fs::read_to_string(&back).map_err(|source| Error::Io {
        path: back.clone(),
        source,
    })?;
    println!("notes.txt is now:\n{}", text.trim_end());
    common::print_outcome(status, cost);

    // Plain `ls`: an agent server also runs `git init` in its working directory (as the
    // reference does), which only a listing of hidden files would show.
    Ok(workspace.execute_command("ls").await?.stdout)
}

#[tokio::main]
async fn main() -> openhands::Result<()> {
    common::init_tracing();
    let Some(llm) = common::llm_from_env() else {
        println!("SKIP: LLM_API_KEY is not set; this example is a conversation.");
        return Ok(());
    };
    let loopback_llm = llm
        .base_url
        .as_deref()
        .is_some_and(|url| url.contains("://127.0.0.1") || url.contains("://localhost"));
    let image = std::env::var("AGENT_SERVER_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned());
    let mut builder = DockerWorkspace::builder().image(image);
    if loopback_llm {
        builder = builder.network("host");
    }
    // The container first: without an engine or image there is nothing to compare.
    let docker = match builder.start().await {
        Ok(docker) => docker,
        Err(e @ (DockerError::DaemonUnreachable(_) | DockerError::ImageMissing { .. })) => {
            println!("SKIP: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };

    let here = tempfile::tempdir().map_err(|source| Error::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let agent = common::default_agent(llm);
    let local = converse(agent.clone(), Workspace::local(here.path())).await?;
    let remote = converse(agent, Workspace::from(&docker)).await?;
    docker.cleanup().await?;

    println!("Working directory, locally:\n{local}In the container:\n{remote}");
    println!(
        "{}",
        if local == remote {
            "The same listing in both."
        } else {
            "The listings differ."
        }
    );
    Ok(())
}
