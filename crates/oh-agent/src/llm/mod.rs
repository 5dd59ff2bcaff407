//! LLM clients.
//!
//! [`LlmClient`] speaks one of two wire formats, chosen from the model name:
//! OpenAI Chat Completions (`openai/…`, `litellm_proxy/…`, `openhands/…`, `openrouter/…`,
//! `deepseek/…`, `hosted_vllm/…`, bare OpenAI names) or Anthropic Messages (`anthropic/…`,
//! bare `claude…` names). It sends [`oh_protocol::Message`]s with native tool calling,
//! retries with exponential backoff on 429, 5xx, timeouts and connection errors, maps
//! failures to a typed [`LlmError`], and records per-call [`Metrics`].
//!
//! # Endpoints
//!
//! | Model | URL |
//! | --- | --- |
//! | `openai/x`, bare `x` | `{base_url or https://api.openai.com/v1}/chat/completions` |
//! | `litellm_proxy/x`, `hosted_vllm/x` | `{base_url}/chat/completions` (base URL required) |
//! | `openhands/x` | `{base_url or https://llm-proxy.app.all-hands.dev}/chat/completions` |
//! | `anthropic/x`, bare `claude…` | `{base_url or https://api.anthropic.com}/v1/messages` (as LiteLLM: the suffix is appended unless the base already ends with it) |
//!
//! The provider prefix is stripped from the model name sent on the wire.
//!
//! # Not supported yet
//!
//! The OpenAI Responses API (`api_mode: responses` is a [`LlmError::Config`]; `auto` uses
//! Chat Completions for every model in this version, where the reference would use the
//! Responses API for the GPT-5 and Codex families), prompt-based tool calling
//! (`native_tool_calling: false` is ignored: tools are always sent natively), streaming,
//! fallback LLMs, Azure, Bedrock, Gemini and Vertex.
//!
//! # Model facts
//!
//! The reference reads context windows, output limits, prices and capabilities from
//! LiteLLM's model table. This port has a small built-in table (see `model::KNOWN_MODELS`:
//! the GPT-4o, GPT-4.1, GPT-5, o3, o4-mini, Claude 4.5/4.6 and DeepSeek-chat families) and
//! the reference's own substring lists for prompt caching, extended thinking and
//! string-serialised content. Unknown models get no `max_completion_tokens` (Anthropic:
//! `max_tokens` 4096), a context window of 0 in the metrics and no cost unless
//! `input_cost_per_token`/`output_cost_per_token` are set or a proxy reports
//! `x-litellm-response-cost`.

mod anthropic;
mod error;
pub(crate) mod http;
mod metrics;
mod model;
mod openai;
mod reach;
mod retry;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use error::LlmError;
pub use model::WireFormat;

use oh_protocol::{Llm, Message, Metrics, MetricsSnapshot};
use serde_json::Value;

use self::model::{Features, Route};
use self::retry::{Failure, RetryPolicy};

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
    /// Sent as the prompt-cache key (OpenAI models) and the `x-litellm-session-id` header
    /// when set.
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

/// The default request timeout when `Llm.timeout` is unset.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A client for one configured LLM.
pub struct LlmClient {
    config: Llm,
    metrics: Mutex<Metrics>,
    route: Route,
    features: Features,
    retry: RetryPolicy,
    timeout: Duration,
    http: http::HttpClient,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `Llm`'s Debug masks the keys; the route and policy hold no secrets.
        f.debug_struct("LlmClient")
            .field("model", &self.config.model)
            .field("usage_id", &self.config.usage_id)
            .field("wire", &self.route.wire)
            .field("url", &self.route.url)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    /// A client for `config`. Fails on a configuration that cannot work (empty model name,
    /// unsupported provider or API mode, bad base URL).
    pub fn new(config: Llm) -> Result<Self, LlmError> {
        let route = model::route(&config)?;
        let features = model::features(&config, &route);
        let retry = RetryPolicy::from_config(&config);
        let timeout = config
            .timeout
            .filter(|&t| t > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        let metrics = metrics::new_metrics(&config.model);
        Ok(Self {
            config,
            metrics: Mutex::new(metrics),
            route,
            features,
            retry,
            timeout,
            http: http::HttpClient::new(),
        })
    }

    /// Overrides the retry waits (normally `retry_min_wait`/`retry_max_wait` seconds of the
    /// configuration), e.g. sub-second waits in tests. The multiplier still applies.
    #[must_use]
    pub fn with_retry_waits(mut self, min: Duration, max: Duration) -> Self {
        self.retry.min_wait = min;
        self.retry.max_wait = max;
        self
    }

    /// Overrides the per-request timeout (normally `timeout` seconds of the configuration).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &Llm {
        &self.config
    }

    /// The key of this LLM in conversation stats (`usage_id`).
    pub fn usage_id(&self) -> &str {
        &self.config.usage_id
    }

    /// The wire format this client speaks.
    pub fn wire_format(&self) -> WireFormat {
        self.route.wire
    }

    /// The URL completions are posted to.
    pub fn endpoint(&self) -> &str {
        &self.route.url
    }

    /// The effective context window (from `max_input_tokens` or the built-in model table),
    /// 0 when unknown.
    pub fn context_window(&self) -> u64 {
        self.features.context_window
    }

    /// A copy of the accumulated metrics, with the per-call lists.
    pub fn metrics(&self) -> Metrics {
        self.metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the metrics, e.g. with ones restored from disk so costs keep accumulating.
    pub fn restore_metrics(&self, mut metrics: Metrics) {
        if metrics.accumulated_token_usage.is_none() {
            metrics.accumulated_token_usage = Some(metrics::zero_usage(&metrics.model_name));
        }
        *self.metrics.lock().unwrap_or_else(PoisonError::into_inner) = metrics;
    }

    /// The request body and headers for `request`, as they would be sent.
    fn prepare(&self, request: &CompletionRequest<'_>) -> (Value, Vec<(String, String)>) {
        let (body, wire_headers) = match self.route.wire {
            WireFormat::ChatCompletions => {
                openai::build_request(&self.config, &self.route, &self.features, request)
            }
            WireFormat::AnthropicMessages => {
                anthropic::build_request(&self.config, &self.route, &self.features, request)
            }
        };
        let mut headers = HeaderList::default();
        for (k, v) in wire_headers {
            headers.set(k, v);
        }
        // The reference always adds the OpenRouter attribution headers, then the configured
        // extra headers (which win), then the session header.
        if !self.config.openrouter_site_url.is_empty() {
            headers.set(
                "HTTP-Referer".into(),
                self.config.openrouter_site_url.clone(),
            );
        }
        if !self.config.openrouter_app_name.is_empty() {
            headers.set("X-Title".into(), self.config.openrouter_app_name.clone());
        }
        if let Some(extra) = &self.config.extra_headers {
            for (k, v) in extra {
                headers.set(k.clone(), v.clone());
            }
        }
        if let Some(id) = request.conversation_id {
            headers.set("x-litellm-session-id".into(), id.to_owned());
        }
        (body, headers.0)
    }

    /// The request body `complete` would send for `request` (for inspection and tests; the
    /// body holds no API key).
    pub fn request_body(&self, request: CompletionRequest<'_>) -> Value {
        self.prepare(&request).0
    }

    /// Runs one completion, with retries.
    pub async fn complete(&self, request: CompletionRequest<'_>) -> Result<LlmResponse, LlmError> {
        let (mut body, headers) = self.prepare(&request);
        let attempts = self.retry.attempts;
        let mut attempt = 1;
        loop {
            let bytes = serde_json::to_vec(&body)
                .map_err(|e| LlmError::Config(format!("cannot encode the request: {e}")))?;
            let failure = match self.attempt(bytes.into(), &headers).await {
                Ok(response) => return Ok(response),
                Err(failure) => failure,
            };
            if attempt >= attempts || !retry::is_retryable(&failure) {
                let error = retry::map_failure(failure);
                tracing::warn!(
                    model = %self.config.model,
                    attempt,
                    "LLM call failed: {error}"
                );
                return Err(error);
            }
            let wait = self.retry.wait_for(attempt, &failure);
            tracing::warn!(
                model = %self.config.model,
                attempt,
                max_attempts = attempts,
                wait_ms = wait.as_millis() as u64,
                "LLM call failed, retrying: {}",
                retry::map_failure(failure.clone())
            );
            // A temperature of exactly 0 is bumped to 1.0 after an empty response.
            if matches!(failure, Failure::NoResponse(_))
                && body.get("temperature").and_then(Value::as_f64) == Some(0.0)
                && let Some(obj) = body.as_object_mut()
            {
                obj.insert("temperature".into(), serde_json::json!(1.0));
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange: a response (metrics recorded) or why it failed.
    async fn attempt(
        &self,
        body: bytes::Bytes,
        headers: &[(String, String)],
    ) -> Result<LlmResponse, Failure> {
        let started = Instant::now();
        let response = self
            .http
            .post_json(&self.route.url, headers, body, self.timeout)
            .await
            .map_err(|e| match e {
                http::TransportError::Connect(m) => {
                    let url = &self.route.url;
                    Failure::Connect(match reach::loopback_hint(url) {
                        Some(hint) => format!("cannot reach {url}: {m}; {hint}"),
                        None => format!("cannot reach {url}: {m}"),
                    })
                }
                http::TransportError::Timeout(t) => Failure::Timeout(format!(
                    "no response from {} within {:.1} s",
                    self.route.url,
                    t.as_secs_f64()
                )),
                http::TransportError::Request(m) => Failure::Invalid(LlmError::Config(m)),
            })?;
        let latency = started.elapsed().as_secs_f64();

        if !(200..300).contains(&response.status) {
            let retry_after = response
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .and_then(|s| Duration::try_from_secs_f64(s).ok());
            return Err(Failure::Status {
                status: response.status,
                message: retry::error_message(&response.body),
                haystack: String::from_utf8_lossy(&response.body).to_lowercase(),
                retry_after,
            });
        }

        let parsed = match self.route.wire {
            WireFormat::ChatCompletions => openai::parse_response(&response.body),
            WireFormat::AnthropicMessages => anthropic::parse_response(&response.body),
        }
        .map_err(Failure::Invalid)?;

        let header_cost = response
            .headers
            .get("x-litellm-response-cost")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let pricing = metrics::Pricing {
            header_cost,
            custom: self
                .config
                .input_cost_per_token
                .zip(self.config.output_cost_per_token),
            table: self.features.info,
        };
        let cost = metrics::cost(&pricing, parsed.usage.as_ref());
        let snapshot = {
            let mut m = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
            metrics::record(
                &mut m,
                latency,
                &parsed.id,
                cost,
                parsed.usage.as_ref(),
                self.features.context_window,
            );
            m.snapshot()
        };

        match parsed.message {
            Some(message) => Ok(LlmResponse {
                id: parsed.id,
                message,
                metrics: snapshot,
            }),
            None => Err(Failure::NoResponse(format!(
                "the response from {} had no choices (id {:?}): {}",
                self.route.url,
                parsed.id,
                retry::snippet(&response.body)
            ))),
        }
    }
}

/// Headers with case-insensitive replacement.
#[derive(Debug, Default)]
struct HeaderList(Vec<(String, String)>);

impl HeaderList {
    fn set(&mut self, name: String, value: String) {
        match self
            .0
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(&name))
        {
            Some(slot) => *slot = (name, value),
            None => self.0.push((name, value)),
        }
    }
}
