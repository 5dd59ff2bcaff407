//! A self-hostable sandbox server: the runtime API that `APIRemoteWorkspace` (Python) and
//! `ApiRemoteWorkspace` (Rust) ask for sandboxes, over Docker or Docker Swarm.
//!
//! Each sandbox is an agent-server workload (a container, or a one-replica Swarm service)
//! with its own generated session key, run as user 10001, reachable at the `url` the API
//! returns. Sandboxes are recorded on disk before the engine is asked for anything, so after
//! a restart (even `kill -9`) the server serves every sandbox it had, reconciles with the
//! engine, and removes what it does not know. Idle sandboxes are paused; a warm pool of
//! dormant agent servers (`warm`) makes a start a single `POST /api/init`.
//!
//! ```no_run
//! # async fn run() -> Result<(), oh_sandbox_server::ServerError> {
//! use oh_sandbox_server::{Config, SandboxServer};
//!
//! let config = Config::new("/var/lib/openhands-sandboxes", "a-long-random-key");
//! let server = SandboxServer::bind(config).await?;
//! println!("runtime API on http://{}", server.local_addr());
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

mod api;
#[cfg(test)]
mod api_tests;
mod backend;
mod cloud;
#[cfg(test)]
mod cloud_tests;
mod config;
mod error;
mod pool;
mod sandboxes;
mod store;
mod users;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use api::API_KEY_HEADER;
pub use backend::{POOL_LABEL, PUBLIC_ADDR_LABEL, RUNTIME_LABEL, SERVER_LABEL, SESSION_LABEL};
pub use config::{BackendKind, Config};
pub use error::{BackendError, ServerError};
pub use users::UsersHandle;

use crate::backend::Backend;
use crate::sandboxes::Sandboxes;

/// A bound sandbox server; [`serve`](Self::serve) runs it.
#[derive(Debug)]
pub struct SandboxServer {
    listener: tokio::net::TcpListener,
    sandboxes: Arc<Sandboxes>,
    keys: oh_server::ApiKeys,
    users: Option<UsersHandle>,
}

impl SandboxServer {
    /// Checks the configuration, connects to the engine, loads the records and reconciles
    /// them with what the engine runs, then binds the listener.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        if config.api_keys.is_empty()
            || config.api_keys.iter().any(|k| k.expose().trim().is_empty())
        {
            return Err(ServerError::Config(
                "at least one non-empty API key is required (--api-key or OH_RUNTIME_API_KEYS_0)"
                    .into(),
            ));
        }
        if config.max_sandboxes == 0 {
            return Err(ServerError::Config(
                "max_sandboxes must be at least 1".into(),
            ));
        }
        let users = config
            .users_file
            .as_deref()
            .map(UsersHandle::open)
            .transpose()?;
        let store = store::Store::open(&config.state_dir)?;
        let instance = store::instance_id(&config.state_dir)?;
        let records = store.load()?;
        let backend: Arc<dyn Backend> = match config.backend {
            BackendKind::Docker => {
                Arc::new(backend::docker::DockerBackend::connect(&config, &instance).await?)
            }
            BackendKind::Swarm => {
                Arc::new(backend::swarm::SwarmBackend::connect(&config, &instance).await?)
            }
        };
        let keys = oh_server::ApiKeys::new(&config.api_keys);
        let config = Arc::new(config);
        let sandboxes = Arc::new(Sandboxes::new(Arc::clone(&config), backend, store, records));
        tracing::info!(
            backend = sandboxes.backend.kind(),
            instance,
            "reconciling the sandboxes on record with the engine"
        );
        sandboxes.recover().await?;
        let listener = tokio::net::TcpListener::bind((config.host, config.port))
            .await
            .map_err(ServerError::Listen)?;
        Ok(Self {
            listener,
            sandboxes,
            keys,
            users,
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The users of the Cloud API, when it is on: [`UsersHandle::reload`] re-reads the file.
    pub fn users(&self) -> Option<UsersHandle> {
        self.users.clone()
    }

    /// Serves until `shutdown` completes. Sandboxes keep running (a restarted server adopts
    /// them); warm-pool members are removed.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let sandboxes = Arc::clone(&self.sandboxes);
        let checks = tokio::spawn(check_loop(Arc::clone(&sandboxes)));
        let pool = tokio::spawn(pool::Pool::run(Arc::clone(&sandboxes)));
        let mut router = api::router(api::AppState {
            sandboxes: Arc::clone(&sandboxes),
            keys: self.keys,
        });
        if let Some(users) = self.users {
            router = router.merge(cloud::router(cloud::CloudState {
                sandboxes: Arc::clone(&sandboxes),
                users,
            }));
        }
        // The agent server's accept loop: a connection cap, header-read, idle and body-rate
        // timeouts, and a bounded drain, with its defaults.
        oh_server::serve_router(
            self.listener,
            router,
            &oh_server::Config::default(),
            shutdown,
        )
        .await;
        checks.abort();
        // The pool's boot in flight finishes (or fails) first, so its container is known.
        sandboxes.pool.close();
        if tokio::time::timeout(std::time::Duration::from_secs(30), pool)
            .await
            .is_err()
        {
            tracing::warn!("the warm pool did not stop within 30 s");
        }
        sandboxes.pool.drain(sandboxes.backend.as_ref()).await;
        Ok(())
    }
}

async fn check_loop(sandboxes: Arc<Sandboxes>) {
    let mut tick = tokio::time::interval(sandboxes.config.check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        sandboxes.check().await;
    }
}
