//! Conversation events (`openhands.sdk.event`), discriminated by `kind`.
//!
//! Every event carries [`EventBase`] (`id`, `timestamp`, `source`, `parent_id`). On the wire
//! events are always written in the compact form (unset fields left out), as the reference
//! server writes them to sockets, REST pages and disk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::{Message, MessageToolCall, ReasoningItemModel, TextContent, ThinkingBlock};
use crate::tagged::{Unknown, tagged_union};
use crate::tool::{Action, Observation, ToolDefinition};
use crate::wire::omit_none;

/// A function called with every event of a conversation, once per event, in order (Python's
/// `ConversationCallbackType`). The one callback type of local conversations (`oh-agent`),
/// remote ones (`oh-client`) and the `openhands` facade, so a list of callbacks works with
/// each. Not a wire type: it lives here because this is the lowest crate all of them share.
pub type Callback = std::sync::Arc<dyn Fn(&Event) + Send + Sync>;

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Source {
    /// The agent (LLM replies, actions, tool-level errors).
    Agent,
    /// The user (messages, pause, interrupt).
    User,
    /// The environment (observations, state updates, run-level errors).
    Environment,
    /// A configured hook.
    Hook,
}

/// The fields every event has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBase {
    /// Unique id; the reference uses dashed UUIDv4 strings. Never `"__root__"`.
    pub id: String,
    /// Naive local time, `YYYY-MM-DDTHH:MM:SS.ffffff`; clients sort events by this string.
    pub timestamp: String,
    /// Who produced the event.
    pub source: Source,
    /// Parent in the conversation tree; absent for the first event.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub parent_id: Option<String>,
}

impl EventBase {
    /// Id of a tree root created by navigating to an empty HEAD.
    pub const ROOT_PARENT: &'static str = "__root__";

    /// A new header with a fresh UUIDv4 id and the given timestamp.
    pub fn new(source: Source, timestamp: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: timestamp.into(),
            source,
            parent_id: None,
        }
    }
}

/// Any event. Unknown kinds decode to [`Event::Unknown`] with their JSON kept.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The system prompt and tools, emitted when the agent initializes.
    SystemPrompt(SystemPromptEvent),
    /// A user message or an agent text reply.
    Message(MessageEvent),
    /// One tool call of an LLM response.
    Action(ActionEvent),
    /// A tool result.
    Observation(ObservationEvent),
    /// A pending action the user (or a hook) rejected.
    UserRejectObservation(UserRejectObservation),
    /// A tool call that failed before or while running.
    AgentError(AgentErrorEvent),
    /// A state field changed, or a full snapshot (`key: "full_state"`).
    ConversationStateUpdate(ConversationStateUpdateEvent),
    /// A run failed; the status becomes `error`.
    ConversationError(ConversationErrorEvent),
    /// The conversation was paused.
    Pause(PauseEvent),
    /// The conversation was interrupted.
    Interrupt(InterruptEvent),
    /// The history should be condensed.
    CondensationRequest(CondensationRequest),
    /// The condenser forgot events and maybe wrote a summary.
    Condensation(Condensation),
    /// A condensation summary as the LLM sees it.
    CondensationSummary(CondensationSummaryEvent),
    /// A configured hook ran.
    HookExecution(HookExecutionEvent),
    /// A raw LLM completion log.
    LlmCompletionLog(LlmCompletionLogEvent),
    /// A security analyzer assessed actions.
    SecurityAnalysis(SecurityAnalysisEvent),
    /// Streamed token deltas (never persisted).
    StreamingDelta(StreamingDeltaEvent),
    /// Token ids of a completion.
    Token(TokenEvent),
    /// A tool call of an external (ACP) agent.
    AcpToolCall(AcpToolCallEvent),
    /// A WebSocket frame from the client could not be processed (agent-server only).
    ServerError(ServerErrorEvent),
    /// A kind this crate does not know, kept verbatim.
    Unknown(Unknown),
}

tagged_union! { Event, tag = "kind", form = compact;
    SystemPrompt(SystemPromptEvent) = "SystemPromptEvent",
    Message(MessageEvent) = "MessageEvent",
    Action(ActionEvent) = "ActionEvent",
    Observation(ObservationEvent) = "ObservationEvent",
    UserRejectObservation(UserRejectObservation) = "UserRejectObservation",
    AgentError(AgentErrorEvent) = "AgentErrorEvent",
    ConversationStateUpdate(ConversationStateUpdateEvent) = "ConversationStateUpdateEvent",
    ConversationError(ConversationErrorEvent) = "ConversationErrorEvent",
    Pause(PauseEvent) = "PauseEvent",
    Interrupt(InterruptEvent) = "InterruptEvent",
    CondensationRequest(CondensationRequest) = "CondensationRequest",
    Condensation(Condensation) = "Condensation",
    CondensationSummary(CondensationSummaryEvent) = "CondensationSummaryEvent",
    HookExecution(HookExecutionEvent) = "HookExecutionEvent",
    LlmCompletionLog(LlmCompletionLogEvent) = "LLMCompletionLogEvent",
    SecurityAnalysis(SecurityAnalysisEvent) = "SecurityAnalysisEvent",
    StreamingDelta(StreamingDeltaEvent) = "StreamingDeltaEvent",
    Token(TokenEvent) = "TokenEvent",
    AcpToolCall(AcpToolCallEvent) = "ACPToolCallEvent",
    ServerError(ServerErrorEvent) = "ServerErrorEvent",
}

impl Event {
    /// The common fields, or `None` for an unknown kind.
    pub fn base(&self) -> Option<&EventBase> {
        Some(match self {
            Self::SystemPrompt(e) => &e.base,
            Self::Message(e) => &e.base,
            Self::Action(e) => &e.base,
            Self::Observation(e) => &e.base,
            Self::UserRejectObservation(e) => &e.base,
            Self::AgentError(e) => &e.base,
            Self::ConversationStateUpdate(e) => &e.base,
            Self::ConversationError(e) => &e.base,
            Self::Pause(e) => &e.base,
            Self::Interrupt(e) => &e.base,
            Self::CondensationRequest(e) => &e.base,
            Self::Condensation(e) => &e.base,
            Self::CondensationSummary(e) => &e.base,
            Self::HookExecution(e) => &e.base,
            Self::LlmCompletionLog(e) => &e.base,
            Self::SecurityAnalysis(e) => &e.base,
            Self::StreamingDelta(e) => &e.base,
            Self::Token(e) => &e.base,
            Self::AcpToolCall(e) => &e.base,
            Self::ServerError(e) => &e.base,
            Self::Unknown(_) => return None,
        })
    }

    /// The event id (also for unknown kinds, if they carry a string `id`).
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::Unknown(u) => u.tag("id"),
            known => known.base().map(|b| b.id.as_str()),
        }
    }

    /// The timestamp (also for unknown kinds, if they carry a string `timestamp`).
    pub fn timestamp(&self) -> Option<&str> {
        match self {
            Self::Unknown(u) => u.tag("timestamp"),
            known => known.base().map(|b| b.timestamp.as_str()),
        }
    }
}

/// The system prompt and the tools offered to the LLM (`SystemPromptEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemPromptEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// The static system prompt.
    pub system_prompt: TextContent,
    /// The tools, for the record.
    #[serde(default)]
    pub tools: Vec<ToolDefinition>,
    /// Per-conversation context (secret names, runtime facts).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub dynamic_context: Option<TextContent>,
}

/// Result of a critic model on a message or action (`CriticResult`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriticResult {
    /// Score.
    pub score: f64,
    /// Explanation.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub message: Option<String>,
    /// Free-form details.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A message of the user, or a text reply of the agent (`MessageEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// The message.
    pub llm_message: Message,
    /// Id of the LLM response (agent messages).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub llm_response_id: Option<String>,
    /// Skills whose triggers matched this message.
    #[serde(default)]
    pub activated_skills: Vec<String>,
    /// Extra content appended when sent to the LLM (skill texts).
    #[serde(default)]
    pub extended_content: Vec<TextContent>,
    /// Name of the sending agent, for multi-agent setups.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub sender: Option<String>,
    /// Critic verdict.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub critic_result: Option<CriticResult>,
}

/// Risk of an action as assessed by the LLM or an analyzer (`SecurityRisk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[non_exhaustive]
pub enum SecurityRisk {
    /// Not assessed.
    #[default]
    Unknown,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// One tool call of an LLM response (`ActionEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// The model's text before the call (only on the first call of a response).
    #[serde(default)]
    pub thought: Vec<TextContent>,
    /// Reasoning text.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub reasoning_content: Option<String>,
    /// Thinking blocks.
    #[serde(default)]
    pub thinking_blocks: Vec<ThinkingBlock>,
    /// Responses API reasoning item.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub responses_reasoning_item: Option<ReasoningItemModel>,
    /// The validated action; absent when the call could not be turned into one.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub action: Option<Action>,
    /// Tool name.
    pub tool_name: String,
    /// Provider call id.
    pub tool_call_id: String,
    /// The call as the model made it.
    pub tool_call: MessageToolCall,
    /// Id of the LLM response; shared by parallel calls.
    pub llm_response_id: String,
    /// Assessed risk.
    #[serde(default)]
    pub security_risk: SecurityRisk,
    /// Critic verdict.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub critic_result: Option<CriticResult>,
    /// Short description of the call.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub summary: Option<String>,
}

/// A tool result (`ObservationEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Tool name.
    pub tool_name: String,
    /// The call this answers.
    pub tool_call_id: String,
    /// The result.
    pub observation: Observation,
    /// Id of the [`ActionEvent`].
    pub action_id: String,
    /// Extra content appended when sent to the LLM.
    #[serde(default)]
    pub extended_content: Vec<TextContent>,
}

/// Who rejected an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RejectionSource {
    /// The user.
    #[default]
    User,
    /// A PreToolUse hook.
    Hook,
}

/// A pending action that was rejected (`UserRejectObservation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRejectObservation {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Tool name.
    pub tool_name: String,
    /// The call this answers.
    pub tool_call_id: String,
    /// Why.
    #[serde(default = "default_rejection_reason")]
    pub rejection_reason: String,
    /// Who rejected it.
    #[serde(default)]
    pub rejection_source: RejectionSource,
    /// Id of the rejected [`ActionEvent`].
    pub action_id: String,
}

fn default_rejection_reason() -> String {
    "User rejected the action".to_owned()
}

/// Failure categories (`FailureKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// Bad or expired credentials.
    Auth,
    /// Budget or quota exhausted.
    Quota,
    /// Rate limited.
    RateLimit,
    /// Misconfiguration.
    Config,
    /// A transient failure.
    Transient,
    /// The agent made a correctable mistake.
    AgentAction,
    /// An internal failure.
    Internal,
    /// Unclassified.
    Unknown,
}

/// What the user should do about a failure (`FailureAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UserAction {
    /// Nothing.
    #[default]
    None,
    /// Retry.
    Retry,
    /// Change settings.
    Settings,
}

/// Classification of an error (`ErrorClassification`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorClassification {
    /// Category.
    pub kind: FailureKind,
    /// Retrying may help.
    pub retryable: bool,
    /// What the user should do.
    #[serde(default)]
    pub user_action: UserAction,
    /// Correlation id.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub error_id: Option<String>,
}

/// A tool call that failed (`AgentErrorEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentErrorEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Tool name.
    pub tool_name: String,
    /// The call this answers.
    pub tool_call_id: String,
    /// The error text shown to the LLM.
    pub error: String,
    /// Classification.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub classification: Option<ErrorClassification>,
}

/// A state field changed (`ConversationStateUpdateEvent`).
///
/// `key: "full_state"` carries a whole [`ConversationState`](crate::ConversationState) snapshot
/// (compact form); other keys carry the new value of that field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationStateUpdateEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// The field, or `full_state`.
    pub key: String,
    /// The new value, as JSON.
    #[serde(default)]
    pub value: serde_json::Value,
}

impl ConversationStateUpdateEvent {
    /// Key of snapshot updates.
    pub const FULL_STATE: &'static str = "full_state";

    /// Decodes the snapshot of a `full_state` update; `None` for other keys.
    pub fn full_state(&self) -> Option<serde_json::Result<crate::ConversationState>> {
        (self.key == Self::FULL_STATE).then(|| serde_json::from_value(self.value.clone()))
    }
}

/// A run failed (`ConversationErrorEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationErrorEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Error code, usually an exception class name or e.g. `MaxIterationsReached`.
    pub code: String,
    /// Details.
    pub detail: String,
    /// Classification.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub classification: Option<ErrorClassification>,
}

/// The conversation was paused (`PauseEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
}

/// The conversation was interrupted (`InterruptEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterruptEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
}

/// The history should be condensed (`CondensationRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondensationRequest {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
}

/// The condenser's result (`Condensation`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condensation {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Events the LLM no longer sees (a set: order carries no meaning).
    #[serde(default)]
    pub forgotten_event_ids: Vec<String>,
    /// Summary of the forgotten events.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub summary: Option<String>,
    /// Where the summary goes in the view.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub summary_offset: Option<u64>,
    /// Id of the LLM response that produced it.
    pub llm_response_id: String,
}

/// A condensation summary as the LLM sees it (`CondensationSummaryEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondensationSummaryEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// The summary.
    pub summary: String,
}

/// Hook points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HookEventType {
    /// Before a tool runs.
    PreToolUse,
    /// After a tool ran.
    PostToolUse,
    /// When the user submits a prompt.
    UserPromptSubmit,
    /// When a session starts.
    SessionStart,
    /// When a session ends.
    SessionEnd,
    /// When the agent wants to stop.
    Stop,
}

/// A configured hook ran (`HookExecutionEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookExecutionEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Hook point.
    pub hook_event_type: HookEventType,
    /// The command that ran.
    pub hook_command: String,
    /// Tool, for tool hooks.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub tool_name: Option<String>,
    /// The hook succeeded.
    pub success: bool,
    /// The hook blocked the operation.
    #[serde(default)]
    pub blocked: bool,
    /// Exit code.
    pub exit_code: i64,
    /// Standard output.
    #[serde(default)]
    pub stdout: String,
    /// Standard error.
    #[serde(default)]
    pub stderr: String,
    /// Reason given by the hook.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub reason: Option<String>,
    /// Context the hook added.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub additional_context: Option<String>,
    /// Error running the hook.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub error: Option<String>,
    /// Related action.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub action_id: Option<String>,
    /// Related message.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub message_id: Option<String>,
    /// Input passed to the hook.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub hook_input: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A raw completion log (`LLMCompletionLogEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmCompletionLogEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// File name the client writes the log to.
    pub filename: String,
    /// The log as JSON text.
    pub log_data: String,
    /// Model.
    #[serde(default = "unknown_model")]
    pub model_name: String,
    /// LLM usage id.
    #[serde(default = "default_usage_id")]
    pub usage_id: String,
}

fn unknown_model() -> String {
    "unknown".to_owned()
}

pub(crate) fn default_usage_id() -> String {
    "default".to_owned()
}

/// A security analyzer assessed a batch of actions (`SecurityAnalysisEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityAnalysisEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Analyzer kind.
    pub analyzer: String,
    /// Confirmation policy kind.
    pub policy: String,
    /// Risk per action id.
    #[serde(default)]
    pub risks: BTreeMap<String, SecurityRisk>,
    /// Details per action id.
    #[serde(default)]
    pub details: BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
}

/// Streamed token deltas (`StreamingDeltaEvent`); never persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamingDeltaEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Content delta.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub content: Option<String>,
    /// Reasoning delta.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub reasoning_content: Option<String>,
}

/// Token ids of a completion (`TokenEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Prompt token ids.
    pub prompt_token_ids: Vec<i64>,
    /// Response token ids.
    pub response_token_ids: Vec<i64>,
}

/// A tool call of an external coding agent over ACP (`ACPToolCallEvent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcpToolCallEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Call id.
    pub tool_call_id: String,
    /// Title.
    pub title: String,
    /// Status.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub status: Option<String>,
    /// Tool kind.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub tool_kind: Option<String>,
    /// Raw input.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub raw_input: Option<serde_json::Value>,
    /// Raw output.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub raw_output: Option<serde_json::Value>,
    /// Content blocks.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub content: Option<Vec<serde_json::Value>>,
    /// The call failed.
    #[serde(default)]
    pub is_error: bool,
}

/// A client's WebSocket frame could not be processed (`ServerErrorEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerErrorEvent {
    /// Common fields.
    #[serde(flatten)]
    pub base: EventBase,
    /// Error code, e.g. `ValidationError`.
    pub code: String,
    /// Details.
    pub detail: String,
}
