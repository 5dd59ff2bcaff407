//! The event tree: every event names its parent (`parent_id`), HEAD is
//! `state.leaf_event_id`, and the active branch is the walk from HEAD back to a root.
//!
//! As in the reference: an event without `parent_id` is the child of the event stored just
//! before it (logs written before the tree existed stay linear), [`ROOT_PARENT_ID`] marks a
//! root started after HEAD was moved to the empty tree, and state-update events are stamped
//! but never become HEAD, so they are not on any branch.

use std::collections::{HashMap, HashSet};

use oh_protocol::{ConversationState, Event};

/// The `parent_id` of an event that starts a new root over a non-empty log.
pub(crate) const ROOT_PARENT_ID: &str = "__root__";

fn parent_id(event: &Event) -> Option<&str> {
    event.base().and_then(|b| b.parent_id.as_deref())
}

/// HEAD as the reference resolves it: the stored leaf; none for a deliberately empty HEAD;
/// otherwise (a log written before the tree) the last event that is not a state artifact.
pub(crate) fn resolved_leaf<'a>(
    events: &'a [Event],
    state: &'a ConversationState,
) -> Option<&'a str> {
    if let Some(leaf) = &state.leaf_event_id {
        return Some(leaf);
    }
    if state.head_is_empty {
        return None;
    }
    events
        .iter()
        .rev()
        .find(|e| {
            !matches!(
                e,
                Event::ConversationStateUpdate(_) | Event::ConversationError(_)
            )
        })
        .and_then(Event::id)
}

/// The events from the root to `leaf`, root first; empty for no leaf. A dangling parent or a
/// cycle (a corrupt log) ends the walk where it is found.
pub(crate) fn path_to_root(events: &[Event], leaf: Option<&str>) -> Vec<Event> {
    let index: HashMap<&str, usize> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.id().map(|id| (id, i)))
        .collect();
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let mut current = leaf.and_then(|id| index.get(id).copied());
    while let Some(i) = current {
        if !seen.insert(i) {
            tracing::warn!(index = i, "cycle in the event tree");
            break;
        }
        let event = &events[i];
        chain.push(event.clone());
        current = match parent_id(event) {
            Some(ROOT_PARENT_ID) => None,
            Some(parent) => index.get(parent).copied(),
            None => i.checked_sub(1),
        };
    }
    chain.reverse();
    chain
}

/// Whether the active branch is the whole log (less the state-update events, which no branch
/// holds): then readers may take the log as it is.
pub(crate) fn is_linear(events: &[Event], state: &ConversationState) -> bool {
    if state.head_is_empty && !events.is_empty() {
        return false;
    }
    let leaf = resolved_leaf(events, state);
    let branch = path_to_root(events, leaf);
    let nodes = events
        .iter()
        .filter(|e| !matches!(e, Event::ConversationStateUpdate(_)));
    let mut on_branch = branch.iter().map(Event::id);
    let linear = nodes.map(Event::id).eq(on_branch.by_ref());
    linear && on_branch.next().is_none()
}

#[cfg(test)]
mod tests {
    use oh_protocol::event::PauseEvent;
    use oh_protocol::{EventBase, Source};

    use super::*;

    fn event(id: &str, parent: Option<&str>) -> Event {
        let mut base = EventBase::new(Source::User, "2026-01-01T00:00:00.000000");
        base.id = id.to_owned();
        base.parent_id = parent.map(str::to_owned);
        Event::Pause(PauseEvent { base })
    }

    fn ids(events: &[Event]) -> Vec<&str> {
        events.iter().filter_map(Event::id).collect()
    }

    #[test]
    fn branches_roots_and_legacy_chains() {
        // a ← b ← c, and d a sibling of c under b; e starts a new root; f has no parent
        // (a log written before the tree): its parent is the event stored before it.
        let log = vec![
            event("a", None),
            event("b", Some("a")),
            event("c", Some("b")),
            event("d", Some("b")),
            event("e", Some(ROOT_PARENT_ID)),
            event("f", None),
        ];
        assert_eq!(ids(&path_to_root(&log, Some("c"))), ["a", "b", "c"]);
        assert_eq!(ids(&path_to_root(&log, Some("d"))), ["a", "b", "d"]);
        assert_eq!(ids(&path_to_root(&log, Some("e"))), ["e"]);
        assert_eq!(ids(&path_to_root(&log, Some("f"))), ["e", "f"]);
        assert!(path_to_root(&log, None).is_empty());
        assert!(path_to_root(&log, Some("unknown")).is_empty());
    }

    #[test]
    fn a_cycle_ends_the_walk() {
        let log = vec![event("a", Some("b")), event("b", Some("a"))];
        assert_eq!(ids(&path_to_root(&log, Some("b"))), ["a", "b"]);
    }

    #[test]
    fn linear_until_head_moves() {
        let log = vec![
            event("a", None),
            event("b", Some("a")),
            event("c", Some("b")),
        ];
        let mut state: ConversationState = serde_json::from_value(serde_json::json!({
            "id": "00000000-0000-0000-0000-000000000001",
            "agent": {"kind": "Agent", "llm": {"model": "m"}},
            "workspace": {"kind": "LocalWorkspace", "working_dir": "/w"},
        }))
        .expect("state");
        state.leaf_event_id = Some("c".into());
        assert!(is_linear(&log, &state));
        state.leaf_event_id = Some("b".into());
        assert!(!is_linear(&log, &state));
        state.leaf_event_id = None;
        assert!(is_linear(&log, &state), "an unset HEAD is the last event");
        state.head_is_empty = true;
        assert!(!is_linear(&log, &state));
    }
}
