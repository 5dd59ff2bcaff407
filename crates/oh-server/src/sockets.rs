//! The WebSocket event streams: `/sockets/events/{conversation_id}` (spec §4) and the
//! ordered session socket `/sockets/session/{conversation_id}` (sequence numbers, replay
//! from `after_seq`).
//!
//! Each socket is one task: it authenticates, sends the `full_state` snapshot, optionally
//! replays the log, then forwards frames from the conversation's broadcast channel and
//! handles what the client sends. The agent never waits for a socket: a subscriber that falls
//! more than the channel's capacity behind catches up from the persisted log and gets a fresh
//! snapshot instead of the frames it missed.
//!
//! Both sockets run on [`crate::ws`]: small buffers, a few KiB readable until the client is
//! authenticated, at most [`ws::MAX_PENDING_AUTH`] unauthenticated sockets server-wide (503
//! past it), a 16 MiB message cap after auth, and a close code after a protocol error. The
//! query is only interpreted (replay mode, `after_timestamp`) once the socket is
//! authenticated. `/sockets/bash-events` takes at most [`MAX_BASH_SUBSCRIBERS`] sockets, as
//! the reference does.
//! Both sockets (this one and `/sockets/bash-events`) are upgraded only after the `Origin`
//! and `Host` checks of [`crate::cors`]: a page of a foreign origin gets 403, not a socket.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oh_protocol::api::SendMessageRequest;
use oh_protocol::event::{Event, EventBase, ServerErrorEvent, Source};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::app::AppState;
use crate::auth::API_KEY_HEADER;
use crate::extract::{Query, parse_uuid, path_param};
use crate::service::{Frame, Live, MAX_SUBSCRIBERS, event_now, serialize};
use crate::ws::{self, Inbound, PendingAuth, PendingSlot, Socket, Upgrade};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Sockets on `/sockets/bash-events` at once (the reference's `PubSub(max_subscribers=50)`;
/// only sockets subscribe there).
pub(crate) const MAX_BASH_SUBSCRIBERS: usize = 50;

/// Server-wide socket counters (part of the app state).
#[derive(Debug, Default)]
pub(crate) struct SocketLimits {
    /// Sockets waiting for their auth frame.
    pending: PendingAuth,
    /// Sockets on `/sockets/bash-events`.
    bash_subscribers: Arc<AtomicUsize>,
}

/// Largest frame sent: the Python client's default incoming limit.
pub(crate) const MAX_FRAME: usize = 1024 * 1024;

/// Events read from the log per page of a session-socket replay.
const REPLAY_PAGE: usize = 256;

/// How long an unauthenticated socket may wait before its auth frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/sockets/events/{conversation_id}", get(events_socket))
        .route("/sockets/session/{conversation_id}", get(session_socket))
        .route("/sockets/bash-events", get(bash_socket))
}

/// The key from the deprecated query parameter or upgrade header: `Ok(true)` when it is
/// valid (or auth is off), `Ok(false)` when none was given (the first frame must carry it),
/// `Err(403)` when a wrong one was given (the handshake is refused).
fn handshake_auth(
    state: &AppState,
    query: &Query,
    headers: &axum::http::HeaderMap,
) -> Result<bool, StatusCode> {
    if !state.keys.enabled() {
        return Ok(true);
    }
    let presented = query
        .get("session_api_key")
        .or_else(|| headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()));
    match presented {
        Some(key) if state.keys.accepts(key) => Ok(true),
        Some(_) => Err(StatusCode::FORBIDDEN),
        None => Ok(false),
    }
}

/// Waits (at most [`AUTH_TIMEOUT`]) for the auth frame when the handshake carried no key;
/// closes with 4001 on failure. On success the socket's pre-auth limits are lifted.
async fn first_frame_auth(state: &AppState, socket: &mut Socket, authenticated: bool) -> bool {
    if !authenticated {
        let ok = matches!(
            tokio::time::timeout(AUTH_TIMEOUT, first_text(socket)).await,
            Ok(Some(text)) if auth_frame_ok(state, &text)
        );
        if !ok {
            socket.close(4001, "Authentication failed").await;
            return false;
        }
    }
    socket.authenticated();
    true
}

/// Upgrades the request and runs `serve` on the socket; an unauthenticated one takes a
/// pending-auth slot first (503 past the cap), a request that is no upgrade gets its error.
fn upgrade<F, Fut>(
    state: &AppState,
    parts: &mut axum::http::request::Parts,
    authenticated: bool,
    serve: F,
) -> Response
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let upgrade = match Upgrade::from_parts(parts) {
        Ok(upgrade) => upgrade,
        Err(response) => return *response,
    };
    match pending_slot(state, authenticated) {
        Ok(pending) => upgrade.accept(pending, serve),
        Err(response) => *response,
    }
}

/// A slot for an unauthenticated socket (`Ok(None)` when it is already authenticated), or
/// the 503 refusing the upgrade past the server-wide cap.
fn pending_slot(
    state: &AppState,
    authenticated: bool,
) -> Result<Option<PendingSlot>, Box<Response>> {
    if authenticated {
        return Ok(None);
    }
    state
        .sockets
        .pending
        .try_acquire()
        .map(Some)
        .ok_or_else(ws::too_many_pending)
}

fn resend_all(query: &Query) -> bool {
    query.get("resend_mode") == Some("all")
        || query
            .get("resend_all")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "1"))
}

/// What to replay after the snapshot.
#[derive(Debug, Clone)]
enum Replay {
    None,
    All,
    Since(String),
}

impl Replay {
    /// The replay the query asks for; an unreadable `after_timestamp` means no replay (as the
    /// reference, which ignores it). Only called once the socket is authenticated.
    fn from_query(query: &Query) -> Self {
        match query.get("resend_mode") {
            Some("all") => Replay::All,
            Some("since") => match query
                .get("after_timestamp")
                .and_then(oh_protocol::time::parse_datetime)
            {
                Some(micros) => Replay::Since(oh_protocol::time::naive_timestamp(micros, 0)),
                None => Replay::None,
            },
            _ if resend_all(query) => Replay::All,
            _ => Replay::None,
        }
    }
}

/// Upgrades a request for a conversation's socket (`{conversation_id}` in the path) and
/// runs `serve(state, socket, id, authenticated, query)` on it; a malformed id or a wrong
/// key in the handshake is 403.
async fn conversation_socket<F, Fut>(state: AppState, req: Request, serve: F) -> Response
where
    F: FnOnce(AppState, Socket, uuid::Uuid, bool, Query) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (mut parts, _) = req.into_parts();
    let Ok(raw) = path_param(&mut parts, &state, "conversation_id").await else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let Some(id) = parse_uuid(&raw) else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let query = Query::from_request_parts(&mut parts, &state)
        .await
        .unwrap_or_default();
    let authenticated = match handshake_auth(&state, &query, &parts.headers) {
        Ok(authenticated) => authenticated,
        Err(status) => return status.into_response(),
    };
    let served = state.clone();
    upgrade(&state, &mut parts, authenticated, move |socket| {
        serve(served, socket, id, authenticated, query)
    })
}

async fn events_socket(State(state): State<AppState>, req: Request) -> Response {
    conversation_socket(state, req, serve).await
}

/// `/sockets/session/{conversation_id}[?after_seq=N]`: the ordered session socket of the
/// reference (`session_protocol.py`). Authenticated like the event socket; then a `sync`
/// frame (`from_seq`: the client's `after_seq`, `through_seq`: the last event on disk), the
/// events after `after_seq` from the log as `durable` frames (`seq` = the event's index),
/// then live ones — persisted events as `durable` (those already replayed dropped by seq),
/// others (state snapshots) as `transient`. A subscriber that falls behind is disconnected
/// (1013 `slow_consumer`): a reconnect with `after_seq` loses nothing. Client frames are
/// messages to the conversation (each starts a run), as on the event socket; a bad one gets
/// an `error` frame.
async fn session_socket(State(state): State<AppState>, req: Request) -> Response {
    conversation_socket(state, req, serve_session).await
}

/// A `durable` frame: `{"type":"durable","seq":N,"event":{…}}`.
fn durable(seq: usize, event_json: &str) -> Utf8Bytes {
    format!(r#"{{"type":"durable","seq":{seq},"event":{event_json}}}"#).into()
}

/// An `error` frame about this socket.
fn session_error(code: &str, detail: &str) -> Utf8Bytes {
    serde_json::json!({"type": "error", "code": code, "detail": detail})
        .to_string()
        .into()
}

async fn serve_session(
    state: AppState,
    mut socket: Socket,
    id: uuid::Uuid,
    authenticated: bool,
    query: Query,
) {
    if !first_frame_auth(&state, &mut socket, authenticated).await {
        return;
    }
    let after_seq = match query.get("after_seq").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => {
            socket.close(1008, "after_seq must be an integer").await;
            return;
        }
    };
    let live = match crate::conversations::live(&state, id).await {
        Ok(Some(live)) => live,
        Ok(None) => {
            socket.close(4004, "Conversation not found").await;
            return;
        }
        Err(err) => {
            tracing::warn!(%id, %err, "cannot load conversation for a socket");
            socket.close(1011, "Conversation could not be loaded").await;
            return;
        }
    };
    if live.subscribers.fetch_add(1, Ordering::SeqCst) >= MAX_SUBSCRIBERS {
        live.subscribers.fetch_sub(1, Ordering::SeqCst);
        socket
            .close(1013, "Too many connections for this conversation")
            .await;
        return;
    }
    let _subscription = Subscription(Arc::clone(&live));
    // Subscribe first, then read the mark: what is appended in between arrives on the
    // channel as well and is dropped by its seq.
    let mut frames = live.subscribe();
    let mut shutdown = state.shutdown.subscribe();
    let count = live.conv.event_count();
    let through_seq = count.checked_sub(1);
    let mut sync = serde_json::json!({"type": "sync"});
    if let Some(after) = after_seq {
        sync["from_seq"] = after.into();
    }
    if let Some(through) = through_seq {
        sync["through_seq"] = through.into();
    }
    if socket.send(sync.to_string().into()).await.is_err() {
        return;
    }
    // Replayed through this seq (live frames at or below it are duplicates).
    let mut replayed_through: Option<usize> = None;
    if let (Some(after), Some(through)) = (after_seq, through_seq) {
        let start = usize::try_from(after.saturating_add(1).max(0)).unwrap_or(usize::MAX);
        let mut next = start;
        while next <= through {
            let end = (next + REPLAY_PAGE).min(through + 1);
            let page: Vec<Utf8Bytes> = live.conv.with_events(|events| {
                events
                    .get(next..end.min(events.len()))
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(|(i, e)| durable(next + i, serialize(e).as_str()))
                    .collect()
            });
            for frame in page {
                if frame.len() > MAX_FRAME {
                    tracing::warn!(%id, "event larger than 1 MiB not replayed on the session socket");
                    continue;
                }
                if socket.send(frame).await.is_err() {
                    return;
                }
            }
            next = end;
        }
        replayed_through = Some(through);
    }
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(frame) => {
                    let out = match &frame.persisted_id {
                        Some(event_id) => {
                            let seq = live.conv.with_events(|events| {
                                events.iter().rposition(|e| e.id() == Some(&**event_id))
                            });
                            match seq {
                                Some(seq) if replayed_through.is_some_and(|t| seq <= t) => continue,
                                Some(seq) => durable(seq, frame.json.as_str()),
                                None => format!(r#"{{"type":"transient","event":{}}}"#, frame.json.as_str()).into(),
                            }
                        }
                        None => format!(r#"{{"type":"transient","event":{}}}"#, frame.json.as_str()).into(),
                    };
                    if out.len() > MAX_FRAME {
                        tracing::warn!(%id, "event larger than 1 MiB not sent on the session socket");
                        continue;
                    }
                    if socket.send(out).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Disconnection is the backpressure: the client resumes with after_seq.
                    socket.close(1013, "slow_consumer").await;
                    return;
                }
                Err(RecvError::Closed) => {
                    socket.close(1000, "Conversation closed").await;
                    return;
                }
            },
            inbound = socket.recv() => {
                let error = match inbound {
                    Inbound::Text(text) => handle_inbound(&live, text.as_str())
                        .await
                        .map(|frame| session_error_from(&frame)),
                    Inbound::Binary => Some(session_error("ValidationError", BINARY_UNSUPPORTED)),
                    Inbound::Control => None,
                    Inbound::Closed => return,
                };
                if let Some(error) = error
                    && socket.send(error).await.is_err()
                {
                    return;
                }
            }
            _ = shutdown.changed() => {
                socket.close(1001, "Server shutting down").await;
                return;
            }
        }
    }
}

/// The `error` frame of a `ServerErrorEvent` frame [`handle_inbound`] made.
fn session_error_from(frame: &Frame) -> Utf8Bytes {
    let event: Value = serde_json::from_str(frame.json.as_str()).unwrap_or(Value::Null);
    session_error(
        event["code"].as_str().unwrap_or("Error"),
        event["detail"].as_str().unwrap_or("the frame was refused"),
    )
}

const BINARY_UNSUPPORTED: &str = "Binary frames are not supported";

/// Whether `text` is a valid auth frame: `{"type": "auth", "session_api_key": <key>}`.
fn auth_frame_ok(state: &AppState, text: &str) -> bool {
    let Ok(Value::Object(frame)) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    frame.get("type").and_then(Value::as_str) == Some("auth")
        && frame
            .get("session_api_key")
            .and_then(Value::as_str)
            .is_some_and(|key| !key.is_empty() && state.keys.accepts(key))
}

/// Whether `text` is an auth frame that arrives after authentication (ignored).
fn is_auth_frame(text: &str) -> bool {
    matches!(serde_json::from_str::<Value>(text), Ok(Value::Object(frame))
        if frame.get("type").and_then(Value::as_str) == Some("auth")
            && frame.keys().all(|k| k == "type" || k == "session_api_key"))
}

async fn first_text(socket: &mut Socket) -> Option<Utf8Bytes> {
    loop {
        match socket.recv().await {
            Inbound::Text(text) => return Some(text),
            Inbound::Control => {}
            Inbound::Binary | Inbound::Closed => return None,
        }
    }
}

/// Decrements the subscriber count when the socket ends.
struct Subscription(Arc<Live>);

impl Drop for Subscription {
    fn drop(&mut self) {
        self.0.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(
    state: AppState,
    mut socket: Socket,
    id: uuid::Uuid,
    authenticated: bool,
    query: Query,
) {
    if !first_frame_auth(&state, &mut socket, authenticated).await {
        return;
    }
    let replay = Replay::from_query(&query);
    let live = match crate::conversations::live(&state, id).await {
        Ok(Some(live)) => live,
        Ok(None) => {
            socket.close(4004, "Conversation not found").await;
            return;
        }
        Err(err) => {
            tracing::warn!(%id, %err, "cannot load conversation for a socket");
            socket.close(1011, "Conversation could not be loaded").await;
            return;
        }
    };
    if live.subscribers.fetch_add(1, Ordering::SeqCst) >= MAX_SUBSCRIBERS {
        live.subscribers.fetch_sub(1, Ordering::SeqCst);
        socket
            .close(1013, "Too many connections for this conversation")
            .await;
        return;
    }
    let _subscription = Subscription(Arc::clone(&live));
    let mut frames = live.subscribe();
    let mut shutdown = state.shutdown.subscribe();
    let mut last_persisted: Option<Arc<str>> = None;

    if send_frame(&mut socket, &live.full_state()).await.is_err() {
        return;
    }
    let replayed = match &replay {
        Replay::None => Vec::new(),
        Replay::All => persisted_after(&live, None, None),
        Replay::Since(since) => persisted_after(&live, None, Some(since)),
    };
    for frame in replayed {
        if send_frame(&mut socket, &frame).await.is_err() {
            return;
        }
    }

    // Ids sent by the last catch-up: the channel still holds some of them, which are skipped
    // until the first frame the catch-up did not cover (frames stay in log order).
    let mut caught_up: HashSet<Arc<str>> = HashSet::new();
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Ok(frame) => {
                    if let Some(id) = &frame.persisted_id {
                        if caught_up.contains(id) {
                            continue;
                        }
                        caught_up.clear();
                    }
                    if send_frame(&mut socket, &frame).await.is_err() {
                        return;
                    }
                    if frame.persisted_id.is_some() {
                        last_persisted = frame.persisted_id;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(%id, missed, "subscriber fell behind; catching up from the log");
                    // Ids of earlier catch-ups stay in the set: the channel may still hold
                    // their frames when the socket falls behind again during a catch-up.
                    let catch_up = persisted_after(&live, last_persisted.as_deref(), None);
                    for frame in catch_up {
                        if send_frame(&mut socket, &frame).await.is_err() {
                            return;
                        }
                        if let Some(id) = frame.persisted_id {
                            caught_up.insert(Arc::clone(&id));
                            last_persisted = Some(id);
                        }
                    }
                    if send_frame(&mut socket, &live.full_state()).await.is_err() {
                        return;
                    }
                }
                Err(RecvError::Closed) => {
                    socket.close(1000, "Conversation closed").await;
                    return;
                }
            },
            inbound = socket.recv() => {
                let error = match inbound {
                    Inbound::Text(text) => handle_inbound(&live, text.as_str()).await,
                    Inbound::Binary => Some(server_error("ValidationError", BINARY_UNSUPPORTED)),
                    Inbound::Control => None,
                    Inbound::Closed => return,
                };
                if let Some(error) = error
                    && send_frame(&mut socket, &error).await.is_err()
                {
                    return;
                }
            }
            _ = shutdown.changed() => {
                socket.close(1001, "Server shutting down").await;
                return;
            }
        }
    }
}

/// Persisted events after `after` (an event id; `None` = from the start), optionally only
/// those with `timestamp >= since`.
fn persisted_after(live: &Live, after: Option<&str>, since: Option<&str>) -> Vec<Frame> {
    live.conv.with_events(|events| {
        let start = after
            .and_then(|id| events.iter().position(|e| e.id() == Some(id)))
            .map_or(0, |i| i + 1);
        events[start..]
            .iter()
            .filter(|e| {
                since.is_none_or(|since| e.base().is_some_and(|b| b.timestamp.as_str() >= since))
            })
            .map(|e| Frame {
                persisted_id: e.id().map(Into::into),
                json: serialize(e),
            })
            .collect()
    })
}

fn server_error(code: &str, detail: &str) -> Frame {
    let event = Event::ServerError(ServerErrorEvent {
        base: EventBase::new(Source::Environment, event_now()),
        code: code.to_owned(),
        detail: detail.to_owned(),
    });
    Frame {
        persisted_id: None,
        json: serialize(&event),
    }
}

/// Handles a client frame: a message to the conversation (then a run), or an ignored late
/// auth frame. Returns an error frame for this socket when the frame is invalid.
async fn handle_inbound(live: &Arc<Live>, text: &str) -> Option<Frame> {
    if is_auth_frame(text) {
        return None;
    }
    let request: SendMessageRequest = match serde_json::from_str(text) {
        Ok(request) => request,
        Err(err) => return Some(server_error("ValidationError", &err.to_string())),
    };
    if request.role != oh_protocol::Role::User {
        return Some(server_error(
            "AssertionError",
            "Only messages with role 'user' can be sent to a conversation",
        ));
    }
    let message = oh_protocol::Message::new(request.role, request.content);
    let text = crate::conversations::message_text(&message);
    if let Err(err) = live.conv.send_message(message).await {
        return Some(server_error("ConversationError", &err.to_string()));
    }
    live.autotitle(&text);
    live.mark_updated();
    match live.run_or_rerun() {
        Ok(()) => None,
        Err(err) => Some(server_error("RunError", &err.to_string())),
    }
}

/// Sends a frame, keeping it under [`MAX_FRAME`]: an oversize snapshot loses its per-call
/// usage lists; another oversize event is left for REST (logged).
async fn send_frame(
    socket: &mut Socket,
    frame: &Frame,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    if frame.json.len() <= MAX_FRAME {
        // The shared frame's bytes, not a copy (checked again as UTF-8, which they are).
        let bytes = bytes::Bytes::from(frame.json.clone());
        let text =
            Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from(frame.json.as_str()));
        return socket.send(text).await;
    }
    if frame.persisted_id.is_none()
        && let Some(smaller) = shrink_snapshot(frame.json.as_str())
        && smaller.len() <= MAX_FRAME
    {
        return socket.send(smaller.into()).await;
    }
    tracing::warn!(
        bytes = frame.json.len(),
        "event larger than 1 MiB not sent on the socket; clients read it over REST"
    );
    Ok(())
}

/// A `full_state` frame with the stats' per-call lists dropped.
fn shrink_snapshot(json: &str) -> Option<String> {
    let mut event: Value = serde_json::from_str(json).ok()?;
    let metrics = event
        .get_mut("value")?
        .get_mut("stats")?
        .get_mut("usage_to_metrics")?
        .as_object_mut()?;
    for entry in metrics.values_mut() {
        if let Some(entry) = entry.as_object_mut() {
            for list in ["costs", "response_latencies", "token_usages"] {
                entry.insert(list.to_owned(), Value::Array(Vec::new()));
            }
        }
    }
    serde_json::to_string(&event).ok()
}

async fn bash_socket(State(state): State<AppState>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let query = Query::from_request_parts(&mut parts, &state)
        .await
        .unwrap_or_default();
    let authenticated = match handshake_auth(&state, &query, &parts.headers) {
        Ok(authenticated) => authenticated,
        Err(status) => return status.into_response(),
    };
    let served = state.clone();
    upgrade(&state, &mut parts, authenticated, move |socket| {
        serve_bash(served, socket, authenticated, query)
    })
}

/// Decrements the bash subscriber count when the socket ends.
struct BashSubscription(Arc<AtomicUsize>);

impl Drop for BashSubscription {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn bash_json(event: &oh_protocol::BashEvent) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(event).unwrap_or_default())
}

fn bash_error(code: &str, detail: String) -> Utf8Bytes {
    let error = oh_protocol::BashEvent::Error(oh_protocol::BashError {
        id: oh_protocol::HexUuid::new_v4(),
        timestamp: crate::service::utc_now(),
        code: code.to_owned(),
        detail,
    });
    bash_json(&error)
}

/// `/sockets/bash-events`: every bash event (stored ones first with `resend_mode=all`);
/// a frame `{"command", "cwd"?, "timeout"?}` starts a command.
async fn serve_bash(state: AppState, mut socket: Socket, authenticated: bool, query: Query) {
    if !first_frame_auth(&state, &mut socket, authenticated).await {
        return;
    }
    let subscribers = &state.sockets.bash_subscribers;
    if subscribers.fetch_add(1, Ordering::SeqCst) >= MAX_BASH_SUBSCRIBERS {
        subscribers.fetch_sub(1, Ordering::SeqCst);
        socket.close(1013, "Too many bash event connections").await;
        return;
    }
    let _subscription = BashSubscription(Arc::clone(subscribers));
    let replay = resend_all(&query);
    let mut events = state.bash.subscribe();
    let mut shutdown = state.shutdown.subscribe();
    if replay {
        for event in state.bash.stored_events() {
            if socket.send(bash_json(&event)).await.is_err() {
                return;
            }
        }
    }
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if socket.send(bash_json(&event)).await.is_err() {
                        return;
                    }
                }
                // Bash events stay readable over REST; a socket that fell behind moves on.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            inbound = socket.recv() => {
                let error = match inbound {
                    Inbound::Text(text) if is_auth_frame(text.as_str()) => None,
                    Inbound::Text(text) => start_bash(&state, text.as_str()).await,
                    Inbound::Binary => Some(bash_error("ValidationError", BINARY_UNSUPPORTED.into())),
                    Inbound::Control => None,
                    Inbound::Closed => return,
                };
                if let Some(error) = error
                    && socket.send(error).await.is_err()
                {
                    return;
                }
            }
            _ = shutdown.changed() => {
                socket.close(1001, "Server shutting down").await;
                return;
            }
        }
    }
}

/// Starts the command a bash socket frame asks for; an error frame when it cannot.
async fn start_bash(state: &AppState, text: &str) -> Option<Utf8Bytes> {
    match serde_json::from_str::<oh_protocol::ExecuteBashRequest>(text) {
        Ok(request) => match state.bash.start(request).await {
            Ok(_) => {
                state.activity.touch();
                None
            }
            Err(err) => Some(bash_error("ExecutionError", err.to_string())),
        },
        Err(err) => Some(bash_error("ValidationError", err.to_string())),
    }
}
