//! The browser boundary: JSON bodies only with a JSON content type, foreign `Origin`s and
//! (without a key) foreign `Host`s refused before any handler or WebSocket upgrade, array
//! bodies where an object is expected, path-only redirects, and a create refused at run
//! capacity leaving nothing behind.

use super::common;

use bytes::Bytes;
use common::{TestServer, agent_json, create_body, send, send_exact, ws_handshake};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

const EVIL: &str = "https://evil.example";
const LOCAL_GUI: &str = "http://localhost:3000";

/// The server's key header, if it has one, plus `extra`.
fn headers<'a>(server: &TestServer, extra: &[(&'a str, &str)]) -> Vec<(&'a str, String)> {
    let mut headers: Vec<(&str, String)> =
        extra.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
    if let Some(key) = &server.key {
        headers.push(("x-session-api-key", key.clone()));
    }
    headers
}

/// A command that creates `proof` (a file the test then looks for).
fn touch(proof: &std::path::Path) -> Value {
    json!({"command": format!("touch '{}'", proof.display()), "timeout": 20})
}

async fn execute(
    server: &TestServer,
    extra: &[(&str, &str)],
    body: Option<&Value>,
) -> common::Reply {
    send_exact(
        Method::POST,
        &server.url("/api/bash/execute_bash_command"),
        &headers(server, extra),
        body.map(|b| Bytes::from(b.to_string())),
    )
    .await
}

fn detail(reply: &common::Reply) -> String {
    reply.json()["detail"].to_string()
}

#[tokio::test]
async fn non_json_bodies_are_refused_before_the_handler_runs() {
    let server = TestServer::start().await;
    let cases: [Option<&str>; 5] = [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ];
    for (i, content_type) in cases.into_iter().enumerate() {
        let proof = server.root().join(format!("proof-{i}"));
        let extra: Vec<(&str, &str)> = content_type
            .map(|ct| ("content-type", ct))
            .into_iter()
            .collect();
        let reply = execute(&server, &extra, Some(&touch(&proof))).await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {}",
            reply.text()
        );
        assert!(
            detail(&reply).contains("application/json"),
            "{}",
            reply.text()
        );
        assert!(!proof.exists(), "{content_type:?}: the command ran");
    }

    // A create is refused the same way and creates nothing.
    let body = create_body(
        agent_json("http://127.0.0.1:9/v1"),
        &server.root().join("w"),
    );
    let reply = send_exact(
        Method::POST,
        &server.url("/api/conversations"),
        &[("content-type", "text/plain".to_owned())],
        Some(Bytes::from(body.to_string())),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        reply.text()
    );
    let count = server.get("/api/conversations/count").await;
    assert_eq!(count.json(), json!(0));
}

#[tokio::test]
async fn json_content_types_are_accepted() {
    let server = TestServer::start().await;
    for (i, content_type) in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.x+json",
    ]
    .into_iter()
    .enumerate()
    {
        let proof = server.root().join(format!("proof-{i}"));
        let reply = execute(
            &server,
            &[("content-type", content_type)],
            Some(&touch(&proof)),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{content_type}: {}",
            reply.text()
        );
        assert!(proof.exists(), "{content_type}: the command did not run");
    }
    // No body and no content type: a missing body (422), as before.
    let reply = execute(&server, &[], None).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["detail"][0]["type"], "missing");
}

#[tokio::test]
async fn array_bodies_are_refused_where_an_object_is_expected() {
    let server = TestServer::start().await;
    let proof = server.root().join("proof");
    let body = json!([format!("touch '{}'", proof.display()), null, 5]);
    let reply = execute(
        &server,
        &[("content-type", "application/json")],
        Some(&body),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    let entry = &reply.json()["detail"][0];
    assert_eq!(entry["type"], "model_attributes_type");
    assert_eq!(entry["loc"], json!(["body"]));
    assert_eq!(
        entry["msg"],
        "Input should be a valid dictionary or object to extract fields from"
    );
    assert!(!proof.exists(), "the array-form command ran");

    let id = server.idle_conversation().await;
    let path = format!("/api/conversations/{id}");
    let reply = server
        .call(Method::PATCH, &path, Some(json!(["x", {"k": "v"}])))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["detail"][0]["type"], "model_attributes_type");
    assert_ne!(server.get(&path).await.json()["title"], "x");

    // A body that is a list by design still is one.
    let reply = server
        .call(Method::GET, "/api/bash/bash_events/", Some(json!(["nope"])))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!([null]));
}

#[tokio::test]
async fn foreign_origins_are_refused_on_rest_routes() {
    for key in [None, Some("k1")] {
        let server = TestServer::start_with(key, |_| {}).await;
        let json_ct = ("content-type", "application/json");
        for origin in [EVIL, "null", "http://localhost.evil.example"] {
            let proof = server.root().join("proof");
            let reply = execute(
                &server,
                &[json_ct, ("origin", origin)],
                Some(&touch(&proof)),
            )
            .await;
            assert_eq!(
                reply.status,
                StatusCode::FORBIDDEN,
                "{key:?} {origin}: {}",
                reply.text()
            );
            assert!(detail(&reply).contains("Origin"), "{}", reply.text());
            assert!(!proof.exists(), "{key:?} {origin}: the command ran");
            for path in [
                "/api/conversations/search",
                "/health",
                "/api/conversations/",
            ] {
                let reply = send(
                    Method::GET,
                    &server.url(path),
                    &headers(&server, &[("origin", origin)]),
                    None,
                )
                .await;
                assert_eq!(
                    reply.status,
                    StatusCode::FORBIDDEN,
                    "{key:?} {origin} {path}"
                );
                reply.json();
            }
        }
        // The local GUI is allowed, and gets the CORS headers.
        let proof = server.root().join("proof-local");
        let reply = execute(
            &server,
            &[json_ct, ("origin", LOCAL_GUI)],
            Some(&touch(&proof)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(proof.exists());
        assert_eq!(reply.headers["access-control-allow-origin"], LOCAL_GUI);
    }
}

#[tokio::test]
async fn preflights_answer_allowed_origins_and_refuse_others() {
    let server = TestServer::start().await;
    let preflight = |origin: &'static str| {
        let url = server.url("/api/bash/execute_bash_command");
        async move {
            send_exact(
                Method::OPTIONS,
                &url,
                &[
                    ("origin", origin.to_owned()),
                    ("access-control-request-method", "POST".to_owned()),
                    ("access-control-request-headers", "content-type".to_owned()),
                ],
                None,
            )
            .await
        }
    };
    let reply = preflight(LOCAL_GUI).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["access-control-allow-origin"], LOCAL_GUI);
    assert_eq!(
        reply.headers["access-control-allow-headers"],
        "content-type"
    );
    assert!(
        reply.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let reply = preflight(EVIL).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert!(reply.headers.get("access-control-allow-origin").is_none());
    reply.json();
}

#[tokio::test]
async fn foreign_origins_cannot_open_sockets() {
    for key in [None, Some("k1")] {
        let server = TestServer::start_with(key, |_| {}).await;
        let id = server.idle_conversation().await;
        for path in [
            format!("/sockets/events/{id}"),
            "/sockets/bash-events".to_owned(),
        ] {
            for origin in [EVIL, "null"] {
                let status = ws_handshake(&server, &path, &[("origin", origin)]).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{key:?} {path} {origin}");
            }
            let status = ws_handshake(&server, &path, &[("origin", LOCAL_GUI)]).await;
            assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS, "{key:?} {path}");
            let status = ws_handshake(&server, &path, &[]).await;
            assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS, "{key:?} {path}");
        }
    }
}

#[tokio::test]
async fn without_a_key_only_local_hosts_are_served() {
    let server = TestServer::start().await;
    let port = server.addr.port();
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
    ] {
        let reply = send_exact(
            Method::GET,
            &server.url("/health"),
            &[("host", host.clone())],
            None,
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{host}: {}",
            reply.text()
        );
        assert!(detail(&reply).contains("Host"), "{}", reply.text());
        let proof = server.root().join("proof");
        let reply = execute(
            &server,
            &[("content-type", "application/json"), ("host", &host)],
            Some(&touch(&proof)),
        )
        .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{host}");
        assert!(!proof.exists(), "{host}: the command ran");
        let status = ws_handshake(&server, "/sockets/bash-events", &[("host", &host)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_owned(),
        format!("[::1]:{port}"),
    ] {
        let reply = send_exact(
            Method::GET,
            &server.url("/health"),
            &[("host", host.clone())],
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text());
    }

    // The host of a configured origin names the server too.
    let server = TestServer::start_with(None, |config| {
        config.allow_cors_origins = vec!["http://gui.lan:3000".to_owned()];
    })
    .await;
    let reply = send_exact(
        Method::GET,
        &server.url("/health"),
        &[("host", format!("gui.lan:{port}"))],
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());

    // With a key, the Host is not checked (the key protects the server).
    let server = TestServer::with_key("k1").await;
    let reply = send_exact(
        Method::GET,
        &server.url("/api/conversations/count"),
        &headers(&server, &[("host", "agent.example")]),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test]
async fn trailing_slash_redirects_are_path_only() {
    let server = TestServer::with_key("k1").await;
    for (path, location) in [
        (
            "/api/conversations/?limit=5&x=%2F",
            "/api/conversations?limit=5&x=%2F",
        ),
        ("/api/tools", "/api/tools/"),
        ("//evil.example/", "/evil.example"),
    ] {
        let reply = send_exact(
            Method::GET,
            &server.url(path),
            &[("host", "evil.example".to_owned())],
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT, "{path}");
        assert_eq!(reply.headers["location"], location, "{path}");
    }
    let server = TestServer::start().await;
    let reply = server.get("/api/conversations/").await;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(reply.headers["location"], "/api/conversations");
}

#[tokio::test]
async fn a_create_refused_at_run_capacity_leaves_nothing() {
    let server = TestServer::start_with(None, |config| config.max_concurrent_runs = 0).await;
    let id = "6f1c7a52-2d3e-4b5f-8a9b-0c1d2e3f4a5b";
    let mut body = create_body(
        agent_json("http://127.0.0.1:9/v1"),
        &server.root().join("w"),
    );
    body["conversation_id"] = json!(id);
    body["initial_message"] = json!({"role": "user", "content": [{"type": "text", "text": "hi"}]});
    let reply = server.post("/api/conversations", body.clone()).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text()
    );
    assert!(reply.json()["detail"].is_string(), "{}", reply.text());

    assert_eq!(
        server.get("/api/conversations/count").await.json(),
        json!(0)
    );
    assert_eq!(
        server.get("/api/conversations/search").await.json()["items"],
        json!([])
    );
    assert_eq!(
        server.get(&format!("/api/conversations/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    let stored: Vec<_> = std::fs::read_dir(server.root().join("conversations"))
        .unwrap()
        .collect();
    assert!(stored.is_empty(), "{stored:?}");

    // The same create without a message goes through.
    body["initial_message"] = Value::Null;
    let reply = server.post("/api/conversations", body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(
        server.get("/api/conversations/count").await.json(),
        json!(1)
    );
}
