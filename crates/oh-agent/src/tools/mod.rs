//! Tools the agent can call.
//!
//! A [`Tool`] has a wire name, a parameter schema, a validator turning the model's JSON
//! arguments into a typed [`Action`], and an executor producing an [`Observation`]. Tools are
//! built per conversation from a [`ToolContext`] (working directory, conversation directory,
//! secrets). [`default_tools`] builds the reference's default set.

pub mod builtin;
pub mod file_editor;
pub mod spec;
pub mod task_tracker;
pub mod terminal;
pub mod truncate;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use oh_protocol::tool::ToolDefinition;
use oh_protocol::{Action, Observation};

use crate::llm::ToolSchema;
use crate::secrets::Secrets;

/// What a tool needs to know about its conversation.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The workspace directory; relative paths and new shells start here.
    pub working_dir: PathBuf,
    /// The conversation's persistence directory (`<root>/<hex id>`), if it is persisted.
    pub conversation_dir: Option<PathBuf>,
    /// The conversation's secrets.
    pub secrets: Secrets,
}

/// A tool failed to run (as opposed to running and reporting an error observation).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    /// The call was wrong in a way the agent can correct (the reference's `ValueError`).
    #[error("{0}")]
    Invalid(String),
    /// Something unexpected broke inside the tool.
    #[error("{0}")]
    Internal(String),
}

/// A callable tool.
pub trait Tool: Send + Sync + fmt::Debug {
    /// Wire name, e.g. `terminal`.
    fn name(&self) -> &str;

    /// The schema offered to the LLM, including the injected `security_risk` (unless
    /// read-only) and `summary` parameters.
    fn schema(&self) -> ToolSchema;

    /// The tool's record in the `SystemPromptEvent`.
    fn definition(&self) -> ToolDefinition;

    /// Whether the tool never changes anything (no `security_risk`, no confirmation).
    fn read_only(&self) -> bool;

    /// Validates the model's arguments (with `security_risk` and `summary` already removed)
    /// into an action. Unknown parameters are an error. The error text explains what is
    /// wrong, in words the model can act on.
    fn parse_action(
        &self,
        arguments: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Action, String>;

    /// Runs an action produced by [`Tool::parse_action`].
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>>;

    /// Interrupts a running call (Ctrl-C for the terminal). Default: nothing.
    fn interrupt(&self) {}

    /// Releases resources (kills shells). Default: nothing.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A shared tool.
pub type SharedTool = Arc<dyn Tool>;
