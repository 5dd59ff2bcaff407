//! Only 4001 and 4004 stop the event socket for good; other losses reconnect.

use super::common;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_callback_does_not_stop_the_stream() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let llm = ScriptedLlm::start(vec![oh_testkit::Reply::tool(
        "finish",
        serde_json::json!({"message": "done"}),
    )])
    .await
    .unwrap();
    let server = TestServer::start(None).await;
    let workspace = RemoteWorkspace::new(server.url(), server.work_dir()).unwrap();
    let counted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&counted);
    let conversation = RemoteConversation::builder(&workspace)
        .agent(agent(&llm.base_url()))
        .autotitle(false)
        .callback(|_| panic!("a careless callback"))
        .callback(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .create()
        .await
        .unwrap();
    conversation.send_text("Finish.").await.unwrap();
    let status = conversation.run().await.unwrap();
    assert_eq!(status, oh_protocol::ExecutionStatus::Finished);
    // The second callback saw the message, the action, its observation and more.
    assert!(counted.load(Ordering::SeqCst) >= 4);
    assert!(conversation.socket_error().is_none());
}
