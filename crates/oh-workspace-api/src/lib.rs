//! `ApiRemoteWorkspace`: asks a runtime API for a sandbox running the agent server and hands
//! back a [`RemoteWorkspace`] pointing at it (the Python SDK's `APIRemoteWorkspace`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use oh_protocol::runtime::PullPolicy;
//! use oh_workspace_api::ApiRemoteWorkspace;
//!
//! let key = std::env::var("RUNTIME_API_KEY")?;
//! let sandbox = ApiRemoteWorkspace::builder(
//!     "https://runtime.eval.all-hands.dev",
//!     key,
//!     "ghcr.io/openhands/agent-server:latest-python",
//! )
//! .image_pull_policy(PullPolicy::Always)
//! .forward_env(["LLM_API_KEY"])
//! .start()
//! .await?;
//! let result = sandbox
//!     .workspace()
//!     .execute_command("uname -a", None, Duration::from_secs(10))
//!     .await?;
//! println!("{} on {}", result.stdout, sandbox.url());
//! sandbox.cleanup().await?;
//! # Ok(()) }
//! ```
//!
//! # Protocol
//!
//! Every runtime-API call carries `X-API-Key`. [`ApiRemoteWorkspaceBuilder::start`] looks the
//! session up (`GET /sessions/{session_id}`): a `running` runtime is attached to, a `paused`
//! one resumed (`POST /resume`; if that fails a new one is started), anything else (or a 404)
//! gets `POST /start`. Then it polls `GET /sessions/{session_id}` until `pod_status` is
//! `ready` and the agent server's `/health` answers, within `startup_wait_timeout`.
//! `failed`, `unknown` and `crashloopbackoff` end the wait at once ([`Error::Failed`], with
//! the pod's logs).
//!
//! Differences from the Python client, on purpose:
//!
//! - Transient failures of the status call (no answer, a timeout, 429, 5xx) are retried
//!   within the budget instead of ending the wait.
//! - The wait starts at 50 ms and doubles up to 2 s (Python: 2 s to 10 s), so a sandbox that
//!   is ready at once costs no sleep.
//! - The agent server's URL and session key are taken from the status answer that says
//!   `ready`, so after a resume (the runtime API issues a new key) the workspace uses the
//!   new ones; Python keeps the stale key.
//! - A start that fails after a runtime was started or attached stops it (unless
//!   `keep_alive`), and so does dropping the workspace without [`cleanup`].
//!
//! Keys are held as [`SecretString`]s: no `Debug` output and no log line shows them; the
//! start request's log lists the names of forwarded variables only.
//!
//! [`cleanup`]: ApiRemoteWorkspace::cleanup

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use oh_client::RemoteWorkspace;
use oh_client::{ReadinessWait, ServiceClient};
use oh_protocol::SecretString;
/// When the runtime API pulls the image.
pub use oh_protocol::runtime::PullPolicy;
use oh_protocol::runtime::{
    BINARY_COMMAND, Command, PodStatus, Runtime, RuntimeIdRequest, RuntimeStatus, SANDBOX_USER,
    SOURCE_COMMAND, StartRequest,
};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The header carrying the runtime API key.
pub const API_KEY_HEADER: &str = "X-API-Key";

/// The header carrying the agent server's session key (also sent on `/pause`, `/resume` and
/// `/stop` once attached, as the Python client does).
const SESSION_KEY_HEADER: &str = "X-Session-API-Key";

/// The default working directory in the sandbox.
pub const DEFAULT_WORKING_DIR: &str = "/workspace";

/// The container runtime asked for by default.
pub const DEFAULT_RUNTIME_CLASS: &str = "sysbox-runc";

/// The resource factors a runtime API accepts.
const RESOURCE_FACTORS: [u32; 4] = [1, 2, 4, 8];

/// Time allowed for `/pause` and `/stop` (the reference's 30 s).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A boxed cause, for errors whose cause can be of several types.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a runtime-API workspace could not be started or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option cannot be used (a resource factor other than 1, 2, 4, 8, a zero timeout, a
    /// URL or key that is not valid in HTTP).
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// What is wrong.
        reason: String,
        /// The client's error, when it refused the value.
        #[source]
        source: Option<Box<oh_client::Error>>,
    },
    /// A runtime-API call failed (no answer, a status that is not 2xx, an unexpected body).
    #[error("runtime API call {call} for session {session_id} failed")]
    Api {
        /// Method and path, e.g. `POST /start`.
        call: String,
        /// The session.
        session_id: String,
        /// The client's error (with the status and the API's `detail`).
        #[source]
        source: Box<oh_client::Error>,
    },
    /// The runtime API described a runtime the workspace cannot use (no id, no URL, a URL
    /// that is not `http[s]://`).
    #[error("invalid runtime for session {session_id}: {reason}")]
    InvalidRuntime {
        /// The session.
        session_id: String,
        /// What is missing or wrong.
        reason: String,
        /// The decoder's or client's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The sandbox failed: pod status `failed`, `unknown` or `crashloopbackoff`. Not retried.
    #[error(
        "the runtime of session {session_id} failed (pod status {pod_status}{}); pod logs:\n{logs}",
        crash_hint(pod_status, restart_reasons)
    )]
    Failed {
        /// The session.
        session_id: String,
        /// The pod status that ended the wait.
        pod_status: PodStatus,
        /// Why the container restarted (`OOMKilled`, an exit code), if it did.
        restart_reasons: Vec<String>,
        /// The last lines of the sandbox's logs, as the runtime API sent them (may be empty).
        logs: String,
    },
    /// The sandbox was not ready within `startup_wait_timeout`.
    #[error(
        "the runtime of session {session_id} was not ready after {waited:?} (last state: {last_state})"
    )]
    NotReady {
        /// The session.
        session_id: String,
        /// What the last check saw (a pod status, `/health` not answering, a failed call).
        last_state: String,
        /// How long it waited.
        waited: Duration,
    },
    /// The workspace was cleaned up; its runtime is no longer this workspace's.
    #[error("the runtime of session {session_id} is not running (the workspace was cleaned up)")]
    NotRunning {
        /// The session.
        session_id: String,
    },
}

fn crash_hint(pod_status: &PodStatus, restart_reasons: &[String]) -> String {
    let mut hint = String::new();
    if *pod_status == PodStatus::CrashLoopBackOff {
        hint.push_str(": the agent server keeps crashing (out of memory?)");
    }
    if !restart_reasons.is_empty() {
        hint.push_str(&format!("; restarts: {}", restart_reasons.join(", ")));
    }
    hint
}

impl Error {
    /// True when retrying may help: a runtime-API call that got no answer, timed out or was
    /// answered 429 or 5xx ([`oh_client::Error::is_transient`]). The match names every
    /// variant, so a new one needs a decision.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { source, .. } => source.is_transient(),
            Self::InvalidOption { .. }
            | Self::InvalidRuntime { .. }
            | Self::Failed { .. }
            | Self::NotReady { .. }
            | Self::NotRunning { .. } => false,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the image runs: selects the start command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TargetType {
    /// The PyInstaller binary (`/usr/local/bin/openhands-agent-server`), the default.
    #[default]
    Binary,
    /// The Python sources (`/agent-server/.venv/bin/python -m openhands.agent_server`).
    Source,
}

impl TargetType {
    /// The start command sent to the runtime API.
    pub fn command(self) -> &'static str {
        match self {
            Self::Binary => BINARY_COMMAND,
            Self::Source => SOURCE_COMMAND,
        }
    }
}

/// Builds and starts an [`ApiRemoteWorkspace`]; see [`ApiRemoteWorkspace::builder`].
///
/// The runtime API key is a [`SecretString`]: `Debug` does not show it.
#[derive(Debug, Clone)]
#[must_use]
pub struct ApiRemoteWorkspaceBuilder {
    runtime_api_url: String,
    runtime_api_key: SecretString,
    server_image: String,
    image_pull_policy: PullPolicy,
    session_id: Option<String>,
    resource_factor: u32,
    runtime_class: String,
    init_timeout: Duration,
    startup_wait_timeout: Duration,
    api_timeout: Duration,
    keep_alive: bool,
    pause_on_close: bool,
    target_type: TargetType,
    forward_env: Vec<String>,
    working_dir: String,
}

impl ApiRemoteWorkspaceBuilder {
    /// When the runtime API pulls the image (default `IfNotPresent`; `Always` avoids stale
    /// moving tags such as `latest-python`).
    pub fn image_pull_policy(mut self, policy: PullPolicy) -> Self {
        self.image_pull_policy = policy;
        self
    }

    /// The key the runtime is found by: a running runtime of this session is attached to, a
    /// paused one resumed (default: a fresh `agent-server-<uuid4>` per start).
    pub fn session_id(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }

    /// Resource multiplier: 1 (the default, not sent), 2, 4 or 8; anything else fails
    /// [`start`](Self::start) with [`Error::InvalidOption`].
    pub fn resource_factor(mut self, factor: u32) -> Self {
        self.resource_factor = factor;
        self
    }

    /// Container runtime (default `sysbox-runc`); an empty string leaves it out of the
    /// request, so the runtime API's default applies.
    pub fn runtime_class(mut self, class: impl Into<String>) -> Self {
        self.runtime_class = class.into();
        self
    }

    /// Time allowed for `POST /start` and `POST /resume` (default 300 s).
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// Total time allowed for the sandbox to become ready (default 300 s; must be > 0).
    pub fn startup_wait_timeout(mut self, timeout: Duration) -> Self {
        self.startup_wait_timeout = timeout;
        self
    }

    /// Time allowed for every other runtime-API call (default 60 s).
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// Leave the runtime running on cleanup and on drop (default off).
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.keep_alive = on;
        self
    }

    /// Pause the runtime on cleanup and on drop instead of stopping it (default off).
    pub fn pause_on_close(mut self, on: bool) -> Self {
        self.pause_on_close = on;
        self
    }

    /// What the image runs (default [`TargetType::Binary`]).
    pub fn target_type(mut self, target: TargetType) -> Self {
        self.target_type = target;
        self
    }

    /// Copy these variables of this process's environment (read at start, when set) into
    /// the sandbox's (default: none).
    pub fn forward_env(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.forward_env = names.into_iter().map(Into::into).collect();
        self
    }

    /// The workspace directory in the sandbox (default `/workspace`).
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = dir.into();
        self
    }

    fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Error::InvalidOption {
            reason,
            source: None,
        };
        if !RESOURCE_FACTORS.contains(&self.resource_factor) {
            return Err(invalid(format!(
                "resource_factor must be 1, 2, 4 or 8, not {}",
                self.resource_factor
            )));
        }
        for (name, timeout) in [
            ("startup_wait_timeout", self.startup_wait_timeout),
            ("init_timeout", self.init_timeout),
            ("api_timeout", self.api_timeout),
        ] {
            if timeout.is_zero() {
                return Err(invalid(format!("{name} must be positive")));
            }
        }
        if self.server_image.trim().is_empty() {
            return Err(invalid("server_image must not be empty".into()));
        }
        if self.session_id.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("session_id must not be empty".into()));
        }
        Ok(())
    }

    /// The `POST /start` body.
    fn start_request(&self, session_id: &str) -> StartRequest {
        let environment = self
            .forward_env
            .iter()
            .filter_map(|name| {
                std::env::var(name)
                    .ok()
                    .map(|value| (name.clone(), SecretString::new(value)))
            })
            .collect::<BTreeMap<_, _>>();
        StartRequest {
            image: self.server_image.clone(),
            command: Some(Command::Line(self.target_type.command().to_owned())),
            // The image's WORKDIR.
            working_dir: Some("/".to_owned()),
            environment,
            session_id: session_id.to_owned(),
            run_as_user: Some(SANDBOX_USER),
            run_as_group: None,
            fs_group: Some(SANDBOX_USER),
            image_pull_policy: Some(self.image_pull_policy),
            runtime_class: (!self.runtime_class.is_empty()).then(|| self.runtime_class.clone()),
            resource_factor: (self.resource_factor != 1).then_some(self.resource_factor),
        }
    }

    /// Finds, resumes or starts the session's runtime and waits until its agent server is
    /// ready. If anything fails once a runtime was started or attached, it is stopped (unless
    /// [`keep_alive`](Self::keep_alive)) before the error returns; so it is if this future is
    /// dropped after the runtime API answered `/start` (or the lookup) and before it
    /// completes.
    pub async fn start(self) -> Result<ApiRemoteWorkspace> {
        self.validate()?;
        let session_id = self
            .session_id
            .clone()
            .unwrap_or_else(|| format!("agent-server-{}", uuid::Uuid::new_v4()));
        let invalid = |reason: &str| {
            let reason = reason.to_owned();
            move |source| Error::InvalidOption {
                reason,
                source: Some(Box::new(source)),
            }
        };
        let api = ServiceClient::new(&self.runtime_api_url)
            .map_err(invalid("runtime_api_url"))?
            .with_header(API_KEY_HEADER, &self.runtime_api_key)
            .map_err(invalid("runtime_api_key"))?
            .with_timeout(self.api_timeout);
        let runtime = self.attach_or_start(&api, &session_id).await?;
        let mut lease = Lease {
            api: api.clone(),
            api_key: self.runtime_api_key.clone(),
            session_id: session_id.clone(),
            runtime_id: runtime.runtime_id.clone(),
            session_key: runtime.session_api_key.clone(),
            keep_alive: self.keep_alive,
            pause_on_close: self.pause_on_close,
            closed: AtomicBool::new(false),
        };
        // From here on, `lease` stops the runtime on every early return and if this future
        // is dropped.
        match self.until_ready(&mut lease, runtime).await {
            Ok(remote) => Ok(ApiRemoteWorkspace {
                remote,
                lease,
                init_timeout: self.init_timeout,
                startup_wait_timeout: self.startup_wait_timeout,
                working_dir: self.working_dir,
            }),
            Err(error) => {
                // `closed` is set after the call, so if this future is dropped during it,
                // the lease's drop still stops the runtime.
                if !lease.keep_alive && !lease.closed.load(Ordering::SeqCst) {
                    tracing::info!(
                        session_id = %lease.session_id,
                        runtime_id = %lease.runtime_id,
                        "start failed: stopping the runtime"
                    );
                    if let Err(e) = lease.call("stop").await {
                        tracing::warn!(
                            session_id = %lease.session_id,
                            runtime_id = %lease.runtime_id,
                            "stopping the runtime: {}", chain(&e)
                        );
                    }
                    lease.closed.store(true, Ordering::SeqCst);
                }
                Err(error)
            }
        }
    }

    async fn until_ready(&self, lease: &mut Lease, runtime: Runtime) -> Result<RemoteWorkspace> {
        let url = runtime
            .url
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| Error::InvalidRuntime {
                session_id: lease.session_id.clone(),
                reason: "the runtime API sent no url".into(),
                source: None,
            })?;
        let known = Endpoint {
            url,
            key: runtime.session_api_key,
        };
        let remote = wait_ready(
            &lease.api,
            &lease.session_id,
            known,
            &self.working_dir,
            self.startup_wait_timeout,
        )
        .await?;
        lease.session_key = remote.api_key().map(SecretString::new);
        Ok(remote)
    }

    /// `GET /sessions/{id}`, then attach (running), resume (paused) or `POST /start`.
    async fn attach_or_start(&self, api: &ServiceClient, session_id: &str) -> Result<Runtime> {
        let path = session_path(session_id);
        let found = match api.get::<serde_json::Value>(&path).await {
            Ok(value) => Some(value),
            Err(e) if e.is_not_found() => None,
            Err(source) => return Err(api_error(format!("GET {path}"), session_id, source)),
        };
        if let Some(value) = found {
            let status = value
                .get("status")
                .and_then(serde_json::Value::as_str)
                .map(RuntimeStatus::parse)
                .unwrap_or_default();
            match status {
                RuntimeStatus::Running => {
                    let runtime = parse_runtime(value, session_id)?;
                    tracing::info!(
                        session_id,
                        runtime_id = %runtime.runtime_id,
                        "attaching to the running runtime"
                    );
                    return Ok(runtime);
                }
                RuntimeStatus::Paused => {
                    let runtime = parse_runtime(value, session_id)?;
                    tracing::info!(
                        session_id,
                        runtime_id = %runtime.runtime_id,
                        "resuming the paused runtime"
                    );
                    let body = RuntimeIdRequest {
                        runtime_id: runtime.runtime_id.clone(),
                    };
                    match api
                        .post::<_, IgnoredAny>("/resume", &body, Some(self.init_timeout))
                        .await
                    {
                        Ok(_) => return Ok(runtime),
                        Err(e) => tracing::warn!(
                            session_id,
                            runtime_id = %runtime.runtime_id,
                            "resuming failed, starting a new runtime: {}", chain(&e)
                        ),
                    }
                }
                other => {
                    tracing::info!(session_id, status = %other, "starting a new runtime");
                }
            }
        }
        let request = self.start_request(session_id);
        let forwarded: Vec<&str> = request.environment.keys().map(String::as_str).collect();
        tracing::info!(
            session_id,
            image = %request.image,
            command = self.target_type.command(),
            runtime_class = request.runtime_class.as_deref().unwrap_or(""),
            resource_factor = self.resource_factor,
            ?forwarded,
            "POST /start"
        );
        let value = api
            .post::<_, serde_json::Value>("/start", &request, Some(self.init_timeout))
            .await
            .map_err(|source| api_error("POST /start".into(), session_id, source))?;
        let runtime = parse_runtime(value, session_id)?;
        tracing::info!(session_id, runtime_id = %runtime.runtime_id, "runtime started");
        Ok(runtime)
    }
}

/// Where the agent server is, as last known.
struct Endpoint {
    url: String,
    key: Option<SecretString>,
}

/// What the readiness loop reads from `GET /sessions/{id}`; lenient like the Python client.
#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    pod_status: PodStatus,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    session_api_key: Option<SecretString>,
    #[serde(default)]
    restart_count: Option<u64>,
    #[serde(default)]
    restart_reasons: Option<Vec<String>>,
    #[serde(default)]
    pod_logs: Option<String>,
    #[serde(default)]
    container_statuses: Option<serde_json::Value>,
    #[serde(default)]
    events: Option<serde_json::Value>,
}

/// Polls `GET /sessions/{id}` until the pod is ready and the agent server answers `/health`,
/// within `budget`. The URL and key of the answer that says ready win over `known` (a
/// resumed runtime gets a new key). Returns the workspace on that server.
async fn wait_ready(
    api: &ServiceClient,
    session_id: &str,
    mut known: Endpoint,
    working_dir: &str,
    budget: Duration,
) -> Result<RemoteWorkspace> {
    let path = session_path(session_id);
    let mut wait = ReadinessWait::new(budget);
    loop {
        let report = wait
            .status::<Report>(api, &path)
            .await
            .map_err(|source| api_error(format!("GET {path}"), session_id, source))?;
        if let Some(report) = report {
            if let Some(count) = report.restart_count.filter(|c| *c > 0) {
                tracing::warn!(
                    session_id,
                    restart_count = count,
                    restart_reasons = ?report.restart_reasons.as_deref().unwrap_or_default(),
                    "the sandbox restarted"
                );
            }
            let pod_status = report.pod_status;
            tracing::debug!(session_id, attempt = wait.attempt(), pod_status = %pod_status, "readiness");
            if pod_status.is_fatal() {
                return Err(Error::Failed {
                    session_id: session_id.to_owned(),
                    pod_status,
                    restart_reasons: report.restart_reasons.unwrap_or_default(),
                    logs: report.pod_logs.unwrap_or_default(),
                });
            }
            if pod_status == PodStatus::Pending {
                tracing::debug!(
                    session_id,
                    container_statuses = ?report.container_statuses,
                    events = ?report.events,
                    "the sandbox is pending"
                );
            }
            if pod_status == PodStatus::Ready {
                if let Some(url) = report.url.filter(|u| !u.trim().is_empty()) {
                    known.url = url;
                }
                if let Some(key) = report.session_api_key {
                    known.key = Some(key);
                }
                let remote = remote(&known, working_dir, session_id)?;
                if wait.healthy(&remote).await {
                    tracing::info!(
                        session_id,
                        url = %remote.host(),
                        waited_ms = wait.elapsed().as_millis() as u64,
                        "the agent server is ready"
                    );
                    return Ok(remote);
                }
                wait.saw(format!("pod ready, {}/health not answering", remote.host()));
            } else {
                wait.saw(format!("pod status {pod_status}"));
            }
        }
        wait.pause().await.map_err(|expired| Error::NotReady {
            session_id: session_id.to_owned(),
            last_state: expired.last_state,
            waited: expired.waited,
        })?;
    }
}

/// The agent server's workspace for an endpoint.
fn remote(endpoint: &Endpoint, working_dir: &str, session_id: &str) -> Result<RemoteWorkspace> {
    let mut builder = RemoteWorkspace::builder(endpoint.url.as_str()).working_dir(working_dir);
    if let Some(key) = &endpoint.key {
        builder = builder.api_key(key.expose());
    }
    builder.build().map_err(|e| Error::InvalidRuntime {
        session_id: session_id.to_owned(),
        reason: "its url cannot be used".into(),
        source: Some(Box::new(e)),
    })
}

/// A runtime object whose id must be there (its url is checked by the caller).
fn parse_runtime(value: serde_json::Value, session_id: &str) -> Result<Runtime> {
    serde_json::from_value::<Runtime>(value).map_err(|e| Error::InvalidRuntime {
        session_id: session_id.to_owned(),
        reason: "no runtime_id (or id)".into(),
        source: Some(Box::new(e)),
    })
}

fn api_error(call: String, session_id: &str, source: oh_client::Error) -> Error {
    Error::Api {
        call,
        session_id: session_id.to_owned(),
        source: Box::new(source),
    }
}

/// `/sessions/<id>`, the id percent-encoded as a path segment.
fn session_path(session_id: &str) -> String {
    format!("/sessions/{}", oh_client::path_segment(session_id))
}

/// An error with its causes, for log lines.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    oh_client::error_chain(error)
}

/// The runtime a workspace holds: closing it (pause or stop, or nothing with `keep_alive`)
/// happens once, on cleanup or on drop at the latest.
#[derive(Debug)]
struct Lease {
    /// The runtime API's client (`X-API-Key`).
    api: ServiceClient,
    /// Kept to build a fresh client on drop (the pool of `api` may belong to a runtime that
    /// is blocked in that very drop).
    api_key: SecretString,
    session_id: String,
    runtime_id: String,
    session_key: Option<SecretString>,
    keep_alive: bool,
    pause_on_close: bool,
    closed: AtomicBool,
}

impl Lease {
    /// The runtime API's client with the session key as well.
    fn client(&self, api: ServiceClient) -> Result<ServiceClient, oh_client::Error> {
        match &self.session_key {
            Some(key) => api.with_header(SESSION_KEY_HEADER, key),
            None => Ok(api),
        }
    }

    /// `POST /{action}` with `{"runtime_id"}`.
    async fn call(&self, action: &'static str) -> Result<()> {
        self.call_within(action, CLOSE_TIMEOUT).await
    }

    async fn call_within(&self, action: &'static str, timeout: Duration) -> Result<()> {
        let call = format!("POST /{action}");
        let error = |source| api_error(call.clone(), &self.session_id, source);
        let api = self.client(self.api.clone()).map_err(error)?;
        let body = RuntimeIdRequest {
            runtime_id: self.runtime_id.clone(),
        };
        api.post::<_, IgnoredAny>(&format!("/{action}"), &body, Some(timeout))
            .await
            .map_err(error)?;
        Ok(())
    }

    /// `pause` or `stop`, as the options say.
    fn close_action(&self) -> &'static str {
        if self.pause_on_close { "pause" } else { "stop" }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.keep_alive || self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Drop cannot await: a short-lived thread with its own runtime and its own client
        // closes the runtime (also while unwinding from a panic).
        let action = self.close_action();
        let base = self.api.base().to_owned();
        let api_key = self.api_key.clone();
        let session_key = self.session_key.clone();
        let runtime_id = self.runtime_id.clone();
        let result = oh_client::block_on_own_thread(async move {
            let mut api = ServiceClient::new(&base)?.with_header(API_KEY_HEADER, &api_key)?;
            if let Some(key) = &session_key {
                api = api.with_header(SESSION_KEY_HEADER, key)?;
            }
            let body = RuntimeIdRequest {
                runtime_id: runtime_id.clone(),
            };
            api.post::<_, IgnoredAny>(&format!("/{action}"), &body, Some(CLOSE_TIMEOUT))
                .await
                .map(drop)
        });
        let (session_id, runtime_id) = (&self.session_id, &self.runtime_id);
        match result {
            Some(Ok(())) => {
                tracing::info!(%session_id, %runtime_id, action, "dropped: runtime closed")
            }
            Some(Err(e)) => tracing::warn!(
                %session_id, %runtime_id, action,
                "dropped: closing the runtime failed: {}", chain(&e)
            ),
            None => tracing::warn!(
                %session_id, %runtime_id, action,
                "dropped: closing the runtime failed: no runtime for the call"
            ),
        }
    }
}

/// An agent server in a sandbox from a runtime API. The runtime's methods (pause, resume,
/// cleanup) are here; the server is used through [`workspace`](Self::workspace), the
/// [`RemoteWorkspace`] pointing at it, like any remote workspace (also as
/// `AsRef<RemoteWorkspace>` and `RemoteWorkspace::from(&api)`).
///
/// It does not `Deref` to the `RemoteWorkspace`: a handle that owns a runtime is not a smart
/// pointer to a client, and through `Deref` one value answered with two error types (the
/// runtime's calls with [`Error`], the server's with `oh_client::Error`).
///
/// [`cleanup`](Self::cleanup) stops the runtime (or pauses it with `pause_on_close`, or
/// leaves it with `keep_alive`). Dropping the workspace without it does the same from a
/// short-lived thread with its own client, and waits for that call (at most 30 s), also
/// while unwinding from a panic; in async code prefer `cleanup().await`.
#[derive(Debug)]
pub struct ApiRemoteWorkspace {
    remote: RemoteWorkspace,
    lease: Lease,
    init_timeout: Duration,
    startup_wait_timeout: Duration,
    working_dir: String,
}

impl AsRef<RemoteWorkspace> for ApiRemoteWorkspace {
    fn as_ref(&self) -> &RemoteWorkspace {
        &self.remote
    }
}

/// A clone of the remote workspace (cheap: clones share one connection pool); the runtime
/// stays owned by the `ApiRemoteWorkspace`, which stops it. Convert again after
/// [`resume`](ApiRemoteWorkspace::resume): the URL and key may have changed.
impl From<&ApiRemoteWorkspace> for RemoteWorkspace {
    fn from(api: &ApiRemoteWorkspace) -> Self {
        api.remote.clone()
    }
}

impl ApiRemoteWorkspace {
    /// Starts building a workspace with the reference's defaults, for the runtime API at
    /// `runtime_api_url` (a trailing `/` is fine), authenticated by `runtime_api_key`
    /// (`X-API-Key`), running `server_image`.
    pub fn builder(
        runtime_api_url: impl Into<String>,
        runtime_api_key: impl Into<SecretString>,
        server_image: impl Into<String>,
    ) -> ApiRemoteWorkspaceBuilder {
        ApiRemoteWorkspaceBuilder {
            runtime_api_url: runtime_api_url.into(),
            runtime_api_key: runtime_api_key.into(),
            server_image: server_image.into(),
            image_pull_policy: PullPolicy::IfNotPresent,
            session_id: None,
            resource_factor: 1,
            runtime_class: DEFAULT_RUNTIME_CLASS.to_owned(),
            init_timeout: Duration::from_secs(300),
            startup_wait_timeout: Duration::from_secs(300),
            api_timeout: Duration::from_secs(60),
            keep_alive: false,
            pause_on_close: false,
            target_type: TargetType::Binary,
            forward_env: Vec::new(),
            working_dir: DEFAULT_WORKING_DIR.to_owned(),
        }
    }

    /// The remote workspace pointing at the sandbox's agent server. A clone taken before
    /// [`resume`](Self::resume) keeps the old URL and key.
    pub fn workspace(&self) -> &RemoteWorkspace {
        &self.remote
    }

    /// The session id the runtime is found by.
    pub fn session_id(&self) -> &str {
        &self.lease.session_id
    }

    /// The runtime's id.
    pub fn runtime_id(&self) -> &str {
        &self.lease.runtime_id
    }

    /// The agent server's URL, without a trailing slash.
    pub fn url(&self) -> &str {
        self.remote.host()
    }

    fn check_open(&self) -> Result<()> {
        if self.lease.closed.load(Ordering::SeqCst) {
            return Err(Error::NotRunning {
                session_id: self.lease.session_id.clone(),
            });
        }
        Ok(())
    }

    /// Pauses the runtime (`POST /pause`); [`resume`](Self::resume) brings it back.
    pub async fn pause(&self) -> Result<()> {
        self.check_open()?;
        tracing::info!(
            session_id = %self.lease.session_id,
            runtime_id = %self.lease.runtime_id,
            "pausing the runtime"
        );
        self.lease.call("pause").await
    }

    /// Resumes the runtime (`POST /resume`) and waits until it is ready again, then points
    /// the workspace at the agent server's URL and session key as the runtime API now gives
    /// them (it issues a new key on resume). Takes `&mut self` because
    /// [`workspace`](Self::workspace) changes.
    pub async fn resume(&mut self) -> Result<()> {
        self.check_open()?;
        tracing::info!(
            session_id = %self.lease.session_id,
            runtime_id = %self.lease.runtime_id,
            "resuming the runtime"
        );
        self.lease.call_within("resume", self.init_timeout).await?;
        let known = Endpoint {
            url: self.remote.host().to_owned(),
            key: self.remote.api_key().map(SecretString::new),
        };
        let remote = wait_ready(
            &self.lease.api,
            &self.lease.session_id,
            known,
            &self.working_dir,
            self.startup_wait_timeout,
        )
        .await?;
        self.lease.session_key = remote.api_key().map(SecretString::new);
        self.remote = remote;
        Ok(())
    }

    /// Stops the runtime (`POST /stop`), or pauses it with `pause_on_close`, or leaves it
    /// running with `keep_alive` (no call). Idempotent: only the first call does anything;
    /// a failed call is returned and not retried (the workspace counts as cleaned up).
    pub async fn cleanup(&self) -> Result<()> {
        if self.lease.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if self.lease.keep_alive {
            tracing::info!(
                session_id = %self.lease.session_id,
                runtime_id = %self.lease.runtime_id,
                "keep_alive: leaving the runtime running"
            );
            return Ok(());
        }
        let action = self.lease.close_action();
        tracing::info!(
            session_id = %self.lease.session_id,
            runtime_id = %self.lease.runtime_id,
            action,
            "closing the runtime"
        );
        self.lease.call(action).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_api_call_without_a_useful_answer_is_transient() {
        let api = |source: oh_client::Error| Error::Api {
            call: "GET /sessions/s".into(),
            session_id: "s".into(),
            source: Box::new(source),
        };
        let invalid_header = ServiceClient::new("http://h")
            .unwrap()
            .with_header("bad name", &SecretString::new("k"))
            .unwrap_err();
        assert!(!invalid_header.is_transient());
        assert!(!api(invalid_header).is_transient());
        let timeout = oh_client::Error::Timeout {
            what: "GET /sessions/s".into(),
            after: Duration::from_secs(1),
        };
        assert!(api(timeout).is_transient());
        for error in [
            Error::InvalidOption {
                reason: "r".into(),
                source: None,
            },
            Error::InvalidRuntime {
                session_id: "s".into(),
                reason: "r".into(),
                source: None,
            },
            Error::Failed {
                session_id: "s".into(),
                pod_status: PodStatus::Failed,
                restart_reasons: Vec::new(),
                logs: String::new(),
            },
            Error::NotReady {
                session_id: "s".into(),
                last_state: "x".into(),
                waited: Duration::from_secs(1),
            },
            Error::NotRunning {
                session_id: "s".into(),
            },
        ] {
            assert!(!error.is_transient(), "{error:?}");
        }
    }

    #[test]
    fn session_ids_are_encoded_as_one_path_segment() {
        assert_eq!(
            session_path("agent-server-1a2b"),
            "/sessions/agent-server-1a2b"
        );
        assert_eq!(session_path("a/b c"), "/sessions/a%2Fb%20c");
    }

    #[test]
    fn the_start_request_follows_the_reference() {
        let builder = ApiRemoteWorkspace::builder("http://api", "k", "img:1")
            .target_type(TargetType::Source)
            .runtime_class("")
            .resource_factor(4)
            .image_pull_policy(PullPolicy::Always);
        let body = serde_json::to_value(builder.start_request("s1")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "image": "img:1",
                "command": SOURCE_COMMAND,
                "working_dir": "/",
                "environment": {},
                "session_id": "s1",
                "run_as_user": 10001,
                "fs_group": 10001,
                "image_pull_policy": "Always",
                "resource_factor": 4,
            })
        );
    }

    #[test]
    fn crash_loops_say_why() {
        let error = Error::Failed {
            session_id: "s".into(),
            pod_status: PodStatus::CrashLoopBackOff,
            restart_reasons: vec!["OOMKilled".into()],
            logs: "boom".into(),
        };
        let text = error.to_string();
        assert!(
            text.contains("crashloopbackoff") && text.contains("out of memory"),
            "{text}"
        );
        assert!(
            text.contains("OOMKilled") && text.ends_with("boom"),
            "{text}"
        );
    }
}
