//! Helpers shared by the conversation tests, and waits for something observable.

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

/// The name the test harness knows test `name` of `module` by (pass `module_path!()`), for
/// re-running one test of this binary in a child process with `--exact`.
pub(crate) fn test_name(module: &str, name: &str) -> String {
    // `module_path!()` starts with the crate (`all`); test names do not.
    let (_, path) = module
        .split_once("::")
        .expect("a module inside the test crate");
    format!("{path}::{name}")
}

/// Waits (up to 60 s, then panics naming `what`) until `done` holds: the tests' way to wait
/// for something observable instead of sleeping.
pub(crate) async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits `future` (up to 60 s, then panics naming `what`): for waits on something the code
/// under test signals itself.
pub(crate) async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Waits until `llm` has received `n` requests (a request is recorded when it arrives, before
/// a delayed reply is sent), e.g. until an LLM call is in flight.
pub(crate) async fn llm_called(llm: &oh_testkit::ScriptedLlm, n: usize) {
    wait_for(&format!("{n} LLM request(s)"), || llm.requests().len() >= n).await;
}

/// Whether process `pid` runs (a zombie does not).
pub(crate) fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}
