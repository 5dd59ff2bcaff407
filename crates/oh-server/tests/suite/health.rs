//! Health probes and server info, without authentication.

use super::common;

use common::TestServer;

#[tokio::test]
async fn probes_answer_without_a_key() {
    let server = TestServer::with_key("k").await;
    for path in ["/health", "/alive"] {
        let reply = common::send(hyper::Method::GET, &server.url(path), &[], None).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.json(), serde_json::json!({"status": "ok"}));
    }
    let ready = common::send(hyper::Method::GET, &server.url("/ready"), &[], None).await;
    assert_eq!(ready.json()["status"], "ready");
    let info = common::send(hyper::Method::GET, &server.url("/server_info"), &[], None).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["title"], "OpenHands Agent Server");
    assert!(info.json()["uptime"].is_f64());
}

#[tokio::test]
async fn unknown_route_and_wrong_method_are_json() {
    let server = TestServer::start().await;
    let missing = server.get("/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), serde_json::json!({"detail": "Not Found"}));
    let wrong = server.post("/health", serde_json::json!({})).await;
    assert_eq!(wrong.status, 405);
    assert_eq!(
        wrong.json(),
        serde_json::json!({"detail": "Method Not Allowed"})
    );
}

#[tokio::test]
async fn trailing_slashes_redirect_like_fastapi() {
    let server = TestServer::start().await;
    let reply = server.get("/api/conversations/?limit=5").await;
    assert_eq!(reply.status, 307);
    // Path-only: FastAPI builds an absolute URL from the `Host` header; we never do.
    assert_eq!(reply.headers["location"], "/api/conversations?limit=5");
    let tools = server.get("/api/tools").await;
    assert_eq!(tools.status, 307);
    let listed = server.get("/api/tools/").await;
    assert_eq!(listed.status, 200);
    assert!(listed.json().as_array().is_some_and(|t| !t.is_empty()));
    for name in [
        "terminal",
        "file_editor",
        "read_file",
        "edit",
        "list_directory",
    ] {
        assert!(
            listed
                .json()
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(name)),
            "{name} not listed"
        );
    }
}
