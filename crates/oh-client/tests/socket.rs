//! Only 4001 and 4004 stop the event socket for good; other losses reconnect.
#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::Duration;

use oh_client::{Backoff, Error, RemoteConversation, RemoteWorkspace};
use oh_testkit::ScriptedLlm;

use common::{TestServer, agent, eventually};

fn quick() -> Backoff {
    Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
    }
}

async fn open(server: &TestServer, key: &str, llm: &ScriptedLlm) -> RemoteConversation {
    let workspace = RemoteWorkspace::builder(server.url())
        .api_key(key)
        .working_dir(server.work_dir())
        .build()
        .unwrap();
    RemoteConversation::builder(&workspace)
        .agent(agent(&llm.base_url()))
        .autotitle(false)
        .reconnect_backoff(quick())
        .create()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_conversation_after_a_reconnect_is_fatal() {
    let llm = ScriptedLlm::start(vec![]).await.unwrap();
    let first = TestServer::start(Some("k")).await;
    let port = first.addr.port();
    let conversation = open(&first, "k", &llm).await;
    assert!(conversation.socket_error().is_none());
    first.stop().await;
    // A new server on the same port that never heard of the conversation.
    let _second = TestServer::start_at(Some("k"), port).await;
    eventually(Duration::from_secs(10), "the 4004 close", || {
        conversation.socket_error().is_some()
    })
    .await;
    match conversation.socket_error() {
        Some(Error::SocketClosed { code: 4004, .. }) => {}
        other => panic!("expected a 4004 close, got {other:?}"),
    }
    assert!(conversation.disconnects() >= 1);
    let refused = conversation.send_text("hello").await;
    assert!(
        matches!(refused, Err(Error::SocketClosed { code: 4004, .. })),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_after_a_reconnect_is_fatal() {
    let llm = ScriptedLlm::start(vec![]).await.unwrap();
    let first = TestServer::start(Some("old-key")).await;
    let port = first.addr.port();
    let conversation = open(&first, "old-key", &llm).await;
    first.stop().await;
    let _second = TestServer::start_at(Some("new-key"), port).await;
    eventually(Duration::from_secs(10), "the 4001 close", || {
        conversation.socket_error().is_some()
    })
    .await;
    assert!(
        matches!(
            conversation.socket_error(),
            Some(Error::SocketClosed { code: 4001, .. })
        ),
        "{:?}",
        conversation.socket_error()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_is_survived() {
    let llm = ScriptedLlm::start(vec![]).await.unwrap();
    let first = TestServer::start(Some("k")).await;
    let conversation = open(&first, "k", &llm).await;
    let before = conversation.disconnects();
    // Dropping the server's connections without a fatal code: the socket keeps trying.
    first.stop().await;
    eventually(Duration::from_secs(10), "a reconnect attempt", || {
        conversation.disconnects() > before
    })
    .await;
    assert!(conversation.socket_error().is_none());
}
