//! `RemoteConversation`: a conversation hosted by an agent server.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use hyper::Method;
use oh_protocol::{
    AgentBase, Callback, ConfirmationPolicy, ConfirmationResponseRequest, ConversationInfo,
    ConversationStats, Event, EventPage, ExecutionStatus, Message, RunFailure, SecretSource,
    SendMessageRequest, SetConfirmationPolicyRequest, StartConversationRequest, Success,
    UpdateConversationRequest, UpdateSecretsRequest, WorkspaceSpec,
};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::http::{self, Http};
use crate::stream::{self, Backoff};
use crate::workspace::RemoteWorkspace;

/// Time a blocking [`RemoteConversation::run`] waits by default (the reference's 3600 s).
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(3600);

/// Whether a conversation is deleted on the server when it is closed, unless
/// [`RemoteConversationBuilder::delete_on_close`] says otherwise: on, as the Python SDK's
/// `Conversation(...)` factory. The `openhands` facade uses the same default.
pub const DEFAULT_DELETE_ON_CLOSE: bool = true;

/// Time allowed for the event socket's first state frame (the reference's 30 s).
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Time allowed for `POST …/run` (the reference's 30 s).
const RUN_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// While a run is awaited, the REST status is read this often in case the socket is down.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A REST status that is not `running` ends a run only after it was reported this long (the
/// reference's rule: the socket's post-run snapshot is authoritative, REST only a fallback).
const REST_END_GRACE: Duration = Duration::from_secs(30);

/// Events per `events/search` page (the server's maximum).
const PAGE: &str = "100";

/// How an event reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The first state frame of a socket connection.
    Initial,
    /// A later socket frame.
    Live,
    /// Loaded with the history when the conversation was opened: not passed to callbacks.
    History,
    /// Missed while disconnected and recovered from REST: passed to callbacks once.
    Recovered,
}

/// State shared by the conversation handle and its socket task.
pub(crate) struct Shared {
    pub(crate) id: uuid::Uuid,
    pub(crate) http: Http,
    pub(crate) api_key: Option<oh_protocol::SecretString>,
    pub(crate) backoff: Backoff,
    callbacks: RwLock<Vec<Callback>>,
    inner: Mutex<Inner>,
    /// Bumped on every change a run waiter may care about.
    changed: watch::Sender<u64>,
    ready: AtomicBool,
    ready_since_lost: AtomicBool,
    disconnects: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.id)
            .field("host", &self.http.base())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    /// Persisted events, sorted by timestamp (equal timestamps in arrival order).
    events: Vec<Event>,
    ids: HashSet<String>,
    /// Cached conversation state: the last `full_state` merged with later field updates.
    state: serde_json::Map<String, Value>,
    run: RunTracker,
    /// Why the socket stopped for good.
    fatal: Option<(u16, String)>,
}

/// What the socket has told a waiting `run()`.
#[derive(Debug, Default)]
struct RunTracker {
    armed: bool,
    /// `POST …/run` has returned.
    posted: bool,
    /// The cached status when the run was started.
    before: Option<ExecutionStatus>,
    seen_running: bool,
    outcome: Option<ExecutionStatus>,
}

impl RunTracker {
    fn observe(&mut self, status: ExecutionStatus, delivery: Delivery, snapshot: bool) {
        if !self.armed || self.outcome.is_some() {
            return;
        }
        if status == ExecutionStatus::Running {
            self.seen_running = true;
            return;
        }
        let ends = if snapshot {
            // The server publishes a snapshot once a run's task has ended and its events
            // were delivered: authoritative once the run was seen running. Snapshots of
            // earlier operations (a pause publishes one too) may still be in flight, so
            // without that a snapshot only counts if it arrived after the run was started
            // and shows a status other than the one before. The snapshot opening a
            // reconnection is taken at an arbitrary time: it needs the run seen running.
            self.seen_running
                || (delivery == Delivery::Live && self.posted && self.before != Some(status))
        } else {
            // A `finished` field update can still be reverted (stop hooks); failures cannot.
            matches!(status, ExecutionStatus::Error | ExecutionStatus::Stuck)
        };
        if ends {
            self.outcome = Some(status);
        }
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub(crate) fn ready_seen(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    pub(crate) fn mark_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
        self.ready_since_lost.store(true, Ordering::SeqCst);
    }

    /// True once after a connection became ready: the reconnect backoff starts over.
    pub(crate) fn take_ready_reset(&self) -> bool {
        self.ready_since_lost.swap(false, Ordering::SeqCst)
    }

    pub(crate) fn note_disconnect(&self) {
        self.disconnects.fetch_add(1, Ordering::SeqCst);
        self.notify();
    }

    pub(crate) fn fail(&self, error: Error) {
        if let Error::SocketClosed { code, reason } = error {
            self.lock().fatal = Some((code, reason));
        }
        self.notify();
    }

    /// Records an event and passes it to the callbacks, exactly once per event id.
    pub(crate) fn handle(&self, event: Event, delivery: Delivery) {
        let deliver = {
            let mut inner = self.lock();
            if let Event::ConversationStateUpdate(update) = &event {
                let snapshot = update.key == oh_protocol::ConversationStateUpdateEvent::FULL_STATE;
                // Recovered and historical updates are older than the snapshot the connection
                // opened with: they must not roll the cache back, but a run waiter learns
                // from recovered ones.
                if matches!(delivery, Delivery::Initial | Delivery::Live) {
                    apply_update(&mut inner.state, &update.key, &update.value);
                }
                let status = if snapshot {
                    update.value.get("execution_status")
                } else if update.key == "execution_status" {
                    Some(&update.value)
                } else {
                    None
                };
                if delivery != Delivery::History
                    && let Some(status) = status
                        .and_then(|s| serde_json::from_value::<ExecutionStatus>(s.clone()).ok())
                {
                    inner.run.observe(status, delivery, snapshot);
                }
                if snapshot {
                    // Snapshots are not history: never stored, passed on as they come.
                    drop(inner);
                    self.notify();
                    if matches!(delivery, Delivery::Initial | Delivery::Live) {
                        self.deliver(&event);
                    }
                    return;
                }
            }
            if matches!(event, Event::StreamingDelta(_)) {
                true
            } else {
                match event.id() {
                    Some(id) if inner.ids.contains(id) => false,
                    Some(id) => {
                        inner.ids.insert(id.to_owned());
                        insert_sorted(&mut inner.events, event.clone());
                        delivery != Delivery::History
                    }
                    None => delivery != Delivery::History,
                }
            }
        };
        self.notify();
        if deliver {
            self.deliver(&event);
        }
    }

    fn deliver(&self, event: &Event) {
        let callbacks = self
            .callbacks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for callback in callbacks {
            // A panicking callback must not stop the event stream for the others.
            let call = std::panic::AssertUnwindSafe(|| callback(event));
            if std::panic::catch_unwind(call).is_err() {
                tracing::error!(conversation = %self.id, kind = event.kind(), "an event callback panicked");
            }
        }
    }

    /// Pages through `events/search` and handles every event not seen yet.
    pub(crate) async fn reconcile(&self, delivery: Delivery) -> Result<()> {
        let mut page_id: Option<String> = None;
        loop {
            let mut pairs = vec![("limit", PAGE)];
            if let Some(page) = &page_id {
                pairs.push(("page_id", page.as_str()));
            }
            let path = format!(
                "/api/conversations/{}/events/search?{}",
                self.id.hyphenated(),
                http::query(&pairs)
            );
            let page: EventPage = self
                .http
                .json(Method::GET, &path, None::<&()>, Duration::from_secs(60))
                .await?;
            for event in page.items {
                self.handle(event, delivery);
            }
            match page.next_page_id {
                Some(next) if !next.is_empty() => page_id = Some(next),
                _ => return Ok(()),
            }
        }
    }
}

/// Merges a state update into the cached state.
fn apply_update(state: &mut serde_json::Map<String, Value>, key: &str, value: &Value) {
    if key == oh_protocol::ConversationStateUpdateEvent::FULL_STATE {
        if let Value::Object(fields) = value {
            for (k, v) in fields {
                state.insert(k.clone(), v.clone());
            }
        }
    } else {
        state.insert(key.to_owned(), value.clone());
    }
}

/// Inserts after every event whose timestamp is not later (timestamps sort as strings).
fn insert_sorted(events: &mut Vec<Event>, event: Event) {
    let ts = event.timestamp().unwrap_or_default().to_owned();
    let at = events.partition_point(|e| e.timestamp().unwrap_or_default() <= ts.as_str());
    events.insert(at, event);
}

/// Tool name → Python module that registers it, for the tools the reference ships. The
/// Python server imports these modules so the agent's tools resolve.
fn tool_module(name: &str) -> Option<&'static str> {
    Some(match name {
        "terminal" => "openhands.tools.terminal.definition",
        "file_editor" => "openhands.tools.file_editor.definition",
        "task_tracker" => "openhands.tools.task_tracker.definition",
        _ => return None,
    })
}

/// Builds a [`RemoteConversation`]: new, or attached to an existing id.
#[must_use]
pub struct RemoteConversationBuilder {
    workspace: RemoteWorkspace,
    agent: Option<AgentBase>,
    request: Option<StartConversationRequest>,
    callbacks: Vec<Callback>,
    secrets: BTreeMap<String, SecretSource>,
    conversation_id: Option<uuid::Uuid>,
    delete_on_close: bool,
    backoff: Backoff,
    ready_timeout: Duration,
    max_iterations: Option<u64>,
    stuck_detection: Option<bool>,
    confirmation_policy: Option<ConfirmationPolicy>,
    tags: BTreeMap<String, String>,
    autotitle: Option<bool>,
}

impl std::fmt::Debug for RemoteConversationBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConversationBuilder")
            .field("host", &self.workspace.host())
            .field("conversation_id", &self.conversation_id)
            .field("callbacks", &self.callbacks.len())
            .finish_non_exhaustive()
    }
}

impl RemoteConversationBuilder {
    /// The agent of a new conversation (required by [`create`](Self::create) unless the id
    /// given with [`conversation_id`](Self::conversation_id) exists).
    pub fn agent(mut self, agent: impl Into<AgentBase>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// Calls `callback` with every event, live or recovered after a reconnect, once each.
    pub fn callback(mut self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(callback));
        self
    }

    /// Adds already shared callbacks.
    pub fn callbacks(mut self, callbacks: impl IntoIterator<Item = Callback>) -> Self {
        self.callbacks.extend(callbacks);
        self
    }

    /// Use this id: [`create`](Self::create) attaches if it exists and creates it otherwise.
    pub fn conversation_id(mut self, id: uuid::Uuid) -> Self {
        self.conversation_id = Some(id);
        self
    }

    /// Steps per run (default 500).
    pub fn max_iterations(mut self, n: u64) -> Self {
        self.max_iterations = Some(n);
        self
    }

    /// Stuck detection (default on).
    pub fn stuck_detection(mut self, on: bool) -> Self {
        self.stuck_detection = Some(on);
        self
    }

    /// The confirmation policy of a new conversation.
    pub fn confirmation_policy(mut self, policy: ConfirmationPolicy) -> Self {
        self.confirmation_policy = Some(policy);
        self
    }

    /// A tag (`^[a-z0-9]+$` keys; values ≤ 256 characters).
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Whether the server titles the conversation from its first message (server default:
    /// on; the title may cost an LLM call).
    pub fn autotitle(mut self, on: bool) -> Self {
        self.autotitle = Some(on);
        self
    }

    /// A secret, sent once the conversation is open (never in the create request): a value
    /// (`&str`, `String`), or a [`LookupSecret`](oh_protocol::LookupSecret) the agent server
    /// resolves when the agent needs it.
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<SecretSource>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Delete the conversation on the server when it is closed (default
    /// [`DEFAULT_DELETE_ON_CLOSE`]: on, as the Python SDK's `Conversation(...)`, which is how
    /// Python code creates remote conversations; only its bare `RemoteConversation` class
    /// defaults to off). Turn it off for a handle that only looks at a conversation another
    /// handle owns, or to keep it on the server after this process ends.
    pub fn delete_on_close(mut self, on: bool) -> Self {
        self.delete_on_close = on;
        self
    }

    /// How the event socket reconnects.
    pub fn reconnect_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Time allowed for the event socket to become ready (default 30 s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Sends exactly this create request (the workspace and agent in it are used as given).
    pub fn request(mut self, request: StartConversationRequest) -> Self {
        self.request = Some(request);
        self
    }

    /// Creates the conversation (or attaches, if the chosen id exists), opens its event
    /// socket and loads its history.
    pub async fn create(self) -> Result<RemoteConversation> {
        let http = self.workspace.http().clone();
        if let Some(id) = self.conversation_id {
            match get_info(&http, id, self.workspace.read_timeout()).await {
                Ok(_) => return self.open(id).await,
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        let request = match self.request.clone() {
            Some(request) => request,
            None => self.create_request()?,
        };
        let info: Value = http
            .json(
                Method::POST,
                "/api/conversations",
                Some(&request),
                self.workspace.read_timeout(),
            )
            .await?;
        let id = info
            .get("id")
            .or_else(|| info.get("conversation_id"))
            .and_then(Value::as_str)
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or_else(|| {
                Error::decode(
                    "the created conversation",
                    "the answer has no conversation id",
                )
            })?;
        self.open(id).await
    }

    /// Attaches to the existing conversation `id` ([`Error::Status`] 404 if there is none).
    pub async fn attach(self, id: uuid::Uuid) -> Result<RemoteConversation> {
        get_info(self.workspace.http(), id, self.workspace.read_timeout()).await?;
        self.open(id).await
    }

    fn create_request(&self) -> Result<StartConversationRequest> {
        let Some(agent) = self.agent.clone() else {
            return Err(Error::Builder {
                builder: "RemoteConversationBuilder",
                reason: "a new conversation needs an agent (RemoteConversationBuilder::agent)"
                    .into(),
            });
        };
        let tools: Vec<String> = match &agent {
            AgentBase::Agent(agent) => agent.tools.iter().map(|t| t.name.clone()).collect(),
            _ => Vec::new(),
        };
        let mut request = StartConversationRequest::new(
            agent,
            WorkspaceSpec::local(self.workspace.working_dir()),
        );
        request.conversation_id = self.conversation_id;
        request.tags = self.tags.clone();
        if let Some(n) = self.max_iterations {
            request.max_iterations = n;
        }
        if let Some(on) = self.stuck_detection {
            request.stuck_detection = on;
        }
        if let Some(on) = self.autotitle {
            request.autotitle = on;
        }
        if let Some(policy) = &self.confirmation_policy {
            request.confirmation_policy = policy.clone();
        }
        for name in tools {
            if let Some(module) = tool_module(&name) {
                request
                    .tool_module_qualnames
                    .insert(name, module.to_owned());
            }
        }
        Ok(request)
    }

    async fn open(self, id: uuid::Uuid) -> Result<RemoteConversation> {
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            id,
            http: self.workspace.http().clone(),
            api_key: self.workspace.api_key().map(oh_protocol::SecretString::new),
            backoff: self.backoff,
            callbacks: RwLock::new(self.callbacks),
            inner: Mutex::new(Inner::default()),
            changed,
            ready: AtomicBool::new(false),
            ready_since_lost: AtomicBool::new(false),
            disconnects: AtomicU64::new(0),
        });
        let (closing, closing_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(stream::run(Arc::clone(&shared), closing_rx, ready_tx));
        let conversation = RemoteConversation {
            shared,
            workspace: self.workspace,
            closing,
            task: Mutex::new(Some(task)),
            delete_on_close: self.delete_on_close,
            closed: AtomicBool::new(false),
        };
        let ready = match tokio::time::timeout(self.ready_timeout, ready_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed(id)),
            Err(_) => Err(Error::Timeout {
                what: format!("the event socket of conversation {id}"),
                after: self.ready_timeout,
            }),
        };
        if let Err(e) = ready {
            conversation.stop_socket().await;
            return Err(e);
        }
        if !self.secrets.is_empty() {
            conversation.update_secrets(self.secrets).await?;
        }
        Ok(conversation)
    }
}

async fn get_info(http: &Http, id: uuid::Uuid, timeout: Duration) -> Result<ConversationInfo> {
    http.json(
        Method::GET,
        &format!("/api/conversations/{}", id.hyphenated()),
        None::<&()>,
        timeout,
    )
    .await
}

/// A conversation hosted by an agent server, driven over REST with events streamed back over
/// a WebSocket.
///
/// The event stream survives disconnects: the socket reconnects with backoff and, once the
/// new connection is subscribed, recovers what it missed from `events/search`. Every
/// persisted event reaches the callbacks exactly once. Only the close codes 4001
/// (authentication failed) and 4004 (conversation not found) stop it.
///
/// ```no_run
/// # async fn demo() -> Result<(), oh_client::Error> {
/// use oh_client::{RemoteConversation, RemoteWorkspace};
/// use oh_protocol::{Agent, Llm, ToolSpec};
///
/// let workspace = RemoteWorkspace::new("http://localhost:8000", "/workspace/project")?;
/// let agent = Agent::new(Llm::new("openai/gpt-4o"), vec![ToolSpec::new("terminal")]);
/// let conversation = RemoteConversation::builder(&workspace)
///     .agent(agent)
///     .callback(|event| println!("{}", event.kind()))
///     .create()
///     .await?;
/// conversation.send_text("List the files in the workspace").await?;
/// let status = conversation.run().await?;
/// println!("{status:?}, cost ${:.4}", conversation.stats().await?.accumulated_cost());
/// conversation.close().await;
/// # Ok(()) }
/// ```
pub struct RemoteConversation {
    shared: Arc<Shared>,
    workspace: RemoteWorkspace,
    closing: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    delete_on_close: bool,
    closed: AtomicBool,
}

impl std::fmt::Debug for RemoteConversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConversation")
            .field("id", &self.shared.id)
            .field("host", &self.workspace.host())
            .finish_non_exhaustive()
    }
}

impl Drop for RemoteConversation {
    fn drop(&mut self) {
        self.closing.send_replace(true);
    }
}

impl RemoteConversation {
    /// Starts building a conversation on `workspace`'s server.
    pub fn builder(workspace: &RemoteWorkspace) -> RemoteConversationBuilder {
        RemoteConversationBuilder {
            workspace: workspace.clone(),
            agent: None,
            request: None,
            callbacks: Vec::new(),
            secrets: BTreeMap::new(),
            conversation_id: None,
            delete_on_close: DEFAULT_DELETE_ON_CLOSE,
            backoff: Backoff::default(),
            ready_timeout: READY_TIMEOUT,
            max_iterations: None,
            stuck_detection: None,
            confirmation_policy: None,
            tags: BTreeMap::new(),
            autotitle: None,
        }
    }

    /// The conversation id.
    pub fn id(&self) -> uuid::Uuid {
        self.shared.id
    }

    /// The workspace the conversation runs in.
    pub fn workspace(&self) -> &RemoteWorkspace {
        &self.workspace
    }

    fn path(&self, tail: &str) -> String {
        format!("/api/conversations/{}{tail}", self.shared.id.hyphenated())
    }

    fn timeout(&self) -> Duration {
        self.workspace.read_timeout()
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Closed(self.shared.id));
        }
        if let Some((code, reason)) = self.shared.lock().fatal.clone() {
            return Err(Error::SocketClosed { code, reason });
        }
        Ok(())
    }

    async fn post<T: serde::Serialize + ?Sized>(&self, tail: &str, body: Option<&T>) -> Result<()> {
        self.check_open()?;
        let _: Value = self
            .workspace
            .http()
            .json(Method::POST, &self.path(tail), body, self.timeout())
            .await?;
        Ok(())
    }

    /// The events so far (persisted ones, sorted by timestamp).
    pub fn events(&self) -> Vec<Event> {
        self.shared.lock().events.clone()
    }

    /// Reads the events without copying them.
    pub fn with_events<R>(&self, read: impl FnOnce(&[Event]) -> R) -> R {
        read(&self.shared.lock().events)
    }

    /// Number of events so far.
    pub fn event_count(&self) -> usize {
        self.shared.lock().events.len()
    }

    /// How often the event socket was lost (and reconnected) so far.
    pub fn disconnects(&self) -> u64 {
        self.shared.disconnects.load(Ordering::SeqCst)
    }

    /// Why the event socket stopped for good (close code 4001 or 4004), if it did.
    pub fn socket_error(&self) -> Option<Error> {
        self.shared
            .lock()
            .fatal
            .clone()
            .map(|(code, reason)| Error::SocketClosed { code, reason })
    }

    /// Adds a callback for events from now on.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) {
        self.shared
            .callbacks
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(callback));
    }

    /// Sends a message without starting a run (`POST …/events`): a [`Message`], or text for
    /// a user message.
    pub async fn send_message(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        let request = SendMessageRequest {
            role: message.role,
            content: message.content,
            run: false,
        };
        self.post("/events", Some(&request)).await
    }

    /// Sends a user text message without starting a run.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.post("/events", Some(&SendMessageRequest::text(text, false)))
            .await
    }

    /// Starts a run and waits until it ends (at most an hour); see
    /// [`run_with_timeout`](Self::run_with_timeout).
    pub async fn run(&self) -> Result<ExecutionStatus> {
        self.run_with_timeout(DEFAULT_RUN_TIMEOUT).await
    }

    /// Starts a run (`POST …/run`; "already running" is fine) and waits until it ends:
    /// finished, paused, waiting for confirmation or idle. A run that ends in `error` or
    /// `stuck` is an [`Error::Run`] (an `error` run carries the latest
    /// `ConversationErrorEvent`; see [`RunFailure::from_events`]).
    ///
    /// The socket's state frames say when the run ends; if the socket is down the REST
    /// status is polled every second. The events of the run are reconciled from REST before
    /// this returns, so [`events`](Self::events) holds all of them.
    pub async fn run_with_timeout(&self, timeout: Duration) -> Result<ExecutionStatus> {
        self.check_open()?;
        let deadline = Instant::now() + timeout;
        let mut changes = self.shared.changed.subscribe();
        {
            let mut inner = self.shared.lock();
            let before = inner
                .state
                .get("execution_status")
                .and_then(|s| serde_json::from_value(s.clone()).ok());
            inner.run = RunTracker {
                armed: true,
                before,
                ..RunTracker::default()
            };
        }
        let started = self
            .workspace
            .http()
            .call(Method::POST, &self.path("/run"), None, RUN_CALL_TIMEOUT)
            .await;
        match started {
            Ok(_) => self.shared.lock().run.posted = true,
            Err(e) if e.status() == Some(409) => self.shared.lock().run.posted = true,
            Err(e) => {
                self.shared.lock().run.armed = false;
                return Err(e);
            }
        }
        let result = self.wait_for_run_end(&mut changes, deadline, timeout).await;
        self.shared.lock().run.armed = false;
        let status = result?;
        // Whatever the socket missed, REST has.
        self.shared.reconcile(Delivery::Recovered).await?;
        match status {
            ExecutionStatus::Error | ExecutionStatus::Stuck => Err(self.run_error(status)),
            other => Ok(other),
        }
    }

    async fn wait_for_run_end(
        &self,
        changes: &mut watch::Receiver<u64>,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<ExecutionStatus> {
        let mut next_poll = Instant::now() + POLL_INTERVAL;
        let mut rest_end_since: Option<Instant> = None;
        loop {
            {
                let inner = self.shared.lock();
                if let Some(status) = inner.run.outcome {
                    return Ok(status);
                }
                if let Some((code, reason)) = inner.fatal.clone() {
                    return Err(Error::SocketClosed { code, reason });
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("the run of conversation {}", self.shared.id),
                    after: timeout,
                });
            }
            if now >= next_poll {
                next_poll = now + POLL_INTERVAL;
                match self.rest_status().await {
                    Ok(ExecutionStatus::Running) => rest_end_since = None,
                    Ok(status @ (ExecutionStatus::Error | ExecutionStatus::Stuck)) => {
                        return Ok(status);
                    }
                    Ok(status) => {
                        let since = *rest_end_since.get_or_insert(now);
                        if now.duration_since(since) >= REST_END_GRACE {
                            return Ok(status);
                        }
                    }
                    Err(e) if e.is_transient() => {
                        tracing::debug!("polling the run status: {e}");
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(next_poll.min(deadline)) => {}
            }
        }
    }

    async fn rest_status(&self) -> Result<ExecutionStatus> {
        let info: Value = self
            .workspace
            .http()
            .json(
                Method::GET,
                &self.path(""),
                None::<&()>,
                Duration::from_secs(30),
            )
            .await?;
        info.get("execution_status")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok())
            .ok_or_else(|| Error::decode("the conversation", "no execution_status"))
    }

    fn run_error(&self, status: ExecutionStatus) -> Error {
        Error::Run(
            self.with_events(|events| RunFailure::from_events(self.shared.id, status, events)),
        )
    }

    /// Asks the agent to pause after its current step (`POST …/pause`).
    pub async fn pause(&self) -> Result<()> {
        self.post::<()>("/pause", None).await
    }

    /// Cancels the current step at once (`POST …/interrupt`).
    pub async fn interrupt(&self) -> Result<()> {
        self.post::<()>("/interrupt", None).await
    }

    /// Rejects every action waiting for confirmation (`respond_to_confirmation` with
    /// `accept: false`). To accept them, call [`run`](Self::run).
    pub async fn reject_pending_actions(&self, reason: &str) -> Result<()> {
        self.respond_to_confirmation(false, reason).await
    }

    /// Answers pending actions (`POST …/events/respond_to_confirmation`).
    pub async fn respond_to_confirmation(&self, accept: bool, reason: &str) -> Result<()> {
        let request = ConfirmationResponseRequest {
            accept,
            reason: reason.to_owned(),
        };
        self.post("/events/respond_to_confirmation", Some(&request))
            .await
    }

    /// Asks the agent's LLM a side question about the conversation so far
    /// (`POST …/ask_agent`); nothing is recorded in the conversation.
    pub async fn ask_agent(&self, question: impl Into<String>) -> Result<String> {
        self.check_open()?;
        let body = oh_protocol::api::AskAgentRequest {
            question: question.into(),
        };
        let answer: oh_protocol::api::AskAgentResponse = self
            .workspace
            .http()
            .json(
                Method::POST,
                &self.path("/ask_agent"),
                Some(&body),
                self.timeout(),
            )
            .await?;
        Ok(answer.response)
    }

    /// Changes the confirmation policy.
    pub async fn set_confirmation_policy(&self, policy: ConfirmationPolicy) -> Result<()> {
        self.post(
            "/confirmation_policy",
            Some(&SetConfirmationPolicyRequest { policy }),
        )
        .await
    }

    /// Adds or replaces secrets (`POST …/secrets`): values (`String`) or lookups the agent
    /// server resolves itself ([`LookupSecret`](oh_protocol::LookupSecret)); values never
    /// appear in REST answers.
    pub async fn update_secrets<V: Into<SecretSource>>(
        &self,
        secrets: impl IntoIterator<Item = (String, V)>,
    ) -> Result<()> {
        let secrets = secrets
            .into_iter()
            .map(|(name, value)| (name, value.into()))
            .collect();
        self.post("/secrets", Some(&UpdateSecretsRequest { secrets }))
            .await
    }

    /// Sets the title (`PATCH /api/conversations/{id}`).
    pub async fn set_title(&self, title: impl Into<String>) -> Result<()> {
        self.check_open()?;
        let request = UpdateConversationRequest {
            title: Some(title.into()),
            ..UpdateConversationRequest::default()
        };
        let _: Value = self
            .workspace
            .http()
            .json(
                Method::PATCH,
                &self.path(""),
                Some(&request),
                self.timeout(),
            )
            .await?;
        Ok(())
    }

    /// The conversation as the server shows it now (`GET /api/conversations/{id}`).
    pub async fn info(&self) -> Result<ConversationInfo> {
        get_info(self.workspace.http(), self.shared.id, self.timeout()).await
    }

    /// The execution status: from the socket's state cache, else from REST.
    pub async fn status(&self) -> Result<ExecutionStatus> {
        let cached = self
            .shared
            .lock()
            .state
            .get("execution_status")
            .cloned()
            .and_then(|s| serde_json::from_value(s).ok());
        match cached {
            Some(status) => Ok(status),
            None => self.rest_status().await,
        }
    }

    /// Usage and cost per LLM: from the socket's state cache, else from REST.
    pub async fn stats(&self) -> Result<ConversationStats> {
        let cached = self.shared.lock().state.get("stats").cloned();
        if let Some(stats) = cached.and_then(|s| serde_json::from_value(s).ok()) {
            return Ok(stats);
        }
        Ok(self.info().await?.stats)
    }

    /// A field of the cached conversation state (the last `full_state` plus later updates).
    pub fn cached_state(&self, key: &str) -> Option<Value> {
        self.shared.lock().state.get(key).cloned()
    }

    async fn stop_socket(&self) {
        self.closing.send_replace(true);
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
        {
            tracing::debug!(conversation = %self.shared.id, "the event socket did not stop in 5 s");
        }
    }

    /// Stops the event socket and, unless the conversation was built with
    /// `delete_on_close(false)`, deletes it on the server (errors are logged, not returned).
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.stop_socket().await;
        if self.delete_on_close {
            let deleted = self
                .workspace
                .http()
                .call(
                    Method::DELETE,
                    &self.path(""),
                    None,
                    Duration::from_secs(30),
                )
                .await;
            if let Err(e) = deleted {
                tracing::warn!(conversation = %self.shared.id, "deleting on close: {e}");
            }
        }
    }

    /// Deletes the conversation on the server now.
    pub async fn delete(&self) -> Result<()> {
        self.stop_socket().await;
        self.closed.store(true, Ordering::SeqCst);
        let _: Success = self
            .workspace
            .http()
            .json(
                Method::DELETE,
                &self.path(""),
                None::<&()>,
                Duration::from_secs(30),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionStatus::*;

    fn armed(before: Option<ExecutionStatus>) -> RunTracker {
        RunTracker {
            armed: true,
            before,
            ..RunTracker::default()
        }
    }

    #[test]
    fn a_new_conversation_without_an_agent_is_a_builder_error() {
        let workspace = RemoteWorkspace::new("http://127.0.0.1:9", "/w").unwrap();
        let error = RemoteConversation::builder(&workspace)
            .create_request()
            .unwrap_err();
        assert!(
            matches!(
                &error,
                crate::Error::Builder {
                    builder: "RemoteConversationBuilder",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(!error.is_transient());
    }

    #[test]
    fn a_post_run_snapshot_ends_a_run_that_was_seen_running() {
        let mut run = armed(Some(Idle));
        run.posted = true;
        run.observe(Running, Delivery::Live, false);
        assert_eq!(run.outcome, None);
        run.observe(Finished, Delivery::Live, true);
        assert_eq!(run.outcome, Some(Finished));
    }

    #[test]
    fn finished_field_updates_wait_for_the_snapshot_but_failures_do_not() {
        let mut run = armed(Some(Idle));
        run.observe(Running, Delivery::Live, false);
        run.observe(Finished, Delivery::Live, false);
        assert_eq!(run.outcome, None, "a stop hook may still revert `finished`");
        let mut failing = armed(Some(Idle));
        failing.observe(Error, Delivery::Recovered, false);
        assert_eq!(failing.outcome, Some(Error));
        let mut stuck = armed(None);
        stuck.observe(Stuck, Delivery::Live, false);
        assert_eq!(stuck.outcome, Some(Stuck));
    }

    #[test]
    fn stale_snapshots_do_not_end_a_new_run() {
        // A pause's snapshot still in flight when the next run starts.
        let mut run = armed(Some(Paused));
        run.observe(Paused, Delivery::Live, true);
        assert_eq!(run.outcome, None, "arrived before POST /run returned");
        run.posted = true;
        run.observe(Paused, Delivery::Live, true);
        assert_eq!(run.outcome, None, "same status as before the run");
        // A snapshot with another status after the run was started ends it.
        run.observe(Finished, Delivery::Live, true);
        assert_eq!(run.outcome, Some(Finished));
    }

    #[test]
    fn a_reconnect_snapshot_ends_the_run_only_once_it_was_seen_running() {
        let mut run = armed(Some(Idle));
        run.posted = true;
        run.observe(Finished, Delivery::Initial, true);
        assert_eq!(run.outcome, None);
        run.observe(Running, Delivery::Recovered, false);
        run.observe(Finished, Delivery::Initial, true);
        assert_eq!(run.outcome, Some(Finished));
    }

    #[test]
    fn a_disarmed_tracker_ignores_everything() {
        let mut run = RunTracker::default();
        run.observe(Error, Delivery::Live, false);
        run.observe(Finished, Delivery::Live, true);
        assert_eq!(run.outcome, None);
    }

    #[test]
    fn events_are_kept_sorted_by_timestamp() {
        let event = |id: &str, ts: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "kind": "PauseEvent", "id": id, "timestamp": ts, "source": "user"
            }))
            .unwrap()
        };
        let mut events = Vec::new();
        insert_sorted(&mut events, event("b", "2026-01-01T00:00:02.000000"));
        insert_sorted(&mut events, event("a", "2026-01-01T00:00:01.000000"));
        insert_sorted(&mut events, event("c", "2026-01-01T00:00:02.000000"));
        let ids: Vec<&str> = events.iter().filter_map(Event::id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
