//! History condensation: the LLM summarizing condenser (spec §7).
//!
//! When the LLM-visible view grows past `max_size` events (a soft trigger), or a
//! `CondensationRequest` is pending (a hard trigger: a context-window error or a manual
//! [`LocalConversation::condense`](super::LocalConversation::condense)), a middle slice of the
//! view is replaced by a summary written by the condenser's own LLM. The first `keep_first`
//! events (and always the system prompt) and a recent suffix stay; an action is never cut
//! off from its result, and a batch of parallel calls is never split.
//!
//! Token-based triggering (`max_tokens`, the model's context window) is not implemented;
//! context-window errors from the provider drive condensation instead.

use std::collections::HashSet;

use oh_protocol::event::Condensation;
use oh_protocol::{Agent, Content, Event, Llm, Message, ObservationEvent, Role, Source};
use serde_json::Value;

use super::view::result_call_id;
use super::{Error, new_base};
use crate::llm::{CompletionRequest, LlmClient, LlmError};

/// Default `max_size` (events in the view before condensing).
pub const DEFAULT_MAX_SIZE: usize = 240;
/// Default `keep_first` (leading events never condensed).
pub const DEFAULT_KEEP_FIRST: usize = 2;
/// Default `minimum_progress` (share of the view a condensation must remove).
pub const DEFAULT_MINIMUM_PROGRESS: f64 = 0.1;
/// Usage id of the condenser's LLM when its configuration names none.
pub const DEFAULT_USAGE_ID: &str = "condenser";

/// Characters of an event's text shown to the summarizer.
const PREVIEW_CHARS: usize = 500;

/// The summarizer's instructions (sent as the system message).
const INSTRUCTIONS: &str = "You maintain the working memory of a software agent. Some of its \
earlier history is about to be dropped to save space; you will receive those events (and the \
previous summary, if there is one). Write a concise summary of the state that the agent needs \
to carry on without them. Keep facts, drop narration. Use these sections, omitting empty ones:

USER_CONTEXT: what the user asked for, requirements and constraints
TASK_TRACKING: tasks and their status (keep task ids exactly)
COMPLETED: what has been done, with key results
PENDING: what is left to do
CURRENT_STATE: where the work stands right now
CODE_STATE: files, functions and data structures that matter
TESTS: tests run, failing cases, error messages
CHANGES: edits made so far
DEPS: dependencies and environment facts
VERSION_CONTROL_STATUS: branch, commits, uncommitted work

Reply with the summary only.";

/// Why a condensation is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requirement {
    /// A pending `CondensationRequest`: condense, or fail.
    Hard,
    /// The view is over `max_size`: condense if that makes enough progress.
    Soft,
}

/// The LLM summarizing condenser (`LLMSummarizingCondenser`).
#[derive(Debug)]
pub struct Condenser {
    llm: LlmClient,
    max_size: usize,
    keep_first: usize,
    minimum_progress: f64,
}

/// What one condensation forgets, and the summarizer's input.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    forgotten_event_ids: Vec<String>,
    summary_offset: usize,
    prompt: String,
}

impl Condenser {
    /// The condenser configured in `agent.condenser` (the reference's JSON). `None` for no
    /// condenser, `NoOpCondenser`, or a kind this implementation does not know (logged).
    /// An invalid `LLMSummarizingCondenser` configuration is an [`Error::Unsupported`].
    pub fn from_agent(agent: &Agent) -> Result<Option<Self>, Error> {
        let Some(config) = &agent.condenser else {
            return Ok(None);
        };
        let Some(object) = config.as_object() else {
            if config.is_null() {
                return Ok(None);
            }
            return Err(Error::Unsupported(
                "condenser: the configuration must be a JSON object".into(),
            ));
        };
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        match kind {
            "LLMSummarizingCondenser" => {}
            "NoOpCondenser" => return Ok(None),
            other => {
                tracing::warn!(
                    kind = other,
                    "unknown condenser kind; history is not condensed"
                );
                return Ok(None);
            }
        }
        let max_size = usize_field(object, "max_size", DEFAULT_MAX_SIZE)?;
        let keep_first = usize_field(object, "keep_first", DEFAULT_KEEP_FIRST)?;
        let minimum_progress = match object.get("minimum_progress") {
            None | Some(Value::Null) => DEFAULT_MINIMUM_PROGRESS,
            Some(v) => v.as_f64().ok_or_else(|| {
                Error::Unsupported(format!(
                    "condenser: minimum_progress must be a number, got {v}"
                ))
            })?,
        };
        if object.get("max_tokens").is_some_and(|v| !v.is_null()) {
            tracing::warn!("condenser max_tokens is not supported; only event counts trigger it");
        }
        let llm = match object.get("llm") {
            None | Some(Value::Null) => {
                let mut llm = agent.llm.clone();
                llm.usage_id = DEFAULT_USAGE_ID.to_owned();
                llm
            }
            Some(value) => {
                let mut llm: Llm = serde_json::from_value(value.clone()).map_err(|e| {
                    Error::Unsupported(format!("condenser: invalid llm configuration: {e}"))
                })?;
                if value.get("usage_id").is_none() {
                    DEFAULT_USAGE_ID.clone_into(&mut llm.usage_id);
                }
                if llm.api_key.as_ref().is_none_or(|k| k.is_placeholder()) {
                    llm.api_key.clone_from(&agent.llm.api_key);
                }
                llm
            }
        };
        Self::new(llm, max_size, keep_first, minimum_progress).map(Some)
    }

    /// A condenser summarizing with `llm` (streaming is turned off). Fails unless
    /// `max_size / 2 - keep_first - 1 > 0` and `0 <= minimum_progress < 1`.
    pub fn new(
        mut llm: Llm,
        max_size: usize,
        keep_first: usize,
        minimum_progress: f64,
    ) -> Result<Self, Error> {
        if max_size / 2 <= keep_first + 1 {
            return Err(Error::Unsupported(format!(
                "condenser: max_size // 2 - keep_first - 1 must be positive to leave room for \
                 recent events (max_size {max_size}, keep_first {keep_first})"
            )));
        }
        if !(0.0..1.0).contains(&minimum_progress) {
            return Err(Error::Unsupported(format!(
                "condenser: minimum_progress must be in [0, 1), got {minimum_progress}"
            )));
        }
        llm.stream = false;
        Ok(Self {
            llm: LlmClient::new(llm)?,
            max_size,
            keep_first,
            minimum_progress,
        })
    }

    /// The summarizer's LLM client (metrics under its usage id).
    pub fn llm(&self) -> &LlmClient {
        &self.llm
    }

    /// Events in the view that trigger a condensation when exceeded.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Leading events that are never condensed.
    pub fn keep_first(&self) -> usize {
        self.keep_first
    }

    /// What to condense now, if anything. `Err` when a condensation was requested but
    /// nothing can be forgotten.
    pub(crate) fn plan(
        &self,
        events: &[Event],
        render: &dyn Fn(&ObservationEvent) -> Vec<Content>,
    ) -> Result<Option<Plan>, Error> {
        let view = super::view::condensed_view(events);
        let len = view.len();
        let requirement = if request_pending(events) {
            Requirement::Hard
        } else if len > self.max_size {
            Requirement::Soft
        } else {
            return Ok(None);
        };
        let mut suffix = self.max_size / 2 - self.keep_first - 1;
        if requirement == Requirement::Hard {
            suffix = suffix.min((len / 2).saturating_sub(self.keep_first + 1));
        }
        let safe = safe_indices(&view);
        let system = view
            .iter()
            .position(|e| matches!(e, Event::SystemPrompt(_)))
            .map_or(0, |i| i + 1);
        let protected = self.keep_first.max(system).min(len);
        let start = next_safe(&safe, protected);
        let end = next_safe(&safe, len.saturating_sub(suffix).max(start));
        let count = end - start;
        #[allow(clippy::cast_precision_loss, reason = "event counts are small")]
        let enough = count > 0 && count as f64 >= self.minimum_progress * len as f64;
        let (start, end) = match (enough, requirement) {
            (true, _) => (start, end),
            (false, Requirement::Soft) => {
                tracing::debug!(len, count, "condensation would make too little progress");
                return Ok(None);
            }
            // Hard context reset: everything after the system prompt.
            (false, Requirement::Hard) if system < len => (system, len),
            (false, Requirement::Hard) => {
                return Err(Error::Condensation(format!(
                    "a condensation was requested but the view holds nothing to forget \
                     ({len} events)"
                )));
            }
        };
        let forgotten = &view[start..end];
        Ok(Some(Plan {
            forgotten_event_ids: forgotten
                .iter()
                .filter_map(|e| e.id().map(str::to_owned))
                .collect(),
            summary_offset: start,
            prompt: summarizer_input(forgotten, render),
        }))
    }

    /// Asks the summarizer for the summary and builds the `Condensation` event.
    pub(crate) async fn summarize(
        &self,
        plan: Plan,
        conversation_id: Option<&str>,
    ) -> Result<Condensation, LlmError> {
        let messages = [
            Message::new(Role::System, vec![Content::text(INSTRUCTIONS)]),
            Message::user(plan.prompt),
        ];
        let response = self
            .llm
            .complete(CompletionRequest {
                messages: &messages,
                tools: &[],
                conversation_id,
            })
            .await?;
        let summary = response
            .message
            .content
            .iter()
            .find_map(|c| match c {
                Content::Text(t) => Some(t.text.clone()),
                _ => None,
            })
            .unwrap_or_default();
        if summary.trim().is_empty() {
            tracing::warn!("the condenser's LLM returned an empty summary");
        }
        Ok(Condensation {
            base: new_base(Source::Environment),
            forgotten_event_ids: plan.forgotten_event_ids,
            summary: Some(summary),
            summary_offset: Some(u64::try_from(plan.summary_offset).unwrap_or(u64::MAX)),
            llm_response_id: response.id,
        })
    }
}

fn usize_field(
    object: &serde_json::Map<String, Value>,
    key: &str,
    default: usize,
) -> Result<usize, Error> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                Error::Unsupported(format!(
                    "condenser: {key} must be a non-negative integer, got {v}"
                ))
            }),
    }
}

/// A `CondensationRequest` after the last `Condensation`.
pub(crate) fn request_pending(events: &[Event]) -> bool {
    for event in events.iter().rev() {
        match event {
            Event::CondensationRequest(_) => return true,
            Event::Condensation(_) => return false,
            _ => {}
        }
    }
    false
}

/// `safe[i]`: the view may be cut before `view[i]` (so `safe` has `len + 1` entries). A cut
/// never falls while a tool call of the prefix still waits for its result, which keeps an
/// action with its result and a parallel batch together. Calls that never get a result in
/// the view are ignored (the projection leaves them out anyway).
fn safe_indices(view: &[Event]) -> Vec<bool> {
    let answered: HashSet<&str> = view.iter().filter_map(result_call_id).collect();
    let mut open: HashSet<&str> = HashSet::new();
    let mut safe = Vec::with_capacity(view.len() + 1);
    safe.push(true);
    for (i, event) in view.iter().enumerate() {
        match event {
            Event::Action(a) if answered.contains(a.tool_call_id.as_str()) => {
                open.insert(a.tool_call_id.as_str());
            }
            e => {
                if let Some(id) = result_call_id(e) {
                    open.remove(id);
                }
            }
        }
        // Never split actions of one response, even answered ones between them.
        let splits_batch = match (event, view.get(i + 1)) {
            (Event::Action(a), Some(Event::Action(b))) => a.llm_response_id == b.llm_response_id,
            _ => false,
        };
        safe.push(open.is_empty() && !splits_batch);
    }
    safe
}

/// The first safe index at or after `from` (the end of the view is always safe).
fn next_safe(safe: &[bool], from: usize) -> usize {
    (from..safe.len())
        .find(|&i| safe[i])
        .unwrap_or(safe.len().saturating_sub(1))
}

/// The user message for the summarizer: the previous summary, then each event.
fn summarizer_input(
    forgotten: &[Event],
    render: &dyn Fn(&ObservationEvent) -> Vec<Content>,
) -> String {
    let mut text = String::new();
    for event in forgotten {
        if let Event::CondensationSummary(s) = event {
            text.push_str("<PREVIOUS SUMMARY>\n");
            text.push_str(&s.summary);
            text.push_str("\n</PREVIOUS SUMMARY>\n\n");
        }
    }
    text.push_str("Events to summarize:\n");
    for event in forgotten {
        if matches!(event, Event::CondensationSummary(_)) {
            continue;
        }
        text.push_str("<EVENT>\n");
        text.push_str(&describe(event, render));
        text.push_str("\n</EVENT>\n");
    }
    text
}

fn texts(content: &[Content]) -> String {
    content
        .iter()
        .filter_map(|c| match c {
            Content::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}… [truncated]", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A short text form of one event: kind, source and a preview of its text.
fn describe(event: &Event, render: &dyn Fn(&ObservationEvent) -> Vec<Content>) -> String {
    let source = event
        .base()
        .map(|b| format!("{:?}", b.source).to_lowercase())
        .unwrap_or_default();
    let head = format!("{} (source: {source})", event.kind());
    match event {
        Event::SystemPrompt(e) => format!("{head}\n{}", preview(&e.system_prompt.text)),
        Event::Message(e) => {
            let role = serde_json::to_value(e.llm_message.role).unwrap_or_default();
            format!(
                "{head}, role {}\n{}",
                role.as_str().unwrap_or("user"),
                preview(&texts(&e.llm_message.content))
            )
        }
        Event::Action(a) => {
            let mut out = format!(
                "{head}\ntool: {}\narguments: {}",
                a.tool_name,
                preview(&a.tool_call.arguments)
            );
            let thought: Vec<&str> = a.thought.iter().map(|t| t.text.as_str()).collect();
            if !thought.is_empty() {
                out.push_str("\nthought: ");
                out.push_str(&preview(&thought.join("\n")));
            }
            out
        }
        Event::Observation(o) => format!(
            "{head}\ntool: {}\n{}",
            o.tool_name,
            preview(&texts(&render(o)))
        ),
        Event::UserRejectObservation(o) => format!(
            "{head}\ntool: {}\nrejected: {}",
            o.tool_name,
            preview(&o.rejection_reason)
        ),
        Event::AgentError(e) => format!("{head}\ntool: {}\n{}", e.tool_name, preview(&e.error)),
        _ => head,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn preview_cuts_long_text_on_char_boundary() {
        let long = "é".repeat(600);
        let p = preview(&long);
        assert!(p.starts_with(&"é".repeat(500)));
        assert!(p.ends_with("[truncated]"));
        assert_eq!(preview("short"), "short");
    }

    #[test]
    fn next_safe_skips_unsafe_indices() {
        let safe = [true, false, false, true, true];
        assert_eq!(next_safe(&safe, 1), 3);
        assert_eq!(next_safe(&safe, 4), 4);
        assert_eq!(next_safe(&safe, 9), 4);
    }
}
