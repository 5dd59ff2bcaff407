//! `scripted-llm SCRIPT.json [--port PORT]`: serves a scripted LLM until killed.
//!
//! The script is a JSON array of replies in the serde form documented on
//! [`oh_testkit::Reply`]. Once listening, prints `listening on <base_url>` on stdout (one
//! line, flushed), where `<base_url>` is `http://127.0.0.1:PORT/v1`. The recorded requests
//! are at `GET /_scripted/requests`, the number of replies left at `GET /_scripted/remaining`.

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use oh_testkit::{Reply, ScriptedLlm};

const USAGE: &str = "usage: scripted-llm SCRIPT.json [--port PORT]";

fn parse_args() -> Result<(String, u16), String> {
    let mut args = std::env::args().skip(1);
    let mut script = None;
    let mut port = 0u16;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value
                    .parse()
                    .map_err(|e| format!("bad port {value:?}: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            _ if script.is_none() => script = Some(arg),
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    Ok((script.ok_or(USAGE)?, port))
}

async fn run() -> Result<(), String> {
    let (path, port) = parse_args()?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let script: Vec<Reply> =
        serde_json::from_str(&text).map_err(|e| format!("bad script {path}: {e}"))?;
    let server = ScriptedLlm::start_on(SocketAddr::from(([127, 0, 0, 1], port)), script)
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
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
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("scripted-llm: {message}");
            ExitCode::FAILURE
        }
    }
}
