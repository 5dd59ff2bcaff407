//! Classification of conversation-level errors (`ErrorClassification`), derived from the
//! error code and detail as the reference does.

use oh_protocol::ErrorClassification;
use oh_protocol::event::{FailureKind, UserAction};

fn make(kind: FailureKind, retryable: bool, user_action: UserAction) -> ErrorClassification {
    ErrorClassification {
        kind,
        retryable,
        user_action,
        error_id: None,
    }
}

/// Classification for a `ConversationErrorEvent` with this code and detail.
pub(super) fn conversation_error(code: &str, detail: &str) -> ErrorClassification {
    use FailureKind as K;
    use UserAction as U;
    match code {
        "MaxIterationsReached" => make(K::AgentAction, false, U::None),
        "MaxBudgetReached" => make(K::Quota, false, U::Settings),
        "LLMAuthenticationError" => make(K::Auth, false, U::Settings),
        "LLMRateLimitError" => make(K::RateLimit, true, U::Retry),
        "LLMTimeoutError" | "LLMServiceUnavailableError" | "LLMNoResponseError" => {
            make(K::Transient, true, U::Retry)
        }
        "LLMContextWindowExceedError" | "LLMBadRequestError" | "LLMError" => {
            make(K::Config, false, U::Settings)
        }
        _ => {
            let text = detail.to_lowercase();
            if text.contains("rate limit") || text.contains("429") {
                make(K::RateLimit, true, U::Retry)
            } else if text.contains("timeout") || text.contains("timed out") {
                make(K::Transient, true, U::Retry)
            } else if text.contains("401")
                || text.contains("unauthorized")
                || text.contains("api key")
            {
                make(K::Auth, false, U::Settings)
            } else {
                make(K::Unknown, false, U::None)
            }
        }
    }
}

/// Classification of an error the agent can correct (bad tool call, tool `ValueError`).
pub(super) fn agent_action() -> ErrorClassification {
    make(FailureKind::AgentAction, true, UserAction::Retry)
}

/// Classification of an unexpected failure inside a tool.
pub(super) fn internal() -> ErrorClassification {
    make(FailureKind::Internal, false, UserAction::None)
}
