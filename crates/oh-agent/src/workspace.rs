//! `LocalWorkspace`: commands and file transfer on this machine.
//!
//! Mirrors the Python reference's `LocalWorkspace` (1.57.0):
//! * each command runs in a fresh `/bin/sh -c` (no state between calls), in `cwd` or the
//!   workspace directory, with the parent's environment minus the agent server's
//!   credentials and with `AI_AGENT=openhands` set when missing;
//! * on timeout the command is killed and the result has exit code -1 and
//!   `timeout_occurred: true`, with the output gathered so far (the reference adds no
//!   message); the whole process group is killed, so children cannot keep running;
//! * uploads and downloads are both a metadata-preserving copy (content, permission bits,
//!   timestamps) that creates the destination's parent directories; paths are used as
//!   given, so relative paths are relative to the process's current directory. Failures are
//!   reported in the result with Python's error texts.
//!
//! `git_changes`/`git_diff` are the agent server's git routes' own code ([`git`]), so a
//! local and a remote workspace answer alike; their paths are used as given too.
//!
//! Not ported: the completion callback, and the live echo of command output to the parent's stdout
//! (outputs are logged with `tracing` at debug level instead).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oh_protocol::workspace::{CommandResult, FileOperationResult};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::tools::file_editor::{os_error, py_path, py_repr};

pub mod git;

/// The reference's default command timeout.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variables never passed to commands (`/api/bash`, [`LocalWorkspace`], the
/// agent's terminal): the agent server's session keys in every form its configuration reads
/// (`SESSION_API_KEY`, the JSON list `OH_SESSION_API_KEYS`), the key that decrypts persisted
/// secrets, and the tracing exporters' credentials.
pub const SENSITIVE_ENV_VARS: &[&str] = &[
    "SESSION_API_KEY",
    "OH_SESSION_API_KEYS",
    "OH_SECRET_KEY",
    "OH_PREVIOUS_SECRET_KEYS",
    "LMNR_PROJECT_API_KEY",
    "OTEL_HEADERS",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
];

/// Prefixes of environment variables never passed to commands: the indexed form of the
/// session keys (`OH_SESSION_API_KEYS_0`, `OH_SESSION_API_KEYS_1`, …) and of the previous
/// secret keys (`OH_PREVIOUS_SECRET_KEYS_0`, …).
pub const SENSITIVE_ENV_PREFIXES: &[&str] = &["OH_SESSION_API_KEYS_", "OH_PREVIOUS_SECRET_KEYS_"];

/// How long output is still collected after a timed-out command was killed, in case a
/// process outside its group holds the pipes open.
const KILL_DRAIN: Duration = Duration::from_secs(2);

/// A workspace on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalWorkspace {
    /// Default directory for commands and tools.
    working_dir: PathBuf,
}

impl LocalWorkspace {
    /// A workspace rooted at `working_dir`. Does no I/O: the directory is not created.
    pub fn new(working_dir: impl Into<PathBuf>) -> Self {
        Self {
            working_dir: working_dir.into(),
        }
    }

    /// The workspace directory.
    pub fn working_dir(&self) -> &Path {
        &self.working_dir
    }

    /// Runs `command` with `/bin/sh -c` in `cwd` (default: the workspace directory).
    ///
    /// The exit code is the command's, or minus the signal number if a signal ended it. On
    /// timeout the process group is killed and the result has exit code -1 and
    /// `timeout_occurred: true`. If the shell cannot be started the result has exit code -1
    /// and the error in `stderr`. Output is decoded as UTF-8 (lossy) with universal
    /// newlines, as Python's text mode reads it.
    pub async fn execute_command(
        &self,
        command: &str,
        cwd: Option<&Path>,
        timeout: Duration,
    ) -> CommandResult {
        let cwd = cwd.unwrap_or(&self.working_dir);
        tracing::debug!(command, cwd = %cwd.display(), "executing local command");
        let mut child = match spawn_shell(command, cwd) {
            Ok(child) => child,
            Err(err) => return spawn_failure(command, cwd, &err),
        };
        let stdout = collect(child.stdout.take());
        let stderr = collect(child.stderr.take());
        let (exit_code, drain) = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(status)) => (exit_code(status), timeout),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "waiting for a local command failed");
                (-1, KILL_DRAIN)
            }
            Err(_) => {
                kill_group(&mut child).await;
                (-1, KILL_DRAIN)
            }
        };
        let deadline = tokio::time::Instant::now() + drain;
        CommandResult {
            command: command.to_owned(),
            exit_code,
            stdout: stdout.finish(deadline).await,
            stderr: stderr.finish(deadline).await,
            timeout_occurred: exit_code == -1,
        }
    }

    /// Copies `source` (on this machine) to `destination` (in the workspace, which is this
    /// machine too), like Python's `shutil.copy2`.
    pub async fn file_upload(&self, source: &Path, destination: &Path) -> FileOperationResult {
        copy_in_background(source, destination).await
    }

    /// Copies `source` (in the workspace) to `destination` (on this machine), like Python's
    /// `shutil.copy2`.
    pub async fn file_download(&self, source: &Path, destination: &Path) -> FileOperationResult {
        copy_in_background(source, destination).await
    }

    /// Files changed in the git repository at `path` (or in the repositories directly below
    /// it) against the reference's display base, sorted by path
    /// ([`git::GitError::NotARepository`] when there is none), as `GET /api/git/changes`
    /// computes them.
    pub async fn git_changes(&self, path: &Path) -> git::GitResult<Vec<oh_protocol::GitChange>> {
        git::Git::default()
            .changes(&path.to_string_lossy(), None)
            .await
    }

    /// The current content of the file at `path` and its content at the display base, as
    /// `GET /api/git/diff` computes them.
    pub async fn git_diff(&self, path: &Path) -> git::GitResult<oh_protocol::GitDiff> {
        git::Git::default()
            .diff(&path.to_string_lossy(), None)
            .await
    }
}

/// The parent's environment as commands get it: credentials of the agent server removed
/// ([`is_sensitive_env`]),
/// `AI_AGENT=openhands` when unset or blank, and `LD_LIBRARY_PATH` restored from
/// `LD_LIBRARY_PATH_ORIG` (undoing a bundler's rewrite) when that is set.
pub fn sanitized_env() -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(key, _)| !is_sensitive_env(key))
        .collect();
    let agent_set = env
        .iter()
        .any(|(key, value)| key == "AI_AGENT" && !value.to_string_lossy().trim().is_empty());
    if !agent_set {
        env.retain(|(key, _)| key != "AI_AGENT");
        env.push(("AI_AGENT".into(), "openhands".into()));
    }
    let original = env
        .iter()
        .find(|(key, _)| key == "LD_LIBRARY_PATH_ORIG")
        .map(|(_, value)| value.clone());
    if let Some(original) = original {
        env.retain(|(key, _)| key != "LD_LIBRARY_PATH");
        if !original.is_empty() {
            env.push(("LD_LIBRARY_PATH".into(), original));
        }
    }
    env
}

/// [`sanitized_env`] with `extra` set on top (replacing inherited variables of the same
/// name), for a server that adds environment after it started without changing its own
/// (`std::env::set_var` is unsound once threads run). Credentials among `extra` are
/// dropped too ([`is_sensitive_env`]).
pub fn sanitized_env_with(extra: &[(String, String)]) -> Vec<(OsString, OsString)> {
    let mut env = sanitized_env();
    for (key, value) in extra {
        let key = OsStr::new(key);
        if is_sensitive_env(key) {
            continue;
        }
        env.retain(|(name, _)| name != key);
        env.push((key.to_owned(), value.into()));
    }
    env
}

/// Whether the environment variable `name` carries a credential of the agent server and
/// must not reach commands ([`SENSITIVE_ENV_VARS`], [`SENSITIVE_ENV_PREFIXES`]). Names are
/// compared without regard to ASCII case; a name that is not UTF-8 is never one of them.
pub fn is_sensitive_env(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let name = name.to_ascii_uppercase();
    SENSITIVE_ENV_VARS.contains(&name.as_str())
        || SENSITIVE_ENV_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

fn spawn_shell(command: &str, cwd: &Path) -> io::Result<Child> {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .env_clear()
        .envs(sanitized_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

/// The result when the shell could not be started (the reference raises instead).
fn spawn_failure(command: &str, cwd: &Path, err: &io::Error) -> CommandResult {
    let culprit = if cwd.is_dir() {
        Path::new("/bin/sh")
    } else {
        cwd
    };
    CommandResult {
        command: command.to_owned(),
        exit_code: -1,
        stdout: String::new(),
        stderr: os_error(err, culprit),
        timeout_occurred: false,
    }
}

/// Python's `returncode`: the exit code, or minus the signal that ended the process.
fn exit_code(status: ExitStatus) -> i64 {
    status
        .code()
        .map(i64::from)
        .or_else(|| status.signal().map(|signal| -i64::from(signal)))
        .unwrap_or(-1)
}

/// Kills the command's whole process group, then the shell itself.
async fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id() {
        signal_group(pid, "KILL").await;
    }
    if let Err(err) = child.kill().await {
        tracing::debug!(error = %err, "killing the shell failed (it may have exited)");
    }
}

/// Output of one pipe, gathered in the background so that a partial result survives a
/// reader that never finishes.
struct Collector {
    buffer: Arc<Mutex<Vec<u8>>>,
    task: Option<JoinHandle<()>>,
}

fn collect<R: AsyncRead + Unpin + Send + 'static>(pipe: Option<R>) -> Collector {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let task = pipe.map(|mut pipe| {
        let buffer = Arc::clone(&buffer);
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 8192];
            loop {
                match pipe.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => buffer
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..read]),
                }
            }
        })
    });
    Collector { buffer, task }
}

impl Collector {
    /// Waits for the pipe to close until `deadline`, then returns what was read, decoded.
    async fn finish(mut self, deadline: tokio::time::Instant) -> String {
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            task.abort();
        }
        let bytes = self
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        universal_newlines(&String::from_utf8_lossy(&bytes))
    }
}

fn universal_newlines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Runs [`copy2`] on the blocking pool and reports the outcome.
async fn copy_in_background(source: &Path, destination: &Path) -> FileOperationResult {
    let (src, dst) = (source.to_path_buf(), destination.to_path_buf());
    let outcome = tokio::task::spawn_blocking(move || copy2(&src, &dst))
        .await
        .unwrap_or_else(|err| Err(err.to_string()));
    let source_path = py_path(&source.to_string_lossy());
    let destination_path = py_path(&destination.to_string_lossy());
    match outcome {
        Ok(file_size) => FileOperationResult {
            success: true,
            source_path,
            destination_path,
            file_size: Some(file_size),
            error: None,
        },
        Err(error) => {
            tracing::error!(%error, "local file copy failed");
            FileOperationResult {
                success: false,
                source_path,
                destination_path,
                file_size: None,
                error: Some(error),
            }
        }
    }
}

/// `mkdir -p` of the destination's parent, then `shutil.copy2`: into the directory if the
/// destination is one, content plus permission bits and timestamps. Returns the size of
/// `destination` as given (as the reference does) or Python's error text.
fn copy2(source: &Path, destination: &Path) -> Result<u64, String> {
    if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|err| os_error(&err, parent))?;
    }
    let target = match (destination.is_dir(), source.file_name()) {
        (true, Some(name)) => destination.join(name),
        _ => destination.to_path_buf(),
    };
    if is_same_file(source, &target) {
        return Err(format!(
            "PosixPath({}) and PosixPath({}) are the same file",
            py_repr(&py_path(&source.to_string_lossy())),
            py_repr(&py_path(&target.to_string_lossy()))
        ));
    }
    let meta = fs::metadata(source).map_err(|err| os_error(&err, source))?;
    if meta.is_dir() {
        return Err(os_error(&io::Error::from_raw_os_error(21), source));
    }
    // Opening a FIFO would wait for a writer, possibly forever; shutil refuses it so.
    if std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
        return Err(format!("`{}` is a named pipe", source.display()));
    }
    fs::copy(source, &target).map_err(|err| os_error(&err, &target))?;
    copy_times(&meta, &target).map_err(|err| os_error(&err, &target))?;
    fs::metadata(destination)
        .map(|meta| meta.len())
        .map_err(|err| os_error(&err, destination))
}

fn is_same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Access and modification times, as `copystat` copies them (`fs::copy` already copied
/// the permission bits).
fn copy_times(source: &fs::Metadata, target: &Path) -> io::Result<()> {
    let mut times = fs::FileTimes::new().set_modified(source.modified()?);
    if let Ok(accessed) = source.accessed() {
        times = times.set_accessed(accessed);
    }
    fs::File::open(target)?.set_times(times)
}

/// Sends `signal` (`TERM`, `KILL`, …) to the process group `pgid` through `/bin/sh`'s `kill`
/// (the crates forbid unsafe code, so no direct `killpg`). Group 0 is ignored.
pub async fn signal_group(pgid: u32, signal: &str) {
    if pgid == 0 {
        return;
    }
    let sent = Command::new("/bin/sh")
        .arg("-c")
        .arg("kill -s \"$1\" -- \"-$2\" 2>/dev/null")
        .arg("sh")
        .arg(signal)
        .arg(pgid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(err) = sent {
        tracing::warn!(error = %err, pgid, "could not signal the process group");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_server_key_is_sensitive() {
        for name in [
            "SESSION_API_KEY",
            "OH_SESSION_API_KEYS",
            "OH_SESSION_API_KEYS_0",
            "OH_SESSION_API_KEYS_12",
            "OH_SECRET_KEY",
            "oh_session_api_keys",
            "OH_PREVIOUS_SECRET_KEYS",
            "OH_PREVIOUS_SECRET_KEYS_0",
        ] {
            assert!(is_sensitive_env(OsStr::new(name)), "{name}");
        }
        for name in ["PATH", "HOME", "OH_SESSION", "SESSION_API_KEYS", "AI_AGENT"] {
            assert!(!is_sensitive_env(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn extra_env_overrides_and_never_adds_a_key() {
        let extra = [
            ("OH_TEST_EXTRA_ENV".to_owned(), "one".to_owned()),
            ("PATH".to_owned(), "/extra/bin".to_owned()),
            ("OH_SECRET_KEY".to_owned(), "leaked".to_owned()),
            ("oh_session_api_keys_3".to_owned(), "leaked".to_owned()),
        ];
        let env = sanitized_env_with(&extra);
        let values = |name: &str| -> Vec<&OsString> {
            env.iter()
                .filter(|(key, _)| key == name)
                .map(|(_, value)| value)
                .collect()
        };
        assert_eq!(values("OH_TEST_EXTRA_ENV"), [&OsString::from("one")]);
        assert_eq!(values("PATH"), [&OsString::from("/extra/bin")]);
        assert!(values("OH_SECRET_KEY").is_empty());
        assert!(values("oh_session_api_keys_3").is_empty());
        assert_eq!(sanitized_env_with(&[]), sanitized_env());
    }
}
