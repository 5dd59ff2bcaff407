//! Secrets in a conversation: advertised by name in the system prompt, exported into the
//! terminal when a command mentions them, masked in what the model sees. Also: usage stats.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use oh_protocol::{Event, ExecutionStatus, Observation};
use oh_testkit::{COMPLETION_TOKENS, PROMPT_TOKENS, Reply, ScriptedLlm};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_injected_and_masked() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo token=$MY_TOKEN"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    let config = common::config(common::agent(&llm.base_url()), dir.path(), None)
        .secret("MY_TOKEN", "s3cr3t-value");
    let conv = common::start(config);
    conv.send_text("print the token").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);

    let events = conv.events();
    let Some(Event::SystemPrompt(prompt)) = events.first() else {
        panic!("no system prompt")
    };
    let dynamic = prompt
        .dynamic_context
        .as_ref()
        .expect("secrets create a dynamic block");
    assert!(dynamic.text.contains("$MY_TOKEN"), "{}", dynamic.text);
    assert!(!dynamic.text.contains("s3cr3t-value"));

    let output = events
        .iter()
        .find_map(|e| match e {
            Event::Observation(o) => match &o.observation {
                Observation::Terminal(t) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    let text = serde_json::to_string(&output.content).unwrap();
    assert!(text.contains("token=<secret-hidden>"), "{text}");
    // Nothing the model received contains the value.
    for request in llm.requests() {
        assert!(!request.body.to_string().contains("s3cr3t-value"));
    }
    // The stored state only has the mask.
    let state = serde_json::to_string(&conv.state()).unwrap();
    assert!(!state.contains("s3cr3t-value"));
    assert!(state.contains("MY_TOKEN"));
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_accumulates_in_conversation_stats() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("think", json!({"thought": "one"})),
        Reply::tool("finish", json!({"message": "two"})),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let stats = conv.state().stats;
    let metrics = stats
        .usage_to_metrics
        .get("agent")
        .expect("metrics under the agent's usage_id");
    let usage = metrics.accumulated_token_usage.as_ref().unwrap();
    assert_eq!(usage.prompt_tokens, 2 * PROMPT_TOKENS);
    assert_eq!(usage.completion_tokens, 2 * COMPLETION_TOKENS);
    assert_eq!(metrics.response_latencies.len(), 2);
}
