//! The runtime API routes (`workspaces.md` §5.3, `sandbox-server.md` §1.1).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use oh_protocol::runtime::{
    ImageExists, RegistryPrefix, Runtime, RuntimeIdRequest, RuntimeList, StartRequest,
};
use oh_server::ApiKeys;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, json_response};
use crate::sandboxes::Sandboxes;
use crate::store::{Fault, PauseKind, Phase};

/// Header of the runtime API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Most ids in one `/sessions/batch`.
const MAX_BATCH: usize = 100;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) sandboxes: Arc<Sandboxes>,
    pub(crate) keys: ApiKeys,
}

pub(crate) fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/start", post(start))
        .route("/sessions/batch", get(batch))
        .route("/sessions/{session_id}", get(session))
        .route("/runtime/{runtime_id}", get(runtime))
        .route("/list", get(list))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        .route("/stop", post(stop))
        .route("/image_exists", get(image_exists))
        .route("/registry_prefix", get(registry_prefix))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/health", get(health))
        .merge(api)
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .with_state(state)
}

/// Liveness, with the counts an operator (or a benchmark) watches.
async fn health(State(state): State<AppState>) -> Response {
    json_response(&serde_json::json!({
        "status": "ok",
        "running": state.sandboxes.running(),
        "warm_ready": state.sandboxes.pool.ready(),
    }))
}

/// `X-API-Key` on every route but `/health`, compared in constant time.
async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok());
    match presented {
        Some(key) if state.keys.accepts(key) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "invalid X-API-Key").into_response(),
        None => ApiError::new(StatusCode::UNAUTHORIZED, "missing X-API-Key").into_response(),
    }
}

/// A JSON body: `application/json` only, decoded into `T`; 415 / 422 with a JSON detail.
fn json_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| {
            v == "application/json" || (v.starts_with("application/") && v.ends_with("+json"))
        });
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/json",
        ));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid body: {e}")))
}

fn json(runtime: &Runtime) -> Response {
    json_response(&runtime)
}

async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: StartRequest = json_body(&headers, &body)?;
    let sandboxes = &state.sandboxes;
    let plan = sandboxes.plan(request).await?;
    let record = sandboxes.start(plan).await?;
    let runtime = sandboxes.runtime(&record);
    if record.phase == Phase::Error {
        // A failed runtime has no URL to hand out: the clients cannot parse it as a runtime,
        // so it is an error naming the sandbox, its state, why, and its last log lines (the
        // record stays for `GET /sessions`).
        let status = match record.fault {
            Some(Fault::Client) => StatusCode::BAD_REQUEST,
            Some(Fault::Engine) => StatusCode::SERVICE_UNAVAILABLE,
            Some(Fault::Sandbox) | None => StatusCode::BAD_GATEWAY,
        };
        return Err(ApiError::new(
            status,
            format!(
                "sandbox {} (session {}) failed to start: status {}, pod_status {}: {}",
                runtime.runtime_id,
                runtime.session_id,
                runtime.status,
                runtime.pod_status,
                runtime.pod_logs.as_deref().unwrap_or("no logs"),
            ),
        ));
    }
    Ok(json(&runtime))
}

async fn session(
    State(state): State<AppState>,
    Path(session_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = state
        .sandboxes
        .by_session(&session_id)
        .ok_or_else(|| ApiError::not_found(format!("session {session_id}")))?;
    Ok(json(&state.sandboxes.runtime(&record)))
}

async fn runtime(
    State(state): State<AppState>,
    Path(runtime_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = state
        .sandboxes
        .by_runtime(&runtime_id)
        .ok_or_else(|| ApiError::not_found(format!("runtime {runtime_id}")))?;
    Ok(json(&state.sandboxes.runtime(&record)))
}

/// `?ids=a&ids=b` (commas split too): the known ones, as a bare array.
async fn batch(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut ids: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "ids" {
            ids.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    if ids.len() > MAX_BATCH {
        return Err(ApiError::invalid(format!("at most {MAX_BATCH} ids")));
    }
    let runtimes: Vec<Runtime> = ids
        .iter()
        .filter_map(|id| state.sandboxes.by_session(id))
        .map(|r| state.sandboxes.runtime(&r))
        .collect();
    Ok(json_response(&runtimes))
}

async fn list(State(state): State<AppState>) -> Response {
    let runtimes = state
        .sandboxes
        .live()
        .iter()
        .map(|r| state.sandboxes.runtime(r))
        .collect();
    json_response(&RuntimeList { runtimes })
}

async fn pause(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: RuntimeIdRequest = json_body(&headers, &body)?;
    let record = state
        .sandboxes
        .pause(&request.runtime_id, PauseKind::Freeze)
        .await?;
    Ok(json(&state.sandboxes.runtime(&record)))
}

async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: RuntimeIdRequest = json_body(&headers, &body)?;
    let record = state.sandboxes.resume(&request.runtime_id).await?;
    Ok(json(&state.sandboxes.runtime(&record)))
}

async fn stop(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: RuntimeIdRequest = json_body(&headers, &body)?;
    let record = state
        .sandboxes
        .stop(&request.runtime_id, "stopped by the client")
        .await?;
    Ok(json(&state.sandboxes.runtime(&record)))
}

async fn image_exists(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let image = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "image")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 512 && !v.chars().any(char::is_control))
        .ok_or_else(|| ApiError::invalid("the query parameter image is required"))?;
    let exists = state.sandboxes.backend.image_exists(&image).await?;
    Ok(json_response(&ImageExists { exists }))
}

async fn registry_prefix() -> Response {
    json_response(&RegistryPrefix {
        registry_prefix: String::new(),
    })
}
