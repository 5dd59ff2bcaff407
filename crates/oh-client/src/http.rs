//! HTTP to one service (an agent server, a runtime API): hyper-util's pooled client over
//! rustls, keys as default headers, JSON helpers and streamed bodies.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, Response};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oh_protocol::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Header that carries the session API key.
pub(crate) const SESSION_KEY_HEADER: &str = "X-Session-API-Key";

/// A request body: whole or streamed.
pub(crate) type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest error body kept in an error message.
const MAX_DETAIL: usize = 2000;

/// rustls with the ring provider and the OS roots; plain `http://` still works without roots.
pub(crate) fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)
            .and_then(ConfigBuilderExt::with_native_roots);
        let config = roots.map(|b| b.with_no_client_auth()).unwrap_or_else(|e| {
            tracing::warn!("no native root certificates ({e}): https:// hosts will fail");
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        });
        Arc::new(config)
    }))
}

/// Builds a body from whole bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// `key=value&…`, form-encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        out.append_pair(k, v);
    }
    out.finish()
}

/// The HTTP side of one service (an agent server, a runtime API): its base URL, a pooled
/// client and the headers every authenticated request carries.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// `scheme://authority[/prefix]`, no trailing slash.
    base: String,
    /// Default headers (keys). Values are marked sensitive, so `Debug` shows `Sensitive`.
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Http {
    /// A client for `host` (`http[s]://host[:port][/prefix]`), without default headers.
    pub(crate) fn new(host: &str) -> Result<Self> {
        let base = host.trim().trim_end_matches('/').to_owned();
        let invalid = |reason: &str| Error::InvalidUrl {
            url: host.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: hyper::Uri = base.parse().map_err(|e| invalid(&format!("{e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(invalid("the scheme must be http or https")),
        }
        if uri.authority().is_none() {
            return Err(invalid("no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("a host URL cannot have a query"));
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls_config()).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Self {
            client,
            base,
            headers: Vec::new(),
        })
    }

    /// Adds a default header with a secret value (a key), sent on every authenticated
    /// request; a header of the same name is replaced.
    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidHeader {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid("not a valid header name"))?;
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| invalid("the value is not a valid header value (control characters?)"))?;
        value.set_sensitive(true);
        self.headers.retain(|(n, _)| *n != header);
        self.headers.push((header, value));
        Ok(self)
    }

    /// The host, without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `ws[s]://…/path` for a path on this host.
    pub(crate) fn ws_url(&self, path: &str) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}{path}")
    }

    /// Sends a request and waits (at most `timeout`) for the response head. Non-2xx answers
    /// become [`Error::Status`].
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Body, &str)>,
        timeout: Duration,
        authenticated: bool,
    ) -> Result<Response<Incoming>> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method.clone()).uri(&url);
        if authenticated {
            for (name, value) in &self.headers {
                request = request.header(name, value.clone());
            }
        }
        let body = match body {
            Some((body, content_type)) => {
                request = request.header(CONTENT_TYPE, content_type);
                body
            }
            None => empty(),
        };
        let request = request.body(body).map_err(|e| Error::InvalidUrl {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        let response = match tokio::time::timeout(timeout, self.client.request(request)).await {
            Err(_) => {
                return Err(Error::Timeout {
                    what: format!("{method} {path}"),
                    after: timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(Error::Connect {
                    url,
                    source: Box::new(e),
                });
            }
            Ok(Ok(response)) => response,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = tokio::time::timeout(timeout, response.into_body().collect())
            .await
            .ok()
            .and_then(|r| r.ok())
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let (mut detail, error_body) = error_detail(&body);
        if status == 401 {
            // The server cannot tell a missing key from a wrong one; this side can.
            detail.push_str(if !authenticated {
                " (this request carries no key by design; the server refused it anyway)"
            } else if self.headers.is_empty() {
                " (no API key was sent: the server needs one)"
            } else {
                " (the server refused the API key that was sent)"
            });
        }
        Err(Error::Status {
            method: method.to_string(),
            path: path.to_owned(),
            status,
            detail,
            body: error_body.map(Box::new),
        })
    }

    /// A request whose whole response body is read, all within `timeout`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Body, &str)>,
        timeout: Duration,
    ) -> Result<Bytes> {
        let what = format!("{method} {path}");
        let exchange = async {
            let response = self.send(method, path, body, timeout, true).await?;
            response
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .map_err(|e| Error::Connect {
                    url: format!("{}{path}", self.base),
                    source: Box::new(e),
                })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Timeout {
                what,
                after: timeout,
            })?
    }

    /// A JSON request (body optional) with a JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Duration,
    ) -> Result<T> {
        let body = match body {
            Some(value) => Some(json_body(path, value)?),
            None => None,
        };
        let bytes = self.call(method, path, body, timeout).await?;
        decode(path, &bytes)
    }
}

/// A JSON request body.
pub(crate) fn json_body(
    path: &str,
    value: &(impl Serialize + ?Sized),
) -> Result<(Body, &'static str)> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| Error::decode(format!("the body of {path}"), e))?;
    Ok((full(bytes), "application/json"))
}

/// Decodes a JSON response body.
pub(crate) fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::decode(format!("the answer of {path}"), e))
}

/// The `detail` of an error body (`{"detail": …}`, read as the typed [`ErrorBody`]), else
/// the body as text; and the typed body when it was one.
fn error_detail(body: &[u8]) -> (String, Option<ErrorBody>) {
    let (text, typed) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value @ serde_json::Value::Object(_)) => {
            match serde_json::from_value::<ErrorBody>(value.clone()) {
                Ok(typed) => (typed.detail.to_string(), Some(typed)),
                Err(_) => (value.to_string(), None),
            }
        }
        _ => (String::from_utf8_lossy(body).into_owned(), None),
    };
    if text.len() <= MAX_DETAIL {
        return (text, typed);
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (format!("{}…", &text[..end]), typed)
}

/// An error with its causes, for messages.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_validated_and_normalised() {
        let http = Http::new("http://127.0.0.1:8000/").unwrap();
        assert_eq!(http.base(), "http://127.0.0.1:8000");
        assert_eq!(
            http.ws_url("/sockets/events/x"),
            "ws://127.0.0.1:8000/sockets/events/x"
        );
        let tls = Http::new("https://example.com/prefix/")
            .unwrap()
            .with_header(SESSION_KEY_HEADER, "k")
            .unwrap();
        assert_eq!(
            tls.ws_url("/sockets/a"),
            "wss://example.com/prefix/sockets/a"
        );
        for bad in ["", "localhost:8000", "ftp://x", "http://", "http://h/?q=1"] {
            assert!(
                matches!(Http::new(bad), Err(Error::InvalidUrl { .. })),
                "{bad:?} was accepted"
            );
        }
        for (name, value) in [(SESSION_KEY_HEADER, "bad\nkey"), ("bad name", "k")] {
            assert!(matches!(
                Http::new("http://h").unwrap().with_header(name, value),
                Err(Error::InvalidHeader { .. })
            ));
        }
    }

    #[test]
    fn error_details_come_from_the_json_body() {
        let (detail, body) = error_detail(br#"{"detail":"Unauthorized"}"#);
        assert_eq!(detail, "Unauthorized");
        assert_eq!(body, Some(ErrorBody::message("Unauthorized")));
        let (detail, body) = error_detail(
            br#"{"detail":[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]}"#,
        );
        assert_eq!(
            detail,
            r#"[{"type":"missing","loc":["body"],"msg":"Field required","input":null}]"#
        );
        assert!(matches!(
            body.map(|b| b.detail),
            Some(oh_protocol::ErrorDetail::Validation(entries)) if entries[0].msg == "Field required"
        ));
        assert_eq!(
            error_detail(br#"{"error":"x"}"#),
            (r#"{"error":"x"}"#.to_owned(), None)
        );
        assert_eq!(error_detail(b"plain"), ("plain".to_owned(), None));
        assert!(error_detail("é".repeat(3000).as_bytes()).0.ends_with('…'));
    }

    #[test]
    fn queries_are_form_encoded() {
        assert_eq!(
            query(&[("path", "/a b&c"), ("x", "1")]),
            "path=%2Fa+b%26c&x=1"
        );
    }
}
