//! The one place xtask asks cargo where things are and builds binaries: the target
//! directory (as `cargo metadata` reports it, so `CARGO_TARGET_DIR` and `.cargo/config`
//! are respected) and `cargo build` of a package's binaries or examples, returning the
//! executables cargo reports. Every task builds through here.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{describe, workspace_root};

/// The cargo running this xtask (`$CARGO`), else `cargo` from the `PATH`.
pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// A `cargo` command in the workspace root.
pub(crate) fn command() -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(workspace_root());
    cmd
}

/// The workspace's target directory, as `cargo metadata` reports it (asked once).
pub(crate) fn target_dir() -> Result<PathBuf> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.clone());
    }
    let mut cmd = command();
    cmd.args(["metadata", "--format-version", "1", "--no-deps"]);
    let output = cmd
        .output()
        .with_context(|| format!("could not start `{}`", describe(&cmd)))?;
    if !output.status.success() {
        bail!(
            "`{}` failed: {}",
            describe(&cmd),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)?;
    let dir = metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")?;
    Ok(DIR.get_or_init(|| dir).clone())
}

/// The build profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    Dev,
    Release,
}

impl Profile {
    /// The profile's directory under the target directory.
    fn dir(self) -> &'static str {
        match self {
            Profile::Dev => "debug",
            Profile::Release => "release",
        }
    }
}

/// Where `cargo build` puts binary `bin` of `profile` (whether it is there or not): for
/// `--no-build`.
pub(crate) fn binary_path(bin: &str, profile: Profile) -> Result<PathBuf> {
    Ok(target_dir()?.join(profile.dir()).join(bin))
}

/// Builds binary `bin` of `package` and returns its path, as cargo reports it.
pub(crate) fn build_binary(package: &str, bin: &str, profile: Profile) -> Result<PathBuf> {
    let built = build(package, &["--bin", bin], profile)?;
    built
        .into_iter()
        .find(|(name, _)| name == bin)
        .map(|(_, path)| path)
        .with_context(|| format!("building {package} reported no `{bin}` executable"))
}

/// Builds integration test `test` of `package` (its libtest executable) and returns its
/// path, as cargo reports it.
pub(crate) fn build_test(package: &str, test: &str) -> Result<PathBuf> {
    let built = build(package, &["--test", test], Profile::Dev)?;
    built
        .into_iter()
        .find(|(name, _)| name == test)
        .map(|(_, path)| path)
        .with_context(|| format!("building {package} reported no `{test}` test executable"))
}

/// Builds every example of `package`; returns each example's name and path.
pub(crate) fn build_examples(package: &str, profile: Profile) -> Result<Vec<(String, PathBuf)>> {
    build(package, &["--examples"], profile)
}

/// `cargo build -p package ARGS` with JSON messages (diagnostics rendered to stderr as
/// usual); returns the name and path of every executable built.
fn build(package: &str, args: &[&str], profile: Profile) -> Result<Vec<(String, PathBuf)>> {
    let mut cmd = command();
    cmd.args(["build", "--package", package])
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    eprintln!("xtask: {}", describe(&cmd));
    let output = cmd
        .output()
        .with_context(|| format!("could not start `{}`", describe(&cmd)))?;
    if !output.status.success() {
        bail!("`{}` failed ({})", describe(&cmd), output.status);
    }
    Ok(executables(&String::from_utf8_lossy(&output.stdout)))
}

/// The `(target name, executable)` of every `compiler-artifact` message with an executable.
fn executables(messages: &str) -> Vec<(String, PathBuf)> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter_map(|message| {
            let name = message["target"]["name"].as_str()?.to_owned();
            let path = Path::new(message["executable"].as_str()?).to_path_buf();
            Some((name, path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_of_artifact_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"oh_protocol"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"scripted-llm"},"executable":"/t/debug/scripted-llm"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\nnot json\n",
        );
        assert_eq!(
            executables(messages),
            vec![(
                "scripted-llm".to_owned(),
                PathBuf::from("/t/debug/scripted-llm")
            )]
        );
    }
}
