//! Typed LLM failures.

/// Why a completion failed, after retries.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// The request does not fit the model's context window.
    #[error("context window exceeded: {0}")]
    ContextWindowExceeded(String),
    /// The provider rejected the message history (tool_use/tool_result pairing).
    #[error("malformed conversation history: {0}")]
    MalformedHistory(String),
    /// 401/403 or an invalid key.
    #[error("authentication failed: {0}")]
    Authentication(String),
    /// 429 after all retries.
    #[error("rate limited: {0}")]
    RateLimit(String),
    /// The request timed out after all retries.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Connection failures or 5xx after all retries.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// The provider's content filter refused.
    #[error("content policy violation: {0}")]
    ContentPolicy(String),
    /// Any other 4xx.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The response had no choices (after all retries).
    #[error("no response: {0}")]
    NoResponse(String),
    /// The response could not be decoded.
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// The configuration cannot work.
    #[error("invalid LLM configuration: {0}")]
    Config(String),
}

impl LlmError {
    /// The reference's exception class name, used as `ConversationErrorEvent.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ContextWindowExceeded(_) => "LLMContextWindowExceedError",
            Self::MalformedHistory(_) => "LLMMalformedConversationHistoryError",
            Self::Authentication(_) => "LLMAuthenticationError",
            Self::RateLimit(_) => "LLMRateLimitError",
            Self::Timeout(_) => "LLMTimeoutError",
            Self::ServiceUnavailable(_) => "LLMServiceUnavailableError",
            Self::ContentPolicy(_) => "LLMContentPolicyViolationError",
            Self::BadRequest(_) => "LLMBadRequestError",
            Self::NoResponse(_) => "LLMNoResponseError",
            Self::InvalidResponse(_) => "LLMBadRequestError",
            Self::Config(_) => "LLMError",
        }
    }
}
