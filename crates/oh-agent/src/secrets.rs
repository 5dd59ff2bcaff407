//! Secrets of a conversation: injected into the terminal and masked in outputs.
//!
//! Values are registered by name. A terminal command that mentions a name (case-insensitively)
//! gets that secret exported into its shell first; every known value is replaced by
//! [`MASK`] in tool output.
//!
//! A secret can also be a lookup ([`LookupSecret`]): its value is fetched with `GET url` and
//! the lookup's headers each time a command mentions its name. Every value ever fetched is
//! kept, and masked like the static ones.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use oh_protocol::agent::LookupSecret;

use crate::llm::http::{HttpClient, TransportError};

/// How long one lookup may take (connection, response and body).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a secret value is replaced with in outputs.
pub const MASK: &str = "<secret-hidden>";

/// A shared, thread-safe registry of secret values by name.
#[derive(Clone, Default)]
pub struct Secrets {
    inner: Arc<RwLock<BTreeMap<String, Entry>>>,
    /// Every value fetched by a lookup so far (masked even after the lookup changes).
    fetched: Arc<RwLock<BTreeSet<String>>>,
    /// The HTTP client for lookups, made on first use.
    http: Arc<OnceLock<HttpClient>>,
}

#[derive(Clone)]
struct Entry {
    source: Source,
    description: Option<String>,
}

#[derive(Clone)]
enum Source {
    Value(String),
    Lookup(LookupSecret),
}

/// The secrets a command mentions, resolved.
#[derive(Default)]
pub struct Resolved {
    /// `(name, value)` pairs to export.
    pub values: Vec<(String, String)>,
    /// `(name, reason)` for lookups that failed; the reason never holds a header value.
    pub failures: Vec<(String, String)>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.values.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Resolved")
            .field("names", &names)
            .field("failures", &self.failures)
            .finish()
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("names", &self.names())
            .finish()
    }
}

impl Secrets {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers or replaces a secret.
    pub fn set(
        &self,
        name: impl Into<String>,
        value: impl Into<String>,
        description: Option<String>,
    ) {
        let entry = Entry {
            source: Source::Value(value.into()),
            description,
        };
        self.write().insert(name.into(), entry);
    }

    /// Registers or replaces a secret whose value is fetched with `GET lookup.url` (and
    /// `lookup.headers`) whenever a command mentions it.
    pub fn set_lookup(&self, name: impl Into<String>, lookup: LookupSecret) {
        let entry = Entry {
            description: lookup.description.clone(),
            source: Source::Lookup(lookup),
        };
        self.write().insert(name.into(), entry);
    }

    /// The lookup of a secret, if it is one.
    pub fn lookup(&self, name: &str) -> Option<LookupSecret> {
        match &self.read().get(name)?.source {
            Source::Lookup(l) => Some(l.clone()),
            Source::Value(_) => None,
        }
    }

    /// Removes a secret; returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        self.write().remove(name).is_some()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }

    /// Names with their descriptions, sorted by name.
    pub fn described(&self) -> Vec<(String, Option<String>)> {
        self.read()
            .iter()
            .map(|(k, e)| (k.clone(), e.description.clone()))
            .collect()
    }

    /// The value of a static secret (`None` for lookups: their value is fetched when used).
    pub fn get(&self, name: &str) -> Option<String> {
        match &self.read().get(name)?.source {
            Source::Value(v) => Some(v.clone()),
            Source::Lookup(_) => None,
        }
    }

    /// Whether a secret of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Whether no secret is registered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Static secrets whose name occurs in `text`, case-insensitively, as `(name, value)`
    /// pairs. Names that are not valid shell identifiers are left out, and so are lookups
    /// (see [`Secrets::resolve_referenced`]).
    pub fn referenced_in(&self, text: &str) -> Vec<(String, String)> {
        self.mentioned(text)
            .into_iter()
            .filter_map(|(name, source)| match source {
                Source::Value(v) => Some((name, v)),
                Source::Lookup(_) => None,
            })
            .collect()
    }

    /// Every secret whose name occurs in `text` (as [`Secrets::referenced_in`] finds them),
    /// with lookups fetched now. A failed lookup is reported in [`Resolved::failures`] and
    /// left out of the values; fetched values are masked from then on.
    pub async fn resolve_referenced(&self, text: &str) -> Resolved {
        let mut resolved = Resolved::default();
        for (name, source) in self.mentioned(text) {
            match source {
                Source::Value(v) => resolved.values.push((name, v)),
                Source::Lookup(lookup) => match self.fetch(&lookup).await {
                    Ok(value) => {
                        if !value.is_empty() {
                            self.fetched_mut().insert(value.clone());
                        }
                        resolved.values.push((name, value));
                    }
                    Err(reason) => {
                        tracing::warn!(secret = %name, %reason, "secret lookup failed");
                        resolved.failures.push((name, reason));
                    }
                },
            }
        }
        resolved
    }

    /// Fetches a lookup's value: the body of a 2xx answer to `GET url`, as UTF-8.
    async fn fetch(&self, lookup: &LookupSecret) -> Result<String, String> {
        let http = self.http.get_or_init(HttpClient::new);
        let headers: Vec<(String, String)> = lookup
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect();
        let url = &lookup.url;
        let response = http
            .get(url, &headers, LOOKUP_TIMEOUT)
            .await
            .map_err(|err| match err {
                TransportError::Connect(m) => format!("GET {url} failed: {m}"),
                TransportError::Timeout(t) => {
                    format!("GET {url} got no answer within {} seconds", t.as_secs())
                }
                TransportError::Request(m) => format!("GET {url} could not be sent: {m}"),
            })?;
        if !(200..300).contains(&response.status) {
            return Err(format!("GET {url} answered HTTP {}", response.status));
        }
        String::from_utf8(response.body.to_vec())
            .map_err(|_| format!("GET {url} answered a body that is not UTF-8"))
    }

    /// `(name, source)` of the secrets whose name occurs in `text`.
    fn mentioned(&self, text: &str) -> Vec<(String, Source)> {
        let lower = text.to_lowercase();
        self.read()
            .iter()
            .filter(|(name, _)| is_env_name(name) && lower.contains(&name.to_lowercase()))
            .map(|(name, e)| (name.clone(), e.source.clone()))
            .collect()
    }

    /// `text` with every non-empty secret value replaced by [`MASK`]. Longer values are
    /// replaced first so a value containing another is hidden whole.
    pub fn mask(&self, text: &str) -> String {
        let guard = self.read();
        let fetched = self
            .fetched
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_empty() && fetched.is_empty() {
            return text.to_owned();
        }
        let mut values: Vec<&str> = guard
            .values()
            .filter_map(|e| match &e.source {
                Source::Value(v) => Some(v.as_str()),
                Source::Lookup(_) => None,
            })
            .chain(fetched.iter().map(String::as_str))
            .filter(|v| !v.is_empty())
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        let mut out = text.to_owned();
        for value in values {
            if out.contains(value) {
                out = out.replace(value, MASK);
            }
        }
        out
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fetched_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeSet<String>> {
        self.fetched
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether `name` can be exported as a shell variable.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `value` quoted for bash as an ANSI-C string: `$'...'`.
pub fn ansi_c_quote(value: &str) -> String {
    let mut out = String::from("$'");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_names_case_insensitively() {
        let s = Secrets::new();
        s.set("MY_TOKEN", "abc123", None);
        s.set("OTHER", "zzz", None);
        assert_eq!(
            s.referenced_in("echo $my_token"),
            vec![("MY_TOKEN".into(), "abc123".into())]
        );
        assert!(s.referenced_in("ls").is_empty());
    }

    #[test]
    fn masks_longest_first() {
        let s = Secrets::new();
        s.set("A", "abc", None);
        s.set("B", "abcdef", None);
        assert_eq!(
            s.mask("x abcdef y abc"),
            "x <secret-hidden> y <secret-hidden>"
        );
    }

    #[test]
    fn quotes_for_bash() {
        assert_eq!(ansi_c_quote("a'b\nc"), "$'a\\'b\\nc'");
        assert!(!is_env_name("1A"));
        assert!(is_env_name("_A1"));
    }
}
