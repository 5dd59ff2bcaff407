//! Validation of the model's `file_editor` arguments.
//!
//! Mirrors the reference's Pydantic model: `command` and `path` are required, unknown
//! parameters are refused, integers may arrive as integral floats or numeric strings (lax
//! mode), and `insert_line` must not be negative. Which parameters a command needs is checked
//! later by [`super::FileEditor::run`], which answers with an error observation.

use oh_protocol::tool::{FileEditorAction, FileEditorCommand};
use serde_json::{Map, Value};

/// Parameters the tool accepts.
const PARAMETERS: &[&str] = &[
    "command",
    "path",
    "file_text",
    "old_str",
    "new_str",
    "insert_line",
    "view_range",
];

/// Commands and their wire names.
const COMMANDS: &[(&str, FileEditorCommand)] = &[
    ("view", FileEditorCommand::View),
    ("create", FileEditorCommand::Create),
    ("str_replace", FileEditorCommand::StrReplace),
    ("insert", FileEditorCommand::Insert),
    ("undo_edit", FileEditorCommand::UndoEdit),
];

/// Turns the model's arguments (without `security_risk` and `summary`) into an action.
/// A `null` value counts as absent. The error names the offending parameter.
pub fn parse_action(arguments: Map<String, Value>) -> Result<FileEditorAction, String> {
    if let Some(unknown) = arguments
        .keys()
        .find(|key| !PARAMETERS.contains(&key.as_str()))
    {
        return Err(format!(
            "Unexpected parameter `{unknown}`. The file_editor tool accepts: {}.",
            PARAMETERS
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let get = |name: &str| arguments.get(name).filter(|value| !value.is_null());
    let command = parse_command(get("command"))?;
    let path = string_param(get("path"), "path")?
        .ok_or_else(|| "Missing required parameter `path`.".to_owned())?;
    let insert_line = get("insert_line")
        .map(|value| integer(value).ok_or_else(|| type_error("insert_line", "an integer", value)))
        .transpose()?;
    if let Some(line) = insert_line.filter(|line| *line < 0) {
        return Err(format!(
            "Parameter `insert_line` must be greater than or equal to 0, got {line}."
        ));
    }
    Ok(FileEditorAction {
        command,
        path,
        file_text: string_param(get("file_text"), "file_text")?,
        old_str: string_param(get("old_str"), "old_str")?,
        new_str: string_param(get("new_str"), "new_str")?,
        insert_line,
        view_range: get("view_range").map(view_range).transpose()?,
    })
}

fn parse_command(value: Option<&Value>) -> Result<FileEditorCommand, String> {
    let name = string_param(value, "command")?
        .ok_or_else(|| "Missing required parameter `command`.".to_owned())?;
    COMMANDS
        .iter()
        .find(|(wire, _)| *wire == name)
        .map(|(_, command)| *command)
        .ok_or_else(|| {
            format!(
                "Parameter `command` must be one of `view`, `create`, `str_replace`, `insert`, \
                 `undo_edit`, got `{name}`."
            )
        })
}

fn string_param(value: Option<&Value>, name: &str) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(type_error(name, "a string", other)),
    }
}

fn view_range(value: &Value) -> Result<Vec<i64>, String> {
    let Value::Array(items) = value else {
        return Err(type_error("view_range", "a list of integers", value));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            integer(item).ok_or_else(|| {
                format!(
                    "Parameter `view_range` must be a list of integers; item {index} is {}.",
                    describe(item)
                )
            })
        })
        .collect()
}

/// An integer as Pydantic's lax mode accepts it: a JSON integer, a float without fraction,
/// or a string holding an integer. Booleans are refused.
pub(crate) fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|float| float.fract() == 0.0 && float.abs() < 9.0e15)
                .map(|float| {
                    #[allow(
                        clippy::cast_possible_truncation,
                        reason = "checked integral and small"
                    )]
                    let int = float as i64;
                    int
                })
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// `Parameter `x` must be <expected>, got <kind>.`
pub(crate) fn type_error(name: &str, expected: &str, value: &Value) -> String {
    format!(
        "Parameter `{name}` must be {expected}, got {}.",
        describe(value)
    )
}

/// A JSON value's kind, for messages.
pub(crate) fn describe(value: &Value) -> &'static str {
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
    use serde_json::json;

    use super::*;

    fn args(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn lax_integers() {
        assert_eq!(integer(&json!(3)), Some(3));
        assert_eq!(integer(&json!(3.0)), Some(3));
        assert_eq!(integer(&json!("12")), Some(12));
        assert_eq!(integer(&json!(3.5)), None);
        assert_eq!(integer(&json!(true)), None);
    }

    #[test]
    fn minimal_view() {
        let action = parse_action(args(json!({"command": "view", "path": "/x"}))).unwrap();
        assert_eq!(action.command, FileEditorCommand::View);
        assert_eq!(action.path, "/x");
        assert_eq!(action.view_range, None);
    }
}
