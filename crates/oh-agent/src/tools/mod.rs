//! Tools the agent can call.
//!
//! A [`Tool`] has a wire name, a parameter schema, a validator turning the model's JSON
//! arguments into a typed [`Action`], and an executor producing an [`Observation`]. Tools are
//! built per conversation from a [`ToolContext`] (working directory, conversation directory,
//! secrets). [`build`] builds the tools an agent names, plus its built-ins.

pub mod apply_patch;
pub mod builtin;
pub mod defaults;
pub mod file_editor;
pub mod gemini;
pub mod glob;
pub mod grep;
pub mod planning_file_editor;
mod py_resolve;
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
use spec::DefaultTool;

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

/// Tuning of the default tools.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ToolOptions {
    /// The terminal's no-output (soft) timeout; default 30 s.
    pub terminal_no_change_timeout: Option<std::time::Duration>,
    /// Extra environment variables for the terminal's shell, on top of this process's
    /// (an agent server passes those its deferred init delivered). Names must be shell
    /// identifiers; credentials of the agent server among them are dropped, as from the
    /// inherited environment.
    pub env: Vec<(String, String)>,
}

impl ToolOptions {
    /// Sets the terminal's no-output timeout.
    pub fn terminal_no_change_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.terminal_no_change_timeout = Some(timeout);
        self
    }

    /// Sets the extra environment variables of the terminal's shell.
    pub fn env(mut self, env: Vec<(String, String)>) -> Self {
        self.env = env;
        self
    }
}

/// Registry names of a default tool, as `Tool(name=...)` specs spell them.
fn default_tool_for(spec_name: &str) -> Option<DefaultTool> {
    Some(match spec_name {
        "terminal" | "TerminalTool" | "BashTool" | "execute_bash" => DefaultTool::Terminal,
        "file_editor" | "FileEditorTool" | "str_replace_editor" => DefaultTool::FileEditor,
        "task_tracker" | "TaskTrackerTool" => DefaultTool::TaskTracker,
        "finish" | "FinishTool" => DefaultTool::Finish,
        "think" | "ThinkTool" => DefaultTool::Think,
        _ => return None,
    })
}

/// Registry names of the tools of the SDK's gpt5 and planning presets this crate builds.
fn preset_tool_for(spec_name: &str) -> Option<&'static str> {
    Some(match spec_name {
        "apply_patch" | "ApplyPatchTool" => apply_patch::NAME,
        "glob" | "GlobTool" => glob::NAME,
        "grep" | "GrepTool" => grep::NAME,
        "planning_file_editor" | "PlanningFileEditorTool" => planning_file_editor::NAME,
        _ => return None,
    })
}

/// Whether `spec_name` names a tool this crate can build (a registry name such as
/// `terminal`, or a tool class name such as `FinishTool`).
pub fn is_known(spec_name: &str) -> bool {
    default_tool_for(spec_name).is_some()
        || preset_tool_for(spec_name).is_some()
        || gemini::GeminiTool::from_spec_name(spec_name).is_some()
}

/// Registry names of every tool this crate can build, in a stable order: the default tools,
/// then the gemini, gpt5 and planning presets' own tools.
pub fn available() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = DefaultTool::ALL.iter().map(|t| t.name()).collect();
    names.extend(gemini::GeminiTool::ALL.iter().map(|tool| tool.name()));
    names.extend([
        apply_patch::NAME,
        glob::NAME,
        grep::NAME,
        planning_file_editor::NAME,
    ]);
    names
}

/// A tool to build: a default one, a gemini one, or one of another preset with its spec
/// parameters.
enum Wanted<'a> {
    Default(DefaultTool),
    Gemini(gemini::GeminiTool),
    Preset(
        &'static str,
        Option<&'a serde_json::Map<String, serde_json::Value>>,
    ),
}

impl Wanted<'_> {
    fn name(&self) -> &'static str {
        match self {
            Wanted::Default(tool) => tool.name(),
            Wanted::Gemini(tool) => tool.name(),
            Wanted::Preset(name, _) => name,
        }
    }
}

/// Builds one tool of another preset.
fn build_preset(
    name: &str,
    params: Option<&serde_json::Map<String, serde_json::Value>>,
    ctx: &ToolContext,
) -> Result<SharedTool, ToolError> {
    Ok(match name {
        apply_patch::NAME => Arc::new(apply_patch::ApplyPatchTool::new(ctx)),
        glob::NAME => Arc::new(glob::GlobTool::new(ctx)?),
        grep::NAME => Arc::new(grep::GrepTool::new(ctx)?),
        _ => {
            let plan_path = match params.and_then(|p| p.get("plan_path")) {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(path)) => Some(path.as_str()),
                Some(other) => {
                    return Err(ToolError::Invalid(format!(
                        "plan_path must be a string, got: {other}"
                    )));
                }
            };
            Arc::new(planning_file_editor::PlanningFileEditorTool::new(
                ctx, plan_path,
            )?)
        }
    })
}

/// Builds the agent's tools: its tool specs in order, filtered by `filter_tools_regex`, then
/// the built-ins of `include_default_tools` (exempt from the filter). Unknown tools and
/// duplicate names are errors.
pub async fn build(
    agent: &oh_protocol::Agent,
    ctx: &ToolContext,
    options: &ToolOptions,
) -> Result<Vec<SharedTool>, ToolError> {
    let filter = match &agent.filter_tools_regex {
        Some(pattern) => Some(
            regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| ToolError::Invalid(format!("invalid filter_tools_regex: {e}")))?,
        ),
        None => None,
    };
    let mut wanted: Vec<Wanted<'_>> = Vec::new();
    for spec in &agent.tools {
        let tool = if let Some(tool) = default_tool_for(&spec.name) {
            Wanted::Default(tool)
        } else if let Some(tool) = gemini::GeminiTool::from_spec_name(&spec.name) {
            Wanted::Gemini(tool)
        } else if let Some(name) = preset_tool_for(&spec.name) {
            Wanted::Preset(name, Some(&spec.params))
        } else {
            return Err(ToolError::Invalid(format!(
                "tool '{}' is not available; known tools: {}",
                spec.name,
                available().join(", ")
            )));
        };
        if filter.as_ref().is_none_or(|re| re.is_match(tool.name())) {
            wanted.push(tool);
        }
    }
    for name in &agent.include_default_tools {
        let tool = default_tool_for(name)
            .ok_or_else(|| ToolError::Invalid(format!("unknown built-in tool '{name}'")))?;
        wanted.push(Wanted::Default(tool));
    }
    let mut seen = std::collections::HashSet::new();
    let mut tools: Vec<SharedTool> = Vec::with_capacity(wanted.len());
    for tool in wanted {
        if !seen.insert(tool.name()) {
            return Err(ToolError::Invalid(format!(
                "duplicate tool name '{}'",
                tool.name()
            )));
        }
        let built: SharedTool = match tool {
            Wanted::Default(DefaultTool::Terminal) => {
                Arc::new(defaults::TerminalTool::start(ctx, options).await?)
            }
            Wanted::Default(DefaultTool::FileEditor) => {
                Arc::new(defaults::FileEditorTool::new(ctx))
            }
            Wanted::Default(DefaultTool::TaskTracker) => {
                Arc::new(defaults::TaskTrackerTool::new(ctx))
            }
            Wanted::Default(DefaultTool::Finish) => Arc::new(builtin::FinishTool),
            Wanted::Default(DefaultTool::Think) => Arc::new(builtin::ThinkTool),
            Wanted::Gemini(tool) => Arc::new(gemini::GeminiFileTool::new(tool, ctx)),
            Wanted::Preset(name, params) => build_preset(name, params, ctx)?,
        };
        tools.push(built);
    }
    Ok(tools)
}

/// Validates `arguments` against the tool's parameter schema (no unknown keys, required keys
/// present) and decodes them into `T`.
pub(crate) fn strict_parse<T: serde::de::DeserializeOwned>(
    tool: DefaultTool,
    arguments: serde_json::Map<String, serde_json::Value>,
) -> Result<T, String> {
    strict_parse_schema(&spec::action_parameters(tool), arguments)
}

/// [`strict_parse`] against an explicit parameter schema (tools outside [`DefaultTool`]).
pub(crate) fn strict_parse_schema<T: serde::de::DeserializeOwned>(
    schema: &serde_json::Value,
    arguments: serde_json::Map<String, serde_json::Value>,
) -> Result<T, String> {
    let known = schema
        .get("properties")
        .and_then(serde_json::Value::as_object);
    if let Some(known) = known {
        let unknown: Vec<&str> = arguments
            .keys()
            .filter(|k| !known.contains_key(k.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "Extra inputs are not permitted: {}",
                unknown.join(", ")
            ));
        }
    }
    serde_json::from_value(serde_json::Value::Object(arguments)).map_err(|e| e.to_string())
}

/// What the LLM sees for an observation: tool-specific rendering (the terminal adds its
/// status lines and truncation), with an error marker block first for error observations.
pub fn observation_content(
    event: &oh_protocol::ObservationEvent,
    conversation_dir: Option<&std::path::Path>,
) -> Vec<oh_protocol::Content> {
    use oh_protocol::{Content, Observation};
    let (content, is_error) = match &event.observation {
        Observation::Terminal(o) => return terminal::llm_content(o, conversation_dir),
        Observation::FileEditor(o) => (o.content.clone(), o.is_error),
        Observation::TaskTracker(o) => (o.content.clone(), o.is_error),
        Observation::Finish(o) => (o.content.clone(), o.is_error),
        Observation::Think(o) => (o.content.clone(), o.is_error),
        Observation::ApplyPatch(o) => (o.content.clone(), o.is_error),
        Observation::Glob(o) => (o.content.clone(), o.is_error),
        Observation::Grep(o) => (o.content.clone(), o.is_error),
        Observation::PlanningFileEditor(o) => (o.content.clone(), o.is_error),
        Observation::ReadFile(o) => (o.content.clone(), o.is_error),
        Observation::WriteFile(o) => (o.content.clone(), o.is_error),
        Observation::Edit(o) => (o.content.clone(), o.is_error),
        Observation::ListDirectory(o) => (o.content.clone(), o.is_error),
        Observation::Unknown(raw) => {
            let text = raw
                .raw
                .get("content")
                .map(|c| c.to_string())
                .unwrap_or_default();
            (vec![Content::text(text)], false)
        }
        _ => (Vec::new(), false),
    };
    if is_error {
        let mut out = vec![Content::text(ERROR_PREFIX)];
        out.extend(content);
        out
    } else {
        content
    }
}

/// First block of an error observation as the LLM sees it.
pub const ERROR_PREFIX: &str = "[An error occurred during execution.]\n";
