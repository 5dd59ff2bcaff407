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
