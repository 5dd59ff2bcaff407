//! Conversation state, execution status and usage statistics.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::agent::{AgentBase, ConfirmationPolicy, SecretSource, SecurityAnalyzer, WorkspaceSpec};
use crate::wire::{omit_none, yes};

/// Where a conversation is in its life (`ConversationExecutionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExecutionStatus {
    /// Ready for a task.
    #[default]
    Idle,
    /// The agent loop runs.
    Running,
    /// Paused by the user.
    Paused,
    /// Actions wait for the user's confirmation.
    WaitingForConfirmation,
    /// The task is done.
    Finished,
    /// A run failed.
    Error,
    /// The stuck detector fired.
    Stuck,
    /// Being deleted (webhook payloads only).
    Deleting,
}

impl ExecutionStatus {
    /// `finished`, `error` and `stuck`: a blocking client run ends on these.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Error | Self::Stuck)
    }
}

/// A run that ended in `error` or `stuck` (the reference's `ConversationRunError`): the one
/// failure type of a run, whether the conversation ran in this process or on an agent
/// server.
///
/// Not a wire type: it is built from the conversation's status and events, the same way on
/// both sides ([`RunFailure::from_events`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conversation {conversation_id} run failed ({status:?}): {detail}")]
#[non_exhaustive]
pub struct RunFailure {
    /// The conversation.
    pub conversation_id: uuid::Uuid,
    /// `error` or `stuck`.
    pub status: ExecutionStatus,
    /// The error class (`ConversationErrorEvent.code`), when one was recorded.
    pub code: Option<String>,
    /// What went wrong.
    pub detail: String,
}

impl RunFailure {
    /// A failure with these parts.
    pub fn new(
        conversation_id: uuid::Uuid,
        status: ExecutionStatus,
        code: Option<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            conversation_id,
            status,
            code,
            detail: detail.into(),
        }
    }

    /// The failure of a run that stopped in `status`: for `error`, the latest
    /// `ConversationErrorEvent` of `events` gives the code and detail; a `stuck` run (which
    /// records no such event) or an `error` without one gets a fixed text.
    pub fn from_events(
        conversation_id: uuid::Uuid,
        status: ExecutionStatus,
        events: &[crate::Event],
    ) -> Self {
        let latest = events.iter().rev().find_map(|e| match e {
            crate::Event::ConversationError(e) => Some((e.code.clone(), e.detail.clone())),
            _ => None,
        });
        let (code, detail) = match (latest, status) {
            (Some((code, detail)), ExecutionStatus::Error) => (Some(code), detail),
            (_, ExecutionStatus::Stuck) => (None, "the agent got stuck in a loop".to_owned()),
            (_, _) => (None, "the run ended in error".to_owned()),
        };
        Self::new(conversation_id, status, code, detail)
    }
}

/// Token counts of one call, or accumulated (`TokenUsage`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[allow(missing_docs, reason = "token counters named as in the reference")]
pub struct TokenUsage {
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub context_window: u64,
    /// Prompt plus completion tokens of the last call.
    pub per_turn_token: u64,
    pub response_id: String,
}

/// Cost of one call (`Cost`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Model.
    pub model: String,
    /// USD.
    pub cost: f64,
    /// Unix time in seconds.
    pub timestamp: f64,
}

/// Latency of one call (`ResponseLatency`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseLatency {
    /// Model.
    pub model: String,
    /// Seconds.
    pub latency: f64,
    /// Provider response id.
    pub response_id: String,
}

/// Accumulated usage of one LLM, without per-call lists (`MetricsSnapshot`): the form of
/// `stats` state updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Model.
    #[serde(default = "default_model_name")]
    pub model_name: String,
    /// USD spent.
    #[serde(default)]
    pub accumulated_cost: f64,
    /// Budget limit, USD.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub max_budget_per_task: Option<f64>,
    /// Token totals.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub accumulated_token_usage: Option<TokenUsage>,
}

fn default_model_name() -> String {
    "default".to_owned()
}

/// Usage of one LLM with per-call lists (`Metrics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Model.
    #[serde(default = "default_model_name")]
    pub model_name: String,
    /// USD spent.
    #[serde(default)]
    pub accumulated_cost: f64,
    /// Budget limit, USD.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub max_budget_per_task: Option<f64>,
    /// Token totals.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub accumulated_token_usage: Option<TokenUsage>,
    /// Cost per call.
    #[serde(default)]
    pub costs: Vec<Cost>,
    /// Latency per call.
    #[serde(default)]
    pub response_latencies: Vec<ResponseLatency>,
    /// Tokens per call.
    #[serde(default)]
    pub token_usages: Vec<TokenUsage>,
}

impl Metrics {
    /// The accumulated figures without the per-call lists.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            model_name: self.model_name.clone(),
            accumulated_cost: self.accumulated_cost,
            max_budget_per_task: self.max_budget_per_task,
            accumulated_token_usage: self.accumulated_token_usage.clone(),
        }
    }
}

/// Usage per LLM of a conversation, keyed by the LLM's `usage_id` (`ConversationStats`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConversationStats {
    /// Metrics per `usage_id`.
    #[serde(default)]
    pub usage_to_metrics: BTreeMap<String, Metrics>,
}

impl ConversationStats {
    /// Total USD over all LLMs.
    pub fn accumulated_cost(&self) -> f64 {
        self.usage_to_metrics
            .values()
            .map(|m| m.accumulated_cost)
            .sum()
    }

    /// Total prompt tokens over all LLMs (those that report token usage).
    pub fn prompt_tokens(&self) -> u64 {
        self.usage_to_metrics
            .values()
            .filter_map(|m| m.accumulated_token_usage.as_ref())
            .map(|u| u.prompt_tokens)
            .sum()
    }
}

/// The `stats` state-update value: accumulated figures per `usage_id`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConversationStatsSnapshot {
    /// Snapshot per `usage_id`.
    #[serde(default)]
    pub usage_to_metrics: BTreeMap<String, MetricsSnapshot>,
}

/// Secrets of a conversation, by name (`SecretRegistry`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SecretRegistry {
    /// Sources by secret name.
    #[serde(default)]
    pub secret_sources: BTreeMap<String, SecretSource>,
}

/// The persisted state of a conversation (`ConversationState`): `base_state.json` and the
/// value of `full_state` updates (both compact form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    /// Conversation id (dashed UUID).
    pub id: uuid::Uuid,
    /// The agent.
    pub agent: AgentBase,
    /// The workspace.
    pub workspace: WorkspaceSpec,
    /// Where the conversation is stored.
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
    /// Path rules activated so far.
    #[serde(default)]
    pub activated_path_rules: Vec<String>,
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
    /// HEAD was moved to an empty tree.
    #[serde(default)]
    pub head_is_empty: bool,
    /// Usage.
    #[serde(default)]
    pub stats: ConversationStats,
    /// Secrets.
    #[serde(default)]
    pub secret_registry: SecretRegistry,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Agent-specific runtime state.
    #[serde(default)]
    pub agent_state: serde_json::Map<String, serde_json::Value>,
    /// Shell hooks.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub hook_config: Option<serde_json::Value>,
}

pub(crate) fn default_max_iterations() -> u64 {
    500
}

#[cfg(test)]
mod run_failure_tests {
    use super::*;
    use crate::Event;

    fn error_event(code: &str, detail: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "kind": "ConversationErrorEvent", "id": "e", "timestamp": "2026-01-01T00:00:00",
            "source": "environment", "code": code, "detail": detail,
        }))
        .unwrap()
    }

    #[test]
    fn a_run_failure_comes_from_the_latest_error_event_of_an_error_run() {
        let id = uuid::Uuid::nil();
        let events = [error_event("A", "first"), error_event("B", "second")];
        let failed = RunFailure::from_events(id, ExecutionStatus::Error, &events);
        assert_eq!(
            failed,
            RunFailure::new(id, ExecutionStatus::Error, Some("B".into()), "second")
        );
        assert_eq!(
            failed.to_string(),
            format!("conversation {id} run failed (Error): second")
        );
        let stuck = RunFailure::from_events(id, ExecutionStatus::Stuck, &events);
        assert_eq!(stuck.code, None);
        assert_eq!(stuck.detail, "the agent got stuck in a loop");
        let bare = RunFailure::from_events(id, ExecutionStatus::Error, &[]);
        assert_eq!(bare.detail, "the run ended in error");
    }
}
