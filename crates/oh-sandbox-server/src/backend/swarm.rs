//! Sandboxes as one-replica Docker Swarm services (placeholder, filled in next).

use futures::future::{BoxFuture, FutureExt};

use super::{Backend, Managed, Observed, Spec};
use crate::config::Config;
use crate::error::BackendError;
use crate::store::PauseKind;

/// The Swarm backend.
#[derive(Debug)]
pub(crate) struct SwarmBackend;

impl SwarmBackend {
    pub(crate) async fn connect(_config: &Config, _instance: &str) -> Result<Self, BackendError> {
        Err(BackendError::Other(
            "the swarm backend is not built yet".into(),
        ))
    }
}

impl Backend for SwarmBackend {
    fn kind(&self) -> &'static str {
        "swarm"
    }
    fn has_runtime<'a>(&'a self, _: &'a str) -> BoxFuture<'a, bool> {
        async { false }.boxed()
    }
    fn image_exists<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        async { Ok(false) }.boxed()
    }
    fn create<'a>(&'a self, _: &'a Spec) -> BoxFuture<'a, Result<String, BackendError>> {
        async { Err(BackendError::Other("unsupported".into())) }.boxed()
    }
    fn observe<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Observed, BackendError>> {
        async { Ok(Observed::Missing) }.boxed()
    }
    fn pause<'a>(&'a self, _: &'a str, _: PauseKind) -> BoxFuture<'a, Result<(), BackendError>> {
        async { Ok(()) }.boxed()
    }
    fn resume<'a>(&'a self, _: &'a str, _: PauseKind) -> BoxFuture<'a, Result<(), BackendError>> {
        async { Ok(()) }.boxed()
    }
    fn remove<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        async { Ok(()) }.boxed()
    }
    fn logs<'a>(&'a self, _: &'a str) -> BoxFuture<'a, String> {
        async { String::new() }.boxed()
    }
    fn managed(&self) -> BoxFuture<'_, Result<Vec<Managed>, BackendError>> {
        async { Ok(Vec::new()) }.boxed()
    }
}
