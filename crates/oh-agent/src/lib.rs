//! The OpenHands agent core.
//!
//! - [`llm`]: LLM clients for OpenAI-compatible Chat Completions and Anthropic Messages, over
//!   hyper + rustls, with retries, typed errors and per-call metrics.
//! - [`tools`]: the default tools `terminal`, `file_editor`, `task_tracker`, `finish` and
//!   `think`, with the reference's wire names and parameter schemas.
//! - [`conversation`]: the conversation engine — execution-status state machine, agent step,
//!   confirmation, stuck detection, persistence in the reference's on-disk layout.
//! - [`skills`]: skill files (frontmatter, triggers), where the reference finds them, and
//!   the agent context that puts them into the prompt and activates them.
//! - [`workspace`]: `LocalWorkspace` (commands and file transfer on this machine).
//! - [`regular_file`]: opening a file named by a client or the model only when it is a
//!   regular file, without ever waiting on a FIFO.
//!
//! Wire types come from [`oh_protocol`].

pub mod conversation;
pub mod llm;
pub mod plugin;
pub mod prompt;
pub mod pyfmt;
pub mod regular_file;
pub mod secrets;
pub mod skills;
pub mod tools;
pub mod workspace;
