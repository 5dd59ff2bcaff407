//! Secrets of a conversation: injected into the terminal and masked in outputs.
//!
//! Values are registered by name. A terminal command that mentions a name (case-insensitively)
//! gets that secret exported into its shell first; every known value is replaced by
//! [`MASK`] in tool output.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// What a secret value is replaced with in outputs.
pub const MASK: &str = "<secret-hidden>";

/// A shared, thread-safe registry of secret values by name.
#[derive(Clone, Default)]
pub struct Secrets {
    inner: Arc<RwLock<BTreeMap<String, Entry>>>,
}

#[derive(Clone)]
struct Entry {
    value: String,
    description: Option<String>,
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
            value: value.into(),
            description,
        };
        self.write().insert(name.into(), entry);
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

    /// The value of a secret.
    pub fn get(&self, name: &str) -> Option<String> {
        self.read().get(name).map(|e| e.value.clone())
    }

    /// Whether no secret is registered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Secrets whose name occurs in `text`, case-insensitively, as `(name, value)` pairs.
    /// Names that are not valid shell identifiers are left out.
    pub fn referenced_in(&self, text: &str) -> Vec<(String, String)> {
        let lower = text.to_lowercase();
        self.read()
            .iter()
            .filter(|(name, _)| is_env_name(name) && lower.contains(&name.to_lowercase()))
            .map(|(name, e)| (name.clone(), e.value.clone()))
            .collect()
    }

    /// `text` with every non-empty secret value replaced by [`MASK`]. Longer values are
    /// replaced first so a value containing another is hidden whole.
    pub fn mask(&self, text: &str) -> String {
        let guard = self.read();
        if guard.is_empty() {
            return text.to_owned();
        }
        let mut values: Vec<&str> = guard
            .values()
            .map(|e| e.value.as_str())
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
