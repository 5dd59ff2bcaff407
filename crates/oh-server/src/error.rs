//! Error responses in the reference's shapes (spec §1.5).
//!
//! Every failure a handler can produce is an [`ApiError`]: a status and a JSON body, the
//! typed [`ErrorBody`] of `oh_protocol` that the client reads too. Client mistakes are 4xx
//! with `{"detail": …}`; 422 carries FastAPI-style validation entries. A 500 only comes from
//! a fault of the server itself and carries an `error_id` to find it in the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oh_protocol::{ErrorBody, ValidationError};
use serde_json::Value;

/// An HTTP error with a JSON body.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    /// Boxed: handlers return `Result<_, ApiError>` everywhere, so the error stays small.
    body: Box<ErrorBody>,
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// `status` with `{"detail": detail}`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            body: Box::new(ErrorBody::message(detail)),
        }
    }

    /// `status` with a body of its own (a structured `detail`).
    pub fn with_body(status: StatusCode, body: ErrorBody) -> Self {
        Self {
            status,
            body: Box::new(body),
        }
    }

    /// `status` with `{"detail": <standard reason phrase>}` (`"Not Found"`, `"Bad Request"`).
    pub fn reason(status: StatusCode) -> Self {
        Self::new(status, status.canonical_reason().unwrap_or("Error"))
    }

    /// The same error with `key` added to its JSON body.
    pub fn with_field(mut self, key: &str, value: Value) -> Self {
        self.body.extra.insert(key.to_owned(), value);
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
        let loc = loc.iter().map(|part| Value::from(*part)).collect();
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: Box::new(ErrorBody::validation(vec![ValidationError::new(
                kind, loc, msg, input,
            )])),
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
        let mut body = ErrorBody::message("Internal Server Error");
        body.exception = Some(exception.to_string());
        body.error_id = Some(error_id);
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: Box::new(body),
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = serde_json::to_string(&self.body).map_err(|_| std::fmt::Error)?;
        write!(f, "{}: {body}", self.status)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(error: &ApiError) -> String {
        serde_json::to_string(error.body()).unwrap()
    }

    /// The bodies are exactly those the server wrote before they were typed.
    #[test]
    fn error_bodies_keep_their_bytes() {
        assert_eq!(wire(&ApiError::not_found()), r#"{"detail":"Not Found"}"#);
        assert_eq!(
            wire(&ApiError::unauthorized()),
            r#"{"detail":"Unauthorized"}"#
        );
        assert_eq!(wire(&ApiError::conflict("busy")), r#"{"detail":"busy"}"#);
        assert_eq!(
            wire(&ApiError::validation(
                &["body", "file"],
                "missing",
                "Field required",
                Value::Null
            )),
            r#"{"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required","input":null}]}"#
        );
        assert_eq!(
            wire(&ApiError::validation(
                &["query", "limit"],
                "int_parsing",
                "Input should be a valid integer",
                Value::from("x")
            )),
            r#"{"detail":[{"type":"int_parsing","loc":["query","limit"],"msg":"Input should be a valid integer","input":"x"}]}"#
        );
        assert_eq!(
            wire(
                &ApiError::bad_request("no")
                    .with_field("unsupported", serde_json::json!(["hooks"]))
            ),
            r#"{"detail":"no","unsupported":["hooks"]}"#
        );
        let internal = ApiError::internal("boom");
        let id = internal.body().error_id.clone().unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(
            wire(&internal),
            format!(r#"{{"detail":"Internal Server Error","exception":"boom","error_id":"{id}"}}"#)
        );
        assert_eq!(
            ApiError::not_found().to_string(),
            r#"404 Not Found: {"detail":"Not Found"}"#
        );
    }
}
