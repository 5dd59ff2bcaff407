//! Error responses in the reference's shapes (spec §1.5).
//!
//! Every failure a handler can produce is an [`ApiError`]: a status and a JSON body. Client
//! mistakes are 4xx with `{"detail": …}`; 422 carries FastAPI-style validation entries. A 500
//! only comes from a fault of the server itself and carries an `error_id` to find it in the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An HTTP error with a JSON body.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// `status` with `{"detail": detail}`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "detail": detail.into() }),
        }
    }

    /// `status` with a body of its own (a structured `detail`).
    pub fn with_body(status: StatusCode, body: Value) -> Self {
        Self { status, body }
    }

    /// `status` with `{"detail": <standard reason phrase>}` (`"Not Found"`, `"Bad Request"`).
    pub fn reason(status: StatusCode) -> Self {
        Self::new(status, status.canonical_reason().unwrap_or("Error"))
    }

    /// The same error with `key` added to its JSON body.
    pub fn with_field(mut self, key: &str, value: Value) -> Self {
        if let Some(body) = self.body.as_object_mut() {
            body.insert(key.to_owned(), value);
        }
        self
    }

    /// 404 `{"detail": "Not Found"}`.
    pub fn not_found() -> Self {
        Self::reason(StatusCode::NOT_FOUND)
    }

    /// 400 with a message.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401 `{"detail": "Unauthorized"}`.
    pub fn unauthorized() -> Self {
        Self::reason(StatusCode::UNAUTHORIZED)
    }

    /// 409 with a message.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    /// 501 for a route this server does not implement (yet).
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented by this server"),
        )
    }

    /// 422 with one validation entry: `kind` is the pydantic error type (`missing`,
    /// `uuid_parsing`, `json_invalid`, `greater_than`, …), `loc` where it happened.
    pub fn validation(loc: &[&str], kind: &str, msg: impl Into<String>, input: Value) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({ "detail": [{
                "type": kind,
                "loc": loc,
                "msg": msg.into(),
                "input": input,
            }]}),
        }
    }

    /// 422 with a plain message as detail (the reference's `HTTPException(422, msg)`).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 500 for a fault of the server: logged with a fresh error id that the body repeats.
    pub fn internal(exception: impl std::fmt::Display) -> Self {
        let error_id = uuid::Uuid::new_v4().simple().to_string();
        tracing::error!(%error_id, error = %exception, "internal error");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: json!({
                "detail": "Internal Server Error",
                "exception": exception.to_string(),
                "error_id": error_id,
            }),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body.
    pub fn body(&self) -> &Value {
        &self.body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.body)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

/// A JSON response in the full form (nulls kept), as FastAPI writes responses.
pub fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_bytes(status, bytes),
        Err(err) => ApiError::internal(format!("serializing the response: {err}")).into_response(),
    }
}

/// A response with already-serialized JSON.
pub fn json_bytes(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = (status, bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// 200 with a JSON body.
pub fn ok<T: serde::Serialize + ?Sized>(value: &T) -> Response {
    json_response(StatusCode::OK, value)
}
