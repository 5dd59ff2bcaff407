//! Wire types of the OpenHands agent server, exactly as the Python SDK 1.57.0 writes them.
//!
//! Everything that crosses the wire between an agent server and its clients is here: events
//! (discriminated by `kind`), messages and content parts, the actions and observations of the
//! default tools, conversation state and REST models, bash and file results, and WebSocket
//! frames. This crate does no IO: it depends on serde, serde_json and uuid only.
//!
//! # Two forms
//!
//! The reference writes REST responses with every field present and events with unset fields
//! left out. Plain `serde_json` gives the first form; [`wire::to_compact_value`] and friends
//! give the second. [`Event`] always writes the compact form. See [`wire`].
//!
//! # Forward compatibility
//!
//! Every discriminated union has an `Unknown` variant keeping the raw JSON, so an event kind
//! (or action, observation, policy, agent kind) added by a newer server decodes, and encodes
//! back unchanged.
//!
//! ```
//! use oh_protocol::{Event, Source};
//!
//! let json = r#"{"id":"e1","timestamp":"2026-05-04T10:15:02.118204","source":"user",
//!   "llm_message":{"role":"user","content":[{"cache_prompt":false,"type":"text","text":"hi"}],
//!   "thinking_blocks":[]},"activated_skills":[],"extended_content":[],"kind":"MessageEvent"}"#;
//! let event: Event = serde_json::from_str(json)?;
//! let Event::Message(message) = &event else { panic!("a message") };
//! assert_eq!(message.base.source, Source::User);
//!
//! let future: Event = serde_json::from_str(r#"{"kind":"HologramEvent","id":"x","beam":1}"#)?;
//! assert_eq!(future.kind(), "HologramEvent");
//! assert_eq!(serde_json::to_value(&future)?["beam"], 1);
//! # Ok::<(), serde_json::Error>(())
//! ```

mod tagged;

pub mod agent;
pub mod api;
pub mod bash;
pub mod cloud;
pub mod event;
pub mod gemini;
pub mod message;
pub mod runtime;
pub mod server;
pub mod state;
pub mod time;
pub mod tool;
pub mod tool_gpt5_planning;
pub mod wire;
pub mod workspace;

pub use agent::{
    Agent, AgentBase, AlwaysConfirm, ConfirmRisky, ConfirmationPolicy, Llm, LocalWorkspace,
    LookupSecret, NeverConfirm, SecretSource, SecretString, SecurityAnalyzer, StaticSecret,
    ToolSpec, Workspace,
};
pub use api::{
    AgentResponseResult, AskAgentRequest, AskAgentResponse, ConfirmationResponseRequest,
    ConversationInfo, ConversationPage, ConversationRuntimeInfo, ConversationSortOrder, EventPage,
    EventSortOrder, ExposedUrl, ForkConversationRequest, NavigateConversationRequest, OrgConfig,
    SandboxConfig, SendMessageRequest, SetConfirmationPolicyRequest, SetSecurityAnalyzerRequest,
    SkillInfo, SkillsRequest, SkillsResponse, StartConversationRequest, Success,
    UpdateConversationRequest, UpdateSecretsRequest,
};
pub use bash::{
    BashCommand, BashError, BashEvent, BashEventPage, BashOutput, ExecuteBashRequest, HexUuid,
};
pub use event::{
    ActionEvent, AgentErrorEvent, ConversationErrorEvent, ConversationStateUpdateEvent,
    ErrorClassification, Event, EventBase, MessageEvent, ObservationEvent, SecurityRisk, Source,
    SystemPromptEvent, UserRejectObservation,
};
pub use message::{Content, ImageContent, Message, MessageToolCall, Role, TextContent};
pub use server::{AuthFrame, ErrorBody, ErrorDetail, HealthStatus, ServerInfo};
pub use state::{
    ConversationState, ConversationStats, ExecutionStatus, Metrics, MetricsSnapshot, TokenUsage,
};
pub use tagged::Unknown;
pub use tool::{Action, Observation};
pub use workspace::{
    CommandResult, FileOperationResult, FileUploadResult, GitChange, GitChangeStatus, GitDiff,
};
