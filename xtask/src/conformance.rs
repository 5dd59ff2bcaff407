//! `cargo xtask conformance`: run the conformance suite (`xtask/conformance/`)
//! inside the reference Python environment against an agent server.
//!
//! The suite starts the server itself (it kills and restarts it for the
//! restart checks), from the command line in `OH_CONFORMANCE_SERVER`. Everything
//! the suite needs inside the chroot is copied into a fresh temporary directory,
//! which `pyenv.sh python` shows as `/src`: the suite's files and, for our
//! server, the freshly built binary.
//!
//! The suite's `runtime_api` and `cloud` groups drive our sandbox server instead, which
//! this task starts on the host (see [`runtime_api`]); against the Python server
//! the groups do not apply and the suite skips them.

mod runtime_api;

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::bench::server::{Kind, Launch, Scratch, start};
use super::{cargo, describe, pyenv_command, workspace_root};

/// Where the suite lives, relative to the workspace root.
const SUITE_DIR: &str = "xtask/conformance";
/// The captured LLM requests of the reference (`tools_<preset>.json`, `openai_chat.json`),
/// shown to the suite as `llm_requests/`.
const GOLDEN_TOOLS_DIR: &str = "crates/oh-agent/tests/fixtures/llm_requests";

/// The binary under test and its package.
const SERVER_PACKAGE: &str = "oh-server";
const SERVER_BIN: &str = "openhands-agent-server";

/// The reference server, as installed in the chroot's venv by pyenv.sh.
const PYTHON_SERVER_CMD: &str =
    "/opt/oh/bin/python -m openhands.agent_server --host 127.0.0.1 --port {port}";

/// Which server a suite drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Target {
    /// Our `openhands-agent-server`.
    Rust,
    /// The reference Python server of the pinned SDK.
    Python,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Rust => "rust",
            Target::Python => "python",
        }
    }
}

/// Which client suites run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Suites {
    /// The Python SDK client suite (`xtask/conformance/suite.py`).
    Python,
    /// Our `oh-client` suite (the `client_suite` test of the openhands-e2e package).
    Rust,
    /// Both.
    All,
}

/// `cargo xtask conformance [--suite python|rust|all] [--server rust|python] [-v] [GROUP...]`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The client suites to run.
    #[arg(long = "suite", value_name = "SUITE", value_enum, default_value_t = Suites::All)]
    suites: Suites,
    /// Only this server (default: the Python suite against ours, the Rust suite against
    /// both).
    #[arg(long = "server", value_name = "SERVER", value_enum)]
    target: Option<Target>,
    /// Show tracebacks (Python suite).
    #[arg(short, long)]
    verbose: bool,
    /// Check groups by name or prefix: workspace, files, git, conversation, pause,
    /// confirmation, secrets, restart (Python suite only), errors, runtime_api (Python suite
    /// vs ours only: the SDK's APIRemoteWorkspace against our sandbox server on Docker, image
    /// openhands-agent-server:latest from `cargo xtask image`), cloud (likewise, the SDK's
    /// OpenHandsCloudWorkspace against the same server's Cloud API).
    #[arg(value_name = "GROUP")]
    groups: Vec<String>,
}

impl Args {
    /// The arguments of the Python suite: the group filters, then `-v`.
    fn suite_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = self.groups.iter().map(OsString::from).collect();
        if self.verbose {
            args.push("-v".into());
        }
        args
    }
}

/// `cargo xtask conformance [--suite python|rust|all] [--server rust|python] [-v] [GROUP...]`:
/// the Python SDK client suite against our server and our Rust client suite against both
/// servers; exits non-zero if any check failed.
#[allow(clippy::print_stdout, reason = "the summary is this task's output")]
pub(crate) fn conformance(args: Args) -> Result<ExitCode> {
    let suite_args = args.suite_args();
    let needs_ours = args.target != Some(Target::Python) || args.suites != Suites::Python;
    let binary = if needs_ours {
        Some(cargo::build_binary(
            SERVER_PACKAGE,
            SERVER_BIN,
            cargo::Profile::Dev,
        )?)
    } else {
        None
    };
    // The runtime API and Cloud groups run only against our server (its sandboxes run our
    // image).
    let sandbox_binary = if args.suites != Suites::Rust
        && args.target.unwrap_or(Target::Rust) == Target::Rust
        && runtime_api::selected(&suite_args)
    {
        Some(cargo::build_binary(
            runtime_api::PACKAGE,
            runtime_api::BIN,
            cargo::Profile::Dev,
        )?)
    } else {
        None
    };
    let mut rows: Vec<(String, Target, String, bool)> = Vec::new();
    if args.suites != Suites::Rust {
        let target = args.target.unwrap_or(Target::Rust);
        let setup = match &sandbox_binary {
            Some(binary) => Some(runtime_api::Setup::start(binary)?),
            None => None,
        };
        let env = setup.as_ref().map(|s| s.env()).unwrap_or_default();
        let (passed, summary) = python_suite(target, binary.as_deref(), &suite_args, &env)?;
        rows.push(("python SDK client".into(), target, summary, passed));
        if let Some(runtime_api::Setup::Running(api)) = setup {
            let (summary, clean) = match api.finish(!passed) {
                Ok(left) => (
                    format!(
                        "{} sandbox container(s) left by instance {}",
                        left.count, left.instance
                    ),
                    left.count == 0,
                ),
                Err(e) => (format!("could not count the sandboxes left: {e:#}"), false),
            };
            rows.push(("sandbox server cleanup".into(), target, summary, clean));
        }
    }
    if args.suites != Suites::Python {
        let suite = ClientSuite::build()?;
        let tests = suite.select(&args.groups)?;
        let targets = match args.target {
            _ if tests.is_empty() => {
                println!(
                    "\nrust oh-client suite: no group matches {:?}; not run",
                    args.groups
                );
                Vec::new()
            }
            Some(t) => vec![t],
            None => vec![Target::Rust, Target::Python],
        };
        for target in targets {
            let (checks, failed, passed) = rust_suite(&suite, &tests, target, binary.as_deref())?;
            rows.push((
                "rust oh-client".into(),
                target,
                format!("{checks} checks, {failed} failed"),
                passed && failed == 0 && checks > 0,
            ));
        }
    }
    let reference =
        env::var("PYREF_VERSION").unwrap_or_else(|_| super::REFERENCE_VERSION.to_owned());
    println!(
        "\nconformance summary (client suite x server; python = openhands {reference}, all four packages):"
    );
    for (suite, target, summary, passed) in &rows {
        let mark = if *passed { "PASS" } else { "FAIL" };
        println!(
            "  {mark}  {suite:<19} vs {:<6} server: {summary}",
            target.label()
        );
    }
    if rows.is_empty() {
        println!("  FAIL  no suite ran");
    }
    let ok = !rows.is_empty() && rows.iter().all(|r| r.3);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Runs the Python SDK suite in the chroot against `target`, with `env` added to its
/// environment; returns whether it passed and its last summary line.
fn python_suite(
    target: Target,
    binary: Option<&Path>,
    suite_args: &[OsString],
    env: &[(&str, String)],
) -> Result<(bool, String)> {
    let dir = TempDir::new("oh-conformance")?;
    copy_suite(&workspace_root().join(SUITE_DIR), dir.path())?;
    // The reference's captured tool schemas, for the tool-preset groups.
    let golden = dir.path().join("llm_requests");
    fs::create_dir(&golden).with_context(|| format!("could not create {}", golden.display()))?;
    copy_suite(&workspace_root().join(GOLDEN_TOOLS_DIR), &golden)?;
    let server_cmd = match (target, binary) {
        (Target::Rust, Some(binary)) => {
            let dest = dir.path().join(SERVER_BIN);
            fs::copy(binary, &dest).with_context(|| {
                format!("could not copy {} to {}", binary.display(), dest.display())
            })?;
            format!("/src/{SERVER_BIN} --host 127.0.0.1 --port {{port}}")
        }
        (Target::Rust, None) => bail!("our server was not built"),
        (Target::Python, _) => PYTHON_SERVER_CMD.to_owned(),
    };
    let mut cmd = pyenv_command(["python", "-u", "suite.py"]);
    cmd.args(suite_args)
        .current_dir(dir.path())
        .env("OH_CONFORMANCE_SERVER", &server_cmd)
        .env("OH_CONFORMANCE_LABEL", target.label())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", describe(&cmd)))?;
    let mut summary = String::from("no summary");
    if let Some(out) = child.stdout.take() {
        use std::io::{BufRead, Write};
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            if line.contains(" checks, ") {
                summary = line.trim().to_owned();
            }
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}")?;
        }
    }
    let status = child.wait()?;
    Ok((status.success(), summary))
}

/// The Rust client suite: the `client_suite` test of the e2e package, one ignored test per
/// group, reading the server from `OH_SUITE_*` variables.
#[derive(Debug)]
struct ClientSuite {
    /// The test executable, as cargo built it.
    executable: PathBuf,
}

/// The e2e package and its client suite test.
const CLIENT_SUITE_PACKAGE: &str = "openhands-e2e";
const CLIENT_SUITE_TEST: &str = "client_suite";
/// The suffix of a group's test name (`workspace_group` runs group `workspace`).
const GROUP_TEST_SUFFIX: &str = "_group";

impl ClientSuite {
    /// Builds the test executable.
    fn build() -> Result<Self> {
        let executable = cargo::build_test(CLIENT_SUITE_PACKAGE, CLIENT_SUITE_TEST)?;
        Ok(Self { executable })
    }

    /// The group tests whose group name starts with one of `filters` (all without filters),
    /// as `--list --ignored` names them.
    fn select(&self, filters: &[String]) -> Result<Vec<String>> {
        let mut cmd = Command::new(&self.executable);
        cmd.args(["--list", "--ignored", "--format", "terse"]);
        let output = cmd
            .output()
            .with_context(|| format!("could not start `{}`", describe(&cmd)))?;
        if !output.status.success() {
            bail!("`{}` failed ({})", describe(&cmd), output.status);
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.strip_suffix(": test"))
            .filter(|name| {
                let group = name.strip_suffix(GROUP_TEST_SUFFIX).unwrap_or(name);
                filters.is_empty() || filters.iter().any(|f| group.starts_with(f.as_str()))
            })
            .map(str::to_owned)
            .collect())
    }
}

/// Starts `target` and runs the Rust client suite's `tests` against it; returns the checks
/// counted, those failed and whether the test run passed.
fn rust_suite(
    suite: &ClientSuite,
    tests: &[String],
    target: Target,
    binary: Option<&Path>,
) -> Result<(usize, usize, bool)> {
    let kind = match target {
        Target::Rust => Kind::Ours,
        Target::Python => {
            let setup = pyenv_command(["setup"]).output()?;
            if !setup.status.success() {
                bail!(
                    "`pyenv.sh setup` failed: {}",
                    String::from_utf8_lossy(&setup.stderr).trim()
                );
            }
            Kind::Python
        }
    };
    let pyroot = PathBuf::from(String::from_utf8(pyenv_command(["root"]).output()?.stdout)?.trim());
    let logs = TempDir::new("oh-client-suite-logs")?;
    let launch = Launch {
        ours_bin: binary.map(Path::to_path_buf).unwrap_or_default(),
        pyenv: workspace_root().join("xtask").join("pyenv.sh"),
        pyroot,
        key: format!("suite-{}", uuid::Uuid::new_v4().simple()),
        log_dir: logs.path().to_path_buf(),
        env: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let scratch = Scratch::new(kind, &launch)?;
    let server = runtime.block_on(start(kind, &launch, &scratch, "client-suite"));
    let mut server = match server {
        Ok(server) => server,
        Err(e) => {
            scratch.remove();
            return Err(e);
        }
    };
    // The suite's root exists on both servers (the Python server makes a conversation's
    // working directory, but not its parents).
    let root = scratch.host("work");
    if let Err(e) = std::fs::create_dir_all(&root) {
        server.stop();
        scratch.remove();
        return Err(e).with_context(|| format!("creating {}", root.display()));
    }
    let mut cmd = Command::new(&suite.executable);
    cmd.args(["--ignored", "--exact", "--test-threads", "1", "--nocapture"])
        .args(tests)
        .env(
            "OH_SUITE_URL",
            format!("http://127.0.0.1:{}", server.http.port()),
        )
        .env("OH_SUITE_KEY", &launch.key)
        .env("OH_SUITE_ROOT", scratch.server("work"))
        .env("OH_SUITE_LABEL", target.label())
        // A failed group's report is its FAIL lines, not a backtrace of the assertion.
        .env("RUST_BACKTRACE", "0");
    let counted = run_counting(&mut cmd);
    server.stop();
    scratch.remove();
    counted
}

/// Runs the suite's test executable, echoing its output, and sums its
/// `client suite group G: N checks, F failed` lines; returns checks, failed and whether it
/// exited with success.
fn run_counting(cmd: &mut Command) -> Result<(usize, usize, bool)> {
    use std::io::{BufRead, Write};
    cmd.stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    let (mut checks, mut failed) = (0, 0);
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines() {
            let line = line?;
            if let Some((n, f)) = group_count(&line) {
                checks += n;
                failed += f;
            }
            writeln!(std::io::stdout().lock(), "{line}")?;
        }
    }
    let status = child.wait()?;
    Ok((checks, failed, status.success()))
}

/// The counts of a `client suite group G: N checks, F failed` line.
fn group_count(line: &str) -> Option<(usize, usize)> {
    let rest = line.trim().strip_prefix("client suite group ")?;
    let (_, counts) = rest.split_once(": ")?;
    let (checks, failed) = counts.split_once(" checks, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some((checks.parse().ok()?, failed.parse().ok()?))
}

/// Copy the suite's files (not its subdirectories, such as `__pycache__`).
fn copy_suite(from: &Path, to: &Path) -> Result<()> {
    let entries =
        fs::read_dir(from).with_context(|| format!("could not read {}", from.display()))?;
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let dest = to.join(entry.file_name());
            fs::copy(entry.path(), &dest).with_context(|| {
                format!(
                    "could not copy {} to {}",
                    entry.path().display(),
                    dest.display()
                )
            })?;
        }
    }
    Ok(())
}

/// A fresh directory under the system temporary directory, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("could not create {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Cli::try_parse_from(std::iter::once("conformance").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn defaults_to_every_suite() {
        let args = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, None);
        assert_eq!(args.suites, Suites::All);
        assert!(args.suite_args().is_empty());
    }

    #[test]
    fn options_in_both_spellings_and_checks_pass_through() {
        let args = parse(&["--server", "python", "workspace", "--suite=rust"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, Some(Target::Python));
        assert_eq!(args.suites, Suites::Rust);
        assert_eq!(args.suite_args(), vec![OsString::from("workspace")]);
        let args = parse(&["files", "--server=rust", "--verbose", "--suite", "python"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, Some(Target::Rust));
        assert_eq!(args.suites, Suites::Python);
        assert_eq!(
            args.suite_args(),
            vec![OsString::from("files"), OsString::from("-v")]
        );
        let args = parse(&["-v", "runtime_api.provision"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(args.verbose);
        assert_eq!(args.groups, vec!["runtime_api.provision".to_owned()]);
    }

    #[test]
    fn rejects_unknown_servers_suites_and_options() {
        assert!(parse(&["--server", "go"]).is_err());
        assert!(parse(&["--server"]).is_err());
        assert!(parse(&["--suite", "java"]).is_err());
        assert!(parse(&["--quiet"]).is_err());
    }

    #[test]
    fn group_counts_are_read() {
        assert_eq!(
            group_count("client suite group workspace: 10 checks, 1 failed"),
            Some((10, 1))
        );
        assert_eq!(group_count("PASS [rust] workspace/echo"), None);
        assert_eq!(
            group_count("client suite group x: many checks, 0 failed"),
            None
        );
    }
}
