//! Sandbox records on disk: one JSON file per runtime under `<state>/sandboxes/`, written
//! atomically (temporary file, fsync, rename) with mode `0600` because it holds the session
//! key. A record is written *before* the engine is asked for anything, so a crash at any
//! point leaves a record the next start can reconcile.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use oh_protocol::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::ServerError;

/// Where a sandbox is in its life (the server's intent and what it last saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Being created, or started and not healthy yet.
    Starting,
    /// Healthy.
    Running,
    /// Paused (frozen or stopped, see [`PauseKind`]).
    Paused,
    /// Failed; its container was removed.
    Error,
    /// Stopped by a client, or its container is gone.
    Stopped,
}

impl Phase {
    /// Starting, running or paused: a client can still use it.
    pub(crate) fn is_live(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Paused)
    }
}

/// How a sandbox was paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PauseKind {
    /// Frozen (`docker pause`): memory and ports kept.
    Freeze,
    /// Stopped (idle): memory freed, the server restarts on resume.
    Stop,
}

/// One sandbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) runtime_id: String,
    pub(crate) session_id: String,
    pub(crate) image: String,
    pub(crate) phase: Phase,
    /// The engine's handle (container or service id), once created.
    #[serde(default)]
    pub(crate) handle: Option<String>,
    pub(crate) session_api_key: SecretString,
    /// The agent server's URL, once known.
    #[serde(default)]
    pub(crate) url: Option<String>,
    /// The agent server's port inside the sandbox.
    pub(crate) container_port: u16,
    #[serde(default)]
    pub(crate) paused_by: Option<PauseKind>,
    /// Unix seconds.
    pub(crate) created_at: f64,
    /// Unix seconds of the last phase change.
    pub(crate) changed_at: f64,
    #[serde(default)]
    pub(crate) restart_count: u32,
    #[serde(default)]
    pub(crate) restart_reasons: Vec<String>,
    /// Why it failed or stopped.
    #[serde(default)]
    pub(crate) reason: Option<String>,
    /// The sandbox's last log lines, when it failed.
    #[serde(default)]
    pub(crate) pod_logs: Option<String>,
    /// Handed out from the warm pool.
    #[serde(default)]
    pub(crate) from_pool: bool,
    /// Whose fault a failure was.
    #[serde(default)]
    pub(crate) fault: Option<Fault>,
    /// The Cloud API user who created it (`None`: made through the runtime API).
    #[serde(default)]
    pub(crate) owner: Option<String>,
}

/// Whose fault a failed start was: decides the status code of a `/start` that fails before
/// the sandbox had a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Fault {
    /// The request (an image that does not exist): 400.
    Client,
    /// The engine did not answer: 503.
    Engine,
    /// The sandbox itself (crashed, exited, never healthy): 502.
    Sandbox,
}

/// Unix time in seconds.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The record directory.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Opens (creates) `<state_dir>/sandboxes`, private to this user.
    pub(crate) fn open(state_dir: &Path) -> Result<Self, ServerError> {
        let dir = state_dir.join("sandboxes");
        let fail = |source| ServerError::State {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(fail)?;
        restrict(state_dir, 0o700).map_err(fail)?;
        restrict(&dir, 0o700).map_err(fail)?;
        Ok(Self { dir })
    }

    /// Every record; unreadable files are logged and skipped (never deleted).
    pub(crate) fn load(&self) -> Result<Vec<Record>, ServerError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| ServerError::State {
            path: self.dir.clone(),
            source,
        })?;
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                // A write cut short by a crash: the previous version is still in place.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()))
            {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!(path = %path.display(), "skipping a sandbox record: {e}"),
            }
        }
        records.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        Ok(records)
    }

    /// Writes a record (atomically, `0600`). Blocking: call it from the blocking pool or
    /// accept a few milliseconds.
    pub(crate) fn save(&self, record: &Record) -> std::io::Result<()> {
        use std::io::Write;
        let path = self.path(&record.runtime_id);
        let tmp = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &path)
    }

    /// Deletes a record.
    pub(crate) fn delete(&self, runtime_id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(runtime_id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn path(&self, runtime_id: &str) -> PathBuf {
        self.dir.join(format!("{runtime_id}.json"))
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// The server's instance id (`<state>/instance`), created once: containers are labelled with
/// it, so two servers on one engine never touch each other's sandboxes.
pub(crate) fn instance_id(state_dir: &Path) -> Result<String, ServerError> {
    let path = state_dir.join("instance");
    let fail = |source| ServerError::State {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let id = random_hex(8).map_err(fail)?;
    std::fs::write(&path, &id).map_err(fail)?;
    Ok(id)
}

/// `bytes` random bytes from the OS, as lowercase hex. No fallback: a key is never minted
/// from a weaker source.
pub(crate) fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|e| std::io::Error::other(format!("the OS random generator failed: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
