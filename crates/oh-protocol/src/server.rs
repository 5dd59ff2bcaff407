//! Server details, health probes, error bodies and WebSocket frames.

use serde::{Deserialize, Serialize};

use crate::wire::omit_none;

/// `GET /server_info` (`ServerInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// Whole seconds since start (a float).
    pub uptime: f64,
    /// Whole seconds since the last activity (a float); orchestrators reap idle sandboxes by it.
    pub idle_time: f64,
    /// `OpenHands Agent Server`.
    pub title: String,
    /// Server version.
    pub version: String,
    /// SDK version.
    pub sdk_version: String,
    /// Tools version.
    pub tools_version: String,
    /// Workspace version.
    pub workspace_version: String,
    /// Build commit.
    pub build_git_sha: String,
    /// Build ref.
    pub build_git_ref: String,
    /// Runtime description (the reference: the Python version string).
    pub python_version: String,
    /// Tools this server can run.
    #[serde(default)]
    pub usable_tools: Vec<String>,
    /// Idle timeout of the runtime.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub runtime_idle_timeout_seconds: Option<f64>,
    /// Where conversations run (`local`).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub conversation_runtime: Option<String>,
    /// Other runtimes on offer.
    #[serde(default)]
    pub available_conversation_runtimes: Vec<String>,
    /// Feature flags.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// App backend ingress.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub app_backend_ingress_url: Option<String>,
    /// Upper bound of foreground terminal timeouts.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub max_foreground_terminal_timeout_seconds: Option<f64>,
    /// Path of the API docs.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub docs: Option<String>,
    /// Path of the ReDoc page.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub redoc: Option<String>,
}

/// Body of `/health`, `/alive` and `/ready`: `{"status": "ok"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// `ok`, `ready` or `initializing`.
    pub status: String,
    /// Explanation while not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// An error response body: `{"detail": …}` plus fields of server errors.
///
/// The agent server builds every error response from this type and the client reads every
/// error response into it, so both sides agree on one shape. Serializing writes the fields in
/// the order the reference does: `detail`, then `exception` and `error_id` (a 500), then
/// `retryable`, then any [`extra`](Self::extra) fields in their order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A message, a list of validation errors, or an object.
    pub detail: ErrorDetail,
    /// `"<status>: <message>"` or the exception text of a 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// Correlation id of an unhandled error (32 hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_id: Option<String>,
    /// Set on retryable conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Fields of particular errors, e.g. `unsupported` (the plugin features a server lacks).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ErrorBody {
    /// `{"detail": message}`.
    pub fn message(message: impl Into<String>) -> Self {
        Self::new(ErrorDetail::Message(message.into()))
    }

    /// `{"detail": detail}`.
    pub fn new(detail: ErrorDetail) -> Self {
        Self {
            detail,
            exception: None,
            error_id: None,
            retryable: None,
            extra: serde_json::Map::new(),
        }
    }

    /// `{"detail": [entries]}`: request validation failures (422).
    pub fn validation(entries: Vec<ValidationError>) -> Self {
        Self::new(ErrorDetail::Validation(entries))
    }
}

/// The `detail` of an error body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum ErrorDetail {
    /// A message, e.g. `"Not Found"`.
    Message(String),
    /// Request validation failures (422).
    Validation(Vec<ValidationError>),
    /// Anything else.
    Other(serde_json::Value),
}

impl ErrorDetail {
    /// The message, if the detail is one.
    pub fn as_message(&self) -> Option<&str> {
        match self {
            Self::Message(message) => Some(message),
            Self::Validation(_) | Self::Other(_) => None,
        }
    }
}

/// A message as it is; anything else as compact JSON.
impl std::fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = match self {
            Self::Message(message) => return f.write_str(message),
            Self::Validation(entries) => serde_json::to_string(entries),
            Self::Other(value) => serde_json::to_string(value),
        };
        f.write_str(&json.map_err(|_| std::fmt::Error)?)
    }
}

/// One request validation failure (422).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Error type, e.g. `uuid_parsing`, `missing`, `greater_than`.
    pub r#type: String,
    /// Where: `["path", "conversation_id"]`, `["query", "limit"]`, `["body", …]`.
    pub loc: Vec<serde_json::Value>,
    /// Message.
    pub msg: String,
    /// The offending input (secret-looking values redacted). `None` when the entry has no
    /// `input` field; `Some(Value::Null)` for `"input": null`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub input: Option<serde_json::Value>,
    /// Extra context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ValidationError {
    /// An entry with an `input` and no `ctx`.
    pub fn new(
        kind: impl Into<String>,
        loc: Vec<serde_json::Value>,
        msg: impl Into<String>,
        input: serde_json::Value,
    ) -> Self {
        Self {
            r#type: kind.into(),
            loc,
            msg: msg.into(),
            input: Some(input),
            ctx: None,
        }
    }
}

/// A field that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// First frame a client sends on an event socket: `{"type": "auth", "session_api_key": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "auth")]
pub struct AuthFrame {
    /// The session API key.
    pub session_api_key: crate::agent::SecretString,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error bodies the agent server writes, byte for byte: each reads into the typed
    /// body and writes back unchanged.
    #[test]
    fn the_servers_error_bodies_round_trip_exactly() {
        let shapes = [
            r#"{"detail":"Not Found"}"#,
            r#"{"detail":"Conversation already running. Wait for completion or pause first."}"#,
            r#"{"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required","input":null}]}"#,
            r#"{"detail":[{"type":"uuid_parsing","loc":["path","conversation_id"],"msg":"Input should be a valid UUID, invalid length: expected length 32 for simple format, found 1","input":"x"}]}"#,
            r#"{"detail":[{"type":"missing","loc":["body","llm"],"msg":"Field required","input":{}}]}"#,
            r#"{"detail":[{"type":"greater_than","loc":["query","limit"],"msg":"Input should be greater than 0","input":"0","ctx":{"gt":0}}]}"#,
            r#"{"detail":"Internal Server Error","exception":"serializing the response: boom","error_id":"0123456789abcdef0123456789abcdef"}"#,
            r#"{"detail":"plugin p needs features this server lacks: hooks","unsupported":["hooks"]}"#,
            r#"{"detail":{"code":"unresolved_profile_references","message":"LLM profile 'x' not found","dangling_llm_profile_ref":"x","dangling_mcp_server_refs":[],"dangling_meta_profile_ref":null,"dangling_meta_profile_llm_refs":[]}}"#,
        ];
        for json in shapes {
            let body: ErrorBody = serde_json::from_str(json).expect(json);
            assert_eq!(serde_json::to_string(&body).unwrap(), json);
        }
    }

    #[test]
    fn details_are_typed() {
        let read = |json: &str| serde_json::from_str::<ErrorBody>(json).unwrap();
        let message = read(r#"{"detail":"Unauthorized"}"#);
        assert_eq!(message.detail.as_message(), Some("Unauthorized"));
        assert_eq!(message.detail.to_string(), "Unauthorized");

        let missing = read(
            r#"{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}"#,
        );
        let ErrorDetail::Validation(entries) = &missing.detail else {
            panic!("{missing:?}")
        };
        assert_eq!(
            entries[..],
            [ValidationError::new(
                "missing",
                vec!["body".into()],
                "Field required",
                serde_json::Value::Null
            )]
        );

        // The agent-profile checks write entries without `input`, `loc` first: still
        // validation entries, and the same JSON value when written back.
        let json = r#"{"detail":[{"loc":["openhands","tools"],"type":"missing","msg":"Every tool needs a name"}]}"#;
        let problems = read(json);
        let ErrorDetail::Validation(entries) = &problems.detail else {
            panic!("{problems:?}")
        };
        assert_eq!(entries[0].input, None);
        assert_eq!(
            serde_json::to_value(&problems).unwrap(),
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );

        let internal =
            read(r#"{"detail":"Internal Server Error","exception":"boom","error_id":"ab"}"#);
        assert_eq!(internal.exception.as_deref(), Some("boom"));
        assert_eq!(internal.error_id.as_deref(), Some("ab"));
        assert!(internal.extra.is_empty());

        let object = read(r#"{"detail":{"code":"c"},"unsupported":["hooks"]}"#);
        assert!(matches!(&object.detail, ErrorDetail::Other(v) if v["code"] == "c"));
        assert_eq!(object.detail.to_string(), r#"{"code":"c"}"#);
        assert_eq!(object.extra["unsupported"], serde_json::json!(["hooks"]));
    }
}
