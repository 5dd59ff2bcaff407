//! File upload and download (spec §8): `/api/file/*`.
//!
//! Uploads are streamed part by part into a temporary file next to the destination, which is
//! renamed over it once complete: a failed or interrupted upload leaves the old file intact
//! and no partial file behind (the temporary file is private while it fills and journaled so
//! that a crash's leftover is removed at the next start, see `upload_journal`). There is no
//! size limit. Downloads stream the file with the headers of Starlette's `FileResponse` and
//! honour a single byte range; only regular files are opened (a FIFO would block the open).
//! Every blocking filesystem call runs bounded (`blocking`), and OS errors caused by the
//! client's path are 4xx with Python's rendering of the error (`fs_error`).

use std::io::{self, SeekFrom};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use oh_agent::regular_file::{self, OpenError};
use rustix::io::Errno;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use tokio_util::io::ReaderStream;

use crate::app::AppState;
use crate::blocking::{self, Family};
use crate::error::{ApiError, ApiResult, ok};
use crate::extract::Query;
use crate::upload_journal::{self, Failure, InFlight};

/// Bytes read from a downloaded file at once (as Starlette).
const DOWNLOAD_CHUNK: usize = 64 * 1024;

pub(crate) fn router() -> Router<AppState> {
    routes("/api/file")
}

/// The file routes under `prefix` (`/api/file`, or a conversation's `…/file`).
pub(crate) fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{prefix}/upload"),
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route(&format!("{prefix}/download"), get(download))
        .route(
            &format!("{prefix}/create_directory"),
            post(create_directory),
        )
}

/// Whether `err` says the path names nothing: missing, under a non-directory, or a symlink
/// loop (the errors Python's `Path.exists()` answers `False` for).
fn names_nothing(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    ) || err.raw_os_error() == Some(Errno::LOOP.raw_os_error())
}

/// The one mapping of an OS error on a client-named path to a response, for the failure
/// of `action` (`"upload file"`): what the client's path or request caused is a 4xx with
/// Python's rendering of the error, only the server's own faults are 500. The reference
/// answers 500 for most of these; the statuses of the errors it does classify are kept.
fn fs_error(err: &io::Error, path: &Path, action: &str) -> ApiError {
    use io::ErrorKind as Kind;
    let shown = oh_agent::pyfmt::os_error(err, path);
    let status = match err.kind() {
        Kind::PermissionDenied | Kind::ReadOnlyFilesystem => {
            return ApiError::new(StatusCode::FORBIDDEN, format!("Permission denied: {shown}"));
        }
        Kind::NotFound
        | Kind::NotADirectory
        | Kind::IsADirectory
        | Kind::AlreadyExists
        | Kind::DirectoryNotEmpty
        | Kind::InvalidFilename
        | Kind::InvalidInput
        | Kind::TooManyLinks
        | Kind::CrossesDevices
        | Kind::ResourceBusy
        | Kind::ExecutableFileBusy => StatusCode::BAD_REQUEST,
        Kind::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Kind::StorageFull | Kind::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        _ if err.raw_os_error() == Some(Errno::LOOP.raw_os_error()) => StatusCode::BAD_REQUEST,
        _ => return ApiError::internal(format!("500: Failed to {action}: {shown}")),
    };
    ApiError::new(status, format!("Failed to {action}: {shown}"))
}

/// The `path` query parameter as an absolute, normalized path (`//`, `/./` and trailing
/// slashes removed, as Python's `Path` does), and whether it contains a NUL byte (such a
/// path names no file; each route answers it as the reference does for a missing path, or
/// 400).
fn absolute_path(query: &Query) -> ApiResult<(PathBuf, bool)> {
    let raw = query.required("path")?;
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(ApiError::bad_request("Path must be absolute"));
    }
    Ok((path.components().collect(), raw.contains('\0')))
}

/// A path for creating something: NUL bytes are refused with 400 (the reference fails
/// with 500).
fn creatable_path(query: &Query) -> ApiResult<PathBuf> {
    match absolute_path(query)? {
        (_, true) => Err(ApiError::bad_request(
            "Invalid path: it contains a NUL byte",
        )),
        (path, false) => Ok(path),
    }
}

/// Where an upload goes: its destination (a symlink resolved to what it points at, as
/// opening the path would), the directory of the temporary file, and the mode of the file
/// it replaces.
#[derive(Debug)]
struct Destination {
    target: PathBuf,
    dir: PathBuf,
    mode: Option<u32>,
}

/// Creates the parents of `target` and looks at what it names.
fn prepare_upload(target: PathBuf) -> ApiResult<Destination> {
    let (Some(parent), Some(_)) = (target.parent(), target.file_name()) else {
        return Err(ApiError::bad_request("Path is a directory"));
    };
    let parent = parent.to_owned();
    if let Err(err) = std::fs::create_dir_all(&parent) {
        return Err(match err.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                ApiError::bad_request("A parent of the path is not a directory")
            }
            _ => fs_error(&err, &parent, "upload file"),
        });
    }
    let target = match std::fs::symlink_metadata(&target) {
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::canonicalize(&target) {
            Ok(real) => real,
            // A dangling link: the upload replaces the link.
            Err(err) if err.kind() == io::ErrorKind::NotFound => target,
            Err(err) => return Err(fs_error(&err, &target, "upload file")),
        },
        Ok(_) => target,
        Err(err) if names_nothing(&err) && err.kind() != io::ErrorKind::NotADirectory => target,
        Err(err) => return Err(fs_error(&err, &target, "upload file")),
    };
    let mode = match std::fs::metadata(&target) {
        Ok(meta) if meta.is_dir() => return Err(ApiError::bad_request("Path is a directory")),
        // Keep the mode of the file being replaced (an executable stays executable).
        Ok(meta) => Some(meta.permissions().mode() & 0o7777),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => return Err(fs_error(&err, &target, "upload file")),
    };
    let dir = target.parent().unwrap_or(&parent).to_owned();
    Ok(Destination { target, dir, mode })
}

/// An error while creating or finishing the temporary file of an upload to `target`.
fn upload_failure(failure: &Failure, target: &Path) -> ApiError {
    match failure {
        Failure::Journal(err) => {
            ApiError::internal(format!("500: Failed to upload file: journal: {err}"))
        }
        Failure::Destination(err) => fs_error(err, target, "upload file"),
    }
}

async fn upload(
    State(state): State<AppState>,
    query: Query,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    state.activity.touch();
    let target = creatable_path(&query)?;
    let missing_file =
        || ApiError::validation(&["body", "file"], "missing", "Field required", Value::Null);
    let mut multipart = multipart.map_err(|_| missing_file())?;
    let destination = blocking::run(Family::Files, move || prepare_upload(target)).await??;
    let target = Arc::new(destination.target);

    // The last `file` part wins, as with Starlette's form data.
    let mut written: Option<(InFlight, std::fs::File, u64)> = None;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|err| ApiError::bad_request(format!("Could not read the upload: {err}")))?;
        let Some(field) = field else { break };
        if field.name() != Some("file") {
            continue;
        }
        // An earlier part's temporary file goes first.
        drop(written.take());
        let journal = state.config.upload_journal_dir.clone();
        let dir = destination.dir.clone();
        let (in_flight, file) =
            blocking::run(Family::Files, move || InFlight::create(&journal, &dir))
                .await?
                .map_err(|failure| upload_failure(&failure, &target))?;
        let (file, size) = write_part(field, file).await.map_err(|err| match err {
            PartError::Io(err) => fs_error(&err, &target, "upload file"),
            PartError::Read(err) => ApiError::bad_request(err),
        })?;
        written = Some((in_flight, file, size));
    }
    let Some((in_flight, file, size)) = written else {
        return Err(missing_file());
    };
    let mode = destination.mode;
    let into = Arc::clone(&target);
    blocking::run(Family::Files, move || {
        let mode = mode.unwrap_or_else(upload_journal::default_file_mode);
        in_flight.commit(file, &into, mode)
    })
    .await?
    .map_err(|err| match err.kind() {
        io::ErrorKind::IsADirectory => ApiError::bad_request("Path is a directory"),
        _ => fs_error(&err, &target, "upload file"),
    })?;
    tracing::info!(path = %target.display(), size, "uploaded a file");
    Ok(ok(&json!({ "success": true, "file_size": size })))
}

enum PartError {
    Io(io::Error),
    Read(String),
}

/// Streams one multipart part into `file`; gives the file back with the part's size.
async fn write_part(
    mut field: Field<'_>,
    file: std::fs::File,
) -> Result<(std::fs::File, u64), PartError> {
    let mut file = tokio::fs::File::from_std(file);
    let mut size = 0u64;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|err| PartError::Read(format!("Could not read the upload: {err}")))?
    {
        file.write_all(&chunk).await.map_err(PartError::Io)?;
        size += chunk.len() as u64;
    }
    file.flush().await.map_err(PartError::Io)?;
    Ok((file.into_std().await, size))
}

async fn download(
    State(state): State<AppState>,
    query: Query,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state.activity.touch();
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "File not found");
    let (path, nul) = absolute_path(&query)?;
    if nul {
        return Err(not_found());
    }
    let opened = {
        let path = path.clone();
        blocking::run(Family::Files, move || regular_file::open(&path)).await?
    };
    let (file, meta) = match opened {
        Ok(opened) => opened,
        Err(OpenError::NotRegular) => return Err(ApiError::bad_request("Path is not a file")),
        Err(OpenError::Io(err)) if names_nothing(&err) => return Err(not_found()),
        Err(OpenError::Io(err)) => return Err(fs_error(&err, &path, "download file")),
        Err(err) => {
            return Err(ApiError::internal(format!(
                "500: Failed to download file: {err}"
            )));
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    let size = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    let last_modified = http_date(i64::try_from(mtime.as_secs()).unwrap_or(0));
    let etag = {
        let digest = sha2::Sha256::digest(format!("{}-{size}", mtime.as_secs_f64()).as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("\"{hex}\"")
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let mut response_headers = HeaderMap::new();
    let mut set = |name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            response_headers.insert(name, value);
        }
    };
    set(header::CONTENT_TYPE, "application/octet-stream");
    set(header::ACCEPT_RANGES, "bytes");
    set(header::CONTENT_DISPOSITION, &content_disposition(&name));
    set(header::LAST_MODIFIED, &last_modified);
    set(header::ETAG, &etag);

    let if_range_ok = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| !v.starts_with("W/") && (v == last_modified || v == etag));
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(range) if if_range_ok => match parse_range(range, size) {
            Ok(range) => range,
            Err(RangeError::Malformed(msg)) => return Err(ApiError::bad_request(msg)),
            Err(RangeError::Unsatisfiable) => {
                let mut response =
                    ApiError::reason(StatusCode::RANGE_NOT_SATISFIABLE).into_response();
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return Ok(response);
            }
        },
        _ => None,
    };
    let (status, start, length) = match range {
        Some((start, end)) => {
            set(
                header::CONTENT_RANGE,
                &format!("bytes {start}-{}/{size}", end - 1),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start)
        }
        None => (StatusCode::OK, 0, size),
    };
    set(header::CONTENT_LENGTH, &length.to_string());
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|err| ApiError::internal(format!("500: Failed to download file: {err}")))?;
    }
    let stream = ReaderStream::with_capacity(file.take(length), DOWNLOAD_CHUNK);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    *response.headers_mut() = response_headers;
    Ok(response)
}

/// Starlette's `Content-Disposition`: a quoted `filename` when URL-quoting leaves the name
/// unchanged, else RFC 5987 `filename*`.
fn content_disposition(name: &str) -> String {
    let mut quoted = String::new();
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~/".contains(&byte) {
            quoted.push(char::from(byte));
        } else {
            quoted.push_str(&format!("%{byte:02X}"));
        }
    }
    if quoted == name {
        format!("attachment; filename=\"{name}\"")
    } else {
        format!("attachment; filename*=utf-8''{quoted}")
    }
}

/// Why a `Range` header cannot be served.
#[derive(Debug, PartialEq, Eq)]
enum RangeError {
    /// 400 with this message.
    Malformed(&'static str),
    /// 416.
    Unsatisfiable,
}

/// One byte range `[start, end)` of a `Range` header, as Starlette parses it. Several ranges
/// that do not merge into one are served as the whole file (no multipart responses).
fn parse_range(header: &str, size: u64) -> Result<Option<(u64, u64)>, RangeError> {
    let malformed = |msg: &'static str| Err(RangeError::Malformed(msg));
    let Some((units, spec)) = header.split_once('=') else {
        return malformed("Malformed range header.");
    };
    if !units.trim().eq_ignore_ascii_case("bytes") {
        return malformed("Only support bytes range");
    }
    if spec.matches(',').count() + 1 > 100 {
        return Ok(None);
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        let Some((from, to)) = part.split_once('-') else {
            continue;
        };
        let (from, to) = (from.trim(), to.trim());
        if from.is_empty() && to.is_empty() {
            continue;
        }
        let parsed = if from.is_empty() {
            to.parse::<u64>()
                .ok()
                .map(|n| (size.saturating_sub(n), size))
        } else {
            match (from.parse::<u64>(), to) {
                (Ok(start), "") => Some((start, size)),
                (Ok(start), to) => to
                    .parse::<u64>()
                    .ok()
                    .map(|end| (start, if end < size { end + 1 } else { size })),
                _ => None,
            }
        };
        if let Some(range) = parsed {
            ranges.push(range);
        }
    }
    if ranges.is_empty() {
        return malformed("Range header: range must be requested");
    }
    if ranges.iter().any(|&(start, _)| start >= size) {
        return Err(RangeError::Unsatisfiable);
    }
    if ranges.iter().any(|&(start, end)| start >= end) {
        return malformed("Range header: start must be less than end");
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    Ok(match merged.as_slice() {
        [one] => Some(*one),
        _ => None,
    })
}

/// An RFC 7231 date: `Wed, 04 May 2026 10:20:11 GMT`.
fn http_date(seconds: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `utc_timestamp` gives `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    let stamp = oh_protocol::time::utc_timestamp(seconds.saturating_mul(1_000_000));
    let field = |range: std::ops::Range<usize>| stamp.get(range).unwrap_or("00");
    let month = field(5..7).parse::<usize>().unwrap_or(1);
    let weekday = DAYS
        .get(usize::try_from(seconds.div_euclid(86_400).rem_euclid(7)).unwrap_or(0))
        .unwrap_or(&"Thu");
    format!(
        "{weekday}, {} {} {} {} GMT",
        field(8..10),
        MONTHS.get(month.wrapping_sub(1)).unwrap_or(&"Jan"),
        field(0..4),
        field(11..19),
    )
}

async fn create_directory(State(state): State<AppState>, query: Query) -> ApiResult<Response> {
    state.activity.touch();
    let path = creatable_path(&query)?;
    let created = {
        let path = path.clone();
        blocking::run(Family::Files, move || std::fs::create_dir_all(&path)).await?
    };
    if let Err(err) = created {
        return Err(match err.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                ApiError::bad_request("Path exists and is not a directory")
            }
            _ => fs_error(&err, &path, "create directory"),
        });
    }
    Ok(ok(&json!({ "success": true })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_dispositions_match_python() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_777_889_702), "Mon, 04 May 2026 10:15:02 GMT");
        assert_eq!(
            content_disposition("a-b_c.txt"),
            "attachment; filename=\"a-b_c.txt\""
        );
        assert_eq!(
            content_disposition("my file é.txt"),
            "attachment; filename*=utf-8''my%20file%20%C3%A9.txt"
        );
    }

    #[test]
    fn ranges_parse_like_starlette() {
        assert_eq!(parse_range("bytes=0-9", 100).ok(), Some(Some((0, 10))));
        assert_eq!(parse_range("bytes=90-", 100).ok(), Some(Some((90, 100))));
        assert_eq!(parse_range("bytes=-10", 100).ok(), Some(Some((90, 100))));
        assert_eq!(parse_range("bytes=0-500", 100).ok(), Some(Some((0, 100))));
        assert_eq!(parse_range("bytes=0-4,3-9", 100).ok(), Some(Some((0, 10))));
        assert_eq!(parse_range("bytes=0-4,50-59", 100).ok(), Some(None));
        assert_eq!(
            parse_range("bytes=100-", 100),
            Err(RangeError::Unsatisfiable)
        );
        assert_eq!(
            parse_range("items=0-1", 100),
            Err(RangeError::Malformed("Only support bytes range"))
        );
        assert_eq!(
            parse_range("bytes=5-2", 100),
            Err(RangeError::Malformed(
                "Range header: start must be less than end"
            ))
        );
    }
}
