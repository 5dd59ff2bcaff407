//! The users of the Cloud API (`--users FILE`): who may create sandboxes with which key, and
//! the settings that follow them into their sandboxes (LLM, profiles, secrets, MCP servers).
//!
//! The file is JSON:
//!
//! ```json
//! {"users": [{"id": "u1", "api_key": "…",
//!             "llm": {"model": "…", "api_key": "…", "base_url": "…"},
//!             "llm_profiles": {"NAME": {"model": "…", "api_key": "…"}},
//!             "secrets": {"NAME": {"value": "…", "description": "…"}},
//!             "mcp_config": {"sse_servers": [], "shttp_servers": [], "stdio_servers": []}}]}
//! ```
//!
//! It may change while the server runs: a request that finds the file changed (modification
//! time, size or inode) re-reads it, and [`UsersHandle::reload`] (the binary calls it on
//! `SIGHUP`) re-reads it at once. A file that no longer parses keeps the users last read and
//! logs why, so a half-written edit does not lock everybody out.
//!
//! Keys are held as SHA-256 digests for the lookup and compared in constant time; nothing
//! here prints a key or a secret (`Debug` shows ids and names only).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use oh_protocol::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::ServerError;

/// Largest users file read.
const MAX_FILE: u64 = 16 * 1024 * 1024;
/// Longest name of a secret or a profile.
const MAX_NAME: usize = 128;

/// The LLM settings of a user (`llm` in the file): what `GET /api/v1/users/me` reports as
/// `llm_model`, `llm_api_key` and `llm_base_url`. Other LLM fields belong in a profile.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LlmSettings {
    #[serde(default)]
    pub(crate) model: Option<String>,
    #[serde(default)]
    pub(crate) api_key: Option<SecretString>,
    #[serde(default)]
    pub(crate) base_url: Option<String>,
}

/// One secret of a user.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserSecret {
    pub(crate) value: SecretString,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

/// One user of the Cloud API.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct User {
    pub(crate) id: String,
    pub(crate) api_key: SecretString,
    #[serde(default)]
    pub(crate) llm: LlmSettings,
    /// Named LLM configurations (any LLM fields; `api_key` and other secrets are masked
    /// unless exposed).
    #[serde(default)]
    pub(crate) llm_profiles: BTreeMap<String, Map<String, Value>>,
    #[serde(default)]
    pub(crate) secrets: BTreeMap<String, UserSecret>,
    #[serde(default)]
    pub(crate) mcp_config: Option<Map<String, Value>>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field(
                "llm_profiles",
                &self.llm_profiles.keys().collect::<Vec<_>>(),
            )
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: Vec<User>,
}

/// The users of one reading of the file.
#[derive(Debug, Default)]
pub(crate) struct Users {
    users: Vec<Arc<User>>,
    digests: Vec<[u8; 32]>,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A name a secret may have: it becomes an environment variable in the sandbox.
pub(crate) fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Users {
    /// Parses and checks a users file.
    pub(crate) fn parse(text: &[u8]) -> Result<Self, String> {
        let file: UsersFile = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let mut ids = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        let mut users = Users::default();
        for mut user in file.users {
            user.id = user.id.trim().to_owned();
            let id = user.id.as_str();
            if id.is_empty() || id.len() > MAX_NAME || id.chars().any(char::is_control) {
                return Err(format!(
                    "a user id must have 1 to {MAX_NAME} characters without control characters"
                ));
            }
            if !ids.insert(id.to_owned()) {
                return Err(format!("user {id} appears twice"));
            }
            let key = user.api_key.expose();
            if key.trim().is_empty() || key.chars().any(char::is_control) {
                return Err(format!("user {id} has an empty api_key"));
            }
            let key_digest = digest(key);
            if !keys.insert(key_digest) {
                return Err(format!("user {id} shares its api_key with another user"));
            }
            if let Some(name) = user.secrets.keys().find(|n| !is_env_name(n)) {
                return Err(format!(
                    "user {id}: secret name {name:?} is not an environment variable name \
                     (letters, digits and '_', not starting with a digit)"
                ));
            }
            if let Some(name) = user.llm_profiles.keys().find(|n| {
                n.is_empty()
                    || n.len() > MAX_NAME
                    || n.contains('/')
                    || n.chars().any(char::is_control)
            }) {
                return Err(format!("user {id}: profile name {name:?} is not allowed"));
            }
            users.users.push(Arc::new(user));
            users.digests.push(key_digest);
        }
        Ok(users)
    }

    /// The user whose key this is (constant time over all users).
    pub(crate) fn by_key(&self, presented: &str) -> Option<Arc<User>> {
        let presented = digest(presented);
        let mut found = None;
        for (i, key) in self.digests.iter().enumerate() {
            let diff = key
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(i);
            }
        }
        found.and_then(|i| self.users.get(i).cloned())
    }

    /// The user with this id.
    pub(crate) fn by_id(&self, id: &str) -> Option<Arc<User>> {
        self.users.iter().find(|u| u.id == id).cloned()
    }

    /// How many users there are.
    pub(crate) fn len(&self) -> usize {
        self.users.len()
    }
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

#[derive(Debug)]
struct Loaded {
    /// The version last tried (read or refused).
    stamp: Option<Stamp>,
    users: Arc<Users>,
}

/// The users file, re-read when it changes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UsersHandle {
    path: PathBuf,
    loaded: Arc<RwLock<Loaded>>,
}

fn read(path: &Path) -> Result<(Stamp, Users), String> {
    let before = stamp(path).map_err(|e| e.to_string())?;
    if before.len > MAX_FILE {
        return Err(format!("the file is larger than {MAX_FILE} bytes"));
    }
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    Ok((before, Users::parse(&text)?))
}

impl UsersHandle {
    /// Reads the file; a file that cannot be read or parsed is an error.
    pub(crate) fn open(path: &Path) -> Result<Self, ServerError> {
        let (stamp, users) = read(path).map_err(|reason| ServerError::Users {
            path: path.to_path_buf(),
            reason,
        })?;
        tracing::info!(users = users.len(), "read the users file");
        Ok(Self {
            path: path.to_path_buf(),
            loaded: Arc::new(RwLock::new(Loaded {
                stamp: Some(stamp),
                users: Arc::new(users),
            })),
        })
    }

    /// The users now: re-reads the file first if it changed since it was last read.
    pub(crate) fn current(&self) -> Arc<Users> {
        let now = stamp(&self.path).ok();
        {
            let loaded = self.loaded.read().unwrap_or_else(PoisonError::into_inner);
            if now.is_none() || loaded.stamp == now {
                return Arc::clone(&loaded.users);
            }
        }
        self.reread()
    }

    /// Re-reads the file now (the binary calls this on `SIGHUP`). A file that does not read
    /// or parse keeps the users read before; the reason is logged.
    pub fn reload(&self) {
        self.reread();
    }

    fn reread(&self) -> Arc<Users> {
        let mut loaded = self.loaded.write().unwrap_or_else(PoisonError::into_inner);
        match read(&self.path) {
            Ok((stamp, users)) => {
                tracing::info!(users = users.len(), "re-read the users file");
                loaded.stamp = Some(stamp);
                loaded.users = Arc::new(users);
            }
            Err(reason) => {
                // Remember the version refused, so the error is logged once per change.
                let refused = stamp(&self.path).ok();
                if loaded.stamp != refused || refused.is_none() {
                    tracing::error!(
                        "the users file no longer reads, keeping the users read before: {reason}"
                    );
                }
                loaded.stamp = refused;
            }
        }
        Arc::clone(&loaded.users)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape_and_finds_users_by_key() {
        let users = Users::parse(
            br#"{"users": [
                {"id": "u1", "api_key": "k1",
                 "llm": {"model": "m", "api_key": "sk", "base_url": "http://llm"},
                 "llm_profiles": {"fast": {"model": "f", "api_key": "pk"}},
                 "secrets": {"TOKEN": {"value": "v", "description": "d"}},
                 "mcp_config": {"sse_servers": []}},
                {"id": "u2", "api_key": "k2"}]}"#,
        )
        .unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users.by_key("k1").unwrap().id, "u1");
        assert_eq!(users.by_key("k2").unwrap().id, "u2");
        assert!(users.by_key("k3").is_none());
        assert!(users.by_key("").is_none());
        let u1 = users.by_id("u1").unwrap();
        let shown = format!("{u1:?}");
        assert!(shown.contains("TOKEN") && !shown.contains("sk") && !shown.contains("\"v\""));
    }

    #[test]
    fn refuses_files_that_would_be_ambiguous_or_unsafe() {
        for (text, why) in [
            (
                r#"{"users": [{"id": "u", "api_key": "k"}, {"id": "u", "api_key": "j"}]}"#,
                "twice",
            ),
            (
                r#"{"users": [{"id": "u", "api_key": "k"}, {"id": "v", "api_key": "k"}]}"#,
                "shares",
            ),
            (r#"{"users": [{"id": "", "api_key": "k"}]}"#, "user id"),
            (
                r#"{"users": [{"id": "u", "api_key": " "}]}"#,
                "empty api_key",
            ),
            (
                r#"{"users": [{"id": "u", "api_key": "k", "secrets": {"A-B": {"value": "v"}}}]}"#,
                "environment variable",
            ),
            (
                r#"{"users": [{"id": "u", "api_key": "k", "llm_profiles": {"a/b": {}}}]}"#,
                "profile name",
            ),
            (
                r#"{"users": [{"id": "u", "api_key": "k", "extra": 1}]}"#,
                "unknown field",
            ),
            (r#"{"user": []}"#, "unknown field"),
        ] {
            let error = Users::parse(text.as_bytes()).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
        }
    }

    #[test]
    fn the_file_is_reread_when_it_changes_and_kept_when_it_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        std::fs::write(&path, r#"{"users": [{"id": "u1", "api_key": "k1"}]}"#).unwrap();
        let handle = UsersHandle::open(&path).unwrap();
        assert!(handle.current().by_key("k1").is_some());
        // A new file (new inode) with another user.
        let next = dir.path().join("next.json");
        std::fs::write(
            &next,
            r#"{"users": [{"id": "u1", "api_key": "k1"}, {"id": "u2", "api_key": "k2"}]}"#,
        )
        .unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(handle.current().by_key("k2").unwrap().id, "u2");
        // A broken edit keeps both users.
        std::fs::write(&next, "{not json").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(handle.current().len(), 2);
        handle.reload();
        assert_eq!(handle.current().len(), 2);
        // A missing file at boot is an error naming the file.
        let error = UsersHandle::open(&dir.path().join("none.json")).unwrap_err();
        assert!(error.to_string().contains("none.json"), "{error}");
    }
}
