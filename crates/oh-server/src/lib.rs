//! The OpenHands agent server, in Rust: a drop-in for the Python `openhands-agent-server`.
//!
//! It hosts [`oh_agent`] conversations behind the reference's REST routes and its WebSocket
//! event stream, so the Python SDK's `RemoteConversation` and `RemoteWorkspace` drive it
//! unmodified. The binary `openhands-agent-server` takes the same flags and environment as
//! the Python one; [`Server`] runs it in-process.
//!
//! Module map: [`config`] (flags, `OH_*` environment), `app` (state, router, serve loop),
//! `listener` (accept loop, connection cap and timeouts, bounded drain),
//! `auth` and `cors` (middleware), `conversations` and `events` (REST), `sockets` (WebSocket
//! stream; `ws` its upgrade and limits), `bash`, `files`, `git` (workspace routes), `crypto` (secrets at rest),
//! `settings` and `settings_store` (`/api/settings`, its secrets store, `/api/profiles`),
//! `init` (deferred init: a dormant server and `/api/init`).

pub mod config;
pub mod error;

mod agent_profiles;
mod app;
mod auth;
mod bash;
mod blocking;
mod conversations;
mod cors;
mod crypto;
mod events;
mod extended;
mod extract;
mod files;
mod git;
mod init;
mod launch;
mod listener;
mod runtime;
mod server_details;
mod service;
mod settings;
mod settings_store;
mod skills;
mod sockets;
mod upload_journal;
mod ws;

pub use app::{Server, ServerError, Spawned};
pub use auth::ApiKeys;
pub use config::{Config, ConfigError};
pub use extended::NOT_IMPLEMENTED as EXTENDED_ROUTES_501;
pub use listener::serve_router;
pub use server_details::PROTOCOL_VERSION;
