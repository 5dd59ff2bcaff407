//! The runtime API: what `APIRemoteWorkspace` and a sandbox server say to each other.
//!
//! The hosted runtime API is closed source; these shapes are what its clients read and send
//! (the Python SDK's `APIRemoteWorkspace`, the OpenHands app server and its V0 client). One
//! object, [`Runtime`], answers `/start`, `/resume`, `/pause`, `/stop`, `/sessions/{id}` and
//! `/runtime/{id}`, and is the item of `/list` and `/sessions/batch`.
//!
//! Decoding is lenient, as the clients are: every field but the id has a default, `id` is
//! accepted for `runtime_id`, and status words the crate does not know decode to `Other`.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::SecretString;
use crate::wire::omit_none;

/// The port the Python client's start command gives the agent server in a sandbox.
pub const AGENT_SERVER_PORT: u16 = 60000;

/// The start command of a binary image (`target_type = "binary"`).
pub const BINARY_COMMAND: &str = "/usr/local/bin/openhands-agent-server --port 60000";

/// The start command of a source image (`target_type = "source"`).
pub const SOURCE_COMMAND: &str =
    "/agent-server/.venv/bin/python -m openhands.agent_server --port 60000";

/// The user (and group) the Python client asks sandboxes to run as.
pub const SANDBOX_USER: u32 = 10001;

/// `POST /start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRequest {
    /// The agent-server image.
    pub image: String,
    /// A full command line (the Python client) or argument list (the app server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// Working directory of the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Variables for the sandbox (forwarded by the client; values can be secrets).
    #[serde(default)]
    pub environment: BTreeMap<String, SecretString>,
    /// The client-chosen key a runtime is found by.
    pub session_id: String,
    /// User id to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    /// Group id to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    /// File-system group (Kubernetes' `fsGroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<u32>,
    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Container runtime asked for (the Python client sends `sysbox-runc` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
    /// Resource multiplier: 1, 2, 4 or 8 (the Python client omits 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_factor: Option<u32>,
}

/// The `command` of a start request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Command {
    /// A command line, split like a POSIX shell would (no expansion).
    Line(String),
    /// Arguments, as given.
    Argv(Vec<String>),
}

/// When to pull the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the image is not present (the default).
    #[default]
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The spelling on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// A runtime (sandbox) as the runtime API describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// Server-generated id (`id` is accepted on decode).
    #[serde(alias = "id")]
    pub runtime_id: String,
    /// The client-chosen key.
    #[serde(default)]
    pub session_id: String,
    /// The agent server's base URL, without a trailing `/`.
    #[serde(default)]
    pub url: Option<String>,
    /// The agent server's session key, in every state.
    #[serde(default)]
    pub session_api_key: Option<SecretString>,
    /// Lifecycle status: decides attach (running), resume (paused) or a new start.
    #[serde(default)]
    pub status: RuntimeStatus,
    /// Pod status: drives the client's readiness loop.
    #[serde(default)]
    pub pod_status: PodStatus,
    /// Restarts of the sandbox's container.
    #[serde(default)]
    pub restart_count: u32,
    /// Why it restarted (`OOMKilled`, an exit code).
    #[serde(default)]
    pub restart_reasons: Vec<String>,
    /// Diagnostics: container states.
    #[serde(default)]
    pub container_statuses: Vec<serde_json::Value>,
    /// Diagnostics: recent lifecycle events.
    #[serde(default)]
    pub events: Vec<serde_json::Value>,
    /// The last lines of the sandbox's logs, when it failed.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub pod_logs: Option<String>,
    /// Worker ports by URL (the V0 client).
    #[serde(default)]
    pub work_hosts: BTreeMap<String, u16>,
    /// The image it runs.
    #[serde(default)]
    pub image: String,
}

/// `{"runtime_id": …}`: the body of `/pause`, `/resume` and `/stop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeIdRequest {
    /// The runtime acted on.
    pub runtime_id: String,
}

/// `GET /list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeList {
    /// Every runtime that is not stopped.
    pub runtimes: Vec<Runtime>,
}

/// `GET /image_exists`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageExists {
    /// Whether the image can be used.
    pub exists: bool,
}

/// `GET /registry_prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryPrefix {
    /// Prefix of the images this runtime API runs.
    pub registry_prefix: String,
}

macro_rules! wire_words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A word this crate does not know, as received (lower-cased).
            Other(String),
        }

        impl $name {
            /// The word on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $word,)*
                    Self::Other(word) => word,
                }
            }

            /// Parses a word, ignoring case as the Python client does.
            pub fn parse(word: &str) -> Self {
                let word = word.trim().to_ascii_lowercase();
                match word.as_str() {
                    $($word => Self::$variant,)*
                    _ => Self::Other(word),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let word = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
                Ok(Self::parse(&word))
            }
        }
    };
}

wire_words! {
    /// `status` of a runtime.
    RuntimeStatus {
        /// Created, not healthy yet.
        #[default]
        Starting = "starting",
        /// Healthy: clients attach to it.
        Running = "running",
        /// Paused: clients resume it.
        Paused = "paused",
        /// Stopped or gone: clients start a new one.
        Stopped = "stopped",
        /// Failed.
        Error = "error",
    }
}

wire_words! {
    /// `pod_status` of a runtime, read by the Python client's readiness loop.
    PodStatus {
        /// Not scheduled or created yet (retried).
        Pending = "pending",
        /// Running, not ready (retried).
        Running = "running",
        /// Ready: the client probes `<url>/health`.
        Ready = "ready",
        /// No pod (retried).
        #[default]
        NotFound = "not found",
        /// Paused (retried as an unknown word).
        Paused = "paused",
        /// Failed (fatal).
        Failed = "failed",
        /// Unknown (fatal).
        Unknown = "unknown",
        /// Restarting again and again (fatal).
        CrashLoopBackOff = "crashloopbackoff",
    }
}

impl PodStatus {
    /// True for the states the Python client gives up on at once.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Failed | Self::Unknown | Self::CrashLoopBackOff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_decodes_leniently() -> Result<(), serde_json::Error> {
        let r: Runtime = serde_json::from_str(
            r#"{"id":"r1","url":"http://x","session_api_key":"k","status":"RUNNING","pod_status":"Not Found","new":1}"#,
        )?;
        assert_eq!(r.runtime_id, "r1");
        assert_eq!(r.status, RuntimeStatus::Running);
        assert_eq!(r.pod_status, PodStatus::NotFound);
        let r: Runtime = serde_json::from_str(r#"{"runtime_id":"r2","pod_status":"Evicted"}"#)?;
        assert_eq!(r.pod_status, PodStatus::Other("evicted".into()));
        assert!(!r.pod_status.is_fatal());
        assert!(PodStatus::parse("CrashLoopBackOff").is_fatal());
        assert_eq!(serde_json::to_value(&r)?["pod_status"], "evicted");
        Ok(())
    }

    #[test]
    fn a_start_request_takes_a_line_or_an_argv() -> Result<(), serde_json::Error> {
        let s: StartRequest = serde_json::from_str(
            r#"{"image":"i","session_id":"s","command":"a b","environment":{"K":"v"},"image_pull_policy":"Never"}"#,
        )?;
        assert_eq!(s.command, Some(Command::Line("a b".into())));
        assert_eq!(s.image_pull_policy, Some(PullPolicy::Never));
        assert!(!format!("{s:?}").contains("\"v\""));
        let s: StartRequest =
            serde_json::from_str(r#"{"image":"i","session_id":"s","command":["--port","1"]}"#)?;
        assert_eq!(
            s.command,
            Some(Command::Argv(vec!["--port".into(), "1".into()]))
        );
        Ok(())
    }
}
