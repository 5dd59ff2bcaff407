//! The engines sandboxes run on, behind one trait: [`Backend`].
//!
//! A backend knows nothing of sessions, keys or the API: it creates a workload from a
//! [`Spec`], reports what the engine sees ([`Observed`]), pauses, resumes and removes it, and
//! lists what carries this server's label. The lifecycle rules live in `sandboxes.rs`.

use std::collections::HashMap;

use futures::future::BoxFuture;
use oh_protocol::SecretString;
use oh_protocol::runtime::PullPolicy;

use crate::error::BackendError;
use crate::store::PauseKind;

pub(crate) mod docker;
mod engine;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod swarm;

/// Label carrying the id of the sandbox server that owns a workload.
pub const SERVER_LABEL: &str = "org.openhands-rs.sandbox-server";
/// Label with the runtime id of a sandbox.
pub const RUNTIME_LABEL: &str = "org.openhands-rs.sandbox.runtime-id";
/// Label with the session id of a sandbox.
pub const SESSION_LABEL: &str = "org.openhands-rs.sandbox.session-id";
/// Label of warm-pool members (`1`).
pub const POOL_LABEL: &str = "org.openhands-rs.sandbox.pool";
/// Swarm node label: the address clients reach the node's published ports at (else the
/// address the manager knows the node by).
pub const PUBLIC_ADDR_LABEL: &str = "org.openhands-rs.public_addr";
/// Label with the agent server's port inside the workload.
pub(crate) const PORT_LABEL: &str = "org.openhands-rs.sandbox.port";

/// Restarts the engine makes before a crashing sandbox is given up (it is then reported
/// `crashloopbackoff` and removed).
pub(crate) const MAX_RESTARTS: i64 = 3;

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Workload name (`ohsb-<runtime id>`).
    pub(crate) name: String,
    pub(crate) image: String,
    pub(crate) pull: PullPolicy,
    /// Replaces the image's entrypoint (a full command line was asked for).
    pub(crate) entrypoint: Option<Vec<String>>,
    /// Arguments (after the entrypoint).
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) env: Vec<(String, SecretString)>,
    pub(crate) working_dir: Option<String>,
    /// `uid[:gid]`.
    pub(crate) user: String,
    pub(crate) labels: HashMap<String, String>,
    /// The agent server's port inside the workload.
    pub(crate) port: u16,
    pub(crate) resource_factor: u32,
    /// A container runtime the engine has (checked by the caller).
    pub(crate) runtime: Option<String>,
}

/// Where a workload's agent server can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Endpoint {
    pub(crate) fn url(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

/// What the engine says about a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Observed {
    /// No such workload.
    Missing,
    /// Created or scheduled, not running yet.
    Pending,
    /// Running; its endpoint once published.
    Running {
        endpoint: Option<Endpoint>,
        restarts: u32,
    },
    /// Restarting after a crash.
    Restarting { restarts: u32, reasons: Vec<String> },
    /// Frozen.
    Frozen,
    /// Not running: stopped by us, or exited.
    Exited {
        code: Option<i64>,
        restarts: u32,
        reasons: Vec<String>,
    },
}

/// One workload carrying this server's label.
#[derive(Debug, Clone)]
pub(crate) struct Managed {
    pub(crate) handle: String,
    pub(crate) runtime_id: Option<String>,
    pub(crate) pool: bool,
}

/// An engine sandboxes run on.
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// `docker` or `swarm`.
    fn kind(&self) -> &'static str;

    /// Whether the engine has the container runtime `name` (e.g. `sysbox-runc`).
    fn has_runtime<'a>(&'a self, name: &'a str) -> BoxFuture<'a, bool>;

    /// Whether the image is there (or, for Swarm, known to the manager).
    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, BackendError>>;

    /// Creates and starts a workload; returns its handle. On failure nothing is left.
    fn create<'a>(&'a self, spec: &'a Spec) -> BoxFuture<'a, Result<String, BackendError>>;

    /// What the engine sees now.
    fn observe<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<Observed, BackendError>>;

    /// How a pause asked as `requested` is really done: an engine that cannot freeze (Swarm
    /// scales to zero) always stops, which frees the sandbox's resources.
    fn pause_kind(&self, requested: PauseKind) -> PauseKind {
        requested
    }

    /// Pauses a running workload.
    fn pause<'a>(
        &'a self,
        handle: &'a str,
        kind: PauseKind,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Resumes a paused workload (its endpoint may change: observe again).
    fn resume<'a>(
        &'a self,
        handle: &'a str,
        kind: PauseKind,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Removes a workload and what it owns; a missing one is not an error.
    fn remove<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;

    /// The workload's last log lines.
    fn logs<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, String>;

    /// Every workload labelled with this server's instance id.
    fn managed(&self) -> BoxFuture<'_, Result<Vec<Managed>, BackendError>>;
}
