//! Request extractors whose failures are [`ApiError`]s in the reference's shapes, never
//! axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Largest JSON body accepted (a conversation create with a big agent is tens of KiB).
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// A JSON body parsed into `T`, the one way every JSON route reads its body.
///
/// The body must be declared JSON: `Content-Type: application/json` or
/// `application/<anything>+json` (parameters such as `charset` allowed, any case). Anything
/// else is refused with 415 before the body is read, and so is a non-empty body without a
/// `Content-Type`: browsers send `text/plain`, form and untyped bodies cross-site without a
/// CORS preflight, so accepting them would let any web page drive the server. An empty body
/// without a `Content-Type` is parsed as `null` (so an all-optional body may be omitted when
/// `T` accepts `null`); bad JSON and type errors are 422.
#[derive(Debug)]
pub(crate) struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared = match req.headers().get(header::CONTENT_TYPE) {
            None => false,
            Some(value) if is_json_content_type(value) => true,
            Some(value) => {
                return Err(unsupported_media_type(Some(&String::from_utf8_lossy(
                    value.as_bytes(),
                ))));
            }
        };
        let bytes = body_bytes(req, state, MAX_JSON_BODY).await?;
        if !declared && !bytes.trim_ascii().is_empty() {
            return Err(unsupported_media_type(None));
        }
        parse_json(&bytes).map(Json)
    }
}

/// Whether a `Content-Type` declares JSON: `application/json` or `application/*+json`, any
/// case, with or without parameters.
fn is_json_content_type(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application")
        && (subtype == "json" || (subtype.len() > "+json".len() && subtype.ends_with("+json")))
        && !subtype.contains(|c: char| c.is_ascii_whitespace() || c == '/')
}

/// 415 naming the expected type.
fn unsupported_media_type(got: Option<&str>) -> ApiError {
    let got = match got {
        Some(got) => format!("got Content-Type {got:?}"),
        None => "the request has a body but no Content-Type".to_owned(),
    };
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "Unsupported Media Type: this route takes a JSON body with Content-Type \
             application/json (or application/*+json); {got}"
        ),
    )
}

/// Reads a whole body of at most `limit` bytes (413 beyond).
async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let req = req.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, limit)));
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body is larger than {limit} bytes"),
            )
        } else {
            ApiError::bad_request(format!("Could not read the request body: {rejection}"))
        }
    })
}

/// Parses a JSON body into `T` with 422 errors located in `body`.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let trimmed = bytes.trim_ascii();
    let value: Value = if trimmed.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(trimmed).map_err(|err| {
            ApiError::validation(
                &["body"],
                "json_invalid",
                format!("JSON decode error: {err}"),
                Value::Object(Default::default()),
            )
        })?
    };
    if value.is_null() {
        // A required body that is missing: let `T` decide whether null is fine.
        return serde_json::from_value(Value::Null).map_err(|_| {
            ApiError::validation(&["body"], "missing", "Field required", Value::Null)
        });
    }
    let shown = redact(&value);
    if !value.is_object() && expects_object::<T>() {
        // serde's derived structs also accept the sequence form `[field, …]`; the reference
        // (pydantic) wants an object.
        return Err(ApiError::validation(
            &["body"],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
            shown,
        ));
    }
    serde_json::from_value(value)
        .map_err(|err| ApiError::validation(&["body"], "value_error", err.to_string(), shown))
}

/// Whether `T` is read from a struct (a JSON object to the reference), looking through
/// `Option` and newtypes: asks `T` to deserialize itself from [`ShapeProbe`], which answers
/// every request with an error naming what was asked for. Nothing is parsed.
fn expects_object<T: DeserializeOwned>() -> bool {
    matches!(T::deserialize(ShapeProbe), Err(Shape::Struct))
}

/// A deserializer holding no data (see [`expects_object`]).
struct ShapeProbe;

/// What [`ShapeProbe`] was asked for.
#[derive(Debug)]
enum Shape {
    Struct,
    Other,
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for Shape {}

impl serde::de::Error for Shape {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Shape::Other
    }
}

impl<'de> serde::Deserializer<'de> for ShapeProbe {
    type Error = Shape;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Shape> {
        Err(Shape::Other)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Shape> {
        Err(Shape::Struct)
    }

    fn deserialize_option<V: serde::de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Shape> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value, Shape> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// The input echoed in a 422 with secret-looking values replaced, as the reference does.
fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let lower = key.to_ascii_lowercase();
                    let secret = ["key", "secret", "token", "password", "authorization"]
                        .iter()
                        .any(|word| lower.contains(word));
                    if secret && (value.is_string() || value.is_array()) {
                        (key.clone(), redact_strings(value))
                    } else {
                        (key.clone(), redact(value))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// A secret-named value with every string in it (a list of keys too) replaced.
fn redact_strings(value: &Value) -> Value {
    match value {
        Value::String(_) => Value::String("<redacted>".into()),
        Value::Array(items) => Value::Array(items.iter().map(redact_strings).collect()),
        other => redact(other),
    }
}

/// The query string as name/value pairs, in order (names may repeat).
#[derive(Debug, Default, Clone)]
pub(crate) struct Query(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        Ok(Query(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl Query {
    /// The last value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A required string parameter (422 `missing` when absent).
    pub(crate) fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name).ok_or_else(|| {
            ApiError::validation(&["query", name], "missing", "Field required", Value::Null)
        })
    }

    /// An optional parameter parsed with `parse`, whose error message becomes a 422.
    pub(crate) fn parse<T>(
        &self,
        name: &str,
        kind: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => parse(raw).map(Some).map_err(|msg| {
                ApiError::validation(&["query", name], kind, msg, Value::String(raw.into()))
            }),
        }
    }

    /// An optional boolean (`true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`, as pydantic).
    pub(crate) fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.parse(name, "bool_parsing", |raw| {
            match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
                "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
                _ => Err("Input should be a valid boolean, unable to interpret input".into()),
            }
        })
    }

    /// The page size: default 100, 1..=100 else 422 (as 1.57.0).
    pub(crate) fn limit(&self) -> Result<usize, ApiError> {
        let limit = self
            .parse("limit", "int_parsing", |raw| {
                raw.parse::<i64>().map_err(|_| {
                    "Input should be a valid integer, unable to parse string as an integer".into()
                })
            })?
            .unwrap_or(100);
        if limit <= 0 {
            return Err(ApiError::validation(
                &["query", "limit"],
                "greater_than",
                "Input should be greater than 0",
                Value::String(limit.to_string()),
            ));
        }
        if limit > 100 {
            return Err(ApiError::validation(
                &["query", "limit"],
                "less_than_equal",
                "Input should be less than or equal to 100",
                Value::String(limit.to_string()),
            ));
        }
        Ok(limit as usize)
    }
}

/// Parses a UUID as the reference does: dashed, 32 hex or `urn:uuid:`, any case.
pub(crate) fn parse_uuid(raw: &str) -> Option<uuid::Uuid> {
    let raw = raw.trim();
    let raw = raw
        .strip_prefix("urn:uuid:")
        .or_else(|| raw.strip_prefix("URN:UUID:"))
        .unwrap_or(raw);
    if raw.len() != 32 && raw.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(raw).ok()
}

/// The `{conversation_id}` path parameter as a UUID (422 `uuid_parsing` otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConversationId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for ConversationId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = path_param(parts, state, "conversation_id").await?;
        parse_uuid(&raw).map(ConversationId).ok_or_else(|| {
            ApiError::validation(
                &["path", "conversation_id"],
                "uuid_parsing",
                "Input should be a valid UUID",
                Value::String(raw),
            )
        })
    }
}

/// A named path parameter, percent-decoded.
pub(crate) async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    params
        .iter()
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| ApiError::internal(format!("route has no `{name}` parameter")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        let json = |raw: &str| is_json_content_type(&HeaderValue::from_str(raw).unwrap());
        assert!(json("application/json"));
        assert!(json("application/json; charset=utf-8"));
        assert!(json("Application/JSON;charset=UTF-8"));
        assert!(json("application/vnd.api+json"));
        assert!(json(" application/merge-patch+json ; q=1"));
        assert!(!json("text/plain"));
        assert!(!json("text/json"));
        assert!(!json("application/x-www-form-urlencoded"));
        assert!(!json("multipart/form-data; boundary=x"));
        assert!(!json("application/+json"));
        assert!(!json("application/jsonp"));
        assert!(!json("application/json/x"));
        assert!(!json("application"));
        assert!(!json(""));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        a: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Wrapper(Body);

    #[test]
    fn secret_named_fields_are_redacted_lists_too() {
        let shown = redact(&serde_json::json!({
            "api_key": "k1",
            "session_api_keys": ["k2", "k3"],
            "nested": {"secret_key": "k4", "name": "visible"},
            "token_count": 3,
        }));
        assert_eq!(
            shown,
            serde_json::json!({
                "api_key": "<redacted>",
                "session_api_keys": ["<redacted>", "<redacted>"],
                "nested": {"secret_key": "<redacted>", "name": "visible"},
                "token_count": 3,
            })
        );
    }

    #[test]
    fn structs_want_objects() {
        assert!(expects_object::<Body>());
        assert!(expects_object::<Option<Body>>());
        assert!(expects_object::<Wrapper>());
        assert!(expects_object::<Box<Body>>());
        assert!(!expects_object::<Vec<String>>());
        assert!(!expects_object::<Value>());
        assert!(!expects_object::<String>());
        assert!(!expects_object::<std::collections::BTreeMap<String, Value>>());
    }

    #[test]
    fn the_sequence_form_of_a_struct_is_refused() {
        let err = parse_json::<Body>(br#"["x"]"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = serde_json::to_value(err.body()).unwrap();
        assert_eq!(body["detail"][0]["type"], "model_attributes_type");
        assert_eq!(body["detail"][0]["loc"], serde_json::json!(["body"]));
        assert_eq!(parse_json::<Body>(br#"{"a": "x"}"#).unwrap().a, "x");
        assert_eq!(parse_json::<Vec<String>>(br#"["x"]"#).unwrap(), ["x"]);
    }
}
