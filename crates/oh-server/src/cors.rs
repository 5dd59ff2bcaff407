//! The browser boundary: CORS (spec §1.4) and the checks that keep web pages from driving
//! the server, stricter than the reference's.
//!
//! One middleware around every route, WebSocket upgrades included, runs before any handler:
//!
//! - **Host** (DNS rebinding): when no session key is configured, the `Host` must be an IP
//!   literal, `localhost`, the `DOCKER_HOST_ADDR` host or the host of an allowed CORS origin
//!   (`allow_cors_origins`, or a host `allow_cors_origin_regex` accepts). Otherwise 403: a page
//!   on an attacker's name that resolves to 127.0.0.1 is same-origin to the browser and sends
//!   no `Origin` on a GET. With keys configured the `Host` is not checked.
//! - **Origin**: a request carrying an `Origin` the policy below does not allow for its path
//!   gets 403 (`Origin: null` is never allowed). The reference only withholds the CORS
//!   headers, which hides the answer but not the side effect, and does not apply to
//!   WebSockets at all. No `Origin`: not a browser's cross-origin request, nothing to check.
//! - Allowed origins get the CORS headers, and their preflights are answered here.
//!
//! The third browser rule, JSON bodies only with a JSON `Content-Type`, is in
//! [`crate::extract::Json`].

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;

/// Which origins may call the server, and which `Host`s name it.
#[derive(Debug, Clone)]
pub(crate) struct CorsPolicy {
    origins: Vec<String>,
    /// The host names of `origins`, lowercase, without port.
    origin_hosts: Vec<String>,
    pattern: Option<regex::Regex>,
    docker_host: Option<String>,
}

impl CorsPolicy {
    /// The policy for the configured origins and pattern (an invalid pattern is ignored with
    /// a warning), plus the host named by `DOCKER_HOST_ADDR`.
    pub(crate) fn new(origins: &[String], pattern: Option<&str>) -> Self {
        let docker_host = std::env::var("DOCKER_HOST_ADDR")
            .ok()
            .filter(|h| !h.is_empty());
        Self::with_docker_host(origins, pattern, docker_host)
    }

    fn with_docker_host(
        origins: &[String],
        pattern: Option<&str>,
        docker_host: Option<String>,
    ) -> Self {
        let pattern = pattern.and_then(|p| match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(err) => {
                tracing::warn!(pattern = p, %err, "ignoring invalid allow_cors_origin_regex");
                None
            }
        });
        let origin_hosts = origins
            .iter()
            .filter_map(|origin| {
                let rest = origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))?;
                let authority = rest.split('/').next().unwrap_or("");
                Some(host_name(authority).to_ascii_lowercase())
            })
            .filter(|host| !host.is_empty())
            .collect();
        Self {
            origins: origins.to_vec(),
            origin_hosts,
            pattern,
            docker_host,
        }
    }

    /// Whether a browser page of `origin` may call `path`.
    fn allows(&self, path: &str, origin: &str) -> bool {
        let Some(rest) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false;
        };
        if any_origin_path(path) {
            return true;
        }
        let host = rest.split([':', '/']).next().unwrap_or("");
        host == "localhost"
            || host == "127.0.0.1"
            || self.docker_host.as_deref() == Some(host)
            || self.origins.iter().any(|o| o == origin || o == "*")
            || self.pattern.as_ref().is_some_and(|re| re.is_match(origin))
    }

    /// Whether `authority` (a `Host` header: a name or IP literal, maybe a port) names this
    /// server when no key protects it.
    fn allows_host(&self, authority: &str) -> bool {
        let name = host_name(authority);
        if name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.docker_host
            .as_deref()
            .is_some_and(|docker| docker.eq_ignore_ascii_case(name))
            || self
                .origin_hosts
                .iter()
                .any(|host| host.eq_ignore_ascii_case(name))
            || self.pattern.as_ref().is_some_and(|re| {
                ["http://", "https://"].iter().any(|scheme| {
                    re.is_match(&format!("{scheme}{authority}"))
                        || re.is_match(&format!("{scheme}{name}"))
                })
            })
    }
}

/// Paths any `http(s)` origin may call (the reference's second policy):
/// `/api/auth/workspace-session` and `/api/conversations/{id}/workspace[/…]`, exactly.
fn any_origin_path(path: &str) -> bool {
    if path == "/api/auth/workspace-session" {
        return true;
    }
    let Some((id, tail)) = path
        .strip_prefix("/api/conversations/")
        .and_then(|rest| rest.split_once('/'))
    else {
        return false;
    };
    !id.is_empty() && (tail == "workspace" || tail.starts_with("workspace/"))
}

/// The host of an authority: `[v6]` without brackets, otherwise without `:port`.
fn host_name(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => authority,
    }
}

fn allow_headers(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn forbidden(detail: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, detail).into_response()
}

/// Middleware around every route: the `Host` and `Origin` checks, then CORS (preflights are
/// answered here; other requests of allowed origins get the allow headers).
pub(crate) async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    guard(&state.cors, state.keys.enabled(), req, next).await
}

/// [`cors`] with the policy given, and whether session keys protect the server (then the
/// `Host` is not checked); the dormant server of a deferred init uses its boot policy.
pub(crate) async fn guard(
    policy: &CorsPolicy,
    keys_enabled: bool,
    req: Request,
    next: Next,
) -> Response {
    if !keys_enabled {
        let host = match req.headers().get(header::HOST) {
            Some(value) => Some(value.to_str().unwrap_or("")),
            None => req.uri().authority().map(|a| a.as_str()),
        };
        if let Some(host) = host
            && !policy.allows_host(host)
        {
            return forbidden(format!(
                "Host {host:?} is not allowed: without a session API key this server only \
                 answers requests addressed to an IP address, localhost, DOCKER_HOST_ADDR or \
                 the host of an allowed CORS origin"
            ));
        }
    }
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.run(req).await;
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| policy.allows(req.uri().path(), o));
    if !allowed {
        return forbidden(format!(
            "Origin {:?} is not allowed to call {} (see allow_cors_origins)",
            String::from_utf8_lossy(origin.as_bytes()),
            req.uri().path()
        ));
    }
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = StatusCode::OK.into_response();
        let headers = response.headers_mut();
        allow_headers(headers, &origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
        );
        if let Some(requested) = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return response;
    }
    let mut response = next.run(req).await;
    allow_headers(response.headers_mut(), &origin);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CorsPolicy {
        CorsPolicy::with_docker_host(
            &[
                "https://app.example.com".into(),
                "http://gui.lan:3000".into(),
            ],
            Some(r"https://.*\.test"),
            Some("dockerhost".into()),
        )
    }

    #[test]
    fn local_origins_and_configured_ones() {
        let policy = policy();
        assert!(policy.allows("/api/conversations", "http://localhost:3000"));
        assert!(policy.allows("/health", "https://127.0.0.1"));
        assert!(policy.allows("/health", "http://dockerhost:8000"));
        assert!(policy.allows("/health", "https://app.example.com"));
        assert!(policy.allows("/health", "http://gui.lan:3000"));
        assert!(policy.allows("/health", "https://x.test"));
        assert!(!policy.allows("/health", "https://evil.example.com"));
        assert!(!policy.allows("/health", "http://localhost.evil.example.com"));
        assert!(!policy.allows("/health", "http://gui.lan:3001"));
        assert!(!policy.allows("/health", "null"));
        assert!(!policy.allows("/api/conversations", "file://"));
    }

    #[test]
    fn a_star_origin_allows_every_origin() {
        let policy = CorsPolicy::with_docker_host(&["*".into()], None, None);
        assert!(policy.allows("/health", "https://anything.example"));
        assert!(!policy.allows("/health", "null"));
        assert!(!policy.allows_host("anything.example"));
    }

    #[test]
    fn any_origin_only_on_the_workspace_routes() {
        let policy = policy();
        let evil = "https://evil.example.com";
        assert!(policy.allows("/api/auth/workspace-session", evil));
        assert!(policy.allows("/api/conversations/abc/workspace", evil));
        assert!(policy.allows("/api/conversations/abc/workspace/files/x", evil));
        assert!(!policy.allows("/api/conversations/abc/workspaces", evil));
        assert!(!policy.allows("/api/conversations/abc/events/workspace", evil));
        assert!(!policy.allows("/api/conversations/abc/events/workspace/x", evil));
        assert!(!policy.allows("/api/conversations//workspace", evil));
        assert!(!policy.allows("/api/conversations/workspace", evil));
        assert!(!policy.allows("/api/auth/workspace-session/x", evil));
        assert!(!policy.allows("/api/bash/workspace", evil));
        assert!(!policy.allows("/api/conversations/abc/workspace", "null"));
    }

    #[test]
    fn hosts_without_a_key() {
        let policy = policy();
        for host in [
            "127.0.0.1",
            "127.0.0.1:8000",
            "10.1.2.3:8000",
            "[::1]:8000",
            "[::1]",
            "localhost",
            "LOCALHOST:8000",
            "dockerhost:8000",
            "app.example.com",
            "gui.lan:8000",
            "ci.test:8000",
        ] {
            assert!(policy.allows_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8000",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "2130706433",
            "",
            "[evil]:80",
        ] {
            assert!(!policy.allows_host(host), "{host}");
        }
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("a.b:80"), "a.b");
        assert_eq!(host_name("a.b"), "a.b");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("a.b:x"), "a.b:x");
    }
}
