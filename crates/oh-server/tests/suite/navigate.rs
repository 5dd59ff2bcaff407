//! `POST /api/conversations/{id}/navigate`: HEAD moves to an event of the log (or to the empty
//! tree), the agent continues from there, nothing is removed, and the new HEAD survives a
//! restart.

use super::common;

use common::{Socket, TestServer, agent_json, create_body};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

const KEY: &str = "navigate-key";

fn user_text(text: &str) -> Value {
    json!({"role": "user", "content": [{"type": "text", "text": text}], "run": true})
}

/// The texts of the messages of one LLM request, in order.
fn texts(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| match &m["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<String>(),
            _ => String::new(),
        })
        .collect()
}

async fn final_response(server: &TestServer, id: &str) -> Value {
    let path = format!("/api/conversations/{id}/agent_final_response");
    server.get(&path).await.json()["response"].clone()
}

#[tokio::test]
async fn navigate_moves_head_and_the_agent_continues_from_there() {
    let llm = ScriptedLlm::start(vec![Reply::text("answer one"), Reply::text("answer two")])
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
    let mut socket = Socket::connect(&server, &id).await;
    assert_eq!(
        socket.next().await.expect("first frame")["key"],
        "full_state"
    );
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            user_text("first question"),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(socket.run_ends_in().await, "finished");
    assert_eq!(final_response(&server, &id).await, "answer one");

    let before = server.events(&id, 100).await;
    let question = before
        .iter()
        .find(|e| e["kind"] == "MessageEvent" && e["source"] == "user")
        .expect("the user's message");
    let question_id = question["id"].as_str().expect("id").to_owned();

    let moved = server
        .post(
            &format!("/api/conversations/{id}/navigate"),
            json!({"event_id": question_id}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_eq!(moved.json()["id"], id);
    assert_eq!(moved.json()["leaf_event_id"], question_id.as_str());
    let got = server.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(got.json()["leaf_event_id"], question_id.as_str());
    // The answer is on the branch left behind: it is no longer the final response, but it is
    // still in the log.
    assert_eq!(final_response(&server, &id).await, "");
    assert_eq!(server.events(&id, 100).await.len(), before.len());

    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            user_text("second question"),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(socket.run_ends_in().await, "finished");
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let seen = texts(&requests[1].body);
    assert!(
        seen.iter().any(|t| t.contains("first question")),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|t| t.contains("second question")),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|t| t.contains("answer one")), "{seen:?}");
    assert_eq!(final_response(&server, &id).await, "answer two");

    let after = server.events(&id, 100).await;
    let second = after
        .iter()
        .find(|e| e["kind"] == "MessageEvent" && e.to_string().contains("second question"))
        .expect("the second message");
    assert_eq!(
        second["parent_id"],
        question_id.as_str(),
        "a sibling of the old answer"
    );
    assert!(after.iter().any(|e| e.to_string().contains("answer one")));

    // The empty tree: the next event starts a new root.
    let emptied = server
        .post(
            &format!("/api/conversations/{id}/navigate"),
            json!({"event_id": null}),
        )
        .await;
    assert_eq!(emptied.status, 200, "{}", emptied.text());
    assert_eq!(emptied.json()["leaf_event_id"], Value::Null);
    assert_eq!(final_response(&server, &id).await, "");
}

#[tokio::test]
async fn navigate_rejects_unknown_ids_and_bad_bodies() {
    let server = TestServer::with_key(KEY).await;
    let id = server.idle_conversation().await;
    let path = format!("/api/conversations/{id}/navigate");

    let unknown_event = server.post(&path, json!({"event_id": "nope"})).await;
    assert_eq!(unknown_event.status, 404, "{}", unknown_event.text());
    assert_eq!(unknown_event.json()["detail"], "Unknown event_id: nope");

    let unknown = server
        .post(
            &format!("/api/conversations/{}/navigate", uuid::Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(unknown.json()["detail"], "Conversation not found");

    for body in [json!({"event_id": 5}), json!([1]), json!("x")] {
        let reply = server.post(&path, body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text());
        assert!(reply.json()["detail"].is_array(), "{}", reply.text());
    }
    let missing = server.call(hyper::Method::POST, &path, None).await;
    assert_eq!(missing.status, 422, "{}", missing.text());
    let bad_id = server
        .post("/api/conversations/not-a-uuid/navigate", json!({}))
        .await;
    assert_eq!(bad_id.status, 422, "{}", bad_id.text());

    // `{}` is the empty tree.
    let emptied = server.post(&path, json!({})).await;
    assert_eq!(emptied.status, 200, "{}", emptied.text());
    assert_eq!(emptied.json()["leaf_event_id"], Value::Null);
}

#[tokio::test]
async fn the_new_head_survives_a_restart() {
    let server = TestServer::with_key(KEY).await;
    let id = server.idle_conversation().await;
    // An idle conversation's log starts with its system prompt only once it is used; send a
    // message without running, so that there is an event to go back to.
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "hello"}], "run": false}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let events = server.events(&id, 100).await;
    let first = events
        .iter()
        .find(|e| e["kind"] == "SystemPromptEvent")
        .expect("system prompt")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let moved = server
        .post(
            &format!("/api/conversations/{id}/navigate"),
            json!({"event_id": first}),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text());

    let dir = server.stop().await;
    let server = TestServer::start_in(dir, Some(KEY), |_| {}).await;
    let got = server.get(&format!("/api/conversations/{id}")).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["leaf_event_id"], first.as_str());
}
