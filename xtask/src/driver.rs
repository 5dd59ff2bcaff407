//! `e2e-driver`, the binary of the e2e package (`tests/driver.rs`) that drives the
//! product's clients (`DockerWorkspace`, `ApiRemoteWorkspace`) for xtask, which links none
//! of the product's crates. Built once per run through [`cargo`]; its subcommands print one
//! JSON object per line.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{cargo, describe};

/// The package and binary.
const PACKAGE: &str = "openhands-e2e";
const BIN: &str = "e2e-driver";

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// A command running the driver (built first, once).
pub(crate) fn command() -> Result<Command> {
    let path = match BINARY.get() {
        Some(path) => path.clone(),
        None => {
            let path = cargo::build_binary(PACKAGE, BIN, cargo::Profile::Dev)?;
            BINARY.get_or_init(|| path).clone()
        }
    };
    Ok(Command::new(path))
}

/// A command running the driver if it was built already (for a Ctrl-C handler, which
/// must not build).
pub(crate) fn built() -> Option<Command> {
    BINARY.get().map(Command::new)
}

/// Runs `cmd` (stderr inherited) and returns the JSON objects it printed, one per line; a
/// failure is an error naming the command.
pub(crate) fn json_lines(cmd: &mut Command) -> Result<Vec<Value>> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = cmd
        .output()
        .with_context(|| format!("could not start `{}`", describe(cmd)))?;
    if !output.status.success() {
        bail!("`{}` failed ({})", describe(cmd), output.status);
    }
    parse_lines(&String::from_utf8_lossy(&output.stdout))
}

/// The JSON objects of `text`, one per non-empty line.
pub(crate) fn parse_lines(text: &str) -> Result<Vec<Value>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line).with_context(|| format!("the driver printed {line:?}"))
        })
        .collect()
}
