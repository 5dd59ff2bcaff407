//! `cargo xtask conformance`: run the conformance suite (`xtask/conformance/`)
//! inside the reference Python environment against an agent server.
//!
//! The suite starts the server itself (it kills and restarts it for the
//! restart checks), from the command line in `OH_CONFORMANCE_SERVER`. Everything
//! the suite needs inside the chroot is copied into a fresh temporary directory,
//! which `pyenv.sh python` shows as `/src`: the suite's files and, for our
//! server, the freshly built binary.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use super::{USAGE, describe, pyenv_command, workspace_root};

/// Where the suite lives, relative to the workspace root.
const SUITE_DIR: &str = "xtask/conformance";

/// The binary under test and its package.
const SERVER_PACKAGE: &str = "oh-server";
const SERVER_BIN: &str = "openhands-agent-server";

/// The reference server, as installed in the chroot's venv by pyenv.sh.
const PYTHON_SERVER_CMD: &str =
    "/opt/oh/bin/python -m openhands.agent_server --host 127.0.0.1 --port {port}";

/// Which server the suite drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Our `openhands-agent-server`.
    Rust,
    /// The reference Python server of the pinned SDK.
    Python,
}

/// The parsed arguments: the target, and the suite's arguments (group filters, `-v`).
#[derive(Debug)]
struct Args {
    target: Target,
    suite_args: Vec<OsString>,
}

fn parse_args(args: &[OsString]) -> Result<Args> {
    let mut target = Target::Rust;
    let mut suite_args = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let value = match arg.to_str() {
            Some("--server") => Some(
                iter.next()
                    .and_then(|v| v.to_str())
                    .context("`--server` needs a value: rust or python")?
                    .to_owned(),
            ),
            Some(s) if s.starts_with("--server=") => Some(s["--server=".len()..].to_owned()),
            Some("-v" | "--verbose") => {
                suite_args.push("-v".into());
                continue;
            }
            Some(s) if s.starts_with('-') => bail!("unknown option `{s}`\n\n{USAGE}"),
            _ => None,
        };
        match value.as_deref() {
            Some("rust") => target = Target::Rust,
            Some("python") => target = Target::Python,
            Some(other) => bail!("unknown server `{other}`: expected rust or python"),
            None => suite_args.push(arg.clone()),
        }
    }
    Ok(Args { target, suite_args })
}

/// `cargo xtask conformance [--server rust|python] [-v] [GROUP...]`; exits with the
/// suite's status.
pub(crate) fn conformance(args: &[OsString]) -> Result<ExitCode> {
    let args = parse_args(args)?;
    let binary = match args.target {
        Target::Rust => Some(build_server()?),
        Target::Python => None,
    };
    let dir = TempDir::new("oh-conformance")?;
    copy_suite(&workspace_root().join(SUITE_DIR), dir.path())?;
    let server_cmd = match &binary {
        Some(binary) => {
            let dest = dir.path().join(SERVER_BIN);
            fs::copy(binary, &dest).with_context(|| {
                format!("could not copy {} to {}", binary.display(), dest.display())
            })?;
            format!("/src/{SERVER_BIN} --host 127.0.0.1 --port {{port}}")
        }
        None => PYTHON_SERVER_CMD.to_owned(),
    };
    let label = match args.target {
        Target::Rust => "rust",
        Target::Python => "python",
    };
    let mut cmd = pyenv_command(["python", "-u", "suite.py"]);
    cmd.args(&args.suite_args)
        .current_dir(dir.path())
        .env("OH_CONFORMANCE_SERVER", &server_cmd)
        .env("OH_CONFORMANCE_LABEL", label);
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{}`", describe(&cmd)))?;
    let code = status.code().unwrap_or(1);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// Build the server binary and return its path, as cargo reports it (so that
/// `CARGO_TARGET_DIR` and friends are respected).
fn build_server() -> Result<PathBuf> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root())
        .args(["build", "--package", SERVER_PACKAGE, "--bin", SERVER_BIN])
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
            && message["target"]["name"] == SERVER_BIN
            && let Some(path) = message["executable"].as_str()
        {
            found = Some(PathBuf::from(path));
        }
    }
    found.with_context(|| format!("`{}` reported no `{SERVER_BIN}` executable", describe(&cmd)))
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
    fn defaults_to_our_server() {
        let args = parse_args(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, Target::Rust);
        assert!(args.suite_args.is_empty());
    }

    #[test]
    fn server_option_in_both_spellings_and_checks_pass_through() {
        let args =
            parse_args(&os(&["--server", "python", "workspace"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, Target::Python);
        assert_eq!(args.suite_args, os(&["workspace"]));
        let args = parse_args(&os(&["files", "--server=rust", "--verbose"]))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(args.target, Target::Rust);
        assert_eq!(args.suite_args, os(&["files", "-v"]));
    }

    #[test]
    fn rejects_unknown_servers_and_options() {
        assert!(parse_args(&os(&["--server", "go"])).is_err());
        assert!(parse_args(&os(&["--server"])).is_err());
        assert!(parse_args(&os(&["--quiet"])).is_err());
    }
}
