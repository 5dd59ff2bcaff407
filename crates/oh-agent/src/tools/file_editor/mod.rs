//! The `file_editor` tool: view, create and edit files, with undo.
//!
//! [`FileEditor`] is the tool's core, one per conversation. It runs a validated
//! [`FileEditorAction`] (see [`parse_action`]) and always answers with a
//! [`FileEditorObservation`]: failures are observations with `is_error: true` whose text is
//! what the Python reference (1.57.0) shows the model, because the model reacts to those
//! texts.
//!
//! Behaviour in brief:
//! * paths must be absolute; the checks run in the reference's order (absolute, `create` on
//!   an existing path, missing path, directory with a command other than `view`);
//! * `view` prints files `cat -n` style, lists directories two levels deep without hidden
//!   entries, and returns images as data URLs;
//! * FIFOs, sockets and devices are refused at once (the reference would wait forever on a
//!   FIFO); files are only opened through [`crate::regular_file`];
//! * files over 10 MB and binary files are refused; each file keeps its detected encoding
//!   (UTF-8 unless another decodes it cleanly) and is written atomically with its
//!   permissions kept;
//! * every edit records the previous content (up to 10 versions per file) for `undo_edit`.

mod binary;
mod edit;
mod encoding;
mod error;
mod fsio;
mod history;
pub(crate) mod parse;
pub(crate) mod text;
mod view;

use std::path::{Path, PathBuf};

use oh_protocol::message::Content;
use oh_protocol::tool::{FileEditorAction, FileEditorCommand, FileEditorObservation};

pub(crate) use crate::pyfmt::{os_error, py_path, py_strip, repr as py_repr};
pub use parse::parse_action;

use crate::pyfmt::py_join;
use edit::Target;
use error::EditorError;
use history::History;

/// The file editor of one conversation: its working directory (for "Maybe you meant" hints)
/// and the undo history of the files it changed. The history lives in memory only.
#[derive(Debug)]
pub struct FileEditor {
    /// The workspace directory, absolute, as text.
    working_dir: String,
    /// Earlier versions of edited files.
    history: History,
}

impl FileEditor {
    /// An editor for a conversation working in `working_dir`. A relative directory is made
    /// absolute against the process's current directory.
    pub fn new(working_dir: PathBuf) -> Self {
        let absolute = std::path::absolute(&working_dir).unwrap_or(working_dir);
        Self {
            working_dir: py_path(&absolute.to_string_lossy()),
            history: History::default(),
        }
    }

    /// The working directory used for path hints.
    pub fn working_dir(&self) -> &Path {
        Path::new(&self.working_dir)
    }

    /// Runs one command. Never fails: errors are observations with `is_error: true`, the
    /// command set, no path, and the reference's message as text.
    pub fn run(&mut self, action: &FileEditorAction) -> FileEditorObservation {
        self.execute(action)
            .unwrap_or_else(|err| FileEditorObservation {
                content: vec![Content::text(err.to_string())],
                is_error: true,
                command: action.command,
                path: None,
                prev_exist: true,
                old_content: None,
                new_content: None,
            })
    }

    fn execute(&mut self, action: &FileEditorAction) -> Result<FileEditorObservation, EditorError> {
        let display = py_path(&action.path);
        self.validate_path(action.command, &action.path, &display)?;
        let path = PathBuf::from(&display);
        let target = Target {
            path: &path,
            display: &display,
        };
        match action.command {
            FileEditorCommand::View => view::view(&path, &display, action.view_range.as_deref()),
            FileEditorCommand::Create => {
                let file_text = required(action.file_text.as_deref(), "create", "file_text")?;
                edit::create(target, file_text, &mut self.history)
            }
            FileEditorCommand::StrReplace => {
                let old_str = required(action.old_str.as_deref(), "str_replace", "old_str")?;
                let new_str = required(action.new_str.as_deref(), "str_replace", "new_str")?;
                if new_str == old_str {
                    return Err(EditorError::invalid(
                        "new_str",
                        new_str,
                        "No replacement was performed. `new_str` and `old_str` must be \
                         different.",
                    ));
                }
                edit::str_replace(target, old_str, new_str, &mut self.history)
            }
            FileEditorCommand::Insert => {
                let insert_line = required(action.insert_line, "insert", "insert_line")?;
                let new_str = required(action.new_str.as_deref(), "insert", "new_str")?;
                edit::insert(target, insert_line, new_str, &mut self.history)
            }
            FileEditorCommand::UndoEdit => edit::undo_edit(target, &mut self.history),
            other => Err(EditorError::Tool(format!(
                "Unrecognized command {}. The allowed commands for FileEditor tool are: view, \
                 create, str_replace, insert, undo_edit",
                command_name(other)
            ))),
        }
    }

    /// The reference's path checks, in its order.
    fn validate_path(
        &self,
        command: FileEditorCommand,
        raw: &str,
        display: &str,
    ) -> Result<(), EditorError> {
        if !is_host_absolute(raw) {
            let mut hint = "The path should be an absolute path.".to_owned();
            let suggestion = py_join(&self.working_dir, display);
            if Path::new(&suggestion).exists() {
                hint.push_str(&format!(" Maybe you meant {suggestion}?"));
            }
            return Err(EditorError::invalid("path", display, hint));
        }
        let path = Path::new(display);
        let exists = path.exists();
        if command == FileEditorCommand::Create && exists {
            return Err(EditorError::invalid(
                "path",
                display,
                format!(
                    "File already exists at: {display}. Cannot overwrite files using command \
                     `create`."
                ),
            ));
        }
        if command != FileEditorCommand::Create && !exists {
            return Err(EditorError::invalid(
                "path",
                display,
                format!("The path {display} does not exist. Please provide a valid path."),
            ));
        }
        if command != FileEditorCommand::View && path.is_dir() {
            return Err(EditorError::invalid(
                "path",
                display,
                format!(
                    "The path {display} is a directory and only the `view` command can be used \
                     on directories."
                ),
            ));
        }
        Ok(())
    }
}

/// The reference's `is_host_absolute_path`: the trimmed path, with `~` expanded, is
/// absolute.
fn is_host_absolute(raw: &str) -> bool {
    let trimmed = raw.trim();
    if trimmed == "~" || trimmed.starts_with("~/") {
        return std::env::var_os("HOME").is_some_and(|home| Path::new(&home).is_absolute());
    }
    trimmed.starts_with('/')
}

fn required<T>(
    value: Option<T>,
    command: &'static str,
    parameter: &'static str,
) -> Result<T, EditorError> {
    value.ok_or_else(|| EditorError::missing(command, parameter))
}

/// The wire name of a command.
fn command_name(command: FileEditorCommand) -> String {
    serde_json::to_value(command)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{command:?}"))
}

/// A successful observation with one text part, about an existing path.
fn text_observation(
    command: FileEditorCommand,
    text: impl Into<String>,
    display: &str,
) -> FileEditorObservation {
    FileEditorObservation {
        content: vec![Content::text(text)],
        is_error: false,
        command,
        path: Some(display.to_owned()),
        prev_exist: true,
        old_content: None,
        new_content: None,
    }
}
