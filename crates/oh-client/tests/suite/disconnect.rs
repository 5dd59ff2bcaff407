//! The event stream loses and duplicates nothing while its connection is cut hundreds of
//! times during a run.

use super::common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oh_client::{Backoff, RemoteConversation, RemoteWorkspace};
use oh_protocol::{Event, EventPage, ExecutionStatus};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::json;

use common::{Proxy, TestServer, agent};

/// Event-socket connections cut during the run, at least.
const MIN_CUTS: u64 = 200;

/// Persisted events of a conversation, in storage order, straight from the server.
async fn rest_ids(server: &TestServer, key: &str, id: uuid::Uuid) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut url = format!(
            "{}/api/conversations/{id}/events/search?limit=100",
            server.url()
        );
        if let Some(p) = &page {
            url.push_str(&format!("&page_id={p}"));
        }
        let body = fetch(&url, key).await;
        let events: EventPage = serde_json::from_slice(&body).unwrap();
        ids.extend(
            events
                .items
                .iter()
                .filter_map(|e| e.id().map(str::to_owned)),
        );
        match events.next_page_id {
            Some(next) => page = Some(next),
            None => break,
        }
    }
    ids
}

async fn fetch(url: &str, key: &str) -> Vec<u8> {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let request = hyper::Request::get(url)
        .header("X-Session-API-Key", key)
        .body(Empty::new())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_cuts_during_a_run_lose_and_duplicate_nothing() {
    let key = "disconnect-key";
    let server = TestServer::start(Some(key)).await;
    let proxy = Proxy::start(server.addr).await;
    // A long run: many slow steps, each a real terminal command.
    let steps = 200;
    let mut script: Vec<Reply> = (0..steps)
        .map(|i| {
            Reply::delay(
                15,
                Reply::tool("terminal", json!({"command": format!("echo step-{i}")})),
            )
        })
        .collect();
    script.push(Reply::tool("finish", json!({"message": "done"})));
    let llm = ScriptedLlm::start(script).await.unwrap();

    let workspace = RemoteWorkspace::builder(proxy.url())
        .api_key(key)
        .working_dir(server.work_dir())
        .build()
        .unwrap();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let conversation = RemoteConversation::builder(&workspace)
        .agent(agent(&llm.base_url()))
        .max_iterations(1000)
        .autotitle(false)
        .reconnect_backoff(Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
        })
        .callback(move |event| sink.lock().unwrap().push(event.clone()))
        .create()
        .await
        .unwrap();
    conversation.send_text("Count the steps.").await.unwrap();

    // Cut every event socket 10 ms after it was opened, for as long as the run lasts.
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let chaos = {
        let running = Arc::clone(&running);
        let proxy = Arc::new(proxy);
        let handle = Arc::clone(&proxy);
        let task = tokio::spawn(async move {
            while running.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(10)).await;
                handle.cut_sockets();
            }
        });
        (proxy, task)
    };
    let status = conversation
        .run_with_timeout(Duration::from_secs(300))
        .await
        .unwrap();
    running.store(false, std::sync::atomic::Ordering::SeqCst);
    chaos.1.await.unwrap();
    let cuts = chaos.0.cuts.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(status, ExecutionStatus::Finished);

    let expected = rest_ids(&server, key, conversation.id()).await;
    // Every persisted event: the system prompt, the message, 200 action/observation pairs,
    // the finish action and its observation, and state updates.
    assert!(expected.len() > 2 * steps, "only {} events", expected.len());

    let delivered: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| match e {
            Event::ConversationStateUpdate(u) => u.key != "full_state",
            _ => true,
        })
        .filter_map(|e| e.id().map(str::to_owned))
        .collect();
    let unique: HashSet<&String> = delivered.iter().collect();
    let duplicated = delivered.len() - unique.len();
    let expected_set: HashSet<&String> = expected.iter().collect();
    let lost = expected_set.difference(&unique).count();
    let unknown = unique.difference(&expected_set).count();
    let kept: Vec<String> = conversation
        .events()
        .iter()
        .filter_map(|e| e.id().map(str::to_owned))
        .collect();
    println!(
        "{cuts} cuts, {} client reconnects, {} events persisted, {} delivered, {lost} lost, \
         {duplicated} duplicated",
        conversation.disconnects(),
        expected.len(),
        delivered.len()
    );
    assert!(cuts >= MIN_CUTS, "only {cuts} connections were cut");
    assert!(conversation.disconnects() >= MIN_CUTS);
    assert_eq!(lost, 0, "events lost");
    assert_eq!(duplicated, 0, "events duplicated");
    assert_eq!(unknown, 0, "events delivered that the server does not have");
    assert_eq!(
        kept.len(),
        expected.len(),
        "the event list differs from the server's"
    );
    assert_eq!(
        kept.iter().collect::<HashSet<_>>(),
        expected_set,
        "the event list differs from the server's"
    );
    conversation.close().await;
}
