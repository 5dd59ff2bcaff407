//! The agent server in an OpenHands Cloud sandbox: the reference's
//! `OpenHandsCloudWorkspace` asks OpenHands Cloud at `OPENHANDS_CLOUD_API_URL` (default
//! `https://app.all-hands.dev`) with `OPENHANDS_CLOUD_API_KEY` for a sandbox, waits until it
//! runs and hands back a remote workspace; a command shows the sandbox, and a conversation
//! runs there (write facts about the project into FACTS.txt, then delete the file), with the
//! cost printed at the end. The sandbox is deleted afterwards.
//!
//! The LLM settings are sent to the sandbox, so `LLM_BASE_URL` must be reachable from the
//! cloud (not a proxy on this machine).
//!
//! Without `OPENHANDS_CLOUD_API_KEY` the example says what it needs and exits successfully.
//! The Cloud workspace (`oh-workspace-cloud`, feature `cloud`) is not implemented yet, so
//! with a key it says that instead. It reads `LLM_API_KEY`, `LLM_MODEL` and `LLM_BASE_URL`
//! like the others.
//!
//! ```sh
//! OPENHANDS_CLOUD_API_KEY=... cargo run -p openhands-examples --example cloud_workspace
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

/// The reference's default Cloud API.
const DEFAULT_CLOUD_API_URL: &str = "https://app.all-hands.dev";

fn main() {
    common::init_tracing();
    let key = std::env::var("OPENHANDS_CLOUD_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let url = std::env::var("OPENHANDS_CLOUD_API_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_CLOUD_API_URL.to_owned());
    if common::llm_from_env().is_none() {
        common::say_conversation_skipped();
    }
    if key.is_none() {
        println!(
            "SKIP: needs OPENHANDS_CLOUD_API_KEY (and OPENHANDS_CLOUD_API_URL, default \
             {DEFAULT_CLOUD_API_URL}) to ask OpenHands Cloud for a sandbox"
        );
        return;
    }
    println!(
        "SKIP: needs the Cloud workspace (oh-workspace-cloud, not implemented yet) to start \
         a sandbox at {url}"
    );
}
