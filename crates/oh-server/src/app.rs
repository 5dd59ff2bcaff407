//! The application: shared state, the router, and the serve loop with graceful shutdown
//! (the accept loop and its connection limits are in `listener`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::net::TcpListener;

use crate::auth::ApiKeys;
use crate::config::Config;
use crate::cors::CorsPolicy;
use crate::error::ApiError;
use crate::service::Conversations;

/// Shared state of every handler.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) keys: ApiKeys,
    pub(crate) cors: CorsPolicy,
    pub(crate) activity: Arc<Activity>,
    pub(crate) conversations: Conversations,
    pub(crate) bash: crate::bash::BashService,
    /// Bash services of conversations (runtime-scoped routes).
    pub(crate) scoped_bash: crate::runtime::ScopedBash,
    /// The settings, custom secrets and LLM profiles (`/api/settings`, `/api/profiles`).
    pub(crate) settings: crate::settings_store::SettingsStore,
    /// Server-wide WebSocket counters (pending auth, bash subscribers).
    pub(crate) sockets: crate::sockets::SocketLimits,
    pub(crate) ready: AtomicBool,
    /// Flips to `true` when the server shuts down; sockets watch it to close.
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
    /// Whether this application was built by `POST /api/init` (the server started dormant):
    /// then `/api/init` reports `ready` instead of 404.
    pub(crate) from_init: bool,
}

/// Start time and last activity, for `/server_info` (`uptime`, `idle_time`).
#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    /// Milliseconds after `started` of the last activity.
    last: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Records activity now (a conversation event, a command, a file transfer, a git call).
    pub(crate) fn touch(&self) {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    pub(crate) fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub(crate) fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A directory could not be prepared, or stored conversations could not be listed.
    #[error("{0}")]
    Storage(String),
    /// Serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound agent server, ready to [`serve`](Server::serve).
///
/// With [`Config::deferred_init`] it starts dormant and builds the application only when
/// `POST /api/init` delivers the configuration (see the `init` module).
///
/// ```no_run
/// # async fn demo() -> Result<(), oh_server::ServerError> {
/// let config = oh_server::Config::under(std::path::Path::new("/tmp/oh"));
/// let server = oh_server::Server::bind(config).await?;
/// println!("listening on http://{}", server.local_addr());
/// server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    limits: crate::listener::Limits,
    mode: Mode,
}

/// What a bound server serves.
#[derive(Debug)]
enum Mode {
    /// The application, built at bind.
    Ready(AppState),
    /// A dormant server waiting for `POST /api/init`.
    Deferred(Arc<crate::init::Deferred>),
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Builds the application for `config`: prepares storage and indexes stored conversations
/// and bash events (blocking file I/O). `activity` carries over from a dormant server.
pub(crate) fn build_state(
    config: Config,
    activity: Arc<Activity>,
    from_init: bool,
) -> Result<AppState, ServerError> {
    let conversations = Conversations::open(&config, Arc::clone(&activity)).map_err(|err| {
        ServerError::Storage(format!(
            "conversations_path {}: {err}",
            config.conversations_path.display()
        ))
    })?;
    let bash = crate::bash::BashService::new(
        &config.bash_events_dir,
        config
            .command_env
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
    )
    .map_err(|err| {
        ServerError::Storage(format!(
            "bash_events_dir {}: {err}",
            config.bash_events_dir.display()
        ))
    })?;
    crate::upload_journal::recover(&config.upload_journal_dir);
    let settings = crate::settings_store::SettingsStore::for_config(&config);
    let state = AppState(Arc::new(Shared {
        keys: ApiKeys::new(&config.session_api_keys),
        cors: CorsPolicy::new(
            &config.allow_cors_origins,
            config.allow_cors_origin_regex.as_deref(),
        ),
        activity,
        conversations,
        bash,
        scoped_bash: crate::runtime::ScopedBash::default(),
        settings,
        sockets: crate::sockets::SocketLimits::default(),
        ready: AtomicBool::new(false),
        shutdown: tokio::sync::watch::Sender::new(false),
        from_init,
        config,
    }));
    state.ready.store(true, Ordering::Release);
    Ok(state)
}

/// An application serving: its background loops (idle eviction, bash-event retention) run
/// until [`Running::stop`] or until it is dropped.
#[derive(Debug)]
pub(crate) struct Running {
    state: AppState,
    evictor: tokio::task::JoinHandle<()>,
    /// Stops when dropped.
    _retention: Option<crate::bash::RetentionTask>,
}

impl Running {
    /// Starts the background loops of `state`.
    pub(crate) fn start(state: AppState) -> Self {
        let evictor = tokio::spawn(evict_idle(state.clone()));
        let retention = state
            .bash
            .spawn_retention(state.config.bash_events_retention_seconds);
        Self {
            state,
            evictor,
            _retention: retention,
        }
    }

    /// Closes the event sockets, stops the loops, and pauses and saves running
    /// conversations, until `deadline`. Returns whether that finished in time.
    async fn stop(self, deadline: tokio::time::Instant) -> bool {
        self.state.shutdown.send_replace(true);
        self.evictor.abort();
        tokio::time::timeout_at(deadline, self.state.conversations.shutdown())
            .await
            .is_ok()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.evictor.abort();
    }
}

impl Server {
    /// Prepares storage, indexes stored conversations (without loading them) and binds the
    /// listener. With [`Config::deferred_init`] only the listener is bound: the server is
    /// dormant until `POST /api/init`.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let addr = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let limits = crate::listener::Limits::new(&config);
        let activity = Arc::new(Activity::new());
        let mode = if config.deferred_init {
            Mode::Deferred(crate::init::Deferred::new(config, activity))
        } else {
            Mode::Ready(build_state(config, activity, false)?)
        };
        let addr = listener.local_addr().unwrap_or(addr);
        Ok(Self {
            listener,
            addr,
            limits,
            mode,
        })
    }

    /// This server's route table, to drive the handlers in-process without a TCP round trip
    /// (the fuzz tests call it through `tower::ServiceExt::oneshot`). A dormant server's is
    /// its dormant table. Not a stable API.
    #[doc(hidden)]
    pub fn router(&self) -> axum::Router {
        match &self.mode {
            Mode::Ready(state) => router(state.clone()),
            Mode::Deferred(deferred) => crate::init::Deferred::router(deferred),
        }
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then stops accepting, closes event sockets, lets
    /// requests in flight finish and pauses running conversations (their state is on disk),
    /// all within [`Config::shutdown_drain_seconds`]; connections still open then are
    /// aborted. Connections are limited as [`Config`] says (count, header-read, idle and
    /// body timeouts). A dormant server switches to the application `POST /api/init` builds
    /// without dropping a connection; it shuts down the same way in either state.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let drain = self.limits.drain;
        let (routes, running, deferred) = match self.mode {
            Mode::Ready(state) => (
                crate::listener::Routes::fixed(router(state.clone())),
                Some(Running::start(state)),
                None,
            ),
            Mode::Deferred(deferred) => (
                crate::init::Deferred::routes(&deferred),
                None,
                Some(deferred),
            ),
        };
        let mut connections = crate::listener::Connections::new(self.listener, routes, self.limits);
        connections.accept_until(shutdown).await;
        tracing::info!("shutting down (drain within {drain:?})");
        let deadline = tokio::time::Instant::now() + drain;
        // A dormant server: the application, if `POST /api/init` built one; an init still
        // running is not installed any more.
        let running = match &deferred {
            Some(deferred) => deferred.close(),
            None => running,
        };
        let stopped = async move {
            match running {
                Some(running) => running.stop(deadline).await,
                None => true,
            }
        };
        let (aborted, paused) = tokio::join!(connections.drain(deadline), stopped);
        if aborted > 0 {
            tracing::warn!("aborted {aborted} connection(s) still open after the drain");
        }
        if !paused {
            tracing::warn!("pausing and saving conversations did not finish within the drain");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

impl Server {
    /// Serves on a new task of the current tokio runtime until the returned handle is
    /// stopped or dropped: the in-process server of the facade's `LocalServer` and of the
    /// tests.
    pub fn spawn(self) -> Spawned {
        let addr = self.addr;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(async {
            let _ = stopped.await;
        }));
        Spawned {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

/// A server serving on its own task ([`Server::spawn`]). Dropping it asks the server to stop
/// (it still drains and saves in the background); [`stop`](Spawned::stop) also waits.
#[derive(Debug)]
pub struct Spawned {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServerError>>>,
}

impl Spawned {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Asks the server to stop and waits until it has (connections drained, conversations
    /// paused and saved).
    pub async fn stop(mut self) -> Result<(), ServerError> {
        match self.request_stop() {
            Some(task) => task
                .await
                .unwrap_or_else(|join| Err(ServerError::Io(std::io::Error::other(join)))),
            None => Ok(()),
        }
    }

    /// Asks the server to stop without waiting; the handle (given once) completes when it
    /// has stopped.
    pub fn request_stop(&mut self) -> Option<tokio::task::JoinHandle<Result<(), ServerError>>> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Drops idle live conversations from memory now and then.
async fn evict_idle(state: AppState) {
    let Some(ttl) = state.conversations.idle_ttl() else {
        return;
    };
    let period = (ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(period).await;
        state.conversations.evict_idle().await;
    }
}

/// The whole route table.
pub(crate) fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(crate::conversations::router())
        .merge(crate::events::router())
        .merge(crate::bash::router())
        .merge(crate::files::router())
        .merge(crate::git::router())
        .merge(crate::runtime::router(&state))
        .merge(crate::settings::router())
        .merge(crate::agent_profiles::router())
        .merge(crate::skills::router())
        .merge(crate::extended::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ));
    Router::new()
        .merge(crate::server_details::router())
        .merge(crate::sockets::router())
        .merge(crate::init::app_routes())
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cors::cors,
        ))
        .with_state(state)
}

/// Unknown routes: 404, except that `/x/` redirects (307) to `/x` and `/api/tools` to
/// `/api/tools/`, as FastAPI does between the two spellings of a route.
pub(crate) async fn not_found(req: axum::extract::Request) -> axum::response::Response {
    match redirect_target(req.uri().path(), req.uri().query()) {
        Some(target) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, target)],
        )
            .into_response(),
        None => ApiError::not_found().into_response(),
    }
}

/// The `Location` of the trailing-slash redirect, if `path` gets one: a path-only reference
/// (RFC 9110 §10.2.2) keeping the query, never built from the client's `Host`, and never
/// starting with `//` or `/\` (which browsers would read as another host).
fn redirect_target(path: &str, query: Option<&str>) -> Option<String> {
    let target = if path.len() > 1 && path.ends_with('/') {
        format!(
            "/{}",
            path.trim_end_matches('/').trim_start_matches(['/', '\\'])
        )
    } else if path == "/api/tools" {
        "/api/tools/".to_owned()
    } else {
        return None;
    };
    Some(match query {
        Some(query) => format!("{target}?{query}"),
        None => target,
    })
}

pub(crate) async fn method_not_allowed() -> axum::response::Response {
    ApiError::reason(StatusCode::METHOD_NOT_ALLOWED).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_are_path_only() {
        let target = |path, query| redirect_target(path, query);
        assert_eq!(
            target("/api/conversations/", Some("a=1&b=2")).as_deref(),
            Some("/api/conversations?a=1&b=2")
        );
        assert_eq!(target("/api/x//", None).as_deref(), Some("/api/x"));
        assert_eq!(target("/api/tools", None).as_deref(), Some("/api/tools/"));
        assert_eq!(
            target("//evil.example/", None).as_deref(),
            Some("/evil.example")
        );
        assert_eq!(
            target("/\\evil.example/", None).as_deref(),
            Some("/evil.example")
        );
        assert_eq!(target("///", None).as_deref(), Some("/"));
        assert_eq!(target("/api/conversations", None), None);
        assert_eq!(target("/", None), None);
    }
}
