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
}

impl ErrorBody {
    /// `{"detail": message}`.
    pub fn message(message: impl Into<String>) -> Self {
        Self {
            detail: ErrorDetail::Message(message.into()),
            exception: None,
            error_id: None,
            retryable: None,
        }
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

/// One request validation failure (422).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    /// Error type, e.g. `uuid_parsing`, `missing`, `greater_than`.
    pub r#type: String,
    /// Where: `["path", "conversation_id"]`, `["query", "limit"]`, `["body", …]`.
    pub loc: Vec<serde_json::Value>,
    /// Message.
    pub msg: String,
    /// The offending input (secret-looking values redacted).
    #[serde(default)]
    pub input: serde_json::Value,
    /// Extra context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<serde_json::Map<String, serde_json::Value>>,
}

/// First frame a client sends on an event socket: `{"type": "auth", "session_api_key": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "auth")]
pub struct AuthFrame {
    /// The session API key.
    pub session_api_key: crate::agent::SecretString,
}
