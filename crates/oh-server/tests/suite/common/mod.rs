//! Shared helpers of the server's integration tests: a server on a free port in a temporary
//! directory, and a small HTTP client.
#![allow(unreachable_pub, reason = "`pub` helpers of a private test module")]

use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oh_server::{Config, Server};
use serde_json::Value;

/// A running server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub key: Option<String>,
    server: Option<oh_server::Spawned>,
}

impl TestServer {
    /// A server without authentication.
    pub async fn start() -> Self {
        Self::start_with(None, |_| {}).await
    }

    /// A server requiring `key`.
    pub async fn with_key(key: &str) -> Self {
        Self::start_with(Some(key), |_| {}).await
    }

    /// A server with `key` (if any) and a config tweak, storing under a fresh temp dir.
    pub async fn start_with(key: Option<&str>, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, key, tweak).await
    }

    /// As [`TestServer::start_with`], storing under `dir` (to restart on the same data).
    pub async fn start_in(
        dir: tempfile::TempDir,
        key: Option<&str>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::under(dir.path());
        if let Some(key) = key {
            config.session_api_keys = vec![key.into()];
            config.secret_key = Some(key.into());
        }
        tweak(&mut config);
        let server = Server::bind(config).await.expect("bind").spawn();
        Self {
            addr: server.local_addr(),
            dir,
            key: key.map(str::to_owned),
            server: Some(server),
        }
    }

    /// Stops the server gracefully and gives back its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("serve");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A request with the server's key (if any).
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut headers = Vec::new();
        if let Some(key) = &self.key {
            headers.push(("x-session-api-key", key.clone()));
        }
        let body = body.map(|b| Bytes::from(b.to_string()));
        send(method, &self.url(path), &headers, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Every stored event of a conversation, paging `events/search` by `limit` as the SDK
    /// does.
    pub async fn events(&self, id: &str, limit: usize) -> Vec<Value> {
        let mut events = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut path = format!("/api/conversations/{id}/events/search?limit={limit}");
            if let Some(p) = &page {
                path.push_str(&format!("&page_id={p}"));
            }
            let reply = self.get(&path).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            let body = reply.json();
            events.extend(body["items"].as_array().expect("items").iter().cloned());
            match body["next_page_id"].as_str() {
                Some(next) => page = Some(next.to_owned()),
                None => return events,
            }
        }
    }

    /// Creates an idle conversation whose LLM is unreachable (for routes that never call it).
    pub async fn idle_conversation(&self) -> String {
        let reply = self
            .post(
                "/api/conversations",
                create_body(agent_json("http://127.0.0.1:9/v1"), &self.root().join("w")),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text());
        reply.json()["id"].as_str().expect("id").to_owned()
    }
}

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Reads a whole response.
    pub async fn read(response: hyper::Response<hyper::body::Incoming>) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!("not JSON ({err}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request with raw headers and body (`content-type: application/json` when there
/// is a body and `headers` name no content type).
pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<Bytes>,
) -> Reply {
    let mut headers = headers.to_vec();
    if body.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type", "application/json".to_owned()));
    }
    send_exact(method, url, &headers, body).await
}

/// Sends one request with exactly these headers (plus `host` unless given) and body.
pub async fn send_exact(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Option<Bytes>,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let request = builder
        .body(Full::new(body.unwrap_or_default()))
        .expect("request");
    let response = client.request(request).await.expect("send");
    Reply::read(response).await
}

/// The agent JSON the Python SDK sends: the default tools on the scripted LLM at `base_url`.
pub fn agent_json(base_url: &str) -> Value {
    serde_json::json!({
        "kind": "Agent",
        "llm": {
            "model": "openai/scripted-model",
            "base_url": base_url,
            "api_key": "sk-test",
            "usage_id": "agent",
            "num_retries": 0,
            "retry_min_wait": 0,
            "retry_max_wait": 0,
            "timeout": 30
        },
        "tools": [{"name": "terminal"}, {"name": "file_editor"}, {"name": "task_tracker"}]
    })
}

/// A create request for `agent` working in `working_dir`. Auto-titling is off, so the
/// scripted LLM only sees the agent's own calls.
pub fn create_body(agent: Value, working_dir: &std::path::Path) -> Value {
    serde_json::json!({
        "agent": agent,
        "workspace": {"kind": "LocalWorkspace", "working_dir": working_dir},
        "autotitle": false,
    })
}

/// Opens a WebSocket to `path` with extra handshake `headers` and returns the handshake's
/// status: 101 when the upgrade was accepted (the socket is then closed), else the refusal.
pub async fn ws_handshake(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> StatusCode {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}{path}", server.addr)
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        request.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    let connect = tokio_tungstenite::connect_async(request);
    match tokio::time::timeout(std::time::Duration::from_secs(20), connect)
        .await
        .expect("handshake within 20 s")
    {
        Ok((mut stream, response)) => {
            let _ = stream.close(None).await;
            response.status()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
        Err(other) => panic!("handshake failed: {other}"),
    }
}

/// An event socket client.
pub struct Socket {
    pub stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Socket {
    /// Connects to `/sockets/events/{id}` and authenticates with the first frame if `key`.
    pub async fn connect(server: &TestServer, id: &str) -> Self {
        use futures::SinkExt;
        let url = format!("ws://{}/sockets/events/{id}", server.addr);
        let (mut stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        if let Some(key) = &server.key {
            let auth = serde_json::json!({"type": "auth", "session_api_key": key}).to_string();
            stream
                .send(tokio_tungstenite::tungstenite::Message::Text(auth.into()))
                .await
                .expect("send auth");
        }
        Self { stream }
    }

    /// The next text frame as JSON, or `None` when the socket closes (or after 20 s).
    pub async fn next(&mut self) -> Option<Value> {
        use futures::StreamExt;
        loop {
            let frame =
                tokio::time::timeout(std::time::Duration::from_secs(20), self.stream.next())
                    .await
                    .ok()??;
            match frame.ok()? {
                tokio_tungstenite::tungstenite::Message::Text(text) => {
                    return Some(serde_json::from_str(&text).expect("JSON frame"));
                }
                tokio_tungstenite::tungstenite::Message::Close(_) => return None,
                _ => {}
            }
        }
    }

    /// Waits for the end of the current run and returns the status it ended in.
    pub async fn run_ends_in(&mut self) -> String {
        let frames = self.until_run_ends().await;
        frames.last().expect("snapshot")["value"]["execution_status"]
            .as_str()
            .expect("status")
            .to_owned()
    }

    /// Frames until a `full_state` whose status is not `running` (inclusive).
    pub async fn until_run_ends(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next().await {
            let done =
                frame["key"] == "full_state" && frame["value"]["execution_status"] != "running";
            frames.push(frame);
            if done {
                return frames;
            }
        }
        panic!("socket closed before the run ended; got {frames:?}");
    }
}

/// A WebSocket client of the server.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the socket at `path`, with the key as the (deprecated) upgrade header when given.
pub async fn ws_open(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("ws://{addr}{path}")
        .into_client_request()
        .expect("request");
    if let Some(key) = key {
        request
            .headers_mut()
            .insert("x-session-api-key", key.parse().expect("header"));
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// Polls `condition` until it holds, for at most 10 s: a wait on something observable.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Whether process `pid` runs (a zombie does not).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}
