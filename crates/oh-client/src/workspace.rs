//! `RemoteWorkspace`: commands, files and git on an agent server.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::Method;
use hyper::body::{Frame, SizeHint};
use oh_protocol::{
    BashEvent, BashEventPage, CommandResult, ExecuteBashRequest, FileOperationResult, GitChange,
    GitDiff, SecretString, ServerInfo,
};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::http::{self, Body, Http};

/// The reference's default working directory for `Workspace(...)`.
pub const DEFAULT_WORKING_DIR: &str = "workspace/project";

/// Default time a command may run (the reference's `timeout=30.0`).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Time allowed for file and git calls (the reference's 60 s).
const FILE_TIMEOUT: Duration = Duration::from_secs(60);

/// Time allowed for a health probe.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// After the command's own timeout, how long the server still has to report the kill.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// Longest pause between two polls of a command's output.
const MAX_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A workspace on an agent server: every operation is an HTTP call to it.
///
/// Cheap to clone; clones share one connection pool. Construction does no I/O.
///
/// ```no_run
/// # async fn demo() -> Result<(), oh_client::Error> {
/// use std::time::Duration;
/// use oh_client::RemoteWorkspace;
///
/// let workspace = RemoteWorkspace::builder("http://localhost:8000")
///     .api_key("my-session-key")
///     .working_dir("/workspace/project")
///     .build()?;
/// workspace.wait_until_healthy(Duration::from_secs(30)).await?;
/// let result = workspace.execute_command("ls -la", None, Duration::from_secs(10)).await?;
/// println!("{} (exit {})", result.stdout, result.exit_code);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RemoteWorkspace {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: Http,
    host: String,
    /// A [`SecretString`], so `Debug` never shows it.
    api_key: Option<SecretString>,
    working_dir: String,
    read_timeout: Duration,
}

/// Builds a [`RemoteWorkspace`].
#[derive(Debug, Clone)]
#[must_use]
pub struct RemoteWorkspaceBuilder {
    host: String,
    api_key: Option<SecretString>,
    working_dir: String,
    read_timeout: Duration,
}

impl RemoteWorkspaceBuilder {
    /// The session API key (`X-Session-API-Key`); none by default. An empty key means none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.api_key = (!key.is_empty()).then(|| SecretString::new(key));
        self
    }

    /// The workspace directory on the server (default `workspace/project`).
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = dir.into();
        self
    }

    /// Time allowed for conversation calls (the reference's `read_timeout`, default 600 s).
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Checks the host URL and builds the workspace.
    pub fn build(self) -> Result<RemoteWorkspace> {
        let mut http = Http::new(&self.host)?;
        if let Some(key) = &self.api_key {
            http = http.with_header(http::SESSION_KEY_HEADER, key.expose())?;
        }
        Ok(RemoteWorkspace {
            inner: Arc::new(Inner {
                host: http.base().to_owned(),
                http,
                api_key: self.api_key,
                working_dir: self.working_dir,
                read_timeout: self.read_timeout,
            }),
        })
    }
}

impl RemoteWorkspace {
    /// Starts building a workspace on the agent server at `host`
    /// (`http[s]://host[:port][/prefix]`).
    pub fn builder(host: impl Into<String>) -> RemoteWorkspaceBuilder {
        RemoteWorkspaceBuilder {
            host: host.into(),
            api_key: None,
            working_dir: DEFAULT_WORKING_DIR.to_owned(),
            read_timeout: Duration::from_secs(600),
        }
    }

    /// A workspace at `working_dir` on the server at `host`, without an API key.
    pub fn new(host: impl Into<String>, working_dir: impl Into<String>) -> Result<Self> {
        Self::builder(host).working_dir(working_dir).build()
    }

    /// The server's URL, without a trailing slash.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The session API key, if any.
    pub fn api_key(&self) -> Option<&str> {
        self.inner.api_key.as_ref().map(SecretString::expose)
    }

    /// The workspace directory on the server.
    pub fn working_dir(&self) -> &str {
        &self.inner.working_dir
    }

    /// Time allowed for conversation calls.
    pub fn read_timeout(&self) -> Duration {
        self.inner.read_timeout
    }

    pub(crate) fn http(&self) -> &Http {
        &self.inner.http
    }

    /// True when `GET /health` answers 2xx within 5 s.
    pub async fn alive(&self) -> bool {
        self.http()
            .send(Method::GET, "/health", None, HEALTH_TIMEOUT, false)
            .await
            .is_ok()
    }

    /// Polls `/health` until it answers 2xx; [`Error::Timeout`] after `timeout`.
    pub async fn wait_until_healthy(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(25);
        loop {
            if self.alive().await {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout {
                    what: format!("waiting for {}/health", self.host()),
                    after: timeout,
                });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// `GET /server_info`: versions, uptime and capabilities.
    pub async fn server_info(&self) -> Result<ServerInfo> {
        let bytes = self
            .http()
            .call(Method::GET, "/server_info", None, FILE_TIMEOUT)
            .await?;
        http::decode("/server_info", &bytes)
    }

    /// Runs `command` with `/bin/sh -c` on the server, in `cwd` (default: the server's own
    /// working directory, as in the reference) and waits for it at most `timeout`.
    ///
    /// The command is started with `POST /api/bash/start_bash_command` and its output polled
    /// from `GET /api/bash/bash_events/search`, as the reference client does, so this works
    /// against any agent server. When the time is up the command is stopped and the result
    /// has exit code -1, `timeout_occurred: true` and `Command timed out after N seconds`
    /// appended to stderr. Transport and HTTP failures are errors, not results.
    pub async fn execute_command(
        &self,
        command: &str,
        cwd: Option<&str>,
        timeout: Duration,
    ) -> Result<CommandResult> {
        let seconds = timeout.as_secs_f64().ceil().max(1.0) as u64;
        let request = ExecuteBashRequest {
            command: command.to_owned(),
            cwd: cwd.map(posix),
            timeout: seconds,
        };
        let started: oh_protocol::BashCommand = self
            .http()
            .json(
                Method::POST,
                "/api/bash/start_bash_command",
                Some(&request),
                timeout + Duration::from_secs(5),
            )
            .await?;
        let command_id = started.id.to_string();
        let began = Instant::now();
        let deadline = began + timeout + KILL_GRACE;
        let mut output = Output::default();
        let mut pause = Duration::from_millis(2);
        let exit_code = loop {
            if let Some(code) = self.poll_output(&command_id, &mut output, timeout).await? {
                break Some(code);
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_INTERVAL);
        };
        let timed_out = match exit_code {
            None => {
                self.stop_command(&command_id).await;
                true
            }
            // The server reports its own kill as -1.
            Some(-1) => began.elapsed() >= timeout.min(Duration::from_secs(seconds)),
            Some(_) => false,
        };
        if timed_out {
            output
                .stderr
                .push_str(&format!("Command timed out after {} seconds", seconds));
        }
        Ok(CommandResult {
            command: command.to_owned(),
            exit_code: if timed_out {
                -1
            } else {
                exit_code.unwrap_or(-1)
            },
            stdout: output.stdout,
            stderr: output.stderr,
            timeout_occurred: timed_out,
        })
    }

    /// Reads new output chunks of a command; returns its exit code once reported.
    async fn poll_output(
        &self,
        command_id: &str,
        output: &mut Output,
        timeout: Duration,
    ) -> Result<Option<i64>> {
        loop {
            let order = output.last_order.map(|o| o.to_string());
            let mut pairs = vec![
                ("command_id__eq", command_id),
                ("sort_order", "TIMESTAMP"),
                ("limit", "100"),
                ("kind__eq", "BashOutput"),
            ];
            if let Some(order) = &order {
                pairs.push(("order__gt", order));
            }
            let path = format!("/api/bash/bash_events/search?{}", http::query(&pairs));
            let page: BashEventPage = self
                .http()
                .json(Method::GET, &path, None::<&()>, timeout.max(FILE_TIMEOUT))
                .await?;
            let full_page = page.items.len() >= 100;
            for item in page.items {
                let BashEvent::Output(chunk) = item else {
                    continue;
                };
                let id = chunk.id.to_string();
                if !output.seen.insert(id.clone()) {
                    return Err(Error::Protocol(format!(
                        "the server sent output {id} of command {command_id} twice"
                    )));
                }
                output.last_order = Some(
                    output
                        .last_order
                        .map_or(chunk.order, |o| o.max(chunk.order)),
                );
                output
                    .stdout
                    .push_str(chunk.stdout.as_deref().unwrap_or(""));
                output
                    .stderr
                    .push_str(chunk.stderr.as_deref().unwrap_or(""));
                if let Some(code) = chunk.exit_code {
                    return Ok(Some(code));
                }
            }
            if !full_page {
                return Ok(None);
            }
        }
    }

    /// Asks the server to stop a command (`POST /api/bash/bash_commands/{id}/stop`); servers
    /// without that route, or that already forgot the command, are fine.
    async fn stop_command(&self, command_id: &str) {
        let path = format!("/api/bash/bash_commands/{command_id}/stop");
        if let Err(e) = self
            .http()
            .call(Method::POST, &path, None, HEALTH_TIMEOUT)
            .await
        {
            tracing::debug!(error = %e, "stopping a timed-out command");
        }
    }

    /// Uploads the local file `source` to `destination` on the server, streaming it.
    ///
    /// A relative `destination` is taken relative to the working directory. The server
    /// creates missing parent directories. A relative path under a relative working
    /// directory is [`Error::RelativePath`], before any request.
    pub async fn file_upload(
        &self,
        source: impl AsRef<Path>,
        destination: &str,
    ) -> Result<FileOperationResult> {
        let source = source.as_ref();
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| Error::io(source, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io(source, e))?
            .len();
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "upload".to_owned());
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
        self.upload(
            stream,
            size,
            &name,
            source.display().to_string(),
            destination,
        )
        .await
    }

    /// Uploads `bytes` to `destination` on the server.
    pub async fn file_upload_bytes(
        &self,
        bytes: impl Into<Bytes>,
        destination: &str,
    ) -> Result<FileOperationResult> {
        let bytes: Bytes = bytes.into();
        let size = bytes.len() as u64;
        let stream = futures::stream::iter([Ok::<_, std::io::Error>(bytes)]);
        self.upload(stream, size, "upload", "<bytes>".to_owned(), destination)
            .await
    }

    async fn upload(
        &self,
        content: impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
        size: u64,
        file_name: &str,
        source: String,
        destination: &str,
    ) -> Result<FileOperationResult> {
        let destination = self.resolve_absolute(destination)?;
        let boundary = format!("----oh-client-{}", uuid::Uuid::new_v4().simple());
        let head = Bytes::from(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            quote_filename(file_name)
        ));
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        let length = head.len() as u64 + size + tail.len() as u64;
        let parts = futures::stream::iter([Ok(head)])
            .chain(content)
            .chain(futures::stream::iter([Ok(tail)]))
            .map(|chunk| chunk.map(Frame::data));
        let body = Exact {
            inner: StreamBody::new(parts).boxed_unsync(),
            length,
        }
        .boxed_unsync();
        let path = format!(
            "/api/file/upload?{}",
            http::query(&[("path", destination.as_str())])
        );
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let bytes = self
            .http()
            .call(
                Method::POST,
                &path,
                Some((body, &content_type)),
                FILE_TIMEOUT.max(self.read_timeout()),
            )
            .await?;
        let answer: serde_json::Value = http::decode(&path, &bytes)?;
        let success = answer
            .get("success")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(true);
        let file_size = answer
            .get("file_size")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(size);
        Ok(FileOperationResult {
            success,
            source_path: source,
            destination_path: destination,
            file_size: Some(file_size),
            error: None,
        })
    }

    /// Downloads `source` from the server into the local file `destination`, streaming it.
    ///
    /// A relative `source` is taken relative to the working directory ([`Error::RelativePath`]
    /// when that is relative too). Parent directories of `destination` are created. The file is written next to `destination` under a temporary
    /// name and renamed when complete, so a failed download never leaves a truncated file.
    pub async fn file_download(
        &self,
        source: &str,
        destination: impl AsRef<Path>,
    ) -> Result<FileOperationResult> {
        let destination = destination.as_ref();
        let source = self.resolve_absolute(source)?;
        let path = format!(
            "/api/file/download?{}",
            http::query(&[("path", source.as_str())])
        );
        let response = self
            .http()
            .send(Method::GET, &path, None, FILE_TIMEOUT, true)
            .await?;
        if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| Error::io(parent, e))?;
        }
        let partial = partial_name(destination);
        let written = async {
            let mut file = tokio::fs::File::create(&partial)
                .await
                .map_err(|e| Error::io(&partial, e))?;
            let mut body = response.into_body();
            let mut written = 0u64;
            loop {
                let frame = tokio::time::timeout(FILE_TIMEOUT, body.frame())
                    .await
                    .map_err(|_| Error::Timeout {
                        what: format!("reading {path}"),
                        after: FILE_TIMEOUT,
                    })?;
                let Some(frame) = frame else { break };
                let frame = frame.map_err(|e| Error::Connect {
                    url: format!("{}{path}", self.host()),
                    source: Box::new(e),
                })?;
                if let Ok(data) = frame.into_data() {
                    file.write_all(&data)
                        .await
                        .map_err(|e| Error::io(&partial, e))?;
                    written += data.len() as u64;
                }
            }
            file.flush().await.map_err(|e| Error::io(&partial, e))?;
            Ok::<_, Error>(written)
        }
        .await;
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        tokio::fs::rename(&partial, destination)
            .await
            .map_err(|e| Error::io(destination, e))?;
        Ok(FileOperationResult {
            success: true,
            source_path: source,
            destination_path: destination.display().to_string(),
            file_size: Some(written),
            error: None,
        })
    }

    /// Files changed in the git repository at `path` (`GET /api/git/changes`). A relative
    /// path is taken relative to the working directory.
    pub async fn git_changes(&self, path: &str) -> Result<Vec<GitChange>> {
        self.git("changes", path).await
    }

    /// The current and original content of the file at `path` (`GET /api/git/diff`). A
    /// relative path is taken relative to the working directory.
    pub async fn git_diff(&self, path: &str) -> Result<GitDiff> {
        self.git("diff", path).await
    }

    async fn git<T: serde::de::DeserializeOwned>(&self, route: &str, path: &str) -> Result<T> {
        let query = http::query(&[("path", self.resolve(path).as_str())]);
        let path = format!("/api/git/{route}?{query}");
        self.http()
            .json(Method::GET, &path, None::<&()>, FILE_TIMEOUT)
            .await
    }

    /// [`resolve`](Self::resolve)d for the file routes, which take absolute paths only: a
    /// relative result (a relative `path` under a relative working directory) is refused here,
    /// naming the working directory, rather than by the server with a bare 400.
    fn resolve_absolute(&self, path: &str) -> Result<String> {
        let resolved = self.resolve(path);
        if is_absolute(&resolved) {
            Ok(resolved)
        } else {
            Err(Error::RelativePath {
                path: path.to_owned(),
                working_dir: self.working_dir().to_owned(),
            })
        }
    }

    /// `path` if absolute (POSIX or Windows syntax), else joined to the working directory.
    fn resolve(&self, path: &str) -> String {
        if is_absolute(path) {
            return posix(path);
        }
        let joined: Vec<&str> = self
            .working_dir()
            .split(['/', '\\'])
            .chain(path.split(['/', '\\']))
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        let prefix = if self.working_dir().starts_with('/') {
            "/"
        } else {
            ""
        };
        format!("{prefix}{}", joined.join("/"))
    }
}

/// Output collected from a command's chunks.
#[derive(Debug, Default)]
struct Output {
    stdout: String,
    stderr: String,
    last_order: Option<u64>,
    seen: std::collections::HashSet<String>,
}

fn is_absolute(path: &str) -> bool {
    let b = path.as_bytes();
    path.starts_with('/')
        || path.starts_with("\\\\")
        || (b.len() >= 3
            && b[0].is_ascii_alphabetic()
            && b[1] == b':'
            && matches!(b[2], b'/' | b'\\'))
}

fn posix(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        path.replace('\\', "/")
    }
}

/// A multipart `filename` parameter: quotes, backslashes and line breaks escaped.
fn quote_filename(name: &str) -> String {
    name.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(['\r', '\n'], " ")
}

fn partial_name(destination: &Path) -> std::path::PathBuf {
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    destination.with_file_name(format!(".{name}.{}.partial", uuid::Uuid::new_v4().simple()))
}

/// A body of known length, so uploads carry `Content-Length` instead of chunked encoding.
struct Exact {
    inner: Body,
    length: u64,
}

impl hyper::body::Body for Exact {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_working_dir() {
        let ws = RemoteWorkspace::new("http://h", "/workspace/project/").unwrap();
        assert_eq!(ws.resolve("src/lib.rs"), "/workspace/project/src/lib.rs");
        assert_eq!(ws.resolve("./a\\b"), "/workspace/project/a/b");
        assert_eq!(ws.resolve("/etc/hosts"), "/etc/hosts");
        assert_eq!(ws.resolve("C:\\x\\y"), "C:/x/y");
        let relative = RemoteWorkspace::new("http://h", "workspace/project").unwrap();
        assert_eq!(relative.resolve("a"), "workspace/project/a");
    }

    #[tokio::test]
    async fn relative_file_paths_under_a_relative_working_dir_fail_before_any_request() {
        // Nothing listens on port 1: a request would fail with `Connect`, not `RelativePath`.
        let relative = RemoteWorkspace::new("http://127.0.0.1:1", "workspace/project").unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let local = scratch.path().join("up.txt");
        std::fs::write(&local, "x").unwrap();
        let upload = relative.file_upload(&local, "up.txt").await.unwrap_err();
        let download = relative
            .file_download("up.txt", scratch.path().join("down.txt"))
            .await
            .unwrap_err();
        for error in [upload, download] {
            let Error::RelativePath { path, working_dir } = &error else {
                panic!("expected RelativePath, got {error:?}");
            };
            assert_eq!(
                (path.as_str(), working_dir.as_str()),
                ("up.txt", "workspace/project")
            );
            assert!(error.to_string().contains("working_dir"), "{error}");
        }
        // An absolute path is sent as it is (and here fails to connect).
        let absolute = relative
            .file_upload(&local, "/tmp/up.txt")
            .await
            .unwrap_err();
        assert!(matches!(absolute, Error::Connect { .. }), "{absolute:?}");
    }

    #[test]
    fn filenames_are_quoted() {
        assert_eq!(quote_filename("a\"b\\c\nd"), "a\\\"b\\\\c d");
    }

    #[test]
    fn debug_never_shows_the_api_key() {
        let builder = RemoteWorkspace::builder("http://h:8000").api_key("sk-remote-4242");
        let workspace = builder.clone().build().unwrap();
        assert_eq!(workspace.api_key(), Some("sk-remote-4242"));
        for shown in [
            format!("{builder:?}"),
            format!("{builder:#?}"),
            format!("{workspace:?}"),
            format!("{workspace:#?}"),
        ] {
            assert!(!shown.contains("sk-remote-4242"), "{shown}");
            assert!(shown.contains("http://h:8000"), "{shown}");
        }
    }
}
