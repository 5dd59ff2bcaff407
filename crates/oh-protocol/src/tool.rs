//! Actions and observations of the default tools, and tool definitions.
//!
//! Tool names on the wire: `terminal`, `file_editor`, `task_tracker`, `finish`, `think`, and
//! of the gpt5 and planning presets `apply_patch`, `glob`, `grep`, `planning_file_editor`
//! (their types are in [`crate::tool_gpt5_planning`]). The `kind` of an action or observation
//! is the Python class name (`TerminalAction`, …). Actions and observations of other tools
//! decode to `Unknown` and are kept verbatim.

use serde::{Deserialize, Serialize};

pub use crate::gemini::{
    EditAction, EditObservation, FileEntry, ListDirectoryAction, ListDirectoryObservation,
    ReadFileAction, ReadFileObservation, WriteFileAction, WriteFileObservation,
};
use crate::message::Content;
use crate::tagged::{Unknown, tagged_union};
use crate::wire::{omit_none, yes};

/// The arguments of a tool call, validated (`Action`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// `terminal`.
    Terminal(TerminalAction),
    /// `file_editor`.
    FileEditor(FileEditorAction),
    /// `task_tracker`.
    TaskTracker(TaskTrackerAction),
    /// `finish`.
    Finish(FinishAction),
    /// `think`.
    Think(ThinkAction),
    /// `apply_patch` (gpt5 preset).
    ApplyPatch(crate::tool_gpt5_planning::ApplyPatchAction),
    /// `glob` (planning preset).
    Glob(crate::tool_gpt5_planning::GlobAction),
    /// `grep` (planning preset).
    Grep(crate::tool_gpt5_planning::GrepAction),
    /// `planning_file_editor` (planning preset): a file editor action under its own kind.
    PlanningFileEditor(FileEditorAction),
    /// `read_file` (gemini preset).
    ReadFile(ReadFileAction),
    /// `write_file` (gemini preset).
    WriteFile(WriteFileAction),
    /// `edit` (gemini preset).
    Edit(EditAction),
    /// `list_directory` (gemini preset).
    ListDirectory(ListDirectoryAction),
    /// Another tool's action, kept verbatim.
    Unknown(Unknown),
}

tagged_union! { Action, tag = "kind";
    Terminal(TerminalAction) = "TerminalAction",
    FileEditor(FileEditorAction) = "FileEditorAction",
    TaskTracker(TaskTrackerAction) = "TaskTrackerAction",
    Finish(FinishAction) = "FinishAction",
    Think(ThinkAction) = "ThinkAction",
    ApplyPatch(crate::tool_gpt5_planning::ApplyPatchAction) = "ApplyPatchAction",
    Glob(crate::tool_gpt5_planning::GlobAction) = "GlobAction",
    Grep(crate::tool_gpt5_planning::GrepAction) = "GrepAction",
    PlanningFileEditor(FileEditorAction) = "PlanningFileEditorAction",
    ReadFile(ReadFileAction) = "ReadFileAction",
    WriteFile(WriteFileAction) = "WriteFileAction",
    Edit(EditAction) = "EditAction",
    ListDirectory(ListDirectoryAction) = "ListDirectoryAction",
}

/// What a tool produced (`Observation`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Observation {
    /// `terminal`.
    Terminal(TerminalObservation),
    /// `file_editor`.
    FileEditor(FileEditorObservation),
    /// `task_tracker`.
    TaskTracker(TaskTrackerObservation),
    /// `finish`.
    Finish(FinishObservation),
    /// `think`.
    Think(ThinkObservation),
    /// `apply_patch` (gpt5 preset).
    ApplyPatch(crate::tool_gpt5_planning::ApplyPatchObservation),
    /// `glob` (planning preset).
    Glob(crate::tool_gpt5_planning::GlobObservation),
    /// `grep` (planning preset).
    Grep(crate::tool_gpt5_planning::GrepObservation),
    /// `planning_file_editor` (planning preset): a file editor observation under its own kind.
    PlanningFileEditor(FileEditorObservation),
    /// `read_file` (gemini preset).
    ReadFile(ReadFileObservation),
    /// `write_file` (gemini preset).
    WriteFile(WriteFileObservation),
    /// `edit` (gemini preset).
    Edit(EditObservation),
    /// `list_directory` (gemini preset).
    ListDirectory(ListDirectoryObservation),
    /// Another tool's observation, kept verbatim.
    Unknown(Unknown),
}

tagged_union! { Observation, tag = "kind";
    Terminal(TerminalObservation) = "TerminalObservation",
    FileEditor(FileEditorObservation) = "FileEditorObservation",
    TaskTracker(TaskTrackerObservation) = "TaskTrackerObservation",
    Finish(FinishObservation) = "FinishObservation",
    Think(ThinkObservation) = "ThinkObservation",
    ApplyPatch(crate::tool_gpt5_planning::ApplyPatchObservation) = "ApplyPatchObservation",
    Glob(crate::tool_gpt5_planning::GlobObservation) = "GlobObservation",
    Grep(crate::tool_gpt5_planning::GrepObservation) = "GrepObservation",
    PlanningFileEditor(FileEditorObservation) = "PlanningFileEditorObservation",
    ReadFile(ReadFileObservation) = "ReadFileObservation",
    WriteFile(WriteFileObservation) = "WriteFileObservation",
    Edit(EditObservation) = "EditObservation",
    ListDirectory(ListDirectoryObservation) = "ListDirectoryObservation",
}

/// Run a command in the conversation's persistent shell (`TerminalAction`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalAction {
    /// The command; empty to read more output of a running command; a key name with `is_input`.
    pub command: String,
    /// Send `command` to the running process instead of starting a new one.
    #[serde(default)]
    pub is_input: bool,
    /// Hard timeout in seconds; disables the no-output soft timeout.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub timeout: Option<f64>,
    /// Kill and recreate the shell first.
    #[serde(default)]
    pub reset: bool,
}

/// Shell state reported with a terminal observation (`CmdOutputMetadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmdOutputMetadata {
    /// Exit code; -1 while still running.
    #[serde(default = "minus_one")]
    pub exit_code: i64,
    /// Shell pid; -1 if unknown.
    #[serde(default = "minus_one")]
    pub pid: i64,
    /// User name.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub username: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub hostname: Option<String>,
    /// Working directory after the command.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub working_dir: Option<String>,
    /// Python interpreter on the shell's `PATH`.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub py_interpreter_path: Option<String>,
    /// Text put before the output for the LLM.
    #[serde(default)]
    pub prefix: String,
    /// Text put after the output for the LLM.
    #[serde(default)]
    pub suffix: String,
}

fn minus_one() -> i64 {
    -1
}

impl Default for CmdOutputMetadata {
    fn default() -> Self {
        Self {
            exit_code: -1,
            pid: -1,
            username: None,
            hostname: None,
            working_dir: None,
            py_interpreter_path: None,
            prefix: String::new(),
            suffix: String::new(),
        }
    }
}

/// Result of a terminal command (`TerminalObservation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TerminalObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The tool failed.
    #[serde(default)]
    pub is_error: bool,
    /// The command that ran.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub command: Option<String>,
    /// Exit code; -1 means still running after a timeout.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub exit_code: Option<i64>,
    /// A timeout occurred.
    #[serde(default)]
    pub timeout: bool,
    /// Shell state.
    #[serde(default)]
    pub metadata: CmdOutputMetadata,
    /// Where full outputs that were truncated for the LLM are saved.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub full_output_save_dir: Option<String>,
}

/// File editor sub-commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FileEditorCommand {
    /// Show a file with line numbers, or a directory listing.
    View,
    /// Create a new file.
    Create,
    /// Replace one unique occurrence of a string.
    StrReplace,
    /// Insert text after a line.
    Insert,
    /// Revert the last edit of a file.
    UndoEdit,
}

/// View, create and edit files (`FileEditorAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEditorAction {
    /// The operation.
    pub command: FileEditorCommand,
    /// Absolute path of a file or directory.
    pub path: String,
    /// Content for `create`.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub file_text: Option<String>,
    /// Text to replace for `str_replace`.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub old_str: Option<String>,
    /// Replacement for `str_replace`, text for `insert`.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub new_str: Option<String>,
    /// Insert after this line (0 = top).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub insert_line: Option<i64>,
    /// `[start, end]`, 1-based inclusive, `end = -1` for the end of the file.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub view_range: Option<Vec<i64>>,
}

/// Result of a file editor command (`FileEditorObservation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEditorObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The command failed.
    #[serde(default)]
    pub is_error: bool,
    /// The operation.
    pub command: FileEditorCommand,
    /// The file or directory.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub path: Option<String>,
    /// The file existed before.
    #[serde(default = "yes")]
    pub prev_exist: bool,
    /// Content before an edit.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub old_content: Option<String>,
    /// Content after an edit.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub new_content: Option<String>,
}

/// Task tracker sub-commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskTrackerCommand {
    /// Show the task list.
    #[default]
    View,
    /// Replace the task list.
    Plan,
}

/// Status of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaskStatus {
    /// Not started.
    #[default]
    Todo,
    /// Being worked on.
    InProgress,
    /// Finished and verified.
    Done,
}

/// One task of the task list (`TaskItem`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskItem {
    /// Short title.
    pub title: String,
    /// Free-form notes.
    #[serde(default)]
    pub notes: String,
    /// Status.
    #[serde(default)]
    pub status: TaskStatus,
}

/// View or replace the task list (`TaskTrackerAction`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TaskTrackerAction {
    /// The operation.
    #[serde(default)]
    pub command: TaskTrackerCommand,
    /// The full list, for `plan`.
    #[serde(default)]
    pub task_list: Vec<TaskItem>,
}

/// Result of a task tracker command (`TaskTrackerObservation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskTrackerObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The command failed.
    #[serde(default)]
    pub is_error: bool,
    /// The operation.
    pub command: TaskTrackerCommand,
    /// The list after the command.
    #[serde(default)]
    pub task_list: Vec<TaskItem>,
}

/// End the task (`FinishAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishAction {
    /// Final message to the user.
    pub message: String,
}

/// Result of `finish` (`FinishObservation`): the message as content.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FinishObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// Always false in practice.
    #[serde(default)]
    pub is_error: bool,
}

/// Log a thought (`ThinkAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThinkAction {
    /// The thought.
    pub thought: String,
}

/// Result of `think` (`ThinkObservation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ThinkObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// Always false in practice.
    #[serde(default)]
    pub is_error: bool,
}

/// MCP-style hints about a tool (`ToolAnnotations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolAnnotations {
    /// Human-readable title.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub title: Option<String>,
    /// The tool does not change its environment.
    #[serde(rename = "readOnlyHint", default)]
    pub read_only_hint: bool,
    /// The tool may destroy data.
    #[serde(rename = "destructiveHint", default = "yes")]
    pub destructive_hint: bool,
    /// Repeating a call has no further effect.
    #[serde(rename = "idempotentHint", default)]
    pub idempotent_hint: bool,
    /// The tool reaches outside the sandbox.
    #[serde(rename = "openWorldHint", default = "yes")]
    pub open_world_hint: bool,
}

/// A tool as recorded in the `SystemPromptEvent` (`ToolDefinition` as dumped).
///
/// Unlike actions, `kind` here is the tool's class (`TerminalTool`) and `title` its wire name
/// (`terminal`); the parameter schema is not part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Description shown to the LLM.
    pub description: String,
    /// `kind` of the tool's action.
    pub action_type: String,
    /// `kind` of the tool's observation.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub observation_type: Option<String>,
    /// Hints.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub annotations: Option<ToolAnnotations>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
    /// Extra guidance for the system prompt.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub prompt_guidance: Option<String>,
    /// Structured response schema.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub response_schema: Option<serde_json::Value>,
    /// The tool class, e.g. `TerminalTool`.
    pub kind: String,
    /// The tool name, e.g. `terminal`.
    pub title: String,
}
