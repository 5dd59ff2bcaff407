//! Secrets in a conversation: advertised by name in the system prompt, exported into the
//! terminal when a command mentions them, masked in what the model sees. Also: usage stats.

use super::common;

use oh_protocol::{Event, ExecutionStatus, Observation};
use oh_testkit::{COMPLETION_TOKENS, PROMPT_TOKENS, Reply, ScriptedLlm};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_injected_and_masked() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo token=$MY_TOKEN"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    let config = common::config(common::agent(&llm.base_url()), dir.path(), None)
        .secret("MY_TOKEN", "s3cr3t-value");
    let conv = common::start(config);
    conv.send_text("print the token").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);

    let events = conv.events();
    let Some(Event::SystemPrompt(prompt)) = events.first() else {
        panic!("no system prompt")
    };
    let dynamic = prompt
        .dynamic_context
        .as_ref()
        .expect("secrets create a dynamic block");
    assert!(dynamic.text.contains("$MY_TOKEN"), "{}", dynamic.text);
    assert!(!dynamic.text.contains("s3cr3t-value"));

    let output = events
        .iter()
        .find_map(|e| match e {
            Event::Observation(o) => match &o.observation {
                Observation::Terminal(t) => Some(t.clone()),
                _ => None,
            },
            _ => None,
        })
        .unwrap();
    let text = serde_json::to_string(&output.content).unwrap();
    assert!(text.contains("token=<secret-hidden>"), "{text}");
    // Nothing the model received contains the value.
    for request in llm.requests() {
        assert!(!request.body.to_string().contains("s3cr3t-value"));
    }
    // The stored state only has the mask.
    let state = serde_json::to_string(&conv.state()).unwrap();
    assert!(!state.contains("s3cr3t-value"));
    assert!(state.contains("MY_TOKEN"));
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_accumulates_in_conversation_stats() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("think", json!({"thought": "one"})),
        Reply::tool("finish", json!({"message": "two"})),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let stats = conv.state().stats;
    let metrics = stats
        .usage_to_metrics
        .get("agent")
        .expect("metrics under the agent's usage_id");
    let usage = metrics.accumulated_token_usage.as_ref().unwrap();
    assert_eq!(usage.prompt_tokens, 2 * PROMPT_TOKENS);
    assert_eq!(usage.completion_tokens, 2 * COMPLETION_TOKENS);
    assert_eq!(metrics.response_latencies.len(), 2);
}

/// A one-route HTTP server for lookups: `GET /secret` answers `value` only when the request
/// carries `x-auth: letmein`, else 401; any other path is 404. Counts requests.
struct SecretServer {
    base: String,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl SecretServer {
    async fn start(value: &'static str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&hits);
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let counter = std::sync::Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let head = String::from_utf8_lossy(&buf).to_lowercase();
                    let (status, body) = if !head.starts_with("get /secret ") {
                        ("404 Not Found", "no such secret")
                    } else if head.contains("\r\nx-auth: letmein\r\n") {
                        ("200 OK", value)
                    } else {
                        ("401 Unauthorized", "who are you")
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        Self { base, hits }
    }

    fn lookup(&self, path: &str, auth: Option<&str>) -> oh_protocol::LookupSecret {
        let mut headers = std::collections::BTreeMap::new();
        if let Some(auth) = auth {
            headers.insert("X-Auth".to_owned(), oh_protocol::SecretString::new(auth));
        }
        oh_protocol::LookupSecret {
            description: Some("a token from the vault".to_owned()),
            url: format!("{}{path}", self.base),
            headers,
        }
    }
}

fn terminal_texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Observation(o) => match &o.observation {
                Observation::Terminal(t) => Some(serde_json::to_string(&t.content).unwrap()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_secrets_are_fetched_when_used_and_masked() {
    const VALUE: &str = "looked-up-value-42";
    let server = SecretServer::start(VALUE).await;
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("think", json!({"thought": "nothing secret yet"})),
        Reply::tool(
            "terminal",
            json!({"command": "printf %s \"$VAULT_TOKEN\" | wc -c"}),
        ),
        Reply::tool("terminal", json!({"command": "echo token=$VAULT_TOKEN"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    let config = common::config(common::agent(&llm.base_url()), dir.path(), None)
        .lookup_secret("VAULT_TOKEN", server.lookup("/secret", Some("letmein")));
    let conv = common::start(config);
    conv.send_text("use the token").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);

    // Fetched once per command that mentions it, never before.
    assert_eq!(server.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    let events = conv.events();
    let texts = terminal_texts(&events);
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[0].contains(&VALUE.len().to_string()),
        "the value reached the shell: {}",
        texts[0]
    );
    assert!(texts[1].contains("token=<secret-hidden>"), "{}", texts[1]);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(VALUE));
    assert!(!all.contains("letmein"));
    for request in llm.requests() {
        let body = request.body.to_string();
        assert!(!body.contains(VALUE) && !body.contains("letmein"));
    }
    let state = serde_json::to_string(&conv.state()).unwrap();
    assert!(
        state.contains("LookupSecret") && state.contains("/secret"),
        "{state}"
    );
    assert!(
        !state.contains("letmein") && !state.contains(VALUE),
        "{state}"
    );
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lookups_are_reported_and_the_run_goes_on() {
    let server = SecretServer::start("unused").await;
    // A port nobody listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "terminal",
            json!({"command": "echo missing=[$MISSING_TOKEN]"}),
        ),
        Reply::tool(
            "terminal",
            json!({"command": "echo denied=[$DENIED_TOKEN]"}),
        ),
        Reply::tool("terminal", json!({"command": "echo gone=[$GONE_TOKEN]"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    let gone = oh_protocol::LookupSecret {
        description: None,
        url: format!("http://{closed}/secret"),
        headers: Default::default(),
    };
    let config = common::config(common::agent(&llm.base_url()), dir.path(), None)
        .lookup_secret("MISSING_TOKEN", server.lookup("/nothing", Some("letmein")))
        .lookup_secret(
            "DENIED_TOKEN",
            server.lookup("/secret", Some("bad-pass-77")),
        )
        .lookup_secret("GONE_TOKEN", gone);
    let conv = common::start(config);
    conv.send_text("try the tokens").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);

    let texts = terminal_texts(&conv.events());
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[0].contains("MISSING_TOKEN could not be fetched"),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains("HTTP 404"), "{}", texts[0]);
    assert!(
        texts[0].contains("missing=[]"),
        "ran without it: {}",
        texts[0]
    );
    assert!(texts[1].contains("HTTP 401"), "{}", texts[1]);
    assert!(texts[1].contains("denied=[]"), "{}", texts[1]);
    assert!(
        texts[2].contains("GONE_TOKEN could not be fetched"),
        "{}",
        texts[2]
    );
    assert!(texts[2].contains("gone=[]"), "{}", texts[2]);
    let all = serde_json::to_string(&conv.events()).unwrap();
    assert!(!all.contains("letmein") && !all.contains("bad-pass-77"));
    conv.close().await;
}
