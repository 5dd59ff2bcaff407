//! [`Conversation`]: one API over local and remote conversations.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use oh_protocol::{
    Agent, Callback, ConfirmationPolicy, ConversationStats, Event, ExecutionStatus, Message,
    SecretSource,
};

use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// A closure as a [`Callback`], so that a list of different closures is one type, like
/// Python's `callbacks=[...]`:
///
/// ```no_run
/// # async fn demo(agent: openhands::protocol::Agent, workspace: openhands::Workspace) -> openhands::Result<()> {
/// use openhands::{Conversation, callback};
///
/// let conversation = Conversation::new(
///     agent,
///     workspace,
///     [
///         callback(|event| println!("{}", event.kind())),
///         callback(|event| tracing_like_log(event.kind())),
///     ],
/// )
/// .await?;
/// # Ok(()) }
/// # fn tracing_like_log(_: &str) {}
/// ```
pub fn callback(f: impl Fn(&Event) + Send + Sync + 'static) -> Callback {
    Arc::new(f)
}

/// A conversation between a user and an agent, running in this process
/// ([`Conversation::Local`]) or on an agent server ([`Conversation::Remote`]).
///
/// [`Conversation::new`] picks the kind from the workspace, as the Python SDK's
/// `Conversation(agent, workspace)` factory does: a local workspace gives a local
/// conversation, any remote one (including those that Docker, runtime-API or Cloud workspaces
/// hand back) a remote conversation, which is deleted on the server when it is closed.
///
/// ```no_run
/// # async fn demo() -> openhands::Result<()> {
/// use openhands::prelude::*;
///
/// let agent = Agent::new(Llm::new("openai/gpt-4o"), vec![ToolSpec::new("terminal")]);
/// let workspace = Workspace::remote("http://localhost:8000", "/workspace/project")?;
/// let conversation = Conversation::builder(agent, workspace)
///     .callback(|event| println!("{}", event.kind()))
///     .build()
///     .await?;
/// conversation.send_text("List the files here").await?;
/// let status = conversation.run().await?;
/// println!("{status:?}, ${:.4}", conversation.accumulated_cost().await?);
/// conversation.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Conversation {
    /// The agent runs in this process.
    #[cfg(feature = "local")]
    #[cfg_attr(docsrs, doc(cfg(feature = "local")))]
    Local(oh_agent::conversation::LocalConversation),
    /// The agent runs on an agent server.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    Remote(oh_client::RemoteConversation),
}

#[cfg(feature = "local")]
impl From<oh_agent::conversation::LocalConversation> for Conversation {
    fn from(conversation: oh_agent::conversation::LocalConversation) -> Self {
        Self::Local(conversation)
    }
}

#[cfg(feature = "client")]
impl From<oh_client::RemoteConversation> for Conversation {
    fn from(conversation: oh_client::RemoteConversation) -> Self {
        Self::Remote(conversation)
    }
}

/// Builds a [`Conversation`]; see [`Conversation::builder`].
#[must_use]
pub struct ConversationBuilder {
    agent: Agent,
    workspace: Workspace,
    callbacks: Vec<Callback>,
    conversation_id: Option<uuid::Uuid>,
    max_iterations: Option<u64>,
    stuck_detection: Option<bool>,
    confirmation_policy: Option<ConfirmationPolicy>,
    secrets: BTreeMap<String, SecretSource>,
    tags: BTreeMap<String, String>,
    persistence_dir: Option<PathBuf>,
    autotitle: Option<bool>,
    delete_on_close: Option<bool>,
}

impl std::fmt::Debug for ConversationBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationBuilder")
            .field("workspace", &self.workspace)
            .field("callbacks", &self.callbacks.len())
            .field("conversation_id", &self.conversation_id)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ConversationBuilder {
    /// Calls `callback` with every event from now on, once each, in order.
    pub fn callback(mut self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.callbacks.push(Arc::new(callback));
        self
    }

    /// Adds already shared callbacks.
    pub fn callbacks(mut self, callbacks: impl IntoIterator<Item = Callback>) -> Self {
        self.callbacks.extend(callbacks);
        self
    }

    /// Use (or resume) the conversation with this id.
    pub fn conversation_id(mut self, id: uuid::Uuid) -> Self {
        self.conversation_id = Some(id);
        self
    }

    /// Agent steps per run (default 500).
    pub fn max_iterations(mut self, n: u64) -> Self {
        self.max_iterations = Some(n);
        self
    }

    /// Stop runs that loop (default on).
    pub fn stuck_detection(mut self, on: bool) -> Self {
        self.stuck_detection = Some(on);
        self
    }

    /// The confirmation policy (default: never ask).
    pub fn confirmation_policy(mut self, policy: ConfirmationPolicy) -> Self {
        self.confirmation_policy = Some(policy);
        self
    }

    /// A secret, injected into the agent's terminal and masked in its output: a value
    /// (`&str`, `String`), or a [`LookupSecret`](oh_protocol::LookupSecret) fetched by the
    /// agent (its server, for a remote conversation) when a command needs it.
    pub fn secret(mut self, name: impl Into<String>, value: impl Into<SecretSource>) -> Self {
        self.secrets.insert(name.into(), value.into());
        self
    }

    /// Several secrets, e.g. what `OpenHandsCloudWorkspace::get_secrets` returns.
    pub fn secrets<K: Into<String>, V: Into<SecretSource>>(
        mut self,
        secrets: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.secrets
            .extend(secrets.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// A tag stored with the conversation.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Local conversations only: persist under `dir` (default: in memory). A remote
    /// conversation is persisted by its server, so [`build`](Self::build) rejects this
    /// option there with [`Error::InvalidOption`], as the reference does.
    pub fn persistence_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.persistence_dir = Some(dir.into());
        self
    }

    /// Remote conversations only: whether the server titles the conversation from its first
    /// message (server default: on; the title may cost an LLM call). Ignored locally.
    pub fn autotitle(mut self, on: bool) -> Self {
        self.autotitle = Some(on);
        self
    }

    /// Remote conversations only: delete the conversation on the server when it is closed
    /// (default on, as the Python SDK's `Conversation(...)`:
    /// [`client::DEFAULT_DELETE_ON_CLOSE`](crate::client::DEFAULT_DELETE_ON_CLOSE), the same
    /// for a [`RemoteConversation`](crate::RemoteConversation) built directly). Ignored
    /// locally.
    pub fn delete_on_close(mut self, on: bool) -> Self {
        self.delete_on_close = Some(on);
        self
    }

    /// Creates the conversation: a [`Conversation::Local`] for a local workspace (its
    /// directory is created if missing), a [`Conversation::Remote`] for a remote one.
    pub async fn build(self) -> Result<Conversation> {
        match self.workspace {
            #[cfg(feature = "local")]
            Workspace::Local(ref ws) => {
                use oh_agent::conversation::{ConversationConfig, LocalConversation};
                let mut config = ConversationConfig::new(self.agent, ws.working_dir());
                config.callbacks = self.callbacks;
                config.id = self.conversation_id;
                config.persistence_dir = self.persistence_dir;
                (config.secrets, config.lookup_secrets) = split_secrets(self.secrets)?;
                config.tags = self.tags;
                if let Some(n) = self.max_iterations {
                    config.max_iterations = n;
                }
                if let Some(on) = self.stuck_detection {
                    config.stuck_detection = on;
                }
                let conversation = LocalConversation::new(config)?;
                if let Some(policy) = self.confirmation_policy {
                    conversation.set_confirmation_policy(policy)?;
                }
                Ok(Conversation::Local(conversation))
            }
            #[cfg(feature = "client")]
            Workspace::Remote(ref ws) => {
                if self.persistence_dir.is_some() {
                    return Err(Error::invalid_option(
                        "persistence_dir is for local conversations; the agent server \
                         persists remote ones",
                    ));
                }
                let mut builder = oh_client::RemoteConversation::builder(ws)
                    .agent(self.agent)
                    .callbacks(self.callbacks);
                if let Some(on) = self.delete_on_close {
                    builder = builder.delete_on_close(on);
                }
                if let Some(id) = self.conversation_id {
                    builder = builder.conversation_id(id);
                }
                if let Some(n) = self.max_iterations {
                    builder = builder.max_iterations(n);
                }
                if let Some(on) = self.stuck_detection {
                    builder = builder.stuck_detection(on);
                }
                if let Some(policy) = self.confirmation_policy {
                    builder = builder.confirmation_policy(policy);
                }
                if let Some(on) = self.autotitle {
                    builder = builder.autotitle(on);
                }
                for (key, value) in self.tags {
                    builder = builder.tag(key, value);
                }
                for (name, value) in self.secrets {
                    builder = builder.secret(name, value);
                }
                Ok(Conversation::Remote(builder.create().await?))
            }
        }
    }
}

/// Values and lookups of a local conversation's secrets.
#[cfg(feature = "local")]
type SplitSecrets = (
    BTreeMap<String, String>,
    BTreeMap<String, oh_protocol::LookupSecret>,
);

#[cfg(feature = "local")]
fn split_secrets(secrets: BTreeMap<String, SecretSource>) -> Result<SplitSecrets> {
    let mut values = BTreeMap::new();
    let mut lookups = BTreeMap::new();
    for (name, source) in secrets {
        match source {
            SecretSource::Static(secret) => {
                let value = secret.value.ok_or_else(|| {
                    Error::invalid_option(format!("secret {name} has no value"))
                })?;
                values.insert(name, value.expose().to_owned());
            }
            SecretSource::Lookup(lookup) => {
                lookups.insert(name, lookup);
            }
            _ => {
                return Err(Error::invalid_option(format!(
                    "secret {name} has a kind this crate cannot resolve"
                )));
            }
        }
    }
    Ok((values, lookups))
}

impl Conversation {
    /// Creates a conversation of `agent` in `workspace` with event `callbacks`: local for a
    /// local workspace, remote for a remote one. See [`Conversation::builder`] for options.
    pub async fn new(
        agent: Agent,
        workspace: impl Into<Workspace>,
        callbacks: impl IntoIterator<Item = Callback>,
    ) -> Result<Self> {
        Self::builder(agent, workspace)
            .callbacks(callbacks)
            .build()
            .await
    }

    /// Starts building a conversation of `agent` in `workspace`.
    pub fn builder(agent: Agent, workspace: impl Into<Workspace>) -> ConversationBuilder {
        ConversationBuilder {
            agent,
            workspace: workspace.into(),
            callbacks: Vec::new(),
            conversation_id: None,
            max_iterations: None,
            stuck_detection: None,
            confirmation_policy: None,
            secrets: BTreeMap::new(),
            tags: BTreeMap::new(),
            persistence_dir: None,
            autotitle: None,
            delete_on_close: None,
        }
    }

    /// The conversation id.
    pub fn id(&self) -> uuid::Uuid {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => c.id(),
            #[cfg(feature = "client")]
            Self::Remote(c) => c.id(),
        }
    }

    /// True for [`Conversation::Local`].
    pub fn is_local(&self) -> bool {
        match self {
            #[cfg(feature = "local")]
            Self::Local(_) => true,
            #[cfg(feature = "client")]
            Self::Remote(_) => false,
        }
    }

    /// The local conversation, if this is one.
    #[cfg(feature = "local")]
    #[cfg_attr(docsrs, doc(cfg(feature = "local")))]
    pub fn as_local(&self) -> Option<&oh_agent::conversation::LocalConversation> {
        match self {
            Self::Local(c) => Some(c),
            #[cfg(feature = "client")]
            Self::Remote(_) => None,
        }
    }

    /// The remote conversation, if this is one.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn as_remote(&self) -> Option<&oh_client::RemoteConversation> {
        match self {
            Self::Remote(c) => Some(c),
            #[cfg(feature = "local")]
            Self::Local(_) => None,
        }
    }

    /// Sends a message without starting a run: a [`Message`], or text for a user message
    /// (`send_message("Fix the tests")`, as in Python).
    pub async fn send_message(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => Ok(c.send_message(message).await?),
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.send_message(message).await?),
        }
    }

    /// Sends a user text message without starting a run (the same as
    /// [`send_message`](Self::send_message) with text).
    pub async fn send_text(&self, text: impl Into<String>) -> Result<()> {
        self.send_message(Message::user(text)).await
    }

    /// Runs the agent until it finishes, pauses, waits for confirmation or reaches the
    /// iteration cap, and returns the status it stopped in. A run that ends in `error` or
    /// `stuck` is [`Error::Run`]. A remote run is waited for at most an hour
    /// ([`client::DEFAULT_RUN_TIMEOUT`](crate::client::DEFAULT_RUN_TIMEOUT)).
    pub async fn run(&self) -> Result<ExecutionStatus> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => {
                let status = c.run().await?;
                match status {
                    ExecutionStatus::Error | ExecutionStatus::Stuck => {
                        Err(Error::Run(oh_protocol::RunFailure::from_events(
                            c.id(),
                            status,
                            &c.events(),
                        )))
                    }
                    other => Ok(other),
                }
            }
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.run().await?),
        }
    }

    /// Asks the agent to pause after its current step.
    pub async fn pause(&self) -> Result<()> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => Ok(c.pause()?),
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.pause().await?),
        }
    }

    /// Cancels the current step at once; the conversation ends up paused.
    pub async fn interrupt(&self) -> Result<()> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => Ok(c.interrupt()?),
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.interrupt().await?),
        }
    }

    /// Rejects every action waiting for confirmation, with `reason`. To accept them, call
    /// [`run`](Self::run).
    pub async fn reject_pending_actions(&self, reason: &str) -> Result<()> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => Ok(c.reject_pending_actions(reason)?),
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.reject_pending_actions(reason).await?),
        }
    }

    /// Changes the confirmation policy.
    pub async fn set_confirmation_policy(&self, policy: ConfirmationPolicy) -> Result<()> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => Ok(c.set_confirmation_policy(policy)?),
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.set_confirmation_policy(policy).await?),
        }
    }

    /// Asks the agent's LLM a side question about the conversation so far and returns its
    /// answer; nothing is recorded (no event, no status change). Works during a run.
    pub async fn ask_agent(&self, question: impl Into<String>) -> Result<String> {
        let question = question.into();
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => Ok(c.ask_agent(&question).await?),
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.ask_agent(question).await?),
        }
    }

    /// Adds or replaces secrets: values (`String`) or lookups
    /// ([`LookupSecret`](oh_protocol::LookupSecret)).
    pub async fn update_secrets<V: Into<SecretSource>>(
        &self,
        secrets: impl IntoIterator<Item = (String, V)>,
    ) -> Result<()> {
        let secrets: BTreeMap<String, SecretSource> = secrets
            .into_iter()
            .map(|(name, value)| (name, value.into()))
            .collect();
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => {
                let (values, lookups) = split_secrets(secrets)?;
                c.update_secrets(values)?;
                Ok(c.update_lookup_secrets(lookups)?)
            }
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.update_secrets(secrets).await?),
        }
    }

    /// Adds a callback for events from now on.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => c.subscribe(callback),
            #[cfg(feature = "client")]
            Self::Remote(c) => c.subscribe(callback),
        }
    }

    /// The events so far, in order. After [`run`](Self::run) returns they include every
    /// event of the run.
    pub fn events(&self) -> Vec<Event> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => c.events(),
            #[cfg(feature = "client")]
            Self::Remote(c) => c.events(),
        }
    }

    /// The current execution status.
    pub async fn status(&self) -> Result<ExecutionStatus> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => Ok(c.status()),
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.status().await?),
        }
    }

    /// Usage and cost per LLM.
    pub async fn stats(&self) -> Result<ConversationStats> {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => Ok(c.state().stats),
            #[cfg(feature = "client")]
            Self::Remote(c) => Ok(c.stats().await?),
        }
    }

    /// Total USD spent on LLM calls so far.
    pub async fn accumulated_cost(&self) -> Result<f64> {
        Ok(self.stats().await?.accumulated_cost())
    }

    /// Releases the conversation: a local one closes its tools (the shell), a remote one
    /// stops its event socket and, if built with `delete_on_close` (the default), is deleted
    /// on the server. Failures are logged, not returned.
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "local")]
            Self::Local(c) => c.close().await,
            #[cfg(feature = "client")]
            Self::Remote(c) => c.close().await,
        }
    }
}

