//! Developer tasks for the openhands-rs workspace, run as `cargo xtask <task>`.
//!
//! One typed command line (clap, one subcommand per task); the tasks orchestrate: they build
//! binaries through [`cargo`], start servers and the reference Python environment, and run
//! the suites. xtask links no crate of the product, so it builds while the wire types are
//! being reworked.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, Parser, Subcommand};

mod bench;
mod cargo;
mod conformance;
mod driver;
mod examples;
mod features;
mod image;
mod load;
mod public_api;
mod scripted_llm;
#[cfg(test)]
mod tidy;

/// Developer tasks for the openhands-rs workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Option<Task>,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Regenerate the golden wire fixtures of oh-protocol from the reference Python SDK
    /// (needs root: it uses a chroot).
    Fixtures,
    /// Capture the LLM requests the reference Python agent sends (OpenAI Chat Completions and
    /// Anthropic Messages) into the golden fixtures of oh-agent (needs root, like `fixtures`).
    LlmFixtures,
    /// Wire conformance in both directions (needs root like `fixtures`).
    ///
    /// The real Python SDK client classes (xtask/conformance/suite.py) drive our server, and
    /// our oh-client suite (the test `client_suite` of the openhands-e2e package, tests/)
    /// drives our server and the Python reference server.
    Conformance(conformance::Args),
    /// Run xtask/pyenv.sh, the reference Python environment.
    ///
    /// `pyenv setup` builds or updates it; `pyenv python ARGS...` runs its python, cwd mapped
    /// to /src; `pyenv server PORT [KEY]` runs the Python agent server; `pyenv root` prints
    /// where the chroot lives.
    Pyenv {
        /// Arguments for xtask/pyenv.sh.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Benchmark our agent server against the Python reference side by side.
    ///
    /// Needs root for the reference's chroot; our sandbox server is measured alone, beside
    /// third-party figures. Prints tables, writes `<target>/bench/results.json`; exits 1 if a
    /// sandbox check failed (a warm start served cold, containers left behind).
    Bench(bench::Args),
    /// Our server under slow and idle clients, on loopback.
    ///
    /// Holds 1,000 idle connections, runs 200 concurrent commands and a slow-loris client
    /// while /health is probed every 50 ms, then SIGTERMs the server and times its exit.
    /// Prints the figures and PASS/FAIL (/health max < 50 ms, every command ok, exit within
    /// the drain). Bounded to 60 s.
    Load(load::Args),
    /// Build the examples of openhands-examples and run each against a scripted LLM.
    ///
    /// The scripted LLM is oh-testkit's `scripted-llm` binary (LLM_API_KEY=scripted,
    /// LLM_MODEL=openai/scripted-model, `LLM_BASE_URL=<its URL>`); checks the exit status and
    /// that the conversation finished, or the SKIP line of examples needing outside
    /// services. One PASS/SKIP/FAIL line per example.
    Examples {
        /// Run only these examples (default: all).
        names: Vec<String>,
    },
    /// `cargo check -p openhands` with no features, the defaults, each feature alone and all
    /// features; and the `client` feature pulls in neither bollard, oh-agent nor oh-server.
    Features,
    /// Build the agent-server image `openhands-agent-server:<version>` and `:latest`.
    ///
    /// The `runtime-prebuilt` target of docker/Dockerfile with our release binary, on --base
    /// if the engine has or can pull it, else on a Debian bookworm base built offline with
    /// debootstrap and `docker import` (cached by recipe). Ends with a smoke test of the
    /// binary in the image. Needs root (debootstrap) and Docker.
    Image(image::Args),
    /// List the public items of openhands (all features) and oh-client and diff them against
    /// the committed `crates/<crate>/public-api.txt`.
    ///
    /// The items come from rustdoc JSON (stable rustdoc with RUSTC_BOOTSTRAP=1, in a target
    /// directory of its own). Exits 1 with the diff when they differ.
    PublicApi {
        /// Rewrite the committed lists instead of checking them.
        #[arg(long)]
        bless: bool,
    },
    /// Remove the containers DockerWorkspace started (label org.openhands-rs.workspace) whose
    /// owning process is gone.
    DockerSweep {
        /// Remove every one of them.
        #[arg(long)]
        all: bool,
    },
}

/// Where the fixture capture script writes, relative to the workspace root.
const FIXTURES_DIR: &str = "crates/oh-protocol/tests/fixtures";

/// Where the LLM request capture script writes, relative to the workspace root.
const LLM_FIXTURES_DIR: &str = "crates/oh-agent/tests/fixtures/llm_requests";

fn main() -> Result<ExitCode> {
    let Some(task) = Cli::parse().task else {
        print_usage()?;
        return Ok(ExitCode::SUCCESS);
    };
    match task {
        Task::Fixtures => {
            fixtures()?;
            Ok(ExitCode::SUCCESS)
        }
        Task::LlmFixtures => {
            llm_fixtures()?;
            Ok(ExitCode::SUCCESS)
        }
        Task::Conformance(args) => conformance::conformance(args),
        Task::Pyenv { args } => pyenv(&args),
        Task::Bench(args) => bench::main(args),
        Task::Examples { names } => examples::main(&names),
        Task::Features => features::main(),
        Task::PublicApi { bless } => public_api::main(bless),
        Task::DockerSweep { all } => docker_sweep(all),
        Task::Image(args) => image::main(args),
        Task::Load(args) => load::main(args),
    }
}

/// The help text, on stdout.
fn print_usage() -> Result<()> {
    Cli::command().print_help()?;
    Ok(())
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
         cargo test -p oh-agent --test tool_schemas\n\
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

/// `cargo xtask docker-sweep [--all]`: removes stray DockerWorkspace containers, through
/// the driver (which links `oh-workspace-docker`; xtask does not).
#[allow(
    clippy::print_stdout,
    reason = "the removed containers are this task's output"
)]
fn docker_sweep(all: bool) -> Result<ExitCode> {
    let mut cmd = driver::command()?;
    cmd.arg("docker-sweep");
    if all {
        cmd.arg("--all");
    }
    let removed = driver::json_lines(&mut cmd)?;
    for line in &removed {
        if let Some(name) = line["removed"].as_str() {
            println!("removed {name}");
        }
    }
    println!("docker-sweep: {} container(s) removed", removed.len());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every `cargo xtask ...` line of CI and of the docs still parses (placeholders such
    /// as `[--all]` or `ARGS...` are left out).
    #[test]
    fn documented_invocations_parse() {
        let root = workspace_root();
        let mut checked = 0;
        for file in [".ci/run", "README.md", "ARCHITECTURE.md", "SECURITY.md"] {
            let text = std::fs::read_to_string(root.join(file))
                .unwrap_or_else(|e| panic!("reading {file}: {e}"));
            for line in text.lines() {
                let Some(start) = line.find("cargo xtask ") else {
                    continue;
                };
                let words: Vec<&str> = line[start + "cargo xtask ".len()..]
                    .split(['`', ';', ')', '#', '|'])
                    .next()
                    .unwrap_or_default()
                    .split_whitespace()
                    .take_while(|w| {
                        !w.starts_with('[')
                            && !w.starts_with('<')
                            && !w.ends_with("...")
                            && !w.contains('{')
                            && w.chars().all(|c| !c.is_uppercase())
                    })
                    .collect();
                if words.is_empty() {
                    continue;
                }
                let parsed =
                    Cli::try_parse_from(std::iter::once("xtask").chain(words.iter().copied()));
                assert!(
                    parsed.is_ok(),
                    "{file}: `cargo xtask {}` does not parse: {}",
                    words.join(" "),
                    parsed.err().map(|e| e.to_string()).unwrap_or_default()
                );
                checked += 1;
            }
        }
        assert!(checked >= 10, "only {checked} invocations found");
    }
}
