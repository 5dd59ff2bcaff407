//! The conversation catalogue under concurrency: metadata writes reach the disk in order, and
//! listing many stored conversations never holds up the async workers.

use super::common;

use std::time::{Duration, Instant};

use common::TestServer;
use hyper::Method;
use serde_json::{Value, json};

/// `meta.json` of a conversation, as on disk.
fn meta_on_disk(server: &TestServer, id: &str) -> Value {
    let dir = id.replace('-', "");
    let path = server
        .root()
        .join("conversations")
        .join(dir)
        .join("meta.json");
    serde_json::from_slice(&std::fs::read(&path).expect("meta.json")).expect("meta.json is JSON")
}

/// Concurrent `PATCH`es: once every one was answered, the title on disk is the one `GET`
/// returns (an acknowledged update must survive a crash, so it must be on disk).
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_updates_reach_the_disk_in_order() {
    use http_body_util::{BodyExt, Full};
    let server = TestServer::start().await;
    let id = server.idle_conversation().await;
    let url = server.url(&format!("/api/conversations/{id}"));
    // One pooled client, so the requests of a round really run at once.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    for round in 0..60 {
        let patches = (0..100).map(|i| {
            let client = client.clone();
            let url = url.clone();
            async move {
                let body = json!({"title": format!("title-{round}-{i}")});
                let request = hyper::Request::builder()
                    .method(Method::PATCH)
                    .uri(url)
                    .header("content-type", "application/json")
                    .body(Full::new(bytes::Bytes::from(body.to_string())))
                    .expect("request");
                let reply = client.request(request).await.expect("PATCH");
                assert_eq!(reply.status(), 200);
                let body = reply.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(body.as_ref(), br#"{"success":true}"#);
            }
        });
        futures::future::join_all(patches.map(tokio::spawn))
            .await
            .into_iter()
            .for_each(|done| done.expect("PATCH task"));
        let live = server.get(&format!("/api/conversations/{id}")).await.json();
        let disk = meta_on_disk(&server, &id);
        assert_eq!(
            disk["title"], live["title"],
            "round {round}: meta.json is behind the acknowledged state"
        );
    }
}

/// Writes `count` stored conversations next to `template` (a conversation directory written
/// by the server), each a copy with its own id.
fn clone_conversations(root: &std::path::Path, template: &str, count: usize) {
    let source = root.join(template);
    let state = std::fs::read_to_string(source.join("base_state.json")).expect("base_state");
    let meta = std::fs::read_to_string(source.join("meta.json")).expect("meta");
    let dashed = uuid_dashed(template);
    for n in 0..count {
        let id = format!("{n:08x}00004000800000000000{:04x}", n % 0xffff);
        let new_dashed = uuid_dashed(&id);
        let dir = root.join(&id);
        std::fs::create_dir_all(dir.join("events")).expect("dir");
        let state = state.replace(template, &id).replace(&dashed, &new_dashed);
        let meta = meta.replace(template, &id).replace(&dashed, &new_dashed);
        std::fs::write(dir.join("base_state.json"), state).expect("write");
        std::fs::write(dir.join("meta.json"), meta).expect("write");
    }
}

fn uuid_dashed(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// 2,000 stored conversations and 6 concurrent searches: `/health` keeps answering while
/// they run. The server runs on this test's single-threaded runtime, so blocking disk I/O
/// in a handler stops everything else: before the fix, one probe got through, after
/// 7.8 s (debug build); after it, hundreds, the slowest in ~0.1 s on a loaded 2-core machine
/// (the searches themselves take seconds in a debug build).
#[tokio::test(flavor = "current_thread")]
async fn searching_many_stored_conversations_does_not_stall_the_server() {
    const STORED: usize = 2000;
    let server = TestServer::start().await;
    let template = server.idle_conversation().await.replace('-', "");
    let root = server.stop().await;
    clone_conversations(&root.path().join("conversations"), &template, STORED - 1);
    let server = TestServer::start_in(root, None, |_| {}).await;

    let count = server.get("/api/conversations/count").await;
    assert_eq!(count.json(), json!(STORED));

    let searches = tokio::spawn({
        let urls: Vec<String> = (0..6)
            .map(|n| {
                let status = if n % 2 == 0 { "&status=idle" } else { "" };
                server.url(&format!(
                    "/api/conversations/search?limit=5&sort_order=UPDATED_AT_DESC{status}"
                ))
            })
            .collect();
        async move {
            let replies = urls.into_iter().map(|url| async move {
                let started = Instant::now();
                let reply = common::send(Method::GET, &url, &[], None).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                assert_eq!(reply.json()["items"].as_array().map(Vec::len), Some(5));
                started.elapsed()
            });
            futures::future::join_all(replies).await
        }
    });
    let health = server.url("/health");
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    while !searches.is_finished() {
        let started = Instant::now();
        let reply = common::send(Method::GET, &health, &[], None).await;
        assert_eq!(reply.status, 200);
        worst = worst.max(started.elapsed());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = searches.await.expect("searches");
    let slowest = took.iter().max().copied().unwrap_or_default();
    eprintln!("{probes} /health probes, worst {worst:?}; slowest search {slowest:?}");
    assert!(
        probes >= 10,
        "only {probes} /health probes answered while the searches ran for {slowest:?}"
    );
    assert!(
        worst < Duration::from_millis(500) && worst < slowest / 4,
        "/health took {worst:?} while searches ran ({probes} probes, slowest search {slowest:?})"
    );
}
