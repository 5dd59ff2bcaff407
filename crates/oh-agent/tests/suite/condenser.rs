//! The LLM summarizing condenser: event-count trigger, condensation on context-window
//! errors, manual `condense()`, configuration errors, and resuming a condensed conversation.

use super::common;

use oh_agent::conversation::{Error, LocalConversation, view};
use oh_protocol::{Agent, Event, ExecutionStatus};
use oh_testkit::{Recorded, Reply, ScriptedCall, ScriptedLlm};
use serde_json::{Value, json};

const SUMMARY: &str = "USER_CONTEXT: count thoughts. COMPLETED: thoughts 1-4.";

fn think(thought: &str) -> Reply {
    Reply::tool("think", json!({"thought": thought}))
}

fn finish(message: &str) -> Reply {
    Reply::tool("finish", json!({"message": message}))
}

fn context_window_error() -> Reply {
    Reply::error(
        400,
        "This model's maximum context length is 8192 tokens. However, your messages resulted \
         in 9000 tokens (context length exceeded).",
    )
}

/// The default test agent with an `LLMSummarizingCondenser` on the same scripted LLM.
fn condensing_agent(base_url: &str, max_size: u64, keep_first: u64) -> Agent {
    let mut agent = common::agent(base_url);
    let mut llm = serde_json::to_value(&agent.llm).unwrap();
    llm["usage_id"] = json!("condenser");
    agent.condenser = Some(json!({
        "kind": "LLMSummarizingCondenser",
        "llm": llm,
        "max_size": max_size,
        "keep_first": keep_first,
    }));
    agent
}

fn messages(request: &Recorded) -> Vec<Value> {
    request.body["messages"].as_array().cloned().unwrap()
}

fn has_tools(request: &Recorded) -> bool {
    request.body["tools"]
        .as_array()
        .is_some_and(|tools| !tools.is_empty())
}

/// Every tool message directly follows the assistant message (or tool messages of the
/// same batch) that called it.
fn assert_tool_results_follow_calls(messages: &[Value]) {
    let mut open: Vec<String> = Vec::new();
    for message in messages {
        match message["role"].as_str().unwrap() {
            "assistant" => {
                assert!(open.is_empty(), "unanswered calls before {message}");
                open = message["tool_calls"]
                    .as_array()
                    .map(|calls| {
                        calls
                            .iter()
                            .map(|c| c["id"].as_str().unwrap().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
            }
            "tool" => {
                let id = message["tool_call_id"].as_str().unwrap();
                let at = open.iter().position(|o| o == id);
                assert!(at.is_some(), "tool result {id} without its call");
                open.retain(|o| o != id);
            }
            _ => assert!(open.is_empty(), "message between a call and its result"),
        }
    }
}

fn condensations(events: &[Event]) -> Vec<&oh_protocol::event::Condensation> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Condensation(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Runs five thoughts with `max_size` 10: the sixth step condenses.
async fn run_until_condensed(llm: &ScriptedLlm, conv: &LocalConversation) {
    conv.send_text("Think five times, then finish.")
        .await
        .unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(llm.remaining(), 0);
}

fn think_script() -> Vec<Reply> {
    vec![
        think("thought 1"),
        think("thought 2"),
        think("thought 3"),
        think("thought 4"),
        think("thought 5"),
        Reply::text(SUMMARY),
        finish("done"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_history_is_summarized_and_the_agent_continues() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(think_script()).await.unwrap();
    let conv = common::start(common::config(
        condensing_agent(&llm.base_url(), 10, 2),
        dir.path(),
        None,
    ));
    assert_eq!(conv.condenser().unwrap().max_size(), 10);
    run_until_condensed(&llm, &conv).await;

    let events = conv.events();
    let found = condensations(&events);
    assert_eq!(found.len(), 1);
    let condensation = found[0];
    assert_eq!(condensation.summary.as_deref(), Some(SUMMARY));
    // System prompt and the user message stay; thoughts 1-4 (action + observation) go.
    assert_eq!(condensation.summary_offset, Some(2));
    assert_eq!(condensation.forgotten_event_ids.len(), 8);
    let system_id = events[0].id().unwrap();
    assert!(
        !condensation
            .forgotten_event_ids
            .iter()
            .any(|id| id == system_id)
    );

    let requests = llm.requests();
    assert_eq!(requests.len(), 7);
    // The summarizer: no tools, instructions as a system message, events as a user message.
    let summarizer = &requests[5];
    assert!(!has_tools(summarizer));
    let summarizer_messages = messages(summarizer);
    assert_eq!(summarizer_messages.len(), 2);
    assert_eq!(summarizer_messages[0]["role"], "system");
    assert!(summarizer_messages[0].to_string().contains("TASK_TRACKING"));
    assert_eq!(summarizer_messages[1]["role"], "user");
    let input = summarizer_messages[1].to_string();
    assert_eq!(input.matches("<EVENT>").count(), 8);
    assert!(input.contains("thought 4") && !input.contains("thought 5"));

    // The agent's next request: condensed, same system prompt, results after calls.
    let before = messages(&requests[4]);
    let after = messages(&requests[6]);
    assert!(has_tools(&requests[6]));
    assert_eq!(after[0], before[0], "system prompt kept");
    assert_eq!(after[0]["role"], "system");
    assert!(
        after.len() < before.len(),
        "{} !< {}",
        after.len(),
        before.len()
    );
    let text = common::request_text(&requests[6].body);
    assert!(text.contains(SUMMARY));
    assert!(text.contains("thought 5") && !text.contains("thought 3"));
    assert_tool_results_follow_calls(&after);

    // The summarizer's usage is tracked under its own usage id.
    let stats = conv.state().stats;
    assert!(stats.usage_to_metrics.contains_key("condenser"));
    assert!(stats.usage_to_metrics.contains_key("agent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_batch_is_never_split() {
    let dir = tempfile::tempdir().unwrap();
    let batch = Reply::tools(vec![
        ScriptedCall::json("think", &json!({"thought": "parallel a"})),
        ScriptedCall::json("think", &json!({"thought": "parallel b"})),
        ScriptedCall::json("think", &json!({"thought": "parallel c"})),
    ]);
    // View before the condensation: system, user, the batch (3 actions, 3 observations),
    // then three thoughts (6 events): 14 > 12.
    let llm = ScriptedLlm::start(vec![
        batch,
        think("thought 1"),
        think("thought 2"),
        think("thought 3"),
        Reply::text(SUMMARY),
        finish("done"),
    ])
    .await
    .unwrap();
    // keep_first 3 ends inside the batch: the kept prefix grows to the whole batch.
    let conv = common::start(common::config(
        condensing_agent(&llm.base_url(), 12, 3),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let events = conv.events();
    let condensation = condensations(&events)[0].clone();
    assert_eq!(condensation.summary_offset, Some(8));
    assert_eq!(condensation.forgotten_event_ids.len(), 4);
    let requests = llm.requests();
    assert!(!has_tools(&requests[4]));
    let text = common::request_text(&requests[5].body);
    assert!(text.contains("parallel a") && text.contains("parallel c"));
    assert!(text.contains("thought 3") && !text.contains("thought 1"));
    assert!(text.contains(SUMMARY));
    assert_tool_results_follow_calls(&messages(&requests[5]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_window_error_requests_a_condensation() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        think("thought 1"),
        think("thought 2"),
        think("thought 3"),
        context_window_error(),
        Reply::text(SUMMARY),
        finish("done"),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        condensing_agent(&llm.base_url(), 80, 4),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let kinds = common::kinds(&conv.events());
    let request = kinds
        .iter()
        .position(|k| k == "CondensationRequest")
        .unwrap();
    assert_eq!(kinds[request + 1], "Condensation");
    assert_eq!(kinds[request + 2], "Action:finish");
    assert!(!kinds.iter().any(|k| k == "ConversationErrorEvent"));
    let requests = llm.requests();
    assert_eq!(requests.len(), 6);
    assert!(!has_tools(&requests[4]));
    let text = common::request_text(&requests[5].body);
    assert!(text.contains(SUMMARY));
    assert_tool_results_follow_calls(&messages(&requests[5]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_window_error_without_condenser_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![context_window_error()])
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    let error = conv.run().await.unwrap_err();
    assert!(
        matches!(&error, Error::Run { failure, .. } if failure.code.as_deref() == Some("LLMContextWindowExceedError")),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_condenser_config_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let agent = condensing_agent("http://127.0.0.1:9/v1", 6, 2);
    let error = LocalConversation::new(common::config(agent, dir.path(), None)).unwrap_err();
    assert!(
        matches!(&error, Error::Unsupported(m) if m.contains("max_size")),
        "{error}"
    );

    let mut agent = common::agent("http://127.0.0.1:9/v1");
    agent.condenser = Some(json!({"kind": "LLMSummarizingCondenser", "max_size": "many"}));
    let error = LocalConversation::new(common::config(agent, dir.path(), None)).unwrap_err();
    assert!(matches!(error, Error::Unsupported(_)));

    // No-op and unknown kinds mean no condenser.
    let mut agent = common::agent("http://127.0.0.1:9/v1");
    agent.condenser = Some(json!({"kind": "NoOpCondenser"}));
    let conv = LocalConversation::new(common::config(agent, dir.path(), None)).unwrap();
    assert!(conv.condenser().is_none());
    assert!(matches!(conv.condense().await, Err(Error::Unsupported(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_condense_summarizes_now() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        think("thought 1"),
        think("thought 2"),
        finish("done"),
        Reply::text(SUMMARY),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        condensing_agent(&llm.base_url(), 80, 2),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    conv.condense().await.unwrap();
    let events = conv.events();
    let kinds = common::kinds(&events);
    assert_eq!(
        kinds[kinds.len() - 2..],
        ["CondensationRequest", "Condensation"]
    );
    assert!(!has_tools(&llm.requests()[3]));
    let messages = view::events_to_messages(&events, &|_| Vec::new());
    assert!(serde_json::to_string(&messages).unwrap().contains(SUMMARY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn condensed_conversation_resumes_with_its_condensed_view() {
    let dir = tempfile::tempdir().unwrap();
    let persist = tempfile::tempdir().unwrap();
    let mut script = think_script();
    script.push(Reply::text("Welcome back."));
    let llm = ScriptedLlm::start(script).await.unwrap();
    let config = common::config(
        condensing_agent(&llm.base_url(), 10, 2),
        dir.path(),
        Some(persist.path()),
    );
    let conv = common::start(config.clone());
    run_until_condensed_then_keep(&llm, &conv).await;
    let id = conv.id();
    conv.close().await;
    drop(conv);

    let resumed = common::start(config.id(id));
    let events = resumed.events();
    assert_eq!(condensations(&events).len(), 1);
    let projected =
        serde_json::to_string(&view::events_to_messages(&events, &|_| Vec::new())).unwrap();
    assert!(projected.contains(SUMMARY));
    assert!(!projected.contains("thought 2"));
    // Stored condenser metrics are restored too.
    let restored = resumed.condenser().unwrap().llm().metrics();
    assert!(!restored.response_latencies.is_empty());

    resumed.send_text("Hello again").await.unwrap();
    assert_eq!(resumed.run().await.unwrap(), ExecutionStatus::Finished);
    let last = llm.requests().last().cloned().unwrap();
    let text = common::request_text(&last.body);
    assert!(text.contains(SUMMARY) && text.contains("Hello again"));
    assert!(!text.contains("thought 2"));
    resumed.close().await;
}

async fn run_until_condensed_then_keep(llm: &ScriptedLlm, conv: &LocalConversation) {
    conv.send_text("Think five times, then finish.")
        .await
        .unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(llm.remaining(), 1);
}
