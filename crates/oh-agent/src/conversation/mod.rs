//! The conversation engine.
//!
//! A [`LocalConversation`] owns the event log and the [`ConversationState`] of one
//! conversation, the agent's [`LlmClient`] and its tools. [`LocalConversation::run`] drives
//! the agent loop: each iteration is one agent step (one LLM call and the tool calls it
//! asked for, or the execution of actions left pending), until the agent finishes, the run
//! is paused, waits for confirmation, gets stuck, or hits the iteration cap.
//!
//! # Concurrency
//!
//! The state sits behind a short-lived lock that is never held across an LLM call or a tool
//! execution, so readers and [`LocalConversation::pause`] never wait for a step. A message
//! sent mid-run waits for the current step to end (as in the reference's synchronous loop)
//! and is stored before the next one begins, so the model sees it at the next step; one that
//! arrives as the agent finishes reopens the conversation and is answered in the same run.
//! Tool results are projected right after their calls even when a user message was stored
//! between them (a message sent while actions wait for confirmation). One run at a time: a
//! second concurrent [`LocalConversation::run`] fails with [`Error::AlreadyRunning`].
//!
//! # Events
//!
//! Every event is stamped with the current HEAD as `parent_id`, persisted (when the
//! conversation has a persistence directory), then delivered to the callbacks in order on a
//! delivery task. [`LocalConversation::run`] returns only after every event of the run has been
//! delivered.

mod classify;
pub mod condenser;
mod parse;
mod step;
pub mod store;
pub mod stuck;
mod tree;
pub mod view;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use oh_protocol::agent::{AgentBase, LookupSecret, SecretSource, StaticSecret};
use oh_protocol::event::{
    ConversationErrorEvent, ConversationStateUpdateEvent, PauseEvent, RejectionSource,
};
use oh_protocol::state::{ConversationStats, SecretRegistry};
use oh_protocol::{
    Agent, Callback, ConfirmationPolicy, ConversationState, Event, EventBase, ExecutionStatus,
    Message, MessageEvent, Role, SecretString, SecurityAnalyzer, Source, UserRejectObservation,
    WorkspaceSpec,
};
use tokio::sync::{mpsc, oneshot};

use crate::llm::{LlmClient, LlmError};
use crate::secrets::Secrets;
use crate::skills::AgentContext;
use crate::tools::{SharedTool, ToolContext, ToolError, ToolOptions};

pub use condenser::Condenser;
pub use parse::MALFORMED_MARKER;
pub use store::{Store, StoreError};
pub use stuck::Thresholds as StuckThresholds;

/// A conversation failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another `run()` of this conversation is in progress.
    #[error("conversation {id} is already running")]
    AlreadyRunning {
        /// The conversation.
        id: uuid::Uuid,
    },
    /// Only user messages can be sent.
    #[error("only messages with role \"user\" can be sent, got {role:?}")]
    NotAUserMessage {
        /// The role given.
        role: Role,
    },
    /// The run stopped on an error; the conversation's status is `error` and a
    /// `ConversationErrorEvent` describes it.
    #[error(
        "conversation {} run failed: {}: {}",
        .failure.conversation_id,
        .failure.code.as_deref().unwrap_or_default(),
        .failure.detail
    )]
    Run {
        /// What failed: status `error`, the `ConversationErrorEvent`'s code and detail. The
        /// same type as a remote conversation's failed run.
        failure: oh_protocol::RunFailure,
        /// Where the conversation is persisted.
        persistence_dir: Option<PathBuf>,
    },
    /// The LLM configuration cannot work.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// A tool could not be set up.
    #[error("tool setup failed: {0}")]
    Tool(#[from] ToolError),
    /// The agent asks for something this implementation does not have.
    #[error("unsupported agent configuration: {0}")]
    Unsupported(String),
    /// The stored conversation does not match the agent given to resume it.
    #[error("cannot resume conversation: {0}")]
    Resume(String),
    /// Reading or writing the conversation's files failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The history could not be condensed.
    #[error("condensation failed: {0}")]
    Condensation(String),
    /// No tokio runtime is available.
    #[error("a LocalConversation must be created inside a tokio runtime")]
    NoRuntime,
    /// The LLM answered a side question ([`LocalConversation::ask_agent`]) without text.
    #[error("the LLM answered the question without any text")]
    NoAnswer,
    /// [`LocalConversation::navigate_to`] named an event that is not in the log.
    #[error("Unknown event_id: {0}")]
    UnknownEvent(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How to create or resume a conversation.
#[derive(Clone)]
#[non_exhaustive]
pub struct ConversationConfig {
    /// The agent (LLM, tools, prompt settings).
    pub agent: Agent,
    /// The workspace directory (created if missing).
    pub workspace: PathBuf,
    /// Base directory for persistence; the conversation lives in `<dir>/<id hex>`. `None`
    /// keeps everything in memory.
    pub persistence_dir: Option<PathBuf>,
    /// Resume this conversation if it is stored, else create it with this id.
    pub id: Option<uuid::Uuid>,
    /// Steps per `run()` (default 500).
    pub max_iterations: u64,
    /// Stop runs that loop (default on).
    pub stuck_detection: bool,
    /// Stuck detection thresholds.
    pub stuck_thresholds: StuckThresholds,
    /// Secrets by name, injected into the terminal and masked in its output.
    pub secrets: BTreeMap<String, String>,
    /// Secrets fetched with `GET url` (and headers) whenever a terminal command mentions
    /// them; fetched values are injected and masked like [`ConversationConfig::secrets`].
    pub lookup_secrets: BTreeMap<String, LookupSecret>,
    /// Free-form tags stored with the state.
    pub tags: BTreeMap<String, String>,
    /// Stop a run once the conversation's total LLM cost reaches this many USD.
    pub max_budget_per_run: Option<f64>,
    /// Emit a `ConversationStateUpdateEvent` for every state-field change (server mode).
    pub emit_state_updates: bool,
    /// Tool tuning (terminal timeouts).
    pub tool_options: ToolOptions,
    /// Event listeners.
    pub callbacks: Vec<Callback>,
    /// Where the user's skills are, for an agent context with `load_user_skills` (see
    /// [`crate::skills::user_skill_dirs`]); none by default.
    pub user_skill_dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for ConversationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationConfig")
            .field("workspace", &self.workspace)
            .field("persistence_dir", &self.persistence_dir)
            .field("id", &self.id)
            .field("max_iterations", &self.max_iterations)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .field(
                "lookup_secrets",
                &self.lookup_secrets.keys().collect::<Vec<_>>(),
            )
            .field("callbacks", &self.callbacks.len())
            .finish_non_exhaustive()
    }
}

impl ConversationConfig {
    /// Defaults for `agent` working in `workspace`.
    pub fn new(agent: Agent, workspace: impl Into<PathBuf>) -> Self {
        Self {
            agent,
            workspace: workspace.into(),
            persistence_dir: None,
            id: None,
            max_iterations: 500,
            stuck_detection: true,
            stuck_thresholds: StuckThresholds::default(),
            secrets: BTreeMap::new(),
            lookup_secrets: BTreeMap::new(),
            tags: BTreeMap::new(),
            max_budget_per_run: None,
            emit_state_updates: false,
            tool_options: ToolOptions::default(),
            callbacks: Vec::new(),
            user_skill_dirs: Vec::new(),
        }
    }

    /// Searches `dirs` for the user's skills when the agent context asks for them.
    pub fn user_skill_dirs(mut self, dirs: Vec<PathBuf>) -> Self {
        self.user_skill_dirs = dirs;
        self
    }

    /// Persists under `dir`.
    pub fn persistence_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.persistence_dir = Some(dir.into());
        self
    }

    /// Uses (or resumes) this conversation id.
    pub fn id(mut self, id: uuid::Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// Sets the per-run step cap.
    pub fn max_iterations(mut self, n: u64) -> Self {
        self.max_iterations = n;
        self
    }

    /// Adds a secret.
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Adds a secret fetched with `GET lookup.url` when a command mentions it.
    pub fn lookup_secret(mut self, name: impl Into<String>, lookup: LookupSecret) -> Self {
        self.lookup_secrets.insert(name.into(), lookup);
        self
    }

    /// Adds an event listener.
    pub fn callback(mut self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(callback));
        self
    }

    /// Emits state-update events (as the agent server does).
    pub fn emit_state_updates(mut self, on: bool) -> Self {
        self.emit_state_updates = on;
        self
    }

    /// Sets tool options.
    pub fn tool_options(mut self, options: ToolOptions) -> Self {
        self.tool_options = options;
        self
    }
}

/// Messages to the delivery task.
enum Delivery {
    Event(Box<Event>),
    Flush(oneshot::Sender<()>),
}

/// Mutable state, behind the lock.
struct Core {
    state: ConversationState,
    events: Vec<Event>,
    store: Option<Store>,
    /// Error events already answered with a stuck nudge.
    nudged: HashSet<String>,
    /// User messages stored so far (to spot one that arrived during a step).
    user_messages: usize,
    outbox: mpsc::UnboundedSender<Delivery>,
    emit_state_updates: bool,
    /// The active branch is not the whole log (HEAD was moved by `navigate_to`, or a stored
    /// conversation was loaded that way): readers walk the tree instead of taking the log.
    branched: bool,
}

struct Inner {
    id: uuid::Uuid,
    core: Mutex<Core>,
    llm: LlmClient,
    /// Condenses the history when it grows too long (spec §7).
    condenser: Option<Condenser>,
    agent: Agent,
    /// The agent's `agent_context` (skills resolved); replaced when a plugin adds skills.
    context: Mutex<Option<Arc<AgentContext>>>,
    /// Where the user's skills are (to resolve a replaced `agent_context`).
    user_skill_dirs: Vec<PathBuf>,
    workspace: PathBuf,
    conversation_dir: Option<PathBuf>,
    secrets: Secrets,
    tool_options: ToolOptions,
    tools: tokio::sync::OnceCell<Vec<SharedTool>>,
    run_lock: tokio::sync::Mutex<()>,
    /// Held for the whole of each agent step; `send_message` waits on it (FIFO) so a message
    /// lands between steps, never inside one.
    step_gate: tokio::sync::Mutex<()>,
    /// Bumped by every `interrupt()`; a step compares it with the value it started with.
    interrupted: tokio::sync::watch::Sender<u64>,
    stuck_detection: bool,
    stuck_thresholds: StuckThresholds,
    max_budget_per_run: Option<f64>,
    callbacks: Arc<Mutex<Vec<Callback>>>,
}

/// A conversation running its agent in this process.
#[derive(Clone)]
pub struct LocalConversation {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalConversation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConversation")
            .field("id", &self.inner.id)
            .field("workspace", &self.inner.workspace)
            .finish_non_exhaustive()
    }
}

/// Current time as an event timestamp (naive, UTC wall clock, microseconds). Everything that
/// stamps events of a conversation uses this, so their timestamps sort together.
pub fn now_timestamp() -> String {
    oh_protocol::time::naive_timestamp(unix_micros(), 0)
}

/// Current Unix time in microseconds.
pub fn unix_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

pub(crate) fn new_base(source: Source) -> EventBase {
    EventBase::new(source, now_timestamp())
}

/// Stored agent with secrets masked, as `base_state.json` holds it.
fn stored_agent(agent: &Agent) -> AgentBase {
    let mut agent = agent.clone();
    if agent.llm.api_key.is_some() {
        agent.llm.api_key = Some(SecretString::new(SecretString::MASK));
    }
    if let Some(key) = agent
        .condenser
        .as_mut()
        .and_then(|c| c.get_mut("llm"))
        .and_then(|llm| llm.get_mut("api_key"))
        .filter(|key| !key.is_null())
    {
        *key = serde_json::Value::String(SecretString::MASK.to_owned());
    }
    AgentBase::Agent(Box::new(agent))
}

impl LocalConversation {
    /// Creates a conversation, or resumes it when `config.id` names one stored under
    /// `config.persistence_dir`. Must be called inside a tokio runtime.
    pub fn new(config: ConversationConfig) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let llm = LlmClient::new(config.agent.llm.clone())?;
        let condenser = Condenser::from_agent(&config.agent)?;
        std::fs::create_dir_all(&config.workspace).map_err(|source| StoreError::Io {
            action: "creating workspace",
            path: config.workspace.clone(),
            source,
        })?;
        let id = config.id.unwrap_or_else(uuid::Uuid::new_v4);
        let context = agent_context(&config).map(Arc::new);
        let conversation_dir = config
            .persistence_dir
            .as_ref()
            .map(|base| base.join(id.simple().to_string()));

        let secrets = Secrets::new();
        for (name, value) in &config.secrets {
            secrets.set(name.clone(), value.clone(), None);
        }
        for (name, lookup) in &config.lookup_secrets {
            secrets.set_lookup(name.clone(), lookup.clone());
        }

        let (tx, rx) = mpsc::unbounded_channel();
        let callbacks = Arc::new(Mutex::new(config.callbacks.clone()));
        runtime.spawn(deliver(rx, Arc::clone(&callbacks)));

        let (state, events, store) = match &conversation_dir {
            Some(dir) if Store::exists(dir) => {
                let mut store = Store::open(dir)?;
                let mut state = store.load_state()?;
                check_resumable(&state, &config.agent)?;
                let events = store.load_events()?;
                state.agent = stored_agent(&config.agent);
                state.workspace = WorkspaceSpec::local(config.workspace.to_string_lossy());
                state.max_iterations = config.max_iterations;
                restore_secrets(&state.secret_registry, &secrets);
                if let Some(metrics) = state.stats.usage_to_metrics.get(&config.agent.llm.usage_id)
                {
                    llm.restore_metrics(metrics.clone());
                }
                if let Some(condenser) = &condenser
                    && let Some(metrics) =
                        state.stats.usage_to_metrics.get(condenser.llm().usage_id())
                {
                    condenser.llm().restore_metrics(metrics.clone());
                }
                (state, events, Some(store))
            }
            Some(dir) => {
                let store = Store::open(dir)?;
                (fresh_state(id, &config, dir), Vec::new(), Some(store))
            }
            None => (fresh_state(id, &config, Path::new("")), Vec::new(), None),
        };
        let mut state = state;
        for name in config.secrets.keys() {
            state.secret_registry.secret_sources.insert(
                name.clone(),
                SecretSource::Static(StaticSecret::new(SecretString::MASK)),
            );
        }
        for (name, lookup) in &config.lookup_secrets {
            state
                .secret_registry
                .secret_sources
                .insert(name.clone(), stored_lookup(lookup));
        }
        if conversation_dir.is_none() {
            state.persistence_dir = None;
        }
        let user_messages = events
            .iter()
            .filter(|e| matches!(e, Event::Message(m) if m.base.source == Source::User))
            .count();
        let branched = !tree::is_linear(&events, &state);
        let core = Core {
            state,
            events,
            store,
            nudged: HashSet::new(),
            user_messages,
            outbox: tx,
            emit_state_updates: config.emit_state_updates,
            branched,
        };
        let mut core = core;
        if let Some(store) = &core.store {
            store.save_state(&core.state)?;
        }
        if core.state.execution_status == ExecutionStatus::Running {
            recover_interrupted_run(&mut core)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                core: Mutex::new(core),
                llm,
                condenser,
                context: Mutex::new(context),
                user_skill_dirs: config.user_skill_dirs.clone(),
                agent: config.agent,
                workspace: config.workspace,
                conversation_dir,
                secrets,
                tool_options: config.tool_options,
                tools: tokio::sync::OnceCell::new(),
                run_lock: tokio::sync::Mutex::new(()),
                step_gate: tokio::sync::Mutex::new(()),
                interrupted: tokio::sync::watch::Sender::new(0),
                stuck_detection: config.stuck_detection,
                stuck_thresholds: config.stuck_thresholds,
                max_budget_per_run: config.max_budget_per_run,
                callbacks,
            }),
        })
    }

    /// The conversation id.
    pub fn id(&self) -> uuid::Uuid {
        self.inner.id
    }

    /// The directory the conversation is persisted in, if any.
    pub fn conversation_dir(&self) -> Option<&Path> {
        self.inner.conversation_dir.as_deref()
    }

    /// The current execution status.
    pub fn status(&self) -> ExecutionStatus {
        self.inner.lock().state.execution_status
    }

    /// A copy of the state (without events).
    pub fn state(&self) -> ConversationState {
        self.inner.lock().state.clone()
    }

    /// The events of the active branch (from the root to HEAD), handed to `read`. Equal to
    /// the whole log until [`LocalConversation::navigate_to`] moves HEAD.
    pub fn with_active_branch<R>(&self, read: impl FnOnce(&[Event]) -> R) -> R {
        read(&self.inner.lock().active_branch())
    }

    /// Moves HEAD to the event `event_id` (or to an empty tree with `None`): the agent's next
    /// step sees only the events from the root to that event, and the next event appended
    /// becomes its child. Nothing is removed from the log and no event is recorded; the new
    /// HEAD is saved with the state. A step in progress ends first. Fails with
    /// [`Error::UnknownEvent`] when the log has no such event.
    pub async fn navigate_to(&self, event_id: Option<&str>) -> Result<()> {
        let _between_steps = self.inner.step_gate.lock().await;
        let mut core = self.inner.lock();
        if let Some(id) = event_id
            && !core.events.iter().any(|e| e.id() == Some(id))
        {
            return Err(Error::UnknownEvent(id.to_owned()));
        }
        core.state.leaf_event_id = event_id.map(str::to_owned);
        core.state.head_is_empty = event_id.is_none();
        core.branched = true;
        core.save()?;
        Ok(())
    }

    /// A copy of the event log.
    pub fn events(&self) -> Vec<Event> {
        self.inner.lock().events.clone()
    }

    /// Runs `read` on the event log without copying it (the conversation is locked meanwhile,
    /// so keep `read` short).
    pub fn with_events<R>(&self, read: impl FnOnce(&[Event]) -> R) -> R {
        read(&self.inner.lock().events)
    }

    /// Number of events in the log.
    pub fn event_count(&self) -> usize {
        self.inner.lock().events.len()
    }

    /// The agent's LLM client (metrics, configuration).
    pub fn llm(&self) -> &LlmClient {
        &self.inner.llm
    }

    /// Adds an event listener for events emitted from now on.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) {
        self.inner
            .callbacks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(callback));
    }

    /// Appends a user message. A conversation that had finished (or was stuck) goes back to
    /// `idle`; a running one picks the message up at its next step.
    pub async fn send_message(&self, message: Message) -> Result<()> {
        if message.role != Role::User {
            return Err(Error::NotAUserMessage { role: message.role });
        }
        self.inner.ensure_ready().await?;
        let _between_steps = self.inner.step_gate.lock().await;
        let mut core = self.inner.lock();
        // Skills whose keywords the message mentions, once per conversation; the state's
        // list changes in place (no state-update event), as in the reference.
        let (activated_skills, extended_content) = match self.inner.context().as_deref() {
            Some(context) => {
                let text = message
                    .content
                    .iter()
                    .filter_map(|c| match c {
                        oh_protocol::Content::Text(t) => Some(t.text.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                match context.user_message_suffix(&text, &core.state.activated_knowledge_skills) {
                    Some((suffix, names)) => {
                        core.state
                            .activated_knowledge_skills
                            .extend(names.iter().cloned());
                        (names, vec![oh_protocol::TextContent::new(suffix)])
                    }
                    None => (Vec::new(), Vec::new()),
                }
            }
            None => (Vec::new(), Vec::new()),
        };
        let event = MessageEvent {
            base: new_base(Source::User),
            llm_message: message,
            llm_response_id: None,
            activated_skills,
            extended_content,
            sender: None,
            critic_result: None,
        };
        let id = event.base.id.clone();
        core.user_messages += 1;
        core.emit(Event::Message(event))?;
        core.set_field("last_user_message_id", |s| {
            s.last_user_message_id = Some(id)
        })?;
        if matches!(
            core.state.execution_status,
            ExecutionStatus::Finished | ExecutionStatus::Stuck
        ) {
            core.set_status(ExecutionStatus::Idle)?;
        }
        Ok(())
    }

    /// Sends a text message from the user.
    pub async fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.send_message(Message::user(text)).await
    }

    /// Runs the agent until it finishes, pauses, needs confirmation, gets stuck or reaches
    /// the iteration cap, and returns the status it stopped in. An error inside a step sets
    /// the status to `error`, records a `ConversationErrorEvent` and returns [`Error::Run`].
    pub async fn run(&self) -> Result<ExecutionStatus> {
        let inner = &self.inner;
        let _running = inner
            .run_lock
            .try_lock()
            .map_err(|_| Error::AlreadyRunning { id: inner.id })?;
        inner.ensure_ready().await?;
        let result = step::run_loop(inner).await;
        inner.flush().await;
        result
    }

    /// The history condenser, if the agent configures one.
    pub fn condenser(&self) -> Option<&Condenser> {
        self.inner.condenser.as_ref()
    }

    /// Asks for a condensation: appends a `CondensationRequest`. When no run is in progress
    /// the condensation happens now (one call to the condenser's LLM, recording a
    /// `Condensation`); a running loop condenses at its next step. Fails with
    /// [`Error::Unsupported`] when the agent has no condenser, and with
    /// [`Error::Condensation`] or [`Error::Llm`] when the condensation fails.
    pub async fn condense(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.condenser.is_none() {
            return Err(Error::Unsupported(
                "condense() needs a condenser in the agent configuration".into(),
            ));
        }
        let running = inner.run_lock.try_lock();
        inner.ensure_ready().await?;
        {
            let _between_steps = inner.step_gate.lock().await;
            inner.lock().emit(Event::CondensationRequest(
                oh_protocol::event::CondensationRequest {
                    base: new_base(Source::Environment),
                },
            ))?;
            if running.is_ok() {
                step::condense_if_due(inner).await?;
            }
        }
        inner.flush().await;
        Ok(())
    }

    /// Asks the agent's LLM a side question about the conversation so far and returns its
    /// text answer. Nothing is recorded: no event, no status change, no turn the agent
    /// remembers; it may be called while a run is in progress. The LLM sees the history as
    /// the next step would (with the tools, so that their calls in it make sense) followed
    /// by the question, and is told to answer without calling a tool.
    pub async fn ask_agent(&self, question: &str) -> Result<String> {
        let inner = &self.inner;
        let tools = inner.ensure_ready().await?;
        let mut messages = {
            let core = inner.lock();
            let render = |o: &oh_protocol::event::ObservationEvent| {
                crate::tools::observation_content(o, inner.conversation_dir.as_deref())
            };
            view::events_to_messages(&core.active_branch(), &render)
        };
        messages.push(Message::user(format!(
            "Answer a question about the work in this conversation so far.\n\n\
             Question: {question}\n\n\
             Reply with the answer as text only: do not call any tool."
        )));
        let schemas = step::tool_schemas(tools);
        let conversation_id = inner.id.to_string();
        let response = inner
            .llm
            .complete(crate::llm::CompletionRequest {
                messages: &messages,
                tools: &schemas,
                conversation_id: Some(&conversation_id),
            })
            .await?;
        response
            .message
            .content
            .iter()
            .find_map(|c| c.as_text().map(str::to_owned))
            .ok_or(Error::NoAnswer)
    }

    /// Pauses: from `idle` or `running` the status becomes `paused` and a `PauseEvent` is
    /// recorded; a running loop stops after its current step. Otherwise nothing happens.
    pub fn pause(&self) -> Result<()> {
        let mut core = self.inner.lock();
        if matches!(
            core.state.execution_status,
            ExecutionStatus::Idle | ExecutionStatus::Running
        ) {
            core.emit(Event::Pause(PauseEvent {
                base: new_base(Source::User),
            }))?;
            core.set_status(ExecutionStatus::Paused)?;
        }
        Ok(())
    }

    /// Interrupts a run: unlike [`LocalConversation::pause`] it does not wait for the step.
    /// An in-flight LLM call is abandoned (its answer is never recorded), running tools get
    /// Ctrl-C, calls of the batch that have not started get an error result, an
    /// `InterruptEvent` is recorded and the status becomes `paused`. When nothing is running
    /// it is the same as `pause`.
    pub fn interrupt(&self) -> Result<()> {
        {
            let mut core = self.inner.lock();
            if core.state.execution_status != ExecutionStatus::Running {
                drop(core);
                return self.pause();
            }
            core.emit(Event::Interrupt(oh_protocol::event::InterruptEvent {
                base: new_base(Source::User),
            }))?;
            core.set_status(ExecutionStatus::Paused)?;
        }
        self.inner
            .interrupted
            .send_modify(|generation| *generation += 1);
        if let Some(tools) = self.inner.tools.get() {
            for tool in tools {
                tool.interrupt();
            }
        }
        Ok(())
    }

    /// Rejects every action waiting for confirmation: one `UserRejectObservation` each, and
    /// the status goes from `waiting_for_confirmation` to `idle`. No run is started.
    pub fn reject_pending_actions(&self, reason: &str) -> Result<()> {
        let mut core = self.inner.lock();
        let pending = step::unmatched_actions(&core.active_branch());
        for action in pending {
            core.emit(Event::UserRejectObservation(UserRejectObservation {
                base: new_base(Source::Environment),
                tool_name: action.tool_name.clone(),
                tool_call_id: action.tool_call_id.clone(),
                rejection_reason: reason.to_owned(),
                rejection_source: RejectionSource::User,
                action_id: action.base.id.clone(),
            }))?;
        }
        if core.state.execution_status == ExecutionStatus::WaitingForConfirmation {
            core.set_status(ExecutionStatus::Idle)?;
        }
        Ok(())
    }

    /// Sets the confirmation policy.
    pub fn set_confirmation_policy(&self, policy: ConfirmationPolicy) -> Result<()> {
        self.inner
            .lock()
            .set_field("confirmation_policy", |s| s.confirmation_policy = policy)
    }

    /// Sets (or removes) the security analyzer.
    pub fn set_security_analyzer(&self, analyzer: Option<SecurityAnalyzer>) -> Result<()> {
        self.inner
            .lock()
            .set_field("security_analyzer", |s| s.security_analyzer = analyzer)
    }

    /// The agent's `agent_context` as stored in the conversation's state.
    pub fn agent_context(&self) -> Option<serde_json::Value> {
        match &self.inner.lock().state.agent {
            AgentBase::Agent(agent) => agent.agent_context.clone(),
            _ => None,
        }
    }

    /// Replaces the agent's `agent_context` (e.g. with a plugin's skills added): stored in
    /// the state (a state update in server mode) and used from the next user message on;
    /// the system prompt already recorded is not rewritten.
    pub fn set_agent_context(&self, value: serde_json::Value) -> Result<()> {
        let context = build_context(
            Some(&value),
            &self.inner.user_skill_dirs,
            &self.inner.workspace,
        )
        .map(Arc::new);
        let mut core = self.inner.lock();
        core.set_field("agent", |s| {
            if let AgentBase::Agent(agent) = &mut s.agent {
                agent.agent_context = Some(value);
            }
        })?;
        *self
            .inner
            .context
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = context;
        Ok(())
    }

    /// Adds or replaces secrets.
    pub fn update_secrets(&self, secrets: BTreeMap<String, String>) -> Result<()> {
        let mut core = self.inner.lock();
        for (name, value) in &secrets {
            self.inner.secrets.set(name.clone(), value.clone(), None);
        }
        core.set_field("secret_registry", |s| {
            for name in secrets.keys() {
                s.secret_registry.secret_sources.insert(
                    name.clone(),
                    SecretSource::Static(StaticSecret::new(SecretString::MASK)),
                );
            }
        })
    }

    /// Adds or replaces secrets fetched by URL when a command mentions them.
    pub fn update_lookup_secrets(&self, lookups: BTreeMap<String, LookupSecret>) -> Result<()> {
        let mut core = self.inner.lock();
        for (name, lookup) in &lookups {
            self.inner.secrets.set_lookup(name.clone(), lookup.clone());
        }
        core.set_field("secret_registry", |s| {
            for (name, lookup) in &lookups {
                s.secret_registry
                    .secret_sources
                    .insert(name.clone(), stored_lookup(lookup));
            }
        })
    }

    /// Replaces the tags.
    pub fn set_tags(&self, tags: BTreeMap<String, String>) -> Result<()> {
        self.inner.lock().set_field("tags", |s| s.tags = tags)
    }

    /// Waits until every event emitted so far has been delivered to the callbacks.
    pub async fn flush(&self) {
        self.inner.flush().await;
    }

    /// Closes the tools (kills the shell). The conversation stays readable.
    pub async fn close(&self) {
        self.inner.flush().await;
        if let Some(tools) = self.inner.tools.get() {
            for tool in tools {
                tool.close().await;
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The agent context as it is now.
    fn context(&self) -> Option<Arc<AgentContext>> {
        self.context
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        let sent = self.lock().outbox.send(Delivery::Flush(tx)).is_ok();
        if sent {
            let _ = rx.await;
        }
    }

    fn tool_context(&self) -> ToolContext {
        ToolContext {
            working_dir: self.workspace.clone(),
            conversation_dir: self.conversation_dir.clone(),
            secrets: self.secrets.clone(),
        }
    }

    /// Builds the tools and records the system prompt, once.
    async fn ensure_ready(&self) -> Result<&[SharedTool]> {
        let tools = self
            .tools
            .get_or_try_init(|| async {
                crate::tools::build(&self.agent, &self.tool_context(), &self.tool_options).await
            })
            .await?;
        let mut core = self.lock();
        let has_prompt = core
            .events
            .iter()
            .take(3)
            .any(|e| matches!(e, Event::SystemPrompt(_)));
        if !has_prompt {
            let event = step::system_prompt_event(
                &self.agent,
                self.context().as_deref(),
                tools,
                &self.secrets,
            );
            core.emit(Event::SystemPrompt(event))?;
        }
        Ok(tools)
    }
}

impl Core {
    /// The events from the root to HEAD: the whole log while it has never branched.
    fn active_branch(&self) -> std::borrow::Cow<'_, [Event]> {
        if self.branched {
            std::borrow::Cow::Owned(tree::path_to_root(
                &self.events,
                tree::resolved_leaf(&self.events, &self.state),
            ))
        } else {
            std::borrow::Cow::Borrowed(&self.events)
        }
    }

    /// Stamps, persists and queues `event` for delivery.
    fn emit(&mut self, mut event: Event) -> Result<(), StoreError> {
        let is_update = matches!(event, Event::ConversationStateUpdate(_));
        if let Some(base) = event_base_mut(&mut event) {
            base.parent_id = match &self.state.leaf_event_id {
                Some(leaf) => Some(leaf.clone()),
                // An empty HEAD over a non-empty log starts a new root, marked as such.
                None if !self.events.is_empty() => Some(tree::ROOT_PARENT_ID.to_owned()),
                None => None,
            };
        }
        if let Some(store) = &mut self.store {
            store.append(&event)?;
        }
        if !is_update && let Some(id) = event.id() {
            self.state.leaf_event_id = Some(id.to_owned());
            self.state.head_is_empty = false;
        }
        self.events.push(event.clone());
        self.save()?;
        let _ = self.outbox.send(Delivery::Event(Box::new(event)));
        Ok(())
    }

    fn save(&self) -> Result<(), StoreError> {
        match &self.store {
            Some(store) => store.save_state(&self.state),
            None => Ok(()),
        }
    }

    /// Changes one public state field and records it (and a state-update event in server
    /// mode).
    fn set_field(&mut self, key: &str, change: impl FnOnce(&mut ConversationState)) -> Result<()> {
        change(&mut self.state);
        self.save()?;
        if self.emit_state_updates {
            let value = if key == "stats" {
                // Like the reference's server: accumulated figures only, nulls kept.
                let snapshot = oh_protocol::state::ConversationStatsSnapshot {
                    usage_to_metrics: self
                        .state
                        .stats
                        .usage_to_metrics
                        .iter()
                        .map(|(id, m)| (id.clone(), m.snapshot()))
                        .collect(),
                };
                serde_json::to_value(snapshot).unwrap_or_default()
            } else {
                let full = oh_protocol::wire::to_compact_value(&self.state).unwrap_or_default();
                full.get(key).cloned().unwrap_or(serde_json::Value::Null)
            };
            self.emit(Event::ConversationStateUpdate(
                ConversationStateUpdateEvent {
                    base: new_base(Source::Environment),
                    key: key.to_owned(),
                    value,
                },
            ))?;
        }
        Ok(())
    }

    fn set_status(&mut self, status: ExecutionStatus) -> Result<()> {
        if self.state.execution_status == status {
            return Ok(());
        }
        self.set_field("execution_status", |s| s.execution_status = status)
    }

    fn conversation_error(&mut self, code: &str, detail: &str) -> Result<()> {
        self.emit(Event::ConversationError(ConversationErrorEvent {
            base: new_base(Source::Environment),
            code: code.to_owned(),
            detail: detail.to_owned(),
            classification: Some(classify::conversation_error(code, detail)),
        }))?;
        Ok(())
    }

    fn update_stats(&mut self, usage_id: &str, metrics: oh_protocol::Metrics) -> Result<()> {
        self.set_field("stats", |s| {
            s.stats
                .usage_to_metrics
                .insert(usage_id.to_owned(), metrics);
        })
    }
}

fn event_base_mut(event: &mut Event) -> Option<&mut EventBase> {
    Some(match event {
        Event::SystemPrompt(e) => &mut e.base,
        Event::Message(e) => &mut e.base,
        Event::Action(e) => &mut e.base,
        Event::Observation(e) => &mut e.base,
        Event::UserRejectObservation(e) => &mut e.base,
        Event::AgentError(e) => &mut e.base,
        Event::ConversationStateUpdate(e) => &mut e.base,
        Event::ConversationError(e) => &mut e.base,
        Event::Pause(e) => &mut e.base,
        Event::Interrupt(e) => &mut e.base,
        Event::CondensationRequest(e) => &mut e.base,
        Event::Condensation(e) => &mut e.base,
        _ => return None,
    })
}

async fn deliver(mut rx: mpsc::UnboundedReceiver<Delivery>, callbacks: Arc<Mutex<Vec<Callback>>>) {
    while let Some(item) = rx.recv().await {
        match item {
            Delivery::Event(event) => {
                let listeners: Vec<Callback> = callbacks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                for listener in listeners {
                    let call = std::panic::AssertUnwindSafe(|| listener(&event));
                    if std::panic::catch_unwind(call).is_err() {
                        tracing::error!(kind = event.kind(), "event callback panicked");
                    }
                }
            }
            Delivery::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

fn fresh_state(id: uuid::Uuid, config: &ConversationConfig, dir: &Path) -> ConversationState {
    ConversationState {
        id,
        agent: stored_agent(&config.agent),
        workspace: WorkspaceSpec::local(config.workspace.to_string_lossy()),
        persistence_dir: Some(dir.to_string_lossy().into_owned()),
        max_iterations: config.max_iterations,
        stuck_detection: config.stuck_detection,
        execution_status: ExecutionStatus::Idle,
        confirmation_policy: ConfirmationPolicy::default(),
        security_analyzer: None,
        activated_knowledge_skills: Vec::new(),
        activated_path_rules: Vec::new(),
        invoked_skills: Vec::new(),
        blocked_actions: BTreeMap::new(),
        blocked_messages: BTreeMap::new(),
        last_user_message_id: None,
        leaf_event_id: None,
        head_is_empty: false,
        stats: ConversationStats::default(),
        secret_registry: SecretRegistry::default(),
        tags: config.tags.clone(),
        agent_state: serde_json::Map::new(),
        hook_config: None,
    }
}

/// Text of the error recorded for a tool call cut off by a crash or restart.
pub const INTERRUPTED_BY_RESTART: &str = "A restart occurred while this tool was in progress, so \
    its result is unknown. Check the state of the workspace before retrying.";

/// A stored conversation still marked `running` was cut off (the process died mid-run).
/// Every action without a result gets an error result, and the status becomes `error`; a new
/// `run()` continues from there.
fn recover_interrupted_run(core: &mut Core) -> Result<()> {
    for action in step::unmatched_actions(&core.active_branch()) {
        core.emit(Event::AgentError(oh_protocol::AgentErrorEvent {
            base: new_base(Source::Environment),
            tool_name: action.tool_name.clone(),
            tool_call_id: action.tool_call_id.clone(),
            error: INTERRUPTED_BY_RESTART.to_owned(),
            classification: Some(classify::internal()),
        }))?;
    }
    core.set_status(ExecutionStatus::Error)
}

/// Result text of a call that an interrupt stopped before it started.
pub const CANCELLED_BY_INTERRUPT: &str = "Tool call cancelled by interrupt.";

/// Stored static secrets are masked without a cipher; only unmasked values come back, and
/// only lookups none of whose headers is masked.
fn restore_secrets(registry: &SecretRegistry, secrets: &Secrets) {
    for (name, source) in &registry.secret_sources {
        if secrets.contains(name) {
            continue;
        }
        match source {
            SecretSource::Static(s) => {
                if let Some(value) = &s.value
                    && !value.is_placeholder()
                {
                    secrets.set(
                        name.clone(),
                        value.expose().to_owned(),
                        s.description.clone(),
                    );
                }
            }
            SecretSource::Lookup(l) if l.headers.values().all(|v| !v.is_placeholder()) => {
                secrets.set_lookup(name.clone(), l.clone());
            }
            _ => {}
        }
    }
}

/// A lookup as the state stores it: URL and description, header values masked.
fn stored_lookup(lookup: &LookupSecret) -> SecretSource {
    let mut stored = lookup.clone();
    for value in stored.headers.values_mut() {
        *value = SecretString::new(SecretString::MASK);
    }
    SecretSource::Lookup(stored)
}

/// The supplied agent may add tools to a stored conversation but not remove any.
fn check_resumable(state: &ConversationState, agent: &Agent) -> Result<()> {
    let AgentBase::Agent(stored) = &state.agent else {
        return Err(Error::Resume(
            "the stored agent is not a standard Agent".into(),
        ));
    };
    let supplied: HashSet<&str> = agent.tools.iter().map(|t| t.name.as_str()).collect();
    let missing: Vec<&str> = stored
        .tools
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| !supplied.contains(n))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Resume(format!(
            "the agent lacks tools the conversation used: {}",
            missing.join(", ")
        )))
    }
}

/// The agent's context: its `agent_context` with user skills resolved and, when it asks for
/// them, the workspace's project skills (which win over explicit skills of the same name).
fn agent_context(config: &ConversationConfig) -> Option<AgentContext> {
    build_context(
        config.agent.agent_context.as_ref(),
        &config.user_skill_dirs,
        &config.workspace,
    )
}

fn build_context(
    value: Option<&serde_json::Value>,
    user_skill_dirs: &[PathBuf],
    workspace: &Path,
) -> Option<AgentContext> {
    let value = value.filter(|v| v.is_object())?;
    let mut context = AgentContext::from_json(value, user_skill_dirs);
    if context.load_project_skills {
        context.add_project_skills(crate::skills::load_project_skills(workspace));
    }
    Some(context)
}
