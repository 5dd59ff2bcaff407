//! `POST /api/conversations/{id}/fork`: a copy of the events (all, or up to an event), the
//! agent with its key and the secrets, in `idle`, that runs on its own; and `…/runtime`.

use super::common;

use common::{Socket, TestServer, agent_json, create_body};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::json;

#[tokio::test]
async fn a_fork_copies_the_history_and_runs_on_its_own() {
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo [$FORK_SECRET]"})),
        Reply::tool("finish", json!({"message": "source done"})),
        Reply::text("The fork continues."),
    ])
    .await
    .expect("llm");
    let server = TestServer::with_key("fork-key").await;
    let mut body = create_body(agent_json(&llm.base_url()), &server.root().join("work"));
    body["secrets"] = json!({"FORK_SECRET": "fork-secret-value"});
    let created = server.post("/api/conversations", body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let mut socket = Socket::connect(&server, &id).await;
    assert_eq!(
        socket.next().await.expect("initial frame")["key"],
        "full_state"
    );
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "go"}], "run": true}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(socket.run_ends_in().await, "finished");
    let source_events = server.events(&id, 100).await;

    // Defaults (no body): everything copied, idle, fresh stats, no title, no tags.
    let forked = server
        .call(
            hyper::Method::POST,
            &format!("/api/conversations/{id}/fork"),
            None,
        )
        .await;
    assert_eq!(forked.status, 201, "{}", forked.text());
    let info = forked.json();
    let fork_id = info["id"].as_str().expect("id").to_owned();
    assert_ne!(fork_id, id);
    assert_eq!(info["execution_status"], "idle");
    assert_eq!(info["title"], serde_json::Value::Null);
    let fork_events = server.events(&fork_id, 100).await;
    let ids = |events: &[serde_json::Value]| {
        events
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&fork_events), ids(&source_events));
    assert!(!forked.text().contains("fork-secret-value"));

    // The fork runs with the agent's key and the secrets; the source does not change.
    let mut fork_socket = Socket::connect(&server, &fork_id).await;
    assert_eq!(
        fork_socket.next().await.expect("initial frame")["key"],
        "full_state"
    );
    let sent = server
        .post(
            &format!("/api/conversations/{fork_id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "continue"}], "run": true}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(fork_socket.run_ends_in().await, "finished");
    assert_eq!(server.events(&id, 100).await.len(), source_events.len());
    assert!(server.events(&fork_id, 100).await.len() > fork_events.len());
    let last = llm.requests().last().expect("a request").clone();
    assert_eq!(last.header("authorization"), Some("Bearer sk-test"));

    // Up to an event; the title's limit; conflicts and unknowns.
    let first = &source_events[1]["id"];
    let partial = server
        .post(
            &format!("/api/conversations/{id}/fork"),
            json!({"from_event_id": first, "title": "partial", "tags": {"k": "v"}}),
        )
        .await;
    assert_eq!(partial.status, 201, "{}", partial.text());
    assert_eq!(partial.json()["title"], "partial");
    assert_eq!(partial.json()["tags"], json!({"k": "v"}));
    let partial_id = partial.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(server.events(&partial_id, 100).await.len(), 2);
    for (body, status) in [
        (json!({"id": fork_id}), 409),
        (json!({"from_event_id": "nope"}), 404),
        (json!({"title": "x".repeat(201)}), 422),
        (json!({"reset_metrics": "maybe"}), 422),
    ] {
        let reply = server
            .post(&format!("/api/conversations/{id}/fork"), body.clone())
            .await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        assert!(reply.json()["detail"].is_string() || reply.json()["detail"].is_array());
    }
    let unknown = server
        .post(
            &format!("/api/conversations/{}/fork", uuid::Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn the_runtime_of_a_conversation_is_always_available() {
    let server = TestServer::with_key("runtime-key").await;
    let id = server.idle_conversation().await;
    let expected =
        json!({"runtime_status": "available", "can_resume": true, "runtime_error": null});
    let got = server
        .get(&format!("/api/conversations/{id}/runtime"))
        .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json(), expected);
    let reprovisioned = server
        .post(
            &format!("/api/conversations/{id}/runtime/reprovision"),
            json!({}),
        )
        .await;
    assert_eq!(reprovisioned.json(), expected);
    let unknown = server
        .get(&format!(
            "/api/conversations/{}/runtime",
            uuid::Uuid::new_v4()
        ))
        .await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["detail"].is_string());
}
