//! A full local conversation against the scripted LLM over real HTTP: the agent creates a
//! script with `file_editor`, runs it with `terminal`, reads the failure, fixes the script,
//! runs it again and calls `finish`. The event sequence is snapshotted.

use super::common;

use oh_protocol::{Event, ExecutionStatus};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

/// Replaces every occurrence of `from` in string values (and keys) of `value`.
fn replace_strings(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::String(s) if s.contains(from) => *s = s.replace(from, to),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_strings(v, from, to)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_strings(v, from, to)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_creates_runs_fixes_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    let script = workspace.join("hello.sh");
    let script_path = script.to_string_lossy().into_owned();

    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "file_editor",
            json!({"command": "create", "path": script_path, "file_text": "echo hello\nprint_greeting\n", "summary": "create the script"}),
        ),
        Reply::tool("terminal", json!({"command": "sh hello.sh", "summary": "run it"})),
        Reply::tool(
            "file_editor",
            json!({"command": "str_replace", "path": script_path, "old_str": "print_greeting\n", "new_str": "echo done\n"}),
        ),
        Reply::tool("terminal", json!({"command": "sh hello.sh"})),
        Reply::tool("finish", json!({"message": "hello.sh prints hello and done."})),
    ])
    .await
    .unwrap();

    let conversation = common::start(common::config(
        common::agent(&llm.base_url()),
        &workspace,
        None,
    ));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = std::sync::Arc::clone(&seen);
    conversation.subscribe(move |e| sink.lock().unwrap().push(e.clone()));

    conversation
        .send_text("Write hello.sh that prints hello, run it and fix any error.")
        .await
        .unwrap();
    let status = conversation.run().await.unwrap();
    assert_eq!(status, ExecutionStatus::Finished);
    assert_eq!(
        std::fs::read_to_string(&script).unwrap(),
        "echo hello\necho done\n"
    );
    assert_eq!(llm.remaining(), 0, "every scripted reply was used");

    let events = conversation.events();
    assert_eq!(
        *seen.lock().unwrap(),
        events,
        "callbacks saw every event, in order"
    );

    // The third request (the fix) was made after the model saw the failure.
    let requests = llm.requests();
    assert_eq!(requests.len(), 5);
    let third = common::request_text(&requests[2].body);
    assert!(third.contains("print_greeting: not found"), "{third}");
    assert!(third.contains("exit code 127"), "{third}");

    // Terminal observations report what happened.
    let exit_codes: Vec<Option<i64>> = events
        .iter()
        .filter_map(|e| match e {
            Event::Observation(o) => match &o.observation {
                oh_protocol::Observation::Terminal(t) => Some(t.exit_code),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(exit_codes, vec![Some(127), Some(0)]);

    let mut value = serde_json::to_value(&events).unwrap();
    replace_strings(&mut value, &workspace.to_string_lossy(), "/workspace");
    insta::assert_json_snapshot!("full_conversation_events", value, {
        "[].id" => "[id]",
        "[].timestamp" => "[timestamp]",
        "[].parent_id" => "[id]",
        "[].action_id" => "[id]",
        "[].system_prompt.text" => "[system prompt]",
        "[].tools[].description" => "[description]",
        "[].observation.metadata.pid" => "[pid]",
        "[].observation.metadata.username" => "[user]",
        "[].observation.metadata.hostname" => "[host]",
        "[].observation.metadata.py_interpreter_path" => "[python]",
        "[].llm_response_id" => "[response id]",
    });
    conversation.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_agent_answers_from_the_history_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let llm = oh_testkit::ScriptedLlm::start(vec![
        oh_testkit::Reply::tool(
            "terminal",
            serde_json::json!({"command": "echo the-answer-is-$((6*7))"}),
        ),
        oh_testkit::Reply::tool("finish", serde_json::json!({"message": "done"})),
        oh_testkit::Reply::text("It printed the-answer-is-42."),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("Compute it.").await.unwrap();
    assert_eq!(
        conv.run().await.unwrap(),
        oh_protocol::ExecutionStatus::Finished
    );
    let before = conv.events().len();
    let answer = conv.ask_agent("What did the command print?").await.unwrap();
    assert_eq!(answer, "It printed the-answer-is-42.");
    assert_eq!(conv.events().len(), before, "ask_agent recorded an event");
    assert_eq!(conv.status(), oh_protocol::ExecutionStatus::Finished);
    // The model saw the history (the command's output) and the question, with the tools.
    let requests = llm.requests();
    let last = &requests.last().unwrap().body;
    let text = last["messages"].to_string();
    assert!(text.contains("the-answer-is-42"), "{text}");
    assert!(text.contains("What did the command print?"), "{text}");
    assert!(last["tools"].as_array().is_some_and(|t| !t.is_empty()));
    // A reply without text is an error, not an empty answer.
    llm.push(oh_testkit::Reply::tool(
        "finish",
        serde_json::json!({"message": "x"}),
    ));
    let error = conv.ask_agent("Again?").await.unwrap_err();
    assert!(
        matches!(error, oh_agent::conversation::Error::NoAnswer),
        "{error:?}"
    );
    assert_eq!(conv.events().len(), before);
    conv.close().await;
}
