//! Shared pieces of the examples: the LLM from the environment, the default agent, logging,
//! event descriptions and the closing lines `cargo xtask examples` looks for.

#![allow(dead_code, reason = "each example uses a different subset")]

use openhands::prelude::*;

/// The model used when `LLM_MODEL` is unset.
pub(crate) const DEFAULT_MODEL: &str = "anthropic/claude-sonnet-4-5";

/// The LLM described by `LLM_API_KEY`, `LLM_MODEL` and `LLM_BASE_URL`; `None` without a key.
pub(crate) fn llm_from_env() -> Option<Llm> {
    let key = std::env::var("LLM_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())?;
    let model = std::env::var("LLM_MODEL")
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
    let mut llm = Llm::new(model);
    llm.api_key = Some(key.into());
    llm.base_url = std::env::var("LLM_BASE_URL").ok().filter(|u| !u.is_empty());
    Some(llm)
}

/// Says that the conversation part is skipped, and why.
#[allow(clippy::print_stdout, reason = "an example prints what happens")]
pub(crate) fn say_conversation_skipped() {
    println!(
        "LLM_API_KEY is not set: skipping the conversation part \
         (set LLM_API_KEY, and optionally LLM_MODEL and LLM_BASE_URL, to run it)."
    );
}

/// The default tools: terminal, file editor and task tracker.
pub(crate) fn default_agent(llm: Llm) -> Agent {
    Agent::new(
        llm,
        vec![
            ToolSpec::new("terminal"),
            ToolSpec::new("file_editor"),
            ToolSpec::new("task_tracker"),
        ],
    )
}

/// Logs to stderr, filtered by `RUST_LOG` (default: errors only).
pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// One line about an event.
pub(crate) fn describe(event: &Event) -> String {
    match event {
        Event::Message(m) => {
            let text: Vec<&str> = m
                .llm_message
                .content
                .iter()
                .filter_map(|c| c.as_text())
                .collect();
            format!("{:?} says: {}", m.base.source, text.join(" "))
        }
        Event::Action(a) => format!("agent calls {} {}", a.tool_name, a.tool_call.arguments),
        Event::Observation(o) => match &o.observation {
            Observation::Terminal(t) => format!("terminal exit code {:?}", t.exit_code),
            other => format!("{} result ({})", o.tool_name, other.kind()),
        },
        Event::AgentError(e) => format!("tool error: {}", e.error),
        Event::ConversationError(e) => format!("conversation error {}: {}", e.code, e.detail),
        Event::ConversationStateUpdate(u) if u.key == "execution_status" => {
            format!("status is now {}", u.value)
        }
        Event::ConversationStateUpdate(u) => format!("state update ({})", u.key),
        other => other.kind().to_owned(),
    }
}

/// A callback printing every event as it arrives.
pub(crate) fn print_events() -> Callback {
    #[allow(clippy::print_stdout, reason = "an example prints what happens")]
    std::sync::Arc::new(|event: &Event| println!("  - {}", describe(event)))
}

/// The closing lines: the status the run ended in (its wire name) and the cost, which
/// `cargo xtask examples` checks.
#[allow(clippy::print_stdout, reason = "an example prints what happens")]
pub(crate) fn print_outcome(status: ExecutionStatus, cost: f64) {
    let name = serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status:?}"));
    println!("EXAMPLE_STATUS: {name}");
    println!("EXAMPLE_COST: {cost}");
}

/// Sends `task`, runs the conversation to its end and prints the outcome lines.
pub(crate) async fn run_task(
    conversation: &Conversation,
    task: &str,
) -> openhands::Result<ExecutionStatus> {
    conversation.send_text(task).await?;
    let status = conversation.run().await?;
    print_outcome(status, conversation.accumulated_cost().await?);
    Ok(status)
}

/// `text` quoted for `/bin/sh`.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The sandbox tour both sandbox examples give: a command showing where it runs, a file
/// uploaded and downloaded back, then (with an LLM) `task` as a conversation whose
/// FACTS.txt is shown at the end. Paths are relative to the workspace's working directory.
pub(crate) async fn sandbox_tour(
    workspace: &RemoteWorkspace,
    llm: Option<Llm>,
    task: &str,
) -> anyhow::Result<()> {
    let t = std::time::Duration::from_secs(30);
    let here = Some(workspace.working_dir());
    let uname = workspace
        .execute_command("uname -sr && id && pwd", here, t)
        .await?;
    println!("In the sandbox:\n{}", uname.stdout.trim_end());

    let scratch = tempfile::tempdir()?;
    let note = scratch.path().join("note.txt");
    std::fs::write(&note, "uploaded into the sandbox\n")?;
    workspace.file_upload(&note, "note.txt").await?;
    let copy = scratch.path().join("copy.txt");
    workspace.file_download("note.txt", &copy).await?;
    anyhow::ensure!(
        std::fs::read(&note)? == std::fs::read(&copy)?,
        "the downloaded copy differs from the upload"
    );
    println!("Uploaded note.txt and downloaded it back: identical.");

    let Some(llm) = llm else {
        say_conversation_skipped();
        return Ok(());
    };
    let conversation = Conversation::new(default_agent(llm), workspace, [print_events()]).await?;
    let outcome = run_task(&conversation, task).await;
    conversation.close().await;
    outcome?;
    let facts = workspace.execute_command("cat FACTS.txt", here, t).await?;
    println!("FACTS.txt:\n{}", facts.stdout.trim_end());
    Ok(())
}

/// A sandbox server an example started, and its state directory.
pub(crate) struct Local {
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<(), oh_sandbox_server::ServerError>>,
    state: tempfile::TempDir,
}

impl Local {
    /// Stops the server (it removes its warm pool; sandboxes were cleaned up by then).
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.served.await??;
        drop(self.state);
        Ok(())
    }
}

/// Our sandbox server on a free loopback port, with a key made up here and `configure`'s
/// settings; its URL and key. `Err` says why it cannot run here (no Engine, no image).
pub(crate) async fn start_sandbox_server(
    image: &str,
    host_network: bool,
    configure: impl FnOnce(&mut oh_sandbox_server::Config),
) -> Result<(String, String, Option<Local>), String> {
    let state = tempfile::tempdir().map_err(|e| e.to_string())?;
    let key = format!("example-{}", uuid::Uuid::new_v4().simple());
    let mut config = oh_sandbox_server::Config::new(state.path(), key.as_str());
    config.port = 0;
    config.image = image.to_owned();
    config.idle_timeout = None;
    if host_network {
        config.network = Some("host".to_owned());
    }
    configure(&mut config);
    let server = oh_sandbox_server::SandboxServer::bind(config)
        .await
        .map_err(|e| format!("cannot start a sandbox server here: {e}"))?;
    let url = format!("http://{}", server.local_addr());
    println!(
        "Started a sandbox server at {url} (state in {})",
        state.path().display()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    let exists = oh_client::ServiceClient::new(&url)
        .and_then(|c| c.with_header("X-API-Key", &key.as_str().into()))
        .map_err(|e| e.to_string())?
        .get::<serde_json::Value>(&format!("/image_exists?image={image}"))
        .await
        .map_err(|e| e.to_string())?;
    if exists["exists"] != true {
        let _ = stop.send(());
        return Err(format!(
            "image {image} is not available locally (build it with `cargo xtask image`)"
        ));
    }
    Ok((
        url,
        key,
        Some(Local {
            stop,
            served,
            state,
        }),
    ))
}
