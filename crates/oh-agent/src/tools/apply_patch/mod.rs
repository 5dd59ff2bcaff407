//! `apply_patch` (the SDK's gpt5 preset): edits files with a patch in the
//! `*** Begin Patch` … `*** End Patch` format (see [`core`]).
//!
//! Paths in the patch are relative to the workspace directory; absolute paths are accepted
//! when they resolve inside it. Anything resolving outside is refused with the reference's
//! text. A refused patch is an error observation carrying the reason; a file that is not
//! UTF-8 is an invalid call (the reference's `ValueError`); other I/O failures are internal
//! tool errors.

pub mod core;

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use oh_protocol::tool::ToolDefinition;
use oh_protocol::tool_gpt5_planning::{ApplyPatchAction, ApplyPatchObservation};
use oh_protocol::{Action, Content, Observation};
use serde_json::{Map, Value, json};

use self::core::{DiffError, PatchError, PatchFs, process_patch};
use super::py_resolve::resolve_in;
use super::{Tool, ToolContext, ToolError, strict_parse_schema};
use crate::llm::ToolSchema;

/// Wire name.
pub const NAME: &str = "apply_patch";

const DESCRIPTION: &str = "\
Edits files in the workspace by applying a patch.

The patch text must begin with a line `*** Begin Patch` and end with a line `*** End Patch`. Between them, one section per file:
* `*** Add File: <path>` creates a file; every following line is a line of the new file, prefixed with `+`.
* `*** Delete File: <path>` removes a file.
* `*** Update File: <path>` changes a file; an optional `*** Move to: <new path>` line right after it renames the file. Then come hunks: an optional `@@ <line>` naming a line (such as a function or class header) the hunk comes after, then the hunk's lines: context lines prefixed with a space, removed lines with `-`, added lines with `+`. Give about three lines of context around each change; end a hunk at the end of the file with `*** End of File`.

Paths are relative to the workspace directory and must stay inside it. The whole patch is checked before any file is changed; if it does not fit the files, nothing is written and the reason is reported.";

/// The action's parameter schema, without the injected fields.
pub fn action_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "patch": {
                "type": "string",
                "description": "The complete patch, from `*** Begin Patch` to `*** End Patch`.",
            },
        },
        "required": ["patch"],
    })
}

/// `apply_patch`, bound to the workspace directory.
#[derive(Debug)]
pub struct ApplyPatchTool {
    root: PathBuf,
}

impl ApplyPatchTool {
    /// The tool for a conversation working in `ctx.working_dir`.
    pub fn new(ctx: &ToolContext) -> Self {
        Self {
            root: super::py_resolve::resolve(&ctx.working_dir),
        }
    }

    /// Applies `patch`: the observation the model sees, or an error for a file that is not
    /// UTF-8 text or an I/O failure.
    pub fn apply(&self, patch: &str) -> Result<ApplyPatchObservation, ToolError> {
        let mut fs = WorkspaceFs { root: &self.root };
        match process_patch(patch, &mut fs) {
            Ok(applied) => Ok(ApplyPatchObservation {
                content: vec![Content::text(applied.message.clone())],
                is_error: false,
                message: applied.message,
                fuzz: applied.fuzz,
                commit: Some(applied.commit),
            }),
            Err(PatchError::Diff(DiffError(text))) => Ok(ApplyPatchObservation {
                content: vec![Content::text(text)],
                is_error: true,
                ..ApplyPatchObservation::default()
            }),
            Err(PatchError::Decode(text)) => Err(ToolError::Invalid(text)),
            Err(PatchError::Io(text)) => Err(ToolError::Internal(text)),
        }
    }
}

/// Files of the workspace, as `apply_patch` may touch them.
struct WorkspaceFs<'a> {
    root: &'a Path,
}

impl WorkspaceFs<'_> {
    fn resolve(&self, path: &str) -> Result<PathBuf, PatchError> {
        let resolved = resolve_in(self.root, path);
        if !resolved.starts_with(self.root) {
            return Err(PatchError::Diff(DiffError(
                "Absolute or escaping paths are not allowed".to_owned(),
            )));
        }
        Ok(resolved)
    }
}

fn io_error(err: &std::io::Error, path: &Path) -> PatchError {
    PatchError::Io(super::file_editor::os_error(err, path))
}

impl PatchFs for WorkspaceFs<'_> {
    fn read(&mut self, path: &str) -> Result<Option<String>, PatchError> {
        let file = self.resolve(path)?;
        match std::fs::read(&file) {
            Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| {
                let err = e.utf8_error();
                let at = err.valid_up_to();
                let byte = e.as_bytes().get(at).copied().unwrap_or_default();
                PatchError::Decode(format!(
                    "'utf-8' codec can't decode byte 0x{byte:02x} in position {at}: invalid \
                     start byte"
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&e, &file)),
        }
    }

    fn write(&mut self, path: &str, content: &str) -> Result<(), PatchError> {
        let file = self.resolve(path)?;
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_error(&e, parent))?;
        }
        std::fs::write(&file, content).map_err(|e| io_error(&e, &file))
    }

    fn remove(&mut self, path: &str) -> Result<(), PatchError> {
        let file = self.resolve(path)?;
        std::fs::remove_file(&file).map_err(|e| io_error(&e, &file))
    }
}

impl Tool for ApplyPatchTool {
    fn name(&self) -> &str {
        NAME
    }
    fn schema(&self) -> ToolSchema {
        ToolSchema {
            name: NAME.to_owned(),
            description: DESCRIPTION.to_owned(),
            parameters: super::spec::with_injected_fields(action_parameters(), false),
        }
    }
    fn definition(&self) -> ToolDefinition {
        super::spec::definition(
            NAME,
            "ApplyPatchTool",
            "ApplyPatchAction",
            "ApplyPatchObservation",
            DESCRIPTION.to_owned(),
            super::spec::annotations(NAME, false, true, false),
        )
    }
    fn read_only(&self) -> bool {
        false
    }
    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        strict_parse_schema::<ApplyPatchAction>(&action_parameters(), arguments)
            .map(Action::ApplyPatch)
    }
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let Action::ApplyPatch(action) = action else {
                return Err(ToolError::Internal(
                    "apply_patch got another tool's action".into(),
                ));
            };
            let patch = action.patch.clone();
            let root = self.root.clone();
            let tool = ApplyPatchTool { root };
            tokio::task::spawn_blocking(move || tool.apply(&patch))
                .await
                .map_err(|e| ToolError::Internal(format!("apply_patch stopped: {e}")))?
                .map(Observation::ApplyPatch)
        })
    }
}
