//! The facade's error type.

use std::path::PathBuf;

use oh_protocol::ExecutionStatus;

/// Everything that can go wrong through the facade.
///
/// Failures of the backends are wrapped as they are ([`Error::Client`], [`Error::Agent`]),
/// except a failed run, which is [`Error::Run`] whichever backend ran it, a file transfer
/// that reports `success: false`, which is [`Error::FileOperation`], and a git query that
/// fails, which is [`Error::Git`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Talking to an agent server failed.
    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    #[error(transparent)]
    Client(oh_client::Error),
    /// A conversation in this process failed.
    #[cfg(feature = "local")]
    #[cfg_attr(docsrs, doc(cfg(feature = "local")))]
    #[error(transparent)]
    Agent(oh_agent::conversation::Error),
    /// The in-process agent server could not start or stopped with an error.
    #[cfg(feature = "server")]
    #[cfg_attr(docsrs, doc(cfg(feature = "server")))]
    #[error(transparent)]
    Server(#[from] oh_server::ServerError),
    /// A Docker workspace could not be started or used (its agent server's own failures are
    /// [`Error::Client`] or [`Error::Run`], as for every remote workspace).
    #[cfg(feature = "docker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "docker")))]
    #[error(transparent)]
    Docker(oh_workspace_docker::Error),
    /// A sandbox from a runtime API could not be started or used.
    #[cfg(feature = "api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "api")))]
    #[error(transparent)]
    Api(#[from] oh_workspace_api::Error),
    /// An OpenHands Cloud sandbox could not be started or used.
    #[cfg(feature = "cloud")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cloud")))]
    #[error(transparent)]
    Cloud(#[from] oh_workspace_cloud::Error),
    /// A run ended in `error` or `stuck` (the reference's `ConversationRunError`).
    #[error("conversation {conversation_id} run failed ({status:?}): {detail}")]
    Run {
        /// The conversation.
        conversation_id: uuid::Uuid,
        /// `error` or `stuck`.
        status: ExecutionStatus,
        /// The error class (`ConversationErrorEvent.code`), when one was recorded.
        code: Option<String>,
        /// What went wrong.
        detail: String,
    },
    /// A file upload or download reported a failure.
    #[error("{operation} {source_path} -> {destination_path} failed: {message}")]
    FileOperation {
        /// `file_upload` or `file_download`.
        operation: &'static str,
        /// The source path.
        source_path: String,
        /// The destination path.
        destination_path: String,
        /// The reason given by the workspace.
        message: String,
    },
    /// A git query could not be answered: a git command failed or the file cannot be diffed
    /// (no such file, too large, not a regular file). The same failure has the same
    /// `message` for every kind of workspace (the reference's text). A path outside any
    /// repository is not an error: it has no changes and an empty diff.
    #[error("{operation} {path} failed: {message}")]
    Git {
        /// `git_changes` or `git_diff`.
        operation: &'static str,
        /// The path asked about, as given.
        path: String,
        /// The reason, in the reference's words.
        message: String,
        /// The cause: the agent server's answer, or the local failure.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// A conversation option that the chosen workspace cannot honour.
    #[error("invalid conversation option: {0}")]
    InvalidOption(String),
    /// A local file or directory could not be prepared.
    #[error("{}: {source}", path.display())]
    Io {
        /// The local path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// True when the error is a failed run ([`Error::Run`]).
    pub fn is_run_failure(&self) -> bool {
        matches!(self, Self::Run { .. })
    }
}

#[cfg(feature = "client")]
impl From<oh_client::Error> for Error {
    fn from(error: oh_client::Error) -> Self {
        match error {
            oh_client::Error::Run {
                conversation_id,
                status,
                code,
                detail,
            } => Self::Run {
                conversation_id,
                status,
                code,
                detail,
            },
            other => Self::Client(other),
        }
    }
}

#[cfg(feature = "docker")]
impl From<oh_workspace_docker::Error> for Error {
    fn from(error: oh_workspace_docker::Error) -> Self {
        match error {
            oh_workspace_docker::Error::Client(client) => client.into(),
            other => Self::Docker(other),
        }
    }
}

#[cfg(feature = "local")]
impl From<oh_agent::conversation::Error> for Error {
    fn from(error: oh_agent::conversation::Error) -> Self {
        match error {
            oh_agent::conversation::Error::Run {
                id, code, detail, ..
            } => Self::Run {
                conversation_id: id,
                status: ExecutionStatus::Error,
                code: Some(code),
                detail,
            },
            other => Self::Agent(other),
        }
    }
}

/// The facade's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
