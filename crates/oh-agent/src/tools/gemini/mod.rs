//! The gemini preset's file tools: `read_file`, `write_file`, `edit` and `list_directory`.
//!
//! Wire schemas are the reference's (golden copy: `tests/fixtures/llm_requests/tools_gemini.json`,
//! checked by `tests/tool_schemas.rs`); the descriptions are our own. Behaviour follows the
//! reference's facts: relative paths are joined to the workspace directory, absolute paths
//! are used as given (these tools do not confine the model to the workspace, like the
//! reference's), text is read as UTF-8 with undecodable bytes replaced and `\r\n`/`\r`
//! turned into `\n`, and every failure is an error observation whose text says what to do.

pub mod edit;
pub mod list_directory;
pub mod read_file;
pub mod write_file;

use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use oh_protocol::tool::{ToolAnnotations, ToolDefinition};
use oh_protocol::{Action, Observation};
use serde_json::{Map, Value, json};

use super::file_editor::parse::{describe, integer, type_error};
use super::spec::with_injected_fields;
use super::{Tool, ToolContext, ToolError};
use crate::llm::ToolSchema;
use crate::pyfmt::py_join;

/// One of the gemini preset's file tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeminiTool {
    /// `read_file`: numbered lines of a file, 1000 at most per call.
    ReadFile,
    /// `write_file`: replace a file's content.
    WriteFile,
    /// `edit`: find and replace an exact string.
    Edit,
    /// `list_directory`: a directory's entries.
    ListDirectory,
}

impl GeminiTool {
    /// All four, in the preset's order.
    pub const ALL: [GeminiTool; 4] = [
        GeminiTool::ReadFile,
        GeminiTool::WriteFile,
        GeminiTool::Edit,
        GeminiTool::ListDirectory,
    ];

    /// The tool a `Tool(name=...)` spec names (registry name or class name).
    pub fn from_spec_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|tool| tool.name() == name || tool.kind() == name)
    }

    /// Wire name.
    pub fn name(self) -> &'static str {
        match self {
            GeminiTool::ReadFile => "read_file",
            GeminiTool::WriteFile => "write_file",
            GeminiTool::Edit => "edit",
            GeminiTool::ListDirectory => "list_directory",
        }
    }

    /// The reference's class name (`kind` in tool records).
    pub fn kind(self) -> &'static str {
        match self {
            GeminiTool::ReadFile => "ReadFileTool",
            GeminiTool::WriteFile => "WriteFileTool",
            GeminiTool::Edit => "EditTool",
            GeminiTool::ListDirectory => "ListDirectoryTool",
        }
    }

    /// `kind` of the tool's actions.
    pub fn action_kind(self) -> &'static str {
        match self {
            GeminiTool::ReadFile => "ReadFileAction",
            GeminiTool::WriteFile => "WriteFileAction",
            GeminiTool::Edit => "EditAction",
            GeminiTool::ListDirectory => "ListDirectoryAction",
        }
    }

    /// `kind` of the tool's observations.
    pub fn observation_kind(self) -> &'static str {
        match self {
            GeminiTool::ReadFile => "ReadFileObservation",
            GeminiTool::WriteFile => "WriteFileObservation",
            GeminiTool::Edit => "EditObservation",
            GeminiTool::ListDirectory => "ListDirectoryObservation",
        }
    }

    /// `read_file` and `list_directory` change nothing: no `security_risk` parameter.
    pub fn read_only(self) -> bool {
        matches!(self, GeminiTool::ReadFile | GeminiTool::ListDirectory)
    }

    /// The reference's MCP-style hints.
    pub fn annotations(self) -> ToolAnnotations {
        let read_only = self.read_only();
        super::spec::annotations(self.name(), read_only, !read_only, read_only)
    }

    /// The description shown to the LLM, ending with the workspace directory.
    pub fn description(self, working_dir: &str) -> String {
        let body = match self {
            GeminiTool::ReadFile => READ_FILE,
            GeminiTool::WriteFile => WRITE_FILE,
            GeminiTool::Edit => EDIT,
            GeminiTool::ListDirectory => LIST_DIRECTORY,
        };
        format!(
            "{body}\n\nThe working directory is {working_dir}; relative paths are taken from it, \
             absolute paths are used as they are."
        )
    }

    /// The tool's own parameters (without `security_risk` and `summary`).
    pub fn action_parameters(self) -> Value {
        match self {
            GeminiTool::ReadFile => json!({
                "type": "object",
                "properties": {
                    "file_path": {"type": "string", "description": "File to read, absolute or relative to the working directory."},
                    "offset": {"type": "integer", "description": "Number of lines to skip before the first line shown (0-based). Use it to page through a long file."},
                    "limit": {"type": "integer", "description": "How many lines to show, at least 1. Without it, up to 1000 lines are shown."},
                },
                "required": ["file_path"],
            }),
            GeminiTool::WriteFile => json!({
                "type": "object",
                "properties": {
                    "file_path": {"type": "string", "description": "File to write, absolute or relative to the working directory. Missing parent directories are created."},
                    "content": {"type": "string", "description": "The complete new content of the file."},
                },
                "required": ["file_path", "content"],
            }),
            GeminiTool::Edit => json!({
                "type": "object",
                "properties": {
                    "file_path": {"type": "string", "description": "File to change, absolute or relative to the working directory."},
                    "old_string": {"type": "string", "description": "Text to find, character for character (whitespace and indentation included). An empty string creates a new file holding `new_string`."},
                    "new_string": {"type": "string", "description": "Text to put in its place."},
                    "expected_replacements": {"type": "integer", "description": "How many times `old_string` must occur; every occurrence is replaced. 1 if left out. The edit is refused when the count differs."},
                },
                "required": ["file_path", "old_string", "new_string"],
            }),
            GeminiTool::ListDirectory => json!({
                "type": "object",
                "properties": {
                    "dir_path": {"type": "string", "description": "Directory to list, absolute or relative to the working directory; the working directory itself if left out."},
                    "recursive": {"type": "boolean", "description": "Also list the contents of subdirectories, two levels deep in all. False if left out."},
                },
            }),
        }
    }

    /// The parameters sent to the LLM.
    pub fn wire_parameters(self) -> Value {
        with_injected_fields(self.action_parameters(), self.read_only())
    }

    /// The tool as offered to the LLM.
    pub fn tool_schema(self, working_dir: &str) -> ToolSchema {
        ToolSchema {
            name: self.name().to_owned(),
            description: self.description(working_dir),
            parameters: self.wire_parameters(),
        }
    }

    /// The tool's record in the `SystemPromptEvent`.
    pub fn tool_definition(self, working_dir: &str) -> ToolDefinition {
        let mut definition = super::spec::definition(
            self.name(),
            self.kind(),
            self.action_kind(),
            self.observation_kind(),
            self.description(working_dir),
            self.annotations(),
        );
        // The reference records the workspace for the tools that take file paths.
        definition.meta = (self != GeminiTool::ListDirectory).then(|| {
            let mut meta = Map::new();
            meta.insert("workspace_root".into(), Value::from(working_dir));
            meta
        });
        definition
    }
}

const READ_FILE: &str = "\
Shows a text file with numbered lines.

* At most 1000 lines come back per call; when the file is longer, the answer says which lines \
were shown and gives the `offset` and `limit` to read the next part.
* `offset` skips that many lines (0-based) and `limit` caps how many are shown, for reading a \
large file piece by piece.
* Bytes that are not valid UTF-8 are shown as replacement characters.";

const WRITE_FILE: &str = "\
Writes a whole file: creates it (with any missing parent directories) or replaces everything \
it held before.

Use it for new files or complete rewrites. For a small change to an existing file, `edit` is \
safer, since it touches only the text it replaces.";

const EDIT: &str = "\
Changes a file by replacing an exact piece of text.

* `old_string` must match the file exactly, whitespace and indentation included. Take in a few \
lines around the change so it occurs only where you mean.
* `expected_replacements` (1 by default) must equal the number of occurrences; all of them \
are replaced. If it differs, or nothing matches, the file is left alone and you are told why.
* `old_string` and `new_string` must differ.
* An empty `old_string` creates a new file containing `new_string`; it fails if the file \
already exists (use `write_file` to replace a file).
* Check the exact text with `read_file` first.";

const LIST_DIRECTORY: &str = "\
Lists what a directory holds: files and subdirectories with their sizes and modification \
times, hidden entries included.

* Only the directory's own entries unless `recursive` is true, which also lists the \
subdirectories' entries, two levels deep in all.
* At most 500 entries are returned.";

/// `str(Path(working_dir) / path)`: relative paths joined to the working directory,
/// absolute ones as given, both normalised as `pathlib` prints them.
pub(crate) fn resolve(working_dir: &Path, path: &str) -> PathBuf {
    PathBuf::from(py_join(&working_dir.to_string_lossy(), path))
}

/// Lossy UTF-8 decoding with Python's universal-newline translation, as
/// `open(path, encoding="utf-8", errors="replace").read()` gives.
pub(crate) fn decode_text(bytes: &[u8]) -> String {
    super::file_editor::text::normalize_newlines(&String::from_utf8_lossy(bytes))
}

/// The message of a failed file operation, as the reference words it: a permission
/// problem names the path, anything else says what failed and the OS error.
pub(crate) fn io_failure(err: &std::io::Error, what: &str, path: &Path) -> String {
    if err.kind() == std::io::ErrorKind::PermissionDenied {
        format!("Error: Permission denied: {}", path.display())
    } else {
        format!("Error {what}: {}", crate::pyfmt::os_error(err, path))
    }
}

// ------------------------------------------------------------------------- arguments

/// The model's arguments, checked against the tool's parameter list.
struct Args {
    tool: GeminiTool,
    map: Map<String, Value>,
}

impl Args {
    fn new(tool: GeminiTool, map: Map<String, Value>) -> Result<Self, String> {
        let parameters = tool.action_parameters();
        let known: Vec<&str> = parameters["properties"]
            .as_object()
            .map(|props| props.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if let Some(unknown) = map.keys().find(|key| !known.contains(&key.as_str())) {
            let mut names: Vec<String> = known.iter().map(|name| format!("`{name}`")).collect();
            names.sort();
            return Err(format!(
                "Unexpected parameter `{unknown}`. The {} tool accepts: {}.",
                tool.name(),
                names.join(", ")
            ));
        }
        Ok(Self { tool, map })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name).filter(|value| !value.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<String>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(type_error(name, "a string", other)),
        }
    }

    fn required_string(&self, name: &str) -> Result<String, String> {
        self.string(name)?.ok_or_else(|| {
            format!(
                "Missing required parameter `{name}` of the {} tool.",
                self.tool.name()
            )
        })
    }

    /// An integer of at least `min` (Pydantic's lax integers: integral floats and numeric
    /// strings pass).
    fn integer_at_least(&self, name: &str, min: i64) -> Result<Option<u64>, String> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        let number = integer(value).ok_or_else(|| type_error(name, "an integer", value))?;
        if number < min {
            return Err(format!(
                "Parameter `{name}` must be greater than or equal to {min}, got {number}."
            ));
        }
        u64::try_from(number)
            .map(Some)
            .map_err(|_| type_error(name, "an integer", value))
    }

    /// A boolean; `"true"`/`"false"` and `0`/`1` pass as in Pydantic's lax mode.
    fn boolean(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::String(text)) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" | "t" | "y" => Ok(Some(true)),
                "false" | "no" | "off" | "0" | "f" | "n" => Ok(Some(false)),
                _ => Err(format!(
                    "Parameter `{name}` must be a boolean, got {}.",
                    describe(&Value::String(text.clone()))
                )),
            },
            Some(value) => match integer(value) {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(type_error(name, "a boolean", value)),
            },
        }
    }
}

/// Validates the model's arguments for `tool` into an action.
pub fn parse_action(tool: GeminiTool, arguments: Map<String, Value>) -> Result<Action, String> {
    use oh_protocol::tool::{EditAction, ListDirectoryAction, ReadFileAction, WriteFileAction};
    let args = Args::new(tool, arguments)?;
    Ok(match tool {
        GeminiTool::ReadFile => Action::ReadFile(ReadFileAction {
            file_path: args.required_string("file_path")?,
            offset: args.integer_at_least("offset", 0)?,
            limit: args.integer_at_least("limit", 1)?,
        }),
        GeminiTool::WriteFile => Action::WriteFile(WriteFileAction {
            file_path: args.required_string("file_path")?,
            content: args.required_string("content")?,
        }),
        GeminiTool::Edit => Action::Edit(EditAction {
            file_path: args.required_string("file_path")?,
            old_string: args.required_string("old_string")?,
            new_string: args.required_string("new_string")?,
            expected_replacements: args
                .integer_at_least("expected_replacements", 0)?
                .unwrap_or(1),
        }),
        GeminiTool::ListDirectory => Action::ListDirectory(ListDirectoryAction {
            dir_path: args.string("dir_path")?.unwrap_or_else(|| ".".to_owned()),
            recursive: args.boolean("recursive")?.unwrap_or(false),
        }),
    })
}

// ------------------------------------------------------------------------- the tool

/// One gemini file tool bound to a conversation's working directory.
#[derive(Debug)]
pub struct GeminiFileTool {
    tool: GeminiTool,
    working_dir: PathBuf,
}

impl GeminiFileTool {
    /// `tool`, resolving relative paths against the context's working directory.
    pub fn new(tool: GeminiTool, ctx: &ToolContext) -> Self {
        Self {
            tool,
            working_dir: ctx.working_dir.clone(),
        }
    }

    fn working_dir_text(&self) -> String {
        self.working_dir.to_string_lossy().into_owned()
    }
}

impl Tool for GeminiFileTool {
    fn name(&self) -> &str {
        self.tool.name()
    }
    fn schema(&self) -> ToolSchema {
        self.tool.tool_schema(&self.working_dir_text())
    }
    fn definition(&self) -> ToolDefinition {
        self.tool.tool_definition(&self.working_dir_text())
    }
    fn read_only(&self) -> bool {
        self.tool.read_only()
    }
    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        parse_action(self.tool, arguments)
    }
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let root = self.working_dir.clone();
            let action = action.clone();
            let tool = self.tool;
            // File work blocks; keep it off the async workers.
            tokio::task::spawn_blocking(move || match (tool, &action) {
                (GeminiTool::ReadFile, Action::ReadFile(a)) => {
                    Ok(Observation::ReadFile(read_file::run(&root, a)))
                }
                (GeminiTool::WriteFile, Action::WriteFile(a)) => {
                    Ok(Observation::WriteFile(write_file::run(&root, a)))
                }
                (GeminiTool::Edit, Action::Edit(a)) => Ok(Observation::Edit(edit::run(&root, a))),
                (GeminiTool::ListDirectory, Action::ListDirectory(a)) => {
                    Ok(Observation::ListDirectory(list_directory::run(&root, a)))
                }
                _ => Err(ToolError::Internal(format!(
                    "{} got another tool's action",
                    tool.name()
                ))),
            })
            .await
            .map_err(|e| ToolError::Internal(format!("{} stopped: {e}", self.tool.name())))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn names_round_trip() {
        for tool in GeminiTool::ALL {
            assert_eq!(GeminiTool::from_spec_name(tool.name()), Some(tool));
            assert_eq!(GeminiTool::from_spec_name(tool.kind()), Some(tool));
        }
        assert_eq!(GeminiTool::from_spec_name("file_editor"), None);
    }

    #[test]
    fn read_file_arguments() {
        let Action::ReadFile(a) = parse_action(
            GeminiTool::ReadFile,
            args(json!({"file_path": "a.txt", "offset": "3", "limit": 2.0})),
        )
        .unwrap() else {
            panic!("not a read_file action")
        };
        assert_eq!((a.offset, a.limit), (Some(3), Some(2)));
        let err = parse_action(
            GeminiTool::ReadFile,
            args(json!({"file_path": "a", "limit": 0})),
        )
        .unwrap_err();
        assert!(
            err.contains("`limit` must be greater than or equal to 1"),
            "{err}"
        );
        let err = parse_action(
            GeminiTool::ReadFile,
            args(json!({"file_path": "a", "offset": -1})),
        )
        .unwrap_err();
        assert!(
            err.contains("`offset` must be greater than or equal to 0"),
            "{err}"
        );
        let err = parse_action(GeminiTool::ReadFile, args(json!({"path": "a"}))).unwrap_err();
        assert!(err.contains("Unexpected parameter `path`"), "{err}");
        assert!(err.contains("`file_path`"), "{err}");
        let err = parse_action(GeminiTool::ReadFile, args(json!({}))).unwrap_err();
        assert!(
            err.contains("Missing required parameter `file_path`"),
            "{err}"
        );
    }

    #[test]
    fn edit_and_list_defaults() {
        let Action::Edit(e) = parse_action(
            GeminiTool::Edit,
            args(json!({"file_path": "f", "old_string": "a", "new_string": "b"})),
        )
        .unwrap() else {
            panic!("not an edit")
        };
        assert_eq!(e.expected_replacements, 1);
        let err = parse_action(
            GeminiTool::Edit,
            args(json!({"file_path": "f", "old_string": "a", "new_string": 3})),
        )
        .unwrap_err();
        assert!(err.contains("`new_string` must be a string"), "{err}");
        let Action::ListDirectory(l) =
            parse_action(GeminiTool::ListDirectory, args(json!({}))).unwrap()
        else {
            panic!("not a listing")
        };
        assert_eq!((l.dir_path.as_str(), l.recursive), (".", false));
        let err = parse_action(
            GeminiTool::ListDirectory,
            args(json!({"recursive": "maybe"})),
        )
        .unwrap_err();
        assert!(err.contains("`recursive` must be a boolean"), "{err}");
    }

    #[test]
    fn read_only_tools_get_no_security_risk() {
        for tool in GeminiTool::ALL {
            let params = tool.wire_parameters();
            assert_eq!(
                params["properties"].get("security_risk").is_some(),
                !tool.read_only(),
                "{}",
                tool.name()
            );
            assert!(params["properties"].get("summary").is_some());
        }
    }

    #[test]
    fn resolve_joins_relative_and_keeps_absolute() {
        let root = Path::new("/ws");
        assert_eq!(resolve(root, "a/./b.txt"), PathBuf::from("/ws/a/b.txt"));
        assert_eq!(resolve(root, "."), PathBuf::from("/ws"));
        assert_eq!(resolve(root, "/etc//hosts"), PathBuf::from("/etc/hosts"));
        assert_eq!(resolve(root, "../x"), PathBuf::from("/ws/../x"));
    }
}
