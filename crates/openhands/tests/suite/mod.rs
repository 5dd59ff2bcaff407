//! Shared helpers, and one module per topic.

mod conversation;
mod local_server;
mod workspace;

use oh_testkit::{Reply, ScriptedLlm};
use openhands::prelude::*;

/// An agent with the terminal and file editor on the scripted LLM.
pub(crate) fn scripted_agent(llm: &ScriptedLlm) -> Agent {
    let mut model = Llm::new("openai/scripted-model");
    model.base_url = Some(llm.base_url());
    Agent::new(
        model,
        vec![ToolSpec::new("terminal"), ToolSpec::new("file_editor")],
    )
}

/// A scripted LLM that answers `script`, and titles requests (the agent server's auto-title)
/// outside it.
pub(crate) async fn scripted(script: Vec<Reply>) -> ScriptedLlm {
    let llm = ScriptedLlm::start(script).await.expect("scripted LLM");
    llm.answer_toolless(Some(Reply::text("A title")));
    llm
}
