//! `DockerWorkspace`: an OpenHands agent server in a container on the local Docker Engine,
//! driven through the Engine API (bollard, no docker CLI), and handed out as a
//! [`RemoteWorkspace`] pointing at it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), oh_workspace_docker::Error> {
//! use std::time::Duration;
//! use oh_workspace_docker::DockerWorkspace;
//!
//! let docker = DockerWorkspace::builder()
//!     .image("openhands-agent-server:latest")
//!     .start()
//!     .await?;
//! let result = docker
//!     .workspace()
//!     .execute_command("uname -a", None, Duration::from_secs(10))
//!     .await?;
//! println!("{}", result.stdout);
//! docker.cleanup().await?;
//! # Ok(()) }
//! ```
//!
//! The container gets a generated session API key and publishes its port on 127.0.0.1 only.
//! The key is held as a [`SecretString`], so no `Debug` output shows it.
//!
//! # No container leaks
//!
//! The container is removed by [`DockerWorkspace::cleanup`], when the workspace is dropped
//! (also while unwinding from a panic and on every early return), if starting fails, and when
//! the shutdown future given to [`DockerWorkspaceBuilder::cleanup_on`] completes. This crate
//! does not touch the process's signal handling unless asked: the application owns Ctrl-C and
//! SIGTERM. An application that handles them and lets its workspaces drop (or passes its
//! shutdown future to `cleanup_on`) leaves nothing behind; [`DockerWorkspaceBuilder::handle_ctrl_c`]
//! opts in to a handler that removes this process's containers and exits with 130.
//!
//! A process killed by a signal it does not handle (Ctrl-C without a handler, SIGTERM,
//! SIGKILL) cannot run destructors, so its container stays. Every container carries the label
//! [`LABEL`] (and [`OWNER_LABEL`] with the owner's pid), so [`sweep`] (or
//! `cargo xtask docker-sweep`) finds and removes such strays.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, LogsOptions,
    RemoveContainerOptions,
};
use futures::StreamExt;
use futures::future::{BoxFuture, Either, FutureExt as _, Shared};
pub use oh_client::RemoteWorkspace;
use oh_protocol::SecretString;
use tokio::time::Instant;

/// Label every container started here carries (value: `docker`).
pub const LABEL: &str = "org.openhands-rs.workspace";

/// Label with the id of the process that started the container.
pub const OWNER_LABEL: &str = "org.openhands-rs.owner-pid";

/// The image `cargo xtask image` builds.
pub const DEFAULT_IMAGE: &str = "openhands-agent-server:latest";

/// The port the agent server listens on inside the container.
const CONTAINER_PORT: u16 = 8000;

/// Lines of container logs kept in errors.
const LOG_TAIL: &str = "60";

/// Why a Docker workspace could not be started or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Docker Engine did not answer (the cause: connecting, agreeing on an API version or
    /// the ping).
    #[error("the Docker Engine is not reachable; is the daemon running and its socket readable?")]
    DaemonUnreachable(#[source] bollard::errors::Error),
    /// The image is not in the local image store (nothing is pulled).
    #[error("image {image} is not in the local image store{}", image_hint(image))]
    ImageMissing {
        /// The image asked for.
        image: String,
    },
    /// The container stopped before the server was ready.
    #[error(
        "container {name} stopped before the agent server was ready (exit code {exit_code:?}); its logs:\n{logs}"
    )]
    ContainerExited {
        /// Container name.
        name: String,
        /// Exit code, if known.
        exit_code: Option<i64>,
        /// The last lines of its logs.
        logs: String,
    },
    /// The server did not answer `/health` in time.
    #[error("the agent server in {name} was not healthy after {after:?}; its logs:\n{logs}")]
    Unhealthy {
        /// Container name.
        name: String,
        /// Time allowed.
        after: Duration,
        /// The last lines of its logs.
        logs: String,
    },
    /// The workspace's container is gone (cleaned up).
    #[error("the container of this workspace is not running")]
    NotRunning,
    /// An option cannot be used (a relative `working_dir`, a zero timeout, a `working_dir`
    /// the container's user cannot write).
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// No free port on 127.0.0.1 for a host-network container.
    #[error("no free loopback port for the host-network container")]
    NoFreePort(#[source] std::io::Error),
    /// The Engine published no host port for the container's server port.
    #[error("the Engine published no host port for {port} of container {name}")]
    NoHostPort {
        /// Container name.
        name: String,
        /// The container port, e.g. `8000/tcp`.
        port: String,
    },
    /// Building the image from a checkout failed.
    #[error("building the agent-server image failed: {reason}")]
    ImageBuild {
        /// What failed.
        reason: String,
        /// The cause, when a process could not be run or a directory read.
        #[source]
        source: Option<std::io::Error>,
    },
    /// Any other Engine API error (the Engine's error is the source).
    #[error("the Docker Engine refused a request")]
    Docker(#[source] bollard::errors::Error),
    /// The agent server's client failed.
    #[error(transparent)]
    Client(#[from] oh_client::Error),
}

/// How to get a missing image: the default one is built from a checkout of this project,
/// any other comes from wherever its user builds or pulls it.
fn image_hint(image: &str) -> String {
    if image == DEFAULT_IMAGE {
        " (build it from a checkout of openhands-rs with `cargo xtask image`, or choose \
         another with `DockerWorkspace::builder().image(...)`)"
            .to_owned()
    } else {
        " (pull or build it first; the Docker workspace never pulls)".to_owned()
    }
}

impl From<bollard::errors::Error> for Error {
    fn from(error: bollard::errors::Error) -> Self {
        Self::Docker(error)
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Connects to the local Engine (`DOCKER_HOST` or the default socket) and agrees on an API
/// version both sides speak.
pub async fn connect() -> Result<Docker> {
    let docker = Docker::connect_with_local_defaults().map_err(Error::DaemonUnreachable)?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(Error::DaemonUnreachable)?;
    docker.ping().await.map_err(Error::DaemonUnreachable)?;
    Ok(docker)
}

/// Ids and names of every container labelled [`LABEL`] (any state), or only of those started
/// by the process `owner`.
pub async fn containers(owner: Option<u32>) -> Result<Vec<(String, String)>> {
    let docker = connect().await?;
    let mut filter = vec![format!("{LABEL}=docker")];
    if let Some(pid) = owner {
        filter.push(format!("{OWNER_LABEL}={pid}"));
    }
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("label".to_owned(), filter)])),
        ..ListContainersOptions::default()
    };
    Ok(docker
        .list_containers(Some(options))
        .await?
        .into_iter()
        .filter_map(|c| {
            let id = c.id?;
            let name = c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_else(|| id.clone());
            Some((id, name.trim_start_matches('/').to_owned()))
        })
        .collect())
}

/// Removes every container labelled [`LABEL`] (all of them, or only those started by the
/// process `owner`). Returns the names removed.
pub async fn sweep(owner: Option<u32>) -> Result<Vec<String>> {
    let docker = connect().await?;
    let mut removed = Vec::new();
    for (id, name) in containers(owner).await? {
        force_remove(&docker, &id).await?;
        removed.push(name);
    }
    Ok(removed)
}

/// The owner process ids of every container labelled [`LABEL`].
pub async fn owners() -> Result<Vec<u32>> {
    let docker = connect().await?;
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL}=docker")],
        )])),
        ..ListContainersOptions::default()
    };
    let mut pids: Vec<u32> = docker
        .list_containers(Some(options))
        .await?
        .into_iter()
        .filter_map(|c| c.labels?.get(OWNER_LABEL)?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Removes a container and its anonymous volumes, running or not; one already gone (or being
/// removed) is not an error.
pub async fn force_remove(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..RemoveContainerOptions::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        // Already gone: nothing leaks.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // Another caller is removing it: done once it is gone, so that "removed" means gone
        // for every caller (a listing right after must not show it).
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => {
            let deadline = tokio::time::Instant::now() + REMOVAL_WAIT;
            loop {
                match docker.inspect_container(id, None).await {
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => return Ok(()),
                    Err(e) => return Err(e.into()),
                    Ok(_) if tokio::time::Instant::now() >= deadline => {
                        tracing::warn!(id, "a concurrent removal did not finish in time");
                        return Ok(());
                    }
                    Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// How long [`force_remove`] waits for a removal another caller started.
const REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Containers of this process still running, for the opt-in Ctrl-C handler.
fn live() -> &'static Mutex<BTreeMap<String, ()>> {
    static LIVE: OnceLock<Mutex<BTreeMap<String, ()>>> = OnceLock::new();
    LIVE.get_or_init(Mutex::default)
}

fn track(id: &str, on: bool) {
    let mut live = live().lock().unwrap_or_else(PoisonError::into_inner);
    if on {
        live.insert(id.to_owned(), ());
    } else {
        live.remove(id);
    }
}

/// On the first Ctrl-C, removes this process's containers, then exits with status 130. Only
/// installed by [`DockerWorkspaceBuilder::handle_ctrl_c`]`(true)`.
fn install_ctrl_c_handler() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        let ids: Vec<String> = live()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        if let Ok(docker) = connect().await {
            for id in ids {
                let _ = force_remove(&docker, &id).await;
            }
        }
        #[allow(
            clippy::exit,
            reason = "opted in: Ctrl-C ends the process, as it would without a handler"
        )]
        std::process::exit(130);
    });
}

/// The application's shutdown signal, shared by the clones of a builder.
#[derive(Clone)]
struct ShutdownSignal(Shared<BoxFuture<'static, ()>>);

impl std::fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShutdownSignal")
    }
}

/// Builds and starts a [`DockerWorkspace`].
///
/// Keys and the values of [`env`](Self::env) are held as [`SecretString`]s: `Debug` shows
/// the variables' names only.
#[derive(Debug, Clone)]
#[must_use]
pub struct DockerWorkspaceBuilder {
    image: String,
    host_port: Option<u16>,
    bind_address: String,
    forward_env: Vec<String>,
    env: Vec<(String, SecretString)>,
    volumes: Vec<String>,
    network: Option<String>,
    platform: Option<String>,
    detach_logs: bool,
    extra_ports: bool,
    working_dir: String,
    health_check_timeout: Duration,
    keep_alive: bool,
    handle_ctrl_c: bool,
    cleanup_on: Option<ShutdownSignal>,
    api_key: Option<SecretString>,
    nofile: Option<i64>,
    host: Option<String>,
    cleanup_image: bool,
}

impl Default for DockerWorkspaceBuilder {
    fn default() -> Self {
        Self {
            image: DEFAULT_IMAGE.to_owned(),
            host_port: None,
            bind_address: "127.0.0.1".to_owned(),
            forward_env: vec!["DEBUG".to_owned()],
            env: Vec::new(),
            volumes: Vec::new(),
            network: None,
            platform: None,
            detach_logs: true,
            extra_ports: false,
            working_dir: "/workspace/project".to_owned(),
            health_check_timeout: Duration::from_secs(120),
            keep_alive: false,
            handle_ctrl_c: false,
            cleanup_on: None,
            api_key: None,
            nofile: None,
            host: None,
            cleanup_image: false,
        }
    }
}

impl DockerWorkspaceBuilder {
    /// The agent-server image (default [`DEFAULT_IMAGE`]).
    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// Publish the server on this host port (default: a free one the Engine picks).
    pub fn host_port(mut self, port: u16) -> Self {
        self.host_port = Some(port);
        self
    }

    /// Host address the ports are published on (default `127.0.0.1`).
    pub fn bind_address(mut self, address: impl Into<String>) -> Self {
        self.bind_address = address.into();
        self
    }

    /// Copy these variables from this process's environment into the container, when set
    /// (default: `DEBUG`).
    pub fn forward_env(mut self, names: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.forward_env = names.into_iter().map(Into::into).collect();
        self
    }

    /// Set a variable in the container.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), SecretString::new(value)));
        self
    }

    /// A bind mount or volume, as `docker run -v` takes it (`/host/dir:/workspace`).
    pub fn volume(mut self, spec: impl Into<String>) -> Self {
        self.volumes.push(spec.into());
        self
    }

    /// Mount a host directory as the working directory's parent (`/workspace`); the
    /// reference's removed `mount_dir`, kept as a shortcut.
    pub fn mount_dir(self, host_dir: impl AsRef<std::path::Path>) -> Self {
        let spec = format!("{}:/workspace", host_dir.as_ref().display());
        self.volume(spec)
    }

    /// The container's network (`--network`). With `host` the server shares the host's
    /// network and listens on a free loopback port.
    pub fn network(mut self, network: impl Into<String>) -> Self {
        self.network = Some(network.into());
        self
    }

    /// Image platform, e.g. `linux/amd64` (default: the Engine's).
    pub fn platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// Forward the container's logs to `tracing` (target `oh_workspace_docker::container`,
    /// default on).
    pub fn detach_logs(mut self, on: bool) -> Self {
        self.detach_logs = on;
        self
    }

    /// Also publish ports 8001 (VS Code) and 8002 (VNC), as the reference's `extra_ports`.
    pub fn extra_ports(mut self, on: bool) -> Self {
        self.extra_ports = on;
        self
    }

    /// The workspace directory inside the container (default `/workspace/project`).
    pub fn working_dir(mut self, dir: impl Into<String>) -> Self {
        self.working_dir = dir.into();
        self
    }

    /// Time allowed for the server to answer `/health` (default 120 s).
    pub fn health_check_timeout(mut self, timeout: Duration) -> Self {
        self.health_check_timeout = timeout;
        self
    }

    /// Leave the container running when the workspace is dropped (default off).
    pub fn keep_alive(mut self, on: bool) -> Self {
        self.keep_alive = on;
        self
    }

    /// Take over Ctrl-C (SIGINT) for the whole process: on the first one, remove this
    /// process's containers and exit with status 130 (default off). Only for programs that
    /// have no Ctrl-C handling of their own; an application that has one should let its
    /// workspaces drop or use [`cleanup_on`](Self::cleanup_on) instead.
    pub fn handle_ctrl_c(mut self, on: bool) -> Self {
        self.handle_ctrl_c = on;
        self
    }

    /// Remove the container when `shutdown` completes (its output is ignored): the
    /// application's own shutdown signal, as in axum's `with_graceful_shutdown`. The future is
    /// watched from the container's creation on (also while `start` waits for health), and
    /// it removes the container even with [`keep_alive`](Self::keep_alive). Nothing watches
    /// it any more once the workspace is gone. Clones of the builder share the future, so
    /// one signal removes the containers of all of them (and a `start` after it completed
    /// fails: its container is removed right after creation).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), oh_workspace_docker::Error> {
    /// let shutdown = tokio::sync::watch::channel(false);
    /// let mut stopping = shutdown.0.subscribe();
    /// let workspace = oh_workspace_docker::DockerWorkspace::builder()
    ///     .cleanup_on(async move { let _ = stopping.wait_for(|s| *s).await; })
    ///     .start()
    ///     .await?;
    /// // … later, the application shuts down:
    /// shutdown.0.send_replace(true);
    /// # Ok(()) }
    /// ```
    pub fn cleanup_on<F>(mut self, shutdown: F) -> Self
    where
        F: std::future::Future + Send + 'static,
    {
        let signal = async move {
            let _ = shutdown.await;
        };
        self.cleanup_on = Some(ShutdownSignal(signal.boxed().shared()));
        self
    }

    /// Raise the container's open-files limit (`--ulimit nofile=N:N`; the reference always
    /// asks for 65536). Off by default: engines in sandboxes and rootless engines may refuse
    /// to raise limits, and the container would not start.
    pub fn nofile_limit(mut self, limit: u32) -> Self {
        self.nofile = Some(i64::from(limit));
        self
    }

    /// Reach the server at this URL instead of `http://127.0.0.1:<port>` (an engine on
    /// another machine, a proxy in front of it).
    pub fn host(mut self, url: impl Into<String>) -> Self {
        self.host = Some(url.into());
        self
    }

    /// Also remove the image when the workspace is cleaned up (default off).
    pub fn cleanup_image(mut self, on: bool) -> Self {
        self.cleanup_image = on;
        self
    }

    /// Use this session API key instead of a generated one.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(SecretString::new(key));
        self
    }

    /// Starts the container and waits until its agent server is healthy. If anything fails
    /// after the container was created, the container is removed before the error returns.
    pub async fn start(self) -> Result<DockerWorkspace> {
        if !self.working_dir.starts_with('/') {
            return Err(Error::InvalidOption(format!(
                "working_dir {:?} must be an absolute path in the container",
                self.working_dir
            )));
        }
        if self.health_check_timeout.is_zero() {
            return Err(Error::InvalidOption(
                "health_check_timeout must be positive".into(),
            ));
        }
        let docker = connect().await?;
        if docker.inspect_image(&self.image).await.is_err() {
            return Err(Error::ImageMissing { image: self.image });
        }
        let name = format!("agent-server-{}", uuid::Uuid::new_v4().simple());
        let api_key = self
            .api_key
            .clone()
            .unwrap_or_else(|| SecretString::new(format!("oh-{}", uuid::Uuid::new_v4().simple())));
        let host_network = self.network.as_deref() == Some("host");
        let inner_port = if host_network {
            match self.host_port {
                Some(port) => port,
                None => free_loopback_port().await?,
            }
        } else {
            CONTAINER_PORT
        };
        let body = self.container_body(&api_key, host_network, inner_port);
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            platform: self.platform.clone().unwrap_or_default(),
        };
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => Error::ImageMissing {
                    image: self.image.clone(),
                },
                other => other.into(),
            })?;
        let id = created.id;
        track(&id, true);
        if self.handle_ctrl_c {
            install_ctrl_c_handler();
        }
        let (watching, unwatched) = tokio::sync::oneshot::channel::<()>();
        let guard = Arc::new(Container {
            docker: docker.clone(),
            id: id.clone(),
            name: name.clone(),
            removed: AtomicBool::new(false),
            keep_alive: self.keep_alive,
            _watching: watching,
        });
        // From here on, `guard` removes the container on every early return.
        if let Some(shutdown) = self.cleanup_on.clone() {
            tokio::spawn(remove_on(shutdown, Arc::downgrade(&guard), unwatched));
        }
        docker.start_container(&id, None).await?;
        let host_port = if host_network {
            inner_port
        } else {
            published_port(&docker, &id, &name, CONTAINER_PORT).await?
        };
        let log_task = self
            .detach_logs
            .then(|| tokio::spawn(forward_logs(docker.clone(), id.clone(), name.clone())));
        let address = if host_network || self.bind_address == "0.0.0.0" {
            "127.0.0.1".to_owned()
        } else {
            self.bind_address.clone()
        };
        let url = self
            .host
            .clone()
            .unwrap_or_else(|| format!("http://{address}:{host_port}"));
        let remote = RemoteWorkspace::builder(url)
            .api_key(api_key.expose())
            .working_dir(&self.working_dir)
            .build()?;
        let workspace = DockerWorkspace {
            remote,
            container: guard,
            host_port,
            image: self.image.clone(),
            log_task: Mutex::new(log_task),
            health_check_timeout: self.health_check_timeout,
            cleanup_image: self.cleanup_image,
        };
        workspace.wait_healthy().await?;
        workspace.prepare_working_dir().await?;
        Ok(workspace)
    }

    fn container_body(
        &self,
        api_key: &SecretString,
        host_network: bool,
        port: u16,
    ) -> ContainerCreateBody {
        let mut env: Vec<String> = self
            .forward_env
            .iter()
            .filter_map(|name| std::env::var(name).ok().map(|v| format!("{name}={v}")))
            .collect();
        env.extend(self.env.iter().map(|(k, v)| format!("{k}={}", v.expose())));
        env.push(format!("SESSION_API_KEY={}", api_key.expose()));
        let mut labels = HashMap::from([
            (LABEL.to_owned(), "docker".to_owned()),
            (OWNER_LABEL.to_owned(), std::process::id().to_string()),
        ]);
        labels.insert("org.openhands-rs.image".to_owned(), self.image.clone());
        let mut host_config = HostConfig {
            binds: (!self.volumes.is_empty()).then(|| self.volumes.clone()),
            network_mode: self.network.clone(),
            ulimits: self.nofile.map(|n| {
                vec![ResourcesUlimits {
                    name: Some("nofile".to_owned()),
                    soft: Some(n),
                    hard: Some(n),
                }]
            }),
            ..HostConfig::default()
        };
        let (exposed, host) = if host_network {
            (None, "127.0.0.1")
        } else {
            let mut ports = vec![(CONTAINER_PORT, self.host_port)];
            if self.extra_ports {
                let next = |n: u16| self.host_port.map(|p| p + n);
                ports.push((CONTAINER_PORT + 1, next(1)));
                ports.push((CONTAINER_PORT + 2, next(2)));
            }
            let bindings = ports
                .iter()
                .map(|(inner, outer)| {
                    (
                        format!("{inner}/tcp"),
                        Some(vec![PortBinding {
                            host_ip: Some(self.bind_address.clone()),
                            host_port: Some(outer.map(|p| p.to_string()).unwrap_or_default()),
                        }]),
                    )
                })
                .collect();
            host_config.port_bindings = Some(bindings);
            (
                Some(ports.iter().map(|(p, _)| format!("{p}/tcp")).collect()),
                "0.0.0.0",
            )
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: Some(vec![
                "--host".to_owned(),
                host.to_owned(),
                "--port".to_owned(),
                port.to_string(),
            ]),
            env: Some(env),
            labels: Some(labels),
            exposed_ports: exposed,
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        }
    }
}

/// Removes the container when `shutdown` completes; ends without doing anything once the
/// container's guard is gone (`unwatched` resolves when the guard drops its sender).
async fn remove_on(
    shutdown: ShutdownSignal,
    container: std::sync::Weak<Container>,
    unwatched: tokio::sync::oneshot::Receiver<()>,
) {
    if let Either::Left(((), _)) = futures::future::select(shutdown.0, unwatched).await
        && let Some(container) = container.upgrade()
    {
        tracing::info!(container = %container.name, "shutdown: removing the container");
        if let Err(e) = container.remove().await {
            tracing::warn!(container = %container.name, "removing the container: {e}");
        }
    }
}

/// A free port on 127.0.0.1 (bound, then released), for host-network containers.
async fn free_loopback_port() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(Error::NoFreePort)?;
    let port = listener.local_addr().map_err(Error::NoFreePort)?.port();
    Ok(port)
}

/// The host port the Engine published the container's TCP port `container_port` on. A
/// container that already stopped has none: that is [`Error::ContainerExited`], with its logs.
pub async fn published_port(
    docker: &Docker,
    id: &str,
    name: &str,
    container_port: u16,
) -> Result<u16> {
    let info = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await?;
    let key = format!("{container_port}/tcp");
    let port = info
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|mut ports| ports.remove(&key))
        .flatten()
        .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port))
        .and_then(|p| p.parse().ok());
    if let Some(port) = port {
        return Ok(port);
    }
    let state = info.state.unwrap_or_default();
    if state.running != Some(true) {
        return Err(Error::ContainerExited {
            name: name.to_owned(),
            exit_code: state.exit_code,
            logs: tail_logs(docker, id).await,
        });
    }
    Err(Error::NoHostPort {
        name: name.to_owned(),
        port: key,
    })
}

async fn forward_logs(docker: Docker, id: String, name: String) {
    let options = LogsOptions {
        follow: true,
        stdout: true,
        stderr: true,
        tail: "all".to_owned(),
        ..LogsOptions::default()
    };
    let mut logs = docker.logs(&id, Some(options));
    while let Some(Ok(line)) = logs.next().await {
        let text = line.to_string();
        for line in text.lines() {
            tracing::info!(target: "oh_workspace_docker::container", container = %name, "{line}");
        }
    }
}

/// The last lines of a container's logs (stdout and stderr), or what could be read of them.
pub async fn tail_logs(docker: &Docker, id: &str) -> String {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        tail: LOG_TAIL.to_owned(),
        ..LogsOptions::default()
    };
    let mut out = String::new();
    let mut logs = docker.logs(id, Some(options));
    while let Some(Ok(chunk)) = logs.next().await {
        out.push_str(&chunk.to_string());
    }
    out
}

/// The container of a workspace; removing it is idempotent and happens on drop at the latest.
#[derive(Debug)]
struct Container {
    docker: Docker,
    id: String,
    name: String,
    removed: AtomicBool,
    keep_alive: bool,
    /// Dropped with the guard, which ends the [`cleanup_on`](DockerWorkspaceBuilder::cleanup_on)
    /// watcher.
    _watching: tokio::sync::oneshot::Sender<()>,
}

impl Container {
    async fn remove(&self) -> Result<()> {
        if self.removed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let result = force_remove(&self.docker, &self.id).await;
        track(&self.id, false);
        result
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if self.keep_alive || self.removed.load(Ordering::SeqCst) {
            return;
        }
        // Drop cannot await; a short-lived thread with its own runtime removes the
        // container (this also runs while unwinding from a panic).
        let id = self.id.clone();
        oh_client::block_on_own_thread(async move {
            if let Ok(docker) = connect().await {
                let _ = force_remove(&docker, &id).await;
            }
        });
        track(&self.id, false);
    }
}

/// An agent server in a Docker container. The container's methods (pause, resume, logs,
/// cleanup) are here; the server is used through [`workspace`](Self::workspace), the
/// [`RemoteWorkspace`] pointing at it, like any remote workspace (also as
/// `AsRef<RemoteWorkspace>` and `RemoteWorkspace::from(&docker)`).
///
/// It does not `Deref` to the `RemoteWorkspace`: a handle that owns a container is not a
/// smart pointer to a client, and through `Deref` one value answered with two error types
/// (the container's calls with [`Error`], the server's with `oh_client::Error`) while its
/// docs listed none of the server's methods. The hop through `workspace()` says which of the
/// two a call reaches.
#[derive(Debug)]
pub struct DockerWorkspace {
    remote: RemoteWorkspace,
    container: Arc<Container>,
    host_port: u16,
    image: String,
    log_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    health_check_timeout: Duration,
    cleanup_image: bool,
}

impl AsRef<RemoteWorkspace> for DockerWorkspace {
    fn as_ref(&self) -> &RemoteWorkspace {
        &self.remote
    }
}

/// A clone of the remote workspace (cheap: clones share one connection pool); the container
/// stays owned by the `DockerWorkspace`, which removes it.
impl From<&DockerWorkspace> for RemoteWorkspace {
    fn from(docker: &DockerWorkspace) -> Self {
        docker.remote.clone()
    }
}

impl DockerWorkspace {
    /// Starts building a workspace with the reference's defaults.
    pub fn builder() -> DockerWorkspaceBuilder {
        DockerWorkspaceBuilder::default()
    }

    /// The remote workspace pointing at the container's server: commands, files, git,
    /// health, conversations (`RemoteConversation::builder(docker.workspace())`).
    pub fn workspace(&self) -> &RemoteWorkspace {
        &self.remote
    }

    /// The container id.
    pub fn container_id(&self) -> &str {
        &self.container.id
    }

    /// Creates the working directory as the container's user (the agent server's), so that
    /// one that cannot be created or written fails `start` with its path instead of a later
    /// upload or conversation. The path is an argument, never part of a shell string.
    async fn prepare_working_dir(&self) -> Result<()> {
        use bollard::exec::{CreateExecOptions, StartExecResults};

        let dir = self.remote.working_dir().to_owned();
        let docker = &self.container.docker;
        let exec = docker
            .create_exec(
                &self.container.id,
                CreateExecOptions {
                    cmd: Some(vec![
                        "sh",
                        "-c",
                        "mkdir -p -- \"$1\" && test -w \"$1\" || { echo \"$1 is not writable\" >&2; exit 1; }",
                        "sh",
                        dir.as_str(),
                    ]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut stream, ..
        } = docker.start_exec(&exec.id, None).await?
        {
            while let Some(chunk) = stream.next().await {
                output.push_str(&chunk?.to_string());
            }
        }
        let exit_code = docker.inspect_exec(&exec.id).await?.exit_code;
        if exit_code == Some(0) {
            return Ok(());
        }
        Err(Error::InvalidOption(format!(
            "working_dir {dir} cannot be created or written by the container's user ({}; \
             container {} removed)",
            output.trim(),
            self.container.name
        )))
    }

    /// The container name (`agent-server-<hex>`).
    pub fn container_name(&self) -> &str {
        &self.container.name
    }

    /// The host port the server is reached on.
    pub fn host_port(&self) -> u16 {
        self.host_port
    }

    /// The image the container runs.
    pub fn image(&self) -> &str {
        &self.image
    }

    fn check_running(&self) -> Result<()> {
        if self.container.removed.load(Ordering::SeqCst) {
            return Err(Error::NotRunning);
        }
        Ok(())
    }

    /// Polls `/health` until it answers; fails early (with the logs) if the container stops.
    async fn wait_healthy(&self) -> Result<()> {
        let docker = &self.container.docker;
        let deadline = Instant::now() + self.health_check_timeout;
        let mut pause = Duration::from_millis(10);
        loop {
            if self.remote.alive().await {
                return Ok(());
            }
            let info = docker
                .inspect_container(&self.container.id, None::<InspectContainerOptions>)
                .await?;
            let state = info.state.unwrap_or_default();
            if state.running != Some(true) && state.paused != Some(true) {
                return Err(Error::ContainerExited {
                    name: self.container.name.clone(),
                    exit_code: state.exit_code,
                    logs: tail_logs(docker, &self.container.id).await,
                });
            }
            if Instant::now() >= deadline {
                return Err(Error::Unhealthy {
                    name: self.container.name.clone(),
                    after: self.health_check_timeout,
                    logs: tail_logs(docker, &self.container.id).await,
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Freezes the container (`docker pause`).
    pub async fn pause(&self) -> Result<()> {
        self.check_running()?;
        Ok(self
            .container
            .docker
            .pause_container(&self.container.id)
            .await?)
    }

    /// Thaws the container and waits until its server is healthy again.
    pub async fn resume(&self) -> Result<()> {
        self.check_running()?;
        self.container
            .docker
            .unpause_container(&self.container.id)
            .await?;
        self.wait_healthy().await
    }

    /// The container's last log lines.
    pub async fn logs(&self) -> String {
        tail_logs(&self.container.docker, &self.container.id).await
    }

    /// Stops and removes the container (also a kept-alive one), and the image if asked
    /// with `cleanup_image`. Idempotent.
    pub async fn cleanup(&self) -> Result<()> {
        if let Some(task) = self
            .log_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
        self.container.remove().await?;
        if self.cleanup_image {
            let options = bollard::query_parameters::RemoveImageOptions {
                force: true,
                ..Default::default()
            };
            if let Err(e) = self
                .container
                .docker
                .remove_image(&self.image, Some(options), None)
                .await
            {
                tracing::warn!(image = %self.image, "removing the image: {e}");
            }
        }
        Ok(())
    }
}

/// Builds the agent-server image from a checkout of this repository (`cargo xtask image`),
/// then starts a [`DockerWorkspace`] on it: the reference's `DockerDevWorkspace`.
///
/// ```no_run
/// # async fn demo() -> Result<(), oh_workspace_docker::Error> {
/// let workspace = oh_workspace_docker::DockerDevWorkspace::builder()
///     .tag("openhands-agent-server:dev")
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct DockerDevWorkspace {
    checkout: Option<std::path::PathBuf>,
    tag: String,
    workspace: DockerWorkspaceBuilder,
}

impl DockerDevWorkspace {
    /// A dev workspace: checkout found from the current directory, tag
    /// `openhands-agent-server:dev`.
    pub fn builder() -> Self {
        Self {
            checkout: None,
            tag: "openhands-agent-server:dev".to_owned(),
            workspace: DockerWorkspaceBuilder::default(),
        }
    }

    /// The checkout to build from (default: the nearest directory, from the current one up,
    /// holding `xtask/` and a `Cargo.toml`).
    pub fn checkout(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.checkout = Some(dir.into());
        self
    }

    /// The tag of the built image.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    /// Options of the workspace started on the built image (its image is replaced).
    pub fn workspace(mut self, builder: DockerWorkspaceBuilder) -> Self {
        self.workspace = builder;
        self
    }

    /// Builds the image (its progress goes to this process's stdout and stderr), then starts
    /// the workspace.
    pub async fn start(self) -> Result<DockerWorkspace> {
        let checkout = match self.checkout {
            Some(dir) => dir,
            None => find_checkout()?,
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = tokio::process::Command::new(cargo)
            .current_dir(&checkout)
            .args(["xtask", "image", "--tag", &self.tag])
            .status()
            .await
            .map_err(|e| Error::ImageBuild {
                reason: "cannot run cargo".to_owned(),
                source: Some(e),
            })?;
        if !status.success() {
            return Err(Error::ImageBuild {
                reason: format!(
                    "`cargo xtask image --tag {}` in {} ended with {status}",
                    self.tag,
                    checkout.display()
                ),
                source: None,
            });
        }
        self.workspace.image(self.tag).start().await
    }
}

/// The nearest directory from the current one up that holds `xtask/` and `Cargo.toml`.
fn find_checkout() -> Result<std::path::PathBuf> {
    let start = std::env::current_dir().map_err(|e| Error::ImageBuild {
        reason: "no current directory".to_owned(),
        source: Some(e),
    })?;
    start
        .ancestors()
        .find(|dir| dir.join("xtask").is_dir() && dir.join("Cargo.toml").is_file())
        .map(std::path::Path::to_path_buf)
        .ok_or_else(|| Error::ImageBuild {
            reason: format!(
                "no openhands-rs checkout at or above {}; pass one with `checkout`",
                start.display()
            ),
            source: None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_publishes_on_loopback_with_a_key() {
        let builder = DockerWorkspace::builder()
            .env("A", "1")
            .volume("/tmp:/workspace")
            .extra_ports(true)
            .host_port(30000);
        let body = builder.container_body(&"key-1".into(), false, CONTAINER_PORT);
        let env = body.env.unwrap_or_default();
        assert!(env.contains(&"A=1".to_owned()));
        assert!(env.contains(&"SESSION_API_KEY=key-1".to_owned()));
        assert_eq!(
            body.cmd.unwrap_or_default(),
            ["--host", "0.0.0.0", "--port", "8000"]
        );
        let host = body.host_config.unwrap_or_default();
        let ports = host.port_bindings.unwrap_or_default();
        let binding = |p: &str| ports.get(p).cloned().flatten().unwrap_or_default()[0].clone();
        assert_eq!(binding("8000/tcp").host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(binding("8000/tcp").host_port.as_deref(), Some("30000"));
        assert_eq!(binding("8002/tcp").host_port.as_deref(), Some("30002"));
        assert_eq!(host.binds.unwrap_or_default(), ["/tmp:/workspace"]);
        let labels = body.labels.unwrap_or_default();
        assert_eq!(labels.get(LABEL).map(String::as_str), Some("docker"));
    }

    #[test]
    fn host_networking_listens_on_loopback_without_publishing() {
        let builder = DockerWorkspace::builder().network("host");
        let body = builder.container_body(&"k".into(), true, 31234);
        assert_eq!(
            body.cmd.unwrap_or_default(),
            ["--host", "127.0.0.1", "--port", "31234"]
        );
        assert!(body.exposed_ports.is_none());
        assert!(body.host_config.unwrap_or_default().port_bindings.is_none());
    }

    #[test]
    fn a_free_port_is_left_to_the_engine() {
        let body = DockerWorkspace::builder().container_body(&"k".into(), false, CONTAINER_PORT);
        let ports = body
            .host_config
            .and_then(|h| h.port_bindings)
            .unwrap_or_default();
        let bindings = ports.get("8000/tcp").cloned().flatten().unwrap_or_default();
        assert_eq!(bindings[0].host_port.as_deref(), Some(""));
    }

    /// An Engine client that never connects: its socket path is a plain file that is gone
    /// by the time anything connects.
    fn offline_docker() -> Docker {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        std::fs::write(&socket, "").unwrap();
        Docker::connect_with_unix(&socket.to_string_lossy(), 1, bollard::API_DEFAULT_VERSION)
            .unwrap()
    }

    /// A guard for a container that does not exist; `keep_alive` keeps its `Drop` away
    /// from the Engine.
    fn offline_container() -> (Arc<Container>, tokio::sync::oneshot::Receiver<()>) {
        let (watching, unwatched) = tokio::sync::oneshot::channel();
        let container = Arc::new(Container {
            docker: offline_docker(),
            id: "0123456789ab".to_owned(),
            name: "agent-server-test".to_owned(),
            removed: AtomicBool::new(false),
            keep_alive: true,
            _watching: watching,
        });
        (container, unwatched)
    }

    fn assert_hidden(shown: &str, secrets: &[&str]) {
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn the_default_builder_takes_over_no_signal() {
        let builder = DockerWorkspace::builder();
        assert!(!builder.handle_ctrl_c, "Ctrl-C handling must be opt-in");
        assert!(builder.cleanup_on.is_none());
        let dev = DockerDevWorkspace::builder();
        assert!(!dev.workspace.handle_ctrl_c);
        assert!(DockerWorkspace::builder().handle_ctrl_c(true).handle_ctrl_c);
    }

    #[test]
    fn debug_of_the_builders_never_shows_keys_or_env_values() {
        let builder = DockerWorkspace::builder()
            .api_key("sk-docker-4242")
            .env("LLM_API_KEY", "sk-env-value-77")
            .cleanup_on(std::future::pending::<()>());
        let dev = DockerDevWorkspace::builder().workspace(builder.clone());
        for shown in [
            format!("{builder:?}"),
            format!("{builder:#?}"),
            format!("{dev:?}"),
            format!("{dev:#?}"),
        ] {
            assert_hidden(&shown, &["sk-docker-4242", "sk-env-value-77"]);
            assert!(shown.contains("LLM_API_KEY"), "{shown}");
        }
        // The container still gets them.
        let env = builder
            .container_body(&"sk-docker-4242".into(), false, CONTAINER_PORT)
            .env
            .unwrap_or_default();
        assert!(env.contains(&"LLM_API_KEY=sk-env-value-77".to_owned()));
    }

    #[tokio::test]
    async fn debug_of_the_workspace_never_shows_its_key() {
        let remote = RemoteWorkspace::builder("http://127.0.0.1:1")
            .api_key("sk-docker-4242")
            .build()
            .unwrap();
        let (container, _unwatched) = offline_container();
        let workspace = DockerWorkspace {
            remote,
            container,
            host_port: 1,
            image: DEFAULT_IMAGE.to_owned(),
            log_task: Mutex::new(None),
            health_check_timeout: Duration::from_secs(1),
            cleanup_image: false,
        };
        assert_eq!(workspace.workspace().api_key(), Some("sk-docker-4242"));
        for shown in [format!("{workspace:?}"), format!("{workspace:#?}")] {
            assert_hidden(&shown, &["sk-docker-4242"]);
            assert!(shown.contains("agent-server-test"), "{shown}");
        }
    }

    #[tokio::test]
    async fn the_shutdown_future_removes_the_container() {
        let (container, unwatched) = offline_container();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let builder = DockerWorkspace::builder().cleanup_on(stopped);
        let shutdown = builder.cleanup_on.clone().unwrap();
        let watcher = tokio::spawn(remove_on(shutdown, Arc::downgrade(&container), unwatched));
        assert!(!container.removed.load(Ordering::SeqCst));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("the watcher did not react to the shutdown future")
            .unwrap();
        // Removal was attempted (the offline Engine makes it fail, which is only logged).
        assert!(container.removed.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn the_watcher_ends_with_the_workspace() {
        let (container, unwatched) = offline_container();
        let shutdown = DockerWorkspace::builder()
            .cleanup_on(std::future::pending::<()>())
            .cleanup_on
            .unwrap();
        let watcher = tokio::spawn(remove_on(shutdown, Arc::downgrade(&container), unwatched));
        drop(container);
        tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("the watcher outlived the workspace")
            .unwrap();
    }
}
