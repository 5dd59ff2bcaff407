//! The client's error type.

use std::path::PathBuf;
use std::time::Duration;

use oh_protocol::ExecutionStatus;

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
    #[error("cannot reach {url}: {message}")]
    Connect {
        /// The URL requested.
        url: String,
        /// The transport's message.
        message: String,
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
    },
    /// A response body was not what the protocol says.
    #[error("cannot decode {what}: {message}")]
    Decode {
        /// What was decoded.
        what: String,
        /// The decoder's message.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
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
    /// A run ended in `error` or `stuck` (the reference's `ConversationRunError`).
    #[error("conversation {conversation_id} run failed ({status:?}): {detail}")]
    Run {
        /// The conversation.
        conversation_id: uuid::Uuid,
        /// `error` or `stuck`.
        status: ExecutionStatus,
        /// The latest `ConversationErrorEvent` code, if any.
        code: Option<String>,
        /// What went wrong.
        detail: String,
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

    /// True when retrying may help: no response, a timeout, 429 or 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::InvalidUrl { .. }
            | Self::InvalidHeader { .. }
            | Self::Decode { .. }
            | Self::Io { .. }
            | Self::SocketClosed { .. }
            | Self::Run { .. }
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

    pub(crate) fn decode(what: impl Into<String>, message: impl std::fmt::Display) -> Self {
        Self::Decode {
            what: what.into(),
            message: message.to_string(),
        }
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
