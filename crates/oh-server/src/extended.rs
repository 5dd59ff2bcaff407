//! EXTENDED routes of the reference this server does not implement: 501 with a JSON body.

use axum::Router;

use crate::app::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
