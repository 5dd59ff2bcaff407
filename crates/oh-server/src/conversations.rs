//! `/api/conversations/*` (spec §3.2–3.14).
//!
//! Routes that read stored conversations from disk (search, count, get, create) do it on
//! the blocking pool, never on the async workers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use oh_protocol::agent::{AgentBase, SecretSource};
use oh_protocol::api::{
    AgentResponseResult, ConversationPage, ConversationSortOrder, SetConfirmationPolicyRequest,
    SetSecurityAnalyzerRequest, StartConversationRequest, Success, UpdateConversationRequest,
    UpdateSecretsRequest,
};
use oh_protocol::event::Event;
use oh_protocol::tool::Action;
use oh_protocol::{ConversationInfo, ExecutionStatus, WorkspaceSpec};
use serde_json::Value;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, json_response, ok};
use crate::extract::{ConversationId, Json, Query, parse_uuid};
use crate::service::{Live, NewConversation, ServiceError, new_meta, utc_now};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/conversations", post(create).get(batch_get))
        .route("/api/conversations/search", get(search))
        .route("/api/conversations/count", get(count))
        .route(
            "/api/conversations/{conversation_id}",
            get(get_one).delete(delete).patch(update),
        )
        .route("/api/conversations/{conversation_id}/run", post(run))
        .route("/api/conversations/{conversation_id}/pause", post(pause))
        .route(
            "/api/conversations/{conversation_id}/interrupt",
            post(interrupt),
        )
        .route(
            "/api/conversations/{conversation_id}/secrets",
            post(secrets),
        )
        .route(
            "/api/conversations/{conversation_id}/confirmation_policy",
            post(confirmation_policy),
        )
        .route(
            "/api/conversations/{conversation_id}/security_analyzer",
            post(security_analyzer),
        )
        .route(
            "/api/conversations/{conversation_id}/condense",
            post(condense),
        )
        .route(
            "/api/conversations/{conversation_id}/agent_final_response",
            get(final_response),
        )
        .route(
            "/api/conversations/{conversation_id}/ask_agent",
            post(ask_agent),
        )
        .route(
            "/api/conversations/{conversation_id}/load_plugin",
            post(load_plugin),
        )
        .route("/api/conversations/{conversation_id}/fork", post(fork))
        .route(
            "/api/conversations/{conversation_id}/navigate",
            post(navigate),
        )
        .route(
            "/api/conversations/{conversation_id}/runtime",
            get(runtime_info),
        )
        .route(
            "/api/conversations/{conversation_id}/runtime/reprovision",
            post(runtime_info),
        )
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::AlreadyRunning => ApiError::conflict(err.to_string()),
            ServiceError::Capacity => ApiError::new(StatusCode::TOO_MANY_REQUESTS, err.to_string()),
            ServiceError::Invalid(msg) => ApiError::bad_request(msg),
            ServiceError::Agent(err) => agent_error(err),
            ServiceError::Io(msg) => ApiError::internal(msg),
            ServiceError::Exists(_) => ApiError::conflict(err.to_string()),
            ServiceError::NotFound(msg) => ApiError::new(StatusCode::NOT_FOUND, msg),
        }
    }
}

/// Maps an agent-core error to a response: client-caused ones are 4xx.
pub(crate) fn agent_error(err: oh_agent::conversation::Error) -> ApiError {
    use oh_agent::conversation::Error as E;
    match err {
        E::AlreadyRunning { .. } => {
            ApiError::conflict("Conversation already running. Wait for completion or pause first.")
        }
        E::NotAUserMessage { .. } => ApiError::validation(
            &["body", "role"],
            "value_error",
            "Only messages with role 'user' can be sent to a conversation",
            Value::Null,
        ),
        E::Unsupported(msg) => ApiError::bad_request(msg),
        E::Tool(err) => ApiError::bad_request(err.to_string()),
        E::Llm(err) => ApiError::bad_request(format!("LLM configuration: {err}")),
        E::Resume(msg) => ApiError::bad_request(msg),
        other => ApiError::internal(other),
    }
}

/// Runs `work` on the blocking pool: it reads (or writes) conversations on disk.
async fn off_workers<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || work(&state))
        .await
        .map_err(ApiError::internal)?
}

/// The live conversation, `None` if unknown. One that is only stored is hydrated on the
/// blocking pool (it reads the disk).
pub(crate) async fn live(state: &AppState, id: uuid::Uuid) -> ApiResult<Option<Arc<Live>>> {
    match state.conversations.in_memory(id) {
        Some(found) => Ok(found),
        None => off_workers(state, move |state| Ok(state.conversations.get(id)?)).await,
    }
}

/// The live conversation or 404 with `detail`.
pub(crate) async fn live_or(
    state: &AppState,
    id: uuid::Uuid,
    detail: &str,
) -> ApiResult<Arc<Live>> {
    live(state, id)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, detail))
}

/// The live conversation or 404 `{"detail": "Not Found"}`.
fn live_or_not_found(state: &AppState, id: uuid::Uuid) -> ApiResult<Arc<Live>> {
    state.conversations.get(id)?.ok_or_else(ApiError::not_found)
}

fn tag_error(tags: &BTreeMap<String, String>) -> Option<ApiError> {
    for (key, value) in tags {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Some(ApiError::validation(
                &["body", "tags"],
                "value_error",
                format!("Value error, Tag key {key:?} must match ^[a-z0-9]+$"),
                Value::String(key.clone()),
            ));
        }
        if value.chars().count() > 256 {
            return Some(ApiError::validation(
                &["body", "tags"],
                "value_error",
                format!("Value error, Tag value for {key:?} is longer than 256 characters"),
                Value::String(key.clone()),
            ));
        }
    }
    None
}

async fn create(State(state): State<AppState>, Json(body): Json<Value>) -> ApiResult<Response> {
    if body.is_null() {
        return Err(ApiError::validation(
            &["body"],
            "missing",
            "Field required",
            Value::Null,
        ));
    }
    if !body.is_object() {
        return Err(ApiError::validation(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            body,
        ));
    }
    let request: StartConversationRequest =
        crate::extract::parse_json(body.to_string().as_bytes())?;
    if let Some(id) = request.conversation_id
        && let Some(info) =
            off_workers(&state, move |state| Ok(state.conversations.info(id)?)).await?
    {
        return Ok(json_response(StatusCode::OK, &info));
    }
    let sources = [
        ("agent", request.agent.is_some()),
        ("agent_settings", request.agent_settings.is_some()),
        ("agent_profile_id", request.agent_profile_id.is_some()),
    ];
    let given: Vec<&str> = sources
        .iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| *n)
        .collect();
    if given.len() > 1 {
        return Err(ApiError::validation(
            &["body"],
            "value_error",
            format!(
                "Value error, `{}` is mutually exclusive with `{}`",
                given[given.len() - 1],
                given[0]
            ),
            Value::Null,
        ));
    }
    let mut launched_agent_profile = None;
    let mut secret_refs: Option<Vec<String>> = None;
    let agent = match request.agent {
        Some(AgentBase::Agent(agent)) => *agent,
        Some(other) => {
            let kind = match &other {
                AgentBase::Unknown(unknown) => unknown.tag("kind").unwrap_or("?").to_owned(),
                _ => "?".to_owned(),
            };
            return Err(ApiError::validation(
                &["body", "agent"],
                "value_error",
                format!(
                    "Value error, agent kind {kind:?} is not supported by this server (only Agent)"
                ),
                Value::Null,
            ));
        }
        None if request.agent_settings.is_some() => {
            crate::launch::agent_from_settings(request.agent_settings.unwrap_or_default())?
        }
        None if let Some(profile_id) = request.agent_profile_id => {
            let launch = state
                .settings
                .run(move |store| crate::launch::agent_from_profile(store, profile_id))
                .await?;
            launched_agent_profile = Some(launch.launched);
            secret_refs = launch.secret_refs;
            launch.agent
        }
        None => {
            return Err(ApiError::validation(
                &["body"],
                "value_error",
                "Value error, One of `agent`, `agent_settings`, or `agent_profile_id` must be provided",
                Value::Null,
            ));
        }
    };
    let unknown_tools: Vec<&str> = agent
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .chain(agent.include_default_tools.iter().map(String::as_str))
        .filter(|name| !oh_agent::tools::is_known(name))
        .collect();
    if !unknown_tools.is_empty() {
        return Err(ApiError::validation(
            &["body", "agent", "tools"],
            "value_error",
            format!(
                "Value error, tools not available on this server: {} (available: {})",
                unknown_tools.join(", "),
                oh_agent::tools::available().join(", ")
            ),
            Value::Null,
        ));
    }
    if let Some(err) = tag_error(&request.tags) {
        return Err(err);
    }
    let WorkspaceSpec::Local(local) = &request.workspace else {
        return Err(ApiError::validation(
            &["body", "workspace"],
            "value_error",
            "Value error, only LocalWorkspace is supported",
            Value::Null,
        ));
    };
    if local.working_dir.trim().is_empty() {
        return Err(ApiError::validation(
            &["body", "workspace", "working_dir"],
            "value_error",
            "Value error, working_dir must not be empty",
            Value::Null,
        ));
    }
    if let Some(parent) = request.parent_conversation_id
        && !state.conversations.exists(parent)
    {
        return Err(ApiError::unprocessable(format!(
            "Parent conversation {parent} not found"
        )));
    }
    let mut request_secrets = request.secrets;
    // A profile's `secret_refs` lets only the secrets it names through.
    if let Some(allowed) = &secret_refs {
        request_secrets.retain(|name, _| allowed.contains(name));
    }
    let (secrets, lookup_secrets) = plain_secrets(request_secrets)?;
    let working_dir = PathBuf::from(&local.working_dir);
    prepare_workspace(&working_dir).await?;

    // A create that would run but finds no run slot answers 429 before it creates anything.
    let run_slot = match request.initial_message {
        Some(_) => Some(state.conversations.reserve_run()?),
        None => None,
    };
    let id = request.conversation_id.unwrap_or_else(uuid::Uuid::new_v4);
    let mut meta = new_meta(id);
    meta.workspace = Some(request.workspace.clone());
    meta.max_iterations = Some(request.max_iterations);
    meta.stuck_detection = Some(request.stuck_detection);
    meta.client_tools = request.client_tools;
    meta.tool_module_qualnames = request.tool_module_qualnames;
    meta.hook_config = request.hook_config;
    meta.parent_conversation_id = request.parent_conversation_id;
    meta.autotitle = request.autotitle;
    meta.launched_agent_profile = launched_agent_profile;
    let new = NewConversation {
        id,
        agent,
        working_dir,
        max_iterations: request.max_iterations.max(1),
        stuck_detection: request.stuck_detection,
        secrets,
        lookup_secrets,
        tags: request.tags,
        meta,
    };
    let live = off_workers(&state, move |state| Ok(state.conversations.create(new)?)).await?;
    state.activity.touch();
    let setup = async {
        if request.confirmation_policy != oh_protocol::ConfirmationPolicy::default() {
            live.conv
                .set_confirmation_policy(request.confirmation_policy)
                .map_err(agent_error)?;
        }
        if request.security_analyzer.is_some() {
            live.conv
                .set_security_analyzer(request.security_analyzer)
                .map_err(agent_error)?;
        }
        if let Some(message) = request.initial_message {
            let message = oh_protocol::Message::new(message.role, message.content);
            let text = message_text(&message);
            live.conv.send_message(message).await.map_err(agent_error)?;
            live.start_run_with(run_slot)?;
            live.autotitle(&text);
        }
        Ok::<_, ApiError>(())
    };
    if let Err(err) = setup.await {
        // A failed create leaves nothing behind: the client retries the whole create, and must
        // not find a half-made conversation.
        if let Err(cleanup) = state.conversations.delete(id).await {
            tracing::warn!(%id, %cleanup, "could not remove a conversation whose create failed");
        }
        return Err(err);
    }
    Ok(json_response(StatusCode::CREATED, &live.info()))
}

/// Static secret values in clear, and lookups (their values are fetched by the agent when a
/// command needs them). Masked header values are dropped, as the reference does.
fn plain_secrets(secrets: BTreeMap<String, SecretSource>) -> ApiResult<PlainSecrets> {
    let mut plain = BTreeMap::new();
    let mut lookups = BTreeMap::new();
    for (name, source) in secrets {
        if !oh_agent::secrets::is_env_name(&name) {
            return Err(ApiError::validation(
                &["body", "secrets", &name],
                "value_error",
                format!("Value error, {name:?} is not a valid secret name"),
                Value::Null,
            ));
        }
        match source {
            SecretSource::Static(s) => {
                if let Some(value) = s.value.filter(|v| !v.is_placeholder()) {
                    plain.insert(name, value.expose().to_owned());
                }
            }
            SecretSource::Lookup(mut lookup) => {
                if lookup.url.trim().is_empty() {
                    return Err(ApiError::validation(
                        &["body", "secrets", &name, "LookupSecret", "url"],
                        "value_error",
                        "Value error, url must not be empty",
                        Value::Null,
                    ));
                }
                lookup.headers.retain(|_, v| !v.is_placeholder());
                lookups.insert(name, lookup);
            }
            _ => {
                return Err(ApiError::validation(
                    &["body", "secrets", &name],
                    "value_error",
                    "Value error, unknown secret source kind",
                    Value::Null,
                ));
            }
        }
    }
    Ok((plain, lookups))
}

/// Static secrets by name in clear, and lookup secrets by name.
type PlainSecrets = (
    BTreeMap<String, String>,
    BTreeMap<String, oh_protocol::agent::LookupSecret>,
);

/// `mkdir -p` the working directory and `git init` it unless it is inside a repository.
async fn prepare_workspace(dir: &PathBuf) -> ApiResult<()> {
    tokio::fs::create_dir_all(dir).await.map_err(|err| {
        ApiError::bad_request(format!(
            "Cannot create the working directory {}: {err}",
            dir.display()
        ))
    })?;
    let inside = tokio::process::Command::new("git")
        .args(["rev-parse", "--is-inside-work-tree"])
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if matches!(inside, Ok(status) if !status.success()) {
        let init = tokio::process::Command::new("git")
            .args(["init", "-q"])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await;
        if !matches!(init, Ok(status) if status.success()) {
            tracing::warn!(dir = %dir.display(), "git init failed in the working directory");
        }
    }
    Ok(())
}

async fn get_one(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> ApiResult<Response> {
    match off_workers(&state, move |state| Ok(state.conversations.info(id)?)).await? {
        Some(info) => Ok(ok(&info)),
        None => Err(ApiError::not_found()),
    }
}

async fn batch_get(State(state): State<AppState>, query: Query) -> ApiResult<Response> {
    let raw = query.all("ids");
    if raw.is_empty() {
        return Err(ApiError::validation(
            &["query", "ids"],
            "missing",
            "Field required",
            Value::Null,
        ));
    }
    if raw.len() >= 100 {
        return Err(ApiError::validation(
            &["query", "ids"],
            "too_long",
            "At most 99 ids per request",
            Value::Null,
        ));
    }
    // Validated like the reference, which also takes it here; our infos carry no skills.
    query.bool("include_skills")?;
    let mut ids = Vec::with_capacity(raw.len());
    for value in raw {
        ids.push(parse_uuid(value).ok_or_else(|| {
            ApiError::validation(
                &["query", "ids"],
                "uuid_parsing",
                "Input should be a valid UUID",
                Value::String(value.to_owned()),
            )
        })?);
    }
    let items = off_workers(&state, move |state| {
        ids.into_iter()
            .map(|id| Ok(state.conversations.info(id)?))
            .collect::<ApiResult<Vec<Option<ConversationInfo>>>>()
    })
    .await?;
    Ok(ok(&items))
}

fn status_filter(query: &Query) -> ApiResult<Option<ExecutionStatus>> {
    query.parse("status", "enum", |raw| {
        serde_json::from_value(Value::String(raw.to_owned())).map_err(|_| {
            "Input should be 'idle', 'running', 'paused', 'waiting_for_confirmation', \
             'finished', 'error', 'stuck' or 'deleting'"
                .to_owned()
        })
    })
}

fn all_infos(
    state: &AppState,
    status: Option<ExecutionStatus>,
) -> ApiResult<Vec<ConversationInfo>> {
    let mut infos = Vec::new();
    for id in state.conversations.ids() {
        if let Some(info) = state.conversations.info(id)?
            && status.is_none_or(|s| info.execution_status == s)
        {
            infos.push(info);
        }
    }
    Ok(infos)
}

async fn search(State(state): State<AppState>, query: Query) -> ApiResult<Response> {
    let limit = query.limit()?;
    let status = status_filter(&query)?;
    let order = query
        .parse("sort_order", "enum", |raw| {
            serde_json::from_value::<ConversationSortOrder>(Value::String(raw.to_owned())).map_err(
                |_| {
                    "Input should be 'CREATED_AT', 'UPDATED_AT', 'CREATED_AT_DESC' or \
                     'UPDATED_AT_DESC'"
                        .to_owned()
                },
            )
        })?
        .unwrap_or_default();
    query.bool("include_skills")?;
    let page_id = query.get("page_id").map(str::to_owned);
    let _turn = state.conversations.listing_turn().await;
    let page = off_workers(&state, move |state| {
        let mut infos = all_infos(state, status)?;
        infos.sort_by(|a, b| match order {
            ConversationSortOrder::CreatedAt => a.created_at.cmp(&b.created_at),
            ConversationSortOrder::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            ConversationSortOrder::UpdatedAtDesc => b.updated_at.cmp(&a.updated_at),
            _ => b.created_at.cmp(&a.created_at),
        });
        let start = page_id
            .and_then(|page| {
                infos
                    .iter()
                    .position(|info| info.id.simple().to_string() == page)
            })
            .unwrap_or(0);
        let rest: Vec<ConversationInfo> = infos.into_iter().skip(start).collect();
        let next_page_id = rest.get(limit).map(|info| info.id.simple().to_string());
        let items = rest.into_iter().take(limit).collect();
        Ok(ConversationPage {
            items,
            next_page_id,
        })
    })
    .await?;
    Ok(ok(&page))
}

async fn count(State(state): State<AppState>, query: Query) -> ApiResult<Response> {
    let status = status_filter(&query)?;
    let n = match status {
        None => state.conversations.ids().len(),
        Some(_) => {
            let _turn = state.conversations.listing_turn().await;
            off_workers(&state, move |state| Ok(all_infos(state, status)?.len())).await?
        }
    };
    Ok(ok(&n))
}

async fn delete(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> ApiResult<Response> {
    if state.conversations.delete(id).await? {
        crate::runtime::forget(&state, id);
        Ok(ok(&Success::TRUE))
    } else {
        Err(ApiError::not_found())
    }
}

async fn update(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<UpdateConversationRequest>,
) -> ApiResult<Response> {
    if let Some(title) = &body.title {
        let len = title.chars().count();
        if title.trim().is_empty() || len > 200 {
            return Err(ApiError::validation(
                &["body", "title"],
                "value_error",
                "Value error, title must be 1 to 200 characters and not blank",
                Value::String(title.clone()),
            ));
        }
    }
    if let Some(tags) = &body.tags
        && let Some(err) = tag_error(tags)
    {
        return Err(err);
    }
    let Some(live) = live(&state, id).await? else {
        return Err(ApiError::not_found());
    };
    if let Some(tags) = body.tags {
        live.conv.set_tags(tags).map_err(agent_error)?;
    }
    {
        let mut meta = live
            .meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(title) = body.title {
            meta.title = Some(title);
        }
        meta.updated_at = utc_now();
    }
    live.save_meta().await;
    Ok(ok(&Success::TRUE))
}

async fn run(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> ApiResult<Response> {
    let live = live_or(&state, id, "Not Found").await?;
    live.start_run()?;
    state.activity.touch();
    Ok(ok(&Success::TRUE))
}

async fn pause(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> ApiResult<Response> {
    let live = live_or_not_found(&state, id)?;
    live.conv.pause().map_err(agent_error)?;
    if !live.is_running() {
        live.conv.flush().await;
        live.publish_full_state();
    }
    Ok(ok(&Success::TRUE))
}

async fn interrupt(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> ApiResult<Response> {
    let live = live_or_not_found(&state, id)?;
    live.conv.interrupt().map_err(agent_error)?;
    live.wait_run(Duration::from_secs(5)).await;
    if !live.is_running() {
        live.conv.flush().await;
        live.publish_full_state();
    }
    Ok(ok(&Success::TRUE))
}

async fn secrets(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<UpdateSecretsRequest>,
) -> ApiResult<Response> {
    let (secrets, lookups) = plain_secrets(body.secrets)?;
    let live = live_or(&state, id, "Not Found").await?;
    live.update_secrets(secrets, lookups).await?;
    Ok(ok(&Success::TRUE))
}

async fn confirmation_policy(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<SetConfirmationPolicyRequest>,
) -> ApiResult<Response> {
    let live = live_or(&state, id, "Not Found").await?;
    live.conv
        .set_confirmation_policy(body.policy)
        .map_err(agent_error)?;
    Ok(ok(&Success::TRUE))
}

async fn security_analyzer(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    if body.is_object() && body.get("security_analyzer").is_none() {
        return Err(ApiError::validation(
            &["body", "security_analyzer"],
            "missing",
            "Field required",
            body,
        ));
    }
    let body: SetSecurityAnalyzerRequest = crate::extract::parse_json(body.to_string().as_bytes())?;
    let live = live_or(&state, id, "Not Found").await?;
    live.conv
        .set_security_analyzer(body.security_analyzer)
        .map_err(agent_error)?;
    Ok(ok(&Success::TRUE))
}

async fn condense(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> ApiResult<Response> {
    let live = live_or(&state, id, "Conversation not found").await?;
    if live.conv.condenser().is_none() {
        return Err(ApiError::conflict(
            "Cannot condense conversation: No condenser configured",
        ));
    }
    live.conv.condense().await.map_err(agent_error)?;
    Ok(ok(&Success::TRUE))
}

/// `POST …/ask_agent`: a side question to the agent's LLM; nothing is recorded.
async fn ask_agent(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<oh_protocol::api::AskAgentRequest>,
) -> ApiResult<Response> {
    let live = live_or(&state, id, "Conversation not found").await?;
    let response = live
        .conv
        .ask_agent(&body.question)
        .await
        .map_err(|e| match e {
            // The model failed or said nothing: the server is fine, its upstream is not.
            oh_agent::conversation::Error::Llm(_) | oh_agent::conversation::Error::NoAnswer => {
                ApiError::new(StatusCode::BAD_GATEWAY, format!("ask_agent: {e}"))
            }
            other => agent_error(other),
        })?;
    Ok(ok(&oh_protocol::api::AskAgentResponse { response }))
}

/// `POST …/load_plugin`: loads a plugin from the marketplaces registered in the agent's
/// context and adds its skills to that context (kept with the conversation). 404 for an
/// unknown conversation, plugin or marketplace; 400 for the rest (a malformed reference,
/// no marketplaces, a source that cannot be fetched, an invalid manifest, and a plugin with
/// MCP servers, hooks or sub-agents, which this server does not run: `unsupported` lists
/// them).
async fn load_plugin(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<Value>,
) -> ApiResult<Response> {
    use oh_agent::plugin::PluginError;
    // `plugin_ref` is the body's only field (FastAPI's embedded `Body`): errors name it.
    let plugin_ref = match body.get("plugin_ref") {
        Some(Value::String(s)) => s.clone(),
        None => {
            return Err(ApiError::validation(
                &["body", "plugin_ref"],
                "missing",
                "Field required",
                Value::Null,
            ));
        }
        Some(other) => {
            return Err(ApiError::validation(
                &["body", "plugin_ref"],
                "string_type",
                "Input should be a valid string",
                other.clone(),
            ));
        }
    };
    let live = live_or(&state, id, "Not Found").await?;
    let _one_at_a_time = live.plugin_gate.lock().await;
    let cache = state.settings.dir().join("cache").join("plugins");
    let context = live.conv.agent_context();
    let loaded = oh_agent::plugin::load_plugin(context.as_ref(), &plugin_ref, &cache)
        .await
        .map_err(|e| {
            let detail = e.to_string();
            match e {
                e if e.is_not_found() => ApiError::new(StatusCode::NOT_FOUND, detail),
                PluginError::Unsupported { features, .. } => ApiError::bad_request(detail)
                    .with_field("unsupported", serde_json::json!(features)),
                _ => ApiError::bad_request(detail),
            }
        })?;
    live.set_agent_context(loaded.agent_context).await?;
    Ok(ok(&Success::TRUE))
}

/// `GET …/runtime` and `POST …/runtime/reprovision`: a conversation of this server always
/// has its in-process runtime (`available`, resumable); there is nothing to provision.
async fn runtime_info(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> ApiResult<Response> {
    let known = off_workers(&state, move |state| Ok(state.conversations.exists(id))).await?;
    if !known {
        return Err(ApiError::not_found());
    }
    Ok(ok(&serde_json::json!({
        "runtime_status": oh_protocol::api::ConversationRuntimeStatus::Available,
        "can_resume": true,
        "runtime_error": null,
    })))
}

/// `POST …/fork`: 201 with the fork's info; 404 unknown source or `from_event_id`, 409 an
/// id in use. The body may be absent (all defaults).
async fn fork(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<Option<oh_protocol::api::ForkConversationRequest>>,
) -> ApiResult<Response> {
    let request = match body {
        Some(request) => request,
        None => oh_protocol::api::ForkConversationRequest {
            id: None,
            title: None,
            tags: None,
            reset_metrics: true,
            from_event_id: None,
        },
    };
    if request
        .title
        .as_ref()
        .is_some_and(|t| t.chars().count() > 200)
    {
        return Err(ApiError::validation(
            &["body", "title"],
            "string_too_long",
            "String should have at most 200 characters",
            Value::Null,
        ));
    }
    let forked = off_workers(&state, move |state| {
        Ok(state.conversations.fork(id, &request)?)
    })
    .await?
    .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "Source conversation not found"))?;
    Ok(json_response(StatusCode::CREATED, &forked.info()))
}

/// `POST …/navigate`: moves the conversation's HEAD to an event of its log (or to the empty
/// tree with `event_id: null`) and answers with its info; 404 for an unknown conversation or
/// event. Nothing is removed and no event is recorded; a step in progress ends first.
async fn navigate(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
    Json(body): Json<oh_protocol::api::NavigateConversationRequest>,
) -> ApiResult<Response> {
    let live = live_or(&state, id, "Conversation not found").await?;
    live.conv
        .navigate_to(body.event_id.as_deref())
        .await
        .map_err(|e| match e {
            oh_agent::conversation::Error::UnknownEvent(_) => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            other => agent_error(other),
        })?;
    Ok(ok(&live.info()))
}

async fn final_response(
    State(state): State<AppState>,
    ConversationId(id): ConversationId,
) -> ApiResult<Response> {
    let live = live_or(&state, id, "Not Found").await?;
    // Only the active branch counts: an answer on a branch left by `navigate` is not it.
    let response = live.conv.with_active_branch(|events| {
        events
            .iter()
            .rev()
            .find_map(|event| match event {
                Event::Action(action) => match &action.action {
                    Some(Action::Finish(finish)) => Some(finish.message.clone()),
                    _ => None,
                },
                Event::Message(message) if message.base.source == oh_protocol::Source::Agent => {
                    Some(
                        message
                            .llm_message
                            .content
                            .iter()
                            .filter_map(|c| c.as_text())
                            .collect::<String>(),
                    )
                }
                _ => None,
            })
            .unwrap_or_default()
    });
    Ok(ok(&AgentResponseResult { response }))
}

/// The text parts of a message, joined.
pub(crate) fn message_text(message: &oh_protocol::Message) -> String {
    message
        .content
        .iter()
        .filter_map(oh_protocol::Content::as_text)
        .collect::<Vec<_>>()
        .join("\n")
}
