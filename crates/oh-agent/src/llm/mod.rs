//! LLM clients.
//!
//! [`LlmClient`] speaks one of two wire formats, chosen from the model name:
//! OpenAI Chat Completions (`openai/…`, `litellm_proxy/…`, any OpenAI-compatible `base_url`)
//! or Anthropic Messages (`anthropic/…`). It sends [`oh_protocol::Message`]s with native tool
//! calling, retries with exponential backoff on 429, 5xx, timeouts and connection errors,
//! maps failures to a typed [`LlmError`], and records per-call [`Metrics`].

mod error;

pub use error::LlmError;

use oh_protocol::{Llm, Message, Metrics, MetricsSnapshot};

/// A tool as offered to the LLM: name, description and JSON-schema parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSchema {
    /// Wire name, e.g. `terminal`.
    pub name: String,
    /// Description shown to the model.
    pub description: String,
    /// JSON schema of the parameters (`{"type":"object","properties":…,"required":…}`).
    pub parameters: serde_json::Value,
}

/// One completion call.
#[derive(Debug, Clone, Copy)]
pub struct CompletionRequest<'a> {
    /// The conversation so far, system message first.
    pub messages: &'a [Message],
    /// Tools the model may call; empty for none.
    pub tools: &'a [ToolSchema],
    /// Sent as the prompt-cache key and session header when set.
    pub conversation_id: Option<&'a str>,
}

/// What one completion call produced.
#[derive(Debug, Clone)]
pub struct LlmResponse {
    /// Provider response id.
    pub id: String,
    /// The assistant message (text, tool calls, reasoning).
    pub message: Message,
    /// The LLM's metrics right after this call (without the per-call lists).
    pub metrics: MetricsSnapshot,
}

/// A client for one configured LLM.
#[derive(Debug)]
pub struct LlmClient {
    config: Llm,
    metrics: std::sync::Mutex<Metrics>,
}

impl LlmClient {
    /// A client for `config`. Fails on a configuration that cannot work (empty model name,
    /// unsupported provider, bad base URL).
    pub fn new(config: Llm) -> Result<Self, LlmError> {
        let metrics = Metrics {
            model_name: config.model.clone(),
            accumulated_cost: 0.0,
            max_budget_per_task: None,
            accumulated_token_usage: None,
            costs: Vec::new(),
            response_latencies: Vec::new(),
            token_usages: Vec::new(),
        };
        Ok(Self {
            config,
            metrics: std::sync::Mutex::new(metrics),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Llm {
        &self.config
    }

    /// The key of this LLM in conversation stats (`usage_id`).
    pub fn usage_id(&self) -> &str {
        &self.config.usage_id
    }

    /// A copy of the accumulated metrics, with the per-call lists.
    pub fn metrics(&self) -> Metrics {
        self.metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the metrics, e.g. with ones restored from disk so costs keep accumulating.
    pub fn restore_metrics(&self, metrics: Metrics) {
        *self
            .metrics
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = metrics;
    }

    /// Runs one completion, with retries.
    pub async fn complete(&self, request: CompletionRequest<'_>) -> Result<LlmResponse, LlmError> {
        let _ = request;
        Err(LlmError::Config("LLM client not implemented yet".into()))
    }
}
