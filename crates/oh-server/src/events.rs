//! Conversation events over REST: `/api/conversations/{id}/events*`.

use axum::Router;

use crate::app::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
