//! Health probes and `/server_info` (spec §3.1). No authentication.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use oh_protocol::{HealthStatus, ServerInfo};

use crate::app::{Activity, AppState};
use crate::error::{json_response, ok};

/// Version of the reference protocol this server speaks.
pub const PROTOCOL_VERSION: &str = "1.57.0";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/alive", get(health))
        .route("/ready", get(ready))
        .route("/server_info", get(server_info))
        .route("/", get(server_info))
}

pub(crate) async fn health() -> Response {
    ok(&HealthStatus {
        status: "ok".into(),
        message: None,
    })
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        ready_now()
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &HealthStatus {
                status: "initializing".into(),
                message: Some("Server is still initializing".into()),
            },
        )
    }
}

/// `/ready` of a server that has finished starting (a dormant one too: it is ready for its
/// `POST /api/init`, as the reference says).
pub(crate) fn ready_now() -> Response {
    ok(&HealthStatus {
        status: "ready".into(),
        message: None,
    })
}

async fn server_info(State(state): State<AppState>) -> Response {
    info(&state.activity)
}

/// The `/server_info` answer.
pub(crate) fn info(activity: &Activity) -> Response {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| "unknown".into());
    ok(&ServerInfo {
        uptime: activity.uptime().as_secs() as f64,
        idle_time: activity.idle().as_secs() as f64,
        title: "OpenHands Agent Server".into(),
        version: PROTOCOL_VERSION.into(),
        sdk_version: PROTOCOL_VERSION.into(),
        tools_version: PROTOCOL_VERSION.into(),
        workspace_version: PROTOCOL_VERSION.into(),
        build_git_sha: env("OPENHANDS_BUILD_GIT_SHA"),
        build_git_ref: env("OPENHANDS_BUILD_GIT_REF"),
        python_version: format!("openhands-rs {} (Rust)", env!("CARGO_PKG_VERSION")),
        usable_tools: vec![
            "terminal".into(),
            "file_editor".into(),
            "task_tracker".into(),
        ],
        runtime_idle_timeout_seconds: None,
        conversation_runtime: Some("local".into()),
        available_conversation_runtimes: vec!["local".into()],
        // Only what this server really does: the runtime-scoped routes (and `…/runtime`),
        // and idempotent creates.
        capabilities: vec![
            "conversation_runtime_routes_v1".into(),
            "idempotent_conversation_create_v1".into(),
        ],
        app_backend_ingress_url: None,
        max_foreground_terminal_timeout_seconds: None,
        docs: None,
        redoc: None,
    })
}
