//! Client mistakes get a 4xx with a JSON body, never a 500 or a plain-text rejection.

use super::common;

use bytes::Bytes;
use common::{TestServer, agent_json, create_body, send};
use hyper::Method;
use serde_json::{Value, json};

const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

/// Asserts `status` and a JSON `detail`; returns the body.
fn expect(reply: &common::Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert!(body.get("detail").is_some(), "no detail: {body}");
    body
}

fn loc(body: &Value) -> Value {
    body["detail"][0]["loc"].clone()
}

async fn raw(
    server: &TestServer,
    method: Method,
    path: &str,
    body: &'static [u8],
) -> common::Reply {
    send(
        method,
        &server.url(path),
        &[],
        Some(Bytes::from_static(body)),
    )
    .await
}

#[tokio::test]
async fn bad_paths_and_unknown_ids() {
    let server = TestServer::start().await;
    let body = expect(&server.get("/api/conversations/not-a-uuid").await, 422);
    assert_eq!(loc(&body), json!(["path", "conversation_id"]));
    assert_eq!(body["detail"][0]["type"], "uuid_parsing");
    expect(
        &server.get(&format!("/api/conversations/{UNKNOWN}")).await,
        404,
    );
    let delete = server
        .call(
            Method::DELETE,
            &format!("/api/conversations/{UNKNOWN}"),
            None,
        )
        .await;
    // 1.58.2: unknown conversations are 404 on delete, pause, interrupt and PATCH.
    assert_eq!(expect(&delete, 404)["detail"], "Not Found");
    for action in ["pause", "interrupt"] {
        let reply = server
            .post(
                &format!("/api/conversations/{UNKNOWN}/{action}"),
                json!(null),
            )
            .await;
        assert_eq!(expect(&reply, 404)["detail"], "Not Found", "{action}");
    }
    expect(
        &server
            .post(&format!("/api/conversations/{UNKNOWN}/run"), json!(null))
            .await,
        404,
    );
    let search = server
        .get(&format!("/api/conversations/{UNKNOWN}/events/search"))
        .await;
    assert_eq!(
        expect(&search, 404)["detail"],
        format!("Conversation not found: {UNKNOWN}")
    );
    let send = server
        .post(
            &format!("/api/conversations/{UNKNOWN}/events"),
            json!({"role": "user", "content": "hi"}),
        )
        .await;
    expect(&send, 404);
    expect(
        &server
            .post(
                &format!("/api/conversations/{UNKNOWN}/secrets"),
                json!({"secrets": {"A": "b"}}),
            )
            .await,
        404,
    );
    expect(
        &server
            .post(
                &format!("/api/conversations/{UNKNOWN}/confirmation_policy"),
                json!({"policy": {"kind": "AlwaysConfirm"}}),
            )
            .await,
        404,
    );
    expect(
        &server
            .post(
                &format!("/api/conversations/{UNKNOWN}/condense"),
                json!(null),
            )
            .await,
        404,
    );
    let patch = server
        .call(
            Method::PATCH,
            &format!("/api/conversations/{UNKNOWN}"),
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(expect(&patch, 404)["detail"], "Not Found");
    expect(&server.get("/no/such/route").await, 404);
    expect(
        &server
            .call(Method::PUT, "/api/conversations/count", None)
            .await,
        405,
    );
}

#[tokio::test]
async fn bad_bodies() {
    let server = TestServer::start().await;
    let work = server.root().join("w");
    let invalid = raw(&server, Method::POST, "/api/conversations", b"{not json").await;
    assert_eq!(expect(&invalid, 422)["detail"][0]["type"], "json_invalid");
    let empty = raw(&server, Method::POST, "/api/conversations", b"").await;
    assert_eq!(expect(&empty, 422)["detail"][0]["type"], "missing");
    let array = raw(&server, Method::POST, "/api/conversations", b"[1]").await;
    expect(&array, 422);
    let no_agent = server
        .post(
            "/api/conversations",
            json!({"workspace": {"working_dir": work}}),
        )
        .await;
    let body = expect(&no_agent, 422);
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("must be provided"))
    );
    let no_workspace = server
        .post(
            "/api/conversations",
            json!({"agent": agent_json("http://127.0.0.1:9/v1")}),
        )
        .await;
    expect(&no_workspace, 422);
    let mut unknown_tool = create_body(agent_json("http://127.0.0.1:9/v1"), &work);
    unknown_tool["agent"]["tools"] = json!([{"name": "browser_tool_set"}]);
    let reply = server.post("/api/conversations", unknown_tool).await;
    assert!(
        expect(&reply, 422)["detail"][0]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("browser_tool_set"))
    );
    let mut bad_tag = create_body(agent_json("http://127.0.0.1:9/v1"), &work);
    bad_tag["tags"] = json!({"Bad-Key": "x"});
    expect(&server.post("/api/conversations", bad_tag).await, 422);
    let mut long_tag = create_body(agent_json("http://127.0.0.1:9/v1"), &work);
    long_tag["tags"] = json!({"ok": "x".repeat(257)});
    expect(&server.post("/api/conversations", long_tag).await, 422);
    let mut bad_secret = create_body(agent_json("http://127.0.0.1:9/v1"), &work);
    bad_secret["secrets"] = json!({"NOT VALID": {"kind": "StaticSecret", "value": "v"}});
    expect(&server.post("/api/conversations", bad_secret).await, 422);
    let mut unknown_parent = create_body(agent_json("http://127.0.0.1:9/v1"), &work);
    unknown_parent["parent_conversation_id"] = json!(UNKNOWN);
    expect(
        &server.post("/api/conversations", unknown_parent).await,
        422,
    );
    let mut acp = create_body(json!({"kind": "ACPAgent", "command": ["x"]}), &work);
    acp["agent"]["kind"] = json!("ACPAgent");
    expect(&server.post("/api/conversations", acp).await, 422);
    // Oversize JSON: 413.
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(17 * 1024 * 1024));
    let reply = send(
        Method::POST,
        &server.url("/api/conversations"),
        &[],
        Some(Bytes::from(huge)),
    )
    .await;
    expect(&reply, 413);

    // Routes of an existing conversation.
    let created = server
        .post(
            "/api/conversations",
            create_body(agent_json("http://127.0.0.1:9/v1"), &work),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let role = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "assistant", "content": "hi"}),
        )
        .await;
    expect(&role, 422);
    let content = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"content": 5}),
        )
        .await;
    expect(&content, 422);
    let policy = server
        .post(
            &format!("/api/conversations/{id}/confirmation_policy"),
            json!({"policy": "always"}),
        )
        .await;
    expect(&policy, 422);
    let analyzer = server
        .post(
            &format!("/api/conversations/{id}/security_analyzer"),
            json!({}),
        )
        .await;
    expect(&analyzer, 422);
    let title = server
        .call(
            Method::PATCH,
            &format!("/api/conversations/{id}"),
            Some(json!({"title": "   "})),
        )
        .await;
    expect(&title, 422);
    let secrets = server
        .post(
            &format!("/api/conversations/{id}/secrets"),
            json!({"secrets": 3}),
        )
        .await;
    expect(&secrets, 422);
    let confirm = server
        .post(
            &format!("/api/conversations/{id}/events/respond_to_confirmation"),
            json!({"reason": "no accept field"}),
        )
        .await;
    expect(&confirm, 422);
    let condense = server
        .post(&format!("/api/conversations/{id}/condense"), json!(null))
        .await;
    // No condenser: 409 with the reference's text.
    assert_eq!(
        expect(&condense, 409)["detail"],
        "Cannot condense conversation: No condenser configured"
    );
    let event = server
        .get(&format!("/api/conversations/{id}/events/no-such-event"))
        .await;
    assert_eq!(expect(&event, 404), json!({"detail": "Not Found"}));
    let batch = server
        .call(
            Method::GET,
            &format!("/api/conversations/{id}/events"),
            Some(json!({"not": "a list"})),
        )
        .await;
    expect(&batch, 422);
}

#[tokio::test]
async fn bad_queries() {
    let server = TestServer::start().await;
    let created = server
        .post(
            "/api/conversations",
            create_body(
                agent_json("http://127.0.0.1:9/v1"),
                &server.root().join("w"),
            ),
        )
        .await;
    let id = created.json()["id"].as_str().expect("id").to_owned();
    for query in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "sort_order=newest",
        "source=robot",
        "timestamp__gte=yesterday",
        "timestamp__lt=2026-99-01",
    ] {
        let reply = server
            .get(&format!("/api/conversations/{id}/events/search?{query}"))
            .await;
        assert_eq!(loc(&expect(&reply, 422))[0], "query", "{query}");
    }
    for query in [
        "limit=0",
        "limit=101",
        "status=sleeping",
        "sort_order=created_at",
        "include_skills=maybe",
    ] {
        let reply = server
            .get(&format!("/api/conversations/search?{query}"))
            .await;
        assert_eq!(loc(&expect(&reply, 422))[0], "query", "{query}");
    }
    expect(
        &server.get("/api/conversations/count?status=sleeping").await,
        422,
    );
    expect(&server.get("/api/conversations").await, 422);
    expect(&server.get("/api/conversations?ids=nope").await, 422);
    let reply = server
        .get(&format!("/api/conversations?ids={id}&include_skills=null"))
        .await;
    assert_eq!(
        expect(&reply, 422)["detail"][0]["loc"],
        serde_json::json!(["query", "include_skills"])
    );
    // An unknown page id restarts from the first page.
    let page = server
        .get(&format!(
            "/api/conversations/{id}/events/search?page_id=unknown"
        ))
        .await;
    assert_eq!(page.status, 200);
}
