//! The settings store behind `/api/settings` and `/api/profiles`: the persisted agent and
//! conversation settings, the custom secrets and the named LLM profiles, as JSON files under
//! the persistence directory (`OH_PERSISTENCE_DIR`, else `.openhands` beside the
//! conversations directory, as the reference). Secret values (LLM keys, MCP headers and
//! environments, custom secrets) are Fernet tokens of the server's secret key on disk; the
//! directory is 0700 and every file 0600, written atomically.
//!
//! The settings are JSON documents checked against the reference's defaults
//! (`settings_defaults.json`): a patch is deep-merged (a `null` removes a key, so it falls
//! back to its default), unknown keys of known sections are dropped, and a value of the wrong
//! JSON type is refused (422), as the reference's model validation does for those fields.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::crypto::Cipher;
use crate::error::ApiError;

/// What a redacted secret reads as.
pub(crate) const REDACTED: &str = "**********";

/// Where secrets sit in `agent_settings` (`*`: any key of a map).
const AGENT_SECRETS: &[&[&str]] = &[
    &["llm", "api_key"],
    &["llm", "aws_access_key_id"],
    &["llm", "aws_secret_access_key"],
    &["llm", "aws_session_token"],
    &["verification", "critic_api_key"],
    &["mcp_config", "*", "env", "*"],
    &["mcp_config", "*", "headers", "*"],
    &["mcp_config", "*", "auth", "value"],
    &["mcp_config", "*", "auth", "password"],
    &["mcp_config", "*", "auth", "headers", "*"],
    &["mcp_config", "*", "auth", "authentication", "client_secret"],
    &["meta_profile_llms", "*", "api_key"],
    &["meta_profile_llms", "*", "aws_access_key_id"],
    &["meta_profile_llms", "*", "aws_secret_access_key"],
    &["meta_profile_llms", "*", "aws_session_token"],
];

/// Where secrets sit in an LLM document (a profile).
pub(crate) const LLM_SECRETS: &[&[&str]] = &[
    &["api_key"],
    &["aws_access_key_id"],
    &["aws_secret_access_key"],
    &["aws_session_token"],
];

/// The fields of one MCP server, in the reference's order.
const MCP_FIELDS: &[&str] = &[
    "url",
    "transport",
    "command",
    "args",
    "env",
    "cwd",
    "description",
    "icon",
    "timeout",
    "sse_read_timeout",
    "keep_alive",
    "headers",
    "auth",
    "enabled",
];

/// Secret-name rule of the reference: a letter, then letters, digits, underscores; ≤ 64.
pub(crate) fn valid_secret_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Profile-name rule of the reference: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
pub(crate) fn valid_profile_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The store key a profile name addresses (`foo.json` is `foo`).
pub(crate) fn canonical_profile_name(name: &str) -> &str {
    name.strip_suffix(".json").unwrap_or(name)
}

/// The reference's defaults: `agent_settings` and `conversation_settings`.
fn defaults() -> &'static Value {
    static DEFAULTS: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        serde_json::from_str(include_str!("settings_defaults.json")).unwrap_or(Value::Null)
    })
}

fn default_of(section: &str) -> Value {
    defaults().get(section).cloned().unwrap_or(Value::Null)
}

/// The default `agent_settings` (the `openhands` variant).
pub(crate) fn default_agent_settings() -> Value {
    default_of("agent_settings")
}

/// The default LLM document.
pub(crate) fn default_llm() -> Value {
    defaults()
        .pointer("/agent_settings/llm")
        .cloned()
        .unwrap_or(Value::Null)
}

/// Calls `keep` on every string or secret leaf at `paths`; a leaf is removed when it returns
/// `false`.
fn visit_secrets(value: &mut Value, paths: &[&[&str]], keep: &mut impl FnMut(&mut Value) -> bool) {
    for path in paths {
        visit(value, path, keep);
    }
}

fn visit(value: &mut Value, path: &[&str], keep: &mut impl FnMut(&mut Value) -> bool) {
    let Value::Object(map) = value else {
        return;
    };
    match path {
        [] => {}
        [last] => {
            let keys: Vec<String> = if *last == "*" {
                map.keys().cloned().collect()
            } else {
                vec![(*last).to_owned()]
            };
            for key in keys {
                let remove = match map.get_mut(&key) {
                    Some(leaf) if leaf.is_string() => !keep(leaf),
                    _ => false,
                };
                if remove {
                    map.remove(&key);
                }
            }
        }
        [first, rest @ ..] => {
            if *first == "*" {
                for child in map.values_mut() {
                    visit(child, rest, keep);
                }
            } else if let Some(child) = map.get_mut(*first) {
                visit(child, rest, keep);
            }
        }
    }
}

/// How secrets are shown (`X-Expose-Secrets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expose {
    /// Absent header: `**********`.
    Redacted,
    /// `encrypted` (or the legacy `true`): Fernet tokens of the server's key.
    Encrypted,
    /// `plaintext`: the values.
    Plaintext,
}

impl Expose {
    /// Parses the header value (400 for anything else).
    pub(crate) fn parse(header: Option<&[u8]>) -> Result<Self, ApiError> {
        let raw = header
            .map(|h| String::from_utf8_lossy(h).trim().to_ascii_lowercase())
            .unwrap_or_default();
        match raw.as_str() {
            "" => Ok(Self::Redacted),
            "true" | "encrypted" => Ok(Self::Encrypted),
            "plaintext" => Ok(Self::Plaintext),
            other => Err(ApiError::bad_request(format!(
                "Invalid X-Expose-Secrets header value: '{other}'. \
                 Valid values are: 'encrypted', 'plaintext'."
            ))),
        }
    }
}

/// The persisted settings, secrets in the clear (in memory only).
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) agent_settings: Value,
    pub(crate) conversation_settings: Value,
    pub(crate) misc_settings: Value,
    pub(crate) active_profile: Option<String>,
    pub(crate) active_agent_profile_id: Option<String>,
    pub(crate) active_meta_profile: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("active_profile", &self.active_profile)
            .finish_non_exhaustive()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            agent_settings: default_of("agent_settings"),
            conversation_settings: default_of("conversation_settings"),
            misc_settings: Value::Object(Map::new()),
            active_profile: None,
            active_agent_profile_id: None,
            active_meta_profile: None,
        }
    }
}

impl Settings {
    /// Whether the LLM has a non-blank API key.
    pub(crate) fn llm_api_key_is_set(&self) -> bool {
        self.agent_settings
            .pointer("/llm/api_key")
            .and_then(Value::as_str)
            .is_some_and(|key| !key.trim().is_empty())
    }

    /// The reference's `SettingsResponse`, secrets shown as `expose` says.
    pub(crate) fn response(
        &self,
        expose: Expose,
        cipher: Option<&Cipher>,
    ) -> Result<Value, ApiError> {
        let mut agent = self.agent_settings.clone();
        show_secrets(&mut agent, AGENT_SECRETS, expose, cipher)?;
        if let Some(slot) = agent.pointer_mut("/agent_context/current_datetime")
            && slot.is_null()
        {
            *slot = Value::String(now_iso());
        }
        Ok(serde_json::json!({
            "agent_settings": agent,
            "conversation_settings": self.conversation_settings,
            "llm_api_key_is_set": self.llm_api_key_is_set(),
            "active_profile": self.active_profile,
            "active_agent_profile_id": self.active_agent_profile_id,
            "active_meta_profile": self.active_meta_profile,
            "misc_settings": self.misc_settings,
        }))
    }

    /// Applies a patch of `agent_settings`: incoming secrets that are redacted keep the stored
    /// value, Fernet tokens of this server are decrypted.
    ///
    /// `agent_kind` picks the variant (`openhands`, `acp`); a change of variant starts from
    /// the new variant's defaults. The ACP variant refuses unknown keys.
    pub(crate) fn patch_agent(
        &mut self,
        mut diff: Value,
        cipher: Option<&Cipher>,
    ) -> Result<(), ApiError> {
        accept_incoming_secrets(&mut diff, AGENT_SECRETS, cipher);
        let current = agent_kind(&self.agent_settings);
        let target = match diff.get("agent_kind") {
            None | Some(Value::Null) => current.clone(),
            Some(Value::String(kind)) => kind.clone(),
            Some(_) => return Err(invalid()),
        };
        let default = variant_default(&target).ok_or_else(invalid)?;
        let mut merged = if target == current {
            self.agent_settings.clone()
        } else {
            default.clone()
        };
        deep_merge(&mut merged, diff);
        if target == "acp"
            && let (Value::Object(given), Value::Object(known)) = (&merged, &default)
            && given.keys().any(|k| !known.contains_key(k))
        {
            return Err(invalid());
        }
        let mut conformed = conform(merged, &default).ok_or_else(invalid)?;
        normalize_mcp(&mut conformed).ok_or_else(invalid)?;
        self.agent_settings = conformed;
        Ok(())
    }

    /// Applies a patch of `conversation_settings`.
    /// A `null` for a top-level field is a value, not a removal (as the reference): refused
    /// unless the field is nullable.
    pub(crate) fn patch_conversation(&mut self, diff: Value) -> Result<(), ApiError> {
        let defaults = default_of("conversation_settings");
        if let Value::Object(fields) = &diff
            && fields.iter().any(|(key, value)| {
                value.is_null() && defaults.get(key).is_some_and(|d| !d.is_null())
            })
        {
            return Err(invalid());
        }
        let mut merged = self.conversation_settings.clone();
        deep_merge(&mut merged, diff);
        self.conversation_settings =
            conform(merged, &default_of("conversation_settings")).ok_or_else(invalid)?;
        Ok(())
    }

    /// Applies a patch of the opaque `misc_settings`.
    pub(crate) fn patch_misc(&mut self, diff: Value) {
        deep_merge(&mut self.misc_settings, diff);
    }

    /// Replaces the LLM with a profile's (already conformed, secrets in the clear).
    pub(crate) fn set_llm(&mut self, llm: Value) -> bool {
        if self
            .agent_settings
            .get("agent_kind")
            .and_then(Value::as_str)
            == Some("acp")
        {
            return false;
        }
        if let Value::Object(agent) = &mut self.agent_settings {
            agent.insert("llm".to_owned(), llm);
            return true;
        }
        false
    }

    /// Whether the agent settings are for an ACP agent (no LLM).
    pub(crate) fn is_acp(&self, diff: Option<&Value>) -> bool {
        let kind = diff
            .and_then(|d| d.get("agent_kind"))
            .and_then(Value::as_str)
            .or_else(|| {
                self.agent_settings
                    .get("agent_kind")
                    .and_then(Value::as_str)
            });
        kind == Some("acp")
    }
}

/// The `agent_kind` of agent settings (`openhands` when absent).
fn agent_kind(agent: &Value) -> String {
    agent
        .get("agent_kind")
        .and_then(Value::as_str)
        .unwrap_or("openhands")
        .to_owned()
}

/// The defaults of an agent-settings variant.
fn variant_default(kind: &str) -> Option<Value> {
    match kind {
        "openhands" => Some(default_of("agent_settings")),
        "acp" => Some(default_of("acp_agent_settings")),
        _ => None,
    }
}

fn invalid() -> ApiError {
    ApiError::unprocessable("Settings validation failed")
}

/// `2026-01-02T03:04:05.678901Z`.
fn now_iso() -> String {
    crate::service::utc_now()
}

/// Shows the secrets of `doc` at `paths` as `expose` says (503 for `encrypted` without a key).
pub(crate) fn show_secrets(
    doc: &mut Value,
    paths: &[&[&str]],
    expose: Expose,
    cipher: Option<&Cipher>,
) -> Result<(), ApiError> {
    let mut missing_key = false;
    visit_secrets(doc, paths, &mut |leaf| {
        match expose {
            Expose::Redacted => *leaf = Value::String(REDACTED.to_owned()),
            Expose::Plaintext => {}
            Expose::Encrypted => match (cipher, leaf.as_str()) {
                (Some(cipher), Some(plain)) => *leaf = Value::String(cipher.encrypt(plain)),
                _ => missing_key = true,
            },
        }
        true
    });
    if missing_key {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "Encryption not available: OH_SECRET_KEY is not configured. \
             Cannot return encrypted secrets.",
        ));
    }
    Ok(())
}

/// Incoming secrets: a redacted value is dropped (the stored one stays), a token of this
/// server's key is decrypted.
pub(crate) fn accept_incoming_secrets(doc: &mut Value, paths: &[&[&str]], cipher: Option<&Cipher>) {
    visit_secrets(doc, paths, &mut |leaf| {
        let Some(text) = leaf.as_str() else {
            return true;
        };
        if text == REDACTED {
            return false;
        }
        if text.starts_with("gAAAAA")
            && let Some(plain) = cipher.and_then(|c| c.decrypt(text))
        {
            *leaf = Value::String(plain);
        }
        true
    });
}

/// Deep merge: objects merge key by key, `null` removes a key, anything else replaces.
pub(crate) fn deep_merge(target: &mut Value, diff: Value) {
    match (target, diff) {
        (Value::Object(target), Value::Object(diff)) => {
            for (key, value) in diff {
                if value.is_null() {
                    target.remove(&key);
                } else if let Some(slot) = target.get_mut(&key) {
                    deep_merge(slot, value);
                } else {
                    let mut fresh = Value::Object(Map::new());
                    if value.is_object() {
                        deep_merge(&mut fresh, value);
                    } else {
                        fresh = value;
                    }
                    target.insert(key, fresh);
                }
            }
        }
        (target, diff) => *target = diff,
    }
}

/// `value` shaped by `default`: sections keep their known keys (missing ones from the
/// default), maps (empty default objects) take any keys, typed leaves must keep their type.
/// `None` when a value has the wrong type.
pub(crate) fn conform(value: Value, default: &Value) -> Option<Value> {
    match default {
        Value::Object(fields) if !fields.is_empty() => {
            let Value::Object(mut given) = value else {
                return None;
            };
            let mut out = Map::new();
            for (key, default) in fields {
                let field = match given.remove(key) {
                    Some(v) if !v.is_null() => conform(v, default)?,
                    _ => default.clone(),
                };
                out.insert(key.clone(), field);
            }
            Some(Value::Object(out))
        }
        Value::Object(_) => value.is_object().then_some(value),
        Value::Null => Some(value),
        Value::Bool(_) => value.is_boolean().then_some(value),
        Value::String(_) => value.is_string().then_some(value),
        Value::Array(_) => value.is_array().then_some(value),
        Value::Number(n) if n.is_f64() => value.is_number().then_some(value),
        Value::Number(_) => match &value {
            Value::Number(v) if v.is_i64() || v.is_u64() => Some(value),
            Value::Number(v) => {
                let f = v.as_f64()?;
                // pydantic takes 5.0 for an int field, not 5.5; integral and in i64 range.
                (f.fract() == 0.0 && f.abs() < 9.0e15).then(|| Value::from(f as i64))
            }
            _ => None,
        },
    }
}

/// Checks and shapes `mcp_config` as the reference's `MCPServer` does: known fields only,
/// `null`s and empty maps dropped, `enabled` defaulting to `true`, a stdio server needs a
/// `command` and a remote one a `url`.
fn normalize_mcp(agent: &mut Value) -> Option<()> {
    let Some(Value::Object(servers)) = agent.get_mut("mcp_config") else {
        return Some(());
    };
    for server in servers.values_mut() {
        let Value::Object(fields) = std::mem::take(server) else {
            return None;
        };
        if fields.keys().any(|k| !MCP_FIELDS.contains(&k.as_str())) {
            return None;
        }
        let mut out = Map::new();
        for name in MCP_FIELDS {
            let Some(value) = fields.get(*name) else {
                continue;
            };
            if value.is_null() || value.as_object().is_some_and(Map::is_empty) {
                continue;
            }
            let ok = match *name {
                "url" | "command" => value.as_str().is_some_and(|s| !s.is_empty()),
                "transport" => matches!(
                    value.as_str(),
                    Some("stdio" | "sse" | "http" | "streamable-http")
                ),
                "args" => value
                    .as_array()
                    .is_some_and(|a| a.iter().all(Value::is_string)),
                "env" | "headers" => value
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string)),
                "cwd" | "description" | "icon" => value.is_string(),
                "timeout" | "sse_read_timeout" => value.is_number(),
                "keep_alive" | "enabled" => value.is_boolean(),
                _ => value.is_object(),
            };
            if !ok {
                return None;
            }
            out.insert((*name).to_owned(), value.clone());
        }
        out.entry("enabled").or_insert(Value::Bool(true));
        match out.get("transport").and_then(Value::as_str) {
            Some("stdio") if !out.contains_key("command") => return None,
            Some("sse" | "http" | "streamable-http") if !out.contains_key("url") => return None,
            _ => {}
        }
        *server = Value::Object(out);
    }
    Some(())
}

/// A failure of the store itself (I/O, a file not of this key): 500.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("settings storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0} is corrupted or encrypted with a different key")]
    Unreadable(&'static str),
}

/// The files under the persistence directory.
#[derive(Clone)]
pub(crate) struct SettingsStore(Arc<Inner>);

struct Inner {
    dir: PathBuf,
    cipher: Option<Cipher>,
    /// Serialises read-modify-write cycles.
    lock: Mutex<()>,
}

impl std::fmt::Debug for SettingsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsStore")
            .field("dir", &self.0.dir)
            .field("encrypted", &self.0.cipher.is_some())
            .finish()
    }
}

/// One custom secret, value in the clear.
#[derive(Clone)]
pub(crate) struct CustomSecret {
    pub(crate) name: String,
    pub(crate) value: String,
    pub(crate) description: Option<String>,
}

impl std::fmt::Debug for CustomSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomSecret")
            .field("name", &self.name)
            .field("description", &self.description)
            .finish_non_exhaustive()
    }
}

const SETTINGS_FILE: &str = "settings.json";
const SECRETS_FILE: &str = "secrets.json";
const PROFILES_DIR: &str = "profiles";
const AGENT_PROFILES_DIR: &str = "agent-profiles";

impl SettingsStore {
    /// A store under `dir`, encrypting with `cipher` (plain 0600 files without one, as the
    /// reference).
    pub(crate) fn new(dir: PathBuf, cipher: Option<Cipher>) -> Self {
        Self(Arc::new(Inner {
            dir,
            cipher,
            lock: Mutex::new(()),
        }))
    }

    /// The store of a server configured by `config`.
    pub(crate) fn for_config(config: &crate::Config) -> Self {
        let dir = config.persistence_dir.clone().unwrap_or_else(|| {
            config
                .conversations_path
                .parent()
                .unwrap_or(Path::new("."))
                .join(".openhands")
        });
        let cipher = config.secret_key.as_ref().map(|key| {
            let previous: Vec<&str> = config
                .previous_secret_keys
                .iter()
                .map(oh_protocol::SecretString::expose)
                .collect();
            Cipher::with_previous(key.expose(), &previous)
        });
        Self::new(dir, cipher)
    }

    /// The directory the store keeps its files in (the server's persistence directory).
    pub(crate) fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// The cipher of the server's secret key, if any.
    pub(crate) fn cipher(&self) -> Option<&Cipher> {
        self.0.cipher.as_ref()
    }

    /// Runs `f` on the blocking pool, holding the store's lock.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = store
                .0
                .lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&store)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// The settings (defaults when none were saved).
    pub(crate) fn load_settings(&self) -> Result<Settings, StoreError> {
        let Some(mut doc) = self.read(SETTINGS_FILE)? else {
            return Ok(Settings::default());
        };
        let mut agent = doc
            .get_mut("agent_settings")
            .map(Value::take)
            .unwrap_or(Value::Null);
        self.open_secrets(&mut agent, AGENT_SECRETS);
        let string =
            |doc: &Value, key: &str| doc.get(key).and_then(Value::as_str).map(str::to_owned);
        let defaults = Settings::default();
        Ok(Settings {
            agent_settings: variant_default(&agent_kind(&agent))
                .and_then(|default| conform(agent, &default))
                .unwrap_or(defaults.agent_settings),
            conversation_settings: doc
                .get_mut("conversation_settings")
                .map(Value::take)
                .and_then(|v| conform(v, &defaults.conversation_settings))
                .unwrap_or(defaults.conversation_settings),
            misc_settings: doc
                .get_mut("misc_settings")
                .map(Value::take)
                .filter(Value::is_object)
                .unwrap_or(defaults.misc_settings),
            active_profile: string(&doc, "active_profile"),
            active_agent_profile_id: string(&doc, "active_agent_profile_id"),
            active_meta_profile: string(&doc, "active_meta_profile"),
        })
    }

    /// Saves the settings, secrets sealed.
    pub(crate) fn save_settings(&self, settings: &Settings) -> Result<(), StoreError> {
        let mut agent = settings.agent_settings.clone();
        self.seal_secrets(&mut agent, AGENT_SECRETS);
        if let Some(slot) = agent.pointer_mut("/agent_context/current_datetime") {
            *slot = Value::Null;
        }
        let doc = serde_json::json!({
            "schema_version": 6,
            "agent_settings": agent,
            "conversation_settings": settings.conversation_settings,
            "misc_settings": settings.misc_settings,
            "active_profile": settings.active_profile,
            "active_agent_profile_id": settings.active_agent_profile_id,
            "active_meta_profile": settings.active_meta_profile,
        });
        self.write(SETTINGS_FILE, &doc)
    }

    /// The custom secrets, in insertion order.
    pub(crate) fn load_secrets(&self) -> Result<Vec<CustomSecret>, StoreError> {
        let Some(doc) = self.read(SECRETS_FILE)? else {
            return Ok(Vec::new());
        };
        let Some(Value::Object(entries)) = doc.get("custom_secrets") else {
            return Err(StoreError::Unreadable("the secrets file"));
        };
        let mut out = Vec::new();
        for (name, entry) in entries {
            let stored = entry.get("secret").and_then(Value::as_str).unwrap_or("");
            let value = self
                .open(stored)
                .ok_or(StoreError::Unreadable("the secrets file"))?;
            out.push(CustomSecret {
                name: name.clone(),
                value,
                description: entry
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        Ok(out)
    }

    /// Saves the custom secrets, values sealed.
    pub(crate) fn save_secrets(&self, secrets: &[CustomSecret]) -> Result<(), StoreError> {
        let entries: Map<String, Value> = secrets
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    serde_json::json!({
                        "name": s.name,
                        "secret": self.seal(&s.value),
                        "description": s.description,
                    }),
                )
            })
            .collect();
        self.write(
            SECRETS_FILE,
            &serde_json::json!({ "custom_secrets": entries }),
        )
    }

    /// Names of the stored profiles, sorted.
    pub(crate) fn profile_names(&self) -> Result<Vec<String>, StoreError> {
        profile_files(&self.0.dir.join(PROFILES_DIR))
    }

    /// A profile's LLM, secrets in the clear; `None` when there is none.
    pub(crate) fn load_profile(&self, name: &str) -> Result<Option<Value>, StoreError> {
        let file = format!("{PROFILES_DIR}/{}.json", canonical_profile_name(name));
        let Some(mut llm) = self.read(&file)? else {
            return Ok(None);
        };
        self.open_secrets(&mut llm, LLM_SECRETS);
        Ok(Some(
            conform(llm, &default_llm()).unwrap_or_else(default_llm),
        ))
    }

    /// Saves a profile.
    pub(crate) fn save_profile(&self, name: &str, llm: &Value) -> Result<(), StoreError> {
        let mut sealed = llm.clone();
        self.seal_secrets(&mut sealed, LLM_SECRETS);
        let dir = self.0.dir.join(PROFILES_DIR);
        secure_dir(&self.0.dir)?;
        secure_dir(&dir)?;
        self.write(
            &format!("{PROFILES_DIR}/{}.json", canonical_profile_name(name)),
            &sealed,
        )
    }

    /// Deletes a profile (no error when absent).
    pub(crate) fn delete_profile(&self, name: &str) -> Result<(), StoreError> {
        let path = self
            .0
            .dir
            .join(PROFILES_DIR)
            .join(format!("{}.json", canonical_profile_name(name)));
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// Summaries of the stored agent profiles (`id`, `name`, `agent_kind`, `revision`,
    /// `llm_profile_ref`, `mcp_server_refs`), sorted by name; unreadable files are skipped.
    pub(crate) fn agent_profile_summaries(&self) -> Result<Vec<Value>, StoreError> {
        let names = profile_files(&self.0.dir.join(AGENT_PROFILES_DIR))?;
        let mut out = Vec::new();
        for name in names {
            let Ok(Some(Value::Object(doc))) =
                self.read(&format!("{AGENT_PROFILES_DIR}/{name}.json"))
            else {
                tracing::warn!(profile = %name, "skipping an unreadable agent profile");
                continue;
            };
            let kind = doc
                .get("agent_kind")
                .and_then(Value::as_str)
                .unwrap_or("openhands")
                .to_owned();
            let field = |key: &str| doc.get(key).cloned().unwrap_or(Value::Null);
            out.push(serde_json::json!({
                "id": field("id"),
                "name": name,
                "agent_kind": kind,
                "revision": field("revision"),
                "llm_profile_ref": if kind == "openhands" { field("llm_profile_ref") } else { Value::Null },
                "mcp_server_refs": field("mcp_server_refs"),
            }));
        }
        Ok(out)
    }

    /// The name of the agent profile whose id is `id`.
    pub(crate) fn agent_profile_name_for_id(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .agent_profile_summaries()?
            .into_iter()
            .find(|s| s.get("id").and_then(Value::as_str) == Some(id))
            .and_then(|s| s.get("name").and_then(Value::as_str).map(str::to_owned)))
    }

    /// An agent profile (secret-free: it names an LLM profile, it holds no key).
    pub(crate) fn load_agent_profile(&self, name: &str) -> Result<Option<Value>, StoreError> {
        self.read(&format!(
            "{AGENT_PROFILES_DIR}/{}.json",
            canonical_profile_name(name)
        ))
    }

    /// Saves an agent profile under `name`.
    pub(crate) fn save_agent_profile(&self, name: &str, profile: &Value) -> Result<(), StoreError> {
        secure_dir(&self.0.dir)?;
        secure_dir(&self.0.dir.join(AGENT_PROFILES_DIR))?;
        self.write(
            &format!("{AGENT_PROFILES_DIR}/{}.json", canonical_profile_name(name)),
            profile,
        )
    }

    /// Deletes an agent profile (no error when absent).
    pub(crate) fn delete_agent_profile(&self, name: &str) -> Result<(), StoreError> {
        let path = self
            .0
            .dir
            .join(AGENT_PROFILES_DIR)
            .join(format!("{}.json", canonical_profile_name(name)));
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    fn seal(&self, plain: &str) -> String {
        match &self.0.cipher {
            Some(cipher) => cipher.encrypt(plain),
            None => plain.to_owned(),
        }
    }

    fn open(&self, stored: &str) -> Option<String> {
        match &self.0.cipher {
            Some(cipher) => cipher.decrypt(stored),
            None => Some(stored.to_owned()),
        }
    }

    fn seal_secrets(&self, doc: &mut Value, paths: &[&[&str]]) {
        visit_secrets(doc, paths, &mut |leaf| {
            if let Some(plain) = leaf.as_str() {
                *leaf = Value::String(self.seal(plain));
            }
            true
        });
    }

    /// Decrypts the secrets of `doc`; one that does not decrypt is dropped (logged).
    fn open_secrets(&self, doc: &mut Value, paths: &[&[&str]]) {
        visit_secrets(doc, paths, &mut |leaf| match leaf
            .as_str()
            .and_then(|stored| self.open(stored))
        {
            Some(plain) => {
                *leaf = Value::String(plain);
                true
            }
            None => {
                tracing::warn!(
                    "a stored setting secret does not decrypt with the secret key; dropped"
                );
                false
            }
        });
    }

    fn read(&self, file: &str) -> Result<Option<Value>, StoreError> {
        let path = self.0.dir.join(file);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|_| StoreError::Unreadable("a settings file"))
    }

    /// Writes `doc` to `file` atomically (a 0600 temporary file renamed over it).
    fn write(&self, file: &str, doc: &Value) -> Result<(), StoreError> {
        secure_dir(&self.0.dir)?;
        let path = self.0.dir.join(file);
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut out = private_file(&tmp)?;
            out.write_all(&serde_json::to_vec_pretty(doc).unwrap_or_default())?;
            out.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(result?)
    }
}

/// Creates `dir` (0700) if needed.
fn secure_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new file readable by its owner only.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The profile names stored in `dir` (`<name>.json` with a valid name), sorted; none when the
/// directory does not exist.
fn profile_files(dir: &std::path::Path) -> Result<Vec<String>, StoreError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err.into()),
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".json")?;
            valid_profile_name(stem).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_removes_on_null_and_conform_restores_defaults() {
        let mut settings = Settings::default();
        settings
            .patch_agent(
                json!({"llm": {"model": "m", "api_key": "k", "bogus": 1}}),
                None,
            )
            .unwrap();
        assert_eq!(settings.agent_settings["llm"]["model"], "m");
        assert!(settings.agent_settings["llm"].get("bogus").is_none());
        assert!(settings.llm_api_key_is_set());
        settings.patch_agent(json!({"llm": null}), None).unwrap();
        assert_eq!(settings.agent_settings["llm"], default_llm());
        assert!(
            settings
                .patch_agent(json!({"llm": {"model": 5}}), None)
                .is_err()
        );
        assert!(
            settings
                .patch_agent(json!({"tool_concurrency_limit": "x"}), None)
                .is_err()
        );
    }

    #[test]
    fn acp_variant() {
        let mut settings = Settings::default();
        settings
            .patch_agent(
                json!({"llm": {"model": "m"}, "mcp_config": {"a": {"command": "x"}}}),
                None,
            )
            .unwrap();
        settings
            .patch_agent(json!({"agent_kind": "acp", "acp_server": "codex"}), None)
            .unwrap();
        assert_eq!(settings.agent_settings["acp_server"], "codex");
        assert_eq!(settings.agent_settings["mcp_config"], json!({}));
        assert!(settings.agent_settings.get("llm").is_none());
        assert!(settings.is_acp(None) && !settings.llm_api_key_is_set());
        assert!(
            settings
                .patch_agent(json!({"llm": {"model": "m"}}), None)
                .is_err()
        );
        assert!(
            settings
                .patch_agent(json!({"acp_server": 5}), None)
                .is_err()
        );
        assert!(
            settings
                .patch_agent(json!({"agent_kind": "nope"}), None)
                .is_err()
        );
        assert!(
            settings
                .patch_agent(json!({"agent_kind": 5}), None)
                .is_err()
        );
        settings
            .patch_agent(json!({"agent_kind": "openhands"}), None)
            .unwrap();
        assert_eq!(settings.agent_settings["llm"], default_llm());
    }

    #[test]
    fn redacted_secrets_keep_the_stored_value() {
        let mut settings = Settings::default();
        settings
            .patch_agent(json!({"llm": {"api_key": "k1"}}), None)
            .unwrap();
        settings
            .patch_agent(json!({"llm": {"api_key": REDACTED}}), None)
            .unwrap();
        assert_eq!(settings.agent_settings["llm"]["api_key"], "k1");
        let cipher = Cipher::new("s");
        let token = cipher.encrypt("k2");
        settings
            .patch_agent(json!({"llm": {"api_key": token}}), Some(&cipher))
            .unwrap();
        assert_eq!(settings.agent_settings["llm"]["api_key"], "k2");
    }

    #[test]
    fn mcp_servers_are_checked_and_shaped() {
        let mut settings = Settings::default();
        settings
            .patch_agent(
                json!({"mcp_config": {"a": {"headers": {"X": "v"}, "transport": "sse", "url": "http://x", "env": {}}}}),
                None,
            )
            .unwrap();
        let server = &settings.agent_settings["mcp_config"]["a"];
        let keys: Vec<&String> = server.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["url", "transport", "headers", "enabled"]);
        for bad in [
            json!({"b": {"transport": "stdio"}}),
            json!({"b": {"url": "http://x", "nope": 1}}),
            json!({"b": {"command": "x", "env": {"A": 1}}}),
            json!({"b": 3}),
        ] {
            assert!(
                settings
                    .patch_agent(json!({"mcp_config": bad}), None)
                    .is_err()
            );
        }
    }

    #[test]
    fn names_and_dates() {
        assert!(valid_secret_name("A_1") && !valid_secret_name("1A") && !valid_secret_name("a-b"));
        assert!(!valid_secret_name(&"a".repeat(65)) && valid_secret_name(&"a".repeat(64)));
        assert!(
            valid_profile_name("fast.v2-x")
                && !valid_profile_name(".x")
                && !valid_profile_name("a b")
        );
        assert_eq!(now_iso().len(), "2026-01-02T03:04:05.678901Z".len());
    }

    #[test]
    fn debug_hides_secret_values() {
        let secret = CustomSecret {
            name: "N".into(),
            value: "hunter2".into(),
            description: None,
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
        let mut settings = Settings::default();
        settings
            .patch_agent(json!({"llm": {"api_key": "hunter2"}}), None)
            .unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
