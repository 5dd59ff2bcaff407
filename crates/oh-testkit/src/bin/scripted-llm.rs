//! `scripted-llm SCRIPT.json [--port PORT]`: serves a scripted LLM until killed.
//!
//! The script is a JSON array of replies in the serde form documented on
//! [`oh_testkit::Reply`] (and in `--help`). Once listening, prints `listening on <base_url>`
//! on stdout (one line, flushed), where `<base_url>` is `http://127.0.0.1:PORT/v1`. The
//! recorded requests are at `GET /_scripted/requests`, the number of replies left at
//! `GET /_scripted/remaining`.
//!
//! Requests that offer no tools (an agent server's title request, a condenser's summary) are
//! answered with a fixed text outside the script, so they cannot take a step meant for the
//! agent; `--script-toolless` sends them through the script instead. With `--by-step` the
//! script is not consumed: a request gets the entry of its step in its conversation, so any
//! number of conversations can follow it at once (`cargo xtask bench` runs it so).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use oh_testkit::{Reply, ScriptedLlm};

/// The script format, shown by `--help`.
const SCRIPT_FORMAT: &str = r#"SCRIPT FORMAT
  A JSON array; each request that offers tools takes the next entry. An entry is an object
  tagged by "kind", or a bare string (a text reply):
    {"kind": "text", "text": "Hello"}
    {"kind": "tool_calls", "text": "Let me look.",
     "calls": [{"name": "terminal", "arguments": {"command": "ls"}},
               {"id": "call_x", "name": "finish", "arguments": {"message": "done"}}]}
    {"kind": "thinking", "thinking": "Hmm.", "signature": "sig", "then": <entry>}
    {"kind": "empty"}
    {"kind": "status", "status": 429, "body": {"error": {"message": "slow down"}}}
    {"kind": "raw", "body": <any JSON response body>}
    {"kind": "delay", "ms": 2000, "then": <entry>}
    {"kind": "headers", "headers": {"x-litellm-response-cost": "0.5"}, "then": <entry>}
  A call's "arguments" is a JSON value or the raw string sent to the client (which may be
  invalid JSON, to test the agent's handling of it); "id" is optional.

EXAMPLE
  echo '[{"kind":"tool_calls","calls":[{"name":"terminal","arguments":{"command":"echo hi"}}]},
         {"kind":"tool_calls","calls":[{"name":"finish","arguments":{"message":"done"}}]}]' > s.json
  scripted-llm s.json --port 9000
  LLM_BASE_URL=http://127.0.0.1:9000/v1 LLM_MODEL=openai/scripted LLM_API_KEY=x ..."#;

/// A scripted OpenAI- and Anthropic-compatible LLM on 127.0.0.1, for tests and examples.
#[derive(Debug, Parser)]
#[command(name = "scripted-llm", version, after_long_help = SCRIPT_FORMAT)]
struct Args {
    /// The script: a JSON array of replies (see SCRIPT FORMAT under --help).
    script: PathBuf,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Send requests that offer no tools (title, summary) through the script too, instead
    /// of answering them with a fixed text.
    #[arg(long)]
    script_toolless: bool,
    /// Give each request that offers tools the entry whose index is the number of assistant
    /// messages in its history (its step), without consuming the script: any number of
    /// conversations can follow the script at once.
    #[arg(long)]
    by_step: bool,
}

/// The answer to requests that offer no tools, unless `--script-toolless`.
const TOOLLESS_REPLY: &str = "Scripted conversation";

async fn run(args: Args) -> Result<(), String> {
    let path = args.script.display();
    let text =
        std::fs::read_to_string(&args.script).map_err(|e| format!("cannot read {path}: {e}"))?;
    let script: Vec<Reply> =
        serde_json::from_str(&text).map_err(|e| format!("bad script {path}: {e}"))?;
    let server = ScriptedLlm::start_on(SocketAddr::from(([127, 0, 0, 1], args.port)), script)
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    if !args.script_toolless {
        server.answer_toolless(Some(Reply::text(TOOLLESS_REPLY)));
    }
    server.replay_by_step(args.by_step);
    {
        let mut out = std::io::stdout().lock();
        #[allow(
            clippy::print_stdout,
            reason = "the harness reads this line from stdout"
        )]
        let written =
            writeln!(out, "listening on {}", server.base_url()).and_then(|()| out.flush());
        written.map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    // Serve until the process is killed.
    std::future::pending::<()>().await;
    drop(server);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    // `--help` and `--version` print and exit 0; a usage error exits 2, as clap does.
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("scripted-llm: {message}");
            ExitCode::FAILURE
        }
    }
}
