//! Fan-out: a subscriber that never reads does not hold up the conversation, and one that
//! reads slowly still gets every persisted event once, in order.

use super::common;

use std::time::{Duration, Instant};

use common::{Socket, TestServer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_and_slow_subscribers_do_not_stall_or_lose_events() {
    // A small buffer, so the slow subscriber falls behind and catches up from the log.
    let server = TestServer::start_with(None, |config| config.subscriber_buffer = 32).await;
    let id = server.idle_conversation().await;

    // A subscriber that never reads a frame.
    let mut stalled = Socket::connect(&server, &id).await;
    // A subscriber that reads, slowly.
    let slow = Socket::connect(&server, &id).await;
    let total = 1000;
    let expected = 2 * total + 1;
    let reader = tokio::spawn(async move {
        let mut slow = slow;
        let mut ids = Vec::new();
        let mut snapshots = 0;
        while ids.len() < expected {
            let Some(frame) = slow.next().await else {
                break;
            };
            if frame["key"] == "full_state" {
                snapshots += 1;
                continue;
            }
            ids.push(frame["id"].as_str().expect("id").to_owned());
            if ids.len() % 16 == 0 {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
        (ids, snapshots)
    });

    let padding = "x".repeat(64 * 1024);
    let started = Instant::now();
    for i in 0..total {
        let text = if i + 1 == total {
            format!("last {padding}")
        } else {
            format!("message {i} {padding}")
        };
        let reply = server
            .post(
                &format!("/api/conversations/{id}/events"),
                json!({"role": "user", "content": text, "run": false}),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(60),
        "sending took {elapsed:?} with a stalled subscriber"
    );

    let (ids, snapshots) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("slow reader finished")
        .expect("reader");
    let stored: Vec<String> = server
        .events(&id, 100)
        .await
        .iter()
        .map(|e| e["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        stored.len(),
        expected,
        "system prompt + message and update per send"
    );
    same_sequence(&ids, &stored, "slow subscriber");
    assert!(snapshots >= 1);
    // The stalled one fell far behind (tens of MiB): it now reads everything, caught up from
    // the log, still every event once and in order, and a fresh snapshot after the catch-up.
    let first = stalled.next().await.expect("first frame");
    assert_eq!(first["key"], "full_state");
    let mut caught_up = Vec::new();
    let mut stalled_snapshots = 0;
    while caught_up.len() < stored.len() {
        let frame = stalled.next().await.expect("frame");
        if frame["key"] == "full_state" {
            stalled_snapshots += 1;
        } else {
            caught_up.push(frame["id"].as_str().expect("id").to_owned());
        }
    }
    same_sequence(&caught_up, &stored, "stalled subscriber");
    // It fell behind, so it caught up from the log and then got a fresh snapshot.
    if stalled_snapshots == 0 {
        let after = stalled.next().await.expect("snapshot after the catch-up");
        assert_eq!(after["key"], "full_state");
    }
}

/// Every event once, in order (reports the first difference, not the whole lists).
fn same_sequence(got: &[String], want: &[String], who: &str) {
    let first_difference = got.iter().zip(want).position(|(a, b)| a != b);
    if let Some(i) = first_difference {
        let index = |id: &String| want.iter().position(|w| w == id);
        let window: Vec<Option<usize>> = got[i.saturating_sub(3)..(i + 5).min(got.len())]
            .iter()
            .map(index)
            .collect();
        eprintln!("{who}: positions in the log of the events received around {i}: {window:?}");
    }
    assert!(
        got.len() == want.len() && first_difference.is_none(),
        "{who}: got {} events, want {}; first difference at {first_difference:?}",
        got.len(),
        want.len()
    );
}
