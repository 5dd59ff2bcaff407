//! The bench's HTTP and WebSocket client: hyper with a keep-alive pool, and
//! tokio-tungstenite, both authenticating with the session API key.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The header carrying the session API key.
const KEY_HEADER: &str = "X-Session-API-Key";

/// An HTTP client for one server.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    port: u16,
    key: String,
}

/// A response: status and whole body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

impl Reply {
    /// The body as JSON, or an error naming the status and the start of the body.
    pub(crate) fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {}: body is not JSON: {}",
                self.status,
                snippet(&self.body)
            )
        })
    }

    /// Fails unless the status is 2xx.
    pub(crate) fn ok(self, what: &str) -> Result<Self> {
        if self.status.is_success() {
            Ok(self)
        } else {
            bail!(
                "HTTP {} on {what}: {}",
                self.status.as_u16(),
                snippet(&self.body)
            )
        }
    }
}

/// The first 120 characters of a body, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        out.push('…');
    }
    out.replace('\n', " ")
}

impl Http {
    /// The server's port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// A client for `127.0.0.1:port`, sending `key` (none if empty).
    pub(crate) fn new(port: u16, key: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            // Below uvicorn's 5 s keep-alive, so a pooled connection is never one the
            // server is closing.
            .pool_idle_timeout(Duration::from_secs(2))
            .build(connector);
        Self {
            client,
            port,
            key: key.to_owned(),
        }
    }

    /// A request with the session key (none if the key is empty).
    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let builder = Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{}{path}", self.port));
        if self.key.is_empty() {
            builder
        } else {
            builder.header(KEY_HEADER, &self.key)
        }
    }

    /// Sends a request and reads the whole response.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Reply> {
        let mut builder = self.request(method.clone(), path);
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        let request = builder.body(Full::new(body))?;
        let response = self
            .client
            .request(request)
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{method} {path}: reading the body"))?
            .to_bytes();
        Ok(Reply { status, body })
    }

    /// `GET path`.
    pub(crate) async fn get(&self, path: &str) -> Result<Reply> {
        self.send(Method::GET, path, None, Bytes::new()).await
    }

    /// `GET path`, 2xx required, JSON body.
    pub(crate) async fn get_json(&self, path: &str) -> Result<Value> {
        self.get(path).await?.ok(&format!("GET {path}"))?.json()
    }

    /// `POST path` with a JSON body, 2xx required, JSON body back.
    pub(crate) async fn post_json(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(
            Method::POST,
            path,
            Some("application/json"),
            Bytes::from(body.to_string()),
        )
        .await?
        .ok(&format!("POST {path}"))?
        .json()
    }

    /// `GET path`, 2xx required, counting the body's bytes as they stream in
    /// (nothing is kept). Returns the byte count.
    pub(crate) async fn download(&self, path: &str) -> Result<u64> {
        let request = self
            .request(Method::GET, path)
            .body(Full::new(Bytes::new()))?;
        let response = self.client.request(request).await.context("download")?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            bail!(
                "HTTP {} on GET {path}: {}",
                status.as_u16(),
                snippet(&bytes)
            );
        }
        let mut total = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                total += data.len() as u64;
            }
        }
        Ok(total)
    }

    /// Polls `GET /ready` until it answers 200, every `pause`, for at most
    /// `limit`. `alive` is asked between attempts and ends the wait with its
    /// error (the server process died). Returns when it answered.
    pub(crate) async fn wait_ready(
        &self,
        limit: Duration,
        pause: Duration,
        mut alive: impl FnMut() -> Result<()>,
    ) -> Result<Instant> {
        let start = Instant::now();
        loop {
            // A fresh connection each time: a refused one fails fast.
            if let Ok(Ok(reply)) =
                tokio::time::timeout(Duration::from_secs(2), self.get("/ready")).await
                && reply.status == StatusCode::OK
            {
                return Ok(Instant::now());
            }
            alive()?;
            if start.elapsed() > limit {
                bail!("not ready after {limit:?}");
            }
            tokio::time::sleep(pause).await;
        }
    }

    /// Opens `/sockets/events/{id}`, authenticates with the first frame, and
    /// waits for the server's first frame (the initial state update).
    pub(crate) async fn events_socket(&self, conversation_id: &str) -> Result<EventSocket> {
        let url = format!(
            "ws://127.0.0.1:{}/sockets/events/{conversation_id}",
            self.port
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .with_context(|| format!("WebSocket {url}"))?;
        let auth = json!({"type": "auth", "session_api_key": self.key});
        socket.send(Message::text(auth.to_string())).await?;
        let mut socket = EventSocket { socket };
        let first = tokio::time::timeout(Duration::from_secs(10), socket.next_json())
            .await
            .map_err(|_| anyhow!("no initial frame on {url} within 10 s"))??;
        if first.get("kind").and_then(Value::as_str) != Some("ConversationStateUpdateEvent") {
            bail!("first frame on {url} is not a state update: {first}");
        }
        Ok(socket)
    }
}

/// An authenticated event socket.
#[derive(Debug)]
pub(crate) struct EventSocket {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl EventSocket {
    /// The next text frame, as JSON. Pings are answered by the library.
    pub(crate) async fn next_json(&mut self) -> Result<Value> {
        loop {
            match self.socket.next().await {
                None => bail!("socket closed"),
                Some(Err(err)) => return Err(err.into()),
                Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(text.as_str())?),
                Some(Ok(Message::Close(frame))) => bail!("socket closed by the server: {frame:?}"),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Counts text frames into `frames` until the socket ends or `stop`
    /// fires; returns when the last frame arrived.
    pub(crate) async fn count_frames(
        mut self,
        frames: std::sync::Arc<std::sync::atomic::AtomicU64>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<Instant> {
        let mut last = None;
        loop {
            tokio::select! {
                frame = self.socket.next() => match frame {
                    Some(Ok(Message::Text(_))) => {
                        frames.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        last = Some(Instant::now());
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                _ = stop.changed() => break,
            }
        }
        let _ = self.socket.close(None).await;
        last
    }

    /// Closes the socket politely.
    pub(crate) async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
