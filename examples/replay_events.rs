//! Decodes a stream of agent-server events and prints it as a transcript.
//!
//! Input: a JSON array of events (as captured from `/sockets/events/{id}`), or an
//! `events/search` page. Defaults to the WebSocket capture of a scripted run of the Python
//! reference server that `oh-protocol` tests against.
//!
//! ```text
//! cargo run -p openhands-examples --example replay_events [-- FILE]
//! ```
#![allow(clippy::print_stdout, reason = "an example prints its output")]

use anyhow::Context as _;
use openhands::protocol::{Action, Content, Event, EventPage, Observation};

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../crates/oh-protocol/tests/fixtures/WsFrames/run.json"
        )
        .to_owned()
    });
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let events: Vec<Event> = match serde_json::from_str(&text) {
        Ok(events) => events,
        Err(_) => {
            serde_json::from_str::<EventPage>(&text)
                .with_context(|| format!("{path} is neither a list of events nor an event page"))?
                .items
        }
    };
    for event in &events {
        println!("{}", describe(event));
    }
    println!("{} events", events.len());
    Ok(())
}

fn describe(event: &Event) -> String {
    let time = event.timestamp().unwrap_or("?");
    let what = match event {
        Event::SystemPrompt(e) => format!("system prompt with {} tools", e.tools.len()),
        Event::Message(e) => format!(
            "{:?} says {:?}",
            e.llm_message.role,
            text(&e.llm_message.content)
        ),
        Event::Action(e) => match &e.action {
            Some(Action::Terminal(a)) => format!("runs `{}`", a.command),
            Some(Action::FileEditor(a)) => format!("file_editor {:?} {}", a.command, a.path),
            Some(Action::Finish(a)) => format!("finishes: {}", a.message),
            Some(other) => format!("calls {} ({})", e.tool_name, other.kind()),
            None => format!("makes an invalid call to {}", e.tool_name),
        },
        Event::Observation(e) => match &e.observation {
            Observation::Terminal(o) => format!("exit code {:?}", o.exit_code),
            other => format!("{} returned ({})", e.tool_name, other.kind()),
        },
        Event::AgentError(e) => format!("tool error: {}", e.error),
        Event::ConversationStateUpdate(e) if e.key == "full_state" => {
            let status = e
                .value
                .get("execution_status")
                .and_then(|s| s.as_str())
                .unwrap_or("?");
            format!("state snapshot (status {status})")
        }
        Event::ConversationStateUpdate(e) if e.key == "stats" => "usage update".to_owned(),
        Event::ConversationStateUpdate(e) => format!("{} = {}", e.key, e.value),
        other => other.kind().to_owned(),
    };
    format!("{time}  {what}")
}

fn text(content: &[Content]) -> String {
    content
        .iter()
        .filter_map(Content::as_text)
        .collect::<Vec<_>>()
        .join(" ")
}
