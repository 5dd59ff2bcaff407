//! File upload and download (spec §8): `/api/file/*`.
//!
//! Uploads are streamed part by part into a temporary file next to the destination, which is
//! renamed over it once complete: a failed or interrupted upload leaves the old file intact
//! and no partial file behind. There is no size limit. Downloads stream the file with the
//! headers of Starlette's `FileResponse` and honour a single byte range.

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use tokio_util::io::ReaderStream;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ok};
use crate::extract::Query;

/// Bytes read from a downloaded file at once (as Starlette).
const DOWNLOAD_CHUNK: usize = 64 * 1024;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/file/upload",
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/file/download", get(download))
        .route("/api/file/create_directory", post(create_directory))
}

/// Python's rendering of an `OSError` about `path`: `[Errno 13] Permission denied: '/x'`.
fn os_error(err: &io::Error, path: &Path) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    let full = err.to_string();
    let description = full
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&full);
    format!("[Errno {code}] {description}: '{}'", path.display())
}

/// The `path` query parameter as an absolute, normalized path (`//`, `/./` and trailing
/// slashes removed, as Python's `Path` does).
fn absolute_path(query: &Query) -> ApiResult<PathBuf> {
    let raw = query.required("path")?;
    let path = Path::new(raw);
    if !path.is_absolute() {
        return Err(ApiError::bad_request("Path must be absolute"));
    }
    Ok(path.components().collect())
}

fn forbidden(err: &io::Error, path: &Path) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        format!("Permission denied: {}", os_error(err, path)),
    )
}

/// Deletes a temporary file when dropped, unless it was kept.
#[derive(Debug)]
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn upload(
    State(state): State<AppState>,
    query: Query,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Response> {
    state.activity.touch();
    let target = absolute_path(&query)?;
    let missing_file =
        || ApiError::validation(&["body", "file"], "missing", "Field required", Value::Null);
    let mut multipart = multipart.map_err(|_| missing_file())?;
    let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
        return Err(ApiError::bad_request("Path is a directory"));
    };
    let (parent, name) = (parent.to_owned(), name.to_owned());
    let upload_error = |err: &io::Error, path: &Path| match err.kind() {
        io::ErrorKind::PermissionDenied => forbidden(err, path),
        _ => ApiError::internal(format!(
            "500: Failed to upload file: {}",
            os_error(err, path)
        )),
    };
    if let Err(err) = tokio::fs::create_dir_all(&parent).await {
        return Err(match err.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                ApiError::bad_request("A parent of the path is not a directory")
            }
            _ => upload_error(&err, &parent),
        });
    }
    // Write through a symlink to its target, as opening the path would.
    let target = match tokio::fs::symlink_metadata(&target).await {
        Ok(meta) if meta.file_type().is_symlink() => {
            tokio::fs::canonicalize(&target).await.unwrap_or(target)
        }
        _ => target,
    };
    let existing = tokio::fs::metadata(&target).await.ok();
    if existing.as_ref().is_some_and(std::fs::Metadata::is_dir) {
        return Err(ApiError::bad_request("Path is a directory"));
    }
    let dir = target.parent().unwrap_or(&parent).to_owned();
    let name = target
        .file_name()
        .unwrap_or(&name)
        .to_string_lossy()
        .into_owned();

    // The last `file` part wins, as with Starlette's form data.
    let mut written: Option<(TempFile, u64)> = None;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|err| ApiError::bad_request(format!("Could not read the upload: {err}")))?;
        let Some(field) = field else { break };
        if field.name() != Some("file") {
            continue;
        }
        let temp = TempFile {
            path: dir.join(format!(".{name}.{}.upload", uuid::Uuid::new_v4().simple())),
            keep: false,
        };
        let size = write_part(field, &temp.path)
            .await
            .map_err(|err| match err {
                PartError::Io(err) => upload_error(&err, &target),
                PartError::Read(err) => ApiError::bad_request(err),
            })?;
        written = Some((temp, size));
    }
    let Some((mut temp, size)) = written else {
        return Err(missing_file());
    };
    if let Some(existing) = &existing {
        // Keep the mode of the file being replaced (an executable stays executable).
        let _ = tokio::fs::set_permissions(&temp.path, existing.permissions()).await;
    }
    tokio::fs::rename(&temp.path, &target)
        .await
        .map_err(|err| match err.kind() {
            io::ErrorKind::IsADirectory => ApiError::bad_request("Path is a directory"),
            _ => upload_error(&err, &target),
        })?;
    temp.keep = true;
    tracing::info!(path = %target.display(), size, "uploaded a file");
    Ok(ok(&json!({ "success": true, "file_size": size })))
}

enum PartError {
    Io(io::Error),
    Read(String),
}

/// Streams one multipart part into `path`; returns its size.
async fn write_part(mut field: Field<'_>, path: &Path) -> Result<u64, PartError> {
    let mut file = tokio::fs::File::create(path).await.map_err(PartError::Io)?;
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
    Ok(size)
}

async fn download(
    State(state): State<AppState>,
    query: Query,
    headers: HeaderMap,
) -> ApiResult<Response> {
    state.activity.touch();
    let path = absolute_path(&query)?;
    let meta = match tokio::fs::metadata(&path).await {
        Ok(meta) => meta,
        Err(err) => {
            return Err(match err.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                    ApiError::new(StatusCode::NOT_FOUND, "File not found")
                }
                io::ErrorKind::PermissionDenied => forbidden(&err, &path),
                _ => ApiError::internal(format!(
                    "500: Failed to download file: {}",
                    os_error(&err, &path)
                )),
            });
        }
    };
    if !meta.is_file() {
        return Err(ApiError::bad_request("Path is not a file"));
    }
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|err| match err.kind() {
            io::ErrorKind::PermissionDenied => forbidden(&err, &path),
            _ => ApiError::internal(format!(
                "500: Failed to download file: {}",
                os_error(&err, &path)
            )),
        })?;
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
    let path = absolute_path(&query)?;
    if let Err(err) = tokio::fs::create_dir_all(&path).await {
        return Err(match err.kind() {
            io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
                ApiError::bad_request("Path exists and is not a directory")
            }
            io::ErrorKind::PermissionDenied => forbidden(&err, &path),
            _ => ApiError::internal(format!(
                "500: Failed to create directory: {}",
                os_error(&err, &path)
            )),
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
