//! A small JSON-over-HTTP(S) client: hyper-util's legacy client with a rustls connector.
//!
//! TLS uses rustls with the ring provider and the operating system's root certificates. If
//! the native roots cannot be loaded, the client still works for plain `http://` endpoints
//! (local proxies, test servers); `https://` requests then fail certificate verification.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A response: status, headers and the full body.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Why a request produced no HTTP response.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// Could not connect, or the connection broke before a full response arrived.
    Connect(String),
    /// No full response within the timeout.
    Timeout(Duration),
    /// The request itself could not be built (bad URL or header).
    Request(String),
}

/// The TLS configuration, built once per process (loading the native roots reads files).
///
/// Falls back to an empty root store when the native roots cannot be loaded, so plain
/// `http://` endpoints keep working.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let builder = || {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
        };
        let native = builder()
            .map_err(std::io::Error::other)
            .and_then(ConfigBuilderExt::with_native_roots);
        let config = match native {
            Ok(with_roots) => with_roots.with_no_client_auth(),
            Err(e) => {
                tracing::warn!(
                    "cannot load native root certificates ({e}); only plain http LLM endpoints will work"
                );
                match builder() {
                    Ok(b) => b
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                    // ring supports the safe default versions; fall back to rustls' defaults.
                    Err(_) => rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                }
            }
        };
        Arc::new(config)
    }))
}

/// A pooled HTTP/1.1 client for `http://` and `https://` URLs.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A new client. Connections are pooled per client.
    pub(crate) fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls_config()).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Self { client }
    }

    /// POSTs `body` (JSON) to `url` with `headers`, and reads the whole response, all within
    /// `timeout`.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<HttpResponse, TransportError> {
        let json = HeaderValue::from_static("application/json");
        let defaults = [
            (hyper::header::CONTENT_TYPE, json.clone()),
            (hyper::header::ACCEPT, json),
        ];
        self.send(hyper::Method::POST, url, &defaults, headers, body, timeout)
            .await
    }

    /// GETs `url` with `headers`, and reads the whole response, all within `timeout`.
    pub(crate) async fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
        timeout: Duration,
    ) -> Result<HttpResponse, TransportError> {
        self.send(hyper::Method::GET, url, &[], headers, Bytes::new(), timeout)
            .await
    }

    /// Sends one request: `defaults` first, then `headers` (which replace defaults of the same
    /// name).
    async fn send(
        &self,
        method: hyper::Method,
        url: &str,
        defaults: &[(HeaderName, HeaderValue)],
        headers: &[(String, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<HttpResponse, TransportError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| TransportError::Request(format!("invalid URL {url:?}: {e}")))?;
        let mut request = hyper::Request::builder().method(method).uri(uri);
        let Some(map) = request.headers_mut() else {
            return Err(TransportError::Request(format!(
                "invalid request to {url:?}"
            )));
        };
        for (name, value) in defaults {
            map.insert(name.clone(), value.clone());
        }
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| {
                TransportError::Request(format!("invalid header name {name:?}: {e}"))
            })?;
            // Never echo header values: they may carry keys.
            let value = HeaderValue::from_str(value)
                .map_err(|_| TransportError::Request(format!("invalid value for header {name}")))?;
            map.insert(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| TransportError::Request(format!("cannot build request: {e}")))?;

        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| TransportError::Connect(describe_client_error(&e)))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| {
                    TransportError::Connect(format!("error reading the response body: {e}"))
                })?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout(timeout)),
        }
    }
}

/// The error with its sources, e.g. "client error (Connect): tcp connect error: Connection
/// refused (os error 111)".
fn describe_client_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
