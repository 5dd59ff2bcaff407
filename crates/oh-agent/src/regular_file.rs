//! Opening a file for its content only when it is a regular file.
//!
//! Opening a FIFO for reading blocks until a writer appears, possibly forever; opening a
//! device can have side effects or make a terminal the controlling one. Whoever reads a file
//! named by a client or a model goes through [`open`] (or [`read`]): the path is checked
//! first (so devices are not even opened in the common case), then opened with `O_NONBLOCK`
//! and `O_NOCTTY` (an open that never waits), and the opened handle itself is checked with
//! `fstat`, so a path swapped for a FIFO between the check and the open is still refused.
//! For a regular file `O_NONBLOCK` changes nothing: reads of regular files never wait for a
//! peer.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use rustix::fs::OFlags;

/// Why a file could not be opened for its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The path exists but is not a regular file (a FIFO, socket or device; directories are
    /// refused too).
    #[error("not a regular file")]
    NotRegular,
    /// The operating system refused (missing, permission denied, …).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The flags of an open that never waits for a peer and never acquires a controlling
/// terminal.
fn open_flags() -> i32 {
    let flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    // The bits of both flags are small positive constants.
    i32::try_from(flags.bits()).unwrap_or(0)
}

/// Opens `path` (following symlinks) for reading if it is a regular file, with its
/// metadata taken from the opened handle.
pub fn open(path: &Path) -> Result<(File, Metadata), OpenError> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(OpenError::NotRegular);
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(open_flags())
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(OpenError::NotRegular);
    }
    Ok((file, meta))
}

/// Reads a regular file whole (see [`open`]).
pub fn read(path: &Path) -> Result<Vec<u8>, OpenError> {
    let (mut file, meta) = open(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;

    #[test]
    fn regular_files_open_and_others_are_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.txt");
        std::fs::write(&file, "hello").unwrap();
        assert_eq!(read(&file).unwrap(), b"hello");
        let fifo = dir.path().join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(matches!(open(&fifo), Err(OpenError::NotRegular)));
        assert!(matches!(read(dir.path()), Err(OpenError::NotRegular)));
        assert!(matches!(
            read(Path::new("/dev/null")),
            Err(OpenError::NotRegular)
        ));
        assert!(
            matches!(read(&dir.path().join("missing")), Err(OpenError::Io(err)) if err.kind() == io::ErrorKind::NotFound)
        );
    }
}
