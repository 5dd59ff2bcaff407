//! EXTENDED routes of the reference this server does not implement (yet): each answers
//! 501 with a JSON body naming the route, after authentication like every `/api` route.
//! The README lists them.

use axum::Router;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use crate::app::AppState;
use crate::error::ApiError;

/// `(path, methods)` of every route of the reference 1.57.0 OpenAPI document that answers 501.
pub const NOT_IMPLEMENTED: &[(&str, &[&str])] = &[
    ("/api/acp/models", &["POST"]),
    ("/api/agent-profiles/{name}/materialize", &["POST"]),
    ("/api/auth/workspace-session", &["POST", "DELETE"]),
    ("/api/canvas-extensions/install", &["POST"]),
    ("/api/canvas-extensions/installed", &["GET"]),
    (
        "/api/canvas-extensions/installed/{extension_name}",
        &["GET", "PATCH", "DELETE"],
    ),
    (
        "/api/canvas-extensions/installed/{extension_name}/backend",
        &["GET"],
    ),
    (
        "/api/canvas-extensions/installed/{extension_name}/backend/data",
        &["DELETE"],
    ),
    (
        "/api/canvas-extensions/installed/{extension_name}/backend/logs",
        &["GET"],
    ),
    (
        "/api/canvas-extensions/installed/{extension_name}/backend/prepare",
        &["POST"],
    ),
    (
        "/api/canvas-extensions/installed/{extension_name}/backend/start",
        &["POST"],
    ),
    (
        "/api/canvas-extensions/installed/{extension_name}/backend/stop",
        &["POST"],
    ),
    (
        "/api/canvas-extensions/installed/{extension_name}/bundle",
        &["GET"],
    ),
    (
        "/api/canvas-extensions/installed/{extension_name}/icon",
        &["GET"],
    ),
    ("/api/conversations/{conversation_id}/children", &["POST"]),
    ("/api/conversations/{conversation_id}/goal", &["POST"]),
    (
        "/api/conversations/{conversation_id}/goal/resume",
        &["POST"],
    ),
    ("/api/conversations/{conversation_id}/goal/stop", &["POST"]),
    (
        "/api/conversations/{conversation_id}/switch_acp_model",
        &["POST"],
    ),
    ("/api/conversations/{conversation_id}/switch_llm", &["POST"]),
    (
        "/api/conversations/{conversation_id}/switch_profile",
        &["POST"],
    ),
    ("/api/conversations/{conversation_id}/workspace", &["GET"]),
    (
        "/api/conversations/{conversation_id}/workspace/{file_path}",
        &["GET"],
    ),
    ("/api/file/archive", &["GET"]),
    ("/api/file/download-trajectory/{conversation_id}", &["GET"]),
    ("/api/file/home", &["GET"]),
    ("/api/file/search_subdirs", &["GET"]),
    ("/api/git/repositories/search", &["GET"]),
    ("/api/hooks", &["POST"]),
    ("/api/llm/models", &["GET"]),
    ("/api/llm/models/verified", &["GET"]),
    ("/api/llm/provider-connections", &["GET", "POST"]),
    (
        "/api/llm/provider-connections/{connection_id}",
        &["PATCH", "DELETE"],
    ),
    ("/api/llm/providers", &["GET"]),
    ("/api/llm/subscription/openai/device/poll", &["POST"]),
    ("/api/llm/subscription/openai/device/start", &["POST"]),
    ("/api/llm/subscription/openai/logout", &["POST"]),
    ("/api/llm/subscription/openai/models", &["GET"]),
    ("/api/llm/subscription/openai/status", &["GET"]),
    ("/api/mcp/oauth/callback/{job_id}", &["POST"]),
    ("/api/mcp/oauth/start", &["POST"]),
    ("/api/mcp/oauth/status/{job_id}", &["GET"]),
    ("/api/mcp/test", &["POST"]),
    ("/api/meta-profiles", &["GET"]),
    ("/api/meta-profiles/{name}", &["GET", "POST", "DELETE"]),
    ("/api/meta-profiles/{name}/activate", &["POST"]),
    ("/api/plugins", &["POST"]),
    ("/api/plugins/fetch", &["POST"]),
    ("/api/plugins/install", &["POST"]),
    ("/api/plugins/installed", &["GET"]),
    (
        "/api/plugins/installed/{plugin_name}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/api/plugins/installed/{plugin_name}/refresh", &["POST"]),
    ("/api/plugins/marketplace", &["GET"]),
    ("/api/profiles/{name}/validate", &["POST"]),
    ("/api/settings/agent-schema", &["GET"]),
    ("/api/settings/conversation-schema", &["GET"]),
    ("/api/skills/catalog", &["GET"]),
    ("/api/skills/install", &["POST"]),
    ("/api/skills/installed", &["GET"]),
    (
        "/api/skills/installed/{skill_name}",
        &["GET", "PATCH", "DELETE"],
    ),
    ("/api/skills/installed/{skill_name}/refresh", &["POST"]),
    ("/api/skills/marketplace", &["GET"]),
    ("/api/skills/sync", &["POST"]),
    ("/api/sub-agents", &["POST"]),
    ("/api/tools/catalog", &["GET"]),
    ("/api/vscode/status", &["GET"]),
    ("/api/vscode/url", &["GET"]),
    ("/api/workspaces", &["GET", "POST", "DELETE"]),
    ("/api/workspaces/parents", &["POST", "DELETE"]),
    (
        "/app-backends/{extension_name}/session",
        &["POST", "DELETE"],
    ),
    ("/v1/chat/completions", &["POST"]),
    ("/v1/models", &["GET"]),
    ("/v1/responses", &["POST"]),
];

fn filter(method: &str) -> MethodFilter {
    match method {
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        "DELETE" => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

async fn not_implemented(method: Method, uri: axum::http::Uri) -> Response {
    ApiError::not_implemented(&format!("{method} {}", uri.path())).into_response()
}

pub(crate) fn router() -> Router<AppState> {
    let mut router = Router::new().route("/api/tools/", axum::routing::get(tools));
    for (path, methods) in NOT_IMPLEMENTED {
        let mut route = on(filter(methods[0]), not_implemented);
        for method in &methods[1..] {
            route = route.on(filter(method), not_implemented);
        }
        router = router.route(path, route);
    }
    router
}

/// `GET /api/tools/`: names of the tools this server can run.
async fn tools() -> Response {
    crate::error::ok(&oh_agent::tools::available())
}
