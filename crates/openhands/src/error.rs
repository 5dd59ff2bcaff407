//! The facade's error type.

use std::path::PathBuf;

use oh_protocol::RunFailure;

/// A boxed cause.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong through the facade.
///
/// Failures of the backends are wrapped as they are ([`Error::Client`], [`Error::Agent`],
/// [`Error::Docker`], …), with their causes kept as [`source`](std::error::Error::source)s,
/// except what reads the same whichever backend is used: a failed run is [`Error::Run`], a
/// misused builder (an option the backend cannot honour or refuses, a part missing) is
/// [`Error::InvalidOption`], a file transfer that reports a failure is
/// [`Error::FileOperation`], and a git query that fails is [`Error::Git`].
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
    Api(oh_workspace_api::Error),
    /// An OpenHands Cloud sandbox could not be started or used.
    #[cfg(feature = "cloud")]
    #[cfg_attr(docsrs, doc(cfg(feature = "cloud")))]
    #[error(transparent)]
    Cloud(oh_workspace_cloud::Error),
    /// A run ended in `error` or `stuck` (the reference's `ConversationRunError`), local or
    /// remote: the one [`RunFailure`] type of both.
    #[error(transparent)]
    Run(RunFailure),
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
        /// The cause, for a remote workspace: the agent server's answer or the local file's
        /// error (a local workspace reports a reason only).
        #[source]
        source: Option<BoxError>,
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
    /// A builder was misused, whichever builder it was: an option the chosen workspace
    /// cannot honour (a persistence directory for a remote conversation), a value a
    /// workspace refuses (a zero timeout, a relative working directory, a key that is not
    /// valid in HTTP), or a part it needs is missing.
    #[error("invalid option: {reason}")]
    InvalidOption {
        /// What is wrong.
        reason: String,
        /// The backend's error, when it refused the value.
        #[source]
        source: Option<BoxError>,
    },
    /// A local file or directory could not be prepared (the cause is the
    /// [`source`](std::error::Error::source)).
    #[error("cannot prepare {}", path.display())]
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
        matches!(self, Self::Run(_))
    }

    /// The failed run, if the error is one.
    pub fn run_failure(&self) -> Option<&RunFailure> {
        match self {
            Self::Run(failure) => Some(failure),
            _ => None,
        }
    }

    /// [`Error::InvalidOption`] without a cause.
    #[cfg(any(feature = "client", feature = "local"))]
    pub(crate) fn invalid_option(reason: impl Into<String>) -> Self {
        Self::InvalidOption {
            reason: reason.into(),
            source: None,
        }
    }
}

#[cfg(feature = "client")]
impl From<oh_client::Error> for Error {
    fn from(error: oh_client::Error) -> Self {
        match error {
            oh_client::Error::Run(failure) => Self::Run(failure),
            oh_client::Error::Builder { builder, reason } => {
                Self::invalid_option(format!("{builder}: {reason}"))
            }
            error @ oh_client::Error::RelativePath { .. } => Self::InvalidOption {
                reason: error.to_string(),
                source: Some(Box::new(error)),
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
            oh_workspace_docker::Error::InvalidOption(reason) => Self::invalid_option(reason),
            other => Self::Docker(other),
        }
    }
}

#[cfg(feature = "api")]
impl From<oh_workspace_api::Error> for Error {
    fn from(error: oh_workspace_api::Error) -> Self {
        match error {
            oh_workspace_api::Error::InvalidOption { reason, source } => Self::InvalidOption {
                reason,
                source: source.map(|s| s as BoxError),
            },
            other => Self::Api(other),
        }
    }
}

#[cfg(feature = "cloud")]
impl From<oh_workspace_cloud::Error> for Error {
    fn from(error: oh_workspace_cloud::Error) -> Self {
        match error {
            oh_workspace_cloud::Error::InvalidOption { reason, source } => Self::InvalidOption {
                reason,
                source: source.map(|s| s as BoxError),
            },
            other => Self::Cloud(other),
        }
    }
}

#[cfg(feature = "local")]
impl From<oh_agent::conversation::Error> for Error {
    fn from(error: oh_agent::conversation::Error) -> Self {
        match error {
            oh_agent::conversation::Error::Run { failure, .. } => Self::Run(failure),
            other => Self::Agent(other),
        }
    }
}

/// The facade's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "client")]
    #[test]
    fn a_refused_connection_stays_findable_through_the_facade() {
        let refused = oh_client::Error::Connect {
            url: "http://127.0.0.1:9/health".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        let error = Error::from(refused);
        assert!(matches!(error, Error::Client(_)), "{error:?}");
        let mut cause = std::error::Error::source(&error);
        let mut found = false;
        while let Some(inner) = cause {
            found |= inner
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
            cause = inner.source();
        }
        assert!(found, "{error:?}");
    }

    #[cfg(feature = "client")]
    #[test]
    fn a_failed_run_and_a_misused_builder_read_the_same_from_every_backend() {
        let failure = RunFailure::new(
            uuid::Uuid::nil(),
            oh_protocol::ExecutionStatus::Stuck,
            None,
            "the agent got stuck in a loop",
        );
        let remote = Error::from(oh_client::Error::Run(failure.clone()));
        assert_eq!(remote.run_failure(), Some(&failure));
        assert_eq!(remote.to_string(), failure.to_string());

        let builder = Error::from(oh_client::Error::Builder {
            builder: "RemoteConversationBuilder",
            reason: "no agent".into(),
        });
        assert!(
            matches!(&builder, Error::InvalidOption { reason, source: None } if reason.contains("no agent")),
            "{builder:?}"
        );
        #[cfg(feature = "docker")]
        assert!(matches!(
            Error::from(oh_workspace_docker::Error::InvalidOption("x".into())),
            Error::InvalidOption { .. }
        ));
        #[cfg(feature = "api")]
        assert!(matches!(
            Error::from(oh_workspace_api::Error::InvalidOption {
                reason: "x".into(),
                source: None
            }),
            Error::InvalidOption { .. }
        ));
        #[cfg(feature = "cloud")]
        assert!(matches!(
            Error::from(oh_workspace_cloud::Error::InvalidOption {
                reason: "x".into(),
                source: None
            }),
            Error::InvalidOption { .. }
        ));
    }
}
