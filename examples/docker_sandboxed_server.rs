//! The agent server in a local Docker container: the reference's `DockerWorkspace` starts an
//! agent-server image, waits for its health check and hands back a remote workspace; a
//! command shows the sandbox, and a conversation runs there (write facts about the project
//! into FACTS.txt, then delete the file), its events streaming back, with the cost printed
//! at the end. The container is removed afterwards.
//!
//! This needs the Docker workspace (`oh-workspace-docker`, feature `docker`), which is not
//! implemented yet, so for now the example only says so and exits successfully. It reads
//! `LLM_API_KEY`, `LLM_MODEL` and `LLM_BASE_URL` like the others.
//!
//! ```sh
//! cargo run -p openhands-examples --example docker_sandboxed_server
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what happens")]

mod common;

fn main() {
    common::init_tracing();
    if common::llm_from_env().is_none() {
        common::say_conversation_skipped();
    }
    println!("SKIP: needs the docker workspace (oh-workspace-docker, not implemented yet)");
}
