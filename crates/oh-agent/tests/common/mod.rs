//! Helpers shared by the conversation tests.

#![allow(
    dead_code,
    unused_macros,
    unused_imports,
    reason = "each test file uses a subset"
)]
#![allow(clippy::expect_used, reason = "test helpers")]

use std::path::Path;
use std::time::Duration;

use oh_agent::conversation::{ConversationConfig, LocalConversation};
use oh_agent::tools::ToolOptions;
use oh_protocol::{Agent, Event, Llm, ToolSpec};
use serde_json::Value;

/// The default agent (terminal, file_editor, task_tracker + finish, think) on the scripted
/// LLM at `base_url`, with fast retries.
pub(crate) fn agent(base_url: &str) -> Agent {
    let mut llm = Llm::new("openai/scripted-model");
    llm.base_url = Some(base_url.to_owned());
    llm.api_key = Some("sk-test".into());
    llm.usage_id = "agent".into();
    llm.num_retries = 3;
    llm.retry_min_wait = 0;
    llm.retry_max_wait = 0;
    llm.retry_multiplier = 0.0;
    llm.timeout = Some(30);
    let tools = vec![
        ToolSpec::new("terminal"),
        ToolSpec::new("file_editor"),
        ToolSpec::new("task_tracker"),
    ];
    let mut agent = Agent::new(llm, tools);
    agent
        .system_prompt_kwargs
        .insert("cli_mode".into(), Value::Bool(true));
    agent
}

/// A config for `agent` in `workspace`, persisted under `persist` if given.
pub(crate) fn config(agent: Agent, workspace: &Path, persist: Option<&Path>) -> ConversationConfig {
    let mut config = ConversationConfig::new(agent, workspace)
        .tool_options(ToolOptions::default().terminal_no_change_timeout(Duration::from_secs(5)));
    if let Some(dir) = persist {
        config = config.persistence_dir(dir);
    }
    config
}

/// Starts a conversation.
pub(crate) fn start(config: ConversationConfig) -> LocalConversation {
    LocalConversation::new(config).expect("conversation")
}

/// Kinds of the events, for quick sequence checks.
pub(crate) fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| !matches!(e, Event::ConversationStateUpdate(_)))
        .map(|e| match e {
            Event::Action(a) => format!("Action:{}", a.tool_name),
            Event::Observation(o) => format!("Observation:{}", o.tool_name),
            Event::Message(m) => format!("Message:{:?}", m.base.source).to_lowercase(),
            other => other.kind().to_owned(),
        })
        .collect()
}

/// Every text of the messages of a recorded Chat Completions request, joined.
pub(crate) fn request_text(body: &Value) -> String {
    body.get("messages")
        .map(|m| m.to_string())
        .unwrap_or_default()
}

/// The first event of one kind in `events` (anything with `.iter()` over [`Event`]s), cloned:
/// `common::first!(conv.events(), AgentError)`.
macro_rules! first {
    ($events:expr, $variant:ident) => {
        $events.iter().find_map(|e| match e {
            oh_protocol::Event::$variant(inner) => Some(inner.clone()),
            _ => None,
        })
    };
}
pub(crate) use first;
