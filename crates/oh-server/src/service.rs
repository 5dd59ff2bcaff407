//! The conversation catalogue: every conversation on disk, the live ones in memory.
//!
//! At start the server only lists the ids under `conversations_path` (no file is read), so
//! thousands of stored conversations cost nothing until used. A conversation is *hydrated*
//! (its [`LocalConversation`] built from disk) on first access by a route that needs it; info
//! for listings is read from its files without hydrating (the routes do that on the blocking
//! pool). Hydration and creation read and write disk without holding the map of all
//! conversations: a per-id gate makes concurrent hydrations of one conversation wait for the
//! first. Live conversations publish each event, pre-serialized once, on a broadcast channel
//! that WebSocket subscribers read, so a slow subscriber never holds up the agent.
//!
//! `meta.json` is written by one writer at a time per conversation, from a snapshot taken
//! once the write lock is held, so the file always ends with the latest metadata: an
//! acknowledged update is on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use oh_agent::conversation::{ConversationConfig, LocalConversation, Store};
use oh_agent::tools::ToolOptions;
use oh_protocol::agent::{AgentBase, LookupSecret, SecretSource, SecretString, StaticSecret};
use oh_protocol::event::{ConversationStateUpdateEvent, Event, EventBase, Source};
use oh_protocol::{ConversationInfo, ConversationState, ExecutionStatus, WorkspaceSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::app::Activity;
use crate::config::Config;
use crate::crypto::Cipher;

/// Server metadata of a conversation, next to the reference's files (`meta.json`).
const META: &str = "meta.json";

/// Listings of every stored conversation running at once; more wait their turn.
const MAX_LISTINGS: usize = 2;

/// WebSocket subscribers allowed per conversation (the reference's limit).
pub(crate) const MAX_SUBSCRIBERS: usize = 50;

/// One frame for subscribers: an event serialized once.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// Id of a persisted event (`None` for `full_state` snapshots).
    pub(crate) persisted_id: Option<Arc<str>>,
    /// The JSON text, shared by every subscriber without copying.
    pub(crate) json: Utf8Bytes,
}

/// `meta.json`: what the server knows about a conversation beyond its state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// 32 hex, as the reference writes it.
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) title: Option<String>,
    #[serde(default)]
    pub(crate) metrics: Option<serde_json::Value>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    #[serde(default)]
    pub(crate) workspace: Option<WorkspaceSpec>,
    #[serde(default)]
    pub(crate) max_iterations: Option<u64>,
    #[serde(default)]
    pub(crate) stuck_detection: Option<bool>,
    #[serde(default)]
    pub(crate) client_tools: Vec<serde_json::Value>,
    #[serde(default)]
    pub(crate) tool_module_qualnames: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) hook_config: Option<serde_json::Value>,
    #[serde(default)]
    pub(crate) parent_conversation_id: Option<uuid::Uuid>,
    #[serde(default)]
    pub(crate) forked_from_conversation_id: Option<uuid::Uuid>,
    #[serde(default)]
    pub(crate) forked_from_event_id: Option<String>,
    /// The agent with its secrets as Fernet tokens (or masked without a secret key).
    #[serde(default)]
    pub(crate) agent: Option<AgentBase>,
    /// Conversation secrets, values as Fernet tokens (or masked without a secret key).
    #[serde(default)]
    pub(crate) secrets: BTreeMap<String, SecretSource>,
    /// Generate a title from the first user message.
    #[serde(default = "yes")]
    pub(crate) autotitle: bool,
    /// The agent profile the conversation was created from (`agent_profile_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) launched_agent_profile: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// Longest generated title, in characters.
const TITLE_MAX: usize = 50;

/// `text` cut to `max` characters, ending in `...` when cut.
fn shorten(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

/// Current UTC time, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(crate) fn utc_now() -> String {
    oh_protocol::time::utc_timestamp(oh_agent::conversation::unix_micros())
}

/// Current time as an event timestamp, from the agent core's clock.
pub(crate) use oh_agent::conversation::now_timestamp as event_now;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a conversation operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceError {
    #[error("Conversation already running. Wait for completion or pause first.")]
    AlreadyRunning,
    #[error("Too many conversations are running; retry later")]
    Capacity,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Agent(#[from] oh_agent::conversation::Error),
    #[error("{0}")]
    Io(String),
    #[error("Conversation with id {0} already exists")]
    Exists(uuid::Uuid),
    #[error("{0}")]
    NotFound(String),
}

/// A conversation in memory.
pub(crate) struct Live {
    pub(crate) conv: LocalConversation,
    pub(crate) meta: Mutex<Meta>,
    /// Held while `meta.json` is written (see [`Live::save_meta`]).
    meta_write: Arc<tokio::sync::Mutex<()>>,
    dir: PathBuf,
    hub: broadcast::Sender<Frame>,
    run_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    rerun: AtomicBool,
    pub(crate) subscribers: AtomicUsize,
    last_used: Mutex<Instant>,
    cipher: Option<Cipher>,
    runs: Arc<tokio::sync::Semaphore>,
    /// A title is being generated.
    titling: AtomicBool,
    /// Held while a plugin is loaded, so that two loads do not lose each other's skills.
    pub(crate) plugin_gate: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("id", &self.conv.id())
            .finish_non_exhaustive()
    }
}

impl Live {
    /// The directory the conversation is stored in.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn id(&self) -> uuid::Uuid {
        self.conv.id()
    }

    /// Receives every frame published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Frame> {
        self.hub.subscribe()
    }

    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    /// Whether a run task is alive (including its wrap-up).
    pub(crate) fn is_running(&self) -> bool {
        lock(&self.run_task)
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// The `full_state` snapshot event (not persisted).
    pub(crate) fn full_state(&self) -> Frame {
        let event = Event::ConversationStateUpdate(ConversationStateUpdateEvent {
            base: EventBase::new(Source::Environment, event_now()),
            key: "full_state".into(),
            value: oh_protocol::wire::to_compact_value(&self.conv.state())
                .unwrap_or(serde_json::Value::Null),
        });
        Frame {
            persisted_id: None,
            json: serialize(&event),
        }
    }

    /// Sends a `full_state` snapshot to every subscriber.
    pub(crate) fn publish_full_state(&self) {
        let _ = self.hub.send(self.full_state());
    }

    /// Starts the agent loop in the background. Fails when a run is in progress (or wrapping
    /// up) or when the server's run capacity is used up.
    pub(crate) fn start_run(self: &Arc<Self>) -> Result<(), ServiceError> {
        self.start_run_with(None)
    }

    /// As [`Live::start_run`], with a run slot reserved beforehand
    /// ([`Conversations::reserve_run`]) instead of one taken now.
    pub(crate) fn start_run_with(
        self: &Arc<Self>,
        reserved: Option<RunSlot>,
    ) -> Result<(), ServiceError> {
        let mut task = lock(&self.run_task);
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Err(ServiceError::AlreadyRunning);
        }
        let permit = match reserved {
            Some(RunSlot(permit)) => permit,
            None => Arc::clone(&self.runs)
                .try_acquire_owned()
                .map_err(|_| ServiceError::Capacity)?,
        };
        let live = Arc::clone(self);
        *task = Some(tokio::spawn(async move {
            let _permit = permit;
            live.run_loop().await;
        }));
        Ok(())
    }

    /// Starts a run, or asks the current one to run again when it ends (a message sent with
    /// `run: true` while a run is wrapping up).
    pub(crate) fn run_or_rerun(self: &Arc<Self>) -> Result<(), ServiceError> {
        match self.start_run() {
            Err(ServiceError::AlreadyRunning) => {
                self.rerun.store(true, Ordering::SeqCst);
                Ok(())
            }
            other => other,
        }
    }

    async fn run_loop(self: Arc<Self>) {
        loop {
            self.touch();
            match self.conv.run().await {
                Ok(status) => tracing::debug!(id = %self.id(), ?status, "run ended"),
                Err(err) => tracing::info!(id = %self.id(), %err, "run ended with an error"),
            }
            self.mark_updated();
            self.save_meta().await;
            self.publish_full_state();
            self.touch();
            let again = self.rerun.swap(false, Ordering::SeqCst);
            if !(again && self.conv.status() == ExecutionStatus::Idle) {
                break;
            }
        }
    }

    /// Waits up to `limit` for the run task to end.
    pub(crate) async fn wait_run(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.is_running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) fn mark_updated(&self) {
        lock(&self.meta).updated_at = utc_now();
    }

    /// Writes `meta.json` (agent and secrets encrypted, or masked without a secret key).
    ///
    /// Writes are serialised per conversation and each writes a snapshot taken under the
    /// write lock, so the last write holds every change made before it started: once this
    /// returns, the metadata as it was when it was called is on disk. The lock is released
    /// only when the write is done, even if the caller goes away meanwhile.
    pub(crate) async fn save_meta(&self) {
        let writing = Arc::clone(&self.meta_write).lock_owned().await;
        let meta = lock(&self.meta).clone();
        let dir = self.dir.clone();
        let written = tokio::task::spawn_blocking(move || {
            let _writing = writing;
            write_meta(&dir, &meta)
        })
        .await
        .map_err(|err| err.to_string())
        .and_then(|res| res);
        if let Err(err) = written {
            tracing::warn!(id = %self.id(), %err, "could not write meta.json");
        }
    }

    /// Adds secrets (static values and lookups): live in the conversation, encrypted in
    /// `meta.json` (a lookup's URL in clear, its header values encrypted).
    pub(crate) async fn update_secrets(
        &self,
        secrets: BTreeMap<String, String>,
        lookups: BTreeMap<String, LookupSecret>,
    ) -> Result<(), ServiceError> {
        {
            let mut meta = lock(&self.meta);
            for (name, value) in &secrets {
                meta.secrets.insert(
                    name.clone(),
                    SecretSource::Static(StaticSecret::new(seal(self.cipher.as_ref(), value))),
                );
            }
            for (name, lookup) in &lookups {
                meta.secrets
                    .insert(name.clone(), sealed_lookup(self.cipher.as_ref(), lookup));
            }
        }
        if !secrets.is_empty() {
            self.conv.update_secrets(secrets)?;
        }
        if !lookups.is_empty() {
            self.conv.update_lookup_secrets(lookups)?;
        }
        self.save_meta().await;
        Ok(())
    }

    /// Replaces the agent's `agent_context`: in the conversation (its state) and in
    /// `meta.json`, so that the conversation keeps it when it is loaded again.
    pub(crate) async fn set_agent_context(
        &self,
        context: serde_json::Value,
    ) -> Result<(), ServiceError> {
        self.conv.set_agent_context(context.clone())?;
        if let Some(AgentBase::Agent(agent)) = &mut lock(&self.meta).agent {
            agent.agent_context = Some(context);
        }
        self.mark_updated();
        self.save_meta().await;
        Ok(())
    }

    /// After a user message: when the conversation has no title yet (and auto-titling is on),
    /// asks the agent's LLM for one in the background, falling back to the message cut to
    /// 50 characters, as the reference does.
    pub(crate) fn autotitle(self: &Arc<Self>, message: &str) {
        let message = message.trim().to_owned();
        {
            let meta = lock(&self.meta);
            if !meta.autotitle || meta.title.is_some() || message.is_empty() {
                return;
            }
        }
        if self.titling.swap(true, Ordering::SeqCst) {
            return;
        }
        let live = Arc::clone(self);
        tokio::spawn(async move {
            let title = live.generate_title(&message).await;
            {
                let mut meta = lock(&live.meta);
                if meta.title.is_none() {
                    meta.title = Some(title);
                    meta.updated_at = utc_now();
                }
            }
            live.save_meta().await;
            live.titling.store(false, Ordering::SeqCst);
        });
    }

    async fn generate_title(&self, message: &str) -> String {
        let excerpt = shorten(message, 1000);
        let messages = [
            oh_protocol::Message::new(
                oh_protocol::Role::System,
                vec![oh_protocol::Content::text(
                    "You name conversations between a user and OpenHands, an AI agent that \
                     works on a computer with a terminal, a file editor and a browser. Read \
                     the user's first message (possibly cut short) and answer with a short, \
                     descriptive title only: no quotes, no explanation.",
                )],
            ),
            oh_protocol::Message::user(format!(
                "Title for a conversation opening with the message below, at most \
                 {TITLE_MAX} characters, starting with one fitting emoji:\n\n{excerpt}"
            )),
        ];
        let request = oh_agent::llm::CompletionRequest {
            messages: &messages,
            tools: &[],
            conversation_id: None,
        };
        match self.conv.llm().complete(request).await {
            Ok(response) => {
                let text: String = response
                    .message
                    .content
                    .iter()
                    .filter_map(oh_protocol::Content::as_text)
                    .collect();
                let text = strip_thinking(&text);
                if text.trim().is_empty() {
                    shorten(message, TITLE_MAX)
                } else {
                    shorten(&text, TITLE_MAX)
                }
            }
            Err(err) => {
                tracing::info!(id = %self.id(), %err, "title generation failed; using the message");
                shorten(message, TITLE_MAX)
            }
        }
    }

    /// The REST view of this conversation.
    pub(crate) fn info(&self) -> ConversationInfo {
        let meta = lock(&self.meta).clone();
        build_info(self.conv.state(), &meta)
    }
}

pub(crate) fn serialize(event: &Event) -> Utf8Bytes {
    Utf8Bytes::from(oh_protocol::wire::to_compact_string(event).unwrap_or_default())
}

/// A secret as stored: a token with a cipher, else the mask.
fn seal(cipher: Option<&Cipher>, value: &str) -> SecretString {
    SecretString::new(match cipher {
        Some(cipher) => cipher.encrypt(value),
        None => SecretString::MASK.to_owned(),
    })
}

/// A lookup as stored: its header values sealed.
fn sealed_lookup(cipher: Option<&Cipher>, lookup: &LookupSecret) -> SecretSource {
    let mut stored = lookup.clone();
    for value in stored.headers.values_mut() {
        *value = seal(cipher, value.expose());
    }
    SecretSource::Lookup(stored)
}

fn unseal(cipher: Option<&Cipher>, stored: &SecretString) -> Option<String> {
    if stored.is_placeholder() {
        return None;
    }
    cipher?.decrypt(stored.expose())
}

fn write_meta(dir: &Path, meta: &Meta) -> Result<(), String> {
    let bytes = serde_json::to_vec(meta).map_err(|e| e.to_string())?;
    oh_agent::conversation::store::write_atomic(&dir.join(META), &bytes).map_err(|e| e.to_string())
}

fn read_meta(dir: &Path) -> Option<Meta> {
    let bytes = std::fs::read(dir.join(META)).ok()?;
    serde_json::from_slice(&bytes)
        .map_err(|err| tracing::warn!(dir = %dir.display(), %err, "unreadable meta.json"))
        .ok()
}

/// The API key of the condenser's own LLM, when the agent's condenser has one.
fn condenser_key(agent: &mut oh_protocol::Agent) -> Option<&mut serde_json::Value> {
    agent
        .condenser
        .as_mut()?
        .get_mut("llm")?
        .get_mut("api_key")
        .filter(|key| !key.is_null())
}

/// ConversationInfo from the state and metadata; the agent's secrets are null.
fn build_info(state: ConversationState, meta: &Meta) -> ConversationInfo {
    let mut agent = state.agent;
    if let AgentBase::Agent(agent) = &mut agent {
        agent.llm.api_key = None;
        if let Some(slot) = condenser_key(agent) {
            *slot = serde_json::Value::Null;
        }
    }
    let mut secret_registry = state.secret_registry;
    for source in secret_registry.secret_sources.values_mut() {
        match source {
            SecretSource::Static(s) => s.value = None,
            SecretSource::Lookup(l) => l.headers.clear(),
            _ => {}
        }
    }
    ConversationInfo {
        id: state.id,
        workspace: state.workspace,
        persistence_dir: state.persistence_dir,
        max_iterations: state.max_iterations,
        stuck_detection: state.stuck_detection,
        execution_status: state.execution_status,
        confirmation_policy: state.confirmation_policy,
        security_analyzer: state.security_analyzer,
        activated_knowledge_skills: state.activated_knowledge_skills,
        invoked_skills: state.invoked_skills,
        blocked_actions: state.blocked_actions,
        blocked_messages: state.blocked_messages,
        last_user_message_id: state.last_user_message_id,
        leaf_event_id: state.leaf_event_id,
        stats: state.stats,
        secret_registry,
        agent_state: state.agent_state,
        hook_config: meta.hook_config.clone().or(state.hook_config),
        title: meta.title.clone(),
        metrics: None,
        created_at: meta.created_at.clone(),
        updated_at: meta.updated_at.clone(),
        forked_from_conversation_id: meta.forked_from_conversation_id,
        forked_from_event_id: meta.forked_from_event_id.clone(),
        parent_conversation_id: meta.parent_conversation_id,
        sub_conversation_ids: Vec::new(),
        tags: state.tags,
        current_model_id: None,
        available_models: Vec::new(),
        supports_runtime_model_switch: false,
        launched_agent_profile: meta.launched_agent_profile.clone(),
        agent,
        client_tools: meta.client_tools.clone(),
        tool_module_qualnames: meta.tool_module_qualnames.clone(),
        runtime_info: None,
    }
}

/// What a new conversation is made of (the validated create request).
pub(crate) struct NewConversation {
    pub(crate) id: uuid::Uuid,
    pub(crate) agent: oh_protocol::Agent,
    pub(crate) working_dir: PathBuf,
    pub(crate) max_iterations: u64,
    pub(crate) stuck_detection: bool,
    pub(crate) secrets: BTreeMap<String, String>,
    pub(crate) lookup_secrets: BTreeMap<String, LookupSecret>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) meta: Meta,
}

enum Slot {
    /// On disk only.
    Stored,
    Live(Arc<Live>),
}

/// One of the server's `max_concurrent_runs` slots, reserved and not yet given to a run.
#[derive(Debug)]
pub(crate) struct RunSlot(tokio::sync::OwnedSemaphorePermit);

/// Every conversation of this server.
pub(crate) struct Conversations {
    root: PathBuf,
    cipher: Option<Cipher>,
    /// Never held during disk I/O.
    slots: Mutex<HashMap<uuid::Uuid, Slot>>,
    /// Per-id gates serialising hydration and creation of one conversation.
    gates: Mutex<HashMap<uuid::Uuid, Weak<Mutex<()>>>>,
    /// Listings that read every stored conversation, at once (bounds their CPU and memory).
    listings: tokio::sync::Semaphore,
    activity: Arc<Activity>,
    runs: Arc<tokio::sync::Semaphore>,
    idle_ttl: Option<Duration>,
    /// Frames kept for subscribers that fall behind.
    buffer: usize,
    /// Tool settings of every conversation (the extra environment of its terminal).
    tool_options: ToolOptions,
    /// Where agent contexts with `load_user_skills` find the user's skills.
    user_skill_dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for Conversations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversations")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl Conversations {
    /// Lists the stored conversations (directory names only).
    pub(crate) fn open(config: &Config, activity: Arc<Activity>) -> std::io::Result<Self> {
        std::fs::create_dir_all(&config.conversations_path)?;
        let mut slots = HashMap::new();
        for entry in std::fs::read_dir(&config.conversations_path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(crate::extract::parse_uuid) else {
                continue;
            };
            if entry
                .path()
                .join(oh_agent::conversation::store::BASE_STATE)
                .is_file()
            {
                slots.insert(id, Slot::Stored);
            }
        }
        tracing::info!(count = slots.len(), "stored conversations found");
        Ok(Self {
            root: config.conversations_path.clone(),
            cipher: config.secret_key.as_ref().map(|key| {
                let previous: Vec<&str> = config
                    .previous_secret_keys
                    .iter()
                    .map(SecretString::expose)
                    .collect();
                Cipher::with_previous(key.expose(), &previous)
            }),
            slots: Mutex::new(slots),
            gates: Mutex::new(HashMap::new()),
            listings: tokio::sync::Semaphore::new(MAX_LISTINGS),
            activity,
            runs: Arc::new(tokio::sync::Semaphore::new(config.max_concurrent_runs)),
            idle_ttl: config
                .conversation_idle_ttl_seconds
                .map(Duration::from_secs_f64),
            buffer: config.subscriber_buffer.max(1),
            tool_options: ToolOptions::default().env(
                config
                    .command_env
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect(),
            ),
            user_skill_dirs: config.user_skill_dirs.clone(),
        })
    }

    fn dir(&self, id: uuid::Uuid) -> PathBuf {
        self.root.join(id.simple().to_string())
    }

    /// A turn to list every conversation (held while the listing runs).
    /// Reserves one of the server's run slots, so that a create with an initial message can
    /// answer 429 before it creates anything.
    pub(crate) fn reserve_run(&self) -> Result<RunSlot, ServiceError> {
        Arc::clone(&self.runs)
            .try_acquire_owned()
            .map(RunSlot)
            .map_err(|_| ServiceError::Capacity)
    }

    pub(crate) async fn listing_turn(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.listings.acquire().await.ok()
    }

    /// Whether the conversation exists (live or stored).
    pub(crate) fn exists(&self, id: uuid::Uuid) -> bool {
        lock(&self.slots).contains_key(&id)
    }

    /// Ids of every conversation.
    pub(crate) fn ids(&self) -> Vec<uuid::Uuid> {
        lock(&self.slots).keys().copied().collect()
    }

    /// The gate of one conversation id: held while it is hydrated or created.
    fn gate(&self, id: uuid::Uuid) -> Arc<Mutex<()>> {
        let mut gates = lock(&self.gates);
        if let Some(gate) = gates.get(&id).and_then(Weak::upgrade) {
            return gate;
        }
        if gates.len() >= 64 {
            gates.retain(|_, gate| gate.strong_count() > 0);
        }
        let gate = Arc::new(Mutex::new(()));
        gates.insert(id, Arc::downgrade(&gate));
        gate
    }

    /// Without touching the disk: `Some(Some(live))` if it is in memory, `Some(None)` if
    /// unknown, `None` if it is stored only (then [`Conversations::get`] hydrates it).
    pub(crate) fn in_memory(&self, id: uuid::Uuid) -> Option<Option<Arc<Live>>> {
        self.live_slot(id).ok()
    }

    /// The live conversation if it is in memory; `Err(())` if it is stored only.
    fn live_slot(&self, id: uuid::Uuid) -> Result<Option<Arc<Live>>, ()> {
        match lock(&self.slots).get(&id) {
            None => Ok(None),
            Some(Slot::Live(live)) => {
                live.touch();
                Ok(Some(Arc::clone(live)))
            }
            Some(Slot::Stored) => Err(()),
        }
    }

    /// The live conversation, hydrating it from disk if needed. `None` if unknown.
    ///
    /// The disk is read without holding the map of conversations; concurrent calls for one
    /// stored conversation wait for the first to hydrate it.
    pub(crate) fn get(&self, id: uuid::Uuid) -> Result<Option<Arc<Live>>, ServiceError> {
        if let Ok(found) = self.live_slot(id) {
            return Ok(found);
        }
        let gate = self.gate(id);
        let _hydrating = lock(&gate);
        if let Ok(found) = self.live_slot(id) {
            return Ok(found);
        }
        let live = self.hydrate(id)?;
        let mut slots = lock(&self.slots);
        match slots.get(&id) {
            Some(Slot::Stored) => {
                slots.insert(id, Slot::Live(Arc::clone(&live)));
                Ok(Some(live))
            }
            // Cannot happen while the gate is held; keep what is there.
            Some(Slot::Live(current)) => Ok(Some(Arc::clone(current))),
            None => Ok(None),
        }
    }

    /// The REST view, read from disk for conversations that are not live (hydrating only
    /// those stored as `running`, which need crash recovery).
    pub(crate) fn info(&self, id: uuid::Uuid) -> Result<Option<ConversationInfo>, ServiceError> {
        let live = match lock(&self.slots).get(&id) {
            None => return Ok(None),
            Some(Slot::Live(live)) => Some(Arc::clone(live)),
            Some(Slot::Stored) => None,
        };
        if let Some(live) = live {
            return Ok(Some(live.info()));
        }
        let dir = self.dir(id);
        let state = Store::open(&dir).and_then(|store| store.load_state());
        match state {
            Ok(state) if state.execution_status != ExecutionStatus::Running => {
                let meta = read_meta(&dir).unwrap_or_else(|| default_meta(id));
                Ok(Some(build_info(state, &meta)))
            }
            _ => Ok(self.get(id)?.map(|live| live.info())),
        }
    }

    /// Creates and registers a conversation (writes to disk: call it off the async workers).
    pub(crate) fn create(&self, new: NewConversation) -> Result<Arc<Live>, ServiceError> {
        let gate = self.gate(new.id);
        let _creating = lock(&gate);
        if lock(&self.slots).contains_key(&new.id) {
            return Err(ServiceError::Invalid(format!(
                "Conversation with id {} already exists",
                new.id
            )));
        }
        let dir = self.dir(new.id);
        let mut meta = new.meta;
        meta.agent = Some(AgentBase::Agent(Box::new(self.sealed_agent(&new.agent))));
        for (name, value) in &new.secrets {
            meta.secrets.insert(
                name.clone(),
                SecretSource::Static(StaticSecret::new(seal(self.cipher.as_ref(), value))),
            );
        }
        for (name, lookup) in &new.lookup_secrets {
            meta.secrets
                .insert(name.clone(), sealed_lookup(self.cipher.as_ref(), lookup));
        }
        let mut config = ConversationConfig::new(new.agent, new.working_dir)
            .persistence_dir(&self.root)
            .id(new.id)
            .max_iterations(new.max_iterations)
            .emit_state_updates(true)
            .tool_options(self.tool_options.clone())
            .user_skill_dirs(self.user_skill_dirs.clone());
        config.stuck_detection = new.stuck_detection;
        config.secrets = new.secrets;
        config.lookup_secrets = new.lookup_secrets;
        config.tags = new.tags;
        let live = self.make_live(config, meta, dir)?;
        // Not shared yet: no other writer of its meta.json can exist.
        let meta = lock(&live.meta).clone();
        if let Err(err) = write_meta(&live.dir, &meta) {
            tracing::warn!(id = %new.id, %err, "could not write meta.json");
        }
        lock(&self.slots).insert(new.id, Slot::Live(Arc::clone(&live)));
        Ok(live)
    }

    /// Forks `source` (`POST …/fork`): a new conversation with a copy of its events (all,
    /// or up to and including `from_event_id`), its agent, workspace and secrets, in `idle`,
    /// with the request's title and tags and, unless `reset_metrics` is off, fresh stats.
    /// `None` if the source is unknown. Writes to disk: call it off the async workers.
    pub(crate) fn fork(
        &self,
        source: uuid::Uuid,
        request: &oh_protocol::api::ForkConversationRequest,
    ) -> Result<Option<Arc<Live>>, ServiceError> {
        let fork_id = request.id.unwrap_or_else(uuid::Uuid::new_v4);
        if lock(&self.slots).contains_key(&fork_id) {
            return Err(ServiceError::Exists(fork_id));
        }
        let Some(live) = self.get(source)? else {
            return Ok(None);
        };
        let io = |err: oh_agent::conversation::StoreError| ServiceError::Io(err.to_string());
        let gate = self.gate(fork_id);
        let _creating = lock(&gate);
        if lock(&self.slots).contains_key(&fork_id) {
            return Err(ServiceError::Exists(fork_id));
        }
        // The source as it is now: its events, and its state with the events' effects.
        let events = live.conv.events();
        let cut = match &request.from_event_id {
            None => events.len(),
            Some(wanted) => {
                events
                    .iter()
                    .position(|e| e.id() == Some(wanted.as_str()))
                    .ok_or_else(|| {
                        ServiceError::NotFound(format!(
                            "from_event_id {wanted} is not an event of conversation {source}"
                        ))
                    })?
                    + 1
            }
        };
        let mut state = live.conv.state();
        state.id = fork_id;
        state.execution_status = ExecutionStatus::Idle;
        state.tags = request.tags.clone().unwrap_or_default();
        if request.reset_metrics {
            state.stats = oh_protocol::ConversationStats::default();
        }
        if request.from_event_id.is_some() {
            state.leaf_event_id = events[..cut]
                .iter()
                .rev()
                .find_map(|e| e.id().map(str::to_owned));
        }
        let dir = self.dir(fork_id);
        let written = (|| {
            let mut store = Store::open(&dir).map_err(io)?;
            for event in &events[..cut] {
                store.append(event).map_err(io)?;
            }
            store.save_state(&state).map_err(io)?;
            let mut meta = lock(&live.meta).clone();
            let now = utc_now();
            meta.id = fork_id.simple().to_string();
            meta.title = request.title.clone();
            meta.created_at = now.clone();
            meta.updated_at = now;
            meta.forked_from_conversation_id = Some(source);
            meta.forked_from_event_id = request.from_event_id.clone();
            meta.autotitle = false;
            if request.reset_metrics {
                meta.metrics = None;
            }
            write_meta(&dir, &meta).map_err(ServiceError::Io)
        })();
        if let Err(err) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(err);
        }
        lock(&self.slots).insert(fork_id, Slot::Stored);
        drop(_creating);
        tracing::info!(%source, fork = %fork_id, events = cut, "conversation forked");
        self.get(fork_id)
    }

    fn sealed_agent(&self, agent: &oh_protocol::Agent) -> oh_protocol::Agent {
        let mut agent = agent.clone();
        if let Some(key) = &agent.llm.api_key {
            agent.llm.api_key = Some(seal(self.cipher.as_ref(), key.expose()));
        }
        if let Some(slot) = condenser_key(&mut agent)
            && let Some(key) = slot.as_str()
        {
            *slot = serde_json::Value::String(seal(self.cipher.as_ref(), key).expose().to_owned());
        }
        agent
    }

    /// Whether a stored token was written under a previous secret key.
    fn is_stale(&self, token: &SecretString) -> bool {
        self.cipher
            .as_ref()
            .is_some_and(|cipher| !token.is_placeholder() && !cipher.is_current(token.expose()))
    }

    fn hydrate(&self, id: uuid::Uuid) -> Result<Arc<Live>, ServiceError> {
        let dir = self.dir(id);
        let state = Store::open(&dir)
            .and_then(|store| store.load_state())
            .map_err(|err| ServiceError::Io(err.to_string()))?;
        let mut meta = read_meta(&dir).unwrap_or_else(|| default_meta(id));
        let stored = meta.agent.clone().unwrap_or_else(|| state.agent.clone());
        let AgentBase::Agent(agent) = stored else {
            return Err(ServiceError::Invalid(
                "the stored agent is not a standard Agent".into(),
            ));
        };
        let mut agent = *agent;
        let key_is_stale = meta.agent.is_some()
            && agent
                .llm
                .api_key
                .as_ref()
                .is_some_and(|key| self.is_stale(key));
        agent.llm.api_key = agent
            .llm
            .api_key
            .as_ref()
            .and_then(|key| unseal(self.cipher.as_ref(), key))
            .map(SecretString::new);
        if let Some(slot) = condenser_key(&mut agent) {
            *slot = slot
                .as_str()
                .and_then(|key| unseal(self.cipher.as_ref(), &SecretString::new(key)))
                .map_or(serde_json::Value::Null, serde_json::Value::String);
        }
        if key_is_stale && agent.llm.api_key.is_some() {
            // Saved under a previous secret key: written under the current one next time.
            meta.agent = Some(AgentBase::Agent(Box::new(self.sealed_agent(&agent))));
        }
        let working_dir = match &state.workspace {
            WorkspaceSpec::Local(local) => PathBuf::from(&local.working_dir),
            _ => {
                return Err(ServiceError::Invalid("unsupported workspace kind".into()));
            }
        };
        let mut config = ConversationConfig::new(agent, working_dir)
            .persistence_dir(&self.root)
            .id(id)
            .max_iterations(state.max_iterations)
            .emit_state_updates(true)
            .tool_options(self.tool_options.clone())
            .user_skill_dirs(self.user_skill_dirs.clone());
        config.stuck_detection = state.stuck_detection;
        for (name, source) in &mut meta.secrets {
            match source {
                SecretSource::Static(StaticSecret { value: Some(v), .. }) => {
                    if let Some(plain) = unseal(self.cipher.as_ref(), v) {
                        if self.is_stale(v) {
                            *v = seal(self.cipher.as_ref(), &plain);
                        }
                        config.secrets.insert(name.clone(), plain);
                    }
                }
                SecretSource::Lookup(stored) => {
                    // Headers that cannot be decrypted (no or another secret key) are left
                    // out; the lookup then fails at the source and the agent is told.
                    let mut lookup = stored.clone();
                    lookup.headers.clear();
                    for (header, v) in &mut stored.headers {
                        if let Some(plain) = unseal(self.cipher.as_ref(), v) {
                            if self.is_stale(v) {
                                *v = seal(self.cipher.as_ref(), &plain);
                            }
                            lookup
                                .headers
                                .insert(header.clone(), SecretString::new(plain));
                        }
                    }
                    config.lookup_secrets.insert(name.clone(), lookup);
                }
                _ => {}
            }
        }
        config.tags = state.tags.clone();
        tracing::debug!(%id, "hydrating conversation");
        self.make_live(config, meta, dir)
    }

    fn make_live(
        &self,
        config: ConversationConfig,
        meta: Meta,
        dir: PathBuf,
    ) -> Result<Arc<Live>, ServiceError> {
        let (hub, _) = broadcast::channel(self.buffer);
        let sender = hub.clone();
        let activity = Arc::clone(&self.activity);
        let config = config.callback(move |event: &Event| {
            activity.touch();
            let _ = sender.send(Frame {
                persisted_id: event.id().map(Into::into),
                json: serialize(event),
            });
        });
        let conv = LocalConversation::new(config)?;
        Ok(Arc::new(Live {
            conv,
            meta: Mutex::new(meta),
            meta_write: Arc::new(tokio::sync::Mutex::new(())),
            dir,
            hub,
            run_task: Mutex::new(None),
            rerun: AtomicBool::new(false),
            subscribers: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
            cipher: self.cipher.clone(),
            runs: Arc::clone(&self.runs),
            titling: AtomicBool::new(false),
            plugin_gate: tokio::sync::Mutex::new(()),
        }))
    }

    /// Deletes a conversation: stops it, forgets it and removes its directory (not its
    /// workspace). `false` if unknown.
    pub(crate) async fn delete(&self, id: uuid::Uuid) -> Result<bool, ServiceError> {
        let Some(live) = self.get(id)? else {
            return Ok(false);
        };
        if live.is_running() {
            let _ = live.conv.pause();
            live.wait_run(Duration::from_secs(10)).await;
        }
        live.conv.close().await;
        lock(&self.slots).remove(&id);
        let dir = self.dir(id);
        tokio::fs::remove_dir_all(&dir)
            .await
            .or_else(|err| {
                if err.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            })
            .map_err(|err| ServiceError::Io(format!("removing {}: {err}", dir.display())))?;
        Ok(true)
    }

    /// Drops live conversations idle for longer than the TTL (not running, no subscriber).
    /// Their state is on disk; the next access hydrates them again.
    pub(crate) async fn evict_idle(&self) {
        let Some(ttl) = self.idle_ttl else { return };
        let idle: Vec<Arc<Live>> = {
            let slots = lock(&self.slots);
            slots
                .values()
                .filter_map(|slot| match slot {
                    Slot::Live(live)
                        if !live.is_running()
                            && live.subscribers.load(Ordering::SeqCst) == 0
                            && lock(&live.last_used).elapsed() >= ttl =>
                    {
                        Some(Arc::clone(live))
                    }
                    _ => None,
                })
                .collect()
        };
        for live in idle {
            live.save_meta().await;
            live.conv.close().await;
            let mut slots = lock(&self.slots);
            if let Some(Slot::Live(current)) = slots.get(&live.id())
                && Arc::ptr_eq(current, &live)
                && !live.is_running()
            {
                slots.insert(live.id(), Slot::Stored);
                tracing::debug!(id = %live.id(), "evicted idle conversation");
            }
        }
    }

    /// Idle eviction period.
    pub(crate) fn idle_ttl(&self) -> Option<Duration> {
        self.idle_ttl
    }

    /// Graceful shutdown: pauses running conversations, waits for their runs to stop, saves
    /// metadata and closes the tools.
    pub(crate) async fn shutdown(&self) {
        let live: Vec<Arc<Live>> = lock(&self.slots)
            .values()
            .filter_map(|slot| match slot {
                Slot::Live(live) => Some(Arc::clone(live)),
                Slot::Stored => None,
            })
            .collect();
        for conv in &live {
            if conv.is_running() {
                let _ = conv.conv.pause();
            }
        }
        for conv in &live {
            conv.wait_run(Duration::from_secs(10)).await;
            if conv.is_running() {
                let _ = conv.conv.interrupt();
                conv.wait_run(Duration::from_secs(2)).await;
            }
            conv.save_meta().await;
            conv.conv.close().await;
        }
    }
}

fn default_meta(id: uuid::Uuid) -> Meta {
    let now = utc_now();
    Meta {
        id: id.simple().to_string(),
        title: None,
        metrics: None,
        created_at: now.clone(),
        updated_at: now,
        workspace: None,
        max_iterations: None,
        stuck_detection: None,
        client_tools: Vec::new(),
        tool_module_qualnames: BTreeMap::new(),
        hook_config: None,
        parent_conversation_id: None,
        forked_from_conversation_id: None,
        forked_from_event_id: None,
        agent: None,
        secrets: BTreeMap::new(),
        autotitle: true,
        launched_agent_profile: None,
    }
}

/// A fresh `meta.json` for a new conversation.
pub(crate) fn new_meta(id: uuid::Uuid) -> Meta {
    default_meta(id)
}

/// `text` without `<think>…</think>` blocks some models prepend.
fn strip_thinking(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("<think>") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</think>") {
            Some(end) => rest = &rest[start + end + "</think>".len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_cut_and_cleaned() {
        assert_eq!(shorten("  short  ", 50), "short");
        let long = "x".repeat(60);
        assert_eq!(shorten(&long, 50).chars().count(), 50);
        assert!(shorten(&long, 50).ends_with("..."));
        assert_eq!(
            strip_thinking("<think>hmm</think> 🐛 Fix bug"),
            "🐛 Fix bug"
        );
        assert_eq!(strip_thinking("plain"), "plain");
    }
}
