//! The agent server in a sandbox from a runtime API: the reference's `APIRemoteWorkspace`
//! asks the runtime API at `RUNTIME_API_URL` (default `https://runtime.eval.all-hands.dev`)
//! with `RUNTIME_API_KEY` for a sandbox running an agent-server image, waits until it is
//! ready and hands back a remote workspace; a command shows the sandbox, and a conversation
//! runs there (write facts about the project into FACTS.txt, then delete the file), with the
//! cost printed at the end. The sandbox is stopped afterwards.
//!
//! Without `RUNTIME_API_KEY` the example says what it needs and exits successfully. The
//! runtime-API workspace (`oh-workspace-api`, feature `api`) is not implemented yet, so with
//! a key it says that instead. It reads `LLM_API_KEY`, `LLM_MODEL` and `LLM_BASE_URL` like
//! the others.
//!
//! ```sh
//! RUNTIME_API_KEY=... cargo run -p openhands-examples --example api_sandboxed_server
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

/// The reference's default runtime API.
const DEFAULT_RUNTIME_API_URL: &str = "https://runtime.eval.all-hands.dev";

fn main() {
    common::init_tracing();
    let key = std::env::var("RUNTIME_API_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let url = std::env::var("RUNTIME_API_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_RUNTIME_API_URL.to_owned());
    if common::llm_from_env().is_none() {
        common::say_conversation_skipped();
    }
    if key.is_none() {
        println!(
            "SKIP: needs RUNTIME_API_KEY (and RUNTIME_API_URL, default {DEFAULT_RUNTIME_API_URL}) \
             to ask a runtime API for a sandbox"
        );
        return;
    }
    println!(
        "SKIP: needs the runtime-API workspace (oh-workspace-api, not implemented yet) \
         to start a sandbox at {url}"
    );
}
