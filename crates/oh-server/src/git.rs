//! Git changes and diffs (spec §3.18): `/api/git/*`.

use axum::Router;

use crate::app::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
