//! [`ServiceClient`]: JSON over HTTP to a service that is not an agent server (a runtime API,
//! the Cloud API), on the same transport as the agent-server client; [`ReadinessWait`]: the
//! wait of such a client until a sandbox's agent server is ready.

mod readiness;

use std::borrow::Cow;
use std::time::Duration;

use hyper::Method;
use oh_protocol::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::http::{self, Http};

pub use readiness::{ReadinessWait, WaitExpired};

/// Time allowed for a request when neither [`ServiceClient::with_timeout`] nor the call
/// says otherwise (the reference's `api_timeout`).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// A JSON-over-HTTP client for one service: a base URL, keys sent as headers on every
/// request, and a default time allowed per request.
///
/// It is the agent-server client's transport (hyper-util's pooled client over rustls, a
/// 10 s connect timeout) with the same errors: an answer that is not 2xx is
/// [`Error::Status`] with the JSON body's `detail` (or the body as text), no answer is
/// [`Error::Connect`] or [`Error::Timeout`], an unexpected body is [`Error::Decode`]. An
/// empty body decodes as JSON `null`, so `()` or `Option<T>` take it.
///
/// Cheap to clone; clones share one connection pool. `Debug` never shows header values.
///
/// ```no_run
/// # async fn demo() -> Result<(), oh_client::Error> {
/// use std::time::Duration;
/// use oh_client::ServiceClient;
/// use oh_protocol::SecretString;
///
/// let api = ServiceClient::new("https://runtime.example.com")?
///     .with_header("X-API-Key", &SecretString::new("my-key"))?
///     .with_timeout(Duration::from_secs(30));
/// let runtime: serde_json::Value = api.get("/sessions/agent-server-1").await?;
/// println!("{runtime}");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServiceClient {
    http: Http,
    timeout: Duration,
}

impl ServiceClient {
    /// A client for the service at `base_url` (`http[s]://host[:port][/prefix]`, a trailing
    /// `/` is stripped), with no headers and a 60 s timeout per request. Does no I/O.
    pub fn new(base_url: &str) -> Result<Self> {
        Ok(Self {
            http: Http::new(base_url)?,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Sends `name: value` on every request (`X-API-Key`, `Authorization: Bearer …`); the
    /// value is kept out of `Debug`. A header of the same name is replaced.
    /// [`Error::InvalidHeader`] if the name or value cannot be sent.
    pub fn with_header(mut self, name: &'static str, value: &SecretString) -> Result<Self> {
        self.http = self.http.with_header(name, value.expose())?;
        Ok(self)
    }

    /// The time allowed per request (connect, answer and body) unless a call gives its own.
    #[must_use]
    pub fn with_timeout(mut self, read: Duration) -> Self {
        self.timeout = read;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        self.http.base()
    }

    /// `GET {base}{path_and_query}`, answer decoded from JSON.
    pub async fn get<T: DeserializeOwned>(&self, path_and_query: &str) -> Result<T> {
        self.json(Method::GET, path_and_query, None::<&()>, None)
            .await
    }

    /// `POST {base}{path}` with a JSON body, answer decoded from JSON, within `timeout`
    /// (default: the client's).
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        timeout: Option<Duration>,
    ) -> Result<T> {
        self.json(Method::POST, path, Some(body), timeout).await
    }

    /// `DELETE {base}{path_and_query}`, answer decoded from JSON, within `timeout` (default:
    /// the client's).
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        timeout: Option<Duration>,
    ) -> Result<T> {
        self.json(Method::DELETE, path_and_query, None::<&()>, timeout)
            .await
    }

    /// `POST {base}{path_and_query}` without a body, answer decoded from JSON, within
    /// `timeout` (default: the client's).
    pub async fn post_empty<T: DeserializeOwned>(
        &self,
        path_and_query: &str,
        timeout: Option<Duration>,
    ) -> Result<T> {
        self.json(Method::POST, path_and_query, None::<&()>, timeout)
            .await
    }

    /// `GET {base}{path_and_query}`, answer as text (UTF-8).
    pub async fn get_text(&self, path_and_query: &str) -> Result<String> {
        let path = slashed(path_and_query);
        let bytes = self
            .http
            .call(Method::GET, &path, None, self.timeout)
            .await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| Error::decode(format!("the answer of {path}"), e))
    }

    async fn json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<T> {
        let path = slashed(path);
        let body = match body {
            Some(value) => Some(http::json_body(&path, value)?),
            None => None,
        };
        let timeout = timeout.unwrap_or(self.timeout);
        let bytes = self.http.call(method, &path, body, timeout).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return http::decode(&path, b"null");
        }
        http::decode(&path, &bytes)
    }
}

/// `key=value&…`, form-encoded, for the query string of a service call.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    http::query(pairs)
}

/// `segment` percent-encoded as one URL path segment (everything but `A-Za-z0-9-._~`).
pub fn path_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An error followed by its causes (`error: cause: cause`), for log lines and messages.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    http::describe(error)
}

/// `path` with a leading `/` (an empty path stays empty: the base URL itself).
fn slashed(path: &str) -> Cow<'_, str> {
    if path.is_empty() || path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    }
}

/// Runs `future` to completion on a short-lived thread with its own single-threaded runtime,
/// and waits for it. For `Drop` implementations, which cannot await (this also works while
/// unwinding from a panic, and from inside or outside a Tokio runtime); nothing global is
/// touched. `None` when no runtime could be built or the future panicked.
pub fn block_on_own_thread<F>(future: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
            .map(|runtime| runtime.block_on(future))
    })
    .join()
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Incoming;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, String, Option<String>, String)>>>;

    /// A tiny server: answers by path, records (method, path+query, X-API-Key, body).
    async fn serve() -> (String, Seen) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let recorded = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let recorded = Arc::clone(&recorded);
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().to_string();
                            let key = req
                                .headers()
                                .get("x-api-key")
                                .map(|v| v.to_str().unwrap().to_owned());
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let body = String::from_utf8(body.to_vec()).unwrap();
                            recorded.lock().unwrap().push((
                                method,
                                path.clone(),
                                key,
                                body.clone(),
                            ));
                            let (status, answer) = match path.as_str() {
                                "/echo" => (200, body),
                                "/empty" => (200, String::new()),
                                "/text" => (200, "plain text".to_owned()),
                                "/missing" => (404, r#"{"detail":"no such session"}"#.into()),
                                "/busy" => (503, "overloaded".into()),
                                _ => (200, r#"{"ok":true}"#.into()),
                            };
                            let response = Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(answer)))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (format!("http://{addr}/"), seen)
    }

    #[tokio::test]
    async fn requests_carry_the_headers_and_decode_the_answers() {
        let (url, seen) = serve().await;
        let api = ServiceClient::new(&url)
            .unwrap()
            .with_header("X-API-Key", &SecretString::new("sk-service-4242"))
            .unwrap();
        assert_eq!(api.base(), url.trim_end_matches('/'));
        let echoed: serde_json::Value = api
            .post("/echo", &serde_json::json!({"runtime_id": "r1"}), None)
            .await
            .unwrap();
        assert_eq!(echoed, serde_json::json!({"runtime_id": "r1"}));
        let ok: serde_json::Value = api.get("other?x=1").await.unwrap();
        assert_eq!(ok["ok"], true);
        api.delete::<()>("/empty", Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(api.get_text("/text").await.unwrap(), "plain text");

        let missing = api.get::<serde_json::Value>("/missing").await.unwrap_err();
        assert!(missing.is_not_found(), "{missing}");
        assert!(
            matches!(&missing, Error::Status { detail, .. } if detail == "no such session"),
            "{missing:?}"
        );
        let busy = api.get::<serde_json::Value>("/busy").await.unwrap_err();
        assert!(busy.is_transient());
        assert!(
            matches!(&busy, Error::Status { status: 503, detail, .. } if detail == "overloaded")
        );
        let undecodable = api.get::<Vec<u32>>("/text").await.unwrap_err();
        assert!(
            matches!(undecodable, Error::Decode { .. }),
            "{undecodable:?}"
        );

        let seen = seen.lock().unwrap().clone();
        let methods: Vec<_> = seen.iter().map(|(m, p, _, _)| format!("{m} {p}")).collect();
        assert_eq!(
            methods,
            [
                "POST /echo",
                "GET /other?x=1",
                "DELETE /empty",
                "GET /text",
                "GET /missing",
                "GET /busy",
                "GET /text"
            ]
        );
        assert!(
            seen.iter()
                .all(|(_, _, key, _)| key.as_deref() == Some("sk-service-4242"))
        );
    }

    #[tokio::test]
    async fn no_answer_is_a_connect_error_or_a_timeout() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let api = ServiceClient::new(&format!("http://{addr}")).unwrap();
        let error = api.get::<()>("/x").await.unwrap_err();
        assert!(matches!(error, Error::Connect { .. }), "{error:?}");
        assert!(error.is_transient());
        // The transport's error is kept: a caller finds the refusal by walking the chain.
        let mut cause = std::error::Error::source(&error);
        let mut kinds = Vec::new();
        while let Some(inner) = cause {
            if let Some(io) = inner.downcast_ref::<std::io::Error>() {
                kinds.push(io.kind());
            }
            cause = inner.source();
        }
        assert!(
            kinds.contains(&std::io::ErrorKind::ConnectionRefused),
            "{kinds:?} in {}",
            error_chain(&error)
        );
        assert!(
            error_chain(&error).starts_with(&format!("cannot reach http://{addr}/x: ")),
            "{}",
            error_chain(&error)
        );

        // Accepts, never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let api = ServiceClient::new(&format!("http://{addr}"))
            .unwrap()
            .with_timeout(Duration::from_millis(100));
        let error = api.get::<()>("/x").await.unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
        drop(silent);
    }

    #[test]
    fn debug_never_shows_header_values_and_bad_input_is_refused() {
        let api = ServiceClient::new("https://api.example.com/v1/")
            .unwrap()
            .with_header("Authorization", &SecretString::new("Bearer sk-cloud-7777"))
            .unwrap()
            .with_header("X-API-Key", &SecretString::new("sk-runtime-4242"))
            .unwrap();
        assert_eq!(api.base(), "https://api.example.com/v1");
        for shown in [format!("{api:?}"), format!("{api:#?}")] {
            assert!(!shown.contains("sk-cloud-7777"), "{shown}");
            assert!(!shown.contains("sk-runtime-4242"), "{shown}");
        }
        assert!(matches!(
            ServiceClient::new("ftp://x"),
            Err(Error::InvalidUrl { .. })
        ));
        let error = ServiceClient::new("http://x")
            .unwrap()
            .with_header("X-API-Key", &SecretString::new("sk-bad\nkey"))
            .unwrap_err();
        assert!(matches!(error, Error::InvalidHeader { .. }));
        assert!(!format!("{error:?} {error}").contains("sk-bad"));
    }

    #[tokio::test]
    async fn a_readiness_wait_reads_answers_retries_transient_failures_and_expires() {
        let (url, seen) = serve().await;
        let api = ServiceClient::new(&url).unwrap();

        let mut wait = ReadinessWait::new(Duration::from_secs(30));
        let answer: Option<serde_json::Value> = wait.status(&api, "/status").await.unwrap();
        assert_eq!(answer, Some(serde_json::json!({"ok": true})));
        assert_eq!(wait.attempt(), 1);
        // Anything but a transient failure ends the wait.
        let missing = wait
            .status::<serde_json::Value>(&api, "/missing")
            .await
            .unwrap_err();
        assert!(missing.is_not_found(), "{missing}");

        // A transient failure is retried until the budget is spent; the error says what the
        // last check saw.
        let budget = Duration::from_millis(200);
        let mut wait = ReadinessWait::new(budget);
        let mut expired = None;
        // Bounded, so a wait that never expires fails instead of hanging.
        for _ in 0..20 {
            let answer = wait.status::<serde_json::Value>(&api, "/busy").await;
            assert_eq!(answer.unwrap(), None);
            if let Err(end) = wait.pause().await {
                expired = Some(end);
                break;
            }
        }
        let expired = expired.expect("the budget was spent");
        assert!(expired.waited >= budget, "{expired:?}");
        assert!(
            expired.last_state.starts_with("GET /busy failed: ")
                && expired.last_state.contains("overloaded"),
            "{expired:?}"
        );
        let busy = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, path, _, _)| path == "/busy")
            .count();
        assert!(busy >= 2, "{busy} status calls");
        // One call per check; the last one may be cut by the deadline before its request
        // leaves this process.
        let attempts = usize::try_from(wait.attempt()).unwrap();
        assert!(
            busy == attempts || busy + 1 == attempts,
            "{busy} calls in {attempts} checks"
        );

        // A first call that the deadline cuts is the last state; a later one is not: what
        // an earlier check saw says more.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let quiet =
            ServiceClient::new(&format!("http://{}", silent.local_addr().unwrap())).unwrap();
        let mut wait = ReadinessWait::new(Duration::from_millis(100));
        let cut = wait.status::<serde_json::Value>(&quiet, "/status").await;
        assert_eq!(cut.unwrap(), None);
        let expired = wait.pause().await.unwrap_err();
        assert_eq!(expired.last_state, "GET /status did not answer in time");
        let mut wait = ReadinessWait::new(Duration::from_millis(100));
        wait.status::<serde_json::Value>(&api, "/status")
            .await
            .unwrap();
        wait.saw("pod status pending");
        let cut = wait.status::<serde_json::Value>(&quiet, "/status").await;
        assert_eq!(cut.unwrap(), None);
        assert_eq!(wait.attempt(), 2);
        let expired = wait.pause().await.unwrap_err();
        assert_eq!(expired.last_state, "pod status pending");
        drop(silent);
    }

    #[tokio::test]
    async fn a_readiness_wait_probes_health_within_its_budget() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let remote = crate::RemoteWorkspace::new(format!("http://{addr}"), "/w").unwrap();
        assert!(
            !ReadinessWait::new(Duration::from_secs(5))
                .healthy(&remote)
                .await
        );
        // Accepts, never answers: the probe ends with the budget.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let remote = crate::RemoteWorkspace::new(format!("http://{addr}"), "/w").unwrap();
        let began = std::time::Instant::now();
        assert!(
            !ReadinessWait::new(Duration::from_millis(100))
                .healthy(&remote)
                .await
        );
        assert!(
            began.elapsed() < Duration::from_secs(4),
            "{:?}",
            began.elapsed()
        );
        drop(silent);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_that_would_reach_the_deadline_ends_the_wait() {
        let mut wait = ReadinessWait::new(Duration::from_millis(120));
        wait.saw("pod status pending");
        // Pauses of 50 ms, then 100 ms: the second would pass the deadline, so no check
        // follows it with no time left.
        wait.pause().await.unwrap();
        assert_eq!(wait.elapsed(), Duration::from_millis(50));
        let expired = wait.pause().await.unwrap_err();
        assert_eq!(expired.waited, Duration::from_millis(120));
        assert_eq!(expired.last_state, "pod status pending");
    }
}
