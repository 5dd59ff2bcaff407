//! The Cloud sandbox API (`/api/v1/sandboxes`): what `OpenHandsCloudWorkspace` and a Cloud
//! (or our sandbox server) say to each other about sandboxes.
//!
//! Shapes follow the OpenHands app server's `sandbox_models.py` as its clients read them.
//! Answers are written in full (every field, `null` where unset), as FastAPI does. Status
//! words this crate does not know decode to [`SandboxStatus::Other`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::SecretString;

/// Name of the exposed URL of the agent server.
pub const AGENT_SERVER: &str = "AGENT_SERVER";
/// Name of the exposed URL of VS Code.
pub const VSCODE: &str = "VSCODE";
/// Names of the exposed worker URLs.
pub const WORKERS: [&str; 2] = ["WORKER_1", "WORKER_2"];

/// A sandbox (`SandboxInfo`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxInfo {
    /// The sandbox id.
    pub id: String,
    /// Its owner, when the server has users.
    #[serde(default)]
    pub created_by_user_id: Option<String>,
    /// The spec it was made from (an agent-server image reference for the SDK).
    #[serde(default)]
    pub sandbox_spec_id: Option<String>,
    /// Where it is in its life.
    #[serde(default)]
    pub status: SandboxStatus,
    /// The agent server's session key: only while `RUNNING`.
    #[serde(default)]
    pub session_api_key: Option<SecretString>,
    /// What it serves: only while `RUNNING`.
    #[serde(default)]
    pub exposed_urls: Option<Vec<ExposedUrl>>,
    /// ISO-8601 creation time.
    #[serde(default)]
    pub created_at: Option<String>,
}

impl SandboxInfo {
    /// The URL of the first exposed service named [`AGENT_SERVER`].
    pub fn agent_server_url(&self) -> Option<&str> {
        self.exposed_urls
            .as_deref()?
            .iter()
            .find(|u| u.name == AGENT_SERVER)
            .map(|u| u.url.as_str())
    }
}

/// A service a sandbox exposes (`ExposedUrl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposedUrl {
    /// `AGENT_SERVER`, `VSCODE`, `WORKER_1`, …
    pub name: String,
    /// Where clients reach it.
    pub url: String,
    /// The port inside the sandbox.
    pub port: u16,
}

/// `GET /api/v1/sandboxes/search`: a page of sandboxes, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxPage {
    /// The sandboxes of this page.
    pub items: Vec<SandboxInfo>,
    /// The next page's id, if there is one.
    #[serde(default)]
    pub next_page_id: Option<String>,
}

/// `GET /api/v1/sandboxes/{id}/settings/secrets`: the names a sandbox may look up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretNames {
    /// Custom secrets, then provider tokens as environment names.
    pub secrets: Vec<SecretName>,
}

/// One entry of [`SecretNames`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretName {
    /// The secret's name (an environment variable name).
    pub name: String,
    /// What it is.
    #[serde(default)]
    pub description: Option<String>,
}

/// `status` of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum SandboxStatus {
    /// Being created or started.
    #[default]
    Starting,
    /// Running: `session_api_key` and `exposed_urls` are set.
    Running,
    /// Paused: clients resume it.
    Paused,
    /// Failed (fatal for the clients).
    Error,
    /// Its compute is gone ("possibly deleted"; fatal for the clients).
    Missing,
    /// A word this crate does not know, as received.
    Other(String),
}

impl SandboxStatus {
    /// The word on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Error => "ERROR",
            Self::Missing => "MISSING",
            Self::Other(word) => word,
        }
    }

    /// Parses a word (any case).
    pub fn parse(word: &str) -> Self {
        match word.trim().to_ascii_uppercase().as_str() {
            "STARTING" => Self::Starting,
            "RUNNING" => Self::Running,
            "PAUSED" => Self::Paused,
            "ERROR" => Self::Error,
            "MISSING" => Self::Missing,
            _ => Self::Other(word.to_owned()),
        }
    }

    /// True for the states the clients give up on (`ERROR`, `MISSING`).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Error | Self::Missing)
    }
}

impl fmt::Display for SandboxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SandboxStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SandboxStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let word = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        Ok(Self::parse(&word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sandbox_info_decodes_and_finds_its_agent_server() -> Result<(), serde_json::Error> {
        let json = r#"{"id":"sb1","created_by_user_id":null,"sandbox_spec_id":"img:1",
            "status":"RUNNING","session_api_key":"k","exposed_urls":[
            {"name":"VSCODE","url":"http://v","port":60001},
            {"name":"AGENT_SERVER","url":"http://a:1","port":60000}],
            "created_at":"2026-12-05T10:00:00Z"}"#;
        let info: SandboxInfo = serde_json::from_str(json)?;
        assert_eq!(info.status, SandboxStatus::Running);
        assert_eq!(info.agent_server_url(), Some("http://a:1"));
        assert!(
            !format!("{info:?}").contains("\"k\""),
            "the key shows in Debug"
        );
        let full = serde_json::to_value(&info)?;
        assert_eq!(full["created_by_user_id"], serde_json::Value::Null);
        assert_eq!(full["status"], "RUNNING");
        Ok(())
    }

    #[test]
    fn status_words_are_lenient() -> Result<(), serde_json::Error> {
        let info: SandboxInfo =
            serde_json::from_str(r#"{"id":"x","status":"archived","exposed_urls":null}"#)?;
        assert_eq!(info.status, SandboxStatus::Other("archived".into()));
        assert!(!info.status.is_fatal());
        assert!(SandboxStatus::parse("missing").is_fatal());
        assert_eq!(info.agent_server_url(), None);
        Ok(())
    }
}
