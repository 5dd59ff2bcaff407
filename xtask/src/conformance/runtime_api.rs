//! The runtime API server behind the Python suite's `runtime_api` group.
//!
//! The suite runs in the chroot, which has no Docker socket, so the xtask starts our
//! `openhands-sandbox-server` here on the host: on a free loopback port, with a temporary
//! state directory, a random API key and `--network host` (its sandboxes then share the
//! host's loopback, where the suite's scripted LLM listens). The suite learns the URL and
//! key from `OH_CONFORMANCE_RUNTIME_API_*`. Afterwards the server is stopped and the
//! containers carrying its instance label are counted: the suite stops every sandbox it
//! starts, so any left over is a failure; they are removed either way.
//!
//! The same server serves the suite's `cloud` group (the SDK's `OpenHandsCloudWorkspace`):
//! it gets a users file with two users, the first with LLM settings (a key, and a base URL
//! on a free loopback port where the suite then starts its scripted LLM), an LLM profile,
//! one secret and one MCP server; the suite learns them from `OH_CONFORMANCE_CLOUD_*`.

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::TempDir;

/// The Python suite's groups that need this server.
pub(super) const GROUPS: [&str; 2] = ["runtime_api", "cloud"];

/// The runtime API server and its package.
pub(super) const PACKAGE: &str = "oh-sandbox-server";
pub(super) const BIN: &str = "openhands-sandbox-server";

/// The agent-server image of the sandboxes (`cargo xtask image` builds it).
const IMAGE: &str = "openhands-agent-server:latest";

/// The label the sandbox server puts on each of its containers, valued with the instance
/// id it keeps in `<state-dir>/instance`.
use crate::bench::sandbox::SERVER_LABEL;

/// How long the server may take to answer `/health` (it reconciles with the engine first).
const READY_WITHIN: Duration = Duration::from_secs(30);

/// How long it may take to exit after SIGTERM.
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// Whether the Python suite's filters select one of [`GROUPS`] (its rule: none, a prefix
/// of the group's name, or a check of the group).
pub(super) fn selected(suite_args: &[OsString]) -> bool {
    let filters: Vec<&str> = suite_args
        .iter()
        .filter_map(|a| a.to_str())
        .filter(|a| !a.starts_with('-'))
        .collect();
    filters.is_empty()
        || filters.iter().any(|f| {
            GROUPS
                .iter()
                .any(|g| g.starts_with(f) || f.starts_with(&format!("{g}.")))
        })
}

/// The server for one run of the suite, or why there is none (the group's checks then fail
/// with that reason).
#[derive(Debug)]
pub(super) enum Setup {
    Running(RuntimeApi),
    Unavailable(String),
}

impl Setup {
    /// Starts the server from `binary`; a missing image or a server that does not come up
    /// is [`Setup::Unavailable`], not an error of the whole task.
    pub(super) fn start(binary: &Path) -> Result<Self> {
        if !image_present(IMAGE) {
            return Ok(Self::Unavailable(format!(
                "the sandbox image {IMAGE} is not on the engine (build it: cargo xtask image)"
            )));
        }
        let dir = TempDir::new("oh-runtime-api")?;
        match RuntimeApi::start(binary, dir)? {
            Ok(api) => Ok(Self::Running(api)),
            Err(reason) => Ok(Self::Unavailable(reason)),
        }
    }

    /// The variables that tell the suite where the server is.
    pub(super) fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Running(api) => vec![
                (
                    "OH_CONFORMANCE_RUNTIME_API_URL",
                    format!("http://127.0.0.1:{}", api.port),
                ),
                ("OH_CONFORMANCE_RUNTIME_API_KEY", api.key.clone()),
                ("OH_CONFORMANCE_RUNTIME_API_IMAGE", IMAGE.to_owned()),
                (
                    "OH_CONFORMANCE_CLOUD_API_URL",
                    format!("http://127.0.0.1:{}", api.port),
                ),
                ("OH_CONFORMANCE_CLOUD_API_KEY", api.users.key.clone()),
                (
                    "OH_CONFORMANCE_CLOUD_API_KEY_OTHER",
                    api.users.other_key.clone(),
                ),
                (
                    "OH_CONFORMANCE_CLOUD_LLM_PORT",
                    api.users.llm_port.to_string(),
                ),
                ("OH_CONFORMANCE_CLOUD_LLM_KEY", api.users.llm_key.clone()),
                ("OH_CONFORMANCE_CLOUD_SECRET", api.users.secret.clone()),
            ],
            Self::Unavailable(reason) => {
                vec![("OH_CONFORMANCE_RUNTIME_API_UNAVAILABLE", reason.clone())]
            }
        }
    }
}

/// A running `openhands-sandbox-server`; stopped (and its containers removed) on drop if
/// [`RuntimeApi::finish`] was not called.
#[derive(Debug)]
pub(super) struct RuntimeApi {
    child: Option<Child>,
    port: u16,
    key: String,
    users: Users,
    dir: TempDir,
}

/// What the users file of the Cloud API holds (random per run).
#[derive(Debug)]
struct Users {
    key: String,
    other_key: String,
    llm_port: u16,
    llm_key: String,
    secret: String,
}

impl Users {
    fn new() -> Result<Self> {
        let random = |prefix: &str| format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
        Ok(Self {
            key: random("cloud-user"),
            other_key: random("cloud-other"),
            llm_port: TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port(),
            llm_key: random("sk-cloud-llm"),
            secret: random("conformance-token"),
        })
    }

    /// Writes the file (`0600`: it holds keys) and returns its path.
    fn write(&self, dir: &Path) -> Result<PathBuf> {
        let base_url = format!("http://127.0.0.1:{}/v1", self.llm_port);
        let file = serde_json::json!({"users": [
            {"id": "conformance", "api_key": self.key,
             "llm": {"model": "openai/scripted", "api_key": self.llm_key, "base_url": base_url},
             "llm_profiles": {"fast": {"model": "openai/scripted-fast", "api_key": self.llm_key,
                                       "base_url": base_url}},
             "secrets": {"CONFORMANCE_TOKEN": {"value": self.secret,
                                               "description": "a token for the conformance suite"}},
             "mcp_config": {"sse_servers": [{"url": "http://127.0.0.1:9/sse", "api_key": "mcp-key"}]}},
            {"id": "other", "api_key": self.other_key}
        ]});
        let path = dir.join("users.json");
        let mut out = fs::OpenOptions::new();
        out.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut out, 0o600);
        out.open(&path)?.write_all(file.to_string().as_bytes())?;
        Ok(path)
    }
}

/// What [`RuntimeApi::finish`] found.
#[derive(Debug)]
pub(super) struct Leftovers {
    /// The server's instance id (the value of its label).
    pub(super) instance: String,
    /// Containers carrying the label once the server had stopped.
    pub(super) count: usize,
}

impl RuntimeApi {
    /// Spawns the server and waits for `/health`; `Ok(Err(reason))` if it does not come up.
    fn start(binary: &Path, dir: TempDir) -> Result<Result<Self, String>> {
        let port = TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        let key = format!("runtime-api-{}", uuid::Uuid::new_v4().simple());
        let users = Users::new()?;
        let users_file = users.write(dir.path())?;
        let log = fs::File::create(dir.path().join("server.log"))?;
        let mut cmd = Command::new(binary);
        cmd.arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--backend", "docker", "--image", IMAGE])
            .args(["--network", "host", "--public-host", "127.0.0.1"])
            .arg("--users")
            .arg(&users_file)
            // No idle pauses in the middle of a check; crashes noticed within a second.
            .args([
                "--idle-timeout-seconds",
                "0",
                "--check-interval-seconds",
                "1",
            ])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("OH_RUNTIME_API_KEY") {
                cmd.env_remove(&name);
            }
        }
        // `--api-key` through its variable: argv is visible to every user of the machine.
        cmd.env("OH_RUNTIME_API_KEY", &key).env("NO_COLOR", "1");
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let mut api = Self {
            child: Some(child),
            port,
            key,
            users,
            dir,
        };
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(child) = api.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                api.child = None;
                return Ok(Err(format!(
                    "{BIN} exited ({status}) before it was ready: {}",
                    api.log_tail(5).join(" | ")
                )));
            }
            if health(port) {
                return Ok(Ok(api));
            }
            if Instant::now() > deadline {
                return Ok(Err(format!(
                    "{BIN} did not answer /health within {} s: {}",
                    READY_WITHIN.as_secs(),
                    api.log_tail(5).join(" | ")
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server, counts the containers still carrying its label and removes them.
    /// With `show_log`, prints the end of the server's log first.
    #[allow(clippy::print_stdout, reason = "the log tail is part of the report")]
    pub(super) fn finish(mut self, show_log: bool) -> Result<Leftovers> {
        self.stop()?;
        if show_log {
            println!("--- {BIN} log, last lines:");
            for line in self.log_tail(30) {
                println!("| {line}");
            }
        }
        let instance = self.instance()?;
        let ids = labelled(&instance)?;
        let count = ids.len();
        if count > 0 {
            remove(&ids)?;
        }
        Ok(Leftovers { instance, count })
    }

    /// SIGTERM, then SIGKILL if it is still running after [`STOP_WITHIN`].
    fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_WITHIN;
        while child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                child.kill()?;
                child.wait()?;
                bail!(
                    "{BIN} did not exit within {} s of SIGTERM",
                    STOP_WITHIN.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn instance(&self) -> Result<String> {
        let path = self.state_dir().join("instance");
        let id = fs::read_to_string(&path)
            .with_context(|| format!("could not read {}", path.display()))?;
        let id = id.trim().to_owned();
        if id.is_empty() {
            bail!("{} is empty", path.display());
        }
        Ok(id)
    }

    fn log_tail(&self, lines: usize) -> Vec<String> {
        let text = fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let all: Vec<String> = text.lines().map(str::to_owned).collect();
        all[all.len().saturating_sub(lines)..].to_vec()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
            if let Ok(ids) = self.instance().and_then(|id| labelled(&id)) {
                let _ = remove(&ids);
            }
        }
    }
}

/// `GET /health` answers 200.
fn health(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

fn image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Ids of the containers (any state) labelled with `instance`.
fn labelled(instance: &str) -> Result<Vec<String>> {
    let out = Command::new("docker")
        .args(["ps", "--all", "--quiet", "--no-trunc", "--filter"])
        .arg(format!("label={SERVER_LABEL}={instance}"))
        .output()
        .context("could not run docker ps")?;
    if !out.status.success() {
        bail!(
            "docker ps failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

fn remove(ids: &[String]) -> Result<()> {
    let out = Command::new("docker")
        .args(["rm", "--force", "--volumes"])
        .args(ids)
        .output()
        .context("could not run docker rm")?;
    if !out.status.success() {
        bail!(
            "docker rm failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn selected_like_the_python_runner() {
        assert!(selected(&[]));
        assert!(selected(&os(&["-v"])));
        assert!(selected(&os(&["runtime"])));
        assert!(selected(&os(&["runtime_api.provision"])));
        assert!(selected(&os(&["files", "runtime_api"])));
        assert!(selected(&os(&["cloud"])));
        assert!(selected(&os(&["cloud.get_llm"])));
        assert!(!selected(&os(&["files"])));
        assert!(!selected(&os(&["runtime_api_more"])));
        assert!(!selected(&os(&["-v", "errors"])));
    }
}
