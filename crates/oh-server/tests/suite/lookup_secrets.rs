//! `LookupSecret` conversation secrets: accepted on create and update, fetched by the server's
//! agent when a command mentions them, never shown to clients, kept across a restart.

use super::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Socket, TestServer, agent_json, create_body};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

const VALUE: &str = "vault-value-0123456789";
const AUTH: &str = "letmein-7f3a";

/// `GET /secret` answers [`VALUE`] only with `x-auth: AUTH`, else 401; other paths 404.
async fn secret_server() -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&buf).to_lowercase();
                let (status, body) = if !head.starts_with("get /secret ") {
                    ("404 Not Found", "none")
                } else if head.contains(&format!("\r\nx-auth: {AUTH}\r\n")) {
                    ("200 OK", VALUE)
                } else {
                    ("401 Unauthorized", "no")
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (base, hits)
}

fn lookup(base: &str, path: &str) -> Value {
    json!({
        "kind": "LookupSecret",
        "url": format!("{base}{path}"),
        "headers": {"X-Auth": AUTH},
        "description": "from the vault",
    })
}

fn terminal_texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == "terminal")
        .map(|e| {
            e["observation"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn assert_hidden(what: &str, text: &str) {
    assert!(!text.contains(VALUE), "{what} shows the value: {text}");
    assert!(!text.contains(AUTH), "{what} shows the header: {text}");
}

/// Every file under `dir`, as text.
fn all_files(dir: &std::path::Path) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.push_str(&all_files(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

#[tokio::test]
async fn lookup_secrets_work_stay_hidden_and_survive_a_restart() {
    let (base, hits) = secret_server().await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "terminal",
            json!({"command": "printf %s \"$VAULT_TOKEN\" | wc -c"}),
        ),
        Reply::tool("terminal", json!({"command": "echo b=[$BROKEN_TOKEN]"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .expect("llm");
    let server = TestServer::with_key("sekrit").await;
    let mut body = create_body(agent_json(&llm.base_url()), &server.root().join("work"));
    body["secrets"] = json!({"VAULT_TOKEN": lookup(&base, "/secret")});
    let created = server.post("/api/conversations", body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    assert_hidden("the create answer", &created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let registry = &created.json()["secret_registry"]["secret_sources"]["VAULT_TOKEN"];
    assert_eq!(registry["kind"], "LookupSecret", "{registry}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "not fetched before it is needed"
    );

    // Added by the update route: a lookup that fails (404).
    let updated = server
        .post(
            &format!("/api/conversations/{id}/secrets"),
            json!({"secrets": {"BROKEN_TOKEN": lookup(&base, "/missing")}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text());

    let mut socket = Socket::connect(&server, &id).await;
    let first = socket.next().await.expect("initial frame");
    assert_eq!(first["key"], "full_state");
    assert_hidden("the initial frame", &first.to_string());
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": "use the vault", "run": true}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let frames = socket.until_run_ends().await;
    assert_eq!(
        frames.last().expect("frame")["value"]["execution_status"],
        "finished"
    );
    for frame in &frames {
        assert_hidden("a socket frame", &frame.to_string());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);

    let events = server.events(&id, 100).await;
    assert_hidden("the events", &Value::Array(events.clone()).to_string());
    let texts = terminal_texts(&events);
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(
        texts[0].trim(),
        VALUE.len().to_string(),
        "value reached the shell"
    );
    assert!(
        texts[1].contains("BROKEN_TOKEN could not be fetched"),
        "{}",
        texts[1]
    );
    assert!(texts[1].contains("HTTP 404"), "{}", texts[1]);
    assert!(texts[1].contains("b=[]"), "{}", texts[1]);

    let info = server.get(&format!("/api/conversations/{id}")).await;
    assert_hidden("the conversation info", &info.text());
    assert!(info.text().contains("/secret"), "{}", info.text());
    drop(socket);

    let dir = server.stop().await;
    assert_hidden("the files on disk", &all_files(dir.path()));

    // After a restart the lookup (with its encrypted header) still works.
    llm.push(Reply::tool(
        "terminal",
        json!({"command": "printf %s \"$VAULT_TOKEN\" | wc -c"}),
    ));
    llm.push(Reply::tool("finish", json!({"message": "again"})));
    let server = TestServer::start_in(dir, Some("sekrit"), |_| {}).await;
    let mut socket = Socket::connect(&server, &id).await;
    let first = socket.next().await.expect("initial frame");
    assert_eq!(first["key"], "full_state");
    assert_hidden("the initial frame", &first.to_string());
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": "once more", "run": true}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(socket.run_ends_in().await, "finished");
    let events = server.events(&id, 100).await;
    let texts = terminal_texts(&events);
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(
        texts[2].trim(),
        VALUE.len().to_string(),
        "after the restart"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_lookup_without_url_is_refused() {
    let server = TestServer::start().await;
    let mut body = create_body(
        agent_json("http://127.0.0.1:9/v1"),
        &server.root().join("w"),
    );
    body["secrets"] = json!({"T": {"kind": "LookupSecret", "url": ""}});
    let reply = server.post("/api/conversations", body).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
}
