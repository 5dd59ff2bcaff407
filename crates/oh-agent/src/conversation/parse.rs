//! From a tool call in an LLM response to a validated action (spec §2.3): argument repair,
//! tool-name normalisation, `security_risk` and `summary` extraction, strict validation.

use oh_protocol::event::SecurityRisk;
use oh_protocol::{Action, MessageToolCall};
use serde_json::{Map, Value};

use crate::pyfmt;
use crate::tools::SharedTool;

/// Marker key of the arguments stored for a call whose arguments were not valid JSON.
pub const MALFORMED_MARKER: &str = "_openhands_malformed_tool_call";

/// What became of one tool call.
#[derive(Debug, Clone)]
pub(super) enum ParsedCall {
    /// The named tool does not exist.
    UnknownTool {
        /// The name as the model wrote it (after normalisation attempts failed).
        tool_name: String,
        /// `Tool '<name>' not found. Available: [...]`.
        error: String,
    },
    /// The tool exists but the arguments are not acceptable.
    Invalid {
        /// The tool's name.
        tool_name: String,
        /// `Error validating tool '<name>': ...`.
        error: String,
        /// Replacement for the stored call's arguments when they were not JSON.
        stored_arguments: Option<String>,
    },
    /// A valid action.
    Valid {
        /// The tool's name (normalised).
        tool_name: String,
        /// The validated action.
        action: Action,
        /// Arguments re-serialised as Python writes them, still with `summary`/`security_risk`.
        arguments: String,
        /// Risk as decided.
        security_risk: SecurityRisk,
        /// Summary as given, or the default `<tool>: <args JSON>`.
        summary: String,
    },
}

/// Parses `call` against `tools`. `analyzer` tells whether a security analyzer is configured
/// (without one every risk is `UNKNOWN`).
pub(super) fn parse_call(
    call: &MessageToolCall,
    tools: &[SharedTool],
    analyzer: bool,
) -> ParsedCall {
    let (arguments, json_error) = parse_arguments(&call.arguments);
    let (name, mut arguments) = normalise(&call.name, arguments, tools);
    let Some(tool) = tools.iter().find(|t| t.name() == name) else {
        let names: Vec<String> = tools.iter().map(|t| format!("'{}'", t.name())).collect();
        return ParsedCall::UnknownTool {
            error: format!(
                "Tool '{}' not found. Available: [{}]",
                call.name,
                names.join(", ")
            ),
            tool_name: call.name.clone(),
        };
    };
    let requested = call.name.clone();
    let invalid = |error: String, stored: Option<String>| ParsedCall::Invalid {
        tool_name: requested.clone(),
        error,
        stored_arguments: stored,
    };
    if let Some(json_error) = json_error {
        let error = format!(
            "Error validating tool '{requested}': {json_error}. Arguments: unparseable JSON"
        );
        let mut marker = Map::new();
        marker.insert(MALFORMED_MARKER.into(), Value::Bool(true));
        marker.insert("error".into(), Value::String(error.clone()));
        return invalid(error, Some(pyfmt::json_dumps(&Value::Object(marker))));
    }
    if name == "file_editor" && !arguments.contains_key("command") {
        match infer_editor_command(&arguments) {
            Some(command) => {
                arguments.insert("command".into(), Value::String(command.into()));
            }
            None => {
                let error = format!(
                    "Error validating tool '{requested}': Cannot infer 'command' for file_editor; \
                     pass one of view, create, str_replace, insert, undo_edit. Parameters provided: {}",
                    key_list(&arguments)
                );
                return invalid(error, None);
            }
        }
    }
    let schema = tool.schema();
    repair_shapes(&mut arguments, &schema.parameters);
    let full_arguments = arguments.clone();

    let raw_risk = arguments.shift_remove("security_risk");
    let security_risk = if tool.read_only() || !analyzer {
        SecurityRisk::Unknown
    } else {
        match raw_risk.as_ref().map(parse_risk) {
            None => SecurityRisk::Unknown,
            Some(Ok(risk)) => risk,
            Some(Err(error)) => {
                let error = format!(
                    "Error validating tool '{requested}': {error}. Parameters provided: {}",
                    key_list(&arguments)
                );
                return invalid(error, None);
            }
        }
    };
    let raw_summary = if tool_declares_summary(tool) {
        None
    } else {
        arguments.shift_remove("summary")
    };
    let summary = match raw_summary {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        _ => format!(
            "{name}: {}",
            pyfmt::json_dumps(&Value::Object(arguments.clone()))
        ),
    };
    let validated_keys = arguments.clone();
    match tool.parse_action(arguments) {
        Ok(action) => ParsedCall::Valid {
            tool_name: name,
            action,
            arguments: pyfmt::json_dumps(&Value::Object(full_arguments)),
            security_risk,
            summary,
        },
        Err(error) => invalid(
            format!(
                "Error validating tool '{requested}': {error}. Parameters provided: {}",
                key_list(&validated_keys)
            ),
            None,
        ),
    }
}

/// Whether a tool has its own `summary` parameter in its action (none of the defaults do).
fn tool_declares_summary(tool: &SharedTool) -> bool {
    let _ = tool;
    false
}

/// Python-style list of the argument names: `['command', 'path']`.
fn key_list(arguments: &Map<String, Value>) -> String {
    let keys: Vec<String> = arguments.keys().map(|k| format!("'{k}'")).collect();
    format!("[{}]", keys.join(", "))
}

fn parse_risk(value: &Value) -> Result<SecurityRisk, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("security_risk must be a string, got {value}"))?;
    match text.trim().to_ascii_uppercase().as_str() {
        "UNKNOWN" => Ok(SecurityRisk::Unknown),
        "LOW" => Ok(SecurityRisk::Low),
        "MEDIUM" => Ok(SecurityRisk::Medium),
        "HIGH" => Ok(SecurityRisk::High),
        _ => Err(format!(
            "'{text}' is not a valid SecurityRisk (expected LOW, MEDIUM, HIGH or UNKNOWN)"
        )),
    }
}

/// Decodes the argument string. Raw control characters inside strings are escaped and the
/// parse retried; a non-object becomes `{}`; null values are dropped; common misspellings of
/// `security_risk` are fixed. On failure returns the JSON error text.
fn parse_arguments(raw: &str) -> (Map<String, Value>, Option<String>) {
    let parsed = serde_json::from_str::<Value>(raw).or_else(|first| {
        serde_json::from_str::<Value>(&escape_control_chars(raw)).map_err(|_| first)
    });
    let value = match parsed {
        Ok(value) => value,
        Err(error) => return (Map::new(), Some(describe_json_error(&error))),
    };
    let Value::Object(map) = value else {
        return (Map::new(), None);
    };
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        let key = match key.as_str() {
            "security_rort" | "securtiy_risk" | "security_riks" => "security_risk".to_owned(),
            _ => key,
        };
        out.insert(key, value);
    }
    (out, None)
}

fn describe_json_error(error: &serde_json::Error) -> String {
    let message = error.to_string();
    // serde_json appends " at line L column C"; keep that position information.
    message
}

/// Escapes raw control characters (U+0000–U+001F) that appear inside JSON strings.
fn escape_control_chars(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    for c in raw.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
                continue;
            }
            match c {
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        } else {
            if c == '"' {
                in_string = true;
            }
            out.push(c);
        }
    }
    out
}

/// Maps names models commonly use by mistake onto registered tools (only when the given
/// name is not itself registered).
fn normalise(
    name: &str,
    arguments: Map<String, Value>,
    tools: &[SharedTool],
) -> (String, Map<String, Value>) {
    let has = |n: &str| tools.iter().any(|t| t.name() == n);
    if has(name) {
        return (name.to_owned(), arguments);
    }
    // Trailing junk such as `str_replace </parameter`.
    let ident: String = name
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if !ident.is_empty() && ident != name && has(&ident) {
        return (ident, arguments);
    }
    let base = if ident.is_empty() {
        name
    } else {
        ident.as_str()
    };
    match base {
        "bash" | "command" | "execute" | "execute_bash" if has("terminal") => {
            ("terminal".into(), arguments)
        }
        "str_replace" | "str_replace_editor" if has("file_editor") => {
            ("file_editor".into(), arguments)
        }
        "git" | "reset" if has("terminal") => {
            let mut arguments = arguments;
            let rest = arguments
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_owned();
            let command = if rest.is_empty() {
                base.to_owned()
            } else {
                format!("{base} {rest}")
            };
            arguments.insert("command".into(), Value::String(command));
            ("terminal".into(), arguments)
        }
        "find" | "ls" | "pwd" if has("terminal") && arguments.is_empty() => {
            let mut arguments = Map::new();
            arguments.insert("command".into(), Value::String(base.into()));
            ("terminal".into(), arguments)
        }
        "grep" if has("terminal") && arguments.get("pattern").is_some_and(Value::is_string) => {
            ("terminal".into(), grep_as_command(arguments))
        }
        _ => (name.to_owned(), arguments),
    }
}

/// Turns a `grep {pattern, path?, include?}` call into a terminal command.
fn grep_as_command(arguments: Map<String, Value>) -> Map<String, Value> {
    let get = |k: &str| arguments.get(k).and_then(Value::as_str).map(str::to_owned);
    let pattern = get("pattern").unwrap_or_default();
    let path = get("path").unwrap_or_else(|| ".".into());
    let mut command = format!(
        "grep -R -I -n -i -- {} {}",
        shell_quote(&pattern),
        shell_quote(&path)
    );
    if let Some(include) = get("include") {
        command.push_str(&format!(" --include={}", shell_quote(&include)));
    }
    let mut out = Map::new();
    out.insert("command".into(), Value::String(command));
    for key in ["security_risk", "summary"] {
        if let Some(v) = arguments.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    out
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn infer_editor_command(arguments: &Map<String, Value>) -> Option<&'static str> {
    if arguments.contains_key("old_str") {
        Some("str_replace")
    } else if arguments.contains_key("insert_line") {
        Some("insert")
    } else if arguments.contains_key("file_text") {
        Some("create")
    } else if arguments.contains_key("path") {
        Some("view")
    } else {
        None
    }
}

/// Fixes argument shapes against the schema: a string given for an array/object parameter
/// is decoded as JSON (ignoring trailing garbage); a list of strings for a string parameter
/// is joined.
fn repair_shapes(arguments: &mut Map<String, Value>, parameters: &Value) {
    let Some(properties) = parameters.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, value) in arguments.iter_mut() {
        let Some(expected) = properties
            .get(key)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        match (expected, &*value) {
            ("array" | "object", Value::String(s)) => {
                if let Some(decoded) = decode_lenient(s, expected) {
                    *value = decoded;
                }
            }
            ("string", Value::Array(items)) if items.iter().all(Value::is_string) => {
                let joined: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                *value = Value::String(joined.join("\n"));
            }
            _ => {}
        }
    }
}

fn decode_lenient(s: &str, expected: &str) -> Option<Value> {
    let close = if expected == "array" { ']' } else { '}' };
    let trimmed = s.trim();
    let candidate = match trimmed.rfind(close) {
        Some(end) => &trimmed[..=end],
        None => trimmed,
    };
    let value: Value = serde_json::from_str(candidate).ok()?;
    let fits = if expected == "array" {
        value.is_array()
    } else {
        value.is_object()
    };
    fits.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let (map, err) = parse_arguments("{\"command\": \"echo a\nb\"}");
        assert!(err.is_none());
        assert_eq!(map["command"], "echo a\nb");
    }

    #[test]
    fn typos_and_nulls() {
        let (map, _) = parse_arguments(r#"{"securtiy_risk":"LOW","x":null}"#);
        assert_eq!(map.len(), 1);
        assert_eq!(map["security_risk"], "LOW");
    }

    #[test]
    fn non_object_is_empty() {
        let (map, err) = parse_arguments("[1,2]");
        assert!(map.is_empty() && err.is_none());
    }

    #[test]
    fn bad_json_reports_error() {
        let (_, err) = parse_arguments(r#"{"command": "ls" "x"}"#);
        assert!(err.is_some());
    }

    #[test]
    fn lenient_decode() {
        assert_eq!(decode_lenient("[1, 2]]garbage", "array"), None);
        assert_eq!(
            decode_lenient("[1, 2] trailing", "array"),
            Some(serde_json::json!([1, 2]))
        );
    }
}
