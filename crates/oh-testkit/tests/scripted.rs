//! The scripted LLM server over real HTTP, and the `scripted-llm` binary.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use oh_testkit::{COMPLETION_TOKENS, PROMPT_TOKENS, Reply, ScriptedCall, ScriptedLlm};
use serde_json::{Value, json};

/// One blocking HTTP/1.1 exchange; returns the status, the lower-cased headers and the body.
fn exchange(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         X-Test: yes\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.to_owned())
}

async fn call(addr: SocketAddr, method: &str, path: &str, body: Value) -> (u16, String, Value) {
    let (method, path) = (method.to_owned(), path.to_owned());
    let (status, head, text) = tokio::task::spawn_blocking(move || {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        exchange(addr, &method, &path, &body)
    })
    .await
    .unwrap();
    (
        status,
        head,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn renders_chat_completions() {
    let llm = ScriptedLlm::start(vec![
        Reply::text("hello"),
        Reply::ToolCalls {
            text: None,
            calls: vec![
                ScriptedCall::new("terminal", "{\"command\": \"ls\"}"),
                ScriptedCall::new("finish", "not json").with_id("call_x"),
            ],
        },
        Reply::thinking("hmm", "sig", Reply::Empty),
    ])
    .await
    .unwrap();
    assert!(llm.base_url().starts_with("http://127.0.0.1:"));
    assert!(llm.base_url().ends_with("/v1"));
    let addr = llm.addr();

    let (status, head, body) =
        call(addr, "POST", "/v1/chat/completions", json!({"model": "m1"})).await;
    assert_eq!(status, 200);
    assert!(head.contains("content-type: application/json"));
    assert_eq!(body["id"], "chatcmpl-scripted-1");
    assert_eq!(body["model"], "m1");
    assert_eq!(body["choices"][0]["message"]["content"], "hello");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], PROMPT_TOKENS);
    assert_eq!(body["usage"]["completion_tokens"], COMPLETION_TOKENS);

    let (_, _, body) = call(addr, "POST", "/chat/completions", json!({})).await;
    let calls = &body["choices"][0]["message"]["tool_calls"];
    assert_eq!(calls[0]["id"], "call_1");
    assert_eq!(calls[0]["function"]["arguments"], "{\"command\": \"ls\"}");
    assert_eq!(calls[1]["id"], "call_x");
    assert_eq!(calls[1]["function"]["arguments"], "not json");
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["choices"][0]["message"]["content"], Value::Null);

    let (_, _, body) = call(addr, "POST", "/v1/chat/completions", json!({})).await;
    assert_eq!(body["choices"][0]["message"]["reasoning_content"], "hmm");
    assert_eq!(body["choices"][0]["message"]["content"], Value::Null);

    let requests = llm.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].header("X-TEST"), Some("yes"));
    assert_eq!(requests[0].body, json!({"model": "m1"}));
    assert!(!requests[0].is_anthropic());
    assert_eq!(llm.remaining(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn renders_anthropic_messages() {
    let llm = ScriptedLlm::start(vec![
        Reply::thinking(
            "think",
            "sig-1",
            Reply::ToolCalls {
                text: Some("Doing it.".into()),
                calls: vec![
                    ScriptedCall::new("terminal", "{\"z\":1,  \"a\":2}"),
                    ScriptedCall::new("finish", "[1, 2]"),
                ],
            },
        ),
        Reply::Empty,
    ])
    .await
    .unwrap();
    let addr = llm.addr();
    let (status, _, body) = call(
        addr,
        "POST",
        "/v1/v1/messages",
        json!({"model": "claude-x"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["id"], "msg_scripted_1");
    assert_eq!(body["model"], "claude-x");
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["usage"]["input_tokens"], PROMPT_TOKENS);
    assert_eq!(body["usage"]["output_tokens"], COMPLETION_TOKENS);
    let content = body["content"].as_array().unwrap();
    assert_eq!(
        content[0],
        json!({"type": "thinking", "thinking": "think", "signature": "sig-1"})
    );
    assert_eq!(content[1], json!({"type": "text", "text": "Doing it."}));
    assert_eq!(content[2]["id"], "toolu_1");
    assert_eq!(content[2]["input"], json!({"z": 1, "a": 2}));
    // A non-object argument text cannot be an Anthropic input: it is sent as a string.
    assert_eq!(content[3]["input"], "[1, 2]");

    let (_, _, body) = call(addr, "POST", "/messages", json!({})).await;
    assert_eq!(body["id"], "msg_scripted_2");
    assert_eq!(body["content"], json!([]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(llm.requests()[0].is_anthropic());
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_inputs_keep_the_scripted_text() {
    let llm = ScriptedLlm::start(vec![Reply::tools(vec![ScriptedCall::new(
        "t",
        "{\"z\": 1, \"a\": {\"y\": 2, \"b\": 3}}",
    )])])
    .await
    .unwrap();
    let addr = llm.addr();
    let raw = tokio::task::spawn_blocking(move || exchange(addr, "POST", "/v1/messages", "{}").2)
        .await
        .unwrap();
    assert!(
        raw.contains("\"input\":{\"z\": 1, \"a\": {\"y\": 2, \"b\": 3}}"),
        "{raw}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_delays_headers_and_exhaustion() {
    let llm = ScriptedLlm::start(vec![
        Reply::error(429, "slow down"),
        Reply::status(503, json!({"detail": "later"})),
        Reply::with_headers(
            Reply::delay(50, Reply::text("late")),
            [("x-litellm-response-cost", "0.5")],
        ),
        Reply::Raw(json!({"id": "raw", "choices": []})),
    ])
    .await
    .unwrap();
    let addr = llm.addr();
    let (status, _, body) = call(addr, "POST", "/v1/chat/completions", json!({})).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["message"], "slow down");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let (status, _, body) = call(addr, "POST", "/v1/chat/completions", json!({})).await;
    assert_eq!(status, 503);
    assert_eq!(body, json!({"detail": "later"}));
    let started = std::time::Instant::now();
    let (status, head, body) = call(addr, "POST", "/v1/chat/completions", json!({})).await;
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(status, 200);
    assert!(head.contains("x-litellm-response-cost: 0.5"), "{head}");
    assert_eq!(body["choices"][0]["message"]["content"], "late");
    // Replies are numbered by rendered content reply.
    assert_eq!(body["id"], "chatcmpl-scripted-1");
    let (status, _, body) = call(addr, "POST", "/v1/chat/completions", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"id": "raw", "choices": []}));

    let (status, _, body) = call(addr, "POST", "/v1/chat/completions", json!({})).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"]["type"], "script_exhausted");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("script exhausted")
    );

    llm.push(Reply::text("pushed"));
    assert_eq!(llm.remaining(), 1);
    let (status, _, body) = call(addr, "POST", "/v1/chat/completions", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body["choices"][0]["message"]["content"], "pushed");
    assert_eq!(llm.requests().len(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn toolless_requests_can_bypass_the_script() {
    let llm = ScriptedLlm::start(vec![Reply::tool("finish", json!({"message": "done"}))])
        .await
        .unwrap();
    let addr = llm.addr();
    let tools = json!({"tools": [{"type": "function", "function": {"name": "finish"}}]});
    llm.answer_toolless(Some(Reply::text("A title")));
    for body in [json!({}), json!({"tools": []})] {
        let (status, _, body) = call(addr, "POST", "/v1/chat/completions", body).await;
        assert_eq!(status, 200);
        assert_eq!(body["choices"][0]["message"]["content"], "A title");
    }
    assert_eq!(llm.remaining(), 1, "the script is untouched");
    let (status, _, body) = call(addr, "POST", "/v1/chat/completions", tools.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "finish"
    );
    assert_eq!(llm.requests().len(), 3, "bypassing requests are recorded");

    llm.answer_toolless(None);
    let (status, _, body) = call(addr, "POST", "/v1/chat/completions", json!({})).await;
    assert_eq!(
        status, 500,
        "without the option a toolless request uses the script"
    );
    assert_eq!(body["error"]["type"], "script_exhausted");
}

#[tokio::test(flavor = "multi_thread")]
async fn introspection_routes_and_unknown_paths() {
    let llm = ScriptedLlm::start(vec![Reply::text("a"), Reply::text("b")])
        .await
        .unwrap();
    let addr = llm.addr();
    let (status, _, _) = call(addr, "POST", "/v1/embeddings", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(llm.remaining(), 2, "an unknown path consumes nothing");
    call(addr, "POST", "/v1/chat/completions", json!({"n": 1})).await;
    let (status, _, body) = call(addr, "GET", "/_scripted/remaining", Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"remaining": 1}));
    let (_, _, body) = call(addr, "GET", "/_scripted/requests", Value::Null).await;
    let recorded = body.as_array().unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[1]["path"], "/v1/chat/completions");
    assert_eq!(recorded[1]["body"], json!({"n": 1}));
    assert_eq!(recorded[1]["headers"]["x-test"], "yes");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_stops_the_server() {
    let llm = ScriptedLlm::start(vec![]).await.unwrap();
    let addr = llm.addr();
    drop(llm);
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(addr).is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener should be closed after drop");
}

#[test]
fn script_files_parse() {
    let text = r#"[
      {"kind": "text", "text": "Hello"},
      "Short form",
      {"kind": "tool_calls", "text": "Let me look.",
       "calls": [{"name": "terminal", "arguments": "{\"command\": \"ls\"}"},
                 {"id": "call_x", "name": "finish", "arguments": {"message": "done"}}]},
      {"kind": "thinking", "thinking": "Hmm.", "signature": "sig", "then": {"kind": "text", "text": "Hi"}},
      {"kind": "empty"},
      {"kind": "status", "status": 429, "body": {"error": {"message": "slow down"}}},
      {"kind": "raw", "body": {"id": "x", "choices": []}},
      {"kind": "delay", "ms": 2000, "then": {"kind": "text", "text": "late"}},
      {"kind": "headers", "headers": {"x-litellm-response-cost": "0.5"}, "then": {"kind": "text", "text": "priced"}}
    ]"#;
    let script: Vec<Reply> = serde_json::from_str(text).unwrap();
    assert_eq!(
        script,
        vec![
            Reply::text("Hello"),
            Reply::text("Short form"),
            Reply::ToolCalls {
                text: Some("Let me look.".into()),
                calls: vec![
                    ScriptedCall::new("terminal", "{\"command\": \"ls\"}"),
                    ScriptedCall::new("finish", "{\"message\":\"done\"}").with_id("call_x"),
                ],
            },
            Reply::thinking("Hmm.", "sig", Reply::text("Hi")),
            Reply::Empty,
            Reply::status(429, json!({"error": {"message": "slow down"}})),
            Reply::Raw(json!({"id": "x", "choices": []})),
            Reply::delay(2000, Reply::text("late")),
            Reply::with_headers(Reply::text("priced"), [("x-litellm-response-cost", "0.5")]),
        ]
    );
    let again: Vec<Reply> = serde_json::from_value(serde_json::to_value(&script).unwrap()).unwrap();
    assert_eq!(again, script);
    assert_eq!(
        serde_json::to_value(Reply::text("x")).unwrap(),
        json!({"kind": "text", "text": "x"})
    );
}

/// Starts the binary on `script` with `extra` arguments; its base address and the child.
fn spawn_binary(script: &std::path::Path, extra: &[&str]) -> (SocketAddr, std::process::Child) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_scripted-llm"))
        .arg(script)
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .strip_suffix("/v1")
        .unwrap()
        .parse()
        .unwrap();
    (addr, child)
}

const WITH_TOOLS: &str =
    r#"{"messages": [], "tools": [{"type": "function", "function": {"name": "finish"}}]}"#;

fn content(body: &str) -> Value {
    let body: Value = serde_json::from_str(body).unwrap();
    body["choices"][0]["message"]["content"].clone()
}

#[test]
fn binary_serves_a_script_file() {
    let dir = std::env::temp_dir().join(format!("scripted-llm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("script.json");
    std::fs::write(&script, r#"[{"kind": "text", "text": "from file"}]"#).unwrap();

    // By default a request without tools (a title request) is answered outside the script.
    let (addr, mut child) = spawn_binary(&script, &[]);
    let (title_status, _, title) = exchange(addr, "POST", "/v1/chat/completions", "{}");
    let (_, _, before) = exchange(addr, "GET", "/_scripted/remaining", "");
    let (status, _, body) = exchange(addr, "POST", "/v1/chat/completions", WITH_TOOLS);
    let (_, _, remaining) = exchange(addr, "GET", "/_scripted/remaining", "");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(title_status, 200);
    assert_eq!(content(&title), "Scripted conversation");
    assert_eq!(before, r#"{"remaining":1}"#);
    assert_eq!(status, 200);
    assert_eq!(content(&body), "from file");
    assert_eq!(remaining, r#"{"remaining":0}"#);

    // `--script-toolless`: every request takes the next entry.
    let (addr, mut child) = spawn_binary(&script, &["--script-toolless"]);
    let (_, _, body) = exchange(addr, "POST", "/v1/chat/completions", "{}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(content(&body), "from file");

    let status = std::process::Command::new(env!("CARGO_BIN_EXE_scripted-llm"))
        .arg(dir.join("missing.json"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_help_documents_the_script_format_and_exits_0() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_scripted-llm"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "SCRIPT FORMAT",
        "\"kind\": \"tool_calls\"",
        "--port",
        "--script-toolless",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_scripted-llm"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "no script is a usage error");
}

#[tokio::test(flavor = "multi_thread")]
async fn by_step_replays_the_script_for_every_conversation() {
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo hi"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    llm.replay_by_step(true);
    let addr = llm.addr();
    let tools = json!([{"type": "function", "function": {"name": "finish"}}]);
    let step = |history: Value| json!({"tools": tools, "messages": history});
    let first = step(json!([{"role": "user", "content": "go"}]));
    let second = step(json!([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null},
        {"role": "tool", "content": "hi"},
    ]));
    let third = step(json!([
        {"role": "assistant"}, {"role": "assistant"}, {"role": "user"},
    ]));
    // Two conversations interleaved: each gets its own step's entry.
    for (body, expected) in [
        (first.clone(), "terminal"),
        (first, "terminal"),
        (second.clone(), "finish"),
        (second, "finish"),
    ] {
        let (status, _, body) = call(addr, "POST", "/v1/chat/completions", body).await;
        assert_eq!(status, 200);
        assert_eq!(
            body["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            expected
        );
    }
    assert_eq!(llm.remaining(), 2, "the script is not consumed");
    let (status, _, body) = call(addr, "POST", "/v1/chat/completions", third).await;
    assert_eq!(status, 500, "a step past the script: {body}");
}
