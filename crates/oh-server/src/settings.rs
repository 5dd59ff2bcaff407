//! The settings routes of the reference: `/api/settings` (agent and conversation settings,
//! `X-Expose-Secrets`), `/api/settings/secrets` (the custom secrets store, whose values the
//! SDK's `LookupSecret`s fetch) and `/api/profiles` (named LLM profiles). Storage is in
//! `settings_store`.

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, json_response, ok};
use crate::extract::{Json, Query, path_param};
use crate::settings_store::{
    CustomSecret, Expose, LLM_SECRETS, REDACTED, Settings, SettingsStore, StoreError,
    accept_incoming_secrets, canonical_profile_name, conform, default_llm, show_secrets,
    valid_profile_name, valid_secret_name,
};

/// Most profiles kept (as the reference).
const MAX_PROFILES: usize = 50;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(get_settings).patch(patch_settings))
        .route("/api/settings/secrets", get(list_secrets).put(put_secret))
        .route(
            "/api/settings/secrets/{name}",
            get(get_secret).delete(delete_secret),
        )
        .route(
            "/api/settings/mcp/{settings_key}",
            post(create_mcp_server)
                .patch(patch_mcp_server)
                .delete(delete_mcp_server),
        )
        .route("/api/profiles", get(list_profiles))
        .route(
            "/api/profiles/{name}",
            get(get_profile).post(save_profile).delete(delete_profile),
        )
        .route("/api/profiles/{name}/activate", post(activate_profile))
        .route("/api/profiles/{name}/rename", post(rename_profile))
}

pub(crate) fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::Unreadable(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Secrets file is corrupted or encrypted with a different key: restore that key \
             as OH_SECRET_KEY or add it to OH_PREVIOUS_SECRET_KEYS",
        ),
        StoreError::Io(err) => ApiError::internal(err),
    }
}

fn expose(headers: &HeaderMap) -> ApiResult<Expose> {
    Expose::parse(headers.get("x-expose-secrets").map(HeaderValue::as_bytes))
}

/// The `{name}` path parameter, percent-decoded.
pub(crate) struct Name(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Name {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_param(parts, state, "name").await.map(Name)
    }
}

// ── /api/settings ──────────────────────────────────────────────────────────

async fn get_settings(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let mode = expose(&headers)?;
    let store = state.settings.clone();
    let settings = store
        .run(|s| s.load_settings().map_err(store_error))
        .await?;
    if mode == Expose::Plaintext {
        tracing::warn!("settings read with plaintext secrets");
    }
    Ok(ok(&settings.response(mode, store.cipher())?))
}

/// The optional string pointers of a patch: `Some(None)` when given as `null`.
fn pointer(body: &serde_json::Map<String, Value>, key: &str) -> ApiResult<Option<Option<String>>> {
    match body.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(Some(s.clone()))),
        Some(other) => Err(ApiError::validation(
            &["body", key],
            "string_type",
            "Input should be a valid string",
            other.clone(),
        )),
    }
}

/// A `*_settings_diff`: an object, or absent/`null`.
fn diff(body: &mut serde_json::Map<String, Value>, key: &str) -> ApiResult<Option<Value>> {
    match body.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) => Ok(Some(value)),
        Some(other) => Err(ApiError::validation(
            &["body", key],
            "dict_type",
            "Input should be a valid dictionary",
            other,
        )),
    }
}

async fn patch_settings(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::validation(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            json!({}),
        ));
    };
    let agent = diff(&mut body, "agent_settings_diff")?;
    let conversation = diff(&mut body, "conversation_settings_diff")?;
    let misc = diff(&mut body, "misc_settings_diff")?;
    let active_profile = pointer(&body, "active_profile")?;
    let agent_profile = pointer(&body, "active_agent_profile_id")?;
    let meta_profile = pointer(&body, "active_meta_profile")?;
    if agent.is_none()
        && conversation.is_none()
        && misc.is_none()
        && active_profile.is_none()
        && agent_profile.is_none()
        && meta_profile.is_none()
    {
        return Err(ApiError::bad_request(
            "At least one of agent_settings_diff, conversation_settings_diff, \
             misc_settings_diff, active_profile, active_agent_profile_id, or \
             active_meta_profile must be provided",
        ));
    }
    // No meta profile can exist here (their routes are not implemented).
    if let Some(Some(name)) = &meta_profile {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Meta-profile '{name}' not found"),
        ));
    }
    let store = state.settings.clone();
    let settings = store
        .run(move |store| {
            // The named profile's LLM, unless the patch gives one.
            let profile_llm = match &active_profile {
                Some(Some(name)) if agent.as_ref().is_none_or(|d| d.get("llm").is_none()) => {
                    Some(load_profile_or_404(store, name)?)
                }
                _ => None,
            };
            let mut settings = store.load_settings().map_err(store_error)?;
            let acp = settings.is_acp(agent.as_ref());
            let mut agent = agent;
            if let Some(llm) = profile_llm
                && !acp
            {
                let mut diff = agent.take().unwrap_or_else(|| json!({}));
                if let Value::Object(map) = &mut diff {
                    map.insert("llm".to_owned(), llm);
                }
                agent = Some(diff);
            }
            if let Some(diff) = agent {
                settings.patch_agent(diff, store.cipher())?;
            }
            if let Some(diff) = conversation {
                settings.patch_conversation(diff)?;
            }
            if let Some(diff) = misc {
                settings.patch_misc(diff);
            }
            if let Some(name) = active_profile {
                settings.active_profile = name;
            }
            if let Some(id) = agent_profile {
                if let Some(wanted) = &id
                    && store
                        .agent_profile_name_for_id(wanted)
                        .map_err(store_error)?
                        .is_none()
                {
                    return Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        format!("Agent profile with id '{wanted}' not found"),
                    ));
                }
                settings.active_agent_profile_id = id;
            }
            if let Some(name) = meta_profile {
                settings.active_meta_profile = name;
            }
            store.save_settings(&settings).map_err(store_error)?;
            Ok(settings)
        })
        .await?;
    tracing::info!("settings updated");
    Ok(ok(&settings.response(Expose::Redacted, store.cipher())?))
}

// ── /api/settings/mcp/{settings_key} ──────────────────────────────────────

/// The `{settings_key}` path parameter, percent-decoded.
struct McpKey(String);

impl<S: Send + Sync> FromRequestParts<S> for McpKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_param(parts, state, "settings_key").await.map(McpKey)
    }
}

/// An MCP server body: an object (422 otherwise).
fn mcp_body(body: Value) -> ApiResult<Value> {
    if body.is_object() {
        Ok(body)
    } else {
        Err(ApiError::validation(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            json!({}),
        ))
    }
}

/// Applies `server` (`None`: delete) to the MCP server `key`, which must be absent
/// (`exists == false`) or present; answers the settings, secrets masked.
async fn change_mcp_server(
    state: &AppState,
    key: String,
    server: Option<Value>,
    exists: bool,
) -> ApiResult<Value> {
    let store = state.settings.clone();
    let settings = store
        .run(move |store| {
            let mut settings = store.load_settings().map_err(store_error)?;
            let present = settings
                .agent_settings
                .pointer("/mcp_config")
                .and_then(|m| m.get(&key))
                .is_some();
            if exists && !present {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("MCP server '{key}' was not found"),
                ));
            }
            if !exists && present {
                return Err(ApiError::conflict(format!(
                    "MCP server '{key}' already exists"
                )));
            }
            let mut map = serde_json::Map::new();
            map.insert(key, server.unwrap_or(Value::Null));
            settings.patch_agent(json!({ "mcp_config": map }), store.cipher())?;
            store.save_settings(&settings).map_err(store_error)?;
            Ok(settings)
        })
        .await?;
    settings.response(Expose::Redacted, store.cipher())
}

async fn create_mcp_server(
    State(state): State<AppState>,
    McpKey(key): McpKey,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let server = mcp_body(body)?;
    let settings = change_mcp_server(&state, key, Some(server), false).await?;
    Ok(json_response(StatusCode::CREATED, &settings))
}

async fn patch_mcp_server(
    State(state): State<AppState>,
    McpKey(key): McpKey,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    let patch = mcp_body(body)?;
    Ok(ok(&change_mcp_server(&state, key, Some(patch), true).await?))
}

async fn delete_mcp_server(
    State(state): State<AppState>,
    McpKey(key): McpKey,
) -> ApiResult<Response> {
    Ok(ok(&change_mcp_server(&state, key, None, true).await?))
}

// ── /api/settings/secrets ──────────────────────────────────────────────────

fn check_secret_name(name: &str) -> ApiResult<()> {
    if valid_secret_name(name) {
        Ok(())
    } else {
        Err(ApiError::unprocessable(
            "Invalid secret name format. Must start with a letter, contain only letters, \
             numbers, and underscores, and be 1-64 characters long.",
        ))
    }
}

fn secret_not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "Secret not found")
}

async fn list_secrets(State(state): State<AppState>, query: Query) -> ApiResult<Response> {
    if query.get("agent_profile_id").is_some() {
        // No agent profile can exist here (their routes are not implemented).
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Agent profile not found",
        ));
    }
    let secrets = state
        .settings
        .run(|s| s.load_secrets().map_err(store_error))
        .await?;
    let items: Vec<Value> = secrets
        .iter()
        .map(|s| json!({"name": s.name, "description": s.description}))
        .collect();
    Ok(ok(&json!({ "secrets": items })))
}

/// Reads the `PUT /api/settings/secrets` body `{name, value, description?}`; a refusal
/// never echoes the value (only the offending field's own input, the value's redacted).
fn secret_create(body: Value) -> ApiResult<(String, String, Option<String>)> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::validation(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            json!({}),
        ));
    };
    let missing = |field: &str| {
        ApiError::validation(&["body", field], "missing", "Field required", json!({}))
    };
    let name = match body.remove("name") {
        Some(Value::String(name)) => name,
        Some(other) => {
            return Err(ApiError::validation(
                &["body", "name"],
                "string_type",
                "Input should be a valid string",
                other,
            ));
        }
        None => return Err(missing("name")),
    };
    let value = match body.remove("value") {
        Some(Value::String(value)) => value,
        Some(_) => {
            return Err(ApiError::validation(
                &["body", "value"],
                "string_type",
                "Input should be a valid string",
                Value::String("<redacted>".to_owned()),
            ));
        }
        None => return Err(missing("value")),
    };
    let description = match body.remove("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d),
        Some(other) => {
            return Err(ApiError::validation(
                &["body", "description"],
                "string_type",
                "Input should be a valid string",
                other,
            ));
        }
    };
    Ok((name, value, description))
}

async fn put_secret(State(state): State<AppState>, Json(body): Json<Value>) -> ApiResult<Response> {
    let (name, value, description) = secret_create(body)?;
    check_secret_name(&name)?;
    if value.trim().is_empty() || value == REDACTED {
        return Err(ApiError::unprocessable(
            "Secret value must not be empty or redacted",
        ));
    }
    let reply = json!({"name": name, "description": description});
    state
        .settings
        .run(move |store| {
            let mut secrets = store.load_secrets().map_err(store_error)?;
            let fresh = CustomSecret {
                name: name.clone(),
                value,
                description,
            };
            match secrets.iter_mut().find(|s| s.name == name) {
                Some(slot) => *slot = fresh,
                None => secrets.push(fresh),
            }
            store.save_secrets(&secrets).map_err(store_error)
        })
        .await?;
    tracing::info!(secret_name = %reply["name"], "secret created or updated");
    Ok(ok(&reply))
}

async fn get_secret(State(state): State<AppState>, Name(name): Name) -> ApiResult<Response> {
    check_secret_name(&name)?;
    let wanted = name.clone();
    let value = state
        .settings
        .run(move |store| {
            let secrets = store.load_secrets().map_err(store_error)?;
            Ok(secrets
                .into_iter()
                .find(|s| s.name == wanted)
                .map(|s| s.value))
        })
        .await?;
    let Some(value) = value else {
        tracing::warn!(secret_name = %name, "secret access failed: not found");
        return Err(secret_not_found());
    };
    tracing::info!(secret_name = %name, "secret accessed");
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], value).into_response())
}

async fn delete_secret(State(state): State<AppState>, Name(name): Name) -> ApiResult<Response> {
    check_secret_name(&name)?;
    let wanted = name.clone();
    let deleted = state
        .settings
        .run(move |store| {
            let mut secrets = store.load_secrets().map_err(store_error)?;
            let before = secrets.len();
            secrets.retain(|s| s.name != wanted);
            if secrets.len() == before {
                return Ok(false);
            }
            store.save_secrets(&secrets).map_err(store_error)?;
            Ok(true)
        })
        .await?;
    if !deleted {
        return Err(secret_not_found());
    }
    tracing::info!(secret_name = %name, "secret deleted");
    Ok(ok(&json!({"deleted": true})))
}

// ── /api/profiles ──────────────────────────────────────────────────────────

pub(crate) fn check_profile_name(name: &str) -> ApiResult<()> {
    if valid_profile_name(name) {
        return Ok(());
    }
    let pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
    Err(ApiError::validation(
        &["path", "name"],
        "string_pattern_mismatch",
        format!("String should match pattern '{pattern}'"),
        Value::String(name.to_owned()),
    ))
}

fn profile_not_found(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Profile '{name}' not found"))
}

fn load_profile_or_404(store: &SettingsStore, name: &str) -> ApiResult<Value> {
    store
        .load_profile(name)
        .map_err(store_error)?
        .ok_or_else(|| profile_not_found(name))
}

fn api_key_set(llm: &Value) -> bool {
    llm.get("api_key")
        .and_then(Value::as_str)
        .is_some_and(|k| !k.trim().is_empty())
}

async fn list_profiles(State(state): State<AppState>) -> ApiResult<Response> {
    let (profiles, settings) = state
        .settings
        .run(|store| {
            let mut profiles = Vec::new();
            for name in store.profile_names().map_err(store_error)? {
                if let Some(llm) = store.load_profile(&name).map_err(store_error)? {
                    profiles.push(json!({
                        "name": name,
                        "model": llm.get("model"),
                        "base_url": llm.get("base_url"),
                        "provider_connection_id": llm.get("provider_connection_id"),
                        "provider_connection_broken": false,
                        "api_key_set": api_key_set(&llm),
                    }));
                }
            }
            Ok((profiles, store.load_settings().map_err(store_error)?))
        })
        .await?;
    Ok(ok(&json!({
        "profiles": profiles,
        "active_profile": settings.active_profile,
    })))
}

async fn get_profile(
    State(state): State<AppState>,
    Name(name): Name,
    headers: HeaderMap,
) -> ApiResult<Response> {
    check_profile_name(&name)?;
    let mode = expose(&headers)?;
    let wanted = name.clone();
    let store = state.settings.clone();
    let llm = store
        .run(move |store| load_profile_or_404(store, &wanted))
        .await?;
    let key_set = api_key_set(&llm);
    let mut config = llm;
    show_secrets(&mut config, LLM_SECRETS, mode, store.cipher())?;
    if mode == Expose::Redacted
        && let Value::Object(map) = &mut config
    {
        map.insert("api_key".to_owned(), Value::Null);
    }
    Ok(ok(
        &json!({"name": name, "config": config, "api_key_set": key_set}),
    ))
}

async fn save_profile(
    State(state): State<AppState>,
    Name(name): Name,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    check_profile_name(&name)?;
    let Value::Object(mut body) = body else {
        return Err(ApiError::validation(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            json!({}),
        ));
    };
    let include_secrets = match body.get("include_secrets") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(ApiError::validation(
                &["body", "include_secrets"],
                "bool_type",
                "Input should be a valid boolean",
                other.clone(),
            ));
        }
    };
    let mut llm = match body.remove("llm") {
        None => {
            return Err(ApiError::validation(
                &["body", "llm"],
                "missing",
                "Field required",
                json!({}),
            ));
        }
        Some(llm @ Value::Object(_)) => llm,
        Some(_) => {
            return Err(ApiError::validation(
                &["body", "llm"],
                "model_type",
                "Input should be a valid dictionary or instance of LLM",
                json!({}),
            ));
        }
    };
    let store = state.settings.clone();
    accept_incoming_secrets(&mut llm, LLM_SECRETS, store.cipher());
    let mut llm = conform(llm, &default_llm())
        .ok_or_else(|| ApiError::unprocessable("Settings validation failed"))?;
    if !include_secrets && let Value::Object(map) = &mut llm {
        for field in LLM_SECRETS.iter().filter_map(|p| p.first()) {
            map.insert((*field).to_owned(), Value::Null);
        }
    }
    let key = canonical_profile_name(&name).to_owned();
    store
        .run(move |store| {
            let names = store.profile_names().map_err(store_error)?;
            if !names.contains(&key) && names.len() >= MAX_PROFILES {
                return Err(ApiError::conflict(format!(
                    "Profile limit reached ({MAX_PROFILES}). Delete a profile before saving a new one."
                )));
            }
            store.save_profile(&key, &llm).map_err(store_error)
        })
        .await?;
    tracing::info!(profile = %name, include_secrets, "profile saved");
    Ok(json_response(
        StatusCode::CREATED,
        &json!({"name": name, "message": format!("Profile '{name}' saved")}),
    ))
}

async fn delete_profile(State(state): State<AppState>, Name(name): Name) -> ApiResult<Response> {
    check_profile_name(&name)?;
    let key = canonical_profile_name(&name).to_owned();
    state
        .settings
        .run(move |store| {
            store.delete_profile(&key).map_err(store_error)?;
            let mut settings = store.load_settings().map_err(store_error)?;
            if settings
                .active_profile
                .as_deref()
                .is_some_and(|active| canonical_profile_name(active) == key)
            {
                settings.active_profile = None;
                store.save_settings(&settings).map_err(store_error)?;
            }
            Ok(())
        })
        .await?;
    Ok(ok(
        &json!({"name": name, "message": format!("Profile '{name}' deleted")}),
    ))
}

async fn activate_profile(State(state): State<AppState>, Name(name): Name) -> ApiResult<Response> {
    check_profile_name(&name)?;
    let wanted = name.clone();
    let applied = state
        .settings
        .run(move |store| {
            let llm = load_profile_or_404(store, &wanted)?;
            let mut settings: Settings = store.load_settings().map_err(store_error)?;
            let applied = settings.set_llm(llm);
            settings.active_profile = Some(canonical_profile_name(&wanted).to_owned());
            store.save_settings(&settings).map_err(store_error)?;
            Ok(applied)
        })
        .await?;
    let message = if applied {
        format!("Profile '{name}' activated and applied to current settings")
    } else {
        format!("Profile '{name}' activated")
    };
    Ok(ok(
        &json!({"name": name, "message": message, "llm_applied": applied}),
    ))
}

async fn rename_profile(
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
            let llm = load_profile_or_404(store, &from)?;
            let (old_key, new_key) = (canonical_profile_name(&from), canonical_profile_name(&to));
            if old_key == new_key {
                return Ok(());
            }
            if store.load_profile(new_key).map_err(store_error)?.is_some() {
                return Err(ApiError::conflict(format!("Profile '{to}' already exists")));
            }
            store.save_profile(new_key, &llm).map_err(store_error)?;
            store.delete_profile(old_key).map_err(store_error)?;
            let mut settings = store.load_settings().map_err(store_error)?;
            if settings
                .active_profile
                .as_deref()
                .is_some_and(|active| canonical_profile_name(active) == old_key)
            {
                settings.active_profile = Some(new_key.to_owned());
                store.save_settings(&settings).map_err(store_error)?;
            }
            Ok(())
        })
        .await?;
    let message = if name == new_name {
        format!("Profile '{name}' unchanged (same name)")
    } else {
        format!("Profile '{name}' renamed to '{new_name}'")
    };
    Ok(ok(&json!({"name": new_name, "message": message})))
}

/// The `new_name` of a rename body, checked as the reference checks it.
pub(crate) fn new_profile_name(body: &Value) -> ApiResult<String> {
    match body.get("new_name") {
        Some(Value::String(new)) if valid_profile_name(new) => Ok(new.clone()),
        Some(Value::String(new)) => Err(ApiError::validation(
            &["body", "new_name"],
            "string_pattern_mismatch",
            "String should match pattern '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'",
            Value::String(new.clone()),
        )),
        Some(other) => Err(ApiError::validation(
            &["body", "new_name"],
            "string_type",
            "Input should be a valid string",
            other.clone(),
        )),
        None => Err(ApiError::validation(
            &["body", "new_name"],
            "missing",
            "Field required",
            body.clone(),
        )),
    }
}
