//! `/api/agent-profiles`: named agent launch specs, as the reference serves them. A profile
//! names an LLM profile (`llm_profile_ref`) instead of holding an LLM, so it carries no secret
//! and is stored in the clear (`agent-profiles/NAME.json` beside the LLM `profiles/`). Its
//! `id` is stable across edits and renames; a conversation created with `agent_profile_id`
//! resolves it (`launch.rs`). Activation only moves the `active_agent_profile_id` pointer.
//! Some profile is always active: when the pointer is unset or dangles, `default` is
//! activated, seeded from the current `agent_settings` when absent.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{get, post};
use oh_protocol::{ErrorBody, ErrorDetail};
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, json_response, ok};
use crate::extract::{Json, path_param};
use crate::settings::{Name, check_profile_name, new_profile_name, store_error};
use crate::settings_store::{SettingsStore, canonical_profile_name, conform};

/// Most agent profiles kept (as the reference).
const MAX_AGENT_PROFILES: usize = 50;

/// The name of the profile seeded when none is active.
const SEED_NAME: &str = "default";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/agent-profiles", get(list))
        .route(
            "/api/agent-profiles/{name}",
            get(get_one).post(save).delete(delete),
        )
        .route("/api/agent-profiles/{name}/rename", post(rename))
        .route("/api/agent-profiles/{profile_id}/activate", post(activate))
}

/// An OpenHands agent profile with every field at its default.
fn default_profile() -> Value {
    json!({
        "schema_version": 4,
        "agent_kind": "openhands",
        "id": null,
        "name": "",
        "revision": 0,
        "mcp_server_refs": null,
        "secret_refs": null,
        "llm_profile_ref": "",
        "agent": "CodeActAgent",
        "tools": null,
        "persona": null,
        "system_message_suffix": null,
        "disabled_skills": [],
        "public_skills": null,
        "condenser": {
            "condenser_kind": "llm_summarizing",
            "enabled": true,
            "max_size": 240,
            "max_tokens": null,
            "keep_first": 2,
            "minimum_progress": 0.1,
            "hard_context_reset_max_retries": 5,
            "hard_context_reset_context_scaling": 0.8
        },
        "verification": {
            "critic_enabled": false,
            "critic_mode": "finish_and_message",
            "enable_iterative_refinement": false,
            "critic_threshold": 0.6,
            "max_refinement_iterations": 3,
            "critic_server_url": null,
            "critic_model_name": null
        },
        "enable_classify_and_switch_llm_tool": false,
        "meta_profile_ref": null,
        "tool_concurrency_limit": 1
    })
}

/// One entry of a 422 list, `loc` under the `openhands` variant as the reference reports it.
fn problem(field: &str, kind: &str, msg: &str) -> Value {
    json!({"loc": ["openhands", field], "type": kind, "msg": msg})
}

/// Validates a profile body (the path name already in it) into the stored document.
fn validate(body: Map<String, Value>) -> ApiResult<Map<String, Value>> {
    if body.get("agent_kind").and_then(Value::as_str) == Some("acp") {
        return Err(ApiError::unprocessable(
            "ACP agent profiles are not supported by this server",
        ));
    }
    let default = default_profile();
    let Value::Object(fields) = &default else {
        return Err(ApiError::internal(
            "the default agent profile is not an object",
        ));
    };
    let mut problems = Vec::new();
    for key in body.keys() {
        if !fields.contains_key(key) {
            problems.push(problem(
                key,
                "extra_forbidden",
                "Extra inputs are not permitted",
            ));
        }
    }
    match body.get("llm_profile_ref") {
        None | Some(Value::Null) => {
            problems.push(problem("llm_profile_ref", "missing", "Field required"));
        }
        Some(Value::String(r)) if r.is_empty() => problems.push(problem(
            "llm_profile_ref",
            "string_too_short",
            "String should have at least 1 character",
        )),
        _ => {}
    }
    for (key, value) in &body {
        let Some(default) = fields.get(key) else {
            continue;
        };
        if conform(value.clone(), default).is_none() {
            problems.push(problem(key, "type_error", "Input has the wrong type"));
        }
    }
    let number = |key: &str| body.get(key).and_then(Value::as_f64);
    if number("tool_concurrency_limit").is_some_and(|n| n < 1.0) {
        problems.push(problem(
            "tool_concurrency_limit",
            "greater_than_equal",
            "Input should be greater than or equal to 1",
        ));
    }
    if body
        .get("condenser")
        .and_then(|c| c.get("max_size"))
        .and_then(Value::as_f64)
        .is_some_and(|n| n < 20.0)
    {
        problems.push(problem(
            "condenser",
            "greater_than_equal",
            "max_size: Input should be greater than or equal to 20",
        ));
    }
    if let Some(Value::Array(tools)) = body.get("tools")
        && tools.iter().any(|t| {
            t.get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
    {
        problems.push(problem("tools", "missing", "Every tool needs a name"));
    }
    if !problems.is_empty() {
        // Entries `loc` first and without `input`, kept as they are on the wire.
        return Err(ApiError::with_body(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorBody::new(ErrorDetail::Other(json!(problems))),
        ));
    }
    let Some(Value::Object(profile)) = conform(Value::Object(body), &default) else {
        return Err(ApiError::unprocessable("Invalid agent profile"));
    };
    Ok(profile)
}

/// Saves `profile` under its name with the server's identity rule: a namesake keeps its id
/// and its revision goes up by one; a new profile gets a fresh id.
fn save_with_identity(store: &SettingsStore, mut profile: Map<String, Value>) -> ApiResult<Value> {
    let name = profile
        .get("name")
        .and_then(Value::as_str)
        .map(|n| canonical_profile_name(n).to_owned())
        .unwrap_or_default();
    let summaries = store.agent_profile_summaries().map_err(store_error)?;
    let existing = summaries
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(&name));
    match existing.and_then(|s| s.get("id").and_then(Value::as_str)) {
        Some(id) if uuid::Uuid::parse_str(id).is_ok() => {
            let revision = existing
                .and_then(|s| s.get("revision"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            profile.insert("id".into(), json!(id));
            profile.insert("revision".into(), json!(revision + 1));
        }
        _ => {
            if existing.is_none() && summaries.len() >= MAX_AGENT_PROFILES {
                return Err(ApiError::conflict(format!(
                    "Agent profile limit reached ({MAX_AGENT_PROFILES}). Delete a profile \
                     before saving a new one."
                )));
            }
            profile.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
            profile.insert("revision".into(), json!(0));
        }
    }
    profile.insert("name".into(), json!(name));
    let profile = Value::Object(profile);
    store
        .save_agent_profile(&name, &profile)
        .map_err(store_error)?;
    Ok(profile)
}

/// Whether an LLM document is a real configuration (a key or an endpoint), worth mirroring
/// into an LLM profile.
fn llm_is_configured(llm: &Value) -> bool {
    let set = |key: &str| {
        llm.get(key)
            .and_then(Value::as_str)
            .is_some_and(|v| !v.trim().is_empty())
    };
    set("api_key") || set("base_url")
}

/// The `default` profile built from the current settings (and the LLM profile it names,
/// mirrored from the settings' LLM when there is none yet and that LLM is configured).
fn seed_default(store: &SettingsStore) -> ApiResult<Value> {
    let settings = store.load_settings().map_err(store_error)?;
    let agent = &settings.agent_settings;
    let llm_ref = match settings.active_profile.as_deref() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => {
            if store
                .load_profile(SEED_NAME)
                .map_err(store_error)?
                .is_none()
                && let Some(llm) = agent.get("llm")
                && llm_is_configured(llm)
            {
                store.save_profile(SEED_NAME, llm).map_err(store_error)?;
            }
            SEED_NAME.to_owned()
        }
    };
    let field = |key: &str| agent.get(key).cloned().unwrap_or(Value::Null);
    let mut body = Map::new();
    body.insert("name".into(), json!(SEED_NAME));
    body.insert("llm_profile_ref".into(), json!(llm_ref));
    for key in ["tools", "persona", "condenser", "tool_concurrency_limit"] {
        if !field(key).is_null() {
            body.insert(key.into(), field(key));
        }
    }
    if let Some(suffix) = agent.pointer("/agent_context/system_message_suffix")
        && !suffix.is_null()
    {
        body.insert("system_message_suffix".into(), suffix.clone());
    }
    let mut condenser = body.get("condenser").cloned().unwrap_or(Value::Null);
    if let Value::Object(c) = &mut condenser {
        c.retain(|k, _| {
            default_profile()
                .pointer("/condenser")
                .and_then(Value::as_object)
                .is_some_and(|d| d.contains_key(k))
        });
        body.insert("condenser".into(), condenser);
    }
    save_with_identity(store, validate(body)?)
}

/// Keeps `active_agent_profile_id` on a stored profile: `default` (seeded when absent) or,
/// failing that, the first other profile.
fn ensure_active(store: &SettingsStore) -> ApiResult<()> {
    let mut settings = store.load_settings().map_err(store_error)?;
    if let Some(id) = &settings.active_agent_profile_id
        && store
            .agent_profile_name_for_id(id)
            .map_err(store_error)?
            .is_some()
    {
        return Ok(());
    }
    let summaries = store.agent_profile_summaries().map_err(store_error)?;
    let id_of = |s: &Value| s.get("id").and_then(Value::as_str).map(str::to_owned);
    let target = match summaries
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some(SEED_NAME))
    {
        Some(seed) => id_of(seed),
        None if summaries.len() < MAX_AGENT_PROFILES => seed_default(store)?
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        None => summaries.iter().find_map(id_of),
    };
    if let Some(id) = target {
        settings.active_agent_profile_id = Some(id);
        store.save_settings(&settings).map_err(store_error)?;
    }
    Ok(())
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Agent profile '{name}' not found"),
    )
}

/// `GET /api/agent-profiles`: the summaries and the active pointer.
async fn list(State(state): State<AppState>) -> ApiResult<Response> {
    let body = state
        .settings
        .run(|store| {
            ensure_active(store)?;
            let settings = store.load_settings().map_err(store_error)?;
            Ok(json!({
                "profiles": store.agent_profile_summaries().map_err(store_error)?,
                "active_agent_profile_id": settings.active_agent_profile_id,
            }))
        })
        .await?;
    Ok(ok(&body))
}

/// `GET /api/agent-profiles/{name}`.
async fn get_one(State(state): State<AppState>, Name(name): Name) -> ApiResult<Response> {
    check_profile_name(&name)?;
    let wanted = name.clone();
    let profile = state
        .settings
        .run(move |store| {
            store
                .load_agent_profile(&wanted)
                .map_err(store_error)?
                .ok_or_else(|| not_found(&wanted))
        })
        .await?;
    Ok(ok(&json!({"name": name, "profile": profile})))
}

/// `POST /api/agent-profiles/{name}`: 201; the path names the profile whatever the body says.
async fn save(
    State(state): State<AppState>,
    Name(name): Name,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    check_profile_name(&name)?;
    let Value::Object(mut body) = body else {
        return Err(ApiError::validation(
            &["body"],
            "dict_type",
            "Input should be a valid dictionary",
            body,
        ));
    };
    body.insert("name".into(), json!(name));
    let profile = validate(body)?;
    state
        .settings
        .run(move |store| save_with_identity(store, profile))
        .await?;
    tracing::info!(profile = %name, "agent profile saved");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"name": name, "message": format!("Agent profile '{name}' saved")}),
    ))
}

/// `DELETE /api/agent-profiles/{name}`: idempotent; deleting the active profile activates
/// `default` again (seeded anew if it was the one deleted).
async fn delete(State(state): State<AppState>, Name(name): Name) -> ApiResult<Response> {
    check_profile_name(&name)?;
    let wanted = name.clone();
    state
        .settings
        .run(move |store| {
            let key = canonical_profile_name(&wanted);
            let id = store
                .agent_profile_summaries()
                .map_err(store_error)?
                .into_iter()
                .find(|s| s.get("name").and_then(Value::as_str) == Some(key))
                .and_then(|s| s.get("id").and_then(Value::as_str).map(str::to_owned));
            store.delete_agent_profile(key).map_err(store_error)?;
            let mut settings = store.load_settings().map_err(store_error)?;
            if id.is_some() && settings.active_agent_profile_id == id {
                settings.active_agent_profile_id = None;
                store.save_settings(&settings).map_err(store_error)?;
                ensure_active(store)?;
            }
            Ok(())
        })
        .await?;
    Ok(ok(
        &json!({"name": name, "message": format!("Agent profile '{name}' deleted")}),
    ))
}

/// `POST /api/agent-profiles/{name}/rename` with `{"new_name": …}`: the id is kept.
async fn rename(
    State(state): State<AppState>,
    Name(name): Name,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    check_profile_name(&name)?;
    let new_name = new_profile_name(&body)?;
    let (from, to) = (name.clone(), new_name.clone());
    state
        .settings
        .run(move |store| {
            let (old_key, new_key) = (canonical_profile_name(&from), canonical_profile_name(&to));
            let mut profile = store
                .load_agent_profile(old_key)
                .map_err(store_error)?
                .ok_or_else(|| not_found(&from))?;
            if old_key == new_key {
                return Ok(());
            }
            if store
                .load_agent_profile(new_key)
                .map_err(store_error)?
                .is_some()
            {
                return Err(ApiError::conflict(format!(
                    "Agent profile '{to}' already exists"
                )));
            }
            if let Value::Object(map) = &mut profile {
                map.insert("name".into(), json!(new_key));
            }
            store
                .save_agent_profile(new_key, &profile)
                .map_err(store_error)?;
            store.delete_agent_profile(old_key).map_err(store_error)
        })
        .await?;
    Ok(ok(&json!({
        "name": new_name,
        "message": format!("Agent profile '{name}' renamed to '{new_name}'"),
    })))
}

/// The `{profile_id}` path parameter.
struct ProfileId(String);

impl<S: Send + Sync> FromRequestParts<S> for ProfileId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_param(parts, state, "profile_id").await.map(ProfileId)
    }
}

/// `POST /api/agent-profiles/{profile_id}/activate`: moves the pointer, nothing else.
async fn activate(State(state): State<AppState>, ProfileId(id): ProfileId) -> ApiResult<Response> {
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::validation(
            &["path", "profile_id"],
            "string_too_long",
            "String should have 1 to 128 characters",
            Value::String(id),
        ));
    }
    let wanted = id.clone();
    state
        .settings
        .run(move |store| {
            if store
                .agent_profile_name_for_id(&wanted)
                .map_err(store_error)?
                .is_none()
            {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("Agent profile with id '{wanted}' not found"),
                ));
            }
            let mut settings = store.load_settings().map_err(store_error)?;
            settings.active_agent_profile_id = Some(wanted);
            store.save_settings(&settings).map_err(store_error)
        })
        .await?;
    Ok(ok(&json!({
        "id": id,
        "message": format!("Agent profile '{id}' activated"),
        "agent_settings_applied": false,
    })))
}
