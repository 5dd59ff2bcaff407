//! `Conversation::new` on a local workspace and on a `LocalServer`, with one body of code.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use oh_testkit::{PROMPT_TOKENS, Reply};
use openhands::prelude::*;
use openhands::protocol::Source;
use pretty_assertions::assert_eq;
use serde_json::json;

use super::{scripted, scripted_agent};

const TASK: &str = "Say hi in the terminal, then finish.";

/// What one run of the echo script left behind.
struct Outcome {
    conversation: Conversation,
    status: ExecutionStatus,
    events: Vec<Event>,
    seen: Vec<Event>,
}

/// The same code for every workspace: terminal `echo hi`, then `finish`.
async fn echo_conversation(workspace: Workspace) -> Outcome {
    let llm = scripted(vec![
        Reply::tool("terminal", json!({"command": "echo hi"})),
        Reply::tool("finish", json!({"message": "I said hi."})),
    ])
    .await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    // Both closures note each event in one list: every event gets "a" then "b".
    let calls = Arc::new(Mutex::new(Vec::new()));
    let (calls_a, calls_b) = (Arc::clone(&calls), Arc::clone(&calls));
    // Two different closures in one list, as Python's `callbacks=[...]`.
    let conversation = Conversation::new(
        scripted_agent(&llm),
        workspace,
        [
            callback(move |event| {
                calls_a.lock().unwrap().push('a');
                sink.lock().unwrap().push(event.clone());
            }),
            callback(move |_| calls_b.lock().unwrap().push('b')),
        ],
    )
    .await
    .expect("conversation");
    conversation.send_message(TASK).await.expect("send"); // text, as in Python
    let status = conversation.run().await.expect("run");
    let events = conversation.events();
    let seen = seen.lock().unwrap().clone();
    let calls: String = calls.lock().unwrap().iter().collect();
    // A late event may have reached only the first closure yet.
    let pairs = calls.strip_suffix('a').unwrap_or(&calls);
    assert!(
        !pairs.is_empty()
            && pairs.len().is_multiple_of(2)
            && pairs.as_bytes().chunks(2).all(|p| p == b"ab"),
        "each callback sees every event, in list order: {calls}"
    );
    assert_eq!(llm.remaining(), 0, "both scripted replies were used");
    Outcome {
        conversation,
        status,
        events,
        seen,
    }
}

fn text_of(content: &[openhands::protocol::Content]) -> String {
    content
        .iter()
        .filter_map(|c| c.as_text())
        .collect::<Vec<_>>()
        .join("")
}

/// Checks what both kinds of conversation must show after the echo script.
async fn assert_echo_outcome(outcome: &Outcome) {
    assert_eq!(outcome.status, ExecutionStatus::Finished);
    assert_eq!(
        outcome.conversation.status().await.unwrap(),
        ExecutionStatus::Finished
    );

    let user_messages: Vec<String> = outcome
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Message(m) if m.base.source == Source::User => {
                Some(text_of(&m.llm_message.content))
            }
            _ => None,
        })
        .collect();
    assert_eq!(user_messages, vec![TASK.to_owned()]);

    let actions: Vec<&str> = outcome
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Action(a) => Some(a.tool_name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(actions, vec!["terminal", "finish"]);

    let terminal = outcome
        .events
        .iter()
        .find_map(|e| match e {
            Event::Observation(o) => match &o.observation {
                Observation::Terminal(t) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        })
        .expect("a terminal observation");
    assert_eq!(terminal.exit_code, Some(0));
    assert!(
        text_of(&terminal.content).contains("hi"),
        "{:?}",
        terminal.content
    );

    // Every message, action and observation reached the callback, once.
    let seen_ids: Vec<&str> = outcome.seen.iter().filter_map(Event::id).collect();
    let unique: HashSet<&str> = seen_ids.iter().copied().collect();
    assert_eq!(unique.len(), seen_ids.len(), "no event was delivered twice");
    for event in &outcome.events {
        if matches!(
            event,
            Event::Message(_) | Event::Action(_) | Event::Observation(_)
        ) {
            let id = event.id().expect("id");
            assert!(unique.contains(id), "the callback missed {}", event.kind());
        }
    }

    let stats = outcome.conversation.stats().await.unwrap();
    let prompt_tokens = stats.prompt_tokens();
    // Two agent steps; an agent server may also have asked the agent's LLM for a title.
    let calls = prompt_tokens / PROMPT_TOKENS;
    assert_eq!(prompt_tokens % PROMPT_TOKENS, 0);
    if outcome.conversation.is_local() {
        assert_eq!(calls, 2, "two LLM calls were counted");
    } else {
        assert!((2..=3).contains(&calls), "{calls} LLM calls were counted");
    }
    assert_eq!(outcome.conversation.accumulated_cost().await.unwrap(), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_conversation_through_a_local_server() {
    let server = LocalServer::builder()
        .api_key("conversation-key")
        .start()
        .await
        .unwrap();
    let remote = server.workspace().unwrap();
    let outcome = echo_conversation(remote.clone().into()).await;
    assert!(!outcome.conversation.is_local());
    assert!(outcome.conversation.as_remote().is_some());
    assert_echo_outcome(&outcome).await;

    // The factory's conversations are deleted on the server when closed.
    let id = outcome.conversation.id();
    outcome.conversation.close().await;
    let gone = openhands::RemoteConversation::builder(&remote)
        .attach(id)
        .await
        .expect_err("deleted");
    assert!(gone.is_not_found(), "{gone}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn local_conversation_through_the_same_code() {
    let dir = tempfile::tempdir().unwrap();
    let working_dir = dir.path().join("not/yet/there");
    let outcome = echo_conversation(Workspace::local(&working_dir)).await;
    assert!(outcome.conversation.is_local());
    assert!(working_dir.is_dir(), "the working directory was created");
    assert_echo_outcome(&outcome).await;
    outcome.conversation.close().await;
}

/// A run that fails is `Error::Run` whichever side ran it.
async fn failing_run(workspace: Workspace) -> openhands::Error {
    let llm = scripted(vec![Reply::error(400, "this model does not exist")]).await;
    let conversation = Conversation::builder(scripted_agent(&llm), workspace)
        .build()
        .await
        .unwrap();
    conversation.send_text("Do something.").await.unwrap();
    let error = conversation.run().await.expect_err("the LLM refused");
    assert_eq!(conversation.status().await.unwrap(), ExecutionStatus::Error);
    conversation.close().await;
    error
}

fn assert_run_error(error: &openhands::Error) {
    assert!(error.is_run_failure(), "{error:?}");
    let openhands::Error::Run(failure) = error else {
        unreachable!()
    };
    assert_eq!(failure.status, ExecutionStatus::Error);
    assert!(failure.code.is_some(), "the error event's code is carried");
    assert!(
        failure.detail.contains("this model does not exist"),
        "{failure}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_is_a_typed_error_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    assert_run_error(&failing_run(Workspace::local(dir.path())).await);
    let server = LocalServer::start().await.unwrap();
    assert_run_error(&failing_run(server.workspace().unwrap().into()).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn builder_options_reach_the_conversation() {
    let llm = scripted(vec![Reply::tool("finish", json!({"message": "ok"}))]).await;
    let server = LocalServer::start().await.unwrap();
    let workspace = Workspace::from(server.workspace().unwrap());

    let rejected = Conversation::builder(scripted_agent(&llm), &workspace)
        .persistence_dir("somewhere")
        .build()
        .await
        .expect_err("remote conversations are persisted by the server");
    assert!(
        matches!(rejected, openhands::Error::InvalidOption { .. }),
        "{rejected:?}"
    );

    let conversation = Conversation::builder(scripted_agent(&llm), &workspace)
        .tag("suite", "facade")
        .max_iterations(7)
        .delete_on_close(false)
        .autotitle(false)
        .build()
        .await
        .unwrap();
    let info = conversation.as_remote().unwrap().info().await.unwrap();
    assert_eq!(info.tags.get("suite").map(String::as_str), Some("facade"));
    assert_eq!(info.max_iterations, 7);
    conversation.close().await;
    // Not deleted: it can be attached again.
    let again = openhands::RemoteConversation::builder(workspace.as_remote().unwrap())
        .attach(conversation.id())
        .await
        .unwrap();
    again.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_persistence_and_pause() {
    let llm = scripted(vec![]).await;
    let dir = tempfile::tempdir().unwrap();
    let conversation = Conversation::builder(scripted_agent(&llm), Workspace::local(dir.path()))
        .persistence_dir(dir.path().join("state"))
        .build()
        .await
        .unwrap();
    conversation.pause().await.unwrap();
    assert_eq!(
        conversation.status().await.unwrap(),
        ExecutionStatus::Paused
    );
    let stored = dir
        .path()
        .join("state")
        .join(conversation.id().simple().to_string())
        .join("base_state.json");
    assert!(stored.is_file(), "{} exists", stored.display());
    assert!(
        conversation
            .events()
            .iter()
            .any(|e| matches!(e, Event::Pause(_)))
    );
    conversation.close().await;
}
