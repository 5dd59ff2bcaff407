//! The scripted LLM of `oh-testkit`, run as its `scripted-llm` binary (xtask does not link
//! the test kit): a script file in, `listening on <base_url>` out, introspection over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::bench::client::Http;
use super::cargo;

/// The package and binary.
const PACKAGE: &str = "oh-testkit";
const BIN: &str = "scripted-llm";

/// The built binary (built once per xtask run).
fn binary() -> Result<PathBuf> {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = BINARY.get() {
        return Ok(path.clone());
    }
    let path = cargo::build_binary(PACKAGE, BIN, cargo::Profile::Dev)?;
    Ok(BINARY.get_or_init(|| path).clone())
}

/// Builds the binary now (so a later start does not build).
pub(crate) fn build() -> Result<()> {
    binary().map(drop)
}

/// How the script is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Each request offering tools takes the next entry.
    InOrder,
    /// Each request offering tools gets the entry of its step (`--by-step`): any number of
    /// conversations follow the script at once.
    ByStep,
}

/// A running `scripted-llm`; killed on drop.
#[derive(Debug)]
pub(crate) struct ScriptedLlm {
    child: Child,
    base_url: String,
    http: Http,
}

impl ScriptedLlm {
    /// Writes `script` (a JSON array of replies in the binary's script format) to
    /// `script_path` and starts the binary on it; returns once it listens.
    pub(crate) fn start(script: &Value, script_path: &Path, mode: Mode) -> Result<Self> {
        std::fs::write(script_path, script.to_string())
            .with_context(|| format!("writing {}", script_path.display()))?;
        let mut cmd = Command::new(binary()?);
        cmd.arg(script_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if mode == Mode::ByStep {
            cmd.arg("--by-step");
        }
        let mut child = cmd.spawn().context("starting scripted-llm")?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out)
                .read_line(&mut line)
                .context("reading scripted-llm's first line")?;
        }
        let Some(base_url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("scripted-llm did not start (first line {line:?})");
        };
        let port = port_of(base_url)
            .with_context(|| format!("scripted-llm listens on {base_url:?}, not on a port"))?;
        Ok(Self {
            base_url: base_url.to_owned(),
            http: Http::new(port, ""),
            child,
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Every request received so far (the test kit's `Recorded` form: `method`, `path`,
    /// `headers`, `body`).
    pub(crate) async fn requests(&self) -> Result<Vec<Value>> {
        let requests = self.http.get_json("/_scripted/requests").await?;
        match requests {
            Value::Array(requests) => Ok(requests),
            other => bail!("GET /_scripted/requests answered {other}"),
        }
    }

    /// Replies left in the script.
    pub(crate) async fn remaining(&self) -> Result<u64> {
        self.http.get_json("/_scripted/remaining").await?["remaining"]
            .as_u64()
            .context("GET /_scripted/remaining has no count")
    }
}

impl Drop for ScriptedLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The port of `http://127.0.0.1:PORT/v1`.
fn port_of(base_url: &str) -> Option<u16> {
    base_url
        .strip_prefix("http://127.0.0.1:")?
        .strip_suffix("/v1")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_of_the_base_url() {
        assert_eq!(port_of("http://127.0.0.1:4242/v1"), Some(4242));
        assert_eq!(port_of("http://localhost:4242/v1"), None);
    }
}
