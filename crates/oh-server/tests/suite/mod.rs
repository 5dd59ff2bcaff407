//! The helper module shared by the topics (`common`: a server on a free port, an HTTP and a
//! socket client), then one module per topic.

mod common;

mod agent_profiles;
mod auth;
mod bash;
mod bash_socket;
mod browser;
mod catalogue;
mod connections;
mod conversations;
mod deferred_init;
mod errors;
mod fanout;
mod files;
mod fork;
mod fuzz_inputs;
mod git;
mod health;
mod keys;
mod lookup_secrets;
mod navigate;
mod plugins;
mod restart;
mod runtime;
mod session_socket;
mod settings;
mod skills;
mod sockets_limits;
