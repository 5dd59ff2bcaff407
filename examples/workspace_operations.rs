//! Workspace operations against an agent server: commands (output, exit codes, a timeout),
//! a file upload and download, and git changes and diffs of a repository the example sets
//! up. In between, the agent edits a file of that repository, and git shows what it changed.
//!
//! The server is the one at `AGENT_SERVER_URL` (with `AGENT_SERVER_API_KEY` if it needs a
//! key, and `AGENT_SERVER_WORKING_DIR`, an absolute directory on the server, default
//! `/tmp/openhands-examples/workspace_operations`), or else an agent server started in this
//! process.
//!
//! Needs `LLM_API_KEY` for the agent's part (optionally `LLM_MODEL`, default
//! `anthropic/claude-sonnet-4-5`, and `LLM_BASE_URL`); without it the edit is made with a
//! plain command instead.
//!
//! ```sh
//! cargo run -p openhands-examples --example workspace_operations
//! AGENT_SERVER_URL=http://127.0.0.1:8000 cargo run -p openhands-examples --example workspace_operations
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

use std::time::Duration;

use openhands::prelude::*;

/// The working directory on a server given by `AGENT_SERVER_URL`: the server's file routes
/// take absolute paths only, so the client's relative default would not do.
const SERVER_WORKING_DIR: &str = "/tmp/openhands-examples/workspace_operations";

/// The repository the example creates in the working directory (replaced if present).
const REPO: &str = "demo-repo";

const TASK: &str = "In the git repository demo-repo (in the current directory), append a \
    line saying 'three' to notes.txt. Do not commit. Then finish.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();
    let configured = std::env::var("AGENT_SERVER_URL")
        .ok()
        .filter(|url| !url.is_empty());
    match configured {
        Some(url) => {
            let workspace = RemoteWorkspace::builder(url)
                .api_key(std::env::var("AGENT_SERVER_API_KEY").unwrap_or_default())
                .working_dir(
                    std::env::var("AGENT_SERVER_WORKING_DIR")
                        .ok()
                        .filter(|dir| !dir.is_empty())
                        .unwrap_or_else(|| SERVER_WORKING_DIR.to_owned()),
                )
                .build()?;
            println!("Using the agent server at {}", workspace.host());
            demo(workspace).await
        }
        None => {
            let server = LocalServer::start().await?;
            println!(
                "AGENT_SERVER_URL is not set: using an agent server in this process at {}",
                server.url()
            );
            let result = demo(server.workspace()?).await;
            server.shutdown().await?;
            result
        }
    }
}

async fn demo(remote: RemoteWorkspace) -> anyhow::Result<()> {
    remote.wait_until_healthy(Duration::from_secs(30)).await?;
    let workspace = Workspace::from(&remote);
    let dir = workspace.working_dir().to_string_lossy().into_owned();

    // Commands: they run in the working directory (30 s at most) unless told otherwise;
    // the working directory may not exist yet, so this one runs in `/`.
    workspace
        .execute_command(format!("mkdir -p {}", common::shell_quote(&dir)))
        .cwd("/")
        .await?;
    let result = workspace
        .execute_command("echo \"hello from $(uname -s)\"; pwd")
        .await?;
    println!(
        "$ {}\n{}(exit {})",
        result.command, result.stdout, result.exit_code
    );
    let result = workspace
        .execute_command("echo to stderr >&2; exit 3")
        .await?;
    println!(
        "$ {}\nstderr: {}(exit {})",
        result.command, result.stderr, result.exit_code
    );
    let result = workspace
        .execute_command("sleep 10")
        .timeout(Duration::from_secs(1))
        .await?;
    println!(
        "$ {} with a 1 s limit: timeout_occurred={}, exit {}",
        result.command, result.timeout_occurred, result.exit_code
    );

    // Files: upload, download, compare.
    let scratch = tempfile::tempdir()?;
    let local = scratch.path().join("notes.txt");
    std::fs::write(&local, "one\ntwo\n")?;
    let uploaded = workspace.file_upload(&local, "uploads/notes.txt").await?;
    println!(
        "Uploaded {} ({} bytes)",
        uploaded.destination_path,
        uploaded.file_size.unwrap_or(0)
    );
    let back = scratch.path().join("notes-back.txt");
    let downloaded = workspace.file_download("uploads/notes.txt", &back).await?;
    anyhow::ensure!(
        std::fs::read(&local)? == std::fs::read(&back)?,
        "the downloaded file differs from the uploaded one"
    );
    println!(
        "Downloaded it to {}: identical",
        downloaded.destination_path
    );

    // Git: a repository with one committed file.
    let setup = format!(
        "rm -rf {REPO} && mkdir {REPO} && cd {REPO} && git init -q && \
         cp ../uploads/notes.txt notes.txt && git add notes.txt && \
         git -c user.name=example -c user.email=example@example.com commit -qm 'first notes'"
    );
    let result = workspace.execute_command(setup).await?;
    if result.exit_code != 0 {
        println!(
            "Skipping the git part: setting up the repository failed (is git installed on \
             the server?): {}",
            result.stderr.trim()
        );
        return Ok(());
    }
    println!("Created the repository {REPO} with notes.txt committed");
    agent_part(&workspace).await?;

    let changes = workspace.git_changes(REPO).await?;
    println!("git changes in {REPO}:");
    for change in &changes {
        println!("  {:?} {}", change.status, change.path);
    }
    let diff = workspace.git_diff(format!("{REPO}/notes.txt")).await?;
    println!(
        "notes.txt was:\n{}\nand is now:\n{}",
        diff.original.unwrap_or_default(),
        diff.modified.unwrap_or_default()
    );
    anyhow::ensure!(
        changes.iter().any(|c| c.path == "notes.txt"),
        "git does not show notes.txt as changed"
    );
    Ok(())
}

/// The agent appends to notes.txt; without an LLM a command does.
async fn agent_part(workspace: &Workspace) -> anyhow::Result<()> {
    let Some(llm) = common::llm_from_env() else {
        common::say_conversation_skipped();
        workspace
            .execute_command(format!("echo three >> {REPO}/notes.txt"))
            .await?;
        println!("Appended 'three' to {REPO}/notes.txt with a command instead");
        return Ok(());
    };
    let conversation = Conversation::new(
        common::default_agent(llm),
        workspace,
        [common::print_events()],
    )
    .await?;
    println!(
        "Conversation {}: the agent edits notes.txt",
        conversation.id()
    );
    let outcome = common::run_task(&conversation, TASK).await;
    conversation.close().await;
    outcome?;
    Ok(())
}
