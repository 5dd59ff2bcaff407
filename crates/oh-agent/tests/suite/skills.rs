//! Skills in a local conversation: the agent context's always-active skills reach the system
//! prompt, a keyword in a user message activates its skill once (the message event's
//! `activated_skills` / `extended_content`, and the LLM request), and project skills are
//! loaded from the workspace when the context asks for them.

use super::common;

use oh_protocol::{Event, ExecutionStatus};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

fn user_messages(events: &[Event]) -> Vec<&oh_protocol::MessageEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.base.source == oh_protocol::event::Source::User => Some(m),
            _ => None,
        })
        .collect()
}

/// The text of every content part of a request message, joined.
fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyword_activates_its_skill_once_and_repo_skills_are_in_the_system_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("finish", json!({"message": "one"})),
        Reply::tool("finish", json!({"message": "two"})),
    ])
    .await
    .unwrap();
    let mut agent = common::agent(&llm.base_url());
    agent.agent_context = Some(json!({
        "skills": [
            {"name": "house-style", "content": "Always answer in haiku.", "trigger": null,
             "source": "/repo/.openhands/skills/house-style.md"},
            {"name": "zebra", "content": "Zebras have stripes (SKILL-BODY-42).",
             "source": "/repo/.openhands/skills/zebra.md", "description": "Facts about zebras.",
             "trigger": {"type": "keyword", "keywords": ["zebra"]}},
            {"name": "quiet", "content": "never seen", "trigger": {"type": "keyword", "keywords": ["absent"]}}
        ],
        "system_message_suffix": "SUFFIX-7",
        "current_datetime": "2026-01-02T03:04"
    }));
    let conv = common::start(common::config(agent, dir.path(), None));
    conv.send_text("Tell me about the Zebra.").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    conv.send_text("More about zebra please.").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);

    let events = conv.events();
    let users = user_messages(&events);
    assert_eq!(users[0].activated_skills, ["zebra"]);
    assert_eq!(users[0].extended_content.len(), 1);
    let extra = &users[0].extended_content[0].text;
    assert!(
        extra.contains("<EXTRA_INFO>") && extra.contains("SKILL-BODY-42"),
        "{extra}"
    );
    assert!(
        extra.contains("/repo/.openhands/skills/zebra.md"),
        "{extra}"
    );
    // Already active: not added a second time.
    assert!(users[1].activated_skills.is_empty());
    assert!(users[1].extended_content.is_empty());
    assert_eq!(conv.state().activated_knowledge_skills, ["zebra"]);

    let requests = llm.requests();
    let first = &requests[0].body["messages"];
    let system = message_text(&first[0]);
    assert!(system.contains("<REPO_CONTEXT>"), "{system}");
    assert!(
        system
            .contains("[BEGIN context from [house-style]]\nAlways answer in haiku.\n[END Context]")
    );
    assert!(
        system.contains("<SKILLS>") && system.contains("<name>zebra</name>"),
        "{system}"
    );
    assert!(
        system.contains("<description>Facts about zebras.</description>"),
        "{system}"
    );
    assert!(system.contains("SUFFIX-7"));
    assert!(system.contains("2026-01-02T03:04"));
    assert!(
        !system.contains("SKILL-BODY-42"),
        "triggered content leaked into the system prompt"
    );
    // The user message carries the skill's content, as its own content part.
    let user = &first[1];
    assert_eq!(user["role"], "user");
    let parts = user["content"].as_array().unwrap();
    assert_eq!(parts[0]["text"], "Tell me about the Zebra.");
    assert!(parts[1]["text"].as_str().unwrap().contains("SKILL-BODY-42"));
    // The second request shows the first message's skill text once, and none for the second.
    let second = requests[1].body["messages"].to_string();
    assert_eq!(second.matches("SKILL-BODY-42").count(), 1, "{second}");
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_skills_are_loaded_from_the_workspace_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(workspace.join(".openhands/skills")).unwrap();
    std::fs::write(workspace.join("AGENTS.md"), "PROJECT-AGENTS-FILE").unwrap();
    std::fs::write(
        workspace.join(".openhands/skills/deploy.md"),
        "---\ntriggers:\n- deploy\n---\nDEPLOY-STEPS",
    )
    .unwrap();
    let llm = ScriptedLlm::start(vec![Reply::tool("finish", json!({"message": "ok"}))])
        .await
        .unwrap();
    let mut agent = common::agent(&llm.base_url());
    agent.agent_context = Some(json!({"load_project_skills": true, "current_datetime": null}));
    let conv = common::start(common::config(agent, &workspace, None));
    conv.send_text("How do I deploy?").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let body = &llm.requests()[0].body["messages"];
    let system = message_text(&body[0]);
    assert!(
        system.contains("[BEGIN context from [agents]]\nPROJECT-AGENTS-FILE"),
        "{system}"
    );
    assert!(!system.contains("<CURRENT_DATETIME>"), "{system}");
    assert!(message_text(&body[1]).contains("DEPLOY-STEPS"));
    assert_eq!(
        user_messages(&conv.events())[0].activated_skills,
        ["deploy"]
    );
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_agent_context_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("AGENTS.md"), "NOT-LOADED").unwrap();
    let llm = ScriptedLlm::start(vec![Reply::tool("finish", json!({"message": "ok"}))])
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("zebra").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let body = llm.requests()[0].body["messages"].to_string();
    assert!(!body.contains("NOT-LOADED") && !body.contains("REPO_CONTEXT"));
    assert!(user_messages(&conv.events())[0].extended_content.is_empty());
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_instruction_file_applies_when_the_agent_touches_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(workspace.join("sub")).unwrap();
    std::fs::write(workspace.join("sub/AGENTS.md"), "SUB-DIR-RULE-3").unwrap();
    let inside = workspace.join("sub/new.txt");
    let outside = workspace.join("top.txt");
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "file_editor",
            json!({"command": "create", "path": outside, "file_text": "x"}),
        ),
        Reply::tool(
            "file_editor",
            json!({"command": "create", "path": inside, "file_text": "y"}),
        ),
        Reply::tool("file_editor", json!({"command": "view", "path": inside})),
        Reply::tool("finish", json!({"message": "ok"})),
    ])
    .await
    .unwrap();
    let mut agent = common::agent(&llm.base_url());
    agent.agent_context = Some(json!({"load_project_skills": true}));
    let conv = common::start(common::config(agent, &workspace, None));
    conv.send_text("Write the files.").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let extended: Vec<Vec<String>> = conv
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Observation(o) if o.tool_name == "file_editor" => {
                Some(o.extended_content.iter().map(|t| t.text.clone()).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(extended.len(), 3);
    assert!(extended[0].is_empty(), "a file outside sub/ fired the rule");
    assert_eq!(extended[1].len(), 1);
    assert!(extended[1][0].contains("SUB-DIR-RULE-3") && extended[1][0].contains("\"sub/**\""));
    assert!(extended[2].is_empty(), "the rule fired twice");
    assert_eq!(conv.state().activated_path_rules, ["agents:sub"]);
    // The model sees the rule with the tool result that touched the directory.
    let requests = llm.requests();
    let tool_results: Vec<&Value> = requests[2].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert!(message_text(tool_results[1]).contains("SUB-DIR-RULE-3"));
    assert!(!message_text(tool_results[0]).contains("SUB-DIR-RULE-3"));
    conv.close().await;
}
