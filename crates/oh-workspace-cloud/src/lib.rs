//! `OpenHandsCloudWorkspace`: asks the OpenHands Cloud API for a sandbox running the agent
//! server and hands back a [`RemoteWorkspace`] pointing at it (the Python SDK's
//! `OpenHandsCloudWorkspace`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use oh_workspace_cloud::OpenHandsCloudWorkspace;
//!
//! let key = std::env::var("OPENHANDS_CLOUD_API_KEY")?;
//! let cloud = OpenHandsCloudWorkspace::builder("https://app.all-hands.dev", key)
//!     .sandbox_spec_id("ghcr.io/openhands/agent-server:main-python")
//!     .start()
//!     .await?;
//! let llm = cloud.get_llm(None).await?;
//! let result = cloud
//!     .workspace()
//!     .execute_command("uname -a", None, Duration::from_secs(10))
//!     .await?;
//! println!("{} with {} on {}", result.stdout, llm.model, cloud.url());
//! cloud.cleanup().await?;
//! # Ok(()) }
//! ```
//!
//! # Protocol
//!
//! Every Cloud call carries `Authorization: Bearer <cloud_api_key>`.
//! [`OpenHandsCloudWorkspaceBuilder::start`] creates a sandbox (`POST /api/v1/sandboxes`,
//! the spec id as a query parameter, no body) or resumes the given one (`POST
//! /api/v1/sandboxes/{id}/resume`), then polls `GET /api/v1/sandboxes?id=<id>` until the
//! sandbox is `RUNNING` and its `AGENT_SERVER` answers `/health`. `STARTING` (and unknown
//! words, and an unknown id) are waited out, `PAUSED` is resumed, `ERROR` and `MISSING` end
//! the wait at once ([`Error::Failed`]).
//!
//! Differences from the Python client, on purpose:
//!
//! - The wait's budget is `init_timeout` (Python: a fixed 300 s).
//! - Transient failures of the status call (no answer, a timeout, 429, 5xx) are retried
//!   within the budget instead of ending the wait.
//! - The wait starts at 50 ms and doubles up to 2 s (Python: 2 s to 10 s).
//! - After [`resume`](OpenHandsCloudWorkspace::resume) the workspace uses the agent server's
//!   URL and session key as the Cloud now reports them; Python keeps the stale ones.
//! - Dropping the workspace without [`cleanup`](OpenHandsCloudWorkspace::cleanup) deletes the
//!   sandbox too (unless `keep_alive`).
//! - Local agent-server mode reads its inputs from the builder, falling back to the
//!   environment (`AGENT_SERVER_PORT`, `SANDBOX_ID`, `SESSION_API_KEY`,
//!   `OH_SESSION_API_KEYS_0`); the environment is never changed.
//!
//! Keys are held as [`SecretString`]s: no `Debug` output and no log line shows them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use oh_client::RemoteWorkspace;
use oh_client::{ReadinessWait, ServiceClient, error_chain, path_segment, query_string};
use oh_protocol::Llm;
use oh_protocol::SecretString;
use oh_protocol::agent::{LookupSecret, SecretSource};
use oh_protocol::cloud::{SandboxInfo, SandboxStatus, SecretNames};
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

/// The header carrying the Cloud API key (as `Bearer <key>`).
pub const AUTHORIZATION_HEADER: &str = "Authorization";

/// The header carrying the sandbox's session key (agent server and sandbox settings).
pub const SESSION_KEY_HEADER: &str = "X-Session-API-Key";

/// The default working directory in the sandbox.
pub const DEFAULT_WORKING_DIR: &str = "/workspace/project";

/// The agent server's port in local agent-server mode, unless configured.
pub const DEFAULT_AGENT_SERVER_PORT: u16 = 60000;

/// The sandbox collection of the Cloud API.
const SANDBOXES: &str = "/api/v1/sandboxes";

/// The user's settings.
const USERS_ME: &str = "/api/v1/users/me";

/// Time allowed for `DELETE` (the reference's 30 s).
const DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts of the settings helpers, and their first and longest pause (§3.6's "3×").
const SETTINGS_ATTEMPTS: u32 = 3;
const SETTINGS_FIRST_WAIT: Duration = Duration::from_secs(1);
const SETTINGS_MAX_WAIT: Duration = Duration::from_secs(5);

/// A boxed cause, for errors whose cause can be of several types.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a Cloud workspace could not be started or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An option cannot be used (a zero timeout, an empty id, a URL or key that is not
    /// valid in HTTP).
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// What is wrong.
        reason: String,
        /// The client's error, when it refused the value.
        #[source]
        source: Option<Box<oh_client::Error>>,
    },
    /// The Cloud API refused the key (401 or 403).
    #[error("the Cloud API refused the key on {call}")]
    Unauthorized {
        /// Method and path, e.g. `POST /api/v1/sandboxes`.
        call: String,
        /// The client's error (with the status and the API's `detail`).
        #[source]
        source: Box<oh_client::Error>,
    },
    /// A Cloud API call failed (no answer, a status that is not 2xx, an unexpected body).
    #[error("Cloud API call {call} failed")]
    Api {
        /// Method and path, e.g. `POST /api/v1/sandboxes`.
        call: String,
        /// The client's error (with the status and the API's `detail`).
        #[source]
        source: Box<oh_client::Error>,
    },
    /// The Cloud described a sandbox the workspace cannot use (no id, no `AGENT_SERVER`
    /// URL, a URL that is not `http[s]://`).
    #[error("invalid sandbox {sandbox_id}: {reason}")]
    InvalidSandbox {
        /// The sandbox (empty if the Cloud sent no id).
        sandbox_id: String,
        /// What is missing or wrong.
        reason: String,
        /// The decoder's or client's error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The sandbox is `ERROR` or `MISSING`. Not retried.
    #[error("sandbox {sandbox_id} is {status}")]
    Failed {
        /// The sandbox.
        sandbox_id: String,
        /// The status that ended the wait.
        status: SandboxStatus,
    },
    /// The sandbox was not running within `init_timeout`.
    #[error("sandbox {sandbox_id} was not running after {waited:?} (last state: {last_state})")]
    NotReady {
        /// The sandbox.
        sandbox_id: String,
        /// What the last check saw (a status, `/health` not answering, a failed call).
        last_state: String,
        /// How long it waited.
        waited: Duration,
    },
    /// There is no sandbox to use: the workspace was cleaned up, or (local mode) no id or
    /// session key is known.
    #[error("sandbox {sandbox_id} is not running: {reason}")]
    NotRunning {
        /// The sandbox (empty if unknown).
        sandbox_id: String,
        /// Why.
        reason: String,
    },
    /// The operation is not supported by the Cloud workspace (as in the reference).
    #[error("{operation} is not yet supported by OpenHandsCloudWorkspace")]
    Unsupported {
        /// The operation, e.g. `pause`.
        operation: &'static str,
    },
    /// The user's settings have no LLM profile of this name.
    #[error("LLM profile {profile:?} not found in the user's settings")]
    ProfileNotFound {
        /// The profile asked for.
        profile: String,
    },
    /// The user's settings could not be read as an LLM configuration.
    #[error("invalid LLM settings: {reason}")]
    InvalidSettings {
        /// What is wrong.
        reason: String,
        /// The decoder's error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// True when retrying may help: a Cloud API call that got no answer, timed out or was
    /// answered 429 or 5xx ([`oh_client::Error::is_transient`]). A refused key, a failed
    /// sandbox or a wait that ran out is not. The match names every variant, so a new one
    /// needs a decision.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { source, .. } => source.is_transient(),
            Self::InvalidOption { .. }
            | Self::Unauthorized { .. }
            | Self::InvalidSandbox { .. }
            | Self::Failed { .. }
            | Self::NotReady { .. }
            | Self::NotRunning { .. }
            | Self::Unsupported { .. }
            | Self::ProfileNotFound { .. }
            | Self::InvalidSettings { .. } => false,
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn api_error(call: String, source: oh_client::Error) -> Error {
    if matches!(source.status(), Some(401 | 403)) {
        Error::Unauthorized {
            call,
            source: Box::new(source),
        }
    } else {
        Error::Api {
            call,
            source: Box::new(source),
        }
    }
}

fn invalid_option(reason: &str) -> impl FnOnce(oh_client::Error) -> Error {
    let reason = reason.to_owned();
    move |source| Error::InvalidOption {
        reason,
        source: Some(Box::new(source)),
    }
}

/// `Bearer <key>`.
fn bearer(key: &SecretString) -> SecretString {
    SecretString::new(format!("Bearer {}", key.expose()))
}

/// A Cloud API client with the Bearer key.
fn cloud_client(url: &str, key: &SecretString, timeout: Duration) -> Result<ServiceClient> {
    Ok(ServiceClient::new(url)
        .map_err(invalid_option("cloud_api_url"))?
        .with_header(AUTHORIZATION_HEADER, &bearer(key))
        .map_err(invalid_option("cloud_api_key"))?
        .with_timeout(timeout))
}

fn sandbox_path(sandbox_id: &str) -> String {
    format!("{SANDBOXES}/{}", path_segment(sandbox_id))
}

/// Builds and starts an [`OpenHandsCloudWorkspace`]; see
/// [`OpenHandsCloudWorkspace::builder`].
///
/// Keys are [`SecretString`]s: `Debug` does not show them.
#[derive(Debug, Clone)]
#[must_use]
pub struct OpenHandsCloudWorkspaceBuilder {
    cloud_api_url: String,
    cloud_api_key: SecretString,
    sandbox_spec_id: Option<String>,
    sandbox_id: Option<String>,
    init_timeout: Duration,
    api_timeout: Duration,
    keep_alive: bool,
    local_agent_server_mode: bool,
    agent_server_port: Option<u16>,
    session_api_key: Option<SecretString>,
    read_env: bool,
    working_dir: String,
}

impl OpenHandsCloudWorkspaceBuilder {
    /// The sandbox spec to create the sandbox from, e.g. an agent-server image tag (default:
    /// the Cloud's).
    pub fn sandbox_spec_id(mut self, id: impl Into<String>) -> Self {
        self.sandbox_spec_id = Some(id.into());
        self
    }

    /// Resume and attach to this sandbox instead of creating one. In local agent-server mode:
    /// the sandbox the SDK runs in (default there: `SANDBOX_ID` of the environment).
    pub fn sandbox_id(mut self, id: impl Into<String>) -> Self {
        self.sandbox_id = Some(id.into());
        self
    }

    /// Time allowed for create and resume calls, and for the whole wait until the sandbox
    /// runs (default 300 s).
    pub fn init_timeout(mut self, timeout: Duration) -> Self {
        self.init_timeout = timeout;
        self
    }

    /// Time allowed for every other Cloud call and the agent server's read timeout (default
    /// 60 s).
    pub fn api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// Leave the sandbox on cleanup and on drop (default off).
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.keep_alive = on;
        self
    }

    /// The SDK runs inside a Cloud sandbox: no sandbox calls, the agent server is at
    /// `http://localhost:<agent_server_port>` (default off).
    pub fn local_agent_server_mode(mut self, on: bool) -> Self {
        self.local_agent_server_mode = on;
        self
    }

    /// Local mode: the agent server's port (default: `AGENT_SERVER_PORT` of the environment,
    /// else 60000).
    pub fn agent_server_port(mut self, port: u16) -> Self {
        self.agent_server_port = Some(port);
        self
    }

    /// Local mode: the sandbox's session key (default: `SESSION_API_KEY` of the environment,
    /// else `OH_SESSION_API_KEYS_0`).
    pub fn session_api_key(mut self, key: impl Into<SecretString>) -> Self {
        self.session_api_key = Some(key.into());
        self
    }

    /// Local mode: whether unset inputs fall back to the environment (default on).
    pub fn read_env(mut self, on: bool) -> Self {
        self.read_env = on;
        self
    }

    /// The workspace directory in the sandbox (default `/workspace/project`).
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = dir.into();
        self
    }

    fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| Error::InvalidOption {
            reason: reason.to_owned(),
            source: None,
        };
        if self.init_timeout.is_zero() {
            return Err(invalid("init_timeout must be positive"));
        }
        if self.api_timeout.is_zero() {
            return Err(invalid("api_timeout must be positive"));
        }
        if self.sandbox_id.as_deref().is_some_and(str::is_empty) {
            return Err(invalid("sandbox_id must not be empty"));
        }
        Ok(())
    }

    fn env(&self, name: &str) -> Option<String> {
        if !self.read_env {
            return None;
        }
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }

    /// Creates (or resumes) the sandbox and waits until its agent server answers; in local
    /// mode, points at the local agent server without any call. If anything fails once a
    /// sandbox was created or resumed, it is deleted (unless
    /// [`keep_alive`](Self::keep_alive)) before the error returns; so it is if this future
    /// is dropped after that point.
    pub async fn start(self) -> Result<OpenHandsCloudWorkspace> {
        self.validate()?;
        let cloud_api_url = self.cloud_api_url.trim_end_matches('/').to_owned();
        let api = cloud_client(&cloud_api_url, &self.cloud_api_key, self.api_timeout)?;
        if self.local_agent_server_mode {
            return self.start_local(api);
        }
        let (sandbox_id, resume) = match &self.sandbox_id {
            Some(id) => (id.clone(), true),
            None => (self.create(&api).await?, false),
        };
        let lease = Lease {
            api: api.clone(),
            api_key: self.cloud_api_key.clone(),
            sandbox_id: Some(sandbox_id.clone()),
            keep_alive: self.keep_alive,
            local: false,
            closed: AtomicBool::new(false),
        };
        // From here on, `lease` deletes the sandbox on every early return and if this future
        // is dropped.
        let ready = async {
            if resume {
                // A sandbox that cannot come back is named as such, not as a failed resume.
                if let Some(status) = fatal_status(&api, &sandbox_id).await? {
                    return Err(Error::Failed {
                        sandbox_id: sandbox_id.clone(),
                        status,
                    });
                }
                tracing::info!(sandbox_id, "resuming the sandbox");
                resume_call(&api, &sandbox_id, self.init_timeout).await?;
            }
            wait_running(
                &api,
                &sandbox_id,
                &self.working_dir,
                self.init_timeout,
                self.api_timeout,
            )
            .await
        };
        match ready.await {
            Ok(remote) => Ok(OpenHandsCloudWorkspace {
                remote,
                lease,
                cloud_api_url,
                init_timeout: self.init_timeout,
                api_timeout: self.api_timeout,
                working_dir: self.working_dir,
            }),
            Err(error) => {
                if !lease.keep_alive && !lease.closed.load(Ordering::SeqCst) {
                    tracing::info!(sandbox_id, "start failed: deleting the sandbox");
                    if let Err(e) = lease.delete().await {
                        tracing::warn!(sandbox_id, "deleting the sandbox: {}", error_chain(&e));
                    }
                    lease.closed.store(true, Ordering::SeqCst);
                }
                Err(error)
            }
        }
    }

    /// `POST /api/v1/sandboxes[?sandbox_spec_id=…]`: the new sandbox's id.
    async fn create(&self, api: &ServiceClient) -> Result<String> {
        let path = match &self.sandbox_spec_id {
            Some(spec) => format!("{SANDBOXES}?{}", query_string(&[("sandbox_spec_id", spec)])),
            None => SANDBOXES.to_owned(),
        };
        tracing::info!(sandbox_spec_id = ?self.sandbox_spec_id, "creating a sandbox");
        let call = format!("POST {path}");
        let value: Value = api
            .post_empty(&path, Some(self.init_timeout))
            .await
            .map_err(|source| api_error(call, source))?;
        let info: SandboxInfo =
            serde_json::from_value(value).map_err(|e| Error::InvalidSandbox {
                sandbox_id: String::new(),
                reason: "the create answer has no id".into(),
                source: Some(Box::new(e)),
            })?;
        if info.id.is_empty() {
            return Err(Error::InvalidSandbox {
                sandbox_id: String::new(),
                reason: "the create answer has an empty id".into(),
                source: None,
            });
        }
        tracing::info!(sandbox_id = %info.id, "sandbox created");
        Ok(info.id)
    }

    fn start_local(self, api: ServiceClient) -> Result<OpenHandsCloudWorkspace> {
        let port = self
            .agent_server_port
            .or_else(|| self.env("AGENT_SERVER_PORT").and_then(|p| p.parse().ok()))
            .unwrap_or(DEFAULT_AGENT_SERVER_PORT);
        let sandbox_id = self.sandbox_id.clone().or_else(|| self.env("SANDBOX_ID"));
        let key = self.session_api_key.clone().or_else(|| {
            self.env("SESSION_API_KEY")
                .or_else(|| self.env("OH_SESSION_API_KEYS_0"))
                .map(SecretString::new)
        });
        if sandbox_id.is_none() {
            tracing::warn!(
                "local agent-server mode without a sandbox id: settings calls will fail"
            );
        }
        if key.is_none() {
            tracing::warn!(
                "local agent-server mode without a session key: settings calls will fail"
            );
        }
        let host = format!("http://localhost:{port}");
        let mut builder = RemoteWorkspace::builder(host.as_str())
            .working_dir(self.working_dir.as_str())
            .read_timeout(self.api_timeout);
        if let Some(key) = &key {
            builder = builder.api_key(key.expose());
        }
        let remote = builder
            .build()
            .map_err(invalid_option("agent_server_port"))?;
        tracing::info!(url = %host, "local agent-server mode");
        Ok(OpenHandsCloudWorkspace {
            remote,
            lease: Lease {
                api,
                api_key: self.cloud_api_key.clone(),
                sandbox_id,
                keep_alive: self.keep_alive,
                local: true,
                closed: AtomicBool::new(false),
            },
            cloud_api_url: self.cloud_api_url.trim_end_matches('/').to_owned(),
            init_timeout: self.init_timeout,
            api_timeout: self.api_timeout,
            working_dir: self.working_dir,
        })
    }
}

/// The status of a sandbox when it is `ERROR` or `MISSING` (`None` otherwise, and for a
/// sandbox the Cloud does not show: the resume call then says why).
async fn fatal_status(api: &ServiceClient, sandbox_id: &str) -> Result<Option<SandboxStatus>> {
    let path = format!("{SANDBOXES}?{}", query_string(&[("id", sandbox_id)]));
    let list = api
        .get::<Vec<Option<SandboxInfo>>>(&path)
        .await
        .map_err(|source| api_error(format!("GET {path}"), source))?;
    Ok(list
        .into_iter()
        .flatten()
        .find(|i| i.id == sandbox_id)
        .map(|i| i.status)
        .filter(SandboxStatus::is_fatal))
}

/// `POST /api/v1/sandboxes/{id}/resume` within `timeout`.
async fn resume_call(api: &ServiceClient, sandbox_id: &str, timeout: Duration) -> Result<()> {
    let path = format!("{}/resume", sandbox_path(sandbox_id));
    api.post_empty::<IgnoredAny>(&path, Some(timeout))
        .await
        .map_err(|source| api_error(format!("POST {path}"), source))?;
    Ok(())
}

/// Polls `GET /api/v1/sandboxes?id=<id>` until the sandbox runs and its agent server answers
/// `/health`, within `budget`; resumes it when it is paused. Returns the workspace on that
/// agent server, with the URL and key of the answer that said `RUNNING`.
async fn wait_running(
    api: &ServiceClient,
    sandbox_id: &str,
    working_dir: &str,
    budget: Duration,
    api_timeout: Duration,
) -> Result<RemoteWorkspace> {
    let path = format!("{SANDBOXES}?{}", query_string(&[("id", sandbox_id)]));
    let mut wait = ReadinessWait::new(budget);
    loop {
        let list = wait
            .status::<Vec<Option<SandboxInfo>>>(api, &path)
            .await
            .map_err(|source| api_error(format!("GET {path}"), source))?;
        match list.map(|list| list.into_iter().flatten().find(|i| i.id == sandbox_id)) {
            // No answer in time, or a transient failure: the wait recorded it.
            None => {}
            Some(None) => wait.saw("the Cloud does not know the sandbox (yet)"),
            Some(Some(info)) => {
                tracing::debug!(sandbox_id, attempt = wait.attempt(), status = %info.status, "readiness");
                match &info.status {
                    SandboxStatus::Error | SandboxStatus::Missing => {
                        return Err(Error::Failed {
                            sandbox_id: sandbox_id.to_owned(),
                            status: info.status,
                        });
                    }
                    SandboxStatus::Running => {
                        let remote = running(&info, working_dir, api_timeout)?;
                        if wait.healthy(&remote).await {
                            tracing::info!(
                                sandbox_id,
                                url = %remote.host(),
                                waited_ms = wait.elapsed().as_millis() as u64,
                                "the agent server is ready"
                            );
                            return Ok(remote);
                        }
                        wait.saw(format!("RUNNING, {}/health not answering", remote.host()));
                    }
                    SandboxStatus::Paused => {
                        tracing::info!(sandbox_id, "the sandbox is paused: resuming it");
                        let timeout = wait.remaining().max(Duration::from_millis(1));
                        match resume_call(api, sandbox_id, timeout).await {
                            Ok(()) => wait.saw("PAUSED, resumed"),
                            Err(e) if e.is_transient() => {
                                wait.saw(format!("PAUSED, resume failed: {}", error_chain(&e)));
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    other => wait.saw(format!("status {other}")),
                }
            }
        }
        wait.pause().await.map_err(|expired| Error::NotReady {
            sandbox_id: sandbox_id.to_owned(),
            last_state: expired.last_state,
            waited: expired.waited,
        })?;
    }
}

/// The agent server's workspace of a running sandbox.
fn running(
    info: &SandboxInfo,
    working_dir: &str,
    api_timeout: Duration,
) -> Result<RemoteWorkspace> {
    let url = info
        .agent_server_url()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| Error::InvalidSandbox {
            sandbox_id: info.id.clone(),
            reason: "agent server URL not found in the sandbox's exposed URLs".into(),
            source: None,
        })?;
    let mut builder = RemoteWorkspace::builder(url.trim_end_matches('/'))
        .working_dir(working_dir)
        .read_timeout(api_timeout);
    if let Some(key) = &info.session_api_key {
        builder = builder.api_key(key.expose());
    }
    builder.build().map_err(|e| Error::InvalidSandbox {
        sandbox_id: info.id.clone(),
        reason: "its agent server URL cannot be used".into(),
        source: Some(Box::new(e)),
    })
}

/// The sandbox a workspace holds: deleting it (or nothing with `keep_alive` or in local
/// mode) happens once, on cleanup or on drop at the latest.
#[derive(Debug)]
struct Lease {
    /// The Cloud API's client (Bearer).
    api: ServiceClient,
    /// Kept to build a fresh client on drop.
    api_key: SecretString,
    sandbox_id: Option<String>,
    keep_alive: bool,
    local: bool,
    closed: AtomicBool,
}

impl Lease {
    /// Nothing to delete on close.
    fn leaves(&self) -> bool {
        self.keep_alive || self.local || self.sandbox_id.is_none()
    }

    /// `DELETE /api/v1/sandboxes/{id}?sandbox_id={id}`.
    async fn delete(&self) -> Result<()> {
        let Some(id) = &self.sandbox_id else {
            return Ok(());
        };
        delete_call(&self.api, id).await
    }
}

fn delete_path(sandbox_id: &str) -> String {
    format!(
        "{}?{}",
        sandbox_path(sandbox_id),
        query_string(&[("sandbox_id", sandbox_id)])
    )
}

async fn delete_call(api: &ServiceClient, sandbox_id: &str) -> Result<()> {
    let path = delete_path(sandbox_id);
    api.delete::<IgnoredAny>(&path, Some(DELETE_TIMEOUT))
        .await
        .map_err(|source| api_error(format!("DELETE {path}"), source))?;
    Ok(())
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.leaves() || self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some(sandbox_id) = self.sandbox_id.clone() else {
            return;
        };
        // Drop cannot await: a short-lived thread with its own runtime and its own client
        // deletes the sandbox (also while unwinding from a panic).
        let base = self.api.base().to_owned();
        let api_key = self.api_key.clone();
        let id = sandbox_id.clone();
        let result = oh_client::block_on_own_thread(async move {
            let api = cloud_client(&base, &api_key, DELETE_TIMEOUT)?;
            delete_call(&api, &id).await
        });
        match result {
            Some(Ok(())) => tracing::info!(%sandbox_id, "dropped: sandbox deleted"),
            Some(Err(e)) => tracing::warn!(
                %sandbox_id,
                "dropped: deleting the sandbox failed: {}", error_chain(&e)
            ),
            None => tracing::warn!(
                %sandbox_id,
                "dropped: deleting the sandbox failed: no runtime for the call"
            ),
        }
    }
}

/// An agent server in an OpenHands Cloud sandbox. The sandbox's methods (resume, cleanup,
/// the user's settings) are here; the server is used through
/// [`workspace`](Self::workspace), the [`RemoteWorkspace`] pointing at it, like any remote
/// workspace (also as `AsRef<RemoteWorkspace>` and `RemoteWorkspace::from(&cloud)`).
///
/// It does not `Deref` to the `RemoteWorkspace`: a handle that owns a sandbox is not a smart
/// pointer to a client, and through `Deref` one value answered with two error types (the
/// sandbox's calls with [`Error`], the server's with `oh_client::Error`).
///
/// [`cleanup`](Self::cleanup) deletes the sandbox (or leaves it with `keep_alive`, or in
/// local agent-server mode). Dropping the workspace without it does the same from a
/// short-lived thread with its own client, and waits for that call (at most 30 s); in async
/// code prefer `cleanup().await`.
#[derive(Debug)]
pub struct OpenHandsCloudWorkspace {
    remote: RemoteWorkspace,
    lease: Lease,
    cloud_api_url: String,
    init_timeout: Duration,
    api_timeout: Duration,
    working_dir: String,
}

impl AsRef<RemoteWorkspace> for OpenHandsCloudWorkspace {
    fn as_ref(&self) -> &RemoteWorkspace {
        &self.remote
    }
}

/// A clone of the remote workspace (cheap: clones share one connection pool); the sandbox
/// stays owned by the `OpenHandsCloudWorkspace`, which deletes it. Convert again after
/// [`resume`](OpenHandsCloudWorkspace::resume): the URL and key may have changed.
impl From<&OpenHandsCloudWorkspace> for RemoteWorkspace {
    fn from(cloud: &OpenHandsCloudWorkspace) -> Self {
        cloud.remote.clone()
    }
}

impl OpenHandsCloudWorkspace {
    /// Starts building a workspace with the reference's defaults, for the Cloud API at
    /// `cloud_api_url` (a trailing `/` is fine), authenticated by `cloud_api_key`
    /// (`Authorization: Bearer …`).
    pub fn builder(
        cloud_api_url: impl Into<String>,
        cloud_api_key: impl Into<SecretString>,
    ) -> OpenHandsCloudWorkspaceBuilder {
        OpenHandsCloudWorkspaceBuilder {
            cloud_api_url: cloud_api_url.into(),
            cloud_api_key: cloud_api_key.into(),
            sandbox_spec_id: None,
            sandbox_id: None,
            init_timeout: Duration::from_secs(300),
            api_timeout: Duration::from_secs(60),
            keep_alive: false,
            local_agent_server_mode: false,
            agent_server_port: None,
            session_api_key: None,
            read_env: true,
            working_dir: DEFAULT_WORKING_DIR.to_owned(),
        }
    }

    /// The remote workspace pointing at the sandbox's agent server. A clone taken before
    /// [`resume`](Self::resume) keeps the old URL and key.
    pub fn workspace(&self) -> &RemoteWorkspace {
        &self.remote
    }

    /// The sandbox's id (`None` only in local mode without one).
    pub fn sandbox_id(&self) -> Option<&str> {
        self.lease.sandbox_id.as_deref()
    }

    /// The agent server's URL, without a trailing slash.
    pub fn url(&self) -> &str {
        self.remote.host()
    }

    /// The Cloud API's URL, without a trailing slash.
    pub fn cloud_api_url(&self) -> &str {
        &self.cloud_api_url
    }

    /// The workspace directory in the sandbox.
    pub fn working_dir(&self) -> &str {
        &self.working_dir
    }

    /// The sandbox id and session key, or [`Error::NotRunning`].
    fn sandbox(&self) -> Result<(&str, SecretString)> {
        let id = self.lease.sandbox_id.as_deref().unwrap_or_default();
        if self.lease.closed.load(Ordering::SeqCst) {
            return Err(Error::NotRunning {
                sandbox_id: id.to_owned(),
                reason: "the workspace was cleaned up".into(),
            });
        }
        if id.is_empty() {
            return Err(Error::NotRunning {
                sandbox_id: String::new(),
                reason: "no sandbox id is known".into(),
            });
        }
        let Some(key) = self.remote.api_key() else {
            return Err(Error::NotRunning {
                sandbox_id: id.to_owned(),
                reason: "no session key is known".into(),
            });
        };
        Ok((id, SecretString::new(key)))
    }

    /// Not supported, as in the reference: always [`Error::Unsupported`].
    pub async fn pause(&self) -> Result<()> {
        Err(Error::Unsupported { operation: "pause" })
    }

    /// Resumes the sandbox (`POST …/resume`) and waits until it runs again (within
    /// `init_timeout`), then points the workspace at the agent server's URL and session key
    /// as the Cloud now reports them. Takes `&mut self` because
    /// [`workspace`](Self::workspace) changes. Local mode: [`Error::Unsupported`].
    pub async fn resume(&mut self) -> Result<()> {
        if self.lease.local {
            return Err(Error::Unsupported {
                operation: "resume in local agent-server mode",
            });
        }
        let id = self.lease.sandbox_id.clone().unwrap_or_default();
        if self.lease.closed.load(Ordering::SeqCst) || id.is_empty() {
            return Err(Error::NotRunning {
                sandbox_id: id,
                reason: "cannot resume: the workspace was cleaned up".into(),
            });
        }
        tracing::info!(sandbox_id = %id, "resuming the sandbox");
        resume_call(&self.lease.api, &id, self.init_timeout).await?;
        self.remote = wait_running(
            &self.lease.api,
            &id,
            &self.working_dir,
            self.init_timeout,
            self.api_timeout,
        )
        .await?;
        Ok(())
    }

    /// Deletes the sandbox (`DELETE /api/v1/sandboxes/{id}?sandbox_id={id}`), or leaves it
    /// with `keep_alive` and in local mode (no call). Idempotent: only the first call does
    /// anything; a failed call is returned and not retried (the workspace counts as cleaned
    /// up).
    pub async fn cleanup(&self) -> Result<()> {
        if self.lease.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if self.lease.leaves() {
            tracing::info!(
                sandbox_id = ?self.lease.sandbox_id,
                keep_alive = self.lease.keep_alive,
                local = self.lease.local,
                "leaving the sandbox"
            );
            return Ok(());
        }
        tracing::info!(sandbox_id = ?self.lease.sandbox_id, "deleting the sandbox");
        self.lease.delete().await
    }

    /// `GET /api/v1/users/me[?expose_secrets=true]` with the Bearer and session keys.
    async fn user_settings(&self, expose_secrets: bool) -> Result<Value> {
        let (_, key) = self.sandbox()?;
        let api = self
            .lease
            .api
            .clone()
            .with_header(SESSION_KEY_HEADER, &key)
            .map_err(invalid_option("session key"))?;
        let path = if expose_secrets {
            format!("{USERS_ME}?expose_secrets=true")
        } else {
            USERS_ME.to_owned()
        };
        retrying(&path, || api.get::<Value>(&path)).await
    }

    /// The user's LLM from the Cloud settings (`GET /api/v1/users/me?expose_secrets=true`,
    /// up to 3 attempts on transient errors). Without a profile: `llm_model`, `llm_api_key`
    /// and `llm_base_url` over the defaults; with one: `llm_profiles.profiles[<name>]`,
    /// with `usage_id = "profile:<name>"` ([`Error::ProfileNotFound`] if it is not there).
    pub async fn get_llm(&self, profile: Option<&str>) -> Result<Llm> {
        let settings = self.user_settings(true).await?;
        llm_from_settings(&settings, profile)
    }

    /// Lookup references to the sandbox's secrets, by name (all of them, or those in
    /// `names`). The names come from `GET /api/v1/sandboxes/{id}/settings/secrets` (session
    /// key, up to 3 attempts); each reference points at
    /// `{cloud}/api/v1/sandboxes/{id}/settings/secrets/<name>` with the session key as
    /// `X-Session-API-Key`. Values are fetched later by the agent server, never here.
    pub async fn get_secrets(
        &self,
        names: Option<&[&str]>,
    ) -> Result<BTreeMap<String, SecretSource>> {
        let (id, key) = self.sandbox()?;
        let api = ServiceClient::new(&self.cloud_api_url)
            .map_err(invalid_option("cloud_api_url"))?
            .with_header(SESSION_KEY_HEADER, &key)
            .map_err(invalid_option("session key"))?
            .with_timeout(self.api_timeout);
        let base = format!("{}/settings/secrets", sandbox_path(id));
        let listed: SecretNames = retrying(&base, || api.get::<SecretNames>(&base)).await?;
        Ok(listed
            .secrets
            .into_iter()
            .filter(|s| names.is_none_or(|wanted| wanted.contains(&s.name.as_str())))
            .filter(|s| !s.name.is_empty() && !s.name.contains('/') && !s.name.contains(".."))
            .map(|s| {
                let lookup = LookupSecret {
                    description: s.description,
                    url: format!("{}{base}/{}", self.cloud_api_url, path_segment(&s.name)),
                    headers: BTreeMap::from([(SESSION_KEY_HEADER.to_owned(), key.clone())]),
                };
                (s.name, SecretSource::Lookup(lookup))
            })
            .collect())
    }

    /// The user's MCP servers from the Cloud settings (`GET /api/v1/users/me`, up to 3
    /// attempts), as an MCP config object: `sse_<i>` and `shttp_<i>` entries with their URL,
    /// transport and (when they have a key) `Authorization: Bearer` header, stdio servers by
    /// name. `{}` when there is none.
    pub async fn get_mcp_config(&self) -> Result<Value> {
        let settings = self.user_settings(false).await?;
        Ok(mcp_from_settings(&settings))
    }
}

/// Up to 3 attempts of a settings call, waiting 1 s then 2 s, on transient errors only.
async fn retrying<T, F, Fut>(path: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = oh_client::Result<T>>,
{
    let mut wait = SETTINGS_FIRST_WAIT;
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if e.is_transient() && attempt < SETTINGS_ATTEMPTS => {
                tracing::warn!(attempt, "GET {path} failed, retrying: {}", error_chain(&e));
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(SETTINGS_MAX_WAIT);
                attempt += 1;
            }
            Err(source) => return Err(api_error(format!("GET {path}"), source)),
        }
    }
}

/// A non-empty string field.
fn truthy<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get(field)?.as_str().filter(|s| !s.is_empty())
}

/// §6.7's mapping of the user's settings to an LLM.
fn llm_from_settings(settings: &Value, profile: Option<&str>) -> Result<Llm> {
    let invalid = |e: serde_json::Error| Error::InvalidSettings {
        reason: "the LLM configuration cannot be read".into(),
        source: Some(Box::new(e)),
    };
    match profile {
        Some(name) => {
            let config = settings
                .get("llm_profiles")
                .and_then(|p| p.get("profiles"))
                .and_then(|p| p.get(name))
                .filter(|c| c.is_object())
                .ok_or_else(|| Error::ProfileNotFound {
                    profile: name.to_owned(),
                })?;
            let mut llm: Llm = serde_json::from_value(config.clone()).map_err(invalid)?;
            llm.usage_id = format!("profile:{name}");
            Ok(llm)
        }
        None => {
            let mut config = Map::new();
            for (from, to) in [
                ("llm_model", "model"),
                ("llm_api_key", "api_key"),
                ("llm_base_url", "base_url"),
            ] {
                if let Some(value) = truthy(settings, from) {
                    config.insert(to.to_owned(), Value::String(value.to_owned()));
                }
            }
            serde_json::from_value(Value::Object(config)).map_err(invalid)
        }
    }
}

/// §6.7's mapping of the user's `mcp_config` to an MCP config object.
fn mcp_from_settings(settings: &Value) -> Value {
    let mut servers = Map::new();
    let Some(config) = settings.get("mcp_config").filter(|c| c.is_object()) else {
        return Value::Object(servers);
    };
    let list = |field: &str| {
        config
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let remote = |server: &Value, transport: &str| -> Option<Map<String, Value>> {
        let url = match server {
            Value::String(url) => url.clone(),
            other => other.get("url")?.as_str()?.to_owned(),
        };
        let mut entry = Map::new();
        entry.insert("url".into(), Value::String(url));
        entry.insert("transport".into(), Value::String(transport.into()));
        if let Some(key) = truthy(server, "api_key") {
            entry.insert(
                "headers".into(),
                json!({ "Authorization": format!("Bearer {key}") }),
            );
        }
        Some(entry)
    };
    for (i, server) in list("sse_servers").iter().enumerate() {
        if let Some(entry) = remote(server, "sse") {
            servers.insert(format!("sse_{i}"), Value::Object(entry));
        }
    }
    for (i, server) in list("shttp_servers").iter().enumerate() {
        if let Some(mut entry) = remote(server, "streamable-http") {
            if let Some(timeout) = server.get("timeout").filter(|t| !t.is_null()) {
                entry.insert("timeout".into(), timeout.clone());
            }
            servers.insert(format!("shttp_{i}"), Value::Object(entry));
        }
    }
    for server in list("stdio_servers") {
        let Some(name) = truthy(&server, "name") else {
            continue;
        };
        let mut entry = Map::new();
        entry.insert(
            "command".into(),
            server.get("command").cloned().unwrap_or(Value::Null),
        );
        entry.insert(
            "args".into(),
            server
                .get("args")
                .filter(|a| !a.is_null())
                .cloned()
                .unwrap_or_else(|| json!([])),
        );
        if let Some(env) = server.get("env").filter(|e| !e.is_null()) {
            entry.insert("env".into(), env.clone());
        }
        servers.insert(name.to_owned(), Value::Object(entry));
    }
    Value::Object(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_api_call_without_a_useful_answer_is_transient() {
        let timeout = || oh_client::Error::Timeout {
            what: "GET /x".into(),
            after: Duration::from_secs(1),
        };
        let api = api_error("GET /x".into(), timeout());
        assert!(matches!(api, Error::Api { .. }));
        assert!(api.is_transient());
        let refused = Error::Unauthorized {
            call: "GET /x".into(),
            source: Box::new(timeout()),
        };
        assert!(!refused.is_transient());
        let bad_key = oh_client::ServiceClient::new("http://h")
            .unwrap()
            .with_header("bad name", &SecretString::new("k"))
            .unwrap_err();
        assert!(!api_error("GET /x".into(), bad_key).is_transient());
        for error in [
            Error::InvalidOption {
                reason: "r".into(),
                source: None,
            },
            Error::InvalidSandbox {
                sandbox_id: "s".into(),
                reason: "r".into(),
                source: None,
            },
            Error::Failed {
                sandbox_id: "s".into(),
                status: SandboxStatus::Error,
            },
            Error::NotReady {
                sandbox_id: "s".into(),
                last_state: "x".into(),
                waited: Duration::from_secs(1),
            },
            Error::NotRunning {
                sandbox_id: "s".into(),
                reason: "r".into(),
            },
            Error::Unsupported { operation: "pause" },
            Error::ProfileNotFound {
                profile: "p".into(),
            },
            Error::InvalidSettings {
                reason: "r".into(),
                source: None,
            },
        ] {
            assert!(!error.is_transient(), "{error:?}");
        }
    }

    #[test]
    fn delete_sends_the_id_in_path_and_query() {
        assert_eq!(
            delete_path("sb 1"),
            "/api/v1/sandboxes/sb%201?sandbox_id=sb+1"
        );
    }

    #[test]
    fn llm_settings_follow_the_reference() {
        let settings = json!({
            "llm_model": "anthropic/claude",
            "llm_api_key": "sk-1",
            "llm_base_url": "",
            "llm_profiles": {"profiles": {"fast": {"model": "openai/gpt-4o-mini", "api_key": "sk-2"}, "bad": 3}},
        });
        let llm = llm_from_settings(&settings, None).unwrap();
        assert_eq!(llm.model, "anthropic/claude");
        assert_eq!(llm.api_key.as_ref().map(SecretString::expose), Some("sk-1"));
        assert_eq!(llm.base_url, None);
        let fast = llm_from_settings(&settings, Some("fast")).unwrap();
        assert_eq!(fast.model, "openai/gpt-4o-mini");
        assert_eq!(fast.usage_id, "profile:fast");
        for missing in ["bad", "nope"] {
            assert!(matches!(
                llm_from_settings(&settings, Some(missing)),
                Err(Error::ProfileNotFound { profile }) if profile == missing
            ));
        }
    }

    #[test]
    fn mcp_settings_follow_the_reference() {
        let settings = json!({"mcp_config": {
            "sse_servers": [{"url": "https://a/sse", "api_key": "k1"}, "https://b/sse"],
            "shttp_servers": [{"url": "https://c/mcp", "api_key": null, "timeout": 30}],
            "stdio_servers": [{"name": "fetch", "command": "uvx", "args": ["mcp-fetch"], "env": {"A": "1"}},
                              {"name": "bare", "command": "x"}],
        }});
        assert_eq!(
            mcp_from_settings(&settings),
            json!({
                "sse_0": {"url": "https://a/sse", "transport": "sse", "headers": {"Authorization": "Bearer k1"}},
                "sse_1": {"url": "https://b/sse", "transport": "sse"},
                "shttp_0": {"url": "https://c/mcp", "transport": "streamable-http", "timeout": 30},
                "fetch": {"command": "uvx", "args": ["mcp-fetch"], "env": {"A": "1"}},
                "bare": {"command": "x", "args": []},
            })
        );
        assert_eq!(mcp_from_settings(&json!({"mcp_config": null})), json!({}));
    }
}
