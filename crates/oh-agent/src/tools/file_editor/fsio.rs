//! Reading, validating and atomically writing the files the editor works on.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::regular_file::{self, OpenError};

use super::binary::{SNIFF_LEN, looks_binary};
use super::encoding::{DecodeError, TextEncoding, detect, has_binary_control};
use super::error::EditorError;
use super::text::normalize_newlines;
use crate::pyfmt::os_error;

/// Largest file the editor reads or edits: 10 MB.
pub(crate) const MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// Extensions viewed as images rather than text.
pub(crate) const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "gif", "webp", "bmp"];

/// A file's text (newlines normalised) and the encoding it was read in.
#[derive(Debug, Clone)]
pub(crate) struct LoadedText {
    /// The decoded content.
    pub(crate) text: String,
    /// The encoding to write it back in.
    pub(crate) encoding: TextEncoding,
}

/// Why a file could not be read as text.
#[derive(Debug)]
pub(crate) enum LoadFailure {
    /// The file could not be read, or is not a regular file.
    Open(OpenError),
    /// The bytes are not valid in the detected encoding.
    Decode(DecodeError),
}

impl LoadFailure {
    /// The reference's `Ran into <error> while trying to read <path>`.
    pub(crate) fn into_read_error(self, path: &Path, display: &str) -> EditorError {
        match self {
            Self::Open(err) => read_error(&err, path, display),
            Self::Decode(err) => {
                EditorError::Tool(format!("Ran into {err} while trying to read {display}"))
            }
        }
    }
}

/// Whether the path's extension (case-insensitive) is one of [`IMAGE_EXTENSIONS`].
pub(crate) fn is_image(path: &Path) -> bool {
    path.extension()
        .map(|ext| ext.to_string_lossy().to_lowercase())
        .is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.as_str()))
}

/// Refuses regular files over [`MAX_FILE_SIZE`] and binary files (images exempt), and
/// anything that is neither a regular file nor a directory. Missing paths and directories
/// pass, as in the reference.
pub(crate) fn validate_file(path: &Path, display: &str) -> Result<(), EditorError> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    if meta.is_dir() {
        return Ok(());
    }
    if !meta.is_file() {
        return Err(not_regular(display));
    }
    if meta.len() > MAX_FILE_SIZE {
        #[allow(clippy::cast_precision_loss, reason = "a size in MB for a message")]
        let megabytes = meta.len() as f64 / 1024.0 / 1024.0;
        return Err(EditorError::FileValidation {
            path: display.to_owned(),
            reason: format!(
                "File is too large ({megabytes:.1}MB). Maximum allowed size is {}MB.",
                MAX_FILE_SIZE / 1024 / 1024
            ),
        });
    }
    let sample = read_sample(path).map_err(|err| read_error(&err, path, display))?;
    if is_image(path) || !looks_binary(path, &sample) {
        return Ok(());
    }
    if decodes_to_clean_text(path) {
        return Ok(());
    }
    Err(EditorError::FileValidation {
        path: display.to_owned(),
        reason: "File appears to be binary and this file type cannot be read or edited by this \
                 tool."
            .to_owned(),
    })
}

/// The refusal of a FIFO, socket or device. The reference opens such a path and, for a
/// FIFO, waits forever for a writer; the editor answers at once instead.
pub(crate) fn not_regular(display: &str) -> EditorError {
    EditorError::FileValidation {
        path: display.to_owned(),
        reason: "Not a regular file (a FIFO, socket or device); it cannot be read or edited by \
                 this tool."
            .to_owned(),
    }
}

fn read_error(err: &OpenError, path: &Path, display: &str) -> EditorError {
    match err {
        OpenError::Io(err) => EditorError::Tool(format!(
            "Ran into {} while trying to read {display}",
            os_error(err, path)
        )),
        _ => not_regular(display),
    }
}

fn read_sample(path: &Path) -> Result<Vec<u8>, OpenError> {
    let mut sample = Vec::with_capacity(SNIFF_LEN);
    regular_file::open(path)?
        .0
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut sample)?;
    Ok(sample)
}

/// The 1.57.0 override: a file that decodes without stray control characters is text.
fn decodes_to_clean_text(path: &Path) -> bool {
    let Ok(bytes) = regular_file::read(path) else {
        return false;
    };
    detect(&bytes)
        .decode(&bytes)
        .is_ok_and(|text| !has_binary_control(&text))
}

/// Reads and decodes a file without validating it.
pub(crate) fn load(path: &Path) -> Result<LoadedText, LoadFailure> {
    let bytes = regular_file::read(path).map_err(LoadFailure::Open)?;
    let encoding = detect(&bytes);
    let text = encoding.decode(&bytes).map_err(LoadFailure::Decode)?;
    Ok(LoadedText {
        text: normalize_newlines(&text),
        encoding,
    })
}

/// Validates, then reads a file; failures carry the reference's messages.
pub(crate) fn read_text(path: &Path, display: &str) -> Result<LoadedText, EditorError> {
    validate_file(path, display)?;
    load(path).map_err(|failure| failure.into_read_error(path, display))
}

/// Writes `text` to `path` atomically: a temporary file next to it, the original's
/// permission bits copied over, then a rename. `encoding` is the file's encoding (UTF-8 for
/// new files); if it cannot represent the text, the file is written as UTF-8 instead.
///
/// New files get the usual mode (0666 minus the umask). The reference leaves them at its
/// temporary file's 0600, an accident of `NamedTemporaryFile` that the port does not copy.
pub(crate) fn write_text(
    path: &Path,
    display: &str,
    text: &str,
    encoding: TextEncoding,
) -> Result<(), EditorError> {
    let bytes = encoding.encode(text).unwrap_or_else(|| {
        tracing::warn!(
            path = %path.display(),
            ?encoding,
            "encoding cannot represent the new content; writing UTF-8 instead"
        );
        text.as_bytes().to_vec()
    });
    atomic_write(path, &bytes).map_err(|detail| {
        EditorError::Tool(format!(
            "Ran into {detail} while trying to write to {display}"
        ))
    })
}

/// The temporary file `.<name>.<random>.tmp` beside `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let random = uuid::Uuid::new_v4().simple().to_string();
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    parent.join(format!(".{name}.{}.tmp", &random[..8]))
}

/// Writes through a temporary file; the error is rendered like Python's `OSError`.
fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = temp_path(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|err| os_error(&err, &tmp))?;
    let result = finish_write(&mut file, &tmp, path, bytes);
    drop(file);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn finish_write(file: &mut fs::File, tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), String> {
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|err| os_error(&err, tmp))?;
    if let Ok(meta) = fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o7777;
        fs::set_permissions(tmp, fs::Permissions::from_mode(mode))
            .map_err(|err| os_error(&err, tmp))?;
    }
    fs::rename(tmp, path).map_err(|err| os_error(&err, path))
}
