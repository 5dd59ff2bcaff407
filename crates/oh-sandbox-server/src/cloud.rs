//! The Cloud sandbox API (`/api/v1`, `workspaces.md` §6.3, `sandbox-server.md` §1.2): what
//! `OpenHandsCloudWorkspace` (Python and Rust) asks a Cloud for, served from the same
//! sandboxes, backends and records as the runtime API.
//!
//! Rules:
//! * lifecycle routes and `/users/me` take a user key (`Authorization: Bearer`); a user sees,
//!   resumes and deletes only their own sandboxes: anything else is `null` in a batch get
//!   and 404 on an action, so nobody learns that another user's sandbox exists;
//! * the settings routes (`/sandboxes/{id}/settings/secrets…`) take only the sandbox's own
//!   session key (`X-Session-API-Key`): 401 when it is missing, unknown or its sandbox is
//!   not running, 403 when it is another sandbox's key; every secret read is logged (name,
//!   sandbox, user; never the value);
//! * a sandbox id is its runtime session id (128 random bits, hex); `created_by_user_id` is
//!   the user; the session key and the `AGENT_SERVER` URL are shown only while `RUNNING`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use oh_protocol::cloud::{
    AGENT_SERVER, ExposedUrl, SandboxInfo, SandboxPage, SandboxStatus, SecretName, SecretNames,
};
use oh_protocol::runtime::StartRequest;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, json_response};
use crate::sandboxes::Sandboxes;
use crate::store::{self, PauseKind, Phase, Record};
use crate::users::{User, UsersHandle, is_env_name};

/// Header of a sandbox's session key.
const SESSION_KEY_HEADER: &str = "x-session-api-key";
/// Most ids in one batch get, and the largest page.
const MAX_IDS: usize = 100;
/// What a masked secret looks like (the app server's mask).
const MASK: &str = "**********";
/// Fields of an LLM profile that are secrets.
const PROFILE_SECRETS: &[&str] = &["api_key", "aws_access_key_id", "aws_secret_access_key"];
/// Why a deleted sandbox stopped.
const DELETED: &str = "deleted by its owner";

#[derive(Debug, Clone)]
pub(crate) struct CloudState {
    pub(crate) sandboxes: Arc<Sandboxes>,
    pub(crate) users: UsersHandle,
}

pub(crate) fn router(state: CloudState) -> Router {
    let user_routes = Router::new()
        .route("/api/v1/sandboxes", post(create).get(batch))
        .route("/api/v1/sandboxes/search", get(search))
        .route("/api/v1/sandboxes/{id}/pause", post(pause))
        .route("/api/v1/sandboxes/{id}/resume", post(resume))
        .route("/api/v1/sandboxes/{id}", axum::routing::delete(delete))
        .route("/api/v1/users/me", get(me))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), bearer));
    Router::new()
        .route("/api/v1/sandboxes/{id}/settings/secrets", get(secret_names))
        .route(
            "/api/v1/sandboxes/{id}/settings/secrets/{name}",
            get(secret_value),
        )
        .merge(user_routes)
        .with_state(state)
}

/// The user of a request, found by its Bearer key.
#[derive(Debug, Clone)]
struct Caller(Arc<User>);

async fn bearer(State(state): State<CloudState>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        })
        .filter(|k| !k.is_empty());
    let Some(presented) = presented else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing Authorization: Bearer <user API key>",
        )
        .into_response();
    };
    match state.users.current().by_key(presented) {
        Some(user) => {
            request.extensions_mut().insert(Caller(user));
            next.run(request).await
        }
        None => ApiError::new(StatusCode::UNAUTHORIZED, "invalid user API key").into_response(),
    }
}

fn caller(request: &Request) -> Result<Arc<User>, ApiError> {
    request
        .extensions()
        .get::<Caller>()
        .map(|c| Arc::clone(&c.0))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "no user"))
}

/// Query parameters, decoded.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_one(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
}

impl CloudState {
    /// The caller's sandbox with this id; 404 for unknown and foreign alike.
    fn owned(&self, user: &User, id: &str) -> Result<Record, ApiError> {
        self.sandboxes
            .by_session(id)
            .filter(|r| r.owner.as_deref() == Some(user.id.as_str()))
            .ok_or_else(|| ApiError::not_found(format!("sandbox {id}")))
    }

    /// `SandboxInfo` of a record.
    fn info(&self, record: &Record) -> SandboxInfo {
        let status = match record.phase {
            Phase::Starting => SandboxStatus::Starting,
            Phase::Running => SandboxStatus::Running,
            Phase::Paused => SandboxStatus::Paused,
            Phase::Error => SandboxStatus::Error,
            // The record is there, the compute is not (deleted ones are forgotten).
            Phase::Stopped => SandboxStatus::Missing,
        };
        let running = record.phase == Phase::Running;
        let exposed_urls = match (&record.url, running) {
            (Some(url), true) => Some(vec![ExposedUrl {
                name: AGENT_SERVER.to_owned(),
                url: url.clone(),
                port: record.container_port,
            }]),
            _ => None,
        };
        SandboxInfo {
            id: record.session_id.clone(),
            created_by_user_id: record.owner.clone(),
            sandbox_spec_id: Some(record.image.clone()),
            status,
            session_api_key: running.then(|| record.session_api_key.clone()),
            exposed_urls,
            #[allow(
                clippy::cast_possible_truncation,
                reason = "Unix seconds fit in i64 µs"
            )]
            created_at: Some(oh_protocol::time::utc_timestamp(
                (record.created_at * 1e6) as i64,
            )),
        }
    }

    /// The running sandbox a session key belongs to, checked against the sandbox `id` of
    /// the route (`session_auth.py`'s rules).
    fn by_session_key(&self, headers: &HeaderMap) -> Result<Record, ApiError> {
        let unauthorized = |detail: &str| ApiError::new(StatusCode::UNAUTHORIZED, detail);
        let presented = headers
            .get(SESSION_KEY_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unauthorized("missing X-Session-API-Key"))?;
        let record = self
            .sandboxes
            .by_session_key(presented)
            .ok_or_else(|| unauthorized("invalid X-Session-API-Key"))?;
        if record.phase != Phase::Running {
            return Err(unauthorized("Sandbox is not running"));
        }
        Ok(record)
    }

    /// The owner of the sandbox `id`, for a request carrying that sandbox's session key.
    fn sandbox_owner(&self, headers: &HeaderMap, id: &str) -> Result<Arc<User>, ApiError> {
        let record = self.by_session_key(headers)?;
        if record.session_id != id {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the session key belongs to another sandbox",
            ));
        }
        let owner = record
            .owner
            .as_deref()
            .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the sandbox has no owner"))?;
        self.users.current().by_id(owner).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "the sandbox's owner is not a user any more",
            )
        })
    }
}

/// `POST /api/v1/sandboxes[?sandbox_spec_id=]`: a new sandbox of the caller, answered at once
/// (`STARTING`, or `RUNNING` when the warm pool served it); the client polls for `RUNNING`.
async fn create(
    State(state): State<CloudState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let user = caller(&request)?;
    let pairs = query_pairs(query.as_deref());
    let image = query_one(&pairs, "sandbox_spec_id")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| state.sandboxes.config.image.clone());
    let id = store::random_hex(16)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let start = StartRequest {
        image,
        command: None,
        working_dir: None,
        environment: std::collections::BTreeMap::new(),
        session_id: id,
        run_as_user: None,
        run_as_group: None,
        fs_group: None,
        image_pull_policy: None,
        runtime_class: None,
        resource_factor: None,
    };
    let mut plan = state.sandboxes.plan(start).await.map_err(|e| {
        // The spec id is the only thing a client chose: a bad one is a 400 with a reason.
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid sandbox_spec_id: {}", e.detail),
            )
        } else {
            e
        }
    })?;
    if !state.sandboxes.backend.image_exists(&plan.image).await? {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("unknown sandbox_spec_id {}: no such image", plan.image),
        ));
    }
    plan.owner = Some(user.id.clone());
    let runtime_id = state.sandboxes.launch(plan).await?;
    let record = state
        .sandboxes
        .by_runtime(&runtime_id)
        .ok_or_else(|| ApiError::not_found("sandbox"))?;
    tracing::info!(sandbox_id = %record.session_id, user = %user.id, "Cloud sandbox created");
    Ok(json_response(&state.info(&record)))
}

/// `GET /api/v1/sandboxes?id=a&id=b`: one entry per id, `null` for unknown and foreign ones.
async fn batch(
    State(state): State<CloudState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let user = caller(&request)?;
    let ids: Vec<String> = query_pairs(query.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v)
        .collect();
    if ids.len() > MAX_IDS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_IDS} ids"),
        ));
    }
    let infos: Vec<Option<SandboxInfo>> = ids
        .iter()
        .map(|id| state.owned(&user, id).ok().map(|r| state.info(&r)))
        .collect();
    Ok(json_response(&infos))
}

/// `GET /api/v1/sandboxes/search?page_id=&limit=`: the caller's sandboxes, newest first;
/// page ids are decimal offsets.
async fn search(
    State(state): State<CloudState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let user = caller(&request)?;
    let pairs = query_pairs(query.as_deref());
    let limit = match query_one(&pairs, "limit").filter(|v| !v.is_empty()) {
        None => MAX_IDS,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_IDS).contains(n))
            .ok_or_else(|| ApiError::invalid(format!("limit must be 1 to {MAX_IDS}")))?,
    };
    let offset = match query_one(&pairs, "page_id").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("page_id must be a page id from a previous answer"))?,
    };
    let mut mine = state.sandboxes.owned_by(&user.id);
    mine.sort_by(|a, b| b.created_at.total_cmp(&a.created_at));
    let items: Vec<SandboxInfo> = mine
        .iter()
        .skip(offset)
        .take(limit)
        .map(|r| state.info(r))
        .collect();
    let next = offset.saturating_add(items.len());
    let next_page_id = (next < mine.len()).then(|| next.to_string());
    Ok(json_response(&SandboxPage {
        items,
        next_page_id,
    }))
}

fn success() -> Response {
    json_response(&json!({ "success": true }))
}

/// `POST /api/v1/sandboxes/{id}/pause`.
async fn pause(
    State(state): State<CloudState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let user = caller(&request)?;
    let record = state.owned(&user, &id)?;
    state
        .sandboxes
        .pause(&record.runtime_id, PauseKind::Freeze)
        .await?;
    Ok(success())
}

/// `POST /api/v1/sandboxes/{id}/resume`: idempotent (the SDK re-sends it while it sees
/// `PAUSED`); a sandbox whose compute is gone cannot be resumed (409 naming its status).
async fn resume(
    State(state): State<CloudState>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let user = caller(&request)?;
    let record = state.owned(&user, &id)?;
    match record.phase {
        Phase::Running | Phase::Starting => {}
        Phase::Paused => {
            state.sandboxes.resume(&record.runtime_id).await?;
        }
        Phase::Error | Phase::Stopped => {
            return Err(ApiError::conflict(format!(
                "sandbox {id} is {}: it cannot be resumed; create a new one",
                state.info(&record).status
            )));
        }
    }
    Ok(success())
}

/// `DELETE /api/v1/sandboxes/{id}[?sandbox_id={id}]`: the reference's route reads the query
/// parameter, the SDK sends both; either is accepted, both must agree.
async fn delete(
    State(state): State<CloudState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let user = caller(&request)?;
    if let Some(other) = query_one(&query_pairs(query.as_deref()), "sandbox_id")
        && other != id
    {
        return Err(ApiError::invalid(
            "sandbox_id in the query names another sandbox than the path",
        ));
    }
    let record = state.owned(&user, &id)?;
    if record.phase.is_live() || record.handle.is_some() {
        state.sandboxes.stop(&record.runtime_id, DELETED).await?;
    }
    state.sandboxes.forget(&record.runtime_id).await;
    tracing::info!(sandbox_id = %id, user = %user.id, "Cloud sandbox deleted");
    Ok(json_response(&true))
}

/// An LLM profile as `/users/me` shows it: secrets masked unless exposed.
fn profile(fields: &Map<String, Value>, expose: bool) -> Value {
    let mut shown = fields.clone();
    if !expose {
        for name in PROFILE_SECRETS {
            if let Some(value) = shown.get_mut(*name)
                && !value.is_null()
            {
                *value = Value::String(MASK.to_owned());
            }
        }
    }
    Value::Object(shown)
}

/// `GET /api/v1/users/me[?expose_secrets=true]`: the caller's settings. Secrets are exposed
/// only with the session key of a running sandbox the caller owns (401 without one, 403 when
/// it is someone else's).
async fn me(
    State(state): State<CloudState>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let user = caller(&request)?;
    let expose = query_one(&query_pairs(query.as_deref()), "expose_secrets")
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if expose {
        let record = state.by_session_key(request.headers())?;
        if record.owner.as_deref() != Some(user.id.as_str()) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "the session key belongs to another user's sandbox",
            ));
        }
        tracing::info!(user = %user.id, sandbox_id = %record.session_id, "settings exposed to a sandbox");
    }
    let llm_api_key = user.llm.api_key.as_ref().map(|k| {
        if expose {
            k.expose().to_owned()
        } else {
            MASK.to_owned()
        }
    });
    let profiles: Map<String, Value> = user
        .llm_profiles
        .iter()
        .map(|(name, fields)| (name.clone(), profile(fields, expose)))
        .collect();
    Ok(json_response(&json!({
        "id": user.id,
        "llm_model": user.llm.model,
        "llm_api_key": llm_api_key,
        "llm_base_url": user.llm.base_url,
        "llm_profiles": { "profiles": profiles },
        "mcp_config": user.mcp_config,
    })))
}

/// `GET /api/v1/sandboxes/{id}/settings/secrets`: names and descriptions of the owner's
/// secrets, for the sandbox's own session key.
async fn secret_names(
    State(state): State<CloudState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let owner = state.sandbox_owner(&headers, &id)?;
    let secrets = owner
        .secrets
        .iter()
        .map(|(name, secret)| SecretName {
            name: name.clone(),
            description: secret.description.clone(),
        })
        .collect();
    Ok(json_response(&SecretNames { secrets }))
}

/// `GET /api/v1/sandboxes/{id}/settings/secrets/{name}`: one value, `text/plain`, resolved
/// now (an edited users file takes effect at once); 404 for unknown and empty ones.
async fn secret_value(
    State(state): State<CloudState>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let owner = state.sandbox_owner(&headers, &id)?;
    if !is_env_name(&name) {
        return Err(ApiError::not_found(format!("secret {name:?}")));
    }
    let value = owner
        .secrets
        .get(&name)
        .map(|s| s.value.expose().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::not_found(format!("secret {name}")))?;
    tracing::info!(sandbox_id = %id, user = %owner.id, secret = %name, "secret read by a sandbox");
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        value,
    )
        .into_response())
}
