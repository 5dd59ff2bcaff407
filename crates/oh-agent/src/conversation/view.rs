//! What the LLM sees: the event log projected to messages.
//!
//! 1. Condensations are applied in order (forgotten events dropped, the summary inserted at
//!    its offset as a user message).
//! 2. Tool calls without a result and results without a call are left out, so the provider
//!    never sees an unanswered `tool_use` (the reference's cold-load repair, applied always).
//! 3. A user message that arrived while a batch of tool calls was unresolved is moved after
//!    the batch's results: tool results always directly follow their calls.
//! 4. Consecutive actions of one LLM response become one assistant message (parallel calls);
//!    consecutive plain user messages are merged into one.

use std::collections::HashSet;

use oh_protocol::event::{ActionEvent, CondensationSummaryEvent};
use oh_protocol::{Content, Event, Message, ObservationEvent, Role, Source, TextContent};

/// Text sent for a rejected action.
pub fn rejection_text(reason: &str) -> String {
    format!("Action rejected: {reason}")
}

/// An event the LLM can see.
#[derive(Debug, Clone)]
enum Item<'a> {
    Event(&'a Event),
    Summary(CondensationSummaryEvent),
}

impl Item<'_> {
    fn event(&self) -> Option<&Event> {
        match self {
            Item::Event(e) => Some(e),
            Item::Summary(_) => None,
        }
    }
}

fn is_llm_convertible(event: &Event) -> bool {
    matches!(
        event,
        Event::SystemPrompt(_)
            | Event::Message(_)
            | Event::Action(_)
            | Event::Observation(_)
            | Event::UserRejectObservation(_)
            | Event::AgentError(_)
            | Event::CondensationSummary(_)
    )
}

/// The tool call id an observation-like event answers.
pub(super) fn result_call_id(event: &Event) -> Option<&str> {
    match event {
        Event::Observation(o) => Some(&o.tool_call_id),
        Event::UserRejectObservation(o) => Some(&o.tool_call_id),
        Event::AgentError(e) if !e.tool_call_id.is_empty() => Some(&e.tool_call_id),
        _ => None,
    }
}

/// The LLM-visible events after condensations, as owned-or-borrowed items.
fn visible(events: &[Event]) -> Vec<Item<'_>> {
    let mut view: Vec<Item<'_>> = Vec::new();
    for event in events {
        match event {
            Event::Condensation(c) => {
                let forgotten: HashSet<&str> =
                    c.forgotten_event_ids.iter().map(String::as_str).collect();
                view.retain(|item| match item {
                    Item::Event(e) => !e.id().is_some_and(|id| forgotten.contains(id)),
                    Item::Summary(s) => !forgotten.contains(s.base.id.as_str()),
                });
                if let (Some(summary), Some(offset)) = (&c.summary, c.summary_offset) {
                    let mut base = c.base.clone();
                    base.id = format!("{}-summary", c.base.id);
                    base.source = Source::Environment;
                    let item = Item::Summary(CondensationSummaryEvent {
                        base,
                        summary: summary.clone(),
                    });
                    let at = usize::try_from(offset)
                        .unwrap_or(usize::MAX)
                        .min(view.len());
                    view.insert(at, item);
                }
            }
            e if is_llm_convertible(e) => view.push(Item::Event(e)),
            _ => {}
        }
    }
    view
}

/// The LLM-visible events after condensations (summaries as `CondensationSummaryEvent`s),
/// in order: the view the condenser works on. Its indices are the ones a `Condensation`'s
/// `summary_offset` refers to.
pub(crate) fn condensed_view(events: &[Event]) -> Vec<Event> {
    visible(events)
        .into_iter()
        .map(|item| match item {
            Item::Event(e) => e.clone(),
            Item::Summary(s) => Event::CondensationSummary(s),
        })
        .collect()
}

/// Projects `events` to LLM messages. `observation_content` renders a tool observation
/// (tool-specific: the terminal adds its cwd/exit-code lines and truncation).
pub fn events_to_messages(
    events: &[Event],
    observation_content: &dyn Fn(&ObservationEvent) -> Vec<Content>,
) -> Vec<Message> {
    let view = visible(events);

    // Calls that have a result, and results that have a call.
    let called: HashSet<&str> = view
        .iter()
        .filter_map(|i| match i.event() {
            Some(Event::Action(a)) => Some(a.tool_call_id.as_str()),
            _ => None,
        })
        .collect();
    let answered: HashSet<&str> = view
        .iter()
        .filter_map(|i| i.event().and_then(result_call_id))
        .collect();
    let keep = |item: &Item<'_>| match item.event() {
        Some(Event::Action(a)) => answered.contains(a.tool_call_id.as_str()),
        Some(e) => result_call_id(e).is_none_or(|id| called.contains(id)),
        None => true,
    };
    let view: Vec<Item<'_>> = view.iter().filter(|i| keep(i)).cloned().collect();

    // Move user messages out of unresolved batches.
    let mut ordered: Vec<Item<'_>> = Vec::with_capacity(view.len());
    let mut open: HashSet<&str> = HashSet::new();
    let mut deferred: Vec<Item<'_>> = Vec::new();
    for item in &view {
        match item.event() {
            Some(Event::Action(a)) => {
                open.insert(a.tool_call_id.as_str());
                ordered.push(item.clone());
            }
            Some(e) if result_call_id(e).is_some() => {
                if let Some(id) = result_call_id(e) {
                    open.remove(id);
                }
                ordered.push(item.clone());
                if open.is_empty() {
                    ordered.append(&mut deferred);
                }
            }
            _ if !open.is_empty() => deferred.push(item.clone()),
            _ => ordered.push(item.clone()),
        }
    }
    ordered.append(&mut deferred);

    let mut messages: Vec<Message> = Vec::with_capacity(ordered.len());
    let mut batch_response: Option<&str> = None;
    for item in &ordered {
        if let Some(Event::Action(action)) = item.event() {
            if batch_response == Some(action.llm_response_id.as_str())
                && let Some(last) = messages.last_mut()
                && let Some(calls) = last.tool_calls.as_mut()
            {
                calls.push(action.tool_call.clone());
                continue;
            }
            batch_response = Some(action.llm_response_id.as_str());
            messages.push(action_message(action));
            continue;
        }
        batch_response = None;
        let message = match item {
            Item::Summary(s) => Message::user(s.summary.clone()),
            Item::Event(event) => match event_message(event, observation_content) {
                Some(m) => m,
                None => continue,
            },
        };
        if is_plain_user(&message)
            && let Some(last) = messages.last_mut()
            && is_plain_user(last)
        {
            last.content.extend(message.content);
            continue;
        }
        messages.push(message);
    }
    messages
}

fn is_plain_user(message: &Message) -> bool {
    message.role == Role::User && message.tool_calls.is_none() && message.tool_call_id.is_none()
}

fn text(text: impl Into<String>) -> Content {
    Content::Text(TextContent::new(text))
}

fn action_message(action: &ActionEvent) -> Message {
    let mut message = Message::new(Role::Assistant, Vec::new());
    message.content = action.thought.iter().cloned().map(Content::Text).collect();
    message.tool_calls = Some(vec![action.tool_call.clone()]);
    message.reasoning_content = action.reasoning_content.clone();
    message.thinking_blocks = action.thinking_blocks.clone();
    message.responses_reasoning_item = action.responses_reasoning_item.clone();
    message
}

fn tool_message(tool_call_id: &str, name: &str, content: Vec<Content>) -> Message {
    let mut message = Message::new(Role::Tool, Vec::new());
    message.content = content;
    message.tool_call_id = Some(tool_call_id.to_owned());
    message.name = Some(name.to_owned());
    message
}

fn event_message(
    event: &Event,
    observation_content: &dyn Fn(&ObservationEvent) -> Vec<Content>,
) -> Option<Message> {
    Some(match event {
        Event::SystemPrompt(e) => {
            let mut message = Message::new(Role::System, Vec::new());
            message.content.push(Content::Text(e.system_prompt.clone()));
            if let Some(dynamic) = &e.dynamic_context {
                message.content.push(Content::Text(dynamic.clone()));
            }
            message
        }
        Event::Message(e) => {
            let mut message = e.llm_message.clone();
            message
                .content
                .extend(e.extended_content.iter().cloned().map(Content::Text));
            message
        }
        Event::Observation(e) => {
            let mut content = observation_content(e);
            content.extend(e.extended_content.iter().cloned().map(Content::Text));
            tool_message(&e.tool_call_id, &e.tool_name, content)
        }
        Event::UserRejectObservation(e) => tool_message(
            &e.tool_call_id,
            &e.tool_name,
            vec![text(rejection_text(&e.rejection_reason))],
        ),
        Event::AgentError(e) => {
            tool_message(&e.tool_call_id, &e.tool_name, vec![text(e.error.clone())])
        }
        Event::CondensationSummary(e) => Message::user(e.summary.clone()),
        _ => return None,
    })
}
