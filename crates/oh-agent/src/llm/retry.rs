//! Retry policy and error mapping (§3.5; `utils/retry_mixin.py`, `exceptions/classifier.py`,
//! `exceptions/mapping.py` of the reference).

use std::time::Duration;

use oh_protocol::Llm;

use super::LlmError;

/// Why one attempt failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// No connection, or it broke before a full response.
    Connect(String),
    /// No full response within the timeout.
    Timeout(String),
    /// An HTTP error status.
    Status {
        /// The status code.
        status: u16,
        /// What to show: the provider's message and, when it has none, the body.
        message: String,
        /// The whole body, lower-cased, for pattern matching.
        haystack: String,
        /// The `retry-after` header, in seconds.
        retry_after: Option<Duration>,
    },
    /// A 200 response without any choice.
    NoResponse(String),
    /// A 200 response that cannot be decoded, or a request that cannot be built.
    Invalid(LlmError),
}

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RetryPolicy {
    /// Total attempts, at least 1.
    pub(crate) attempts: u32,
    pub(crate) multiplier: f64,
    pub(crate) min_wait: Duration,
    pub(crate) max_wait: Duration,
}

impl RetryPolicy {
    /// The policy of `config`: `num_retries` total attempts (0 behaves like 1).
    pub(crate) fn from_config(config: &Llm) -> Self {
        Self {
            attempts: config.num_retries.max(1),
            multiplier: if config.retry_multiplier.is_finite() && config.retry_multiplier >= 0.0 {
                config.retry_multiplier
            } else {
                0.0
            },
            min_wait: Duration::from_secs(config.retry_min_wait),
            max_wait: Duration::from_secs(config.retry_max_wait),
        }
    }

    /// The wait after failed attempt number `attempt` (1-based), as tenacity's
    /// `wait_exponential`: `clamp(multiplier · 2^(attempt-1), min, max)` seconds.
    pub(crate) fn wait(&self, attempt: u32) -> Duration {
        let exp = f64::from(attempt.saturating_sub(1).min(62));
        let secs = self.multiplier * 2f64.powf(exp);
        let raw = Duration::try_from_secs_f64(secs).unwrap_or(self.max_wait);
        raw.max(self.min_wait).min(self.max_wait.max(self.min_wait))
    }

    /// The wait before the next attempt: the backoff, or the provider's `retry-after` when it
    /// asks for longer (never beyond the maximum wait).
    pub(crate) fn wait_for(&self, attempt: u32, failure: &Failure) -> Duration {
        let backoff = self.wait(attempt);
        match failure {
            Failure::Status {
                retry_after: Some(after),
                ..
            } => backoff.max((*after).min(self.max_wait)),
            _ => backoff,
        }
    }
}

/// Quota exhaustion: retrying cannot help (`QUOTA_EXHAUSTION_PATTERNS`, budget denials).
const QUOTA_PATTERNS: &[&str] = &[
    "usage_limit_reached",
    "insufficient_quota",
    "budget_exceeded",
    "budget has been exceeded",
];

/// True if another attempt may succeed: connection errors, timeouts, 408/409/429/5xx
/// (unless the quota is exhausted) and responses without choices.
pub(crate) fn is_retryable(failure: &Failure) -> bool {
    match failure {
        Failure::Connect(_) | Failure::Timeout(_) | Failure::NoResponse(_) => true,
        Failure::Status {
            status, haystack, ..
        } => {
            let transient = matches!(status, 408 | 409 | 429 | 500..=599);
            transient && !contains_any(haystack, QUOTA_PATTERNS)
        }
        Failure::Invalid(_) => false,
    }
}

fn contains_any(haystack: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| haystack.contains(p))
}

/// Context-window complaints: the reference's `LONG_PROMPT_PATTERNS` plus the strings
/// LiteLLM turns into `ContextWindowExceededError`.
const CONTEXT_WINDOW_PATTERNS: &[&str] = &[
    "contextwindowexceedederror",
    "prompt is too long",
    "input length and `max_tokens` exceed context limit",
    "please reduce the length of",
    "exceeds the available context size",
    "context length exceeded",
    "input exceeds the context window",
    "context window exceeds limit",
    "context_length_exceeded",
    "exceed context limit",
    "this model's maximum context length is",
    "model's maximum context limit",
    "is longer than the model's context length",
    "input tokens exceed the configured limit",
    "exceeds the maximum number of tokens allowed",
    "prompt: length",
];

/// Tool-use / tool-result pairing complaints (`MALFORMED_HISTORY_PATTERNS`).
const MALFORMED_HISTORY_PATTERNS: &[&str] = &[
    "tool_use ids were found without `tool_result` blocks immediately after",
    "`tool_use` ids were found without `tool_result` blocks immediately after",
    "each `tool_use` block must have a corresponding `tool_result` block in the next message",
    "each tool_use must have a single result",
    "found multiple `tool_result` blocks with id:",
    "unexpected `tool_use_id` found in `tool_result` blocks",
    "each `tool_result` block must have a corresponding `tool_use` block in the previous message",
    "must be followed by tool messages responding to each 'tool_call_id'",
    "failed to parse tool call arguments as json",
];

/// Authentication complaints (`AUTH_PATTERNS`, and status codes in the text).
const AUTH_PATTERNS: &[&str] = &[
    "invalid api key",
    "unauthorized",
    "missing api key",
    "invalid authentication",
    "access denied",
    "status 401",
    "status 403",
];

/// Content-filter refusals (`CONTENT_POLICY_PATTERNS`, LiteLLM's content-policy checks).
const CONTENT_POLICY_PATTERNS: &[&str] = &[
    "content_policy",
    "content filtering policy",
    "output blocked by content filtering",
    "violating our usage policy",
    "request was rejected as a result of the safety system",
    "responsibleaipolicyviolation",
    "content_filter",
];

/// The typed error for the last failure, in the reference's order: context window,
/// malformed history, authentication, rate limit, timeout, service unavailable, content
/// policy, bad request.
pub(crate) fn map_failure(failure: Failure) -> LlmError {
    match failure {
        Failure::Connect(message) => {
            let lower = message.to_lowercase();
            if contains_any(&lower, CONTEXT_WINDOW_PATTERNS) {
                LlmError::ContextWindowExceeded(message)
            } else {
                LlmError::ServiceUnavailable(message)
            }
        }
        Failure::Timeout(message) => LlmError::Timeout(message),
        Failure::NoResponse(message) => LlmError::NoResponse(message),
        Failure::Invalid(error) => error,
        Failure::Status {
            status,
            message,
            haystack,
            ..
        } => {
            let text = format!("HTTP {status}: {message}");
            let client_or_server = (400..600).contains(&status);
            let bad_request_like = (400..500).contains(&status);
            if client_or_server && contains_any(&haystack, CONTEXT_WINDOW_PATTERNS) {
                LlmError::ContextWindowExceeded(text)
            } else if client_or_server && contains_any(&haystack, MALFORMED_HISTORY_PATTERNS) {
                LlmError::MalformedHistory(text)
            } else if matches!(status, 401 | 403)
                || bad_request_like && contains_any(&haystack, AUTH_PATTERNS)
            {
                LlmError::Authentication(text)
            } else if status == 429 {
                LlmError::RateLimit(text)
            } else if status == 408 {
                LlmError::Timeout(text)
            } else if status >= 500 {
                LlmError::ServiceUnavailable(text)
            } else if contains_any(&haystack, CONTENT_POLICY_PATTERNS) {
                LlmError::ContentPolicy(text)
            } else {
                LlmError::BadRequest(text)
            }
        }
    }
}

/// At most 2000 characters of a body, for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(2000).collect();
    if text.chars().nth(2000).is_some() {
        out.push('…');
    }
    out
}

/// The provider's error message in `body` (`error.message`, `message`, `detail`, or an
/// `error` string), or the body itself.
pub(crate) fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let found = parsed.as_ref().and_then(|v| {
        let error = v.get("error");
        error
            .and_then(|e| e.get("message"))
            .and_then(serde_json::Value::as_str)
            .or_else(|| error.and_then(serde_json::Value::as_str))
            .or_else(|| v.get("message").and_then(serde_json::Value::as_str))
            .or_else(|| v.get("detail").and_then(serde_json::Value::as_str))
            .map(str::to_owned)
    });
    match found {
        Some(message) => {
            // Keep the provider's error type/code too: they carry the classification.
            let code = parsed.as_ref().and_then(|v| {
                let e = v.get("error")?;
                let kind = e.get("type").and_then(serde_json::Value::as_str);
                let code = e.get("code").and_then(serde_json::Value::as_str);
                match (kind, code) {
                    (Some(k), Some(c)) => Some(format!("{k}/{c}")),
                    (Some(k), None) => Some(k.to_owned()),
                    (None, Some(c)) => Some(c.to_owned()),
                    (None, None) => None,
                }
            });
            match code {
                Some(code) => format!("{message} ({code})"),
                None => message,
            }
        }
        None if body.is_empty() => "(empty body)".to_owned(),
        None => snippet(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, body: &str) -> Failure {
        Failure::Status {
            status,
            message: error_message(body.as_bytes()),
            haystack: body.to_lowercase(),
            retry_after: None,
        }
    }

    #[test]
    fn waits_grow_and_clamp() {
        let p = RetryPolicy {
            attempts: 5,
            multiplier: 8.0,
            min_wait: Duration::from_secs(8),
            max_wait: Duration::from_secs(64),
        };
        let waits: Vec<u64> = (1..=5).map(|a| p.wait(a).as_secs()).collect();
        assert_eq!(waits, [8, 16, 32, 64, 64]);
        let zero = RetryPolicy {
            min_wait: Duration::ZERO,
            max_wait: Duration::ZERO,
            ..p
        };
        assert_eq!(zero.wait(3), Duration::ZERO);
        let cfg = Llm {
            num_retries: 0,
            ..Llm::default()
        };
        assert_eq!(RetryPolicy::from_config(&cfg).attempts, 1);
    }

    #[test]
    fn retry_decisions() {
        assert!(is_retryable(&Failure::Connect("refused".into())));
        assert!(is_retryable(&Failure::Timeout("slow".into())));
        assert!(is_retryable(&Failure::NoResponse("none".into())));
        assert!(is_retryable(&status(429, "{}")));
        assert!(is_retryable(&status(529, "{}")));
        assert!(is_retryable(&status(500, "{}")));
        assert!(!is_retryable(&status(
            429,
            r#"{"error":{"code":"insufficient_quota"}}"#
        )));
        assert!(!is_retryable(&status(400, "{}")));
        assert!(!is_retryable(&status(401, "{}")));
        assert!(!is_retryable(&Failure::Invalid(LlmError::InvalidResponse(
            "x".into()
        ))));
    }

    #[test]
    fn maps_in_reference_order() {
        let e = map_failure(status(
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#,
        ));
        assert!(matches!(e, LlmError::ContextWindowExceeded(_)), "{e:?}");
        let e = map_failure(status(
            400,
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
        ));
        assert!(matches!(e, LlmError::ContextWindowExceeded(_)));
        let e = map_failure(status(
            400,
            r#"{"error":{"message":"messages.3: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1"}}"#,
        ));
        assert!(matches!(e, LlmError::MalformedHistory(_)));
        assert!(matches!(
            map_failure(status(401, "{}")),
            LlmError::Authentication(_)
        ));
        assert!(matches!(
            map_failure(status(400, r#"{"error":{"message":"Invalid API key"}}"#)),
            LlmError::Authentication(_)
        ));
        assert!(matches!(
            map_failure(status(429, "{}")),
            LlmError::RateLimit(_)
        ));
        assert!(matches!(
            map_failure(status(503, "{}")),
            LlmError::ServiceUnavailable(_)
        ));
        assert!(matches!(
            map_failure(status(529, "overloaded")),
            LlmError::ServiceUnavailable(_)
        ));
        assert!(matches!(
            map_failure(status(
                400,
                r#"{"error":{"code":"content_policy_violation","message":"no"}}"#
            )),
            LlmError::ContentPolicy(_)
        ));
        assert!(matches!(
            map_failure(status(404, "{}")),
            LlmError::BadRequest(_)
        ));
        let e = map_failure(status(400, r#"{"error":{"message":"bad field x"}}"#));
        assert!(
            matches!(&e, LlmError::BadRequest(m) if m.contains("bad field x")),
            "{e:?}"
        );
        assert!(matches!(
            map_failure(Failure::Timeout("t".into())),
            LlmError::Timeout(_)
        ));
        assert!(matches!(
            map_failure(Failure::Connect("refused".into())),
            LlmError::ServiceUnavailable(_)
        ));
    }
}
