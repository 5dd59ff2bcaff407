//! The SDK's gpt5 and planning presets: a conversation per preset runs to `finished` with
//! the scripted LLM calling each of the preset's tools, and every LLM request offers the
//! tools exactly as the reference does (`fixtures/llm_requests/tools_<preset>.json`, the
//! `tools` array of the reference's first request with descriptions scrubbed).

use super::common;

use std::path::Path;

use oh_agent::prompt::PLANNING_PROMPT_FILENAME;
use oh_protocol::{Agent, Event, ExecutionStatus, Observation, ToolSpec};
use oh_testkit::{Reply, ScriptedLlm};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llm_requests")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every non-empty `description` string replaced by the fixtures' placeholder.
fn scrub(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| match (key.as_str(), v) {
                    ("description", Value::String(text)) => {
                        assert!(!text.trim().is_empty(), "empty description");
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

/// Checks that every tool-bearing request offered the preset's golden tools.
fn assert_golden_tools(llm: &ScriptedLlm, preset: &str) {
    let golden = fixture(&format!("tools_{preset}.json"));
    assert_eq!(golden["preset"], preset);
    let requests = llm.requests();
    let with_tools: Vec<_> = requests
        .iter()
        .filter(|r| r.body.get("tools").is_some())
        .collect();
    assert!(!with_tools.is_empty());
    for request in with_tools {
        assert_eq!(scrub(&request.body["tools"]), golden["tools"]);
    }
}

fn observations(events: &[Event]) -> Vec<(String, Observation)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Observation(o) => Some((o.tool_name.clone(), o.observation.clone())),
            _ => None,
        })
        .collect()
}

fn agent(base_url: &str, tools: &[&str]) -> Agent {
    let mut agent = common::agent(base_url);
    agent.tools = tools.iter().map(|name| ToolSpec::new(*name)).collect();
    agent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpt5_preset_patches_runs_tracks_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "apply_patch",
            json!({"patch": "*** Begin Patch\n*** Add File: notes/hello.txt\n+hello\n+world\n*** End Patch", "summary": "add a file", "security_risk": "LOW"}),
        ),
        Reply::tool(
            "apply_patch",
            json!({"patch": "*** Begin Patch\n*** Update File: notes/hello.txt\n hello\n-world\n+there\n*** End Patch"}),
        ),
        Reply::tool(
            "apply_patch",
            json!({"patch": "*** Begin Patch\n*** Update File: notes/hello.txt\n-nowhere\n*** End Patch"}),
        ),
        Reply::tool("terminal", json!({"command": "cat notes/hello.txt"})),
        Reply::tool(
            "task_tracker",
            json!({"command": "plan", "task_list": [{"title": "Greet", "status": "done"}]}),
        ),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    let conversation = common::start(common::config(
        agent(
            &llm.base_url(),
            &["terminal", "apply_patch", "task_tracker"],
        ),
        &workspace,
        None,
    ));
    conversation.send_text("Write the greeting.").await.unwrap();
    assert_eq!(conversation.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(llm.remaining(), 0);
    assert_eq!(
        std::fs::read_to_string(workspace.join("notes/hello.txt")).unwrap(),
        "hello\nthere"
    );

    let seen = observations(&conversation.events());
    let names: Vec<&str> = seen.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "apply_patch",
            "apply_patch",
            "apply_patch",
            "terminal",
            "task_tracker",
            "finish"
        ]
    );
    let Observation::ApplyPatch(added) = &seen[0].1 else {
        panic!("{:?}", seen[0])
    };
    assert!(!added.is_error);
    assert_eq!(added.message, "Done!");
    let Observation::ApplyPatch(bad) = &seen[2].1 else {
        panic!("{:?}", seen[2])
    };
    assert!(bad.is_error);
    let Observation::Terminal(cat) = &seen[3].1 else {
        panic!("{:?}", seen[3])
    };
    assert_eq!(cat.exit_code, Some(0));

    // The model saw the refusal with the reason, and then the file's content.
    let requests = llm.requests();
    let fourth = common::request_text(&requests[3].body);
    assert!(fourth.contains("Invalid Context 0:\\nnowhere"), "{fourth}");
    assert!(
        fourth.contains("An error occurred during execution."),
        "{fourth}"
    );
    let fifth = common::request_text(&requests[4].body);
    assert!(fifth.contains("hello\\nthere"), "{fifth}");
    assert_golden_tools(&llm, "gpt5");
    conversation.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_preset_searches_writes_the_plan_and_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = std::fs::canonicalize(dir.path()).unwrap().join("workspace");
    std::fs::create_dir_all(workspace.join("src")).unwrap();
    std::fs::write(workspace.join("src/app.py"), "def handler():\n    pass\n").unwrap();
    let ws = workspace.to_string_lossy().into_owned();
    let plan = format!("{ws}/.agents_tmp/PLAN.md");
    let llm = ScriptedLlm::start(vec![
        Reply::tool("glob", json!({"pattern": "**/*.py", "summary": "find python"})),
        Reply::tool("grep", json!({"pattern": "def handler", "include": "*.py"})),
        Reply::tool(
            "planning_file_editor",
            json!({"command": "str_replace", "path": plan, "old_str": "# 1. OBJECTIVE\n", "new_str": "# 1. OBJECTIVE\nAdd logging to handler.\n"}),
        ),
        Reply::tool(
            "planning_file_editor",
            json!({"command": "create", "path": format!("{ws}/src/new.py"), "file_text": "x"}),
        ),
        Reply::tool("finish", json!({"message": "plan written"})),
    ])
    .await
    .unwrap();
    let mut planning = agent(&llm.base_url(), &["glob", "grep", "planning_file_editor"]);
    planning.system_prompt_filename = PLANNING_PROMPT_FILENAME.to_owned();
    planning.system_prompt_kwargs = serde_json::Map::new();
    planning
        .system_prompt_kwargs
        .insert("plan_structure".into(), json!("STRUCTURE-MARKER"));
    let conversation = common::start(common::config(planning, &workspace, None));
    conversation.send_text("Plan logging.").await.unwrap();
    assert_eq!(conversation.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(llm.remaining(), 0);

    assert!(
        std::fs::read_to_string(&plan)
            .unwrap()
            .starts_with("# 1. OBJECTIVE\nAdd logging to handler.\n\n# 2. CONTEXT SUMMARY\n")
    );
    assert!(!workspace.join("src/new.py").exists());
    let seen = observations(&conversation.events());
    let Observation::Glob(found) = &seen[0].1 else {
        panic!("{:?}", seen[0])
    };
    assert_eq!(found.files, [format!("{ws}/src/app.py")]);
    let Observation::Grep(matched) = &seen[1].1 else {
        panic!("{:?}", seen[1])
    };
    assert_eq!(matched.matches, [format!("{ws}/src/app.py")]);
    assert_eq!(matched.include_pattern.as_deref(), Some("*.py"));
    let Observation::PlanningFileEditor(edited) = &seen[2].1 else {
        panic!("{:?}", seen[2])
    };
    assert!(!edited.is_error);
    let Observation::PlanningFileEditor(refused) = &seen[3].1 else {
        panic!("{:?}", seen[3])
    };
    assert!(refused.is_error);

    // The planning system prompt, with the client's plan structure in its last section.
    let first = &llm.requests()[0].body;
    let system = first["messages"][0].to_string();
    assert!(system.contains("<PLANNING_WORKFLOW>"), "{system}");
    assert!(
        system.contains("<PLAN_STRUCTURE>\\nSTRUCTURE-MARKER\\n</PLAN_STRUCTURE>"),
        "{system}"
    );
    assert!(!system.contains("<SECURITY_RISK_ASSESSMENT>"), "{system}");
    assert_golden_tools(&llm, "planning");
    conversation.close().await;
}

#[tokio::test]
async fn unknown_and_misconfigured_preset_tools_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = oh_agent::tools::ToolContext {
        working_dir: dir.path().to_path_buf(),
        conversation_dir: None,
        secrets: Default::default(),
    };
    let options = oh_agent::tools::ToolOptions::default();
    let mut planning = agent("http://127.0.0.1:9", &["planning_file_editor"]);
    planning.tools[0]
        .params
        .insert("plan_path".into(), json!("relative/PLAN.md"));
    let err = oh_agent::tools::build(&planning, &ctx, &options)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "plan_path must be an absolute path, got: relative/PLAN.md"
    );
    let err = oh_agent::tools::build(
        &agent("http://127.0.0.1:9", &["browser_tool_set"]),
        &ctx,
        &options,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("apply_patch, glob, grep, planning_file_editor"),
        "{err}"
    );
    let twice = agent("http://127.0.0.1:9", &["glob", "GlobTool"]);
    let err = oh_agent::tools::build(&twice, &ctx, &options)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "duplicate tool name 'glob'");
}

/// The schemas our tools build, in the Chat Completions `tools` shape, equal the golden
/// files without going through a conversation.
#[tokio::test]
async fn built_tools_equal_the_golden_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = oh_agent::tools::ToolContext {
        working_dir: dir.path().to_path_buf(),
        conversation_dir: None,
        secrets: Default::default(),
    };
    let options = oh_agent::tools::ToolOptions::default();
    for (preset, names) in [
        ("gpt5", &["terminal", "apply_patch", "task_tracker"][..]),
        ("planning", &["glob", "grep", "planning_file_editor"][..]),
    ] {
        let tools = oh_agent::tools::build(&agent("http://127.0.0.1:9", names), &ctx, &options)
            .await
            .unwrap();
        let wire: Vec<Value> = tools
            .iter()
            .map(|tool| {
                let schema = tool.schema();
                assert_eq!(tool.definition().title, schema.name);
                json!({"type": "function", "function": {
                    "name": schema.name,
                    "description": schema.description,
                    "parameters": schema.parameters,
                }})
            })
            .collect();
        assert_eq!(
            scrub(&Value::Array(wire)),
            fixture(&format!("tools_{preset}.json"))["tools"],
            "{preset}"
        );
        for tool in tools {
            tool.close().await;
        }
    }
}
