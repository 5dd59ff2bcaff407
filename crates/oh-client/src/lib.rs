//! Clients for an OpenHands agent server, wire-compatible with the Python SDK 1.57.0 and with
//! `oh-server`.
//!
//! - [`RemoteWorkspace`]: commands (`execute_command`), streamed file upload and download,
//!   git changes and diffs, health checks — each an HTTP call to the server.
//! - [`RemoteConversation`]: create or attach, send messages, run until the run ends, pause,
//!   confirmation answers, secrets, stats; events arrive over a WebSocket that reconnects with
//!   backoff and reconciles from REST, so callbacks see every event exactly once.
//!
//! - [`ServiceClient`]: JSON over the same HTTP stack to services that are not agent servers
//!   (a runtime API, the Cloud API), with keys as headers that `Debug` never shows, and
//!   [`ReadinessWait`], how such a client waits until a sandbox's agent server is ready.
//!
//! Errors are typed ([`Error`]): connection failures (the transport's error kept as the
//! [`source`](std::error::Error::source), so a refused connection can be told apart), timeouts,
//! HTTP statuses with the server's error body ([`oh_protocol::ErrorBody`]), fatal socket closes
//! (4001, 4004), failed runs ([`oh_protocol::RunFailure`], the same type a local conversation
//! reports) and a misused builder ([`Error::Builder`]). [`Error::is_transient`] is the one
//! retry decision.
//!
//! ```no_run
//! # async fn demo() -> Result<(), oh_client::Error> {
//! use std::time::Duration;
//! use oh_client::{RemoteConversation, RemoteWorkspace};
//! use oh_protocol::{Agent, Llm, ToolSpec};
//!
//! let workspace = RemoteWorkspace::builder("http://localhost:8000")
//!     .api_key("session-key")
//!     .working_dir("/workspace/project")
//!     .build()?;
//! workspace.wait_until_healthy(Duration::from_secs(30)).await?;
//! workspace.file_upload("notes.txt", "notes.txt").await?;
//!
//! let agent = Agent::new(Llm::new("openai/gpt-4o"), vec![ToolSpec::new("terminal")]);
//! let conversation = RemoteConversation::builder(&workspace)
//!     .agent(agent)
//!     .callback(|event| println!("{}", event.kind()))
//!     .create()
//!     .await?;
//! conversation.send_text("Summarise notes.txt").await?;
//! conversation.run().await?;
//! conversation.close().await;
//! # Ok(()) }
//! ```

mod conversation;
mod error;
mod http;
mod service;
mod stream;
mod workspace;

pub use conversation::{
    DEFAULT_DELETE_ON_CLOSE, DEFAULT_RUN_TIMEOUT, RemoteConversation, RemoteConversationBuilder,
};
pub use error::{Error, Result};
pub use service::{
    ReadinessWait, ServiceClient, WaitExpired, block_on_own_thread, error_chain, path_segment,
    query_string,
};
pub use stream::Backoff;
pub use workspace::{
    DEFAULT_COMMAND_TIMEOUT, DEFAULT_WORKING_DIR, RemoteWorkspace, RemoteWorkspaceBuilder,
};
