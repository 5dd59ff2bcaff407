//! On-disk layout of a conversation, as the reference writes it:
//!
//! ```text
//! <conversation dir>/base_state.json             state without events, rewritten on change
//! <conversation dir>/events/event-00000-<id>.json  one file per event, in append order
//! ```
//!
//! Every file is written to a temporary name in the same directory and renamed into place,
//! so a crash leaves either the old or the new file, never a torn one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use oh_protocol::{ConversationState, Event};

/// Name of the state file.
pub const BASE_STATE: &str = "base_state.json";
/// Name of the events directory.
pub const EVENTS_DIR: &str = "events";

/// Where a conversation lives on disk.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    next_index: usize,
}

/// A persistence failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file did not hold valid JSON of the expected type.
    #[error("{path} is not valid: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl Store {
    /// Opens (creating if needed) the conversation directory `dir` and counts its events.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        let events = dir.join(EVENTS_DIR);
        fs::create_dir_all(&events).map_err(io_err("creating", &events))?;
        let next_index = event_files(&events)?.len();
        Ok(Self { dir, next_index })
    }

    /// The conversation directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of stored events.
    pub fn len(&self) -> usize {
        self.next_index
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.next_index == 0
    }

    /// Whether `dir` holds a saved conversation.
    pub fn exists(dir: &Path) -> bool {
        dir.join(BASE_STATE).is_file()
    }

    /// Appends an event as `event-<index>-<id>.json` (compact JSON).
    pub fn append(&mut self, event: &Event) -> Result<(), StoreError> {
        let id = event.id().unwrap_or("unknown");
        let name = format!("event-{:05}-{id}.json", self.next_index);
        let path = self.dir.join(EVENTS_DIR).join(name);
        let bytes =
            oh_protocol::wire::to_compact_vec(event).map_err(|source| StoreError::Decode {
                path: path.clone(),
                source,
            })?;
        write_atomic(&path, &bytes)?;
        self.next_index += 1;
        Ok(())
    }

    /// Writes `base_state.json`.
    pub fn save_state(&self, state: &ConversationState) -> Result<(), StoreError> {
        let path = self.dir.join(BASE_STATE);
        let bytes =
            oh_protocol::wire::to_compact_vec(state).map_err(|source| StoreError::Decode {
                path: path.clone(),
                source,
            })?;
        write_atomic(&path, &bytes)
    }

    /// Reads `base_state.json`.
    pub fn load_state(&self) -> Result<ConversationState, StoreError> {
        let path = self.dir.join(BASE_STATE);
        let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Decode { path, source })
    }

    /// Reads every stored event in append order. The index is rebuilt from the file names
    /// and stops at the first gap, as the reference does; a torn or undecodable file ends
    /// the log there too (it can only be the last one, written when the process died).
    pub fn load_events(&mut self) -> Result<Vec<Event>, StoreError> {
        let events_dir = self.dir.join(EVENTS_DIR);
        let files = event_files(&events_dir)?;
        let mut events = Vec::with_capacity(files.len());
        for (index, path) in files {
            if index != events.len() {
                break;
            }
            let bytes = fs::read(&path).map_err(io_err("reading", &path))?;
            match serde_json::from_slice::<Event>(&bytes) {
                Ok(event) => events.push(event),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping unreadable event file");
                    break;
                }
            }
        }
        self.next_index = events.len();
        Ok(events)
    }

    /// Writes an auxiliary file of the conversation (e.g. `TASKS.json`) atomically.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        write_atomic(&self.dir.join(name), bytes)
    }
}

/// Event files of `dir` as `(index, path)`, sorted by index.
fn event_files(dir: &Path) -> Result<Vec<(usize, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        let name = entry.file_name();
        if let Some(index) = name.to_str().and_then(parse_event_name) {
            files.push((index, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The index in `event-<digits>-<id>.json` (at least five digits, an id of ≥ 8 hex/dash chars).
fn parse_event_name(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("event-")?.strip_suffix(".json")?;
    let (digits, id) = rest.split_once('-')?;
    let valid_id = id.len() >= 8 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if digits.len() < 5 || !digits.chars().all(|c| c.is_ascii_digit()) || !valid_id {
        return None;
    }
    digits.parse().ok()
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(
        ".{file_name}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.flush()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names() {
        assert_eq!(
            parse_event_name("event-00012-0c1c798a-bef9-40c2-8adc-0162ba1f9ad1.json"),
            Some(12)
        );
        assert_eq!(
            parse_event_name("event-123456-abcdef12.json"),
            Some(123_456)
        );
        assert_eq!(parse_event_name("event-0012-abcdef12.json"), None);
        assert_eq!(parse_event_name(".event-00012-abcdef12.json.tmp"), None);
        assert_eq!(parse_event_name("event-00001-xyz.json"), None);
    }
}
