//! A plugin loaded into a local conversation: `oh_agent::plugin::load_plugin` on the
//! agent's context, `LocalConversation::set_agent_context` with the result, and the plugin's
//! command reaches the LLM on the next user message (and is in the stored state).

use super::common;

use std::path::Path;

use oh_protocol::ExecutionStatus;
use oh_protocol::agent::AgentBase;
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::json;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_command_reaches_the_llm_after_loading() {
    let dir = tempfile::tempdir().unwrap();
    let market = dir.path().join("market");
    write(
        &market.join(".claude-plugin/marketplace.json"),
        r#"{"name": "local", "owner": {"name": "t"}, "plugins": [{"name": "deploy", "source": "./deploy"}]}"#,
    );
    write(
        &market.join("deploy/commands/ship.md"),
        "---\ndescription: Ship it\n---\nSHIP-RULE-77: tag before pushing.\n",
    );
    let llm = ScriptedLlm::start(vec![
        Reply::tool("finish", json!({"message": "one"})),
        Reply::tool("finish", json!({"message": "two"})),
    ])
    .await
    .unwrap();
    let mut agent = common::agent(&llm.base_url());
    agent.agent_context = Some(json!({
        "registered_marketplaces": [{"name": "local", "source": market.to_string_lossy()}]
    }));
    let conv = common::start(common::config(agent, &dir.path().join("work"), None));
    conv.send_text("please /deploy:ship").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);

    let loaded = oh_agent::plugin::load_plugin(
        conv.agent_context().as_ref(),
        "deploy",
        &dir.path().join("cache"),
    )
    .await
    .unwrap();
    conv.set_agent_context(loaded.agent_context).unwrap();
    conv.send_text("please /deploy:ship").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);

    let requests = llm.requests();
    assert!(!requests[0].body.to_string().contains("SHIP-RULE-77"));
    assert!(requests[1].body.to_string().contains("SHIP-RULE-77"));
    let AgentBase::Agent(stored) = conv.state().agent else {
        panic!("not an Agent");
    };
    let skills = &stored.agent_context.unwrap()["skills"];
    assert_eq!(skills[0]["name"], "deploy:ship");
}
