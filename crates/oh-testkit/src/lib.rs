//! Test support for openhands-rs: a scripted LLM server speaking the OpenAI Chat Completions
//! and Anthropic Messages wire formats over real HTTP, recording every request.
//!
//! [`ScriptedLlm`] listens on `127.0.0.1:0` and answers each completion request with the next
//! [`Reply`] of its script, rendered in the format of the endpoint that was called:
//!
//! | Path ends with | Format |
//! | --- | --- |
//! | `/chat/completions` | OpenAI Chat Completions |
//! | `/messages` | Anthropic Messages |
//!
//! So a client configured with [`ScriptedLlm::base_url`] (`http://127.0.0.1:PORT/v1`) reaches
//! it whether it appends `/chat/completions` (OpenAI style) or `/v1/messages` (LiteLLM's
//! Anthropic style, which gives `/v1/v1/messages`).
//!
//! Every reply carries an id (`chatcmpl-scripted-N` / `msg_scripted_N`, N counting replies
//! from 1) and a usage block of [`PROMPT_TOKENS`] / [`COMPLETION_TOKENS`] tokens, so metrics
//! are exercised. When the script is exhausted the server answers HTTP 500 with a JSON body
//! saying so, so a test that asks for more than it scripted fails loudly.
//!
//! Two introspection routes, never recorded and never consuming the script, help
//! out-of-process users (the `scripted-llm` binary): `GET /_scripted/requests` (the recorded
//! requests as a JSON array of [`Recorded`]) and `GET /_scripted/remaining`
//! (`{"remaining": N}`). The binary answers requests that offer no tools outside the script
//! (see [`ScriptedLlm::answer_toolless`]) unless run with `--script-toolless`.
//!
//! # Script files
//!
//! [`Reply`] has a serde form, used by the `scripted-llm` binary (a JSON array of replies),
//! tagged by `kind`:
//!
//! ```json
//! [
//!   {"kind": "text", "text": "Hello"},
//!   {"kind": "tool_calls", "text": "Let me look.",
//!    "calls": [{"name": "terminal", "arguments": "{\"command\": \"ls\"}"},
//!              {"id": "call_x", "name": "finish", "arguments": {"message": "done"}}]},
//!   {"kind": "thinking", "thinking": "Hmm.", "signature": "sig", "then": {"kind": "text", "text": "Hi"}},
//!   {"kind": "empty"},
//!   {"kind": "status", "status": 429, "body": {"error": {"message": "slow down"}}},
//!   {"kind": "raw", "body": {"id": "x", "choices": []}},
//!   {"kind": "delay", "ms": 2000, "then": {"kind": "text", "text": "late"}},
//!   {"kind": "headers", "headers": {"x-litellm-response-cost": "0.5"}, "then": {"kind": "text", "text": "priced"}}
//! ]
//! ```
//!
//! A call's `arguments` is the raw string sent to the client (it may be invalid JSON); a JSON
//! value other than a string is accepted too and sent as its compact serialisation. `id` is
//! optional (`call_N` / `toolu_N` otherwise, N counting generated ids from 1). A bare JSON
//! string is accepted as shorthand for a text reply.

#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "logs")]
pub mod logs;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Prompt (input) tokens reported in every scripted reply's usage block.
pub const PROMPT_TOKENS: u64 = 11;
/// Completion (output) tokens reported in every scripted reply's usage block.
pub const COMPLETION_TOKENS: u64 = 7;

/// One tool call of a scripted reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedCall {
    /// The call id; generated (`call_N` / `toolu_N`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool name.
    pub name: String,
    /// The arguments exactly as sent (may be invalid JSON on purpose).
    #[serde(deserialize_with = "raw_or_json")]
    pub arguments: String,
}

impl ScriptedCall {
    /// A call with raw `arguments` and a generated id.
    pub fn new(name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self {
            id: None,
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    /// A call whose arguments are the compact serialisation of `arguments`.
    pub fn json(name: impl Into<String>, arguments: &Value) -> Self {
        Self::new(name, arguments.to_string())
    }

    /// The same call with a fixed id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Accepts a string (kept verbatim) or any other JSON value (compact serialisation).
fn raw_or_json<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

/// One scripted answer, rendered in the format of the endpoint that was called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "ReplyRepr", into = "ReplyRepr")]
pub enum Reply {
    /// An assistant text message.
    Text(String),
    /// Tool calls, optionally with text before them.
    ToolCalls {
        /// Text content, if any.
        text: Option<String>,
        /// The calls, in order.
        calls: Vec<ScriptedCall>,
    },
    /// A thinking block before another reply: an Anthropic `thinking` block (with its
    /// signature), or `reasoning_content` in the OpenAI format.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// The Anthropic signature.
        signature: String,
        /// The rest of the reply.
        then: Box<Reply>,
    },
    /// An assistant message with no content and no tool calls.
    Empty,
    /// An error reply with this status and JSON body.
    Status {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: Value,
    },
    /// A raw JSON body with status 200, sent as is.
    Raw(Value),
    /// Waits, then answers with another reply.
    Delay {
        /// Milliseconds to wait before answering.
        ms: u64,
        /// The reply after the wait.
        then: Box<Reply>,
    },
    /// Adds response headers to another reply (e.g. `x-litellm-response-cost`, `retry-after`).
    Headers {
        /// Header names and values.
        headers: BTreeMap<String, String>,
        /// The reply carrying them.
        then: Box<Reply>,
    },
}

impl Reply {
    /// A text reply.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(text.into())
    }

    /// One tool call with arguments `args` (compact JSON) and a generated id.
    pub fn tool(name: impl Into<String>, args: Value) -> Self {
        Self::tools(vec![ScriptedCall::json(name, &args)])
    }

    /// Several tool calls, without text.
    pub fn tools(calls: Vec<ScriptedCall>) -> Self {
        Self::ToolCalls { text: None, calls }
    }

    /// A thinking block (or reasoning content) followed by `then`.
    pub fn thinking(
        thinking: impl Into<String>,
        signature: impl Into<String>,
        then: Reply,
    ) -> Self {
        Self::Thinking {
            thinking: thinking.into(),
            signature: signature.into(),
            then: Box::new(then),
        }
    }

    /// An error reply with a JSON body.
    pub fn status(status: u16, body: Value) -> Self {
        Self::Status { status, body }
    }

    /// An error reply with a provider-style body `{"error": {"message", "type"}}` (the shape
    /// both OpenAI and Anthropic use).
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        let kind = match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        Self::status(
            status,
            json!({"type": "error", "error": {"message": message.into(), "type": kind}}),
        )
    }

    /// `then`, after `ms` milliseconds.
    pub fn delay(ms: u64, then: Reply) -> Self {
        Self::Delay {
            ms,
            then: Box::new(then),
        }
    }

    /// `then`, with extra response headers.
    pub fn with_headers<K: Into<String>, V: Into<String>>(
        then: Reply,
        headers: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self::Headers {
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            then: Box::new(then),
        }
    }
}

/// Serde form of [`Reply`], tagged by `kind`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum ReplyRepr {
    Short(String),
    Tagged(TaggedReply),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum TaggedReply {
    Text {
        text: String,
    },
    ToolCalls {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        calls: Vec<ScriptedCall>,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
        then: Box<Reply>,
    },
    Empty,
    Status {
        status: u16,
        #[serde(default)]
        body: Value,
    },
    Raw {
        body: Value,
    },
    Delay {
        ms: u64,
        then: Box<Reply>,
    },
    Headers {
        headers: BTreeMap<String, String>,
        then: Box<Reply>,
    },
}

impl From<ReplyRepr> for Reply {
    fn from(repr: ReplyRepr) -> Self {
        match repr {
            ReplyRepr::Short(text) => Self::Text(text),
            ReplyRepr::Tagged(tagged) => match tagged {
                TaggedReply::Text { text } => Self::Text(text),
                TaggedReply::ToolCalls { text, calls } => Self::ToolCalls { text, calls },
                TaggedReply::Thinking {
                    thinking,
                    signature,
                    then,
                } => Self::Thinking {
                    thinking,
                    signature,
                    then,
                },
                TaggedReply::Empty => Self::Empty,
                TaggedReply::Status { status, body } => Self::Status { status, body },
                TaggedReply::Raw { body } => Self::Raw(body),
                TaggedReply::Delay { ms, then } => Self::Delay { ms, then },
                TaggedReply::Headers { headers, then } => Self::Headers { headers, then },
            },
        }
    }
}

impl From<Reply> for ReplyRepr {
    fn from(reply: Reply) -> Self {
        Self::Tagged(match reply {
            Reply::Text(text) => TaggedReply::Text { text },
            Reply::ToolCalls { text, calls } => TaggedReply::ToolCalls { text, calls },
            Reply::Thinking {
                thinking,
                signature,
                then,
            } => TaggedReply::Thinking {
                thinking,
                signature,
                then,
            },
            Reply::Empty => TaggedReply::Empty,
            Reply::Status { status, body } => TaggedReply::Status { status, body },
            Reply::Raw(body) => TaggedReply::Raw { body },
            Reply::Delay { ms, then } => TaggedReply::Delay { ms, then },
            Reply::Headers { headers, then } => TaggedReply::Headers { headers, then },
        })
    }
}

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// HTTP method.
    pub method: String,
    /// Request path (without the query).
    pub path: String,
    /// Headers, names lower-cased; repeated headers joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON; a body that is not JSON is kept as a JSON string.
    pub body: Value,
}

impl Recorded {
    /// A header value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// True for a request to an Anthropic Messages path.
    pub fn is_anthropic(&self) -> bool {
        self.path.ends_with("/messages")
    }
}

/// Wire format of a completion endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Default)]
struct State {
    script: VecDeque<Reply>,
    /// Answer to requests that offer no tools, when set (see `ScriptedLlm::answer_toolless`).
    toolless: Option<Reply>,
    /// Pick replies by the request's step instead of consuming the script (see
    /// `ScriptedLlm::replay_by_step`).
    by_step: bool,
    requests: Vec<Recorded>,
    replies: u64,
    generated_ids: u64,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A scripted OpenAI/Anthropic-compatible LLM server on `127.0.0.1`, stopped on drop.
#[derive(Debug)]
pub struct ScriptedLlm {
    addr: SocketAddr,
    state: Shared,
    task: JoinHandle<()>,
}

impl ScriptedLlm {
    /// Starts a server on `127.0.0.1:0` answering with `script`, in order.
    pub async fn start(script: Vec<Reply>) -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script).await
    }

    /// Starts a server on `addr` (port 0 for any free port) answering with `script`.
    pub async fn start_on(addr: SocketAddr, script: Vec<Reply>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(State {
            script: script.into(),
            ..State::default()
        }));
        let task = tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(Self { addr, state, task })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/v1`: a base URL for either client.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Appends a reply to the script.
    pub fn push(&self, reply: Reply) {
        lock(&self.state).script.push_back(reply);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// Replies left in the script.
    pub fn remaining(&self) -> usize {
        lock(&self.state).script.len()
    }

    /// Answers every completion request that offers no tools (an agent server's title
    /// request, a condenser's summary request) with `reply`, without consuming the script;
    /// `None` (the default) sends them through the script like any other. Such requests are
    /// still recorded. Useful when a background request would otherwise race the agent's
    /// steps for the next scripted reply.
    pub fn answer_toolless(&self, reply: Option<Reply>) {
        lock(&self.state).toolless = reply;
    }

    /// With `true`, a request that offers tools gets the script entry whose index is the
    /// number of assistant messages in its history (its step in its conversation), and the
    /// script is not consumed: any number of conversations can follow the same script at
    /// once (a benchmark's many runs). A step past the end answers as an exhausted script
    /// does. `false` (the default) consumes the script in order.
    pub fn replay_by_step(&self, by_step: bool) {
        lock(&self.state).by_step = by_step;
    }
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Shared) {
    let mut connections = JoinSet::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // E.g. too many open files: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |req| handle(req, Arc::clone(&state)));
            // A client that goes away mid-reply (e.g. after its timeout) is not an error here.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The number of assistant messages in a completion request's history (OpenAI and Anthropic
/// both list them under `messages` with role `assistant`).
fn assistant_messages(body: &Value) -> usize {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(0, |messages| {
            messages
                .iter()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                .count()
        })
}

async fn handle(
    req: Request<Incoming>,
    state: Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in req.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let bytes = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                &json!({"error": {"message": format!("ScriptedLlm: cannot read body: {e}")}}),
                &BTreeMap::new(),
            ));
        }
    };

    if method == "GET" {
        let guard = lock(&state);
        let body = match path.as_str() {
            "/_scripted/requests" => serde_json::to_value(&guard.requests).unwrap_or(Value::Null),
            "/_scripted/remaining" => json!({"remaining": guard.script.len()}),
            _ => {
                return Ok(json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": {"message": format!("ScriptedLlm: no route GET {path}")}}),
                    &BTreeMap::new(),
                ));
            }
        };
        return Ok(json_response(StatusCode::OK, &body, &BTreeMap::new()));
    }

    let body = serde_json::from_slice::<Value>(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let format = if path.ends_with("/chat/completions") {
        Some(Format::OpenAi)
    } else if path.ends_with("/messages") {
        Some(Format::Anthropic)
    } else {
        None
    };
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("scripted-model")
        .to_owned();

    let (reply, n) = {
        let mut guard = lock(&state);
        guard.requests.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            headers,
            body,
        });
        let n = guard.requests.len();
        let offers_tools = guard
            .requests
            .last()
            .and_then(|r| r.body.get("tools"))
            .and_then(Value::as_array)
            .is_some_and(|tools| !tools.is_empty());
        match (format, method.as_str()) {
            (Some(format), "POST") => {
                let reply = match &guard.toolless {
                    Some(reply) if !offers_tools => Some(reply.clone()),
                    _ if guard.by_step => {
                        let step = guard
                            .requests
                            .last()
                            .map_or(0, |r| assistant_messages(&r.body));
                        guard.script.get(step).cloned()
                    }
                    _ => guard.script.pop_front(),
                };
                (reply.map(|r| (r, format)), n)
            }
            _ => {
                drop(guard);
                return Ok(json_response(
                    StatusCode::NOT_FOUND,
                    &json!({"error": {"message": format!("ScriptedLlm: no route {method} {path}")}}),
                    &BTreeMap::new(),
                ));
            }
        }
    };
    let Some((mut reply, format)) = reply else {
        return Ok(json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"error": {
                "message": format!("ScriptedLlm: script exhausted at request {n} ({method} {path})"),
                "type": "script_exhausted",
            }}),
            &BTreeMap::new(),
        ));
    };

    // Unwrap delays and header wrappers.
    let mut extra_headers = BTreeMap::new();
    loop {
        match reply {
            Reply::Delay { ms, then } => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                reply = *then;
            }
            Reply::Headers { headers, then } => {
                extra_headers.extend(headers);
                reply = *then;
            }
            other => {
                reply = other;
                break;
            }
        }
    }

    let (status, body) = match reply {
        Reply::Status { status, body } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body.to_string(),
        ),
        Reply::Raw(body) => (StatusCode::OK, body.to_string()),
        content => {
            let mut guard = lock(&state);
            guard.replies += 1;
            let mut rendered = Rendered::default();
            collect(content, &mut rendered);
            let n = guard.replies;
            let body = match format {
                Format::OpenAi => {
                    render_openai(&rendered, n, &model, &mut guard.generated_ids).to_string()
                }
                Format::Anthropic => {
                    let mut raw_inputs = Vec::new();
                    let value = render_anthropic(
                        &rendered,
                        n,
                        &model,
                        &mut guard.generated_ids,
                        &mut raw_inputs,
                    );
                    // Splice the scripted argument text in verbatim, so key order and
                    // spacing reach the client as scripted.
                    let mut text = value.to_string();
                    for (placeholder, raw) in raw_inputs {
                        text = text.replacen(&Value::String(placeholder).to_string(), &raw, 1);
                    }
                    text
                }
            };
            (StatusCode::OK, body)
        }
    };
    Ok(text_response(status, body, &extra_headers))
}

/// A content reply flattened: thinking blocks, text, calls.
#[derive(Debug, Default)]
struct Rendered {
    thinking: Vec<(String, String)>,
    text: Option<String>,
    calls: Vec<ScriptedCall>,
}

fn collect(reply: Reply, out: &mut Rendered) {
    match reply {
        Reply::Text(text) => out.text = Some(text),
        Reply::ToolCalls { text, calls } => {
            out.text = text;
            out.calls = calls;
        }
        Reply::Thinking {
            thinking,
            signature,
            then,
        } => {
            out.thinking.push((thinking, signature));
            collect(*then, out);
        }
        // Nested wrappers inside a thinking reply: the delay/headers already happened or are
        // ignored; status/raw make no sense there and render as empty content.
        Reply::Delay { then, .. } | Reply::Headers { then, .. } => collect(*then, out),
        Reply::Empty | Reply::Status { .. } | Reply::Raw(_) => {}
    }
}

fn next_id(counter: &mut u64, prefix: &str) -> String {
    *counter += 1;
    format!("{prefix}{counter}")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn render_openai(r: &Rendered, n: u64, model: &str, ids: &mut u64) -> Value {
    let mut message = serde_json::Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert(
        "content".into(),
        r.text.as_ref().map_or(Value::Null, |t| json!(t)),
    );
    if !r.thinking.is_empty() {
        let joined: Vec<&str> = r.thinking.iter().map(|(t, _)| t.as_str()).collect();
        message.insert("reasoning_content".into(), json!(joined.join("\n")));
    }
    if !r.calls.is_empty() {
        let calls: Vec<Value> = r
            .calls
            .iter()
            .map(|c| {
                let id = c.id.clone().unwrap_or_else(|| next_id(ids, "call_"));
                json!({"id": id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let finish = if r.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    json!({
        "id": format!("chatcmpl-scripted-{n}"),
        "object": "chat.completion",
        "created": unix_now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        },
    })
}

fn render_anthropic(
    r: &Rendered,
    n: u64,
    model: &str,
    ids: &mut u64,
    raw_inputs: &mut Vec<(String, String)>,
) -> Value {
    let mut content = Vec::new();
    for (thinking, signature) in &r.thinking {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": signature}));
    }
    if let Some(text) = &r.text {
        content.push(json!({"type": "text", "text": text}));
    }
    for c in &r.calls {
        let id = c.id.clone().unwrap_or_else(|| next_id(ids, "toolu_"));
        // Anthropic carries the input as a JSON object; arguments that are not one are sent
        // as a JSON string so the test still sees what it scripted.
        let input = match serde_json::from_str::<Value>(&c.arguments) {
            Ok(Value::Object(_)) => {
                let placeholder = format!("\u{0}scripted-input-{}\u{0}", raw_inputs.len());
                raw_inputs.push((placeholder.clone(), c.arguments.clone()));
                Value::String(placeholder)
            }
            _ => Value::String(c.arguments.clone()),
        };
        content.push(json!({"type": "tool_use", "id": id, "name": c.name, "input": input}));
    }
    let stop = if r.calls.is_empty() {
        "end_turn"
    } else {
        "tool_use"
    };
    json!({
        "id": format!("msg_scripted_{n}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {
            "input_tokens": PROMPT_TOKENS,
            "output_tokens": COMPLETION_TOKENS,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    })
}

fn json_response(
    status: StatusCode,
    body: &Value,
    headers: &BTreeMap<String, String>,
) -> Response<Full<Bytes>> {
    text_response(status, body.to_string(), headers)
}

fn text_response(
    status: StatusCode,
    body: String,
    headers: &BTreeMap<String, String>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let map = response.headers_mut();
    map.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    response
}
