//! REST models of the conversation and event routes (`openhands.agent_server.models`).
//!
//! Responses are written in the full form (null fields present), as FastAPI does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::agent::{AgentBase, ConfirmationPolicy, SecretSource, SecurityAnalyzer, WorkspaceSpec};
use crate::event::Event;
use crate::message::{Content, Role, content_list};
use crate::state::{
    ConversationStats, ExecutionStatus, MetricsSnapshot, SecretRegistry, default_max_iterations,
};
use crate::wire::{omit_none, yes};

/// Runtime availability of a conversation (`ConversationRuntimeStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConversationRuntimeStatus {
    /// The runtime is up.
    Available,
    /// It is starting.
    Starting,
    /// It is gone.
    Missing,
    /// Another process owns the conversation.
    OwnershipLost,
    /// It failed.
    Error,
}

/// Why a runtime is unavailable (`ConversationRuntimeError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRuntimeError {
    /// Machine-readable code.
    pub code: String,
    /// Human-readable message.
    pub message: String,
}

/// Runtime facts of a conversation (`ConversationRuntimeInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRuntimeInfo {
    /// Status.
    pub runtime_status: ConversationRuntimeStatus,
    /// The conversation can be resumed.
    pub can_resume: bool,
    /// Error details.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub runtime_error: Option<ConversationRuntimeError>,
}

/// A conversation as the REST API shows it (`ConversationInfo`).
///
/// The agent's secret fields are null here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationInfo {
    /// Conversation id, written dashed.
    pub id: uuid::Uuid,
    /// The workspace.
    pub workspace: WorkspaceSpec,
    /// `<conversations_path>/<id as 32 hex>`.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub persistence_dir: Option<String>,
    /// Steps per run.
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u64,
    /// Stuck detection on.
    #[serde(default = "yes")]
    pub stuck_detection: bool,
    /// Status.
    #[serde(default)]
    pub execution_status: ExecutionStatus,
    /// Confirmation policy.
    #[serde(default)]
    pub confirmation_policy: ConfirmationPolicy,
    /// Security analyzer.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub security_analyzer: Option<SecurityAnalyzer>,
    /// Knowledge skills activated so far.
    #[serde(default)]
    pub activated_knowledge_skills: Vec<String>,
    /// Skills invoked so far.
    #[serde(default)]
    pub invoked_skills: Vec<String>,
    /// Hook-blocked action id → reason.
    #[serde(default)]
    pub blocked_actions: BTreeMap<String, String>,
    /// Hook-blocked message id → reason.
    #[serde(default)]
    pub blocked_messages: BTreeMap<String, String>,
    /// Last user message.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub last_user_message_id: Option<String>,
    /// HEAD of the event tree.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub leaf_event_id: Option<String>,
    /// Usage, full form.
    #[serde(default)]
    pub stats: ConversationStats,
    /// Secret names and sources (static values null).
    #[serde(default)]
    pub secret_registry: SecretRegistry,
    /// Agent-specific runtime state.
    #[serde(default)]
    pub agent_state: serde_json::Map<String, serde_json::Value>,
    /// Shell hooks.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub hook_config: Option<serde_json::Value>,
    /// Title.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub title: Option<String>,
    /// Legacy; null in practice.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub metrics: Option<MetricsSnapshot>,
    /// UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub created_at: String,
    /// UTC, same format.
    pub updated_at: String,
    /// Source of a fork.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub forked_from_conversation_id: Option<uuid::Uuid>,
    /// Event a fork started from.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub forked_from_event_id: Option<String>,
    /// Parent of a child conversation.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub parent_conversation_id: Option<uuid::Uuid>,
    /// Children.
    #[serde(default)]
    pub sub_conversation_ids: Vec<uuid::Uuid>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// ACP model in use.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub current_model_id: Option<String>,
    /// ACP models.
    #[serde(default)]
    pub available_models: Vec<serde_json::Value>,
    /// ACP model switching supported.
    #[serde(default)]
    pub supports_runtime_model_switch: bool,
    /// Agent profile used at launch.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub launched_agent_profile: Option<serde_json::Value>,
    /// The agent (secrets null).
    pub agent: AgentBase,
    /// Tools executed by the client.
    #[serde(default)]
    pub client_tools: Vec<serde_json::Value>,
    /// Tool name → Python module the client registered it from.
    #[serde(default)]
    pub tool_module_qualnames: BTreeMap<String, String>,
    /// Runtime facts.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub runtime_info: Option<ConversationRuntimeInfo>,
}

/// A page of conversations (`ConversationPage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationPage {
    /// The conversations.
    pub items: Vec<ConversationInfo>,
    /// Hex id of the first conversation of the next page.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub next_page_id: Option<String>,
}

/// A page of events (`EventPage`); the events themselves are in the compact form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    /// The events, in storage order (or reversed).
    pub items: Vec<Event>,
    /// Id of the first event of the next page.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub next_page_id: Option<String>,
}

/// Sort orders of `GET /api/conversations/search`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ConversationSortOrder {
    /// Oldest first.
    CreatedAt,
    /// Least recently updated first.
    UpdatedAt,
    /// Newest first (the default).
    #[default]
    CreatedAtDesc,
    /// Most recently updated first.
    UpdatedAtDesc,
}

/// Sort orders of event searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum EventSortOrder {
    /// Storage order.
    #[default]
    Timestamp,
    /// Reverse storage order.
    TimestampDesc,
}

/// A message sent to a conversation (`SendMessageRequest`); also `initial_message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessageRequest {
    /// Only `user` is accepted by the reference.
    #[serde(default = "user")]
    pub role: Role,
    /// Content parts (a plain string is accepted on input).
    #[serde(default, deserialize_with = "content_list")]
    pub content: Vec<Content>,
    /// Start a run afterwards.
    #[serde(default)]
    pub run: bool,
}

fn user() -> Role {
    Role::User
}

impl SendMessageRequest {
    /// A user message with one text part.
    pub fn text(text: impl Into<String>, run: bool) -> Self {
        Self {
            role: Role::User,
            content: vec![Content::text(text)],
            run,
        }
    }
}

/// Body of `POST /api/conversations` (`StartConversationRequest`).
///
/// Unknown keys are ignored. Nested structures this crate does not interpret yet (plugins,
/// hooks, sub-agent definitions, client tools, container options) are kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartConversationRequest {
    /// Where the agent works.
    pub workspace: WorkspaceSpec,
    /// Work in a git worktree.
    #[serde(default)]
    pub worktree: bool,
    /// Worktree options.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub worktree_options: Option<serde_json::Value>,
    /// Client-chosen id; an existing id makes the call idempotent.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub conversation_id: Option<uuid::Uuid>,
    /// Parent conversation.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub parent_conversation_id: Option<uuid::Uuid>,
    /// Confirmation policy.
    #[serde(default)]
    pub confirmation_policy: ConfirmationPolicy,
    /// Security analyzer.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub security_analyzer: Option<SecurityAnalyzer>,
    /// First message (always run).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub initial_message: Option<SendMessageRequest>,
    /// Steps per run.
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u64,
    /// Stuck detection on.
    #[serde(default = "yes")]
    pub stuck_detection: bool,
    /// Secrets by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Secret values in `agent` are tokens issued by this server.
    #[serde(default)]
    pub secrets_encrypted: bool,
    /// Tool name → Python module (which tools the client expects).
    #[serde(default)]
    pub tool_module_qualnames: BTreeMap<String, String>,
    /// Tools executed by the client.
    #[serde(default)]
    pub client_tools: Vec<serde_json::Value>,
    /// Appended to the system prompt suffix.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub agent_launch_additions: Option<serde_json::Value>,
    /// Sub-agent definitions.
    #[serde(default)]
    pub agent_definitions: Vec<serde_json::Value>,
    /// Plugins to load.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub plugins: Option<Vec<serde_json::Value>>,
    /// Shell hooks.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub hook_config: Option<serde_json::Value>,
    /// Tags; keys `^[a-z0-9]+$`, values ≤ 256 characters.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Observability user id.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub user_id: Option<String>,
    /// Observability metadata.
    #[serde(default)]
    pub observability_metadata: serde_json::Map<String, serde_json::Value>,
    /// Observability tags.
    #[serde(default)]
    pub observability_tags: Vec<String>,
    /// Observability span name.
    #[serde(default = "conversation")]
    pub observability_span_name: String,
    /// Parent span context.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub observability_parent_span_context: Option<String>,
    /// Generate a title from the first message.
    #[serde(default = "yes")]
    pub autotitle: bool,
    /// LLM profile for titles.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub title_llm_profile: Option<String>,
    /// A first prompt.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub prompt: Option<String>,
    /// Agent settings to build the agent from.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub agent_settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// Stored agent profile to use.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub agent_profile_id: Option<uuid::Uuid>,
    /// The agent (one of `agent`, `agent_settings`, `agent_profile_id` is required).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub agent: Option<AgentBase>,
    /// `local` or `docker`.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub conversation_runtime: Option<String>,
    /// Container options.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub container: Option<serde_json::Value>,
}

fn conversation() -> String {
    "conversation".to_owned()
}

impl StartConversationRequest {
    /// A request for `agent` in `workspace` with the reference's defaults otherwise.
    pub fn new(agent: impl Into<AgentBase>, workspace: WorkspaceSpec) -> Self {
        Self {
            workspace,
            worktree: false,
            worktree_options: None,
            conversation_id: None,
            parent_conversation_id: None,
            confirmation_policy: ConfirmationPolicy::default(),
            security_analyzer: None,
            initial_message: None,
            max_iterations: default_max_iterations(),
            stuck_detection: true,
            secrets: BTreeMap::new(),
            secrets_encrypted: false,
            tool_module_qualnames: BTreeMap::new(),
            client_tools: Vec::new(),
            agent_launch_additions: None,
            agent_definitions: Vec::new(),
            plugins: None,
            hook_config: None,
            tags: BTreeMap::new(),
            user_id: None,
            observability_metadata: serde_json::Map::new(),
            observability_tags: Vec::new(),
            observability_span_name: conversation(),
            observability_parent_span_context: None,
            autotitle: true,
            title_llm_profile: None,
            prompt: None,
            agent_settings: None,
            agent_profile_id: None,
            agent: Some(agent.into()),
            conversation_runtime: None,
            container: None,
        }
    }
}

/// `{"success": true}` (`Success`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Success {
    /// Whether the operation took effect.
    #[serde(default = "yes")]
    pub success: bool,
}

impl Success {
    /// `{"success": true}`.
    pub const TRUE: Self = Self { success: true };
}

/// Body of `POST …/events/respond_to_confirmation` (`ConfirmationResponseRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmationResponseRequest {
    /// Run the pending actions (true) or reject them.
    pub accept: bool,
    /// Rejection reason.
    #[serde(default = "default_reject_reason")]
    pub reason: String,
}

fn default_reject_reason() -> String {
    "User rejected the action.".to_owned()
}

/// Body of `POST …/secrets` (`UpdateSecretsRequest`); values may be plain strings on input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateSecretsRequest {
    /// Secrets by name.
    pub secrets: BTreeMap<String, SecretSource>,
}

/// Body of `POST …/confirmation_policy` (`SetConfirmationPolicyRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetConfirmationPolicyRequest {
    /// The new policy.
    pub policy: ConfirmationPolicy,
}

/// Body of `POST …/security_analyzer` (`SetSecurityAnalyzerRequest`); the key is required,
/// `null` clears the analyzer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetSecurityAnalyzerRequest {
    /// The new analyzer.
    pub security_analyzer: Option<SecurityAnalyzer>,
}

/// Body of `PATCH /api/conversations/{id}` (`UpdateConversationRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UpdateConversationRequest {
    /// New title (1–200 characters).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub title: Option<String>,
    /// New tags, replacing all tags.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub tags: Option<BTreeMap<String, String>>,
}

/// Body of `POST …/fork` (`ForkConversationRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkConversationRequest {
    /// Id of the fork.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub id: Option<uuid::Uuid>,
    /// Title of the fork.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub title: Option<String>,
    /// Tags of the fork (default: the source's).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub tags: Option<BTreeMap<String, String>>,
    /// Start with fresh stats.
    #[serde(default = "yes")]
    pub reset_metrics: bool,
    /// Copy the branch up to this event only.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub from_event_id: Option<String>,
}

/// Body of `POST …/navigate` (`NavigateConversationRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NavigateConversationRequest {
    /// New HEAD; null for an empty tree.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub event_id: Option<String>,
}

/// Body of `POST …/ask_agent` (`AskAgentRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskAgentRequest {
    /// The question.
    pub question: String,
}

/// Response of `POST …/ask_agent` (`AskAgentResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskAgentResponse {
    /// The LLM's answer.
    pub response: String,
}

/// Response of `GET …/agent_final_response` (`AgentResponseResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentResponseResult {
    /// Text of the last `finish` or agent message; empty if none.
    pub response: String,
}

/// A skill as `POST /api/skills` lists it (`SkillInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillInfo {
    /// Unique name.
    pub name: String,
    /// `repo` (always active), `knowledge` (triggered) or `agentskills` (a `SKILL.md`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text the model gets.
    pub content: String,
    /// Trigger keywords (none for repo skills and path rules).
    #[serde(default)]
    pub triggers: Vec<String>,
    /// The file it came from; `null` for skills built in code.
    #[serde(default)]
    pub source: Option<String>,
    /// Short description.
    #[serde(default)]
    pub description: Option<String>,
    /// Read from a `SKILL.md`.
    #[serde(default)]
    pub is_agentskills_format: bool,
    /// Only its trigger activates it.
    #[serde(default)]
    pub disable_model_invocation: bool,
}

/// An exposed URL of a sandbox (`ExposedUrl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposedUrl {
    /// Its name (`WORKER_1`, …).
    pub name: String,
    /// The URL.
    pub url: String,
    /// The port.
    pub port: u16,
}

/// Sandbox facts that become skills (`SandboxConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// Exposed URLs; the `WORKER_*` ones become the `work_hosts` skill.
    #[serde(default)]
    pub exposed_urls: Vec<ExposedUrl>,
}

/// An organization's skills repository (`OrgConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgConfig {
    /// `owner/repo`.
    pub repository: String,
    /// `github`, `gitlab`, `azure` or `bitbucket`.
    pub provider: String,
    /// A git URL with credentials in it.
    pub org_repo_url: String,
    /// The organization.
    pub org_name: String,
}

/// Body of `POST /api/skills` (`SkillsRequest`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkillsRequest {
    /// The public skills (OpenHands/extensions).
    #[serde(default = "yes")]
    pub load_public: bool,
    /// The user's skills (`~/.agents/skills`, `~/.openhands/skills`, `…/microagents`).
    #[serde(default = "yes")]
    pub load_user: bool,
    /// The project's skills in `project_dir`.
    #[serde(default = "yes")]
    pub load_project: bool,
    /// Organization skills from `org_configs`.
    #[serde(default = "yes")]
    pub load_org: bool,
    /// Marketplace file of the public skills.
    #[serde(default = "default_marketplace_path")]
    pub marketplace_path: Option<String>,
    /// Marketplace registrations (kept as JSON).
    #[serde(default)]
    pub registered_marketplaces: Vec<serde_json::Value>,
    /// The project directory.
    #[serde(default)]
    pub project_dir: Option<String>,
    /// Organization repositories.
    #[serde(default)]
    pub org_configs: Option<Vec<OrgConfig>>,
    /// Sandbox facts.
    #[serde(default)]
    pub sandbox_config: Option<SandboxConfig>,
}

fn default_marketplace_path() -> Option<String> {
    Some("marketplaces/default.json".to_owned())
}

/// Answer of `POST /api/skills` (`SkillsResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillsResponse {
    /// The merged skills.
    pub skills: Vec<SkillInfo>,
    /// Skills found per source (`sandbox`, `registered_marketplaces`, `sdk_base`, `org`,
    /// `project`).
    #[serde(default)]
    pub sources: BTreeMap<String, usize>,
}
