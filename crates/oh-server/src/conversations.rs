//! Conversations: the catalogue and `/api/conversations/*`.

use axum::Router;

use crate::app::AppState;
use crate::config::Config;

/// Every conversation of this server, live or only on disk.
#[derive(Debug)]
pub(crate) struct Conversations {}

impl Conversations {
    pub(crate) fn open(_config: &Config) -> std::io::Result<Self> {
        Ok(Self {})
    }

    pub(crate) fn attach(&self, _state: &AppState) {}

    pub(crate) async fn shutdown(&self) {}
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
