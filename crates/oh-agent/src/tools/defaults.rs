//! [`Tool`] implementations of `terminal`, `file_editor` and `task_tracker` over their cores.

use std::sync::Mutex;

use futures::future::BoxFuture;
use oh_protocol::tool::ToolDefinition;
use oh_protocol::{Action, Observation};
use serde_json::{Map, Value};

use super::file_editor::{self, FileEditor};
use super::spec::{self, DefaultTool};
use super::task_tracker::{self, TaskTracker};
use super::terminal::{self, Terminal, TerminalConfig};
use super::{Tool, ToolContext, ToolError, ToolOptions};
use crate::llm::ToolSchema;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wrong_action(tool: &str) -> ToolError {
    ToolError::Internal(format!("{tool} got another tool's action"))
}

/// `terminal`: the conversation's persistent shell.
#[derive(Debug)]
pub struct TerminalTool {
    terminal: Terminal,
    working_dir: String,
}

impl TerminalTool {
    /// Starts the shell.
    pub async fn start(ctx: &ToolContext, options: &ToolOptions) -> Result<Self, ToolError> {
        let mut config = TerminalConfig::new(ctx.working_dir.clone());
        config.secrets = ctx.secrets.clone();
        config.conversation_dir = ctx.conversation_dir.clone();
        config.env.extend(options.env.iter().cloned());
        if let Some(timeout) = options.terminal_no_change_timeout {
            config.no_change_timeout = timeout;
        }
        Ok(Self {
            terminal: Terminal::start(config).await?,
            working_dir: ctx.working_dir.to_string_lossy().into_owned(),
        })
    }
}

impl Tool for TerminalTool {
    fn name(&self) -> &str {
        DefaultTool::Terminal.name()
    }
    fn schema(&self) -> ToolSchema {
        spec::tool_schema(DefaultTool::Terminal, &self.working_dir)
    }
    fn definition(&self) -> ToolDefinition {
        spec::tool_definition(DefaultTool::Terminal, &self.working_dir)
    }
    fn read_only(&self) -> bool {
        false
    }
    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        terminal::parse_action(arguments).map(Action::Terminal)
    }
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let Action::Terminal(action) = action else {
                return Err(wrong_action("terminal"));
            };
            self.terminal
                .execute(action)
                .await
                .map(Observation::Terminal)
        })
    }
    fn interrupt(&self) {
        self.terminal.interrupt();
    }
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.terminal.close())
    }
}

/// `file_editor`: view, create and edit files.
#[derive(Debug)]
pub struct FileEditorTool {
    editor: Mutex<FileEditor>,
    working_dir: String,
}

impl FileEditorTool {
    /// An editor rooted at the context's working directory.
    pub fn new(ctx: &ToolContext) -> Self {
        Self {
            editor: Mutex::new(FileEditor::new(ctx.working_dir.clone())),
            working_dir: ctx.working_dir.to_string_lossy().into_owned(),
        }
    }
}

impl Tool for FileEditorTool {
    fn name(&self) -> &str {
        DefaultTool::FileEditor.name()
    }
    fn schema(&self) -> ToolSchema {
        spec::tool_schema(DefaultTool::FileEditor, &self.working_dir)
    }
    fn definition(&self) -> ToolDefinition {
        spec::tool_definition(DefaultTool::FileEditor, &self.working_dir)
    }
    fn read_only(&self) -> bool {
        false
    }
    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        file_editor::parse_action(arguments).map(Action::FileEditor)
    }
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let Action::FileEditor(action) = action else {
                return Err(wrong_action("file_editor"));
            };
            let observation = lock(&self.editor).run(action);
            Ok(Observation::FileEditor(observation))
        })
    }
}

/// `task_tracker`: the agent's task list, saved with the conversation.
#[derive(Debug)]
pub struct TaskTrackerTool {
    tracker: Mutex<TaskTracker>,
}

impl TaskTrackerTool {
    /// A tracker saving to the conversation directory (reloading a saved list).
    pub fn new(ctx: &ToolContext) -> Self {
        Self {
            tracker: Mutex::new(TaskTracker::new(ctx.conversation_dir.clone())),
        }
    }
}

impl Tool for TaskTrackerTool {
    fn name(&self) -> &str {
        DefaultTool::TaskTracker.name()
    }
    fn schema(&self) -> ToolSchema {
        spec::tool_schema(DefaultTool::TaskTracker, "")
    }
    fn definition(&self) -> ToolDefinition {
        spec::tool_definition(DefaultTool::TaskTracker, "")
    }
    fn read_only(&self) -> bool {
        false
    }
    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        task_tracker::parse_action(arguments).map(Action::TaskTracker)
    }
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let Action::TaskTracker(action) = action else {
                return Err(wrong_action("task_tracker"));
            };
            let observation = lock(&self.tracker).run(action);
            Ok(Observation::TaskTracker(observation))
        })
    }
}
