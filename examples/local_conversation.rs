//! A conversation run in this process: the agent writes a small shell script, runs it, reads
//! the failure, fixes the script, runs it again and finishes. Events print as they happen.
//!
//! With `LLM_API_KEY` set (and optionally `LLM_MODEL`, default `anthropic/claude-sonnet-4-5`,
//! and `LLM_BASE_URL`) a real model does the work. Without it, a scripted LLM on loopback
//! plays the model's part, so the example runs anywhere with no network.
//!
//! ```sh
//! cargo run -p openhands-examples --example local_conversation
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

use oh_testkit::{Reply, ScriptedLlm};
use openhands::prelude::*;
use serde_json::json;

const TASK: &str = "Write hello.sh that prints 'hello', run it with sh, and fix any error.";

/// What a scripted model would answer for `TASK`, given the script's path.
fn script(path: &str) -> Vec<Reply> {
    vec![
        Reply::tool(
            "file_editor",
            json!({"command": "create", "path": path, "file_text": "echo hello\nprint_done\n"}),
        ),
        Reply::tool("terminal", json!({"command": format!("sh {path}")})),
        Reply::tool(
            "file_editor",
            json!({"command": "str_replace", "path": path, "old_str": "print_done", "new_str": "echo done"}),
        ),
        Reply::tool("terminal", json!({"command": format!("sh {path}")})),
        Reply::tool(
            "finish",
            json!({"message": "hello.sh now prints hello and done."}),
        ),
    ]
}

fn describe(event: &Event) -> String {
    match event {
        Event::Message(m) => {
            let text: Vec<String> = m
                .llm_message
                .content
                .iter()
                .filter_map(|c| c.as_text().map(str::to_owned))
                .collect();
            format!("{:?} says: {}", m.base.source, text.join(" "))
        }
        Event::Action(a) => format!("agent calls {} {}", a.tool_name, a.tool_call.arguments),
        Event::Observation(o) => match &o.observation {
            Observation::Terminal(t) => format!("terminal exit code {:?}", t.exit_code),
            other => format!("{} result ({})", o.tool_name, other.kind()),
        },
        Event::AgentError(e) => format!("tool error: {}", e.error),
        other => other.kind().to_owned(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::init_tracing();
    let workspace = std::env::temp_dir().join(format!("openhands-example-{}", std::process::id()));
    std::fs::create_dir_all(&workspace)?;
    let script_path = workspace.join("hello.sh").to_string_lossy().into_owned();

    let mut scripted = None;
    let llm = match std::env::var("LLM_API_KEY") {
        Ok(key) if !key.is_empty() => {
            let model =
                std::env::var("LLM_MODEL").unwrap_or_else(|_| "anthropic/claude-sonnet-4-5".into());
            let mut llm = Llm::new(model);
            llm.api_key = Some(key.into());
            llm.base_url = std::env::var("LLM_BASE_URL").ok();
            llm
        }
        _ => {
            println!("LLM_API_KEY is not set: a scripted LLM plays the model's part.");
            let server = ScriptedLlm::start(script(&script_path)).await?;
            let mut llm = Llm::new("openai/scripted-model");
            llm.base_url = Some(server.base_url());
            scripted = Some(server);
            llm
        }
    };
    let tools = vec![
        ToolSpec::new("terminal"),
        ToolSpec::new("file_editor"),
        ToolSpec::new("task_tracker"),
    ];
    let conversation = Conversation::builder(Agent::new(llm, tools), Workspace::local(&workspace))
        .callback(|event| println!("- {}", describe(event)))
        .build()
        .await?;
    conversation.send_text(TASK).await?;
    let status = conversation.run().await?;
    let cost = conversation.accumulated_cost().await?;
    conversation.close().await;
    common::print_outcome(status, cost);
    println!(
        "{}:\n{}",
        script_path,
        std::fs::read_to_string(&script_path).unwrap_or_default()
    );
    if let Some(server) = scripted {
        println!(
            "the scripted LLM answered {} requests",
            server.requests().len()
        );
    }
    std::fs::remove_dir_all(&workspace)?;
    Ok(())
}
