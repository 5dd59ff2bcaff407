//! The client's error type.

use std::path::PathBuf;
use std::time::Duration;

use oh_protocol::{ErrorBody, RunFailure};

/// A boxed cause: the transport's or decoder's own error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to an agent server (or, through
/// [`ServiceClient`](crate::ServiceClient), to another JSON service).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The host is not an `http://` or `https://` URL.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A header (a key) cannot be sent: its name or value is not valid in HTTP.
    #[error("invalid header {name}: {reason}")]
    InvalidHeader {
        /// The header's name.
        name: String,
        /// What is wrong with it (never the value).
        reason: String,
    },
    /// No HTTP response: the server could not be reached or the connection broke.
    ///
    /// The transport's error is the [`source`](std::error::Error::source); walking the chain
    /// finds the [`std::io::Error`] underneath, e.g. to tell a refused connection
    /// ([`std::io::ErrorKind::ConnectionRefused`]) from others. [`error_chain`] renders it
    /// all.
    ///
    /// [`error_chain`]: crate::error_chain
    #[error("cannot reach {url}")]
    Connect {
        /// The URL requested.
        url: String,
        /// The transport's error.
        #[source]
        source: BoxError,
    },
    /// No answer within the time allowed.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The time allowed.
        after: Duration,
    },
    /// The server answered with a status that is not 2xx.
    #[error("{method} {path} answered {status}: {detail}")]
    Status {
        /// HTTP method.
        method: String,
        /// Path and query requested (relative to the host).
        path: String,
        /// HTTP status code.
        status: u16,
        /// The `detail` of the JSON error body, else the body as text; for a 401, followed by
        /// a note saying whether a key was sent.
        detail: String,
        /// The error body, when it was one (`{"detail": …}`, as the agent server writes
        /// them).
        body: Option<Box<ErrorBody>>,
    },
    /// A response body was not what the protocol says (or a request body could not be
    /// encoded).
    #[error("cannot decode {what}")]
    Decode {
        /// What was decoded.
        what: String,
        /// The decoder's error, or what is missing.
        #[source]
        source: BoxError,
    },
    /// A local file could not be read or written (the cause is the
    /// [`source`](std::error::Error::source)).
    #[error("cannot read or write {}", path.display())]
    Io {
        /// The local path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The server closed the event socket for good: 4001 (authentication failed) or 4004
    /// (conversation not found).
    #[error("event socket closed by the server: {code} {reason}")]
    SocketClosed {
        /// WebSocket close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// A run ended in `error` or `stuck` (the reference's `ConversationRunError`); the same
    /// type as a local conversation's failed run.
    #[error(transparent)]
    Run(RunFailure),
    /// A builder was used wrongly: a part it needs is missing.
    #[error("{builder}: {reason}")]
    Builder {
        /// The builder, e.g. `RemoteConversationBuilder`.
        builder: &'static str,
        /// What is missing or wrong.
        reason: String,
    },
    /// A relative path was given for a file transfer while the working directory is
    /// relative too: the agent server's file routes take absolute paths only. Give the
    /// workspace an absolute working directory
    /// ([`RemoteWorkspaceBuilder::working_dir`](crate::RemoteWorkspaceBuilder::working_dir)) or
    /// an absolute path.
    #[error(
        "path {path:?} is relative and so is the workspace's working directory \
         {working_dir:?}; the agent server takes absolute paths only: set an absolute \
         working_dir (RemoteWorkspaceBuilder::working_dir) or pass an absolute path"
    )]
    RelativePath {
        /// The path given.
        path: String,
        /// The workspace's working directory.
        working_dir: String,
    },
    /// The server broke the protocol (e.g. a duplicate command output chunk).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The conversation was closed by this client.
    #[error("conversation {0} is closed")]
    Closed(uuid::Uuid),
}

impl Error {
    /// The HTTP status of a [`Error::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// The error body of a [`Error::Status`], when the answer had one.
    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            Self::Status { body, .. } => body.as_deref(),
            _ => None,
        }
    }

    /// True when retrying may help: no response, a timeout, 429 or 5xx.
    ///
    /// Every retry decision of the client and the workspace crates goes through here; the
    /// match names every variant, so a new one needs a decision.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::InvalidUrl { .. }
            | Self::InvalidHeader { .. }
            | Self::Decode { .. }
            | Self::Io { .. }
            | Self::SocketClosed { .. }
            | Self::Run(_)
            | Self::Builder { .. }
            | Self::RelativePath { .. }
            | Self::Protocol(_)
            | Self::Closed(_) => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn decode(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Decode {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(status: u16) -> Error {
        Error::Status {
            method: "GET".into(),
            path: "/x".into(),
            status,
            detail: String::new(),
            body: None,
        }
    }

    /// One error of every variant (the match fails to compile when one is added).
    fn every_variant() -> Vec<(Error, bool)> {
        let id = uuid::Uuid::nil();
        let all = vec![
            (
                Error::InvalidUrl {
                    url: "x".into(),
                    reason: "r".into(),
                },
                false,
            ),
            (
                Error::InvalidHeader {
                    name: "n".into(),
                    reason: "r".into(),
                },
                false,
            ),
            (
                Error::Connect {
                    url: "http://h".into(),
                    source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
                },
                true,
            ),
            (
                Error::Timeout {
                    what: "GET /x".into(),
                    after: Duration::from_secs(1),
                },
                true,
            ),
            (status(503), true),
            (Error::decode("x", "no id"), false),
            (
                Error::io("f", std::io::Error::from(std::io::ErrorKind::NotFound)),
                false,
            ),
            (
                Error::SocketClosed {
                    code: 4001,
                    reason: "r".into(),
                },
                false,
            ),
            (
                Error::Run(RunFailure::new(
                    id,
                    oh_protocol::ExecutionStatus::Error,
                    None,
                    "d",
                )),
                false,
            ),
            (
                Error::Builder {
                    builder: "B",
                    reason: "r".into(),
                },
                false,
            ),
            (
                Error::RelativePath {
                    path: "a".into(),
                    working_dir: "w".into(),
                },
                false,
            ),
            (Error::Protocol("p".into()), false),
            (Error::Closed(id), false),
        ];
        for (error, _) in &all {
            match error {
                Error::InvalidUrl { .. }
                | Error::InvalidHeader { .. }
                | Error::Connect { .. }
                | Error::Timeout { .. }
                | Error::Status { .. }
                | Error::Decode { .. }
                | Error::Io { .. }
                | Error::SocketClosed { .. }
                | Error::Run(_)
                | Error::Builder { .. }
                | Error::RelativePath { .. }
                | Error::Protocol(_)
                | Error::Closed(_) => {}
            }
        }
        all
    }

    #[test]
    fn retrying_helps_only_without_an_answer_or_on_429_and_5xx() {
        for (error, transient) in every_variant() {
            assert_eq!(error.is_transient(), transient, "{error:?}");
        }
        for (code, transient) in [
            (400, false),
            (401, false),
            (404, false),
            (409, false),
            (422, false),
            (429, true),
            (500, true),
            (502, true),
            (504, true),
        ] {
            assert_eq!(status(code).is_transient(), transient, "{code}");
        }
        assert!(status(404).is_not_found());
        assert_eq!(status(404).body(), None);
    }
}
