//! Temporary files of uploads in progress, and their journal.
//!
//! An upload is written to `.<32 hex>.upload` beside its destination (40 bytes: a valid
//! destination name of up to `NAME_MAX` bytes never makes it too long), created `0600` so
//! nobody else can open it while it fills, then given its final mode, `fsync`ed and renamed
//! over the destination. Before the temporary file is created, an entry named by the same
//! hex is written to the journal directory (`Config::upload_journal_dir`, by default
//! `workspace/upload_journal`, next to the bash events): it holds the temporary file's path
//! and stays locked (`flock`) while the upload runs. The entry is removed when the upload
//! ends, whichever way; a kill leaves it behind, unlocked (the kernel drops the lock with the
//! process), and [`recover`] removes the temporary file it names at the next start. Locked
//! entries belong to a live upload of another process sharing the directory and are left
//! alone; an entry only ever deletes a file whose name has the temporary form.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// Suffix of temporary upload files.
const SUFFIX: &str = ".upload";

/// Mode of a temporary file while it fills, and of a journal entry.
const PRIVATE: u32 = 0o600;

/// Where a failure happened: the journal is the server's own state (a fault of the server),
/// the temporary file sits beside the client's destination (usually the client's path).
#[derive(Debug)]
pub(crate) enum Failure {
    /// Writing or locking the journal entry.
    Journal(io::Error),
    /// Creating, finishing or renaming the temporary file.
    Destination(io::Error),
}

/// One upload in progress: its journal entry (locked) and its temporary file. Dropping it
/// removes both, unless the temporary file was renamed into place.
#[derive(Debug)]
pub(crate) struct InFlight {
    temp: PathBuf,
    entry: PathBuf,
    /// The open, locked entry: the lock tells [`recover`] the upload is alive.
    _lock: File,
    renamed: bool,
}

/// Whether `name` has the form of a temporary upload file: `.` + 32 hex digits + `.upload`.
fn is_temp_name(name: &[u8]) -> bool {
    name.strip_prefix(b".")
        .and_then(|rest| rest.strip_suffix(SUFFIX.as_bytes()))
        .is_some_and(|hex| hex.len() == 32 && hex.iter().all(u8::is_ascii_hexdigit))
}

impl InFlight {
    /// Journals, then creates (`0600`, exclusive) a temporary file in `dir`.
    pub(crate) fn create(journal: &Path, dir: &Path) -> Result<(Self, File), Failure> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let temp = dir.join(format!(".{id}{SUFFIX}"));
        let entry = journal.join(&id);
        fs::create_dir_all(journal).map_err(Failure::Journal)?;
        let mut lock = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE)
            .open(&entry)
            .map_err(Failure::Journal)?;
        let written = lock
            .try_lock()
            .map_err(io::Error::from)
            .and_then(|()| lock.write_all(temp.as_os_str().as_bytes()))
            .and_then(|()| lock.sync_data());
        let in_flight = Self {
            temp,
            entry,
            _lock: lock,
            renamed: false,
        };
        written.map_err(Failure::Journal)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(PRIVATE)
            .open(&in_flight.temp)
            .map_err(Failure::Destination)?;
        Ok((in_flight, file))
    }

    /// Gives the filled temporary `file` its final `mode`, flushes it to disk and renames it
    /// over `target`.
    pub(crate) fn commit(mut self, file: File, target: &Path, mode: u32) -> io::Result<()> {
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.temp, target)?;
        self.renamed = true;
        // Make the rename itself durable (best effort: some filesystems refuse).
        if let Some(dir) = target.parent()
            && let Ok(dir) = File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = fs::remove_file(&self.temp);
        }
        // After the temporary file: a crash in between leaves an entry whose file is gone.
        let _ = fs::remove_file(&self.entry);
    }
}

/// Removes the temporary files of uploads interrupted by a crash, and their journal
/// entries. Returns how many temporary files were removed.
pub(crate) fn recover(journal: &Path) -> usize {
    let Ok(entries) = fs::read_dir(journal) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(mut file) = File::open(&path) else {
            continue;
        };
        if file.try_lock().is_err() {
            // A live upload (of another server sharing the directory).
            continue;
        }
        let mut named = Vec::new();
        if file.read_to_end(&mut named).is_err() {
            continue;
        }
        let temp = PathBuf::from(OsString::from_vec(named));
        let temp_named = temp
            .file_name()
            .is_some_and(|name| is_temp_name(name.as_bytes()));
        if temp_named && temp.is_absolute() {
            match fs::remove_file(&temp) {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(path = %temp.display(), "removed an interrupted upload");
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(path = %temp.display(), %err, "cannot remove an interrupted upload");
                    continue;
                }
            }
        } else {
            tracing::warn!(entry = %path.display(), "ignoring a malformed upload journal entry");
        }
        let _ = fs::remove_file(&path);
    }
    removed
}

/// The mode a new file gets: `0666` minus the process's umask (read from
/// `/proc/self/status`, as setting the umask to read it would race with other threads;
/// `022` when it cannot be read).
pub(crate) fn default_file_mode() -> u32 {
    let umask = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let value = line.strip_prefix("Umask:")?;
                u32::from_str_radix(value.trim(), 8).ok()
            })
        })
        .unwrap_or(0o022);
    0o666 & !umask
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn temp_names_have_one_form() {
        assert!(is_temp_name(b".0123456789abcdef0123456789abcdef.upload"));
        assert!(!is_temp_name(b".0123456789abcdef0123456789abcdeg.upload"));
        assert!(!is_temp_name(b"important.txt"));
        assert!(!is_temp_name(b".x.upload"));
    }

    #[test]
    fn a_dropped_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        let (in_flight, file) = InFlight::create(&journal, dir.path()).unwrap();
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_dir(&journal).unwrap().count(), 1);
        // A live upload is not touched by a recovery.
        assert_eq!(recover(&journal), 0);
        assert!(in_flight.temp.exists());
        drop(in_flight);
        assert_eq!(fs::read_dir(&journal).unwrap().count(), 0);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
