//! Errors of the sandbox server, and their HTTP form (`{"detail": …}`, the reference's shape).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What the engine said when a backend call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The engine does not answer.
    #[error("the container engine is not reachable: {0}")]
    Unavailable(String),
    /// The image is not there and could not be pulled.
    #[error("image {image} does not exist on the engine ({detail})")]
    ImageMissing {
        /// The image asked for.
        image: String,
        /// Why it could not be had.
        detail: String,
    },
    /// The engine refused or failed a call.
    #[error("container engine: {0}")]
    Engine(#[source] bollard::errors::Error),
    /// Anything else about the engine's state.
    #[error("{0}")]
    Other(String),
}

impl From<bollard::errors::Error> for BackendError {
    fn from(error: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        match error {
            E::DockerResponseServerError { .. }
            | E::JsonDataError { .. }
            | E::JsonSerdeError { .. }
            | E::APIVersionParseError {}
            | E::DockerContainerWaitError { .. }
            | E::DockerStreamError { .. } => Self::Engine(error),
            // No answer at all: a socket error, a timeout, a broken connection.
            other => Self::Unavailable(other.to_string()),
        }
    }
}

impl From<oh_workspace_docker::Error> for BackendError {
    fn from(error: oh_workspace_docker::Error) -> Self {
        match error {
            oh_workspace_docker::Error::DaemonUnreachable(cause) => {
                Self::Unavailable(format!("the Docker Engine is not reachable: {cause}"))
            }
            oh_workspace_docker::Error::Docker(e) => e.into(),
            other => Self::Other(other.to_string()),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting is wrong.
    #[error("invalid setting: {0}")]
    Config(String),
    /// The state directory could not be read or written.
    #[error("state directory {path}: {source}")]
    State {
        /// The path.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The engine failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The users file (`--users`) could not be read or is not valid.
    #[error("users file {path}: {reason}")]
    Users {
        /// The path.
        path: std::path::PathBuf,
        /// What is wrong (never a key or a secret).
        reason: String,
    },
    /// The listener could not be bound or failed.
    #[error("listener: {0}")]
    Listen(#[source] std::io::Error),
}

/// An API error: an HTTP status and a `detail`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) detail: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    pub(crate) fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }

    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub(crate) fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        let status = match &error {
            BackendError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            BackendError::ImageMissing { .. } => StatusCode::BAD_REQUEST,
            BackendError::Engine(_) | BackendError::Other(_) => StatusCode::BAD_GATEWAY,
        };
        Self::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = json_response(&oh_protocol::ErrorBody::message(self.detail));
        *response.status_mut() = self.status;
        response
    }
}

/// A `200 application/json` response.
pub(crate) fn json_response<T: serde::Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            format!("{{\"detail\":\"cannot encode the response: {e}\"}}"),
        )
            .into_response(),
    }
}
