//! WebSocket plumbing of the two sockets (`sockets`): the upgrade on hyper's connection,
//! tungstenite with small buffers, a read budget until the client is authenticated, a
//! server-wide cap on sockets waiting for their auth frame, and close codes for protocol
//! errors.
//!
//! Why not axum's `WebSocketUpgrade`: its tungstenite config is fixed before the upgrade, so a
//! socket that authenticates with its first frame would keep the pre-auth limits (or the
//! pre-auth phase would get the 16 MiB message limit and 128 KiB buffers — the cost this
//! module exists to avoid); tokio-tungstenite cannot change the config of a live stream
//! either, and re-wrapping the raw stream after auth would drop bytes tungstenite already
//! read. Instead the stream under tungstenite is a [`Metered`] one whose reads stop at
//! [`PRE_AUTH_BYTES`] until [`Budget::lift`] is called: an unauthenticated client cannot make
//! the server read (let alone buffer) more than that, whatever its frames declare, and bytes
//! pipelined after the auth frame simply wait in the kernel until the budget is lifted.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::error::ApiError;

/// Largest message accepted from an authenticated client, on both sockets.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Bytes read from a client before it is authenticated: room for an auth frame
/// (`{"type": "auth", "session_api_key": …}`) with a long key, and a few pings.
pub(crate) const PRE_AUTH_BYTES: usize = 8 * 1024;

/// Sockets that may wait for their auth frame at once, server-wide. A legitimate client
/// sends it right after the handshake, so this is only reached by clients that do not.
pub(crate) const MAX_PENDING_AUTH: usize = 64;

/// Initial read buffer of a socket (tungstenite's default is 128 KiB, eagerly allocated).
const READ_BUFFER: usize = 4 * 1024;

/// The server-wide count of sockets waiting for their auth frame.
#[derive(Debug, Default)]
pub(crate) struct PendingAuth(Arc<AtomicUsize>);

impl PendingAuth {
    /// A slot for one more unauthenticated socket, or `None` at [`MAX_PENDING_AUTH`].
    pub(crate) fn try_acquire(&self) -> Option<PendingSlot> {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_PENDING_AUTH).then_some(n + 1)
            })
            .ok()
            .map(|_| PendingSlot(Arc::clone(&self.0)))
    }
}

/// One unauthenticated socket; frees its slot when dropped (authenticated, closed, or the
/// upgrade never happened).
#[derive(Debug)]
pub(crate) struct PendingSlot(Arc<AtomicUsize>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// 503 for an upgrade past [`MAX_PENDING_AUTH`]: refused before the 101, so it costs no
/// socket state and the client gets a plain HTTP answer it can retry on.
pub(crate) fn too_many_pending() -> Box<Response> {
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Too many WebSocket connections waiting for authentication",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    Box::new(response)
}

/// How many more bytes may be read from the client: [`PRE_AUTH_BYTES`] until lifted.
#[derive(Debug, Clone)]
pub(crate) struct Budget(Arc<AtomicUsize>);

impl Budget {
    fn new(authenticated: bool) -> Self {
        Self(Arc::new(AtomicUsize::new(if authenticated {
            usize::MAX
        } else {
            PRE_AUTH_BYTES
        })))
    }

    /// The client is authenticated: no more byte limit (the message cap still applies).
    pub(crate) fn lift(&self) {
        self.0.store(usize::MAX, Ordering::SeqCst);
    }
}

/// The error a [`Metered`] read returns once the pre-auth budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("more than {PRE_AUTH_BYTES} bytes before authentication")]
struct BudgetSpent;

/// A stream whose reads stop at its [`Budget`] (writes are not limited).
#[derive(Debug)]
pub(crate) struct Metered<S> {
    inner: S,
    budget: Budget,
}

/// Most bytes discarded, and longest wait, after a close for a protocol error.
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(1);

impl<S: AsyncRead + Unpin> Metered<S> {
    /// Reads and discards what the client still sends (bounded in bytes and time), so the
    /// close frame just sent is not destroyed by a TCP reset: closing a socket with unread
    /// data makes the kernel answer with RST, and the client may never see the close code.
    async fn linger(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut sink = [0u8; 4096];
        let mut left = LINGER_BYTES;
        let drain = async {
            while left > 0 {
                match self.inner.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let remaining = self.budget.0.load(Ordering::SeqCst);
        if remaining == usize::MAX {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        if remaining == 0 {
            return Poll::Ready(Err(io::Error::other(BudgetSpent)));
        }
        let mut chunk = [0u8; 1024];
        let want = remaining.min(buf.remaining()).min(chunk.len());
        let mut limited = ReadBuf::new(chunk.get_mut(..want).unwrap_or_default());
        match Pin::new(&mut self.inner).poll_read(cx, &mut limited) {
            Poll::Ready(Ok(())) => {
                let read = limited.filled();
                buf.put_slice(read);
                // Only this task reads, so the budget cannot have shrunk meanwhile; it may
                // have been lifted, which `fetch_update` leaves alone.
                let n = read.len();
                let _ = self
                    .budget
                    .0
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                        (left != usize::MAX).then(|| left.saturating_sub(n))
                    });
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// An accepted socket.
#[derive(Debug)]
pub(crate) struct Socket {
    stream: WebSocketStream<Metered<TokioIo<hyper::upgrade::Upgraded>>>,
    budget: Budget,
    /// Held while the socket waits for its auth frame.
    pending: Option<PendingSlot>,
}

/// What the client sent.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message (not supported by either socket: reported).
    Binary,
    /// A ping or pong (answered by tungstenite).
    Control,
    /// The client closed, or the connection failed (a close frame was sent when the failure
    /// was the client's: see [`Socket::recv`]).
    Closed,
}

impl Socket {
    /// The next inbound message. On a protocol error the client gets the matching close
    /// code (1002 protocol error, 1007 invalid UTF-8, 1009 message too big) before the
    /// connection ends.
    pub(crate) async fn recv(&mut self) -> Inbound {
        match self.stream.next().await {
            Some(Ok(Message::Text(text))) => Inbound::Text(text),
            Some(Ok(Message::Binary(_))) => Inbound::Binary,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Inbound::Control,
            Some(Ok(Message::Close(_))) | None => Inbound::Closed,
            Some(Err(err)) => {
                if let Some((code, reason)) = close_code(&err) {
                    tracing::debug!(%err, code, "closing a socket after a protocol error");
                    self.close(code, reason).await;
                    self.stream.get_mut().linger().await;
                }
                Inbound::Closed
            }
        }
    }

    /// Sends a text frame.
    pub(crate) async fn send(&mut self, text: Utf8Bytes) -> Result<(), WsError> {
        self.stream.send(Message::Text(text)).await
    }

    /// Sends a close frame (errors ignored: the connection ends either way).
    pub(crate) async fn close(&mut self, code: u16, reason: &'static str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = self.stream.send(Message::Close(Some(frame))).await;
    }

    /// The client is authenticated: lift the pre-auth byte budget and free its pending slot.
    pub(crate) fn authenticated(&mut self) {
        self.budget.lift();
        self.pending = None;
    }
}

/// The close code and reason for a read error caused by the client, `None` when the
/// connection itself is gone.
fn close_code(err: &WsError) -> Option<(u16, &'static str)> {
    match err {
        WsError::Utf8(_) => Some((1007, "Invalid UTF-8 in a text message")),
        WsError::Capacity(_) => Some((1009, "Message too big")),
        WsError::Protocol(_) => Some((1002, "WebSocket protocol error")),
        WsError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<BudgetSpent>()) => {
            Some((1009, "Message too big before authentication"))
        }
        _ => None,
    }
}

/// A checked WebSocket upgrade request (RFC 6455 §4.2.1), answered by [`Upgrade::accept`].
#[derive(Debug)]
pub(crate) struct Upgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    accept: HeaderValue,
}

impl Upgrade {
    /// The upgrade, or 400 with JSON for a request that is not a WebSocket handshake.
    pub(crate) fn from_parts(parts: &mut Parts) -> Result<Self, Box<Response>> {
        let refuse = |why: &str| {
            Box::new(
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("Expected a WebSocket upgrade: {why}"),
                )
                .into_response(),
            )
        };
        if parts.method != Method::GET {
            return Err(refuse("the method must be GET"));
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(refuse("`Connection` header did not include `upgrade`"));
        }
        if !header_has_token(&parts.headers, header::UPGRADE, "websocket") {
            return Err(refuse("`Upgrade` header did not include `websocket`"));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13"))
        {
            return Err(refuse(
                "`Sec-WebSocket-Version` header did not include `13`",
            ));
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(refuse("`Sec-WebSocket-Key` header missing"));
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let Ok(accept) = HeaderValue::from_str(&accept) else {
            return Err(refuse("invalid `Sec-WebSocket-Key`"));
        };
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(refuse("the connection cannot be upgraded"));
        };
        Ok(Self { on_upgrade, accept })
    }

    /// Answers 101 and runs `serve` on the socket once the connection is upgraded.
    /// `pending` is the slot of an unauthenticated socket (`None` when the handshake carried
    /// a valid key or auth is off); it is held until [`Socket::authenticated`].
    pub(crate) fn accept<F, Fut>(self, pending: Option<PendingSlot>, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Self { on_upgrade, accept } = self;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(err) => {
                    tracing::debug!(%err, "WebSocket upgrade failed");
                    return;
                }
            };
            let budget = Budget::new(pending.is_none());
            let io = Metered {
                inner: TokioIo::new(upgraded),
                budget: budget.clone(),
            };
            let config = WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(0)
                .max_message_size(Some(MAX_MESSAGE))
                .max_frame_size(Some(MAX_MESSAGE));
            let stream = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            serve(Socket {
                stream,
                budget,
                pending,
            })
            .await;
        });
        let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        response
    }
}

/// Whether a comma-separated header contains `token` (case-insensitive).
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    })
}
