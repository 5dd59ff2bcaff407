//! `cargo xtask examples`: build every example of `openhands-examples`, run each against a
//! scripted LLM, and check what it printed.
//!
//! Each example runs as a subprocess with `LLM_API_KEY=scripted`,
//! `LLM_MODEL=openai/scripted-model` and `LLM_BASE_URL` pointing at oh-testkit's
//! `scripted-llm` binary ([`ScriptedLlm`]) that plays the model's part with a script made for that example: real
//! tool calls (commands that create, run and edit files) and then `finish`. Requests without
//! tools (an agent server's auto-title) are answered outside the script. The environment
//! variables that would send an example to outside services are removed, so every run is
//! hermetic.
//!
//! An example passes when it exits 0 and its output shows what its case expects: the run
//! ended `finished` (`EXAMPLE_STATUS: finished`) with the whole script used, a given line,
//! or, for examples that need services this machine does not have, a `SKIP:` line (reported
//! as SKIP).

use std::fs::File;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::scripted_llm::{Mode, ScriptedLlm};
use super::{cargo, describe, workspace_root};

/// The package holding the examples.
const PACKAGE: &str = "openhands-examples";

/// Time one example may take.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Environment variables that point examples at outside services.
const OUTSIDE_SERVICES: &[&str] = &[
    "AGENT_SERVER_URL",
    "AGENT_SERVER_API_KEY",
    "AGENT_SERVER_WORKING_DIR",
    "RUNTIME_API_URL",
    "RUNTIME_API_KEY",
    "OPENHANDS_CLOUD_API_KEY",
    "OPENHANDS_CLOUD_API_URL",
];

/// What an example's output must show.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// A conversation ran to `finished` on the scripted LLM, using the whole script.
    Finished,
    /// The example needs a service that is not available and says `SKIP: …`.
    Skip,
    /// As `Finished` when the local Docker Engine has the agent-server image (CI builds it
    /// first with `cargo xtask image`); otherwise the example must say `SKIP: …`.
    FinishedWithDocker,
    /// The output contains this text (examples without an LLM).
    Output(&'static str),
}

/// One example: its scripted model and what it must print.
struct Case {
    name: &'static str,
    /// The script, in the `scripted-llm` script format (see its `--help`).
    script: fn() -> Vec<Value>,
    expect: Expect,
}

fn no_script() -> Vec<Value> {
    Vec::new()
}

/// A reply calling tool `name` with `arguments`.
fn tool(name: &str, arguments: Value) -> Value {
    json!({"kind": "tool_calls", "calls": [{"name": name, "arguments": arguments}]})
}

/// Terminal call, then `finish`.
fn command_then_finish(command: &str, message: &str) -> Vec<Value> {
    vec![
        tool("terminal", json!({ "command": command })),
        tool("finish", json!({ "message": message })),
    ]
}

/// The cases, one per example in `examples/Cargo.toml`.
const CASES: &[Case] = &[
    Case {
        name: "replay_events",
        script: no_script,
        expect: Expect::Output("state snapshot (status finished)"),
    },
    Case {
        name: "local_conversation",
        script: || {
            command_then_finish(
                "printf 'echo hello\\n' > hello.sh && sh hello.sh",
                "hello.sh prints hello.",
            )
        },
        expect: Expect::Finished,
    },
    Case {
        name: "local_agent_server",
        script: || {
            command_then_finish(
                "printf 'echo Hello from the agent server\\n' > hello.sh && sh hello.sh",
                "hello.sh prints the greeting.",
            )
        },
        expect: Expect::Finished,
    },
    Case {
        name: "workspace_operations",
        script: || {
            command_then_finish(
                "echo three >> demo-repo/notes.txt && git -C demo-repo status --short",
                "notes.txt now ends with three.",
            )
        },
        expect: Expect::Finished,
    },
    Case {
        name: "docker_sandboxed_server",
        script: || {
            command_then_finish(
                "printf '%s %s\\n' \"$(uname -s)\" \"$(id -u)\" > FACTS.txt && cat FACTS.txt",
                "FACTS.txt written.",
            )
        },
        expect: Expect::FinishedWithDocker,
    },
    Case {
        name: "api_sandboxed_server",
        script: || {
            command_then_finish(
                "printf '%s %s\\n' \"$(uname -s)\" \"$(id -u)\" > FACTS.txt && cat FACTS.txt",
                "FACTS.txt written.",
            )
        },
        expect: Expect::FinishedWithDocker,
    },
    Case {
        name: "cloud_workspace",
        script: || {
            vec![
                tool(
                    "terminal",
                    json!({ "command": "printf '%s %s\\n' \"$(uname -s)\" \"$(id -u)\" > FACTS.txt && cat FACTS.txt" }),
                ),
                tool("terminal", json!({ "command": "rm FACTS.txt" })),
                tool(
                    "finish",
                    json!({ "message": "FACTS.txt written, shown and deleted." }),
                ),
            ]
        },
        expect: Expect::FinishedWithDocker,
    },
    Case {
        name: "converse",
        // The same two steps for the local run and then the container's.
        script: || {
            let mut script = command_then_finish(
                "echo checked >> notes.txt && cat notes.txt",
                "notes.txt now ends with checked.",
            );
            script.extend(command_then_finish(
                "echo checked >> notes.txt && cat notes.txt",
                "notes.txt now ends with checked.",
            ));
            script
        },
        expect: Expect::FinishedWithDocker,
    },
];

/// How one example went.
#[derive(Debug)]
enum Verdict {
    Pass,
    Skip(String),
    Fail(String),
}

/// `cargo xtask examples [NAME...]`.
#[allow(clippy::print_stdout, reason = "the verdicts are this task's output")]
pub(crate) fn main(wanted: &[String]) -> Result<ExitCode> {
    let root = workspace_root();
    let declared = declared_examples(&root.join("examples").join("Cargo.toml"))?;
    for name in wanted {
        if !declared.contains(name) {
            bail!("no example named `{name}` in examples/Cargo.toml");
        }
    }
    let selected: Vec<&String> = declared
        .iter()
        .filter(|name| wanted.is_empty() || wanted.contains(name))
        .collect();

    println!("examples: building {PACKAGE}…");
    let binaries = cargo::build_examples(PACKAGE, cargo::Profile::Dev)?;
    super::scripted_llm::build()?;
    let log_dir = cargo::target_dir()?.join("xtask-examples");
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (mut passed, mut skipped, mut failed) = (0, 0, 0);
    for name in selected {
        let started = Instant::now();
        let verdict = match CASES.iter().find(|case| case.name == name) {
            Some(case) => match binaries.iter().find(|(built, _)| built == name) {
                Some((_, binary)) => runtime.block_on(run_case(case, binary, &log_dir, &root)),
                None => Verdict::Fail("cargo built no executable for it".into()),
            },
            None => Verdict::Fail(
                "no case for it in xtask/src/examples.rs (a script and an expectation)".into(),
            ),
        };
        let took = started.elapsed().as_secs_f64();
        match verdict {
            Verdict::Pass => {
                passed += 1;
                println!("PASS  {name} ({took:.1}s)");
            }
            Verdict::Skip(why) => {
                skipped += 1;
                println!("SKIP  {name}: {why}");
            }
            Verdict::Fail(why) => {
                failed += 1;
                println!("FAIL  {name} ({took:.1}s): {why}");
                for stream in ["stdout", "stderr"] {
                    let log = log_dir.join(format!("{name}.{stream}"));
                    print_tail(&log, stream, 30);
                }
            }
        }
    }
    for case in CASES {
        if !declared.iter().any(|name| name == case.name) {
            failed += 1;
            println!(
                "FAIL  {}: a case in xtask/src/examples.rs names no example of examples/Cargo.toml",
                case.name
            );
        }
    }
    println!("examples: {passed} passed, {skipped} skipped, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs one example against its scripted LLM and judges its output.
async fn run_case(case: &Case, binary: &Path, log_dir: &Path, root: &Path) -> Verdict {
    // The binary answers requests without tools (an agent server's auto-title) outside the
    // script.
    let script_path = log_dir.join(format!("{}.script.json", case.name));
    let llm = match ScriptedLlm::start(&Value::Array((case.script)()), &script_path, Mode::InOrder)
    {
        Ok(llm) => llm,
        Err(e) => return Verdict::Fail(format!("cannot start the scripted LLM: {e:#}")),
    };
    let mut command = Command::new(binary);
    command
        .current_dir(root)
        .env("LLM_API_KEY", "scripted")
        .env("LLM_MODEL", "openai/scripted-model")
        .env("LLM_BASE_URL", llm.base_url())
        // An example's error, not anyhow's backtrace, belongs in the tail of a failure.
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null());
    for name in OUTSIDE_SERVICES {
        command.env_remove(name);
    }
    let run = {
        let log_dir = log_dir.to_path_buf();
        let name = case.name;
        tokio::task::spawn_blocking(move || run_logged(command, &log_dir, name))
    };
    let status = match run.await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Verdict::Fail(format!("{e:#}")),
        Err(e) => return Verdict::Fail(format!("the runner task failed: {e}")),
    };
    let stdout =
        std::fs::read_to_string(log_dir.join(format!("{}.stdout", case.name))).unwrap_or_default();
    if let Some(why) = status {
        return Verdict::Fail(why);
    }
    let expect = match case.expect {
        Expect::FinishedWithDocker if docker_image_present() => Expect::Finished,
        Expect::FinishedWithDocker => Expect::Skip,
        other => other,
    };
    let (requests, remaining) = match (llm.requests().await, llm.remaining().await) {
        (Ok(requests), Ok(remaining)) => (requests, remaining),
        (Err(e), _) | (_, Err(e)) => {
            return Verdict::Fail(format!("cannot ask the scripted LLM what it saw: {e:#}"));
        }
    };
    judge(expect, &stdout, &requests, remaining)
}

/// True when the local Docker Engine has the agent-server image `cargo xtask image` builds.
fn docker_image_present() -> bool {
    Command::new("docker")
        .args(["image", "inspect", "openhands-agent-server:latest"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `command` with its output in `<log_dir>/<name>.{stdout,stderr}`, for at most
/// [`EXAMPLE_TIMEOUT`]. `Ok(None)` when it exited 0, `Ok(Some(why))` when it failed.
fn run_logged(mut command: Command, log_dir: &Path, name: &str) -> Result<Option<String>> {
    let stdout = log_dir.join(format!("{name}.stdout"));
    let stderr = log_dir.join(format!("{name}.stderr"));
    command
        .stdout(File::create(&stdout).with_context(|| format!("creating {}", stdout.display()))?)
        .stderr(File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?);
    let mut child = command
        .spawn()
        .with_context(|| format!("could not start `{}`", describe(&command)))?;
    let deadline = Instant::now() + EXAMPLE_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((!status.success()).then(|| format!("exited with {status}")));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Some(format!(
                "still running after {}s, killed",
                EXAMPLE_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Compares an example's output (and its use of the scripted LLM) with its case.
fn judge(expect: Expect, stdout: &str, requests: &[Value], remaining: u64) -> Verdict {
    let agent_requests = requests
        .iter()
        .filter(|r| {
            r["body"]
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|tools| !tools.is_empty())
        })
        .count();
    match expect {
        Expect::Finished => {
            if !stdout
                .lines()
                .any(|l| l.trim() == "EXAMPLE_STATUS: finished")
            {
                return Verdict::Fail(
                    "the output does not show the conversation finished \
                     (no `EXAMPLE_STATUS: finished` line)"
                        .into(),
                );
            }
            if remaining > 0 {
                return Verdict::Fail(format!(
                    "the agent stopped with {remaining} scripted replies unused"
                ));
            }
            Verdict::Pass
        }
        Expect::Skip => {
            let Some(line) = stdout.lines().find_map(|l| l.trim().strip_prefix("SKIP:")) else {
                return Verdict::Fail("the output has no `SKIP:` line".into());
            };
            if agent_requests > 0 {
                return Verdict::Fail(format!(
                    "it skipped but called the LLM {agent_requests} times"
                ));
            }
            Verdict::Skip(line.trim().to_owned())
        }
        Expect::FinishedWithDocker => Verdict::Fail("unresolved expectation".into()),
        Expect::Output(text) => {
            if stdout.contains(text) {
                Verdict::Pass
            } else {
                Verdict::Fail(format!("the output does not contain {text:?}"))
            }
        }
    }
}

/// The `name`s of the `[[example]]` tables of the examples' manifest, in order.
fn declared_examples(manifest: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut names = Vec::new();
    let mut in_example = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_example = line == "[[example]]";
        } else if in_example
            && let Some(value) = line.strip_prefix("name")
            && let Some(value) = value.trim_start().strip_prefix('=')
        {
            names.push(value.trim().trim_matches('"').to_owned());
        }
    }
    if names.is_empty() {
        bail!("{} declares no [[example]]", manifest.display());
    }
    Ok(names)
}

/// The last `lines` lines of a log, indented.
#[allow(
    clippy::print_stdout,
    reason = "the logs of a failure are this task's output"
)]
fn print_tail(path: &Path, label: &str, lines: usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    if all.is_empty() {
        return;
    }
    println!("      {label} ({}):", path.display());
    for line in &all[all.len().saturating_sub(lines)..] {
        println!("      | {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_example_has_a_case() {
        let declared =
            declared_examples(&workspace_root().join("examples").join("Cargo.toml")).unwrap();
        for name in &declared {
            assert!(
                CASES.iter().any(|case| case.name == name),
                "examples/Cargo.toml declares `{name}` but xtask/src/examples.rs has no case for it"
            );
        }
        for case in CASES {
            assert!(
                declared.iter().any(|name| name == case.name),
                "{}",
                case.name
            );
        }
    }
}
