//! Stuck detection (spec §6): patterns in the recent history that mean the agent loops.

use oh_protocol::{Event, Source};

/// Thresholds of the detector (`StuckDetectionThresholds`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Same action with the same observation, this many times.
    pub action_observation: usize,
    /// Same action failing with the same error, more than this many times.
    pub action_error: usize,
    /// Agent messages in a row with nothing else in between.
    pub monologue: usize,
    /// Events in an A-B-A-B alternation.
    pub alternating_pattern: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            action_observation: 4,
            action_error: 3,
            monologue: 3,
            alternating_pattern: 6,
        }
    }
}

/// What the detector concluded before a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing to do.
    Fine,
    /// Not stuck yet, but the same call failed the same way repeatedly: tell the model.
    Nudge {
        /// Id of the newest error event (nudge once per error event).
        error_event_id: String,
        /// The message for the model.
        text: String,
    },
    /// Stuck: stop the run.
    Stuck(&'static str),
}

/// How many trailing events are inspected.
const WINDOW: usize = 20;

/// Inspects `events` (the whole log) and decides.
pub fn check(events: &[Event], thresholds: &Thresholds) -> Verdict {
    let start = events.len().saturating_sub(WINDOW);
    let mut window = &events[start..];
    if let Some(last_user) = window
        .iter()
        .rposition(|e| matches!(e, Event::Message(m) if m.base.source == Source::User))
    {
        window = &window[last_user + 1..];
    }
    let min = thresholds
        .action_observation
        .min(thresholds.action_error)
        .min(thresholds.monologue);
    if window.len() < min {
        return Verdict::Fine;
    }
    let actions: Vec<&Event> = window
        .iter()
        .rev()
        .filter(|e| matches!(e, Event::Action(_)))
        .collect();
    let results: Vec<&Event> = window.iter().rev().filter(|e| is_result(e)).collect();

    if let Some(verdict) = nudge(&actions, &results, thresholds) {
        return verdict;
    }
    let n = thresholds.action_observation;
    if actions.len() >= n
        && results.len() >= n
        && all_same(&actions[..n], same_action)
        && all_same(&results[..n], same_result)
    {
        return Verdict::Stuck("repeated action with the same observation");
    }
    if error_streak(&actions, &results) > thresholds.action_error {
        return Verdict::Stuck("repeated action with the same error");
    }
    if monologue(window) >= thresholds.monologue {
        return Verdict::Stuck("agent monologue");
    }
    let n = thresholds.alternating_pattern;
    if window.len() >= n && actions.len() >= n && results.len() >= n {
        let alternates = |items: &[&Event], eq: fn(&Event, &Event) -> bool| {
            (0..n - 2).all(|i| eq(items[i], items[i + 2]))
        };
        if alternates(&actions[..n], same_action) && alternates(&results[..n], same_result) {
            return Verdict::Stuck("alternating actions and observations");
        }
    }
    Verdict::Fine
}

fn is_result(event: &Event) -> bool {
    matches!(
        event,
        Event::Observation(_) | Event::UserRejectObservation(_) | Event::AgentError(_)
    )
}

fn all_same(items: &[&Event], eq: fn(&Event, &Event) -> bool) -> bool {
    items.windows(2).all(|w| eq(w[0], w[1]))
}

fn same_action(a: &Event, b: &Event) -> bool {
    match (a, b) {
        (Event::Action(a), Event::Action(b)) => {
            a.base.source == b.base.source
                && a.thought == b.thought
                && a.action == b.action
                && a.tool_name == b.tool_name
        }
        _ => false,
    }
}

fn same_result(a: &Event, b: &Event) -> bool {
    match (a, b) {
        (Event::Observation(a), Event::Observation(b)) => {
            a.base.source == b.base.source
                && a.observation == b.observation
                && a.tool_name == b.tool_name
        }
        (Event::AgentError(a), Event::AgentError(b)) => {
            a.base.source == b.base.source && a.error == b.error
        }
        (Event::UserRejectObservation(a), Event::UserRejectObservation(b)) => {
            a.rejection_reason == b.rejection_reason && a.tool_name == b.tool_name
        }
        _ => false,
    }
}

/// Length of the newest streak of the same action answered each time by the same error.
fn error_streak(actions: &[&Event], results: &[&Event]) -> usize {
    let (Some(first_action), Some(Event::AgentError(first_error))) =
        (actions.first(), results.first())
    else {
        return 0;
    };
    actions
        .iter()
        .zip(results)
        .take_while(|(action, result)| {
            same_action(action, first_action)
                && matches!(result, Event::AgentError(e) if e.error == first_error.error)
        })
        .count()
}

fn nudge(actions: &[&Event], results: &[&Event], thresholds: &Thresholds) -> Option<Verdict> {
    if error_streak(actions, results) != thresholds.action_error {
        return None;
    }
    let Some(Event::AgentError(error)) = results.first() else {
        return None;
    };
    Some(Verdict::Nudge {
        error_event_id: error.base.id.clone(),
        text: format!(
            "You have called the `{}` tool {} times in a row with the same arguments, and each \
             time it failed with the same error:\n\n{}\n\nRepeating the call will not help. \
             Change the arguments or take a different approach.",
            error.tool_name, thresholds.action_error, error.error
        ),
    })
}

/// Agent messages at the end of the window with no user message, action or observation in
/// between (environment messages are skipped).
fn monologue(window: &[Event]) -> usize {
    let mut count = 0;
    for event in window.iter().rev() {
        match event {
            Event::Message(m) if m.base.source == Source::Agent => count += 1,
            Event::Message(m) if m.base.source == Source::User => break,
            Event::Message(_) | Event::CondensationSummary(_) => {}
            Event::Action(_)
            | Event::Observation(_)
            | Event::AgentError(_)
            | Event::UserRejectObservation(_) => break,
            _ => {}
        }
    }
    count
}
