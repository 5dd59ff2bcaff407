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
use super::client_suite;
use super::{USAGE, describe, pyenv_command, workspace_root};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suites {
    /// The Python SDK client suite (`xtask/conformance/suite.py`).
    Python,
    /// Our `oh-client` suite (`xtask/src/client_suite.rs`).
    Rust,
    /// Both.
    All,
}

/// The parsed arguments.
#[derive(Debug)]
struct Args {
    /// `--server`: only this server (default: the Python suite against ours, the Rust suite
    /// against both).
    target: Option<Target>,
    suites: Suites,
    /// Group filters and `-v`, passed to the Python suite; the filters also pick Rust groups.
    suite_args: Vec<OsString>,
}

fn parse_args(args: &[OsString]) -> Result<Args> {
    let mut target = None;
    let mut suites = Suites::All;
    let mut suite_args = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let (option, inline) = match arg.to_str() {
            Some(s) if s.starts_with("--server=") => {
                ("--server", Some(s["--server=".len()..].to_owned()))
            }
            Some(s) if s.starts_with("--suite=") => {
                ("--suite", Some(s["--suite=".len()..].to_owned()))
            }
            Some(s @ ("--server" | "--suite")) => (s, None),
            Some("-v" | "--verbose") => {
                suite_args.push("-v".into());
                continue;
            }
            Some(s) if s.starts_with('-') => bail!("unknown option `{s}`\n\n{USAGE}"),
            _ => {
                suite_args.push(arg.clone());
                continue;
            }
        };
        let value = match inline {
            Some(v) => v,
            None => iter
                .next()
                .and_then(|v| v.to_str())
                .with_context(|| format!("`{option}` needs a value"))?
                .to_owned(),
        };
        match (option, value.as_str()) {
            ("--server", "rust") => target = Some(Target::Rust),
            ("--server", "python") => target = Some(Target::Python),
            ("--suite", "python") => suites = Suites::Python,
            ("--suite", "rust") => suites = Suites::Rust,
            ("--suite", "all") => suites = Suites::All,
            ("--server", other) => bail!("unknown server `{other}`: expected rust or python"),
            (_, other) => bail!("unknown suite `{other}`: expected python, rust or all"),
        }
    }
    Ok(Args {
        target,
        suites,
        suite_args,
    })
}

/// `cargo xtask conformance [--suite python|rust|all] [--server rust|python] [-v] [GROUP...]`:
/// the Python SDK client suite against our server and our Rust client suite against both
/// servers; exits non-zero if any check failed.
#[allow(clippy::print_stdout, reason = "the summary is this task's output")]
pub(crate) fn conformance(args: &[OsString]) -> Result<ExitCode> {
    let args = parse_args(args)?;
    let needs_ours = args.target != Some(Target::Python) || args.suites != Suites::Python;
    let binary = if needs_ours {
        Some(build_binary(SERVER_PACKAGE, SERVER_BIN)?)
    } else {
        None
    };
    // The runtime API and Cloud groups run only against our server (its sandboxes run our
    // image).
    let sandbox_binary = if args.suites != Suites::Rust
        && args.target.unwrap_or(Target::Rust) == Target::Rust
        && runtime_api::selected(&args.suite_args)
    {
        Some(build_binary(runtime_api::PACKAGE, runtime_api::BIN)?)
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
        let (passed, summary) = python_suite(target, binary.as_deref(), &args.suite_args, &env)?;
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
        let filters: Vec<String> = args
            .suite_args
            .iter()
            .filter_map(|a| a.to_str())
            .filter(|a| !a.starts_with('-'))
            .map(str::to_owned)
            .collect();
        let any_group = filters.is_empty()
            || client_suite::GROUPS
                .iter()
                .any(|(name, _)| filters.iter().any(|f| name.starts_with(f.as_str())));
        let targets = match args.target {
            _ if !any_group => {
                println!("\nrust oh-client suite: no group matches {filters:?}; not run");
                Vec::new()
            }
            Some(t) => vec![t],
            None => vec![Target::Rust, Target::Python],
        };
        for target in targets {
            let outcomes = rust_suite(target, binary.as_deref(), &filters)?;
            let failed = outcomes.iter().filter(|o| !o.passed).count();
            rows.push((
                "rust oh-client".into(),
                target,
                format!("{} checks, {failed} failed", outcomes.len()),
                failed == 0 && !outcomes.is_empty(),
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

/// Starts `target` and runs the Rust client suite against it.
fn rust_suite(
    target: Target,
    binary: Option<&Path>,
    filters: &[String],
) -> Result<Vec<client_suite::Outcome>> {
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
    runtime.block_on(async {
        let scratch = Scratch::new(kind, &launch)?;
        let mut server = start(kind, &launch, &scratch, "client-suite").await?;
        let suite_target = client_suite::Target {
            url: format!("http://127.0.0.1:{}", server.http.port()),
            key: launch.key.clone(),
            root: scratch.server("work"),
        };
        let outcomes = match client_suite::wait_healthy(&suite_target).await {
            Ok(()) => client_suite::report(target.label(), &suite_target, filters).await,
            Err(e) => {
                server.stop();
                scratch.remove();
                return Err(e);
            }
        };
        server.stop();
        scratch.remove();
        Ok(outcomes)
    })
}

/// Build binary `bin` of `package` and return its path, as cargo reports it (so that
/// `CARGO_TARGET_DIR` and friends are respected).
fn build_binary(package: &str, bin: &str) -> Result<PathBuf> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--package", package, "--bin", bin])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    let output = cmd
        .output()
        .with_context(|| format!("could not start `{}`", describe(&cmd)))?;
    if !output.status.success() {
        bail!("`{}` failed ({})", describe(&cmd), output.status);
    }
    let mut found = None;
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == bin
            && let Some(path) = message["executable"].as_str()
        {
            found = Some(PathBuf::from(path));
        }
    }
    found.with_context(|| format!("`{}` reported no `{bin}` executable", describe(&cmd)))
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
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn defaults_to_every_suite() {
        let args = parse_args(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, None);
        assert_eq!(args.suites, Suites::All);
        assert!(args.suite_args.is_empty());
    }

    #[test]
    fn options_in_both_spellings_and_checks_pass_through() {
        let args = parse_args(&os(&["--server", "python", "workspace", "--suite=rust"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, Some(Target::Python));
        assert_eq!(args.suites, Suites::Rust);
        assert_eq!(args.suite_args, os(&["workspace"]));
        let args = parse_args(&os(&[
            "files",
            "--server=rust",
            "--verbose",
            "--suite",
            "python",
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, Some(Target::Rust));
        assert_eq!(args.suites, Suites::Python);
        assert_eq!(args.suite_args, os(&["files", "-v"]));
    }

    #[test]
    fn rejects_unknown_servers_suites_and_options() {
        assert!(parse_args(&os(&["--server", "go"])).is_err());
        assert!(parse_args(&os(&["--server"])).is_err());
        assert!(parse_args(&os(&["--suite", "java"])).is_err());
        assert!(parse_args(&os(&["--quiet"])).is_err());
    }
}
