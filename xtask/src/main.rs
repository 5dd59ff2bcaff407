//! Developer tasks for the openhands-rs workspace, run as `cargo xtask <task>`.
//!
//! Hand-rolled argument parsing on purpose: the tasks are few and take almost
//! no options, so a CLI framework would cost more than it saves.

use std::env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod bench;
mod client_suite;
mod conformance;
mod examples;
mod features;
mod image;
mod load;
mod public_api;
#[cfg(test)]
mod tidy;

const USAGE: &str = "\
Usage: cargo xtask <task> [args...]

Tasks:
  fixtures        Regenerate the golden wire fixtures of oh-protocol from the
                  reference Python SDK (needs root: it uses a chroot).
  llm-fixtures    Capture the LLM requests the reference Python agent sends
                  (OpenAI Chat Completions and Anthropic Messages) into the
                  golden fixtures of oh-agent (needs root, like `fixtures`).
  conformance [--suite python|rust|all] [--server rust|python] [-v] [GROUP...]
                  Wire conformance in both directions (needs root like
                  `fixtures`): the real Python SDK client classes
                  (xtask/conformance/suite.py) drive our server, and our
                  oh-client suite (xtask/src/client_suite.rs) drives our
                  server and the Python reference server. --suite picks
                  the client suites (default all); --server picks one
                  server (default: Python suite vs ours, Rust suite vs
                  both). GROUP names (or prefixes) pick check groups:
                  workspace, files, git, conversation, pause,
                  confirmation, secrets, restart (Python suite only),
                  errors, runtime_api (Python suite vs ours only: the
                  SDK's APIRemoteWorkspace against our sandbox server on
                  Docker, image openhands-agent-server:latest from
                  `cargo xtask image`), cloud (likewise, the SDK's
                  OpenHandsCloudWorkspace against the same server's Cloud
                  API). -v shows tracebacks.
  pyenv ARGS...   Run xtask/pyenv.sh, the reference Python environment:
                    pyenv setup              build or update it
                    pyenv python ARGS...     run its python, cwd mapped to /src
                    pyenv server PORT [KEY]  run the Python agent server
                    pyenv root               print where the chroot lives
  bench [OPTIONS] Benchmark our agent server against the Python reference
                  side by side (needs root for the reference's chroot),
                  and our sandbox server (ours only, beside third-party
                  figures). Prints tables, writes <target>/bench/results.json;
                  exits 1 if a sandbox check failed (a warm start served
                  cold, containers left behind).
                    --only a,b,...  measurements: startup, echo, files,
                                    create, run, saved, ws, docker,
                                    sandbox (default: all; docker and
                                    sandbox need the image of
                                    `cargo xtask image`)
                    --ours-only     skip the Python server
                    --python-only   skip our server
                    --runs N        echo round trips (default 50)
                    --starts N      cold starts per server (default 5)
                    --quick         fewer repetitions, for iterating
                    --poll-ms N     pause between bash-event polls (default 1)
                    --ws-subscribers N, --ws-conversations N
                                    WebSocket fan-out shape (default 100 over 4)
                    --sandbox-runs N
                                    sandbox create → echo runs, cold and
                                    warm each (default 20)
                    --bin PATH      our server binary (default: build it)
                    --no-build      use the existing release binaries
                    --json PATH     where to write the JSON results
                    --keep          keep the scratch directories
  load [OPTIONS]  Our server under slow and idle clients, on loopback: holds
                  1,000 idle connections, runs 200 concurrent commands and a
                  slow-loris client while /health is probed every 50 ms,
                  then SIGTERMs the server and times its exit. Prints the
                  figures and PASS/FAIL (/health max < 50 ms, every command
                  ok, exit within the drain). Bounded to 60 s.
                    --bin PATH      our server binary (default: build it)
                    --no-build      use the existing release binary
                    --idle N        idle connections (default 1000)
                    --commands N    concurrent commands (default 200)
                    --drain S       the server's shutdown drain (default 5)
  examples [NAME...]
                  Build the examples of openhands-examples and run each
                  (or the named ones) against a scripted LLM in this
                  process (LLM_API_KEY=scripted, LLM_MODEL=openai/
                  scripted-model, LLM_BASE_URL=<its URL>); checks the
                  exit status and that the conversation finished, or
                  the SKIP line of examples needing outside services.
                  One PASS/SKIP/FAIL line per example.
  features        `cargo check -p openhands` with no features, the
                  defaults, each feature alone and all features, and
                  check that the `client` feature pulls in neither
                  bollard, oh-agent nor oh-server.
  image [OPTIONS]  Build the agent-server image openhands-agent-server:<version>
                  and :latest: the `runtime-prebuilt` target of
                  docker/Dockerfile with our release binary, on --base if
                  the engine has or can pull it, else on a Debian bookworm
                  base built offline with debootstrap and `docker import`
                  (cached by recipe). Ends with a smoke test of the binary
                  in the image. Needs root (debootstrap) and Docker.
                    --tag T         tag only T instead
                    --bin PATH      use this server binary (no build)
                    --no-build      use the existing release binary
                    --base IMAGE    online base (default debian:bookworm-slim)
                    --offline       go straight to the offline base
                    --verify        then run the image as DockerWorkspace
                                    does and check health, the key, the
                                    user, git, /workspace and `docker stop`
  public-api [--bless]
                  List the public items of openhands (all features) and
                  oh-client from rustdoc JSON (stable rustdoc with
                  RUSTC_BOOTSTRAP=1) and diff them against the committed
                  crates/<crate>/public-api.txt; --bless rewrites them.
  docker-sweep [--all]
                  Remove the containers DockerWorkspace started (label
                  org.openhands-rs.workspace) whose owning process is
                  gone; --all removes every one of them.
  help            Show this text.
";

/// Where the fixture capture script writes, relative to the workspace root.
const FIXTURES_DIR: &str = "crates/oh-protocol/tests/fixtures";

/// Where the LLM request capture script writes, relative to the workspace root.
const LLM_FIXTURES_DIR: &str = "crates/oh-agent/tests/fixtures/llm_requests";

fn main() -> Result<ExitCode> {
    let mut args = env::args_os().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<OsString> = args.collect();
    match task.to_str() {
        Some("" | "help" | "-h" | "--help") => {
            print_usage();
            Ok(ExitCode::SUCCESS)
        }
        Some("fixtures") => {
            if !rest.is_empty() {
                bail!("`fixtures` takes no arguments\n\n{USAGE}");
            }
            fixtures()?;
            Ok(ExitCode::SUCCESS)
        }
        Some("llm-fixtures") => {
            if !rest.is_empty() {
                bail!("`llm-fixtures` takes no arguments\n\n{USAGE}");
            }
            llm_fixtures()?;
            Ok(ExitCode::SUCCESS)
        }
        Some("conformance") => conformance::conformance(&rest),
        Some("pyenv") => pyenv(&rest),
        Some("bench") => bench::main(&rest),
        Some("examples") => examples::main(&rest),
        Some("features") => features::main(&rest),
        Some("docker-sweep") => docker_sweep(&rest),
        Some("image") => image::main(&rest),
        Some("load") => load::main(&rest),
        Some("public-api") => public_api::main(&rest),
        _ => bail!("unknown task `{}`\n\n{USAGE}", task.to_string_lossy()),
    }
}

#[allow(clippy::print_stdout, reason = "usage text is this task's output")]
fn print_usage() {
    print!("{USAGE}");
}

/// The workspace root: the parent of this package's directory.
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// The version of the reference Python SDK the harness pins (all four packages:
/// `openhands-agent-server`, `-sdk`, `-tools`, `-workspace`). `xtask/pyenv.sh` defaults to
/// the same version (a tidy test checks it); `PYREF_VERSION` in the environment overrides both.
pub(crate) const REFERENCE_VERSION: &str = "1.58.2";

/// A command running `xtask/pyenv.sh` with `args`, pinned to [`REFERENCE_VERSION`] unless
/// `PYREF_VERSION` is set.
fn pyenv_command<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("xtask").join("pyenv.sh"))
        .args(args);
    if std::env::var_os("PYREF_VERSION").is_none() {
        cmd.env("PYREF_VERSION", REFERENCE_VERSION);
    }
    cmd
}

/// `cargo xtask fixtures`: capture the golden fixtures with the Python SDK.
#[allow(clippy::print_stdout, reason = "the next steps are this task's output")]
fn fixtures() -> Result<()> {
    let root = workspace_root();
    run(pyenv_command(["setup"]).current_dir(&root))?;
    run(pyenv_command(["python", "xtask/fixtures/capture.py", FIXTURES_DIR]).current_dir(&root))?;
    println!(
        "\nFixtures written to {FIXTURES_DIR}.\n\
         Next: refresh the snapshots and review the changes:\n  \
         cargo insta test -p oh-protocol --accept\n\
         or, without cargo-insta:\n  \
         INSTA_UPDATE=always cargo test -p oh-protocol\n\
         then read `git diff` before committing."
    );
    Ok(())
}

/// `cargo xtask llm-fixtures`: record the LLM requests of the Python agent.
#[allow(clippy::print_stdout, reason = "the next steps are this task's output")]
fn llm_fixtures() -> Result<()> {
    let root = workspace_root();
    run(pyenv_command(["setup"]).current_dir(&root))?;
    run(
        pyenv_command(["python", "xtask/fixtures/capture_llm.py", LLM_FIXTURES_DIR])
            .current_dir(&root),
    )?;
    println!(
        "\nLLM request fixtures written to {LLM_FIXTURES_DIR}.\n\
         Next: check them against the Rust schemas and review the changes:\n  \
         cargo test -p oh-agent --test all -- tool_schemas::\n\
         then read `git diff` before committing."
    );
    Ok(())
}

/// `cargo xtask pyenv ARGS...`: hand the arguments to `xtask/pyenv.sh`,
/// from the caller's directory, and exit with its status.
fn pyenv(args: &[OsString]) -> Result<ExitCode> {
    let mut cmd = pyenv_command(args);
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", describe(&cmd)))?;
    // A status without a code means a signal; report it as a plain failure.
    let code = status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Run `cmd` with inherited stdio; a failure to start or a non-zero exit is an
/// error naming the command.
fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", describe(cmd));
    }
    Ok(())
}

/// `program arg arg...` for messages.
fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `cargo xtask docker-sweep [--all]`: removes stray DockerWorkspace containers.
#[allow(
    clippy::print_stdout,
    reason = "the removed containers are this task's output"
)]
fn docker_sweep(args: &[OsString]) -> Result<ExitCode> {
    let all = match args
        .iter()
        .map(|a| a.to_str())
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => false,
        [Some("--all")] => true,
        _ => bail!("`docker-sweep` takes only `--all`\n\n{USAGE}"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let removed = runtime.block_on(async {
        if all {
            return oh_workspace_docker::sweep(None).await;
        }
        let owners = oh_workspace_docker::owners().await?;
        let mut removed = Vec::new();
        for pid in owners {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                removed.extend(oh_workspace_docker::sweep(Some(pid)).await?);
            }
        }
        Ok(removed)
    })?;
    for name in &removed {
        println!("removed {name}");
    }
    println!("docker-sweep: {} container(s) removed", removed.len());
    Ok(ExitCode::SUCCESS)
}
