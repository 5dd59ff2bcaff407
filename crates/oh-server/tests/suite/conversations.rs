//! Conversation lifecycle over REST and the event socket, with the scripted LLM over HTTP.

use super::common;

use common::{Socket, TestServer, agent_json, create_body};
use hyper::Method;
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

async fn create(server: &TestServer, llm: &ScriptedLlm) -> String {
    let work = server.root().join("work");
    let reply = server
        .post(
            "/api/conversations",
            create_body(agent_json(&llm.base_url()), &work),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn message_run_and_stream_as_the_sdk_sees_them() {
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo hello-from-tool"})),
        Reply::tool("finish", json!({"message": "all done"})),
    ])
    .await
    .expect("llm");
    let server = TestServer::with_key("sekrit").await;
    let id = create(&server, &llm).await;

    let info = server.get(&format!("/api/conversations/{id}")).await.json();
    assert_eq!(info["execution_status"], "idle");
    assert_eq!(
        info["agent"]["llm"]["api_key"],
        Value::Null,
        "secrets are null in REST"
    );
    assert_eq!(info["workspace"]["kind"], "LocalWorkspace");
    assert!(
        info["persistence_dir"]
            .as_str()
            .expect("dir")
            .ends_with(&id.replace('-', ""))
    );

    let mut socket = Socket::connect(&server, &id).await;
    let first = socket.next().await.expect("initial frame");
    assert_eq!(first["kind"], "ConversationStateUpdateEvent");
    assert_eq!(first["key"], "full_state");
    assert_eq!(first["value"]["agent"]["llm"]["api_key"], "**********");

    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "say hello"}], "run": false}),
        )
        .await;
    assert_eq!(sent.json(), json!({"success": true}));
    let run = server
        .post(&format!("/api/conversations/{id}/run"), json!(null))
        .await;
    assert_eq!(run.status, 200, "{}", run.text());
    let frames = socket.until_run_ends().await;
    let last = frames.last().expect("frames");
    assert_eq!(last["value"]["execution_status"], "finished");
    assert!(last.get("parent_id").is_none());

    let events = server.events(&id, 3).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds[0], "SystemPromptEvent");
    assert!(kinds.contains(&"ActionEvent") && kinds.contains(&"ObservationEvent"));
    let observation = events
        .iter()
        .find(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == "terminal")
        .expect("terminal observation");
    assert_eq!(observation["observation"]["exit_code"], 0);
    // Every persisted event streamed live was also delivered on the socket, in order.
    let streamed: Vec<&Value> = frames.iter().filter(|f| f["key"] != "full_state").collect();
    let streamed_ids: Vec<&Value> = streamed.iter().map(|f| &f["id"]).collect();
    let stored_ids: Vec<&Value> = events.iter().map(|e| &e["id"]).collect();
    assert_eq!(streamed_ids, stored_ids);
    // The second LLM request carried the tool output.
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[1].body.to_string().contains("hello-from-tool"));

    let count = server
        .get(&format!("/api/conversations/{id}/events/count"))
        .await;
    assert_eq!(count.json(), json!(events.len()));
    let actions = server
        .get(&format!(
            "/api/conversations/{id}/events/count?kind=openhands.sdk.event.llm_convertible.action.ActionEvent"
        ))
        .await;
    assert_eq!(actions.json(), json!(2));
    let user = server
        .get(&format!(
            "/api/conversations/{id}/events/search?source=user&body=HELLO"
        ))
        .await
        .json();
    assert_eq!(user["items"].as_array().map(Vec::len), Some(1));
    let final_response = server
        .get(&format!("/api/conversations/{id}/agent_final_response"))
        .await
        .json();
    assert_eq!(final_response["response"], "all done");
    let one = &events[1];
    let fetched = server
        .get(&format!(
            "/api/conversations/{id}/events/{}",
            one["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(&fetched.json(), one);

    let info = server.get(&format!("/api/conversations/{id}")).await.json();
    assert_eq!(info["execution_status"], "finished");
    let usage = &info["stats"]["usage_to_metrics"]["agent"]["accumulated_token_usage"];
    assert_eq!(usage["prompt_tokens"], 2 * oh_testkit::PROMPT_TOKENS);

    // A no-op run on a finished conversation still ends with a snapshot.
    server
        .post(&format!("/api/conversations/{id}/run"), json!(null))
        .await;
    assert_eq!(socket.run_ends_in().await, "finished");
}

#[tokio::test]
async fn create_is_idempotent_and_delete_removes_the_directory() {
    let llm = ScriptedLlm::start(vec![]).await.expect("llm");
    let server = TestServer::start().await;
    let chosen = "3f2c6a1e-8b0d-4c4e-9a57-1d2b3c4d5e6f";
    let mut body = create_body(agent_json(&llm.base_url()), &server.root().join("w"));
    body["conversation_id"] = json!(chosen);
    body["tags"] = json!({"team": "infra"});
    let first = server.post("/api/conversations", body.clone()).await;
    assert_eq!(first.status, 201);
    assert_eq!(first.json()["tags"], json!({"team": "infra"}));
    let again = server.post("/api/conversations", body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["id"], chosen);
    // Dash-less ids work in paths.
    let hex = chosen.replace('-', "");
    assert_eq!(
        server
            .get(&format!("/api/conversations/{hex}"))
            .await
            .status,
        200
    );
    assert!(
        server
            .root()
            .join("conversations")
            .join(&hex)
            .join("meta.json")
            .is_file()
    );
    assert!(
        server.root().join("w").join(".git").is_dir(),
        "workspace is a git repo"
    );

    let page = server.get("/api/conversations/search").await.json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        server.get("/api/conversations/count").await.json(),
        json!(1)
    );
    assert_eq!(
        server
            .get("/api/conversations/count?status=running")
            .await
            .json(),
        json!(0)
    );
    let batch = server
        .get(&format!(
            "/api/conversations?ids={chosen}&ids=00000000-0000-4000-8000-000000000000"
        ))
        .await
        .json();
    assert_eq!(batch[0]["id"], chosen);
    assert_eq!(batch[1], Value::Null);

    let patched = server
        .call(
            Method::PATCH,
            &format!("/api/conversations/{chosen}"),
            Some(json!({"title": "Renamed"})),
        )
        .await;
    assert_eq!(patched.json(), json!({"success": true}));
    assert_eq!(
        server
            .get(&format!("/api/conversations/{chosen}"))
            .await
            .json()["title"],
        "Renamed"
    );

    let deleted = server
        .call(
            Method::DELETE,
            &format!("/api/conversations/{chosen}"),
            None,
        )
        .await;
    assert_eq!(deleted.json(), json!({"success": true}));
    assert!(!server.root().join("conversations").join(&hex).exists());
    assert!(server.root().join("w").exists(), "the workspace is kept");
    assert_eq!(
        server
            .get(&format!("/api/conversations/{chosen}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn second_run_while_running_is_409_and_pause_stops_between_steps() {
    let llm = ScriptedLlm::start(vec![
        Reply::delay(800, Reply::tool("terminal", json!({"command": "echo one"}))),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .expect("llm");
    let server = TestServer::start().await;
    let id = create(&server, &llm).await;
    let mut socket = Socket::connect(&server, &id).await;
    socket.next().await.expect("initial");
    server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": "go", "run": true}),
        )
        .await;
    let again = server
        .post(&format!("/api/conversations/{id}/run"), json!(null))
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(
        again.json()["detail"],
        "Conversation already running. Wait for completion or pause first."
    );
    let paused = server
        .post(&format!("/api/conversations/{id}/pause"), json!(null))
        .await;
    assert_eq!(paused.json(), json!({"success": true}));
    let frames = socket.until_run_ends().await;
    assert_eq!(
        frames.last().expect("snapshot")["value"]["execution_status"],
        "paused"
    );
    assert!(frames.iter().any(|f| f["kind"] == "PauseEvent"));
    // Running again continues to the end.
    server
        .post(&format!("/api/conversations/{id}/run"), json!(null))
        .await;
    assert_eq!(socket.run_ends_in().await, "finished");
}

#[tokio::test]
async fn confirmation_reject_and_accept() {
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo first"})),
        Reply::tool("terminal", json!({"command": "echo second"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .expect("llm");
    let server = TestServer::start().await;
    let id = create(&server, &llm).await;
    let policy = server
        .post(
            &format!("/api/conversations/{id}/confirmation_policy"),
            json!({"policy": {"kind": "AlwaysConfirm"}}),
        )
        .await;
    assert_eq!(policy.status, 200);
    let mut socket = Socket::connect(&server, &id).await;
    socket.next().await.expect("initial");
    server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "go"}], "run": true}),
        )
        .await;
    assert_eq!(socket.run_ends_in().await, "waiting_for_confirmation");
    let rejected = server
        .post(
            &format!("/api/conversations/{id}/events/respond_to_confirmation"),
            json!({"accept": false, "reason": "not now"}),
        )
        .await;
    assert_eq!(rejected.status, 200);
    let frames = socket.until_run_ends().await;
    let reject = frames
        .iter()
        .find(|f| f["kind"] == "UserRejectObservation")
        .expect("rejection");
    assert_eq!(reject["rejection_reason"], "not now");
    assert_eq!(
        frames.last().expect("snapshot")["value"]["execution_status"],
        "idle"
    );
    // Run again: the next action waits, then accept executes it.
    server
        .post(&format!("/api/conversations/{id}/run"), json!(null))
        .await;
    assert_eq!(socket.run_ends_in().await, "waiting_for_confirmation");
    server
        .post(
            &format!("/api/conversations/{id}/events/respond_to_confirmation"),
            json!({"accept": true}),
        )
        .await;
    let frames = socket.until_run_ends().await;
    assert!(frames.iter().any(|f| {
        f["kind"] == "ObservationEvent"
            && f["observation"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("second"))
    }));
}

#[tokio::test]
async fn socket_replays_history_and_accepts_messages() {
    let llm = ScriptedLlm::start(vec![Reply::text("hi there")])
        .await
        .expect("llm");
    let server = TestServer::start().await;
    let id = create(&server, &llm).await;
    let mut socket = Socket::connect(&server, &id).await;
    socket.next().await.expect("initial");
    {
        use futures::SinkExt;
        let message = json!({"role": "user", "content": "hello over the socket"}).to_string();
        socket
            .stream
            .send(tokio_tungstenite::tungstenite::Message::Text(
                message.into(),
            ))
            .await
            .expect("send");
        let bad = json!({"role": "assistant", "content": "nope"}).to_string();
        socket
            .stream
            .send(tokio_tungstenite::tungstenite::Message::Text(bad.into()))
            .await
            .expect("send");
    }
    let frames = socket.until_run_ends().await;
    assert!(frames.iter().any(|f| f["kind"] == "ServerErrorEvent"));
    assert_eq!(
        frames.last().expect("snapshot")["value"]["execution_status"],
        "finished"
    );
    let stored = server.events(&id, 3).await;

    let url = format!("ws://{}/sockets/events/{id}?resend_mode=all", server.addr);
    let (stream, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let mut replay = Socket { stream };
    assert_eq!(replay.next().await.expect("initial")["key"], "full_state");
    for event in &stored {
        assert_eq!(replay.next().await.expect("replayed")["id"], event["id"]);
    }
}

#[tokio::test]
async fn first_message_gets_a_generated_title() {
    let llm = ScriptedLlm::start(vec![Reply::text("🧪 Testing the titles")])
        .await
        .expect("llm");
    let server = TestServer::start().await;
    let mut body = create_body(agent_json(&llm.base_url()), &server.root().join("w"));
    body.as_object_mut().expect("object").remove("autotitle");
    let id = server.post("/api/conversations", body).await.json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": "please test the titles", "run": false}),
        )
        .await;
    let mut title = Value::Null;
    for _ in 0..100 {
        title = server.get(&format!("/api/conversations/{id}")).await.json()["title"].clone();
        if !title.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(title, "🧪 Testing the titles");
    let requests = llm.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0].body.get("tools").is_none(),
        "a title request has no tools"
    );
    assert!(
        requests[0]
            .body
            .to_string()
            .contains("please test the titles")
    );
}
