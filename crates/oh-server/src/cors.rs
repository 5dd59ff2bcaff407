//! CORS (spec §1.4). Irrelevant to SDK clients, needed by browsers.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

/// Which origins may call the server.
#[derive(Debug, Clone)]
pub(crate) struct CorsPolicy {
    origins: Vec<String>,
    pattern: Option<regex::Regex>,
    docker_host: Option<String>,
}

impl CorsPolicy {
    /// The policy for the configured origins and pattern (an invalid pattern is ignored with
    /// a warning).
    pub(crate) fn new(origins: &[String], pattern: Option<&str>) -> Self {
        let pattern = pattern.and_then(|p| match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(err) => {
                tracing::warn!(pattern = p, %err, "ignoring invalid allow_cors_origin_regex");
                None
            }
        });
        Self {
            origins: origins.to_vec(),
            pattern,
            docker_host: std::env::var("DOCKER_HOST_ADDR")
                .ok()
                .filter(|h| !h.is_empty()),
        }
    }

    fn allows(&self, path: &str, origin: &str) -> bool {
        let any_http = path == "/api/auth/workspace-session"
            || (path.starts_with("/api/conversations/") && path.contains("/workspace"));
        let Some(rest) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return false;
        };
        if any_http {
            return true;
        }
        let host = rest.split([':', '/']).next().unwrap_or("");
        host == "localhost"
            || host == "127.0.0.1"
            || self.docker_host.as_deref() == Some(host)
            || self.origins.iter().any(|o| o == origin)
            || self.pattern.as_ref().is_some_and(|re| re.is_match(origin))
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

/// Middleware: answers preflights and adds the allow headers for allowed origins.
pub(crate) async fn cors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return next.run(req).await;
    };
    let allowed = origin
        .to_str()
        .is_ok_and(|o| state.cors.allows(req.uri().path(), o));
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if !allowed {
            return (StatusCode::BAD_REQUEST, "Disallowed CORS origin").into_response();
        }
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
    if allowed {
        allow_headers(response.headers_mut(), &origin);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_origins_and_configured_ones() {
        let policy = CorsPolicy::new(
            &["https://app.example.com".into()],
            Some(r"https://.*\.test"),
        );
        assert!(policy.allows("/api/conversations", "http://localhost:3000"));
        assert!(policy.allows("/health", "https://127.0.0.1"));
        assert!(policy.allows("/health", "https://app.example.com"));
        assert!(policy.allows("/health", "https://x.test"));
        assert!(!policy.allows("/health", "https://evil.example.com"));
        assert!(!policy.allows("/health", "null"));
        assert!(policy.allows("/api/auth/workspace-session", "https://evil.example.com"));
    }
}
