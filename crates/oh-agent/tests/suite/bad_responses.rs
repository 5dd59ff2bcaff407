//! Bad LLM responses produce the reference's behaviour, never a panic: malformed tool
//! arguments, an unknown tool, an empty response, server errors then success, auth failure.

use super::common;

use oh_agent::conversation::{Error, MALFORMED_MARKER};
use oh_protocol::event::FailureKind;
use oh_protocol::{Event, ExecutionStatus, Source};
use oh_testkit::{Reply, ScriptedCall, ScriptedLlm};
use serde_json::json;

fn finish() -> Reply {
    Reply::tool("finish", json!({"message": "done"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_arguments_become_an_action_without_action_and_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tools(vec![ScriptedCall::new(
            "terminal",
            r#"{"command": "ls" "oops"}"#,
        )]),
        finish(),
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
    let events = conv.events();
    let action = common::first!(events, Action).unwrap();
    assert!(action.action.is_none());
    let stored: serde_json::Value = serde_json::from_str(&action.tool_call.arguments).unwrap();
    assert_eq!(stored[MALFORMED_MARKER], true);
    let error = common::first!(events, AgentError).unwrap();
    assert!(
        error
            .error
            .starts_with("Error validating tool 'terminal': "),
        "{}",
        error.error
    );
    assert!(
        error.error.ends_with(". Arguments: unparseable JSON"),
        "{}",
        error.error
    );
    assert_eq!(
        error.classification.as_ref().unwrap().kind,
        FailureKind::AgentAction
    );
    // The replayed history only holds valid JSON.
    let second = &llm.requests()[1].body;
    let args = second["messages"][2]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert!(serde_json::from_str::<serde_json::Value>(args).is_ok());
    assert_eq!(second["messages"][3]["role"], "tool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tool_reports_the_available_ones() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("nonexistent_tool", json!({"x": 1})),
        finish(),
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
    let error = common::first!(conv.events(), AgentError).unwrap();
    assert_eq!(
        error.error,
        "Tool 'nonexistent_tool' not found. Available: ['terminal', 'file_editor', 'task_tracker', 'finish', 'think']"
    );
    assert_eq!(error.tool_name, "nonexistent_tool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_error_names_the_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("think", json!({"thought": "x", "bogus": 1})),
        finish(),
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
    let error = common::first!(conv.events(), AgentError).unwrap();
    assert!(
        error.error.starts_with("Error validating tool 'think': "),
        "{}",
        error.error
    );
    assert!(
        error
            .error
            .ends_with("Parameters provided: ['thought', 'bogus']"),
        "{}",
        error.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_are_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("bash", json!({"command": "echo via-alias"})),
        finish(),
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
    let action = common::first!(conv.events(), Action).unwrap();
    assert_eq!(action.tool_name, "terminal");
    assert_eq!(action.tool_call.name, "terminal");
    assert!(action.action.is_some());
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_response_gets_a_corrective_message_and_the_loop_continues() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::Empty, finish()])
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let kinds = common::kinds(&conv.events());
    assert_eq!(
        kinds,
        [
            "SystemPromptEvent",
            "message:user",
            "message:agent",
            "message:environment",
            "Action:finish",
            "Observation:finish"
        ]
    );
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_then_success_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::error(500, "internal error"),
        Reply::error(503, "overloaded"),
        finish(),
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
    assert_eq!(llm.requests().len(), 3);
    assert!(
        !conv
            .events()
            .iter()
            .any(|e| matches!(e, Event::ConversationError(_)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_server_errors_end_the_run_in_error() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start((0..3).map(|_| Reply::error(500, "still broken")).collect())
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    let result = conv.run().await;
    let Err(Error::Run { failure, .. }) = result else {
        panic!("expected a run error, got {result:?}")
    };
    assert_eq!(failure.code.as_deref(), Some("LLMServiceUnavailableError"));
    assert_eq!(conv.status(), ExecutionStatus::Error);
    assert_eq!(llm.requests().len(), 3, "num_retries attempts in all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failure_is_reported_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::error(401, "invalid api key")])
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert!(matches!(conv.run().await, Err(Error::Run { .. })));
    let error = common::first!(conv.events(), ConversationError).unwrap();
    assert_eq!(error.code, "LLMAuthenticationError");
    assert_eq!(error.detail, "API key invalid or expired");
    assert_eq!(error.base.source, Source::Environment);
    assert_eq!(error.classification.unwrap().kind, FailureKind::Auth);
    assert_eq!(llm.requests().len(), 1);
    // The conversation can run again once things are fixed.
    llm.push(finish());
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_after_finish_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::tools(vec![
        ScriptedCall::new("finish", r#"{"message": "done"}"#),
        ScriptedCall::new("terminal", r#"{"command": "echo never"}"#),
    ])])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let kinds = common::kinds(&conv.events());
    assert_eq!(
        kinds,
        [
            "SystemPromptEvent",
            "message:user",
            "Action:finish",
            "Observation:finish"
        ]
    );
}
