//! Deferred init (`OH_DEFERRED_INIT=true`, the reference's `init_router`): a server that
//! boots *dormant*, for warm pools whose containers start before their user is known, and
//! becomes a normal server when `POST /api/init` delivers the per-user configuration.
//!
//! A dormant server has bound its listener and nothing else: no storage is touched, no
//! conversation is indexed, no background loop runs. It answers
//!
//! - `/health`, `/alive`, `/ready` (200: it is ready for its init), `/server_info`, `/`;
//! - `GET /api/init` (no authentication): `{"state": "dormant" | "initializing" | "ready",
//!   "error": null | "<why the last attempt failed>"}`;
//! - `POST /api/init` (header `X-Init-API-Key` = the dormant server's secret key, compared
//!   in constant time; no secret key: open, as in the reference): builds the application
//!   from the boot configuration overridden by the body, then publishes its router to the
//!   accept loop ([`crate::listener::Routes`]), so the next request on any connection is
//!   served by it. 200 with the status `ready`; 401 wrong key; 415/422 bad body; 400 when
//!   not dormant any more; 500 when building failed (the server is dormant again and the
//!   call can be retried; `GET /api/init` then shows the error);
//! - every other `/api` route and both sockets: 503 with a JSON body (sockets are refused
//!   before the upgrade; the reference closes them with 1013 before accepting, which its
//!   server turns into a refused handshake too); anything else 404.
//!
//! After the init, `GET /api/init` says `ready` and `POST /api/init` answers 400 (with the
//! new secret key; 401 without it). A server started without deferred init answers 404 on
//! both (`POST` checks its secret key first, as the reference does).
//!
//! The init body's `env` is not written to this process's environment (`set_var` is
//! unsound once threads run): it becomes [`Config::command_env`], which every command the
//! server starts gets on top of its own environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oh_protocol::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::app::{Activity, AppState, Running};
use crate::auth::{API_KEY_HEADER, ApiKeys};
use crate::config::Config;
use crate::cors::CorsPolicy;
use crate::error::{ApiError, ok};
use crate::extract::Json;

/// Header carrying the init key (the dormant server's secret key).
pub(crate) const INIT_KEY_HEADER: &str = "x-init-api-key";

/// The body of `POST /api/init`. Every field is optional except `session_api_keys`; a field
/// given overrides the boot configuration's. Unknown fields are refused (422).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitRequest {
    /// Required here (the reference lets it be omitted, which would leave the server
    /// without authentication): at least one key, none empty.
    #[serde(default)]
    session_api_keys: Option<Vec<SecretString>>,
    #[serde(default)]
    secret_key: Option<SecretString>,
    #[serde(default)]
    previous_secret_keys: Option<Vec<SecretString>>,
    #[serde(default)]
    conversations_path: Option<PathBuf>,
    #[serde(default)]
    bash_events_dir: Option<PathBuf>,
    /// No git worktrees in this server: accepted, ignored.
    #[serde(default)]
    conversation_worktree_root: Option<PathBuf>,
    /// Webhooks are not served: accepted, ignored with a warning.
    #[serde(default)]
    webhooks: Option<Vec<Map<String, Value>>>,
    /// No docs or root path to derive from it: accepted, ignored.
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    allow_cors_origins: Option<Vec<String>>,
    #[serde(default)]
    max_concurrent_runs: Option<i64>,
    #[serde(default)]
    env: Option<BTreeMap<String, String>>,
    /// This server sends no product analytics: accepted, ignored.
    #[serde(default)]
    telemetry: Option<Map<String, Value>>,
}

/// `GET /api/init`'s answer.
#[derive(Debug, Clone, Serialize)]
struct InitStatus {
    state: &'static str,
    error: Option<String>,
}

/// Where a dormant server is.
#[derive(Debug)]
enum Phase {
    Dormant,
    Initializing,
    Ready(Running),
    /// The server is shutting down: an init still running is not installed.
    Closed,
}

impl Phase {
    fn word(&self) -> &'static str {
        match self {
            Phase::Dormant | Phase::Closed => "dormant",
            Phase::Initializing => "initializing",
            Phase::Ready(_) => "ready",
        }
    }
}

#[derive(Debug)]
struct Status {
    phase: Phase,
    /// Why the last attempt failed.
    error: Option<String>,
}

/// A dormant server: its boot configuration, its init key, and the application once built.
pub(crate) struct Deferred {
    boot: Config,
    /// The boot secret key as the only accepted init key; `None` with no secret key.
    init_key: Option<ApiKeys>,
    /// The boot session keys (normally none), checked before the dormant 503.
    boot_keys: ApiKeys,
    cors: CorsPolicy,
    activity: Arc<Activity>,
    status: Mutex<Status>,
    /// The initialised application's router, published to the accept loop.
    app: watch::Sender<Option<Router>>,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred")
            .field("boot", &self.boot)
            .field("status", &self.lock().phase.word())
            .finish_non_exhaustive()
    }
}

impl Deferred {
    /// A dormant server booted with `boot`.
    pub(crate) fn new(boot: Config, activity: Arc<Activity>) -> Arc<Self> {
        let init_key = match &boot.secret_key {
            Some(key) => Some(ApiKeys::new(std::slice::from_ref(key))),
            None if boot.secret_key_was_blank => {
                tracing::warn!(
                    "deferred init: the configured secret key is blank, so POST /api/init \
                     refuses every call; set OH_SECRET_KEY"
                );
                // No keys: accepts nothing (the reference fails closed here).
                Some(ApiKeys::default())
            }
            None => {
                tracing::warn!(
                    "deferred init without a secret key (OH_SECRET_KEY): POST /api/init is \
                     open to whoever reaches this server first"
                );
                None
            }
        };
        tracing::info!("dormant (deferred init): waiting for POST /api/init");
        Arc::new(Self {
            init_key,
            boot_keys: ApiKeys::new(&boot.session_api_keys),
            cors: CorsPolicy::new(
                &boot.allow_cors_origins,
                boot.allow_cors_origin_regex.as_deref(),
            ),
            activity,
            status: Mutex::new(Status {
                phase: Phase::Dormant,
                error: None,
            }),
            app: watch::Sender::new(None),
            boot,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The dormant route table.
    pub(crate) fn router(this: &Arc<Self>) -> Router {
        Router::new()
            .route("/health", get(crate::server_details::health))
            .route("/alive", get(crate::server_details::health))
            .route("/ready", get(dormant_ready))
            .route("/server_info", get(dormant_info))
            .route("/", get(dormant_info))
            .route("/api/init", get(dormant_status).post(initialize))
            .fallback(dormant_fallback)
            .method_not_allowed_fallback(crate::app::method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(this),
                dormant_cors,
            ))
            .with_state(Arc::clone(this))
    }

    /// What the accept loop serves: the dormant table until the init publishes the
    /// application's.
    pub(crate) fn routes(this: &Arc<Self>) -> crate::listener::Routes {
        crate::listener::Routes::switchable(Self::router(this), this.app.subscribe())
    }

    /// At shutdown: no init is installed from now on; the application, if one was built.
    pub(crate) fn close(&self) -> Option<Running> {
        match std::mem::replace(&mut self.lock().phase, Phase::Closed) {
            Phase::Ready(running) => Some(running),
            Phase::Dormant | Phase::Initializing | Phase::Closed => None,
        }
    }

    fn snapshot(&self) -> InitStatus {
        let status = self.lock();
        InitStatus {
            state: status.phase.word(),
            error: status.error.clone(),
        }
    }

    /// Builds the application for `config` (on the blocking pool) and installs it.
    async fn build(self: Arc<Self>, config: Config) -> Response {
        let started = Instant::now();
        let activity = Arc::clone(&self.activity);
        let built =
            tokio::task::spawn_blocking(move || crate::app::build_state(config, activity, true))
                .await
                .unwrap_or_else(|err| {
                    Err(crate::ServerError::Storage(format!(
                        "building the server failed: {err}"
                    )))
                });
        let mut status = self.lock();
        let state = match built {
            Ok(state) => state,
            Err(err) => {
                let message = err.to_string();
                tracing::error!(error = %message, "deferred init failed; dormant again");
                if matches!(status.phase, Phase::Initializing) {
                    status.phase = Phase::Dormant;
                }
                status.error = Some(message.clone());
                return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message).into_response();
            }
        };
        if !matches!(status.phase, Phase::Initializing) {
            return shutting_down();
        }
        let router = crate::app::router(state.clone());
        status.phase = Phase::Ready(Running::start(state));
        status.error = None;
        self.app.send_replace(Some(router));
        drop(status);
        tracing::info!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "deferred init: ready"
        );
        ok(&InitStatus {
            state: "ready",
            error: None,
        })
    }
}

fn shutting_down() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the server is shutting down",
    )
    .into_response()
}

/// Whether `headers` carry an accepted init key (`None`: the route is open).
fn init_key_accepted(keys: Option<&ApiKeys>, headers: &HeaderMap) -> bool {
    let Some(keys) = keys else {
        return true;
    };
    headers
        .get(INIT_KEY_HEADER)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|key| keys.accepts(key))
}

async fn dormant_cors(State(this): State<Arc<Deferred>>, req: Request, next: Next) -> Response {
    crate::cors::guard(&this.cors, this.boot_keys.enabled(), req, next).await
}

async fn dormant_ready() -> Response {
    crate::server_details::ready_now()
}

async fn dormant_info(State(this): State<Arc<Deferred>>) -> Response {
    crate::server_details::info(&this.activity)
}

async fn dormant_status(State(this): State<Arc<Deferred>>) -> Response {
    ok(&this.snapshot())
}

/// Every other route of a dormant server: 503 under `/api` (after the boot session keys,
/// if any, as the reference's auth runs first) and on the sockets, else 404.
async fn dormant_fallback(State(this): State<Arc<Deferred>>, req: Request) -> Response {
    let path = req.uri().path();
    let api = path == "/api" || path.starts_with("/api/");
    if !api && !path.starts_with("/sockets/") {
        return crate::app::not_found(req).await;
    }
    if api && this.boot_keys.enabled() {
        let presented = req
            .headers()
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok());
        if !presented.is_some_and(|key| this.boot_keys.accepts(key)) {
            return ApiError::unauthorized().into_response();
        }
    }
    let state = this.lock().phase.word();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("server is in deferred-init state '{state}'; call POST /api/init first"),
    )
    .into_response()
}

/// `POST /api/init` on a dormant server.
async fn initialize(
    State(this): State<Arc<Deferred>>,
    headers: HeaderMap,
    body: Result<Json<InitRequest>, ApiError>,
) -> Response {
    if !init_key_accepted(this.init_key.as_ref(), &headers) {
        return ApiError::unauthorized().into_response();
    }
    let config = match body.and_then(|Json(request)| merge(&this.boot, request)) {
        Ok(config) => config,
        Err(err) => return err.into_response(),
    };
    {
        let mut status = this.lock();
        match status.phase {
            Phase::Dormant => {
                status.phase = Phase::Initializing;
                status.error = None;
            }
            Phase::Closed => return shutting_down(),
            Phase::Initializing | Phase::Ready(_) => {
                return ApiError::bad_request(format!(
                    "server already in state: {}",
                    status.phase.word()
                ))
                .into_response();
            }
        }
    }
    // On its own task: a client that goes away mid-init must not leave it half done.
    match tokio::spawn(Arc::clone(&this).build(config)).await {
        Ok(response) => response,
        Err(err) => {
            let mut status = this.lock();
            if matches!(status.phase, Phase::Initializing) {
                status.phase = Phase::Dormant;
            }
            status.error = Some(format!("the init task failed: {err}"));
            ApiError::internal(format!("the init task failed: {err}")).into_response()
        }
    }
}

/// The boot configuration overridden by the init body (422 for values it cannot take).
fn merge(boot: &Config, request: InitRequest) -> Result<Config, ApiError> {
    let mut config = boot.clone();
    config.deferred_init = false;

    let keys = request.session_api_keys.ok_or_else(|| {
        ApiError::validation(
            &["body", "session_api_keys"],
            "missing",
            "Field required",
            Value::Null,
        )
    })?;
    if keys.is_empty() {
        return Err(ApiError::validation(
            &["body", "session_api_keys"],
            "too_short",
            "List should have at least 1 item after validation, not 0",
            json!([]),
        ));
    }
    if keys.iter().any(|key| key.expose().is_empty()) {
        return Err(ApiError::unprocessable(
            "session_api_keys cannot contain empty keys",
        ));
    }
    // A blank secret key counts as unset; then, as at boot, the first session key is the
    // secret key unless the boot configuration had one.
    match request
        .secret_key
        .filter(|key| !key.expose().trim().is_empty())
    {
        Some(key) => config.secret_key = Some(key),
        None if boot.secret_key.is_none() => config.secret_key = keys.first().cloned(),
        None => {}
    }
    config.session_api_keys = keys;
    if let Some(previous) = request.previous_secret_keys {
        config.previous_secret_keys = previous
            .into_iter()
            .filter(|key| !key.expose().trim().is_empty())
            .collect();
    }
    if let Some(path) = request.conversations_path {
        config.conversations_path = path;
    }
    if let Some(path) = request.bash_events_dir {
        config.bash_events_dir = path;
    }
    if let Some(origins) = request.allow_cors_origins {
        config.allow_cors_origins = origins;
    }
    if let Some(runs) = request.max_concurrent_runs {
        config.max_concurrent_runs =
            usize::try_from(runs)
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    ApiError::validation(
                        &["body", "max_concurrent_runs"],
                        "greater_than_equal",
                        "Input should be greater than or equal to 1",
                        json!(runs),
                    )
                })?;
    }
    for (name, value) in request.env.into_iter().flatten() {
        if !oh_agent::secrets::is_env_name(&name) {
            return Err(ApiError::validation(
                &["body", "env", &name],
                "value_error",
                "Value error, an environment variable name is letters, digits and `_`, \
                 not starting with a digit",
                json!(name),
            ));
        }
        if value.contains('\0') {
            return Err(ApiError::validation(
                &["body", "env", &name],
                "value_error",
                "Value error, an environment variable value cannot contain a NUL character",
                Value::Null,
            ));
        }
        config.command_env.insert(name, value);
    }
    if request.conversation_worktree_root.is_some() {
        tracing::warn!(
            "deferred init: ignoring conversation_worktree_root (this server makes no git worktrees)"
        );
    }
    if request
        .webhooks
        .as_ref()
        .is_some_and(|hooks| !hooks.is_empty())
    {
        tracing::warn!("deferred init: ignoring webhooks (not supported by this server)");
    }
    if request.web_url.is_some() {
        tracing::warn!("deferred init: ignoring web_url (this server derives nothing from it)");
    }
    if request.telemetry.is_some() {
        tracing::warn!("deferred init: ignoring telemetry (this server sends no analytics)");
    }
    Ok(config)
}

/// `/api/init` in the application's route table (outside the session-key check).
pub(crate) fn app_routes() -> Router<AppState> {
    Router::new().route("/api/init", get(app_status).post(app_initialize))
}

fn not_deferred() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "server is not running with deferred_init=True; the /api/init endpoint is not available",
    )
    .into_response()
}

async fn app_status(State(state): State<AppState>) -> Response {
    if !state.from_init {
        return not_deferred();
    }
    ok(&InitStatus {
        state: "ready",
        error: None,
    })
}

/// `POST /api/init` once the application runs: the key is the current secret key.
async fn app_initialize(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let keys = state
        .config
        .secret_key
        .as_ref()
        .map(|key| ApiKeys::new(std::slice::from_ref(key)));
    if !init_key_accepted(keys.as_ref(), &headers) {
        return ApiError::unauthorized().into_response();
    }
    if !state.from_init {
        return not_deferred();
    }
    ApiError::bad_request("server already in state: ready").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> InitRequest {
        serde_json::from_value(body).expect("init request")
    }

    #[test]
    fn merge_overrides_the_boot_config() {
        let mut boot = Config::under(std::path::Path::new("/boot"));
        boot.deferred_init = true;
        boot.secret_key = Some("bootstrap".into());
        boot.command_env.insert("KEEP".into(), "1".into());
        let config = merge(
            &boot,
            request(json!({
                "session_api_keys": ["user-key"],
                "secret_key": "user-secret",
                "previous_secret_keys": ["old", ""],
                "conversations_path": "/user/conversations",
                "bash_events_dir": "/user/bash",
                "allow_cors_origins": ["https://app.example"],
                "max_concurrent_runs": 3,
                "env": {"GITHUB_TOKEN": "ghp", "KEEP": "2"},
                "webhooks": [{"base_url": "https://hooks.example"}],
                "telemetry": {"mode": "disabled"},
                "web_url": "https://x.example",
                "conversation_worktree_root": "/user/worktrees",
            })),
        )
        .expect("merged");
        assert!(!config.deferred_init);
        let keys: Vec<&str> = config.session_api_keys.iter().map(|k| k.expose()).collect();
        assert_eq!(keys, ["user-key"]);
        assert_eq!(
            config.secret_key.as_ref().map(|k| k.expose()),
            Some("user-secret")
        );
        let previous: Vec<&str> = config
            .previous_secret_keys
            .iter()
            .map(|k| k.expose())
            .collect();
        assert_eq!(previous, ["old"]);
        assert_eq!(
            config.conversations_path,
            PathBuf::from("/user/conversations")
        );
        assert_eq!(config.bash_events_dir, PathBuf::from("/user/bash"));
        assert_eq!(config.workspace_path, boot.workspace_path);
        assert_eq!(config.allow_cors_origins, ["https://app.example"]);
        assert_eq!(config.max_concurrent_runs, 3);
        assert_eq!(
            config.command_env.get("KEEP").map(String::as_str),
            Some("2")
        );
        assert_eq!(
            config.command_env.get("GITHUB_TOKEN").map(String::as_str),
            Some("ghp")
        );
    }

    #[test]
    fn secret_key_fallbacks() {
        let mut boot = Config::under(std::path::Path::new("/boot"));
        let keys = json!({"session_api_keys": ["k1", "k2"]});
        let merged = merge(&boot, request(keys.clone())).expect("merged");
        assert_eq!(merged.secret_key.as_ref().map(|k| k.expose()), Some("k1"));
        let blank = merge(
            &boot,
            request(json!({"session_api_keys": ["k1"], "secret_key": "  "})),
        )
        .expect("merged");
        assert_eq!(blank.secret_key.as_ref().map(|k| k.expose()), Some("k1"));
        boot.secret_key = Some("bootstrap".into());
        let kept = merge(&boot, request(keys)).expect("merged");
        assert_eq!(
            kept.secret_key.as_ref().map(|k| k.expose()),
            Some("bootstrap")
        );
    }

    #[test]
    fn bad_values_are_422() {
        let boot = Config::under(std::path::Path::new("/boot"));
        for body in [
            json!({}),
            json!({"session_api_keys": []}),
            json!({"session_api_keys": ["ok", ""]}),
            json!({"session_api_keys": ["ok"], "max_concurrent_runs": 0}),
            json!({"session_api_keys": ["ok"], "env": {"1BAD": "x"}}),
            json!({"session_api_keys": ["ok"], "env": {"A=B": "x"}}),
            json!({"session_api_keys": ["ok"], "env": {"NUL": "a\u{0}b"}}),
        ] {
            let err = merge(&boot, request(body.clone())).err();
            assert_eq!(
                err.map(|e| e.status()),
                Some(StatusCode::UNPROCESSABLE_ENTITY),
                "{body}"
            );
        }
        assert!(serde_json::from_value::<InitRequest>(json!({"unknown": 1})).is_err());
    }
}
