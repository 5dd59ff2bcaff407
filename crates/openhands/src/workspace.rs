//! [`Workspace`]: a directory on this machine or on an agent server.

use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use oh_protocol::{CommandResult, FileOperationResult, GitChange, GitDiff};

use crate::error::{Error, Result};

/// Where a conversation's agent works: this machine ([`Workspace::Local`]) or an agent
/// server ([`Workspace::Remote`]).
///
/// The operations mirror the Python SDK's workspaces. Paths on the workspace side (the
/// destination of an upload, the source of a download, git paths) are taken relative to the
/// working directory when relative, for both variants; paths on this machine's side are used
/// as given. (Python's `LocalWorkspace` uses both as given; resolving them the same way
/// everywhere keeps code portable between the variants.)
///
/// Workspaces that start an agent server somewhere (Docker, runtime API, Cloud) hand back a
/// [`RemoteWorkspace`](oh_client::RemoteWorkspace) and convert into `Workspace::Remote`
/// (`Workspace::from(&docker)`).
///
/// ```no_run
/// # async fn demo() -> openhands::Result<()> {
/// use std::time::Duration;
/// use openhands::Workspace;
///
/// let workspace = Workspace::remote("http://localhost:8000", "/workspace/project")?;
/// let result = workspace.execute_command("ls").timeout(Duration::from_secs(10)).await?;
/// println!("{} (exit {})", result.stdout, result.exit_code);
/// workspace.file_upload("notes.txt", "notes.txt").await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Workspace {
    /// A directory on this machine; conversations run their agent in this process.
    #[cfg(feature = "local")]
    #[cfg_attr(docsrs, doc(cfg(feature = "local")))]
    Local(oh_agent::workspace::LocalWorkspace),
    /// A directory on an agent server; conversations run there.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    Remote(oh_client::RemoteWorkspace),
}

#[cfg(feature = "local")]
impl From<oh_agent::workspace::LocalWorkspace> for Workspace {
    fn from(workspace: oh_agent::workspace::LocalWorkspace) -> Self {
        Self::Local(workspace)
    }
}

#[cfg(feature = "client")]
impl From<oh_client::RemoteWorkspace> for Workspace {
    fn from(workspace: oh_client::RemoteWorkspace) -> Self {
        Self::Remote(workspace)
    }
}

/// Clones the handle (cheap: clones share one connection pool).
#[cfg(feature = "client")]
impl From<&oh_client::RemoteWorkspace> for Workspace {
    fn from(workspace: &oh_client::RemoteWorkspace) -> Self {
        Self::Remote(workspace.clone())
    }
}

/// The container's server as a remote workspace (the container stays owned by the
/// `DockerWorkspace`, which removes it).
#[cfg(feature = "docker")]
impl From<&oh_workspace_docker::DockerWorkspace> for Workspace {
    fn from(workspace: &oh_workspace_docker::DockerWorkspace) -> Self {
        Self::Remote(workspace.workspace().clone())
    }
}

/// The sandbox's server as a remote workspace (the runtime stays owned by the
/// `ApiRemoteWorkspace`, which stops it). Convert again after `resume()`: the URL and key
/// may have changed.
#[cfg(feature = "api")]
impl From<&oh_workspace_api::ApiRemoteWorkspace> for Workspace {
    fn from(workspace: &oh_workspace_api::ApiRemoteWorkspace) -> Self {
        Self::Remote(workspace.workspace().clone())
    }
}

/// The sandbox's server as a remote workspace (the sandbox stays owned by the
/// `OpenHandsCloudWorkspace`, which deletes it). Convert again after `resume()`: the URL and
/// key may have changed.
#[cfg(feature = "cloud")]
impl From<&oh_workspace_cloud::OpenHandsCloudWorkspace> for Workspace {
    fn from(workspace: &oh_workspace_cloud::OpenHandsCloudWorkspace) -> Self {
        Self::Remote(workspace.workspace().clone())
    }
}

/// Clones the workspace, so `Conversation::new(agent, &workspace, ...)` keeps it usable.
impl From<&Workspace> for Workspace {
    fn from(workspace: &Workspace) -> Self {
        workspace.clone()
    }
}

impl Workspace {
    /// A workspace at `working_dir` on this machine (Python's `Workspace(working_dir=...)`).
    /// Does no I/O; a conversation creates the directory.
    #[cfg(feature = "local")]
    #[cfg_attr(docsrs, doc(cfg(feature = "local")))]
    pub fn local(working_dir: impl Into<PathBuf>) -> Self {
        Self::Local(oh_agent::workspace::LocalWorkspace::new(working_dir))
    }

    /// A workspace at `working_dir` on the agent server at `host`, without an API key
    /// (Python's `Workspace(host=..., working_dir=...)`). Use
    /// [`RemoteWorkspace::builder`](oh_client::RemoteWorkspace::builder) for a key.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn remote(host: impl Into<String>, working_dir: impl Into<String>) -> Result<Self> {
        Ok(Self::Remote(oh_client::RemoteWorkspace::new(
            host,
            working_dir,
        )?))
    }

    /// The working directory (on this machine or on the server).
    pub fn working_dir(&self) -> &Path {
        match self {
            #[cfg(feature = "local")]
            Self::Local(ws) => ws.working_dir(),
            #[cfg(feature = "client")]
            Self::Remote(ws) => Path::new(ws.working_dir()),
        }
    }

    /// True for [`Workspace::Local`].
    pub fn is_local(&self) -> bool {
        match self {
            #[cfg(feature = "local")]
            Self::Local(_) => true,
            #[cfg(feature = "client")]
            Self::Remote(_) => false,
        }
    }

    /// The remote workspace, if this is one.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    pub fn as_remote(&self) -> Option<&oh_client::RemoteWorkspace> {
        match self {
            Self::Remote(ws) => Some(ws),
            #[cfg(feature = "local")]
            Self::Local(_) => None,
        }
    }

    /// The local workspace, if this is one.
    #[cfg(feature = "local")]
    #[cfg_attr(docsrs, doc(cfg(feature = "local")))]
    pub fn as_local(&self) -> Option<&oh_agent::workspace::LocalWorkspace> {
        match self {
            Self::Local(ws) => Some(ws),
            #[cfg(feature = "client")]
            Self::Remote(_) => None,
        }
    }

    /// The kind, as the Python SDK names it: `LocalWorkspace` or `RemoteWorkspace`.
    pub fn kind(&self) -> &'static str {
        match self {
            #[cfg(feature = "local")]
            Self::Local(_) => "LocalWorkspace",
            #[cfg(feature = "client")]
            Self::Remote(_) => "RemoteWorkspace",
        }
    }

    /// Runs `command` with `/bin/sh -c` in the working directory and waits for it at most
    /// [`DEFAULT_COMMAND_TIMEOUT`] (30 s, as in Python); `.cwd(dir)` and `.timeout(t)` change
    /// either before the `.await`:
    ///
    /// ```no_run
    /// # async fn demo(workspace: openhands::Workspace) -> openhands::Result<()> {
    /// use std::time::Duration;
    ///
    /// let listing = workspace.execute_command("ls -la").await?;
    /// let build = workspace
    ///     .execute_command("make")
    ///     .cwd("src")
    ///     .timeout(Duration::from_secs(600))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// The directory is the same for every kind of workspace: the working directory, or
    /// `cwd` resolved against it when relative. A command that times out is killed and gives
    /// exit code -1 with `timeout_occurred: true`; that is a result, not an error. Errors are
    /// failures to reach the server.
    pub fn execute_command(&self, command: impl Into<String>) -> ExecuteCommand<'_> {
        ExecuteCommand {
            workspace: self,
            command: command.into(),
            cwd: None,
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    async fn run_command(
        &self,
        command: &str,
        cwd: Option<&Path>,
        timeout: Duration,
    ) -> Result<CommandResult> {
        let cwd = match cwd {
            Some(dir) if dir.is_absolute() => dir.to_path_buf(),
            Some(dir) => self.working_dir().join(dir),
            None => self.working_dir().to_path_buf(),
        };
        match self {
            #[cfg(feature = "local")]
            Self::Local(ws) => Ok(ws.execute_command(command, Some(&cwd), timeout).await),
            #[cfg(feature = "client")]
            Self::Remote(ws) => Ok(ws
                .execute_command(command, Some(&cwd.to_string_lossy()), timeout)
                .await?),
        }
    }

    /// Copies the local file `source` to `destination` in the workspace (relative to the
    /// working directory when relative). Parent directories are created. A failed copy (no
    /// such source, a destination that cannot be written) is [`Error::FileOperation`] for
    /// every kind of workspace.
    pub async fn file_upload(
        &self,
        source: impl AsRef<Path>,
        destination: impl AsRef<Path>,
    ) -> Result<FileOperationResult> {
        let (source, destination) = (source.as_ref(), destination.as_ref());
        let result = match self {
            #[cfg(feature = "local")]
            Self::Local(ws) => {
                ws.file_upload(source, &self.resolve(destination)).await
            }
            #[cfg(feature = "client")]
            Self::Remote(ws) => ws
                .file_upload(source, &destination.to_string_lossy())
                .await
                .map_err(|e| file_error("file_upload", source, destination, e))?,
        };
        checked("file_upload", result)
    }

    /// Copies `source` in the workspace (relative to the working directory when relative) to
    /// the local file `destination`. Parent directories are created. A failed copy (no such
    /// source, a destination that cannot be written) is [`Error::FileOperation`] for every
    /// kind of workspace.
    pub async fn file_download(
        &self,
        source: impl AsRef<Path>,
        destination: impl AsRef<Path>,
    ) -> Result<FileOperationResult> {
        let (source, destination) = (source.as_ref(), destination.as_ref());
        let result = match self {
            #[cfg(feature = "local")]
            Self::Local(ws) => ws.file_download(&self.resolve(source), destination).await,
            #[cfg(feature = "client")]
            Self::Remote(ws) => ws
                .file_download(&source.to_string_lossy(), destination)
                .await
                .map_err(|e| file_error("file_download", source, destination, e))?,
        };
        checked("file_download", result)
    }

    /// Files changed in the git repository at `path` (relative to the working directory
    /// when relative), or in the repositories directly below it, sorted by path: the
    /// agent server's `GET /api/git/changes`, run in this process for a local workspace.
    /// A path outside any repository has no changes; a failed git command is
    /// [`Error::Git`] for every kind of workspace.
    pub async fn git_changes(&self, path: impl AsRef<Path>) -> Result<Vec<GitChange>> {
        let path = path.as_ref();
        match self {
            #[cfg(feature = "client")]
            Self::Remote(ws) => ws
                .git_changes(&path.to_string_lossy())
                .await
                .map_err(|e| remote_git_error("git_changes", path, e)),
            #[cfg(feature = "local")]
            Self::Local(ws) => match ws.git_changes(&self.resolve(path)).await {
                Err(oh_agent::workspace::git::GitError::NotARepository) => Ok(Vec::new()),
                other => other.map_err(|e| local_git_error("git_changes", path, e)),
            },
        }
    }

    /// The current content of the file at `path` (relative to the working directory when
    /// relative) and its content at the base the changes are computed against: the agent
    /// server's `GET /api/git/diff`, run in this process for a local workspace. A file
    /// outside any repository has an empty diff (both sides `None`); a file that cannot be
    /// diffed (missing, too large, not a regular file) is [`Error::Git`] for every kind of
    /// workspace.
    pub async fn git_diff(&self, path: impl AsRef<Path>) -> Result<GitDiff> {
        let path = path.as_ref();
        match self {
            #[cfg(feature = "client")]
            Self::Remote(ws) => ws
                .git_diff(&path.to_string_lossy())
                .await
                .map_err(|e| remote_git_error("git_diff", path, e)),
            #[cfg(feature = "local")]
            Self::Local(ws) => match ws.git_diff(&self.resolve(path)).await {
                Err(oh_agent::workspace::git::GitError::NotARepository) => Ok(GitDiff {
                    modified: None,
                    original: None,
                }),
                other => other.map_err(|e| local_git_error("git_diff", path, e)),
            },
        }
    }

    /// A workspace-side path: as given when absolute, else under the working directory.
    #[cfg(feature = "local")]
    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.working_dir().join(path)
        }
    }
}

/// The time a command may take unless [`ExecuteCommand::timeout`] says otherwise (the
/// reference's default).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A command about to run in a [`Workspace`]: set [`cwd`](Self::cwd) or
/// [`timeout`](Self::timeout) if needed, then `.await` it. Made by
/// [`Workspace::execute_command`].
#[derive(Debug)]
#[must_use = "a command runs only when awaited"]
pub struct ExecuteCommand<'a> {
    workspace: &'a Workspace,
    command: String,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl ExecuteCommand<'_> {
    /// Runs in `dir` (relative to the working directory when relative) instead of the
    /// working directory.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Waits at most `timeout` (default [`DEFAULT_COMMAND_TIMEOUT`]) before killing it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl<'a> IntoFuture for ExecuteCommand<'a> {
    type Output = Result<CommandResult>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            self.workspace
                .run_command(&self.command, self.cwd.as_deref(), self.timeout)
                .await
        })
    }
}

/// A remote transfer that failed for a reason a local one reports as `success: false` (the
/// server refused the path or has no such file; the local file cannot be read or written)
/// is [`Error::FileOperation`] too, so the same failure reads the same everywhere. Other
/// failures (the server unreachable, a wrong key) stay [`Error::Client`].
#[cfg(feature = "client")]
fn file_error(
    operation: &'static str,
    source: &Path,
    destination: &Path,
    error: oh_client::Error,
) -> Error {
    let message = match &error {
        oh_client::Error::Status {
            status: 400 | 403 | 404 | 413,
            detail,
            ..
        } => detail.clone(),
        oh_client::Error::Io { path, source } => format!("{}: {source}", path.display()),
        _ => return error.into(),
    };
    Error::FileOperation {
        operation,
        source_path: source.to_string_lossy().into_owned(),
        destination_path: destination.to_string_lossy().into_owned(),
        message,
        source: Some(Box::new(error)),
    }
}

/// A git query the server refused with 400 (a failed git command, a file that cannot be
/// diffed) is [`Error::Git`] with the server's text, as a local one is; other failures stay
/// [`Error::Client`].
#[cfg(feature = "client")]
fn remote_git_error(operation: &'static str, path: &Path, error: oh_client::Error) -> Error {
    match error {
        oh_client::Error::Status {
            status: 400,
            ref detail,
            ..
        } => Error::Git {
            operation,
            path: path.to_string_lossy().into_owned(),
            message: detail.clone(),
            source: Some(Box::new(error)),
        },
        other => other.into(),
    }
}

/// A local git failure as [`Error::Git`], with the same text the server answers with.
#[cfg(feature = "local")]
fn local_git_error(
    operation: &'static str,
    path: &Path,
    error: oh_agent::workspace::git::GitError,
) -> Error {
    Error::Git {
        operation,
        path: path.to_string_lossy().into_owned(),
        message: error.to_string(),
        source: Some(Box::new(error)),
    }
}

/// A result that reports `success: false` becomes [`Error::FileOperation`].
fn checked(operation: &'static str, result: FileOperationResult) -> Result<FileOperationResult> {
    if result.success {
        return Ok(result);
    }
    Err(Error::FileOperation {
        operation,
        message: result
            .error
            .unwrap_or_else(|| "the workspace reported a failure".to_owned()),
        source_path: result.source_path,
        destination_path: result.destination_path,
        source: None,
    })
}
