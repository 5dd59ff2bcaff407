//! Session API key checks (spec §1.3): constant-time, on every `/api` route.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::app::AppState;
use crate::error::ApiError;

/// Header carrying the key on REST calls and (deprecated) WebSocket upgrades.
pub(crate) const API_KEY_HEADER: &str = "x-session-api-key";

/// The accepted keys, kept as SHA-256 digests. Empty: authentication is off. Also used by the
/// sandbox server for its own keys.
#[derive(Clone, Default)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("count", &self.digests.len())
            .finish()
    }
}

impl ApiKeys {
    /// Keys from the configuration.
    pub fn new(keys: &[oh_protocol::SecretString]) -> Self {
        Self {
            digests: keys.iter().map(|k| digest(k.expose())).collect(),
        }
    }

    /// Whether authentication is required.
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys. Digests of equal length are compared without
    /// early exit, and every key is compared, so timing reveals neither the key nor its length.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        let mut found = 0u8;
        for key in &self.digests {
            let diff = key
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found |= u8::from(diff == 0);
        }
        found == 1
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Middleware: 401 `{"detail": "Unauthorized"}` unless the request carries an accepted key.
pub(crate) async fn require_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.keys.enabled() {
        let presented = req
            .headers()
            .get(API_KEY_HEADER)
            .and_then(|v| v.to_str().ok());
        if !presented.is_some_and(|key| state.keys.accepts(key)) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(&["alpha".into(), "beta".into()]);
        assert!(keys.enabled());
        assert!(keys.accepts("alpha"));
        assert!(keys.accepts("beta"));
        assert!(!keys.accepts("Alpha"));
        assert!(!keys.accepts(""));
        assert!(!keys.accepts("alphabeta"));
        assert!(!ApiKeys::new(&[]).enabled());
    }
}
