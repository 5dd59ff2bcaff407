//! The event socket of one conversation: connect, authenticate, read frames, reconnect with
//! backoff and reconcile from REST, until the conversation is closed or the server refuses it
//! for good (4001, 4004).

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use oh_protocol::{AuthFrame, Event};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::conversation::{Delivery, Shared};
use crate::error::Error;
use crate::http;

/// How long opening a socket (TCP, TLS and handshake) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A ping is sent after this long without a frame; the connection is dropped after twice it.
const KEEPALIVE: Duration = Duration::from_secs(20);

/// How the event socket reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the first reconnect attempt.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
}

impl Default for Backoff {
    /// 250 ms, doubling up to 30 s; reset once a connection is ready again.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

/// Why one connection ended.
enum End {
    /// Lost or closed without a fatal code: reconnect.
    Lost(String),
    /// 4001 or 4004: stop for good.
    Fatal(Error),
    /// The conversation is closing.
    Closing,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Socket = WebSocketStream<Box<dyn Io>>;

/// Runs the socket until closing or a fatal close. `ready` is told once, after the first
/// connection delivered its state frame and the history was loaded (or why that failed).
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut closing: watch::Receiver<bool>,
    ready: tokio::sync::oneshot::Sender<Result<(), Error>>,
) {
    let mut ready = Some(ready);
    let mut backoff = shared.backoff.initial;
    let mut connected_once = false;
    loop {
        if *closing.borrow() {
            break;
        }
        let end = match connect(&shared).await {
            Ok(socket) => {
                let end = pump(&shared, socket, &mut closing, &mut ready, connected_once).await;
                if shared.ready_seen() {
                    connected_once = true;
                }
                end
            }
            Err(message) => End::Lost(message),
        };
        match end {
            End::Closing => break,
            End::Fatal(error) => {
                tracing::warn!(conversation = %shared.id, "{error}");
                if let Some(tx) = ready.take() {
                    let _ = tx.send(Err(error));
                } else {
                    shared.fail(error);
                }
                return;
            }
            End::Lost(message) => {
                tracing::debug!(conversation = %shared.id, "event socket lost: {message}");
                shared.note_disconnect();
            }
        }
        if shared.take_ready_reset() {
            backoff = shared.backoff.initial;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = closing.changed() => break,
        }
        backoff = (backoff * 2).min(shared.backoff.max);
    }
    if let Some(tx) = ready.take() {
        let _ = tx.send(Err(Error::Closed(shared.id)));
    }
}

/// Opens and authenticates one connection.
async fn connect(shared: &Shared) -> Result<Socket, String> {
    let url = shared
        .http
        .ws_url(&format!("/sockets/events/{}", shared.id.hyphenated()));
    let open = async {
        let request = url
            .as_str()
            .into_client_request()
            .map_err(|e| format!("bad socket URL: {e}"))?;
        let uri = request.uri().clone();
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_owned();
        let tls = uri.scheme_str() == Some("wss");
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = if tls {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("bad TLS name {host}: {e}"))?;
            let connector = tokio_rustls::TlsConnector::from(http::tls_config());
            Box::new(
                connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {host}: {e}"))?,
            )
        } else {
            Box::new(tcp)
        };
        let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        if let Some(key) = &shared.api_key {
            let frame = AuthFrame {
                session_api_key: key.clone(),
            };
            let text = serde_json::to_string(&frame).map_err(|e| e.to_string())?;
            socket
                .send(Frame::text(text))
                .await
                .map_err(|e| format!("sending the auth frame: {e}"))?;
        }
        Ok::<_, String>(socket)
    };
    match tokio::time::timeout(OPEN_TIMEOUT, open).await {
        Ok(result) => result,
        Err(_) => Err(format!("opening {url} timed out")),
    }
}

/// Reads one connection until it ends.
async fn pump(
    shared: &Arc<Shared>,
    mut socket: Socket,
    closing: &mut watch::Receiver<bool>,
    ready: &mut Option<tokio::sync::oneshot::Sender<Result<(), Error>>>,
    reconnected: bool,
) -> End {
    let mut subscribed = false;
    let mut last_frame = Instant::now();
    let mut ping_sent = false;
    loop {
        let idle = last_frame + if ping_sent { KEEPALIVE * 2 } else { KEEPALIVE };
        let frame = tokio::select! {
            frame = socket.next() => frame,
            _ = tokio::time::sleep_until(idle) => {
                if ping_sent {
                    return End::Lost("no pong within 40 s".into());
                }
                ping_sent = true;
                if let Err(e) = socket.send(Frame::Ping(Default::default())).await {
                    return End::Lost(format!("ping: {e}"));
                }
                continue;
            }
            _ = closing.changed() => {
                let _ = socket.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await;
                return End::Closing;
            }
        };
        last_frame = Instant::now();
        ping_sent = false;
        let text = match frame {
            None => return End::Lost("connection closed".into()),
            Some(Err(e)) => return End::Lost(e.to_string()),
            Some(Ok(Frame::Text(text))) => text,
            Some(Ok(Frame::Close(close))) => {
                let (code, reason) = close
                    .map(|c| (u16::from(c.code), c.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                if matches!(code, 4001 | 4004) {
                    return End::Fatal(Error::SocketClosed { code, reason });
                }
                return End::Lost(format!("closed with {code} {reason}"));
            }
            Some(Ok(_)) => continue,
        };
        let event: Event = match serde_json::from_str(&text) {
            Ok(event) => event,
            Err(e) => {
                tracing::warn!(conversation = %shared.id, "skipping an event frame that does not decode: {e}");
                continue;
            }
        };
        let is_state = matches!(event, Event::ConversationStateUpdate(_));
        if !subscribed && is_state {
            // The first state frame: the subscription is live, so nothing published from now
            // on can be missed. Load (first time) or reconcile (after a reconnect) the history.
            subscribed = true;
            let delivery = if reconnected {
                Delivery::Recovered
            } else {
                Delivery::History
            };
            // Recover first: a run waiter must know whether the run was seen running before
            // it reads the status in this snapshot.
            let synced = shared.reconcile(delivery).await;
            shared.handle(event, Delivery::Initial);
            match (ready.take(), synced) {
                (Some(tx), result) => {
                    let ok = result.is_ok();
                    let _ = tx.send(result);
                    if !ok {
                        return End::Closing;
                    }
                }
                (None, Err(e)) => {
                    // The next connection reconciles again.
                    return End::Lost(format!("reconcile: {e}"));
                }
                (None, Ok(())) => {}
            }
            shared.mark_ready();
            continue;
        }
        shared.handle(event, Delivery::Live);
    }
}
