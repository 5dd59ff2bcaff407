//! The gemini preset (`get_gemini_agent(llm, cli_mode=True)`: terminal, read_file, write_file,
//! edit, list_directory, task_tracker + finish, think): its tools' wire schemas equal the
//! reference's (`fixtures/llm_requests/tools_gemini.json`, captured from Python 1.58.2 by
//! `cargo xtask llm-fixtures`, descriptions scrubbed), and a scripted conversation using
//! every gemini tool runs to `finished` with the observations the reference gives.

use super::common;

use std::path::Path;

use oh_agent::tools::{ToolContext, ToolOptions, build};
use oh_protocol::{Agent, Event, ExecutionStatus, Observation, ToolSpec};
use oh_testkit::{Reply, ScriptedCall, ScriptedLlm};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn golden_tools() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm_requests/tools_gemini.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(doc["preset"], "gemini");
    doc["tools"].clone()
}

/// Every string `description` replaced by a placeholder (non-empty ones only: an empty
/// description of ours would fail the comparison).
fn scrub(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| match (key.as_str(), v) {
                    ("description", Value::String(text)) if !text.trim().is_empty() => {
                        (key.clone(), json!("<description>"))
                    }
                    _ => (key.clone(), scrub(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(scrub).collect()),
        other => other.clone(),
    }
}

/// The gemini preset's agent on the scripted LLM at `base_url`.
fn gemini_agent(base_url: &str) -> Agent {
    let mut agent = common::agent(base_url);
    agent.tools = [
        "terminal",
        "read_file",
        "write_file",
        "edit",
        "list_directory",
        "task_tracker",
    ]
    .into_iter()
    .map(ToolSpec::new)
    .collect();
    agent
}

#[tokio::test]
async fn built_tools_equal_the_reference_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ToolContext {
        working_dir: dir.path().to_path_buf(),
        conversation_dir: None,
        secrets: Default::default(),
    };
    let tools = build(
        &gemini_agent("http://127.0.0.1:9"),
        &ctx,
        &ToolOptions::default(),
    )
    .await
    .unwrap();
    let ours: Vec<Value> = tools
        .iter()
        .map(|tool| {
            let schema = tool.schema();
            json!({"type": "function", "function": {
                "name": schema.name, "description": schema.description, "parameters": schema.parameters,
            }})
        })
        .collect();
    for tool in &tools {
        tool.close().await;
    }
    assert_eq!(scrub(&Value::Array(ours)), golden_tools());
}

#[tokio::test]
async fn tool_definitions_carry_the_reference_kinds_and_hints() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = ToolContext {
        working_dir: dir.path().to_path_buf(),
        conversation_dir: None,
        secrets: Default::default(),
    };
    let mut agent = gemini_agent("http://127.0.0.1:9");
    agent.tools.retain(|t| t.name != "terminal");
    let tools = build(&agent, &ctx, &ToolOptions::default()).await.unwrap();
    let found: Vec<(String, String, String, bool, bool)> = tools
        .iter()
        .take(4)
        .map(|t| {
            let d = t.definition();
            let hints = d.annotations.unwrap();
            (
                d.kind,
                d.action_type,
                d.observation_type.unwrap(),
                hints.read_only_hint,
                hints.destructive_hint,
            )
        })
        .collect();
    let expected = [
        (
            "ReadFileTool",
            "ReadFileAction",
            "ReadFileObservation",
            true,
            false,
        ),
        (
            "WriteFileTool",
            "WriteFileAction",
            "WriteFileObservation",
            false,
            true,
        ),
        ("EditTool", "EditAction", "EditObservation", false, true),
        (
            "ListDirectoryTool",
            "ListDirectoryAction",
            "ListDirectoryObservation",
            true,
            false,
        ),
    ]
    .map(|(a, b, c, d, e)| (a.to_owned(), b.to_owned(), c.to_owned(), d, e));
    assert_eq!(found, expected);
    let root = dir.path().to_string_lossy();
    assert!(tools[0].definition().description.contains(&*root));
    // The reference records the workspace for the tools taking file paths.
    let metas: Vec<Option<Value>> = tools
        .iter()
        .take(4)
        .map(|t| t.definition().meta.map(Value::Object))
        .collect();
    let with_root = Some(json!({"workspace_root": root}));
    assert_eq!(
        metas,
        [with_root.clone(), with_root.clone(), with_root, None]
    );
}

fn call(name: &str, id: &str, args: Value) -> Reply {
    Reply::tools(vec![ScriptedCall::json(name, &args).with_id(id)])
}

#[tokio::test]
async fn a_conversation_uses_every_gemini_tool_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = std::fs::canonicalize(dir.path()).unwrap().join("ws");
    std::fs::create_dir_all(&workspace).unwrap();
    let ws = workspace.to_string_lossy().into_owned();
    let script = vec![
        call(
            "write_file",
            "c1",
            json!({"file_path": "notes/a.txt", "content": "alpha\nbeta\nbeta\n", "security_risk": "LOW"}),
        ),
        call(
            "read_file",
            "c2",
            json!({"file_path": "notes/a.txt", "offset": 1, "limit": 1}),
        ),
        // Two occurrences but one expected: refused, the file is left alone.
        call(
            "edit",
            "c3",
            json!({"file_path": "notes/a.txt", "old_string": "beta", "new_string": "gamma", "security_risk": "LOW"}),
        ),
        call(
            "edit",
            "c4",
            json!({"file_path": "notes/a.txt", "old_string": "beta", "new_string": "gamma", "expected_replacements": 2, "security_risk": "LOW"}),
        ),
        call(
            "list_directory",
            "c5",
            json!({"dir_path": ".", "recursive": true}),
        ),
        call("read_file", "c6", json!({"file_path": "missing.txt"})),
        call("finish", "c7", json!({"message": "done"})),
    ];
    let llm = ScriptedLlm::start(script).await.unwrap();
    let conversation = common::start(common::config(
        gemini_agent(&llm.base_url()),
        &workspace,
        None,
    ));
    conversation
        .send_text("Write, read, edit and list.")
        .await
        .unwrap();
    assert_eq!(conversation.run().await.unwrap(), ExecutionStatus::Finished);
    let events = conversation.events();
    conversation.close().await;

    assert_eq!(
        std::fs::read_to_string(workspace.join("notes/a.txt")).unwrap(),
        "alpha\ngamma\ngamma\n"
    );
    let observations: Vec<Observation> = events
        .iter()
        .filter_map(|e| match e {
            Event::Observation(o) => Some(o.observation.clone()),
            _ => None,
        })
        .collect();
    let file = format!("{ws}/notes/a.txt");
    let texts: Vec<String> = observations
        .iter()
        .map(|o| {
            let v = serde_json::to_value(o).unwrap();
            v["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        texts,
        [
            format!("Created file: {file}"),
            format!(
                "Read file: {file} (showing lines 2-2 of 3) To read more, use: \
                 read_file(file_path='notes/a.txt', offset=2, limit=1)\n\n     2  beta\n"
            ),
            format!("Error: Expected 1 occurrence but found 2 in {file}."),
            format!("Successfully edited {file} (2 replacement(s))"),
            format!("Listed directory: {ws} (2 entries)"),
            format!("Error: File not found: {ws}/missing.txt"),
            "done".to_owned(),
        ]
    );
    let Observation::ListDirectory(listing) = &observations[4] else {
        panic!("not a listing: {:?}", observations[4]);
    };
    let names: Vec<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["notes", "a.txt"]);

    let requests = llm.requests();
    let first = requests
        .iter()
        .find(|r| r.body.get("tools").is_some())
        .expect("a request with tools");
    assert_eq!(scrub(&first.body["tools"]), golden_tools());
    // The model saw the refused edit as an error it can act on.
    let after_refusal = requests[3].body["messages"].to_string();
    assert!(
        after_refusal.contains("[An error occurred during execution.]"),
        "{after_refusal}"
    );
    assert!(after_refusal.contains("Expected 1 occurrence but found 2"));
}
