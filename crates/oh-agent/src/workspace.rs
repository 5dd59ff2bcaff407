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
use std::path::{Path, PathBuf};
use std::time::Duration;

use oh_protocol::workspace::{CommandResult, FileOperationResult};

use crate::pyfmt::{os_error, py_path, repr as py_repr};

pub mod exec;
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
        let child = match exec::spawn_shell(command, Some(cwd), &[]) {
            Ok(child) => child,
            Err(err) => {
                // The reference raises instead.
                return CommandResult {
                    command: command.to_owned(),
                    exit_code: -1,
                    stdout: String::new(),
                    stderr: exec::spawn_error(&err, Some(cwd)),
                    timeout_occurred: false,
                };
            }
        };
        let mut execution = exec::Execution::new(child, Some(timeout));
        let (mut stdout, mut stderr) = (String::new(), String::new());
        while let Some(piece) = execution.next().await {
            match piece {
                exec::Piece::Stdout(text) => stdout.push_str(&text),
                exec::Piece::Stderr(text) => stderr.push_str(&text),
            }
        }
        let ended = execution.finish(exec::Stop::Kill).await;
        stdout.push_str(&ended.stdout);
        stderr.push_str(&ended.stderr);
        CommandResult {
            command: command.to_owned(),
            exit_code: ended.exit_code,
            stdout: universal_newlines(&stdout),
            stderr: universal_newlines(&stderr),
            timeout_occurred: ended.timed_out,
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
