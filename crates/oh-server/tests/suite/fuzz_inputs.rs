//! Property-based fuzzing of the server's parsers of client input, through the real
//! handlers: query strings and path ids (events, bash and conversation search/count, gets by
//! id), multipart uploads, and WebSocket frames (auth frames, messages, bash commands, raw
//! bytes). Every case must end in a success or a 4xx with a JSON `detail` — never a panic, a
//! 5xx, or a socket the server stops serving.
//!
//! REST cases go through `Server::router` with `tower::ServiceExt::oneshot` (no TCP round
//! trip per case); socket cases use one long-lived loopback socket and a ping as barrier.
//!
//! Run length: `PROPTEST_CASES` cases per round (default 256: a short run for CI) and, when
//! `OH_FUZZ_SECONDS` is set, rounds with fresh seeds until that many seconds have passed:
//!
//! ```sh
//! OH_FUZZ_SECONDS=600 PROPTEST_CASES=2000 cargo test -p oh-server --test all -- \
//!     fuzz_inputs::rest_queries_and_ids --nocapture
//! ```
//!
//! Regression policy: a failure's seed is written to `fuzz_inputs.proptest-regressions` next
//! to this file; commit it with the fix (proptest replays those seeds first on later runs).
//!
//! Safety: the only commands the bash generators can produce are `true`, `:` and
//! `echo fuzz` (anything else that would parse as a command is rewritten before sending),
//! and uploads only target fresh names in the test's temp directory.

use super::common;

use std::fmt::Debug;
use std::time::{Duration, Instant};

use axum::body::Body;
use futures::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::{Method, Request, StatusCode};
use oh_protocol::ExecuteBashRequest;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

/// Runs `test` on `strategy` for `PROPTEST_CASES` cases, in rounds until `OH_FUZZ_SECONDS`.
fn fuzz<S>(name: &str, strategy: S, mut test: impl FnMut(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = std::env::var("OH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let config = Config {
        source_file: Some(file!()),
        // `<test>.proptest-regressions` next to this file (the crate-root lookup of the
        // default does not apply to integration tests).
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let started = Instant::now();
    let mut cases = 0u64;
    let test = std::cell::RefCell::new(&mut test);
    loop {
        let mut runner = TestRunner::new(config.clone());
        if let Err(err) = runner.run(&strategy, |value| (test.borrow_mut())(value)) {
            panic!("fuzz target {name} failed after {cases} cases: {err}");
        }
        cases += u64::from(config.cases);
        if budget.is_none_or(|budget| started.elapsed() >= budget) {
            break;
        }
    }
    eprintln!(
        "fuzz target {name}: {cases} cases in {:.1} s, no failure",
        started.elapsed().as_secs_f64()
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Characters that trip byte-slicing parsers: multi-byte ones next to grammar bytes.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '0', '1', '9', '-', '+', ':', '.', 'T', ' ', 'Z', ',', '&', '=', '%', '\0', '\n', '"',
        ]),
        2 => prop::sample::select(vec!['é', '€', '😀', '\u{a0}', '\u{2212}', '٣', '\u{feff}']),
        1 => any::<char>(),
    ]
}

fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..max).prop_map(|c| c.into_iter().collect())
}

/// A value near what some query parameter accepts.
fn near_value() -> impl Strategy<Value = String> {
    let timestamp = (
        0u32..10_000,
        0u32..14,
        0u32..33,
        0u32..25,
        0u32..61,
        0u32..61,
        prop::sample::select(vec![
            "",
            "Z",
            "+02:00",
            "-0130",
            "+",
            "+a\u{e9}",
            ".\u{20ac}X",
            "+99:99",
        ]),
    )
        .prop_map(|(y, mo, d, h, mi, s, z)| {
            format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{z}")
        });
    prop_oneof![
        2 => timestamp,
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => (-5i64..200).prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|n| n.to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string()),
        1 => prop::sample::select(vec![
            "TIMESTAMP", "TIMESTAMP_DESC", "timestamp", "CREATED_AT", "UPDATED_AT_DESC",
            "agent", "user", "environment", "hook", "idle", "running", "finished", "error",
            "BashCommand", "BashOutput", "MessageEvent", "true", "false", "yes", "0", "",
        ])
        .prop_map(str::to_owned),
        2 => tricky_string(24),
        1 => any::<String>(),
    ]
}

/// A query string: known and random names with near-grammar values, percent-encoded or
/// raw, or arbitrary text.
fn query_string(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    let name = prop_oneof![
        6 => prop::sample::select(names).prop_map(str::to_owned),
        1 => tricky_string(8),
    ];
    let pair = (name, near_value(), any::<bool>()).prop_map(|(name, value, encode)| {
        if encode {
            form_urlencoded::Serializer::new(String::new())
                .append_pair(&name, &value)
                .finish()
        } else {
            format!("{name}={value}")
        }
    });
    prop_oneof![
        5 => prop::collection::vec(pair, 0..6).prop_map(|pairs| pairs.join("&")),
        1 => any::<String>(),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(|bytes| {
            bytes.iter().map(|b| format!("%{b:02X}")).collect::<String>()
        }),
    ]
}

/// A path segment: an id in one of its accepted forms, or something near it.
fn path_id() -> impl Strategy<Value = String> {
    prop_oneof![
        // Replaced by the test with an id that exists.
        1 => Just("EXISTING".to_owned()),
        2 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).urn().to_string()),
        1 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).simple().to_string().to_uppercase()),
        2 => tricky_string(40),
        1 => any::<String>(),
    ]
    .prop_map(|id| {
        // As a client would send it: percent-encoded where the URI grammar needs it.
        id.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    })
}

/// Statuses seen, printed at the end of a run (to see that the cases get past validation).
#[derive(Debug, Default)]
struct Statuses(std::sync::Mutex<std::collections::BTreeMap<u16, u64>>);

impl Statuses {
    fn record(&self, status: StatusCode) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(status.as_u16()).or_default() += 1;
        }
    }

    fn report(&self, name: &str) {
        eprintln!(
            "fuzz target {name}: statuses {:?}",
            self.0.lock().map(|m| m.clone())
        );
    }
}

/// The status is a success, the trailing-slash redirect, or a 4xx with a JSON `detail`.
async fn check_response(
    response: axum::response::Response,
    what: &str,
    statuses: &Statuses,
) -> Result<(), TestCaseError> {
    let status = response.status();
    statuses.record(status);
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| TestCaseError::fail(format!("{what}: body: {err}")))?
        .to_bytes();
    prop_assert!(
        // 307: the trailing-slash redirect (`/api/conversations/` → `/api/conversations`).
        status.is_success() || status == StatusCode::TEMPORARY_REDIRECT || status.is_client_error(),
        "{what}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_client_error() {
        let json: Value = serde_json::from_slice(&body).map_err(|err| {
            TestCaseError::fail(format!(
                "{what}: {status} not JSON ({err}): {}",
                String::from_utf8_lossy(&body)
            ))
        })?;
        prop_assert!(json.get("detail").is_some(), "{what}: {status} {json}");
    }
    Ok(())
}

const EVENT_PARAMS: &[&str] = &[
    "kind",
    "source",
    "body",
    "timestamp__gte",
    "timestamp__lt",
    "sort_order",
    "page_id",
    "limit",
];
const BASH_PARAMS: &[&str] = &[
    "kind__eq",
    "command_id__eq",
    "order__gt",
    "timestamp__gte",
    "timestamp__lt",
    "sort_order",
    "page_id",
    "limit",
];
const CONVERSATION_PARAMS: &[&str] = &[
    "status",
    "sort_order",
    "page_id",
    "limit",
    "ids",
    "include_skills",
];

#[test]
fn rest_queries_and_ids() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let (router, conversation, command) = rt.block_on(async {
        let config = oh_server::Config::under(dir.path());
        let server = oh_server::Server::bind(config).await.expect("bind");
        let router = server.router();
        // One conversation and one bash command, so filters run over real events.
        let create = common::create_body(common::agent_json("http://127.0.0.1:9/v1"), dir.path());
        let response = router
            .clone()
            .oneshot(
                Request::post("/api/conversations")
                    .header("content-type", "application/json")
                    .body(Body::from(create.to_string()))
                    .expect("request"),
            )
            .await
            .expect("create");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let created: Value = serde_json::from_slice(&body).expect("created");
        let id = created["id"].as_str().expect("id").to_owned();
        let response = router
            .clone()
            .oneshot(
                Request::post("/api/bash/execute_bash_command")
                    .header("content-type", "application/json")
                    .body(Body::from(json!({"command": "echo fuzz"}).to_string()))
                    .expect("request"),
            )
            .await
            .expect("bash");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let output: Value = serde_json::from_slice(&body).expect("bash output");
        let command = output["command_id"].as_str().unwrap_or_default().to_owned();
        (router, id, command)
    });
    let routes = prop_oneof![
        Just(("/api/conversations/{c}/events/search", EVENT_PARAMS)),
        Just(("/api/conversations/{c}/events/count", EVENT_PARAMS)),
        Just(("/api/bash/bash_events/search", BASH_PARAMS)),
        Just(("/api/conversations/search", CONVERSATION_PARAMS)),
        Just(("/api/conversations/count", CONVERSATION_PARAMS)),
        Just(("/api/conversations", CONVERSATION_PARAMS)),
        Just(("/api/bash/bash_events/", &["ids"][..])),
        Just(("/api/conversations/{c}/events", &["event_ids"][..])),
        Just(("/api/conversations/{id}", &["x"][..])),
        Just(("/api/conversations/{c}/events/{id}", &["x"][..])),
        Just(("/api/bash/bash_events/{id}", &["x"][..])),
        Just(("/api/conversations/{id}/events/search", EVENT_PARAMS)),
    ];
    let strategy = (
        routes,
        path_id(),
        query_string(EVENT_PARAMS),
        query_string(BASH_PARAMS),
    )
        .prop_flat_map(|((route, names), id, a, b)| {
            (
                Just(route),
                Just(id),
                query_string(names),
                Just(a),
                Just(b),
                0usize..3,
            )
        })
        .prop_map(|(route, id, q, a, b, pick)| {
            let query = [q, a, b].into_iter().nth(pick).unwrap_or_default();
            (route, id, query)
        });
    let statuses = Statuses::default();
    fuzz("rest_queries_and_ids", strategy, |(route, id, query)| {
        let id = match (id.as_str(), route.starts_with("/api/bash")) {
            ("EXISTING", true) => command.clone(),
            ("EXISTING", false) => conversation.clone(),
            _ => id,
        };
        let path = route.replace("{c}", &conversation).replace("{id}", &id);
        let uri = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        // Text a client cannot put in a request line is not a case.
        prop_assume!(uri.parse::<hyper::Uri>().is_ok());
        let request = Request::get(&uri).body(Body::empty()).expect("request");
        rt.block_on(async {
            let response = router
                .clone()
                .oneshot(request)
                .await
                .map_err(|err| TestCaseError::fail(format!("{uri}: {err}")))?;
            check_response(response, &uri, &statuses).await
        })
    });
    statuses.report("rest_queries_and_ids");
}

/// A multipart body near the grammar: parts with odd names, headers, boundaries and cuts.
fn multipart_body() -> impl Strategy<Value = (String, Vec<u8>)> {
    let boundary = prop_oneof![
        4 => Just("fuzzBoundary123".to_owned()),
        1 => tricky_string(20),
        1 => Just(String::new()),
        1 => Just("x".repeat(100)),
    ];
    let part = (
        prop_oneof![
            4 => Just("file".to_owned()),
            1 => Just("other".to_owned()),
            1 => tricky_string(10),
        ],
        prop_oneof![
            2 => Just(Some("a.txt".to_owned())),
            1 => Just(None),
            1 => tricky_string(12).prop_map(Some),
        ],
        prop::collection::vec(any::<u8>(), 0..300),
        prop_oneof![
            4 => Just(Vec::new()),
            2 => Just(vec!["Content-Type: text/plain".to_owned()]),
            1 => prop::collection::vec(tricky_string(30), 1..3),
        ],
        prop::bool::weighted(0.9),
    );
    (
        boundary,
        prop::collection::vec(part, 0..4),
        prop_oneof![4 => Just(usize::MAX), 1 => 0usize..600],
        prop::bool::weighted(0.9),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(boundary, parts, cut, closing, junk)| {
            let mut body = Vec::new();
            for (name, filename, content, extra_headers, crlf) in parts {
                body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                let filename = filename.map_or(String::new(), |f| format!("; filename=\"{f}\""));
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"{filename}\r\n")
                        .as_bytes(),
                );
                for header in extra_headers {
                    body.extend_from_slice(header.as_bytes());
                    body.extend_from_slice(b"\r\n");
                }
                body.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
                body.extend_from_slice(&content);
                body.extend_from_slice(b"\r\n");
            }
            if closing {
                body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            } else {
                body.extend_from_slice(&junk);
            }
            body.truncate(cut);
            (boundary, body)
        })
}

#[test]
fn multipart_uploads() {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let uploads = dir.path().join("uploads");
    let router = rt.block_on(async {
        let config = oh_server::Config::under(&dir.path().join("server"));
        oh_server::Server::bind(config)
            .await
            .expect("bind")
            .router()
    });
    let content_type = prop_oneof![
        4 => Just(None),
        1 => tricky_string(40).prop_map(Some),
        1 => Just(Some("multipart/form-data".to_owned())),
        1 => Just(Some("multipart/form-data; boundary=\"quoted\"".to_owned())),
    ];
    let strategy = (
        multipart_body(),
        content_type,
        "[a-z0-9]{1,12}",
        prop::collection::vec(any::<u8>(), 0..200),
        0u8..8,
    );
    let statuses = Statuses::default();
    fuzz(
        "multipart_uploads",
        strategy,
        |((boundary, body), content_type, name, raw, mode)| {
            // Uploads land in the temp dir only; the name is short and plain (long names and
            // odd paths are the file routes' concern, not the multipart parser's).
            let path = uploads.join(&name);
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("path", &path.to_string_lossy())
                .finish();
            let content_type =
                content_type.unwrap_or_else(|| format!("multipart/form-data; boundary={boundary}"));
            let body = if mode == 0 { raw } else { body };
            let Ok(request) = Request::builder()
                .method(Method::POST)
                .uri(format!("/api/file/upload?{query}"))
                .header("content-type", content_type)
                .body(Body::from(body))
            else {
                // A header value a client cannot send.
                return Ok(());
            };
            rt.block_on(async {
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|err| TestCaseError::fail(format!("upload: {err}")))?;
                check_response(response, "upload", &statuses).await
            })
        },
    );
    statuses.report("multipart_uploads");
}

const SAFE_COMMANDS: &[&str] = &["true", ":", "echo fuzz"];

/// Makes sure a frame can only ever run a harmless command.
fn defused(text: String) -> String {
    match serde_json::from_str::<ExecuteBashRequest>(&text) {
        Ok(request) if !SAFE_COMMANDS.contains(&request.command.as_str()) => {
            json!({"command": "true", "timeout": 5}).to_string()
        }
        _ => text,
    }
}

/// A JSON value of a few levels, with tricky strings.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        tricky_string(16).prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((tricky_string(6), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A text frame near what the sockets accept: bash requests, messages, auth frames.
fn socket_text() -> impl Strategy<Value = String> {
    let bash = (
        prop::sample::select(SAFE_COMMANDS),
        prop_oneof![
            Just(None),
            tricky_string(12).prop_map(Some),
            Just(Some("/".to_owned()))
        ],
        prop_oneof![
            Just(Value::Null),
            (0u64..5).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            tricky_string(6).prop_map(Value::String),
        ],
    )
        .prop_map(|(command, cwd, timeout)| {
            let mut frame = json!({"command": command});
            if let Some(cwd) = cwd {
                frame["cwd"] = Value::String(cwd);
            }
            if !timeout.is_null() {
                frame["timeout"] = timeout;
            }
            frame.to_string()
        });
    let message = (
        prop::sample::select(vec!["user", "assistant", "system", "tool", "USER", ""]),
        prop_oneof![
            tricky_string(20).prop_map(|t| json!([{"type": "text", "text": t}])),
            json_value(),
        ],
        any::<bool>(),
    )
        .prop_map(|(role, content, run)| {
            json!({"role": role, "content": content, "run": run}).to_string()
        });
    let auth = (tricky_string(20), json_value()).prop_map(|(key, extra)| {
        json!({"type": "auth", "session_api_key": key, "x": extra}).to_string()
    });
    prop_oneof![
        3 => bash,
        2 => message,
        1 => auth,
        1 => json_value().prop_map(|v| v.to_string()),
        1 => any::<String>(),
        1 => tricky_string(40),
    ]
    .prop_map(defused)
}

/// What a client sends: a text frame, a binary frame, or a ping.
#[derive(Debug, Clone)]
enum Outbound {
    Text(String),
    Binary(Vec<u8>),
}

use common::Ws;

/// Sends `frame` then a ping, and waits for the matching pong: the socket is still served.
async fn exchange(ws: &mut Ws, frame: Outbound, seq: u64) -> Result<(), TestCaseError> {
    let message = match frame {
        Outbound::Text(text) => Message::Text(text.into()),
        Outbound::Binary(bytes) => Message::Binary(bytes.into()),
    };
    ws.send(message)
        .await
        .map_err(|err| TestCaseError::fail(format!("send: {err}")))?;
    let tag = seq.to_be_bytes().to_vec();
    ws.send(Message::Ping(tag.clone().into()))
        .await
        .map_err(|err| TestCaseError::fail(format!("ping: {err}")))?;
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Pong(payload))) if payload.as_ref() == tag.as_slice() => {
                    return Ok(());
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(TestCaseError::fail(format!("server closed: {frame:?}")));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(TestCaseError::fail(format!("read: {err}"))),
                None => return Err(TestCaseError::fail("connection ended")),
            }
        }
    })
    .await
    .map_err(|_| TestCaseError::fail("no pong within 30 s"))?
}

async fn open(addr: std::net::SocketAddr, path: &str, key: Option<&str>) -> Ws {
    common::ws_open(addr, path, key).await.expect("connect")
}

const KEY: &str = "fuzz-key";

#[test]
fn socket_frames() {
    let rt = runtime();
    let server = rt.block_on(common::TestServer::with_key(KEY));
    let addr = server.addr;
    let conversation = rt.block_on(async {
        let create = common::create_body(
            common::agent_json("http://127.0.0.1:9/v1"),
            server.dir.path(),
        );
        let reply = server.post("/api/conversations", create).await;
        reply.json()["id"].as_str().expect("id").to_owned()
    });
    let events_path = format!("/sockets/events/{conversation}");
    let mut bash = rt.block_on(open(addr, "/sockets/bash-events", Some(KEY)));
    let mut events = rt.block_on(open(addr, &events_path, Some(KEY)));
    let frame = prop_oneof![
        6 => socket_text().prop_map(Outbound::Text),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Outbound::Binary),
    ];
    let strategy = (0u8..3, frame);
    let mut seq = 0u64;
    fuzz("socket_frames", strategy, |(target, frame)| {
        seq += 1;
        rt.block_on(async {
            match target {
                0 => exchange(&mut bash, frame, seq).await,
                1 => exchange(&mut events, frame, seq).await,
                _ => {
                    // The first frame of an unauthenticated socket: only a valid auth frame
                    // is let in; anything else is closed with 4001.
                    let mut ws = open(addr, "/sockets/bash-events", None).await;
                    let valid = matches!(&frame, Outbound::Text(text)
                        if serde_json::from_str::<Value>(text).is_ok_and(|v|
                            v["type"] == "auth" && v["session_api_key"] == KEY));
                    let message = match frame {
                        Outbound::Text(text) => Message::Text(text.into()),
                        Outbound::Binary(bytes) => Message::Binary(bytes.into()),
                    };
                    ws.send(message)
                        .await
                        .map_err(|err| TestCaseError::fail(format!("send: {err}")))?;
                    if valid {
                        return exchange(&mut ws, Outbound::Text("{}".into()), seq).await;
                    }
                    let next = tokio::time::timeout(Duration::from_secs(15), ws.next())
                        .await
                        .map_err(|_| TestCaseError::fail("no close within 15 s"))?;
                    match next {
                        Some(Ok(Message::Close(Some(close)))) => {
                            prop_assert_eq!(u16::from(close.code), 4001);
                            Ok(())
                        }
                        other => Err(TestCaseError::fail(format!("expected 4001, got {other:?}"))),
                    }
                }
            }
        })
    });
    drop(server);
}

/// Raw bytes after the handshake (before and after auth): the server answers with a close
/// or keeps waiting, and stays healthy; it never panics or stops serving others.
#[test]
fn raw_socket_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = runtime();
    let server = rt.block_on(common::TestServer::with_key(KEY));
    let addr = server.addr;
    let frames = prop_oneof![
        // Arbitrary bytes.
        1 => prop::collection::vec(any::<u8>(), 0..200),
        // A frame header with random bits and lengths, masked or not, then some payload.
        3 => (any::<u8>(), any::<bool>(), prop_oneof![0u64..126, Just(126u64), Just(127u64)],
              any::<u64>(), prop::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(first, masked, len7, ext, payload)| {
                let mut bytes = vec![first, (u8::from(masked) << 7) | len7 as u8];
                match len7 {
                    126 => bytes.extend_from_slice(&(ext as u16).to_be_bytes()),
                    127 => bytes.extend_from_slice(&ext.to_be_bytes()),
                    _ => {}
                }
                if masked {
                    bytes.extend_from_slice(&[1, 2, 3, 4]);
                }
                bytes.extend_from_slice(&payload);
                bytes
            }),
    ];
    let strategy = (any::<bool>(), prop::collection::vec(frames, 1..4));
    fuzz("raw_socket_bytes", strategy, |(authenticated, chunks)| {
        rt.block_on(async {
            let mut tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|err| TestCaseError::fail(format!("connect: {err}")))?;
            let key = if authenticated {
                format!("X-Session-API-Key: {KEY}\r\n")
            } else {
                String::new()
            };
            let request = format!(
                "GET /sockets/bash-events HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{key}\r\n"
            );
            tcp.write_all(request.as_bytes())
                .await
                .map_err(|err| TestCaseError::fail(format!("handshake: {err}")))?;
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0u8; 1];
                tcp.read_exact(&mut byte)
                    .await
                    .map_err(|err| TestCaseError::fail(format!("handshake answer: {err}")))?;
                head.push(byte[0]);
            }
            prop_assert!(head.starts_with(b"HTTP/1.1 101"));
            for chunk in chunks {
                // The server may already have closed: a write error is fine.
                if tcp.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            drop(tcp);
            // The server still serves: a fresh authenticated socket answers a ping.
            let mut ws = open(addr, "/sockets/bash-events", Some(KEY)).await;
            exchange(&mut ws, Outbound::Text("{}".into()), 1).await
        })
    });
    drop(server);
}
