//! The built-in tools `finish` and `think`.

use futures::future::BoxFuture;
use oh_protocol::tool::{
    FinishAction, FinishObservation, ThinkAction, ThinkObservation, ToolDefinition,
};
use oh_protocol::{Action, Content, Observation};
use serde_json::{Map, Value};

use super::spec::{self, DefaultTool};
use super::{Tool, ToolError, strict_parse};
use crate::llm::ToolSchema;

/// What `think` answers.
pub const THOUGHT_LOGGED: &str = "Your thought has been logged.";

/// `finish`: ends the task with a message to the user.
#[derive(Debug, Default)]
pub struct FinishTool;

impl Tool for FinishTool {
    fn name(&self) -> &str {
        DefaultTool::Finish.name()
    }

    fn schema(&self) -> ToolSchema {
        spec::tool_schema(DefaultTool::Finish, "")
    }

    fn definition(&self) -> ToolDefinition {
        spec::tool_definition(DefaultTool::Finish, "")
    }

    fn read_only(&self) -> bool {
        true
    }

    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        strict_parse::<FinishAction>(DefaultTool::Finish, arguments).map(Action::Finish)
    }

    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let Action::Finish(finish) = action else {
                return Err(ToolError::Internal(
                    "finish got another tool's action".into(),
                ));
            };
            Ok(Observation::Finish(FinishObservation {
                content: vec![Content::text(finish.message.clone())],
                is_error: false,
            }))
        })
    }
}

/// `think`: logs a thought, changes nothing.
#[derive(Debug, Default)]
pub struct ThinkTool;

impl Tool for ThinkTool {
    fn name(&self) -> &str {
        DefaultTool::Think.name()
    }

    fn schema(&self) -> ToolSchema {
        spec::tool_schema(DefaultTool::Think, "")
    }

    fn definition(&self) -> ToolDefinition {
        spec::tool_definition(DefaultTool::Think, "")
    }

    fn read_only(&self) -> bool {
        true
    }

    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        strict_parse::<ThinkAction>(DefaultTool::Think, arguments).map(Action::Think)
    }

    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            if !matches!(action, Action::Think(_)) {
                return Err(ToolError::Internal(
                    "think got another tool's action".into(),
                ));
            }
            Ok(Observation::Think(ThinkObservation {
                content: vec![Content::text(THOUGHT_LOGGED)],
                is_error: false,
            }))
        })
    }
}
