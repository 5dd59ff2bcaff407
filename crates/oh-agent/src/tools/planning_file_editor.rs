//! `planning_file_editor` (the SDK's planning preset): the file editor, with every command
//! but `view` allowed on the plan file only.
//!
//! The plan file is the tool parameter `plan_path` (absolute), else `PLAN.md` at the
//! workspace root if one exists there (the older location), else `.agents_tmp/PLAN.md`
//! under the workspace root. When the tool is built and the file is missing it is created
//! with the plan's section headers ([`plan_headers`]). Actions and observations are the file
//! editor's under their own kinds; the observation carries only the command, content, error
//! flag and path, as the reference's.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use futures::future::BoxFuture;
use oh_protocol::tool::{
    FileEditorAction, FileEditorCommand, FileEditorObservation, ToolDefinition,
};
use oh_protocol::{Action, Content, Observation};
use serde_json::{Map, Value};

use super::file_editor::{self, FileEditor, py_repr};
use super::py_resolve::resolve;
use super::spec::{self, DefaultTool};
use super::{Tool, ToolContext, ToolError};
use crate::llm::ToolSchema;

/// Wire name.
pub const NAME: &str = "planning_file_editor";

/// Directory of the default plan file, under the workspace root.
pub const PLAN_DIR: &str = ".agents_tmp";

/// File name of the plan.
pub const PLAN_FILENAME: &str = "PLAN.md";

/// The section titles of a plan, in order.
pub const PLAN_SECTIONS: [&str; 5] = [
    "OBJECTIVE",
    "CONTEXT SUMMARY",
    "APPROACH OVERVIEW",
    "IMPLEMENTATION STEPS",
    "TESTING AND VALIDATION",
];

/// What a new plan file holds: `# 1. OBJECTIVE` and the other numbered headers, separated
/// by blank lines.
pub fn plan_headers() -> String {
    PLAN_SECTIONS
        .iter()
        .enumerate()
        .map(|(i, title)| format!("# {}. {title}\n", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

const RESTRICTION: &str = "\
Restrictions of this planning editor:
* `view` works on any file or directory.
* `create`, `str_replace`, `insert` and `undo_edit` work on the plan file only; they are refused anywhere else.
* The plan file already exists and holds the plan's section headers: fill in the text under each header.";

/// `planning_file_editor`.
#[derive(Debug)]
pub struct PlanningFileEditorTool {
    editor: Mutex<FileEditor>,
    working_dir: String,
    plan_path: PathBuf,
}

impl PlanningFileEditorTool {
    /// Builds the tool, creating the plan file if missing. `plan_path` is the tool spec's
    /// parameter, if any.
    pub fn new(ctx: &ToolContext, plan_path: Option<&str>) -> Result<Self, ToolError> {
        let plan_path = match plan_path {
            Some(path) if !Path::new(path).is_absolute() => {
                return Err(ToolError::Invalid(format!(
                    "plan_path must be an absolute path, got: {path}"
                )));
            }
            Some(path) => PathBuf::from(path),
            None => {
                let root = resolve(&ctx.working_dir);
                let legacy = root.join(PLAN_FILENAME);
                if legacy.exists() {
                    legacy
                } else {
                    root.join(PLAN_DIR).join(PLAN_FILENAME)
                }
            }
        };
        if !plan_path.exists() {
            let created = plan_path
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&plan_path, plan_headers()));
            created.map_err(|e| ToolError::Internal(file_editor::os_error(&e, &plan_path)))?;
        }
        Ok(Self {
            editor: Mutex::new(FileEditor::new(ctx.working_dir.clone())),
            working_dir: ctx.working_dir.to_string_lossy().into_owned(),
            plan_path,
        })
    }

    /// The plan file.
    pub fn plan_path(&self) -> &Path {
        &self.plan_path
    }

    fn description(&self) -> String {
        format!(
            "{}\n\n{RESTRICTION}\n\nThe working directory is {}.\nThe plan file is {}; other \
             agents of the workflow read it from there.",
            spec::description(DefaultTool::FileEditor, &self.working_dir),
            self.working_dir,
            self.plan_path.display()
        )
    }

    /// Runs one command.
    pub fn run(&self, action: &FileEditorAction) -> FileEditorObservation {
        if action.command != FileEditorCommand::View {
            let target = resolve(Path::new(&action.path));
            let allowed = resolve(&self.plan_path);
            if target != allowed {
                return FileEditorObservation {
                    content: vec![Content::text(format!(
                        "Operation '{}' is not allowed on file '{}'. Only the following files \
                         can be edited: [{}]",
                        command_name(action.command),
                        target.display(),
                        py_repr(&allowed.to_string_lossy())
                    ))],
                    is_error: true,
                    command: action.command,
                    path: None,
                    prev_exist: true,
                    old_content: None,
                    new_content: None,
                };
            }
        }
        let observation = self
            .editor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .run(action);
        FileEditorObservation {
            content: observation.content,
            is_error: observation.is_error,
            command: action.command,
            path: observation.path,
            prev_exist: true,
            old_content: None,
            new_content: None,
        }
    }
}

fn command_name(command: FileEditorCommand) -> String {
    serde_json::to_value(command)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Tool for PlanningFileEditorTool {
    fn name(&self) -> &str {
        NAME
    }
    fn schema(&self) -> ToolSchema {
        ToolSchema {
            name: NAME.to_owned(),
            description: self.description(),
            parameters: spec::wire_parameters(DefaultTool::FileEditor),
        }
    }
    fn definition(&self) -> ToolDefinition {
        super::spec::definition(
            NAME,
            "PlanningFileEditorTool",
            "PlanningFileEditorAction",
            "PlanningFileEditorObservation",
            self.description(),
            super::spec::annotations(NAME, false, false, false),
        )
    }
    fn read_only(&self) -> bool {
        false
    }
    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        file_editor::parse_action(arguments).map(Action::PlanningFileEditor)
    }
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let Action::PlanningFileEditor(action) = action else {
                return Err(ToolError::Internal(
                    "planning_file_editor got another tool's action".into(),
                ));
            };
            Ok(Observation::PlanningFileEditor(self.run(action)))
        })
    }
}
