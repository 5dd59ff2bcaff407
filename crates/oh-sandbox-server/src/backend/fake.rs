//! An in-memory backend for the crate's unit tests: workloads are entries in a map, and a
//! running one's endpoint is a tiny HTTP server that answers `/health`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::{BoxFuture, FutureExt};

use super::{Backend, Endpoint, Managed, Observed, POOL_LABEL, RUNTIME_LABEL, Spec};
use crate::error::BackendError;
use crate::store::PauseKind;

/// What the fake engine holds.
#[derive(Debug, Default)]
pub(crate) struct Engine {
    pub(crate) workloads: HashMap<String, (Spec, Observed)>,
    pub(crate) next: u32,
    /// The next create fails with this.
    pub(crate) fail_create: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct FakeBackend {
    pub(crate) engine: Arc<Mutex<Engine>>,
    health: Endpoint,
}

impl FakeBackend {
    /// A fake engine whose running workloads answer at `health`.
    pub(crate) fn new(health: std::net::SocketAddr) -> Self {
        Self {
            engine: Arc::default(),
            health: Endpoint {
                host: health.ip().to_string(),
                port: health.port(),
            },
        }
    }

    pub(crate) fn engine(&self) -> std::sync::MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, handle: &str, observed: Observed) -> Result<(), BackendError> {
        match self.engine().workloads.get_mut(handle) {
            Some(entry) => {
                entry.1 = observed;
                Ok(())
            }
            None => Err(BackendError::Other(format!("no workload {handle}"))),
        }
    }
}

impl Backend for FakeBackend {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn has_runtime<'a>(&'a self, name: &'a str) -> BoxFuture<'a, bool> {
        async move { name == "runc" }.boxed()
    }

    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        async move { Ok(!image.starts_with("missing")) }.boxed()
    }

    fn create<'a>(&'a self, spec: &'a Spec) -> BoxFuture<'a, Result<String, BackendError>> {
        async move {
            if spec.image.starts_with("missing") {
                return Err(BackendError::ImageMissing {
                    image: spec.image.clone(),
                    detail: "fake".into(),
                });
            }
            let mut engine = self.engine();
            if let Some(error) = engine.fail_create.take() {
                return Err(BackendError::Unavailable(error));
            }
            engine.next += 1;
            let handle = format!("w{}", engine.next);
            let running = Observed::Running {
                endpoint: Some(self.health.clone()),
                restarts: 0,
            };
            engine
                .workloads
                .insert(handle.clone(), (spec.clone(), running));
            Ok(handle)
        }
        .boxed()
    }

    fn observe<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<Observed, BackendError>> {
        async move {
            Ok(self
                .engine()
                .workloads
                .get(handle)
                .map_or(Observed::Missing, |(_, o)| o.clone()))
        }
        .boxed()
    }

    fn pause<'a>(
        &'a self,
        handle: &'a str,
        kind: PauseKind,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            let paused = match kind {
                PauseKind::Freeze => Observed::Frozen,
                PauseKind::Stop => Observed::Exited {
                    code: Some(0),
                    restarts: 0,
                    reasons: Vec::new(),
                },
            };
            self.set(handle, paused)
        }
        .boxed()
    }

    fn resume<'a>(
        &'a self,
        handle: &'a str,
        _: PauseKind,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            self.set(
                handle,
                Observed::Running {
                    endpoint: Some(self.health.clone()),
                    restarts: 0,
                },
            )
        }
        .boxed()
    }

    fn remove<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            self.engine().workloads.remove(handle);
            Ok(())
        }
        .boxed()
    }

    fn logs<'a>(&'a self, _: &'a str) -> BoxFuture<'a, String> {
        async { "fake logs".to_owned() }.boxed()
    }

    fn managed(&self) -> BoxFuture<'_, Result<Vec<Managed>, BackendError>> {
        async move {
            Ok(self
                .engine()
                .workloads
                .iter()
                .map(|(handle, (spec, _))| Managed {
                    handle: handle.clone(),
                    runtime_id: spec.labels.get(RUNTIME_LABEL).cloned(),
                    pool: spec.labels.contains_key(POOL_LABEL),
                })
                .collect())
        }
        .boxed()
    }
}
