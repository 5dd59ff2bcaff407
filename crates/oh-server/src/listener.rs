//! The accept loop: hyper HTTP/1 connections serving the router, with the limits a server
//! reachable by anyone needs (`axum::serve` has none of them).
//!
//! - A connection cap: each connection holds a permit (moved into the WebSocket after an
//!   upgrade, so sockets count too). Past the cap a new connection is answered `503` with a
//!   JSON body and closed, never left hanging.
//! - A header-read timeout, counted from the first byte of a request, and an idle timeout for
//!   a keep-alive connection with no request in flight. Neither touches a request in flight
//!   (a long command, a slow download), nor a WebSocket after its upgrade.
//! - A minimum rate for request bodies ([`TimedBody`]), counting only the time spent waiting
//!   for the client.
//! - A bounded drain: on shutdown, connections without a request in flight are closed at
//!   once, the others finish their request (keep-alive off) until the deadline, then are
//!   aborted.
//!
//! hyper's own `header_read_timeout` is not used: its timer also runs while a keep-alive
//! connection waits for its next request (so it would be the idle timeout too), and hyper's
//! graceful shutdown does not close a connection whose first request head is incomplete.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::config::Config;

/// At most this many refusals (503 being written) at once; past it a connection is just closed.
const MAX_REFUSING: usize = 64;

/// How long a refusal may take (write the 503, wait for the client to close).
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// The default cap when the configuration sets none.
const DEFAULT_CAP_MAX: usize = 10_000;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The connection limits, from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    /// Bytes a body must deliver per `body_read_timeout` of waiting.
    pub(crate) body_min_bytes: u64,
    pub(crate) drain: Duration,
}

impl Limits {
    pub(crate) fn new(config: &Config) -> Self {
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1));
        let body_read_timeout = secs(config.body_read_timeout_seconds);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a byte count from positive, bounded factors"
        )]
        let body_min_bytes = ((config.body_min_rate_bytes_per_second as f64)
            * body_read_timeout.as_secs_f64()) as u64;
        Self {
            max_connections: config.max_connections.unwrap_or_else(default_cap),
            header_read_timeout: secs(config.header_read_timeout_seconds),
            idle_timeout: secs(config.idle_timeout_seconds),
            body_read_timeout,
            body_min_bytes: body_min_bytes.max(1),
            drain: secs(config.shutdown_drain_seconds),
        }
    }
}

/// ¾ of the soft open-files limit (the rest for files, pipes and child processes), between 16
/// and 10,000.
fn default_cap() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let soft = limit
        .current
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
    (soft / 4 * 3).clamp(16, DEFAULT_CAP_MAX)
}

/// The routes requests are dispatched to: one router for the server's life, or (deferred
/// init) the dormant server's until the initialised application's is published. Read once
/// per request: a shared read of a `watch` value and a clone of a router (reference counts).
#[derive(Clone)]
pub(crate) struct Routes {
    base: Router,
    replaced: Option<watch::Receiver<Option<Router>>>,
}

impl Routes {
    /// Always `router`.
    pub(crate) fn fixed(router: Router) -> Self {
        Self {
            base: router,
            replaced: None,
        }
    }

    /// `base` until `replaced` holds a router, then that one.
    pub(crate) fn switchable(base: Router, replaced: watch::Receiver<Option<Router>>) -> Self {
        Self {
            base,
            replaced: Some(replaced),
        }
    }

    /// The router of the next request.
    fn current(&self) -> Router {
        if let Some(replaced) = &self.replaced
            && let Some(router) = &*replaced.borrow()
        {
            return router.clone();
        }
        self.base.clone()
    }
}

/// The listener and its connections.
pub(crate) struct Connections {
    listener: TcpListener,
    routes: Routes,
    limits: Arc<Limits>,
    permits: Arc<Semaphore>,
    refusing: Arc<Semaphore>,
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
    refused: u64,
}

impl Connections {
    pub(crate) fn new(listener: TcpListener, routes: Routes, limits: Limits) -> Self {
        tracing::info!(
            max_connections = limits.max_connections,
            "accepting at most {} connections",
            limits.max_connections
        );
        Self {
            listener,
            routes,
            permits: Arc::new(Semaphore::new(limits.max_connections)),
            refusing: Arc::new(Semaphore::new(MAX_REFUSING)),
            limits: Arc::new(limits),
            tasks: JoinSet::new(),
            stop: watch::Sender::new(false),
            refused: 0,
        }
    }

    /// Accepts connections until `shutdown` completes.
    pub(crate) async fn accept_until(&mut self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_error: Option<Instant> = None;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(err) = done
                        && err.is_panic()
                    {
                        tracing::error!("a connection task panicked: {err}");
                    }
                }
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => self.admit(stream),
                    Err(err) => {
                        // Out of file descriptors (or a connection reset before accept): wait
                        // a little instead of spinning; say so at most once a second.
                        if last_error.is_none_or(|at| at.elapsed() > Duration::from_secs(1)) {
                            tracing::warn!("accept failed: {err}");
                            last_error = Some(Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
        }
    }

    fn admit(&mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => {
                self.tasks.spawn(connection(
                    stream,
                    permit,
                    self.routes.clone(),
                    Arc::clone(&self.limits),
                    self.stop.subscribe(),
                ));
            }
            Err(_) => {
                if self.refused.is_multiple_of(1000) {
                    tracing::warn!(
                        "connection cap of {} reached: refusing new connections ({} so far)",
                        self.limits.max_connections,
                        self.refused + 1
                    );
                }
                self.refused += 1;
                if let Ok(permit) = Arc::clone(&self.refusing).try_acquire_owned() {
                    self.tasks.spawn(refuse(stream, permit));
                }
            }
        }
    }

    /// Stops accepting, closes connections without a request in flight, lets the others
    /// finish theirs until `deadline`, and aborts what is left then. Returns how many
    /// connections were aborted.
    pub(crate) async fn drain(mut self, deadline: Instant) -> usize {
        drop(self.listener);
        self.stop.send_replace(true);
        let tasks = &mut self.tasks;
        let finished = tokio::time::timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if finished.is_ok() {
            return 0;
        }
        let left = self.tasks.len();
        // Aborted tasks end at their next poll; a connection task never blocks a thread.
        self.tasks.abort_all();
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        left
    }
}

/// Writes a 503 with a JSON body on a connection past the cap and closes it.
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit) {
    const BODY: &str = r#"{"detail":"Too many connections: the server is at its connection limit, try again later"}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        // Read what the client sends until it closes: closing with unread data would reset
        // the connection, and a reset can discard the response before the client reads it.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Serves one connection until it ends, is upgraded, times out idle or in its headers, or
/// the server drains.
async fn connection(
    stream: TcpStream,
    permit: OwnedSemaphorePermit,
    routes: Routes,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        stream,
        activity: Arc::clone(&activity),
        _permit: permit,
    });
    let service = ConnService {
        routes,
        activity: Arc::clone(&activity),
        limits: Arc::clone(&limits),
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!("connection: {err}");
                }
                return;
            }
            // No request in flight: dropping the connection closes it.
            () = activity.expired(&limits) => return,
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                if !activity.busy() {
                    return;
                }
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What a connection is doing, for its timeouts.
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
    changed: Notify,
}

#[derive(Debug)]
struct ActivityState {
    /// Requests in flight (from the parsed head until the response body is done).
    in_flight: usize,
    /// When the connection last became idle.
    idle_since: Instant,
    /// When the first byte of the next request arrived, if one did.
    first_byte: Option<Instant>,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                first_byte: None,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn busy(&self) -> bool {
        self.lock().in_flight > 0
    }

    /// Bytes arrived from the client.
    fn read(&self) {
        let mut state = self.lock();
        if state.in_flight == 0 && state.first_byte.is_none() {
            state.first_byte = Some(Instant::now());
            drop(state);
            self.changed.notify_one();
        }
    }

    /// A request starts; it ends when the guard is dropped.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.lock().in_flight += 1;
        self.changed.notify_one();
        InFlight(Arc::clone(self))
    }

    /// Completes when the connection has had no request in flight for the idle timeout, or
    /// a request's headers took longer than the header-read timeout.
    async fn expired(&self, limits: &Limits) {
        loop {
            let deadline = {
                let state = self.lock();
                if state.in_flight > 0 {
                    None
                } else if let Some(first) = state.first_byte {
                    Some(first + limits.header_read_timeout)
                } else {
                    Some(state.idle_since + limits.idle_timeout)
                }
            };
            match deadline {
                None => self.changed.notified().await,
                Some(deadline) if deadline <= Instant::now() => return,
                Some(deadline) => {
                    // Either way, look at the state again.
                    tokio::select! {
                        () = self.changed.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
            }
        }
    }
}

/// A request in flight.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
            state.first_byte = None;
        }
        drop(state);
        self.0.changed.notify_one();
    }
}

/// The TCP stream, noting reads for the timeouts and holding the connection's permit (which
/// follows the stream into a WebSocket after an upgrade).
struct Tracked {
    stream: TcpStream,
    activity: Arc<Activity>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The router as a hyper service of one connection: request bodies get the minimum rate,
/// and a request counts as in flight until its response body is done.
#[derive(Clone)]
struct ConnService {
    routes: Routes,
    activity: Arc<Activity>,
    limits: Arc<Limits>,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.begin();
        let limits = &self.limits;
        let body_read = Arc::new(AtomicBool::new(false));
        let request = request.map(|body| {
            body_read.store(hyper::body::Body::is_end_stream(&body), Ordering::SeqCst);
            Body::new(TimedBody::new(
                body,
                limits.body_read_timeout,
                limits.body_min_bytes,
                Arc::clone(&body_read),
            ))
        });
        let mut router = self.routes.current();
        let response = tower_service::Service::call(&mut router, request);
        Box::pin(async move {
            let mut response = response.await?;
            if !body_read.load(Ordering::SeqCst) {
                // Answered before the request body was read (a 401, 403, 415…): hyper will
                // close the connection rather than read the rest, so say so. A client that
                // put the connection back in its pool would otherwise send its next request
                // on a socket about to close ("server disconnected without a response").
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok(response.map(|body| {
                Body::new(Tracking {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A response body that ends its request's time in flight when done (or dropped).
struct Tracking {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracking {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request body took too long.
#[derive(Debug, thiserror::Error)]
#[error("the request body arrived too slowly (less than {min_bytes} bytes in {window:?})")]
pub(crate) struct BodyTooSlow {
    min_bytes: u64,
    window: Duration,
}

/// A request body that fails when the client is too slow: within each `window` of time
/// spent waiting for the client, at least `min_bytes` must arrive. Time the handler spends
/// elsewhere (writing to disk) does not count.
struct TimedBody {
    inner: Incoming,
    window: Duration,
    min_bytes: u64,
    /// Bytes and waiting time in the current window.
    got: u64,
    waited: Duration,
    waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    /// Set once the body has been read to its end.
    read: Arc<AtomicBool>,
}

impl TimedBody {
    fn new(inner: Incoming, window: Duration, min_bytes: u64, read: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            window,
            min_bytes,
            got: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: Box::pin(tokio::time::sleep(window)),
            read,
        }
    }
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(data) = frame.data_ref() {
                    this.got += data.len() as u64;
                }
                if this.got >= this.min_bytes {
                    this.got = 0;
                    this.waited = Duration::ZERO;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => {
                this.read.store(true, Ordering::SeqCst);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.waiting_since.is_none() {
                    let now = Instant::now();
                    this.waiting_since = Some(now);
                    let left = this.window.saturating_sub(this.waited);
                    this.timer.as_mut().reset(now + left);
                }
                if this.timer.as_mut().poll(cx).is_ready() {
                    tracing::debug!("request body too slow; failing the request");
                    return Poll::Ready(Some(Err(Box::new(BodyTooSlow {
                        min_bytes: this.min_bytes,
                        window: this.window,
                    }))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` with this accept loop (the connection cap, the header-read,
/// idle and body-rate timeouts of `config`) until `shutdown` completes, then lets requests in
/// flight finish within `config.shutdown_drain_seconds`. For other servers of this project
/// (the sandbox server) that want the agent server's defences without its routes.
pub async fn serve_router(
    listener: TcpListener,
    router: Router,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Limits::new(config);
    let drain = limits.drain;
    let mut connections = Connections::new(listener, Routes::fixed(router), limits);
    connections.accept_until(shutdown).await;
    let aborted = connections.drain(Instant::now() + drain).await;
    if aborted > 0 {
        tracing::warn!("aborted {aborted} connection(s) still open after the drain");
    }
}
