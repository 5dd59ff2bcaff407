//! Authentication on every route: a table over the whole route list (the CORE routes this
//! server implements and the EXTENDED ones that answer 501), plus the event socket's rules.

use super::common;

use common::{TestServer, send};
use futures::SinkExt;
use hyper::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "the-session-key";
const ID: &str = "3f2c6a1e-8b0d-4c4e-9a57-1d2b3c4d5e6f";

/// Every implemented `/api` route.
const IMPLEMENTED: &[(&str, &str)] = &[
    ("POST", "/api/conversations"),
    ("GET", "/api/conversations"),
    ("GET", "/api/conversations/search"),
    ("GET", "/api/conversations/count"),
    ("GET", "/api/conversations/{id}"),
    ("DELETE", "/api/conversations/{id}"),
    ("PATCH", "/api/conversations/{id}"),
    ("POST", "/api/conversations/{id}/run"),
    ("POST", "/api/conversations/{id}/pause"),
    ("POST", "/api/conversations/{id}/interrupt"),
    ("POST", "/api/conversations/{id}/secrets"),
    ("POST", "/api/conversations/{id}/confirmation_policy"),
    ("POST", "/api/conversations/{id}/security_analyzer"),
    ("POST", "/api/conversations/{id}/condense"),
    ("GET", "/api/conversations/{id}/agent_final_response"),
    ("GET", "/api/conversations/{id}/events/search"),
    ("GET", "/api/conversations/{id}/events/count"),
    ("GET", "/api/conversations/{id}/events/some-event"),
    ("GET", "/api/conversations/{id}/events"),
    ("POST", "/api/conversations/{id}/events"),
    (
        "POST",
        "/api/conversations/{id}/events/respond_to_confirmation",
    ),
    ("POST", "/api/bash/start_bash_command"),
    ("POST", "/api/bash/execute_bash_command"),
    ("GET", "/api/bash/bash_events/search"),
    (
        "GET",
        "/api/bash/bash_events/5c2f0e7a9b1d4c3e8f6a2b1c0d9e8f7a",
    ),
    ("DELETE", "/api/bash/bash_events"),
    ("GET", "/api/bash/bash_events/"),
    (
        "POST",
        "/api/bash/bash_commands/5c2f0e7a9b1d4c3e8f6a2b1c0d9e8f7a/stop",
    ),
    ("POST", "/api/file/create_directory?path=/tmp/x"),
    ("GET", "/api/git/commits?path=/tmp"),
    ("GET", "/api/git/commits/abc123/changes?path=/tmp"),
    ("POST", "/api/file/upload?path=/tmp/x"),
    ("GET", "/api/file/download?path=/tmp/x"),
    ("GET", "/api/git/changes?path=/tmp"),
    ("GET", "/api/git/diff?path=/tmp/x"),
    ("GET", "/api/tools/"),
    // Runtime-scoped (bound to conversation {id}).
    ("POST", "/api/conversations/{id}/bash/start_bash_command"),
    ("POST", "/api/conversations/{id}/bash/execute_bash_command"),
    ("GET", "/api/conversations/{id}/bash/bash_events/search"),
    ("GET", "/api/conversations/{id}/bash/bash_events/"),
    ("DELETE", "/api/conversations/{id}/bash/bash_events"),
    ("POST", "/api/conversations/{id}/file/upload?path=/tmp/x"),
    ("GET", "/api/conversations/{id}/file/download?path=/tmp/x"),
    ("GET", "/api/conversations/{id}/git/changes?path=/tmp"),
    ("GET", "/api/conversations/{id}/git/diff?path=/tmp/x"),
    ("GET", "/api/conversations/{id}/vscode/url"),
    ("GET", "/api/conversations/{id}/runtime"),
    ("POST", "/api/conversations/{id}/runtime/reprovision"),
    ("GET", "/api/settings"),
    ("PATCH", "/api/settings"),
    ("GET", "/api/settings/secrets"),
    ("PUT", "/api/settings/secrets"),
    ("GET", "/api/settings/secrets/X"),
    ("DELETE", "/api/settings/secrets/X"),
    ("GET", "/api/profiles"),
    ("GET", "/api/profiles/x"),
    ("POST", "/api/profiles/x"),
    ("DELETE", "/api/profiles/x"),
    ("POST", "/api/profiles/x/activate"),
    ("POST", "/api/profiles/x/rename"),
    ("POST", "/api/settings/mcp/x"),
    ("PATCH", "/api/settings/mcp/x"),
    ("DELETE", "/api/settings/mcp/x"),
];

fn routes() -> Vec<(Method, String)> {
    let extended = oh_server::EXTENDED_ROUTES_501
        .iter()
        .flat_map(|(path, methods)| methods.iter().map(move |m| (*m, *path)));
    IMPLEMENTED
        .iter()
        .copied()
        .chain(extended)
        .map(|(method, path)| {
            let path = path
                .replace("{id}", ID)
                .replace("{conversation_id}", ID)
                .replace("{trajectory_conversation_id}", ID);
            // Any other parameter gets a plain value.
            let path = regex_free_fill(&path);
            (Method::from_bytes(method.as_bytes()).expect("method"), path)
        })
        .collect()
}

/// Replaces `{name}` segments with `x`.
fn regex_free_fill(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push('x');
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

#[tokio::test]
async fn every_api_route_requires_the_key() {
    let server = TestServer::with_key(KEY).await;
    let routes = routes();
    assert!(routes.len() > 100, "the table covers the whole route list");
    let mut failures = Vec::new();
    for (method, path) in &routes {
        let url = server.url(path);
        let body = Some(bytes::Bytes::from_static(b"{}"));
        for headers in [
            vec![],
            vec![("x-session-api-key", "wrong".to_owned())],
            vec![("X-Session-API-Key", format!("{KEY}x"))],
            vec![("x-session-api-key", String::new())],
        ] {
            let reply = send(method.clone(), &url, &headers, body.clone()).await;
            if reply.status != 401 || reply.json() != json!({"detail": "Unauthorized"}) {
                failures.push(format!(
                    "{method} {path} {headers:?} -> {} {}",
                    reply.status,
                    reply.text()
                ));
            }
        }
        // With the key the request gets past authentication.
        let reply = send(
            method.clone(),
            &url,
            &[("X-Session-API-Key", KEY.to_owned())],
            body.clone(),
        )
        .await;
        if reply.status == 401 {
            failures.push(format!("{method} {path} with key -> 401"));
        }
        if reply.status.is_server_error() && reply.status != 501 {
            failures.push(format!(
                "{method} {path} with key -> {} {}",
                reply.status,
                reply.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn probes_are_open() {
    let server = TestServer::with_key(KEY).await;
    for path in ["/health", "/alive", "/ready", "/server_info", "/"] {
        let reply = send(Method::GET, &server.url(path), &[], None).await;
        assert_eq!(reply.status, 200, "{path}");
    }
}

#[tokio::test]
async fn no_keys_means_no_auth() {
    let server = TestServer::start().await;
    assert_eq!(server.get("/api/conversations/count").await.status, 200);
}

#[tokio::test]
async fn extended_routes_answer_501_with_json() {
    let server = TestServer::with_key(KEY).await;
    let reply = server
        .post(&format!("/api/conversations/{ID}/goal/stop"), json!({}))
        .await;
    assert_eq!(reply.status, 501);
    assert!(
        reply.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("goal/stop"))
    );
}

async fn close_code(url: String, first: Option<&str>) -> Option<u16> {
    use futures::StreamExt;
    let (mut stream, _) = tokio_tungstenite::connect_async(url).await.ok()?;
    if let Some(frame) = first {
        stream
            .send(Message::Text(frame.to_owned().into()))
            .await
            .ok()?;
    }
    while let Some(Ok(message)) = stream.next().await {
        if let Message::Close(frame) = message {
            return frame.map(|f| u16::from(f.code));
        }
    }
    None
}

#[tokio::test]
async fn socket_auth_rules() {
    let server = TestServer::with_key(KEY).await;
    let url = format!("ws://{}/sockets/events/{ID}", server.addr);
    let wrong = json!({"type": "auth", "session_api_key": "wrong"}).to_string();
    assert_eq!(close_code(url.clone(), Some(&wrong)).await, Some(4001));
    assert_eq!(close_code(url.clone(), Some("not json")).await, Some(4001));
    let empty = json!({"type": "auth", "session_api_key": ""}).to_string();
    assert_eq!(close_code(url.clone(), Some(&empty)).await, Some(4001));
    let right = json!({"type": "auth", "session_api_key": KEY}).to_string();
    assert_eq!(
        close_code(url.clone(), Some(&right)).await,
        Some(4004),
        "unknown conversation"
    );
    // Deprecated fallbacks: a wrong query key is refused at the handshake (403).
    let refused = tokio_tungstenite::connect_async(format!("{url}?session_api_key=wrong")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
        }
        other => panic!("expected a 403 handshake, got {other:?}"),
    }
    assert_eq!(
        close_code(format!("{url}?session_api_key={KEY}"), None).await,
        Some(4004),
        "a right query key authenticates"
    );
    let bad_id = format!("ws://{}/sockets/events/not-a-uuid", server.addr);
    assert!(tokio_tungstenite::connect_async(bad_id).await.is_err());
}
