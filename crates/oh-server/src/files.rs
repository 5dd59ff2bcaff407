//! File upload and download (spec §8): `/api/file/*`.

use axum::Router;

use crate::app::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
