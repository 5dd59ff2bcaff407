//! Configuration: the reference's JSON config file merged with `OH_*` environment variables
//! (environment wins), plus the command line (spec §1.1–1.2).
//!
//! Beyond the reference's fields, the connection limits of the serve loop (each also as
//! `OH_<FIELD>`, e.g. `OH_MAX_CONNECTIONS`):
//!
//! | field | default | meaning |
//! | --- | --- | --- |
//! | `max_connections` | ¾ of the open-files limit, at most 10,000 | open connections (WebSockets included); past it a new connection gets a 503 with a JSON body and is closed |
//! | `header_read_timeout_seconds` | 10 | from the first byte of a request until its headers are complete |
//! | `idle_timeout_seconds` | 60 | a keep-alive connection with no request in flight is closed after this |
//! | `body_read_timeout_seconds` | 30 | a request body must deliver `body_min_rate_bytes_per_second` × this many bytes per this many seconds spent waiting for it |
//! | `body_min_rate_bytes_per_second` | 1024 | see `body_read_timeout_seconds` (0: any byte is progress) |
//! | `shutdown_drain_seconds` | 8 | after SIGTERM, in-flight requests finish and conversations are paused and saved within this; what is left is aborted |

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use oh_protocol::SecretString;
use serde_json::Value;

/// Environment variable naming the JSON configuration file.
pub const CONFIG_PATH_ENV: &str = "OPENHANDS_AGENT_SERVER_CONFIG_PATH";
/// Default configuration file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "workspace/openhands_agent_server_config.json";

/// Server configuration.
///
/// The keys are [`SecretString`]s, so `Debug` (also of [`Server`](crate::Server)) never
/// shows them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Bind address.
    pub host: IpAddr,
    /// TCP port (0 picks a free one).
    pub port: u16,
    /// Accepted session API keys; empty means no authentication.
    pub session_api_keys: Vec<SecretString>,
    /// Key for secrets at rest; `None` masks secrets on disk (lost on restart).
    pub secret_key: Option<SecretString>,
    /// Earlier secret keys, used only to decrypt values saved under them (a rotation);
    /// such values are written under `secret_key` when next saved.
    /// `OH_PREVIOUS_SECRET_KEYS` (a JSON list) or `OH_PREVIOUS_SECRET_KEYS_0`, `_1`, …
    pub previous_secret_keys: Vec<SecretString>,
    /// A blank secret key was configured (`OH_SECRET_KEY=`): it counts as unset (the
    /// session-key fallback applies), but a dormant server with no key left then refuses
    /// every `POST /api/init` instead of leaving it open.
    pub secret_key_was_blank: bool,
    /// Root of conversation persistence.
    pub conversations_path: PathBuf,
    /// Default working directory for tools that need one.
    pub workspace_path: PathBuf,
    /// Where bash command events are stored.
    pub bash_events_dir: PathBuf,
    /// The journal of uploads in progress: one entry per temporary file, removed when the
    /// upload ends; entries left by a crash are cleaned up (temporary file included) at
    /// start. `OH_UPLOAD_JOURNAL_DIR` / `upload_journal_dir`; not in the reference.
    pub upload_journal_dir: PathBuf,
    /// Where the settings, custom secrets and LLM profiles are kept (`OH_PERSISTENCE_DIR`);
    /// `None`: `.openhands` beside `conversations_path`, as the reference.
    pub persistence_dir: Option<PathBuf>,
    /// Extra CORS origins.
    pub allow_cors_origins: Vec<String>,
    /// Extra CORS origin pattern.
    pub allow_cors_origin_regex: Option<String>,
    /// Agent runs allowed at once.
    pub max_concurrent_runs: usize,
    /// Idle live conversations are dropped from memory after this many seconds.
    pub conversation_idle_ttl_seconds: Option<f64>,
    /// Frames buffered per conversation for WebSocket subscribers; one that falls further
    /// behind catches up from the event log.
    pub subscriber_buffer: usize,
    /// Bash event files older than this many seconds are deleted by a background loop
    /// (every `max(60, n / 2)` s); `None` keeps them.
    pub bash_events_retention_seconds: Option<u64>,
    /// Open connections at most (WebSockets included); past it a new connection is answered
    /// 503 with a JSON body and closed. `None`: ¾ of the open-files limit, at most 10,000.
    pub max_connections: Option<usize>,
    /// Seconds from the first byte of a request until its headers must be complete.
    pub header_read_timeout_seconds: f64,
    /// Seconds a keep-alive connection may stay open with no request in flight.
    pub idle_timeout_seconds: f64,
    /// A request body must deliver [`Config::body_min_rate_bytes_per_second`] × this many
    /// bytes within each this many seconds spent waiting for it, else the request fails.
    pub body_read_timeout_seconds: f64,
    /// Slowest request body accepted (bytes per second, averaged over
    /// [`Config::body_read_timeout_seconds`]); 0 only requires some progress.
    pub body_min_rate_bytes_per_second: u64,
    /// After the shutdown signal: seconds for in-flight requests to finish and for running
    /// conversations to be paused and saved; whatever is left then is aborted.
    pub shutdown_drain_seconds: f64,
    /// Start *dormant* (`OH_DEFERRED_INIT` / `deferred_init`): only the probes,
    /// `/server_info` and `/api/init` answer (every other `/api` route and the sockets
    /// answer 503) until `POST /api/init` delivers the per-user configuration, which then
    /// overrides this one. For warm pools of servers started before their user is known.
    pub deferred_init: bool,
    /// Extra environment variables for every command the server starts (the agent's
    /// terminal and the bash routes), on top of the process's own; credentials of the
    /// server among them are dropped. Set by `POST /api/init`'s `env`; not read from the
    /// environment or the configuration file.
    pub command_env: BTreeMap<String, String>,
    /// Where the user's skills are (`POST /api/skills` with `load_user`, and agent contexts
    /// with `load_user_skills`): `$HOME/.agents/skills`, then `skills` and `microagents` in
    /// `OH_PERSISTENCE_DIR` (else `$HOME/.openhands`), as the reference. Empty by default.
    pub user_skill_dirs: Vec<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8000,
            session_api_keys: Vec::new(),
            secret_key: None,
            previous_secret_keys: Vec::new(),
            secret_key_was_blank: false,
            conversations_path: PathBuf::from("workspace/conversations"),
            workspace_path: PathBuf::from("workspace/project"),
            bash_events_dir: PathBuf::from("workspace/bash_events"),
            upload_journal_dir: PathBuf::from("workspace/upload_journal"),
            persistence_dir: None,
            allow_cors_origins: Vec::new(),
            allow_cors_origin_regex: None,
            max_concurrent_runs: 10,
            conversation_idle_ttl_seconds: Some(1200.0),
            subscriber_buffer: 2048,
            bash_events_retention_seconds: None,
            max_connections: None,
            header_read_timeout_seconds: 10.0,
            idle_timeout_seconds: 60.0,
            body_read_timeout_seconds: 30.0,
            body_min_rate_bytes_per_second: 1024,
            shutdown_drain_seconds: 8.0,
            deferred_init: false,
            command_env: BTreeMap::new(),
            user_skill_dirs: Vec::new(),
        }
    }
}

/// A configuration problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read or parsed.
    #[error("configuration file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A value has the wrong form.
    #[error("configuration `{field}`: {message}")]
    Value {
        /// The field (or environment variable).
        field: String,
        /// What went wrong.
        message: String,
    },
}

impl Config {
    /// Reads the configuration file named by `OPENHANDS_AGENT_SERVER_CONFIG_PATH` (default
    /// `workspace/openhands_agent_server_config.json`; missing = empty) and the process
    /// environment. The host is `127.0.0.1` without API keys and `0.0.0.0` with them.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// As [`Config::from_env`], from the given variables.
    pub fn from_vars(vars: &[(String, String)]) -> Result<Self, ConfigError> {
        let env = Env(vars);
        let path = env
            .get(CONFIG_PATH_ENV)
            .map_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH), PathBuf::from);
        let file = read_file(&path)?;
        let mut config = Config::default();

        let keys = match env.list("OH_SESSION_API_KEYS")? {
            Some(keys) => keys,
            None => match file.get("session_api_keys") {
                Some(value) => strings("session_api_keys", value)?,
                None => env
                    .get("SESSION_API_KEY")
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            },
        };
        config.session_api_keys = keys
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(SecretString::new)
            .collect();
        // A blank key counts as unset, so the session-key fallback applies (as in the
        // reference) rather than encrypting with a key anyone can guess.
        let configured = env.get("OH_SECRET_KEY").map(str::to_owned).or_else(|| {
            file.get("secret_key")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        config.secret_key_was_blank = configured.as_ref().is_some_and(|k| k.trim().is_empty());
        config.secret_key = configured
            .filter(|k| !k.trim().is_empty())
            .or_else(|| env.get("SESSION_API_KEY").map(str::to_owned))
            .or_else(|| env.get("OH_SESSION_API_KEYS_0").map(str::to_owned))
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::new);
        let previous = match env.list("OH_PREVIOUS_SECRET_KEYS")? {
            Some(keys) => keys,
            None => match file.get("previous_secret_keys") {
                Some(value) => strings("previous_secret_keys", value)?,
                None => Vec::new(),
            },
        };
        config.previous_secret_keys = previous
            .into_iter()
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::new)
            .collect();
        if !config.session_api_keys.is_empty() {
            config.host = IpAddr::from([0, 0, 0, 0]);
        }
        for (field, slot) in [
            ("conversations_path", &mut config.conversations_path),
            ("workspace_path", &mut config.workspace_path),
            ("bash_events_dir", &mut config.bash_events_dir),
            ("upload_journal_dir", &mut config.upload_journal_dir),
        ] {
            if let Some(value) = env.field(&file, field) {
                *slot = PathBuf::from(value);
            }
        }
        config.persistence_dir = env
            .get("OH_PERSISTENCE_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        config.user_skill_dirs = oh_agent::skills::user_skill_dirs(
            env.get("HOME").filter(|h| !h.is_empty()).map(Path::new),
            config.persistence_dir.as_deref(),
        );
        if let Some(origins) = env.list("OH_ALLOW_CORS_ORIGINS")? {
            config.allow_cors_origins = origins;
        } else if let Some(value) = file.get("allow_cors_origins") {
            config.allow_cors_origins = strings("allow_cors_origins", value)?;
        }
        config.allow_cors_origin_regex = env.field(&file, "allow_cors_origin_regex");
        if let Some(raw) = env.field(&file, "max_concurrent_runs") {
            config.max_concurrent_runs =
                raw.parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ConfigError::Value {
                        field: "max_concurrent_runs".into(),
                        message: format!("expected an integer >= 1, got {raw:?}"),
                    })?;
        }
        if env
            .get("OH_CONVERSATION_IDLE_TTL_SECONDS_IS_NONE")
            .is_some_and(truthy)
        {
            config.conversation_idle_ttl_seconds = None;
        } else if let Some(raw) = env.field(&file, "conversation_idle_ttl_seconds") {
            config.conversation_idle_ttl_seconds = Some(
                raw.parse::<f64>()
                    .ok()
                    .filter(|n| *n > 0.0)
                    .ok_or_else(|| ConfigError::Value {
                        field: "conversation_idle_ttl_seconds".into(),
                        message: format!("expected a number > 0, got {raw:?}"),
                    })?,
            );
        }
        config.bash_events_retention_seconds = env
            .field(&file, "bash_events_retention_seconds")
            .map(|raw| retention_seconds(&raw))
            .transpose()?;
        if let Some(raw) = env.field(&file, "max_connections") {
            config.max_connections = Some(
                raw.parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ConfigError::Value {
                        field: "max_connections".into(),
                        message: format!("expected an integer >= 1, got {raw:?}"),
                    })?,
            );
        }
        for (field, slot) in [
            (
                "header_read_timeout_seconds",
                &mut config.header_read_timeout_seconds,
            ),
            ("idle_timeout_seconds", &mut config.idle_timeout_seconds),
            (
                "body_read_timeout_seconds",
                &mut config.body_read_timeout_seconds,
            ),
            ("shutdown_drain_seconds", &mut config.shutdown_drain_seconds),
        ] {
            if let Some(raw) = env.field(&file, field) {
                *slot = seconds(field, &raw)?;
            }
        }
        if let Some(raw) = env.field(&file, "body_min_rate_bytes_per_second") {
            config.body_min_rate_bytes_per_second =
                raw.parse::<u64>().map_err(|_| ConfigError::Value {
                    field: "body_min_rate_bytes_per_second".into(),
                    message: format!("expected an integer >= 0, got {raw:?}"),
                })?;
        }
        if let Some(raw) = env.field(&file, "deferred_init") {
            config.deferred_init = boolean("deferred_init", &raw)?;
        }
        Ok(config)
    }

    /// The configuration with no authentication and every path under `root` (for tests and
    /// in-process servers), bound to a free loopback port.
    pub fn under(root: &Path) -> Self {
        Self {
            port: 0,
            conversations_path: root.join("conversations"),
            workspace_path: root.join("project"),
            bash_events_dir: root.join("bash_events"),
            upload_journal_dir: root.join("upload_journal"),
            ..Self::default()
        }
    }
}

/// `bash_events_retention_seconds`: an integer > 0 (a JSON `10.0` too, as pydantic takes it).
fn retention_seconds(raw: &str) -> Result<u64, ConfigError> {
    let raw = raw.trim();
    raw.parse::<u64>()
        .ok()
        .or_else(|| {
            let n = raw.parse::<f64>().ok()?;
            (n.fract() == 0.0 && (1.0..1e15).contains(&n)).then_some(n as u64)
        })
        .filter(|n| *n > 0)
        .ok_or_else(|| ConfigError::Value {
            field: "bash_events_retention_seconds".into(),
            message: format!("expected an integer > 0, got {raw:?}"),
        })
}

/// A duration in seconds: a finite number > 0 (at most a year, so it fits a deadline).
fn seconds(field: &str, raw: &str) -> Result<f64, ConfigError> {
    raw.parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0 && *n <= 365.0 * 86_400.0)
        .ok_or_else(|| ConfigError::Value {
            field: field.into(),
            message: format!("expected a number of seconds > 0, got {raw:?}"),
        })
}

/// A boolean as pydantic reads one from text: `true`/`false`, `1`/`0`, `yes`/`no`,
/// `on`/`off`, `t`/`f`, `y`/`n` (any case, surrounding blanks ignored).
fn boolean(field: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
        _ => Err(ConfigError::Value {
            field: field.into(),
            message: format!("expected a boolean, got {raw:?}"),
        }),
    }
}

fn truthy(raw: &str) -> bool {
    matches!(raw.to_ascii_lowercase().as_str(), "1" | "true")
}

struct Env<'a>(&'a [(String, String)]);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `OH_<FIELD>` from the environment, else the file's value as text.
    fn field(&self, file: &serde_json::Map<String, Value>, field: &str) -> Option<String> {
        let env_name = format!("OH_{}", field.to_ascii_uppercase());
        if let Some(value) = self.get(&env_name) {
            return Some(value.to_owned());
        }
        match file.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// A list: `NAME` as a JSON array, or `NAME_0`, `NAME_1`, …
    fn list(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        if let Some(raw) = self.get(name) {
            let value: Value = serde_json::from_str(raw).map_err(|err| ConfigError::Value {
                field: name.into(),
                message: format!("expected a JSON list: {err}"),
            })?;
            return strings(name, &value).map(Some);
        }
        let mut items = Vec::new();
        while let Some(value) = self.get(&format!("{name}_{}", items.len())) {
            items.push(value.to_owned());
        }
        Ok((!items.is_empty()).then_some(items))
    }
}

fn strings(field: &str, value: &Value) -> Result<Vec<String>, ConfigError> {
    let bad = || ConfigError::Value {
        field: field.into(),
        message: "expected a list of strings".into(),
    };
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(bad))
        .collect()
}

fn read_file(path: &Path) -> Result<serde_json::Map<String, Value>, ConfigError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(err) => {
            return Err(ConfigError::File {
                path: path.into(),
                message: err.to_string(),
            });
        }
    };
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ConfigError::File {
            path: path.into(),
            message: "expected a JSON object".into(),
        }),
        Err(err) => Err(ConfigError::File {
            path: path.into(),
            message: err.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(config: &Config) -> Vec<&str> {
        config
            .session_api_keys
            .iter()
            .map(SecretString::expose)
            .collect()
    }

    #[test]
    fn debug_never_shows_a_key() {
        let config = Config::from_vars(&vars(&[
            ("OH_SESSION_API_KEYS", r#"["jsonkey-4242"]"#),
            ("OH_SECRET_KEY", "secret-key-4242"),
        ]))
        .unwrap();
        assert_eq!(keys(&config), ["jsonkey-4242"]);
        for shown in [format!("{config:?}"), format!("{config:#?}")] {
            assert!(!shown.contains("jsonkey-4242"), "{shown}");
            assert!(!shown.contains("secret-key-4242"), "{shown}");
            assert!(shown.contains("conversations_path"), "{shown}");
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        v.push((CONFIG_PATH_ENV.into(), "/nonexistent/config.json".into()));
        v
    }

    #[test]
    fn legacy_key_sets_keys_secret_and_wildcard_host() -> Result<(), ConfigError> {
        let config = Config::from_vars(&vars(&[("SESSION_API_KEY", "k1")]))?;
        assert_eq!(keys(&config), ["k1"]);
        assert_eq!(
            config.secret_key.as_ref().map(SecretString::expose),
            Some("k1")
        );
        assert_eq!(config.host, IpAddr::from([0, 0, 0, 0]));
        Ok(())
    }

    #[test]
    fn indexed_keys_win_and_no_keys_binds_loopback() -> Result<(), ConfigError> {
        let config = Config::from_vars(&vars(&[
            ("SESSION_API_KEY", "legacy"),
            ("OH_SESSION_API_KEYS_0", "a"),
            ("OH_SESSION_API_KEYS_1", "b"),
            ("OH_SECRET_KEY", "s"),
        ]))?;
        assert_eq!(keys(&config), ["a", "b"]);
        assert_eq!(
            config.secret_key.as_ref().map(SecretString::expose),
            Some("s")
        );
        let open = Config::from_vars(&vars(&[]))?;
        assert!(open.session_api_keys.is_empty());
        assert_eq!(open.host, IpAddr::from([127, 0, 0, 1]));
        Ok(())
    }

    #[test]
    fn paths_and_bad_values() {
        let config = Config::from_vars(&vars(&[("OH_CONVERSATIONS_PATH", "/tmp/c")]));
        assert_eq!(
            config.map(|c| c.conversations_path).ok(),
            Some(PathBuf::from("/tmp/c"))
        );
        let bad = Config::from_vars(&vars(&[("OH_MAX_CONCURRENT_RUNS", "zero")]));
        assert!(matches!(bad, Err(ConfigError::Value { .. })));
    }

    #[test]
    fn bash_events_retention() -> Result<(), ConfigError> {
        assert_eq!(
            Config::from_vars(&vars(&[]))?.bash_events_retention_seconds,
            None
        );
        let set = Config::from_vars(&vars(&[("OH_BASH_EVENTS_RETENTION_SECONDS", "3600")]))?;
        assert_eq!(set.bash_events_retention_seconds, Some(3600));
        for bad in ["0", "-5", "1.5", "soon", ""] {
            let config = Config::from_vars(&vars(&[("OH_BASH_EVENTS_RETENTION_SECONDS", bad)]));
            assert!(
                matches!(config, Err(ConfigError::Value { .. })),
                "{bad:?} accepted"
            );
        }
        let dir = tempfile::tempdir().map_err(|err| ConfigError::Value {
            field: "tempdir".into(),
            message: err.to_string(),
        })?;
        let path = dir.path().join("config.json");
        for (json, want) in [
            (r#"{"bash_events_retention_seconds": 120}"#, Some(120)),
            (r#"{"bash_events_retention_seconds": null}"#, None),
        ] {
            std::fs::write(&path, json).map_err(|err| ConfigError::Value {
                field: "write".into(),
                message: err.to_string(),
            })?;
            let vars = vec![(CONFIG_PATH_ENV.to_owned(), path.display().to_string())];
            assert_eq!(
                Config::from_vars(&vars)?.bash_events_retention_seconds,
                want
            );
        }
        Ok(())
    }

    #[test]
    fn blank_secret_key_falls_back_and_is_remembered() -> Result<(), ConfigError> {
        let config =
            Config::from_vars(&vars(&[("OH_SECRET_KEY", "  "), ("SESSION_API_KEY", "k1")]))?;
        assert_eq!(
            config.secret_key.as_ref().map(SecretString::expose),
            Some("k1")
        );
        assert!(config.secret_key_was_blank);
        let none = Config::from_vars(&vars(&[("OH_SECRET_KEY", "")]))?;
        assert!(none.secret_key.is_none() && none.secret_key_was_blank);
        assert!(!Config::from_vars(&vars(&[]))?.secret_key_was_blank);
        Ok(())
    }

    #[test]
    fn previous_secret_keys_from_env() -> Result<(), ConfigError> {
        let expose = |config: &Config| -> Vec<String> {
            config
                .previous_secret_keys
                .iter()
                .map(|k| k.expose().to_owned())
                .collect()
        };
        let listed = Config::from_vars(&vars(&[("OH_PREVIOUS_SECRET_KEYS", r#"["a","b"]"#)]))?;
        assert_eq!(expose(&listed), ["a", "b"]);
        let indexed = Config::from_vars(&vars(&[
            ("OH_PREVIOUS_SECRET_KEYS_0", "x"),
            ("OH_PREVIOUS_SECRET_KEYS_1", "y"),
        ]))?;
        assert_eq!(expose(&indexed), ["x", "y"]);
        assert!(
            Config::from_vars(&vars(&[]))?
                .previous_secret_keys
                .is_empty()
        );
        Ok(())
    }

    #[test]
    fn deferred_init_from_env() -> Result<(), ConfigError> {
        assert!(!Config::from_vars(&vars(&[]))?.deferred_init);
        for yes in ["true", "True", "1", " yes "] {
            assert!(Config::from_vars(&vars(&[("OH_DEFERRED_INIT", yes)]))?.deferred_init);
        }
        for no in ["false", "0", "off"] {
            assert!(!Config::from_vars(&vars(&[("OH_DEFERRED_INIT", no)]))?.deferred_init);
        }
        let bad = Config::from_vars(&vars(&[("OH_DEFERRED_INIT", "later")]));
        assert!(matches!(bad, Err(ConfigError::Value { .. })));
        Ok(())
    }

    #[test]
    fn connection_limits_from_env() -> Result<(), ConfigError> {
        let config = Config::from_vars(&vars(&[
            ("OH_MAX_CONNECTIONS", "50"),
            ("OH_HEADER_READ_TIMEOUT_SECONDS", "1.5"),
            ("OH_IDLE_TIMEOUT_SECONDS", "5"),
            ("OH_BODY_READ_TIMEOUT_SECONDS", "7"),
            ("OH_BODY_MIN_RATE_BYTES_PER_SECOND", "0"),
            ("OH_SHUTDOWN_DRAIN_SECONDS", "3"),
        ]))?;
        assert_eq!(config.max_connections, Some(50));
        assert_eq!(config.header_read_timeout_seconds, 1.5);
        assert_eq!(config.idle_timeout_seconds, 5.0);
        assert_eq!(config.body_read_timeout_seconds, 7.0);
        assert_eq!(config.body_min_rate_bytes_per_second, 0);
        assert_eq!(config.shutdown_drain_seconds, 3.0);
        assert_eq!(Config::from_vars(&vars(&[]))?.max_connections, None);
        for (name, value) in [
            ("OH_MAX_CONNECTIONS", "0"),
            ("OH_IDLE_TIMEOUT_SECONDS", "-1"),
            ("OH_SHUTDOWN_DRAIN_SECONDS", "inf"),
            ("OH_HEADER_READ_TIMEOUT_SECONDS", "soon"),
        ] {
            let bad = Config::from_vars(&vars(&[(name, value)]));
            assert!(
                matches!(bad, Err(ConfigError::Value { .. })),
                "{name}={value}"
            );
        }
        Ok(())
    }
}
