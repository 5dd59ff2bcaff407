//! `/sockets/session/{id}`: `sync`, replay by `after_seq` with sequence numbers equal to the
//! events' positions in the log, live `durable` frames without duplicates, messages sent on
//! the socket, and its refusals.

use super::common;

use common::{TestServer, agent_json, create_body, ws_open};
use futures::{SinkExt, StreamExt};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "session-socket-key";

async fn next(ws: &mut common::Ws) -> Option<Value> {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .ok()??
            .ok()?;
        match frame {
            Message::Text(text) => return Some(serde_json::from_str(&text).expect("JSON frame")),
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

async fn close_code(ws: &mut common::Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(20), ws.next())
            .await
            .ok()??
        {
            Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn replay_by_seq_then_live_without_duplicates() {
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo first"})),
        Reply::tool("finish", json!({"message": "one"})),
        Reply::text("Second answer."),
    ])
    .await
    .expect("llm");
    let server = TestServer::with_key(KEY).await;
    let created = server
        .post(
            "/api/conversations",
            create_body(agent_json(&llm.base_url()), &server.root().join("work")),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();

    // A first turn, sent over the session socket itself.
    let path = format!("/sockets/session/{id}?after_seq=-1");
    let mut ws = ws_open(server.addr, &path, Some(KEY))
        .await
        .expect("socket");
    let sync = next(&mut ws).await.expect("sync");
    assert_eq!(sync["type"], "sync");
    assert_eq!(sync["from_seq"], -1);
    let message = json!({"role": "user", "content": [{"type": "text", "text": "go"}]});
    ws.send(Message::Text(message.to_string().into()))
        .await
        .expect("send");
    let mut seqs = Vec::new();
    loop {
        let frame = next(&mut ws).await.expect("a frame");
        match frame["type"].as_str() {
            Some("durable") => seqs.push(frame["seq"].as_u64().expect("seq")),
            Some("transient") => {
                if frame["event"]["key"] == "full_state"
                    && frame["event"]["value"]["execution_status"] == "finished"
                {
                    break;
                }
            }
            other => panic!("unexpected frame {other:?}: {frame}"),
        }
    }
    // Durable seqs are the log positions: consecutive, from 0, matching REST's order.
    let log = server.events(&id, 100).await;
    let expected: Vec<u64> = (0..u64::try_from(log.len()).expect("len")).collect();
    assert_eq!(
        seqs,
        expected,
        "durable seqs {seqs:?}, log of {}",
        log.len()
    );
    drop(ws);

    // Reconnect after seq 2: sync names the range, the replay sends 3.. with the same ids.
    let mut ws = ws_open(
        server.addr,
        &format!("/sockets/session/{id}?after_seq=2"),
        Some(KEY),
    )
    .await
    .expect("socket");
    let sync = next(&mut ws).await.expect("sync");
    assert_eq!(sync["from_seq"], 2);
    assert_eq!(sync["through_seq"], log.len() - 1);
    for (seq, event) in log.iter().enumerate().skip(3) {
        let frame = next(&mut ws).await.expect("replayed");
        assert_eq!(frame["type"], "durable");
        assert_eq!(frame["seq"], seq);
        assert_eq!(frame["event"]["id"], event["id"]);
    }
    // Then live: the next turn's events continue the numbering, without duplicates.
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "again"}], "run": true}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let mut next_seq = log.len();
    loop {
        let frame = next(&mut ws).await.expect("live frame");
        if frame["type"] == "durable" {
            assert_eq!(frame["seq"], next_seq, "{frame}");
            next_seq += 1;
        } else if frame["event"]["value"]["execution_status"] == "finished" {
            break;
        }
    }
    assert_eq!(server.events(&id, 100).await.len(), next_seq);

    // Live only: no replay, and sync without from_seq.
    let mut ws = ws_open(server.addr, &format!("/sockets/session/{id}"), Some(KEY))
        .await
        .expect("socket");
    let sync = next(&mut ws).await.expect("sync");
    assert!(sync.get("from_seq").is_none(), "{sync}");
    // A bad frame is an error frame; the socket stays open.
    ws.send(Message::Text("{not json".into()))
        .await
        .expect("send");
    let error = next(&mut ws).await.expect("error frame");
    assert_eq!(error["type"], "error", "{error}");
}

#[tokio::test]
async fn refusals() {
    let server = TestServer::with_key(KEY).await;
    let id = server.idle_conversation().await;
    // A wrong key: the handshake is refused.
    assert!(
        ws_open(
            server.addr,
            &format!("/sockets/session/{id}"),
            Some("wrong")
        )
        .await
        .is_err()
    );
    // An unknown conversation: 4004.
    let mut ws = ws_open(
        server.addr,
        &format!("/sockets/session/{}", uuid::Uuid::new_v4()),
        Some(KEY),
    )
    .await
    .expect("socket");
    assert_eq!(close_code(&mut ws).await, Some(4004));
    // A bad after_seq: 1008.
    let mut ws = ws_open(
        server.addr,
        &format!("/sockets/session/{id}?after_seq=x"),
        Some(KEY),
    )
    .await
    .expect("socket");
    assert_eq!(close_code(&mut ws).await, Some(1008));
}
