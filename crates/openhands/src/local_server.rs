//! [`LocalServer`]: the agent server in this process, on a free loopback port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use oh_protocol::SecretString;

use crate::error::{Error, Result};

/// An agent server running in this process on `127.0.0.1` and a free port: the Python SDK
/// examples' "local agent server", without a subprocess.
///
/// Its conversations, bash events and working directory live under a root directory: a fresh
/// temporary one (removed when the server is dropped) unless [`LocalServerBuilder::root_dir`]
/// names one. [`workspace`](Self::workspace) gives a [`RemoteWorkspace`] pointing at it, with
/// its API key, so everything goes through the real HTTP and WebSocket protocol.
///
/// Stop it with [`shutdown`](Self::shutdown) to wait for a graceful stop (running
/// conversations are paused and saved). Dropping it also asks the server to stop; the
/// temporary root is removed once the server has stopped.
///
/// ```no_run
/// # async fn demo() -> openhands::Result<()> {
/// use std::time::Duration;
/// use openhands::LocalServer;
///
/// let server = LocalServer::start().await?;
/// let workspace = server.workspace()?;
/// let result = workspace.execute_command("echo hi", None, Duration::from_secs(10)).await?;
/// assert_eq!(result.stdout, "hi\n");
/// server.shutdown().await?;
/// # Ok(()) }
/// ```
///
/// [`RemoteWorkspace`]: oh_client::RemoteWorkspace
#[derive(Debug)]
pub struct LocalServer {
    addr: SocketAddr,
    url: String,
    /// A [`SecretString`], so `Debug` never shows it.
    api_key: Option<SecretString>,
    root: PathBuf,
    working_dir: PathBuf,
    /// The temporary root, when the server owns one.
    temp: Option<tempfile::TempDir>,
    server: oh_server::Spawned,
}

/// Builds a [`LocalServer`]; see [`LocalServer::builder`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LocalServerBuilder {
    api_key: Option<SecretString>,
    root_dir: Option<PathBuf>,
    working_dir: Option<PathBuf>,
    port: u16,
}

impl LocalServerBuilder {
    /// Require this session API key (`X-Session-API-Key`); it also encrypts secrets at
    /// rest. None by default; an empty key means none.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.api_key = (!key.is_empty()).then(|| SecretString::new(key));
        self
    }

    /// Keep conversations and bash events under `dir` (created if missing, never removed)
    /// instead of a temporary directory, e.g. to restart on the same data.
    pub fn root_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root_dir = Some(dir.into());
        self
    }

    /// The workspace directory (created if missing; default `<root>/project`).
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Listen on this port instead of a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Prepares the directories, binds `127.0.0.1` and starts serving on the current tokio
    /// runtime.
    pub async fn start(self) -> Result<LocalServer> {
        let (root, temp) = match self.root_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                    path: dir.clone(),
                    source,
                })?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("openhands-server-")
                    .tempdir()
                    .map_err(|source| Error::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let root = std::path::absolute(&root).map_err(|source| Error::Io {
            path: root.clone(),
            source,
        })?;
        let mut config = oh_server::Config::under(&root);
        config.port = self.port;
        if let Some(dir) = self.working_dir {
            config.workspace_path = std::path::absolute(&dir)
                .map_err(|source| Error::Io { path: dir, source })?;
        }
        if let Some(key) = &self.api_key {
            config.session_api_keys = vec![key.clone()];
            config.secret_key = Some(key.clone());
        }
        let working_dir = config.workspace_path.clone();
        std::fs::create_dir_all(&working_dir).map_err(|source| Error::Io {
            path: working_dir.clone(),
            source,
        })?;
        let server = oh_server::Server::bind(config).await?.spawn();
        let addr = server.local_addr();
        Ok(LocalServer {
            addr,
            url: format!("http://{addr}"),
            api_key: self.api_key,
            root,
            working_dir,
            temp,
            server,
        })
    }
}

impl LocalServer {
    /// Starts a server without an API key, storing everything under a fresh temporary
    /// directory.
    pub async fn start() -> Result<Self> {
        Self::builder().start().await
    }

    /// Starts building a server with options.
    pub fn builder() -> LocalServerBuilder {
        LocalServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The session API key, if one is required.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_ref().map(SecretString::expose)
    }

    /// The root directory (conversations under `conversations/`, bash events under
    /// `bash_events/`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The workspace directory.
    pub fn working_dir(&self) -> &Path {
        &self.working_dir
    }

    /// A workspace on this server at its working directory, with its API key.
    pub fn workspace(&self) -> Result<oh_client::RemoteWorkspace> {
        let mut builder = oh_client::RemoteWorkspace::builder(self.url.clone())
            .working_dir(self.working_dir.to_string_lossy());
        if let Some(key) = &self.api_key {
            builder = builder.api_key(key.expose());
        }
        Ok(builder.build()?)
    }

    /// Stops the server gracefully: it stops accepting, closes event sockets, pauses
    /// running conversations and saves them, then the temporary root (if any) is removed.
    pub async fn shutdown(mut self) -> Result<()> {
        let result = match self.server.request_stop() {
            Some(task) => match task.await {
                Ok(result) => result.map_err(Error::from),
                Err(join) => Err(Error::Server(oh_server::ServerError::Io(
                    std::io::Error::other(join.to_string()),
                ))),
            },
            None => Ok(()),
        };
        if let Some(temp) = self.temp.take() {
            temp.close().map_err(|source| Error::Io {
                path: self.root.clone(),
                source,
            })?;
        }
        result
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let task = self.server.request_stop();
        let temp = self.temp.take();
        // Remove the temporary root only once the server has stopped writing to it.
        match (task, tokio::runtime::Handle::try_current()) {
            (Some(task), Ok(runtime)) => {
                runtime.spawn(async move {
                    let _ = task.await;
                    drop(temp);
                });
            }
            (task, _) => {
                if let Some(task) = task {
                    task.abort();
                }
                drop(temp);
            }
        }
    }
}
