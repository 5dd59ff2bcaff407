//! The WebSocket event stream: `/sockets/events/{conversation_id}`.

use axum::Router;

use crate::app::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
