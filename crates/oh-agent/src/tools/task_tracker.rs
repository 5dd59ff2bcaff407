//! The `task_tracker` tool: the agent's task list.
//!
//! `plan` replaces the whole list; `view` shows it. With a save directory (the
//! conversation's persistence directory) the list is written to `TASKS.json` after each
//! `plan` and read back when the tracker is created, so a resumed conversation keeps it.
//! Texts and the file format follow the Python reference (1.57.0), including its status
//! aliases (`pending`, `completed`, ...) for models trained on other agents' todo tools.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use oh_protocol::message::Content;
use oh_protocol::tool::{
    TaskItem, TaskStatus, TaskTrackerAction, TaskTrackerCommand, TaskTrackerObservation,
};
use serde_json::{Map, Value};

/// Name of the saved task list inside the save directory.
pub const TASKS_FILE: &str = "TASKS.json";

/// The task list of one conversation.
#[derive(Debug)]
pub struct TaskTracker {
    /// Where `TASKS.json` lives, if the list is persisted.
    save_dir: Option<PathBuf>,
    /// The current list.
    tasks: Vec<TaskItem>,
}

impl TaskTracker {
    /// A tracker saving to `save_dir`, starting from `<save_dir>/TASKS.json` when that file
    /// exists. A file that cannot be read or parsed is logged and ignored (empty list), as
    /// in the reference.
    pub fn new(save_dir: Option<PathBuf>) -> Self {
        let tasks = save_dir
            .as_deref()
            .map(|dir| load_tasks(&dir.join(TASKS_FILE)))
            .unwrap_or_default();
        Self { save_dir, tasks }
    }

    /// The current task list.
    pub fn tasks(&self) -> &[TaskItem] {
        &self.tasks
    }

    /// Runs one command. `plan` replaces the list (and saves it); `view` formats it.
    pub fn run(&mut self, action: &TaskTrackerAction) -> TaskTrackerObservation {
        match action.command {
            TaskTrackerCommand::Plan => self.plan(&action.task_list),
            TaskTrackerCommand::View => self.view(),
            other => TaskTrackerObservation {
                content: vec![Content::text(format!(
                    "Unknown command: {}. Supported commands are \"view\" and \"plan\".",
                    wire_name(&other)
                ))],
                is_error: true,
                command: other,
                task_list: Vec::new(),
            },
        }
    }

    fn plan(&mut self, task_list: &[TaskItem]) -> TaskTrackerObservation {
        self.tasks = task_list.to_vec();
        if let Some(dir) = &self.save_dir {
            save_tasks(dir, &self.tasks);
        }
        observation(
            TaskTrackerCommand::Plan,
            format!(
                "Task list has been updated with {} item(s).",
                self.tasks.len()
            ),
            self.tasks.clone(),
        )
    }

    fn view(&self) -> TaskTrackerObservation {
        if self.tasks.is_empty() {
            return observation(
                TaskTrackerCommand::View,
                "No task list found. Use the \"plan\" command to create one.",
                Vec::new(),
            );
        }
        observation(
            TaskTrackerCommand::View,
            format_tasks(&self.tasks),
            self.tasks.clone(),
        )
    }
}

fn observation(
    command: TaskTrackerCommand,
    text: impl Into<String>,
    task_list: Vec<TaskItem>,
) -> TaskTrackerObservation {
    TaskTrackerObservation {
        content: vec![Content::text(text)],
        is_error: false,
        command,
        task_list,
    }
}

/// `# Task List`, then per task `<i>. <icon> <title>`, an indented notes line when there
/// are notes, and a blank line; surrounding whitespace stripped.
fn format_tasks(tasks: &[TaskItem]) -> String {
    let mut out = String::from("# Task List\n\n");
    for (index, task) in tasks.iter().enumerate() {
        out.push_str(&format!(
            "{}. {} {}\n",
            index + 1,
            status_icon(task.status),
            task.title
        ));
        if !task.notes.is_empty() {
            out.push_str(&format!("   {}\n", task.notes));
        }
        out.push('\n');
    }
    crate::tools::file_editor::py_strip(&out).to_owned()
}

fn status_icon(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::InProgress => "🔄",
        TaskStatus::Done => "✅",
        _ => "⏳",
    }
}

fn wire_name<T: serde::Serialize + std::fmt::Debug>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{value:?}"))
}

fn load_tasks(file: &Path) -> Vec<TaskItem> {
    if !file.exists() {
        return Vec::new();
    }
    let parsed = fs::read_to_string(file)
        .map_err(|err| err.to_string())
        .and_then(|text| serde_json::from_str::<Value>(&text).map_err(|err| err.to_string()))
        .and_then(|value| match value {
            Value::Array(items) => parse_task_list(&items),
            other => Err(format!("expected a list, got {}", describe(&other))),
        });
    parsed.unwrap_or_else(|err| {
        tracing::warn!(
            file = %file.display(),
            error = %err,
            "failed to load tasks; starting with an empty task list"
        );
        Vec::new()
    })
}

/// Writes the list as a JSON array with indent 2 and ASCII-only escapes (Python's
/// `json.dump(..., indent=2)`), through a temporary file and a rename. Failures are logged.
fn save_tasks(dir: &Path, tasks: &[TaskItem]) {
    let file = dir.join(TASKS_FILE);
    if let Err(err) = write_atomically(dir, &file, &tasks_json(tasks)) {
        tracing::warn!(file = %file.display(), error = %err, "failed to save tasks");
    }
}

fn tasks_json(tasks: &[TaskItem]) -> String {
    let pretty = serde_json::to_string_pretty(tasks).unwrap_or_else(|_| "[]".to_owned());
    escape_non_ascii(&pretty)
}

/// Python's `ensure_ascii`: every non-ASCII character as `\uXXXX` (surrogate pairs beyond
/// the BMP). Safe on whole JSON text because such characters only occur inside strings.
fn escape_non_ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for ch in json.chars() {
        if ch.is_ascii() {
            out.push(ch);
            continue;
        }
        let mut units = [0u16; 2];
        for unit in ch.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{unit:04x}"));
        }
    }
    out
}

fn write_atomically(dir: &Path, file: &Path, text: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{TASKS_FILE}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let result = fs::File::create(&tmp)
        .and_then(|mut out| out.write_all(text.as_bytes()).and_then(|()| out.sync_all()))
        .and_then(|()| fs::rename(&tmp, file));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Turns the model's arguments (without `security_risk` and `summary`) into an action.
/// `command` defaults to `view`, `task_list` to empty; unknown parameters are refused.
/// Task items need a string `title`; `notes` defaults to "" and `status` to `todo`; statuses
/// are matched case-insensitively with `-` and spaces read as `_`, and the aliases
/// `pending`/`to_do` (todo) and `completed`/`complete` (done) are accepted. Other keys of
/// an item are ignored, as in the reference. A `null` value counts as absent.
pub fn parse_action(arguments: Map<String, Value>) -> Result<TaskTrackerAction, String> {
    if let Some(unknown) = arguments
        .keys()
        .find(|key| !matches!(key.as_str(), "command" | "task_list"))
    {
        return Err(format!(
            "Unexpected parameter `{unknown}`. The task_tracker tool accepts: `command`, \
             `task_list`."
        ));
    }
    let command = match arguments.get("command") {
        None | Some(Value::Null) => TaskTrackerCommand::View,
        Some(Value::String(name)) if name == "view" => TaskTrackerCommand::View,
        Some(Value::String(name)) if name == "plan" => TaskTrackerCommand::Plan,
        Some(Value::String(name)) => {
            return Err(format!(
                "Parameter `command` must be one of `view`, `plan`, got `{name}`."
            ));
        }
        Some(other) => {
            return Err(format!(
                "Parameter `command` must be a string, got {}.",
                describe(other)
            ));
        }
    };
    let task_list = match arguments.get("task_list") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => parse_task_list(items)?,
        Some(other) => {
            return Err(format!(
                "Parameter `task_list` must be a list of tasks, got {}.",
                describe(other)
            ));
        }
    };
    Ok(TaskTrackerAction { command, task_list })
}

fn parse_task_list(items: &[Value]) -> Result<Vec<TaskItem>, String> {
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            parse_task(item).map_err(|err| format!("Parameter `task_list` item {index}: {err}"))
        })
        .collect()
}

fn parse_task(item: &Value) -> Result<TaskItem, String> {
    let Value::Object(fields) = item else {
        return Err(format!("expected an object, got {}.", describe(item)));
    };
    let get = |name: &str| fields.get(name).filter(|value| !value.is_null());
    let title = match get("title") {
        Some(Value::String(title)) => title.clone(),
        Some(other) => {
            return Err(format!(
                "`title` must be a string, got {}.",
                describe(other)
            ));
        }
        None => return Err("missing required field `title`.".to_owned()),
    };
    let notes = match get("notes") {
        Some(Value::String(notes)) => notes.clone(),
        Some(other) => {
            return Err(format!(
                "`notes` must be a string, got {}.",
                describe(other)
            ));
        }
        None => String::new(),
    };
    let status = match get("status") {
        Some(Value::String(status)) => parse_status(status)?,
        Some(other) => {
            return Err(format!(
                "`status` must be a string, got {}.",
                describe(other)
            ));
        }
        None => TaskStatus::Todo,
    };
    Ok(TaskItem {
        title,
        notes,
        status,
    })
}

/// A status name, normalised as the reference does (trim, lowercase, `-` and space to
/// `_`), with its aliases.
pub fn parse_status(raw: &str) -> Result<TaskStatus, String> {
    let normalized = crate::tools::file_editor::py_strip(raw)
        .to_lowercase()
        .replace(['-', ' '], "_");
    match normalized.as_str() {
        "todo" | "pending" | "to_do" => Ok(TaskStatus::Todo),
        "in_progress" => Ok(TaskStatus::InProgress),
        "done" | "completed" | "complete" => Ok(TaskStatus::Done),
        _ => Err(format!(
            "`status` must be one of `todo`, `in_progress`, `done`, got `{raw}`."
        )),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_escaping_matches_python() {
        assert_eq!(escape_non_ascii("\"é😀\""), "\"\\u00e9\\ud83d\\ude00\"");
    }

    #[test]
    fn statuses_normalise() {
        assert_eq!(parse_status(" In-Progress "), Ok(TaskStatus::InProgress));
        assert_eq!(parse_status("TO DO"), Ok(TaskStatus::Todo));
        assert_eq!(parse_status("Completed"), Ok(TaskStatus::Done));
        assert!(parse_status("blocked").is_err());
    }
}
