//! The requests our agent sends, compared with what Python 1.57.0 sent for the same scripted
//! conversation (`tests/fixtures/llm_requests/*.json`, captured by `cargo xtask llm-fixtures`).
//!
//! Equal as JSON: tool names and parameter schemas (descriptions aside), the message
//! sequence's shape (roles, content block types, tool-call ids, names and arguments, where
//! Anthropic's cache markers sit). Our own words: descriptions and the system prompt.

use super::common;

use std::path::Path;

use oh_protocol::ExecutionStatus;
use oh_testkit::{Recorded, Reply, ScriptedCall, ScriptedLlm};
use serde_json::{Value, json};

fn fixture(name: &str) -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llm_requests")
        .join(name);
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["body"].clone())
        .collect()
}

/// The Python capture's script, with the same call ids and argument strings.
fn script(workspace: &str, anthropic: bool) -> Vec<Reply> {
    let args = |s: &str| s.replace("/workspace", workspace);
    let id = |n: u8| {
        if anthropic {
            format!("toolu_fixture_{n:02}")
        } else {
            format!("call_fixture_{n:02}")
        }
    };
    let create = ScriptedCall::new(
        "file_editor",
        args(r#"{"command": "create", "path": "/workspace/hello.py", "file_text": "print(hello)\n", "security_risk": "LOW", "summary": "create hello.py"}"#),
    )
    .with_id(id(1));
    let first = Reply::ToolCalls {
        text: Some("I'll create the script first.".into()),
        calls: vec![create],
    };
    let first = if anthropic {
        Reply::thinking(
            "The user wants hello.py; create it first.",
            "fixture-signature-1",
            first,
        )
    } else {
        first
    };
    vec![
        first,
        Reply::tools(vec![ScriptedCall::new(
            "terminal",
            r#"{"command": "python3 hello.py", "security_risk": "LOW", "summary": "run hello.py"}"#,
        )
        .with_id(id(2))]),
        Reply::ToolCalls {
            text: Some("It fails with a NameError: `hello` is not quoted. Fixing it.".into()),
            calls: vec![ScriptedCall::new(
                "file_editor",
                args(r#"{"command": "str_replace", "path": "/workspace/hello.py", "old_str": "print(hello)", "new_str": "print('hello')", "security_risk": "LOW"}"#),
            )
            .with_id(id(3))],
        },
        Reply::tools(vec![
            ScriptedCall::new("terminal", r#"{"command": "python3 hello.py", "security_risk": "LOW"}"#)
                .with_id(id(4)),
            ScriptedCall::new("think", r#"{"thought": "If it prints hello, the fix worked."}"#)
                .with_id(id(5)),
        ]),
        Reply::tools(vec![ScriptedCall::new("finish", r#"{"message": "hello.py now prints hello."}"#)
            .with_id(id(6))]),
    ]
}

async fn run_ours(model: &str, anthropic: bool) -> (Vec<Recorded>, String) {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(&workspace).unwrap();
    let ws = workspace.to_string_lossy().into_owned();
    let llm = ScriptedLlm::start(script(&ws, anthropic)).await.unwrap();
    let mut agent = common::agent(&llm.base_url());
    agent.llm.model = model.to_owned();
    let conversation = common::start(common::config(agent, &workspace, None));
    conversation
        .send_text("Create hello.py that prints hello, run it, fix any error, then finish.")
        .await
        .unwrap();
    assert_eq!(conversation.run().await.unwrap(), ExecutionStatus::Finished);
    conversation.close().await;
    (llm.requests(), ws)
}

/// Descriptions replaced by a placeholder, recursively.
fn scrub_descriptions(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "description" && v.is_string() {
                    *v = json!("<description>");
                } else {
                    scrub_descriptions(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub_descriptions),
        _ => {}
    }
}

fn tools_of(body: &Value, anthropic: bool) -> Value {
    let mut tools: Vec<Value> = body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            if anthropic {
                json!({"name": t["name"], "schema": t["input_schema"]})
            } else {
                json!({"name": t["function"]["name"], "schema": t["function"]["parameters"], "type": t["type"]})
            }
        })
        .collect();
    tools.iter_mut().for_each(scrub_descriptions);
    Value::Array(tools)
}

/// The shape of a message list: roles, extra keys, block types, cache markers, tool calls.
fn shape(messages: &Value, workspace: &str) -> Value {
    let messages = messages.as_array().unwrap();
    Value::Array(
        messages
            .iter()
            .map(|m| {
                let mut keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
                keys.sort_unstable();
                let blocks: Vec<Value> = match &m["content"] {
                    Value::Array(blocks) => blocks
                        .iter()
                        .map(|b| {
                            let mut shape = json!({"type": b["type"], "cached": b.get("cache_control").is_some()});
                            match b["type"].as_str() {
                                Some("tool_use") => {
                                    shape["id"] = b["id"].clone();
                                    shape["name"] = b["name"].clone();
                                    shape["input"] = b["input"].clone();
                                }
                                Some("tool_result") => shape["tool_use_id"] = b["tool_use_id"].clone(),
                                Some("thinking") => shape["signature"] = b["signature"].clone(),
                                _ => {}
                            }
                            shape
                        })
                        .collect(),
                    Value::String(_) => vec![json!("string")],
                    _ => Vec::new(),
                };
                let mut calls = m.get("tool_calls").cloned().unwrap_or(Value::Null);
                let text = serde_json::to_string(&calls).unwrap().replace(workspace, "/workspace");
                calls = serde_json::from_str(&text).unwrap();
                let mut blocks = Value::Array(blocks);
                let text = serde_json::to_string(&blocks).unwrap().replace(workspace, "/workspace");
                blocks = serde_json::from_str(&text).unwrap();
                json!({
                    "role": m["role"],
                    "keys": keys,
                    "blocks": blocks,
                    "tool_calls": calls,
                    "tool_call_id": m.get("tool_call_id"),
                    "name": m.get("name"),
                })
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_requests_match_python() {
    let python = fixture("openai_chat.json");
    let (ours, ws) = run_ours("openai/fixture-model", false).await;
    assert_eq!(ours.len(), python.len(), "one request per step");
    for (i, py) in python.iter().enumerate() {
        let body = &ours[i].body;
        assert_eq!(ours[i].path, "/v1/chat/completions");
        pretty_assertions::assert_eq!(
            tools_of(body, false),
            tools_of(py, false),
            "tools of request {i}"
        );
        pretty_assertions::assert_eq!(
            shape(&body["messages"], &ws),
            shape(&py["messages"], "/workspace"),
            "messages of request {i}"
        );
        assert_eq!(body["model"], py["model"]);
        assert!(body.get("tool_choice").is_none());
        // The system prompt is our own text.
        assert_ne!(
            body["messages"][0]["content"][0]["text"],
            json!("<system prompt>")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_requests_match_python() {
    let python = fixture("anthropic_messages.json");
    let (ours, ws) = run_ours("anthropic/claude-sonnet-4-5-20250929", true).await;
    assert_eq!(ours.len(), python.len(), "one request per step");
    for (i, py) in python.iter().enumerate() {
        let body = &ours[i].body;
        assert!(ours[i].path.ends_with("/messages"), "{}", ours[i].path);
        pretty_assertions::assert_eq!(
            tools_of(body, true),
            tools_of(py, true),
            "tools of request {i}"
        );
        pretty_assertions::assert_eq!(
            shape(&body["messages"], &ws),
            shape(&py["messages"], "/workspace"),
            "messages of request {i}"
        );
        assert_eq!(body["model"], py["model"]);
        assert_eq!(
            body["system"].as_array().map(Vec::len),
            py["system"].as_array().map(Vec::len)
        );
        assert_eq!(
            body["system"][0]["cache_control"],
            py["system"][0]["cache_control"]
        );
        assert!(body.get("max_tokens").is_some_and(Value::is_u64));
        assert_eq!(ours[i].header("anthropic-version"), Some("2023-06-01"));
    }
}
