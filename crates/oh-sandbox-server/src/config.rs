//! The sandbox server's settings.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use oh_protocol::SecretString;

/// Which engine runs the sandboxes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Containers on one Docker Engine.
    Docker,
    /// One-replica services on a Docker Swarm (any node).
    Swarm,
}

/// Everything the server needs; [`Config::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the API listens on.
    pub host: IpAddr,
    /// Port the API listens on (0: any free port).
    pub port: u16,
    /// Where sandbox records live (created `0700`).
    pub state_dir: PathBuf,
    /// The engine.
    pub backend: BackendKind,
    /// The image of pool members and of starts that name none.
    pub image: String,
    /// Docker network of the sandboxes (`host`: they share the host's network, so they
    /// reach services on its loopback).
    pub network: Option<String>,
    /// Keys accepted in `X-API-Key` (at least one).
    pub api_keys: Vec<SecretString>,
    /// Host put in sandbox URLs (how clients reach published ports).
    pub public_host: String,
    /// Host address sandbox ports are published on.
    pub bind_address: IpAddr,
    /// Sandboxes that may run at once (starting, running or frozen); 429 past it.
    pub max_sandboxes: usize,
    /// Warm pool size: dormant agent servers kept ready for starts without custom environment.
    pub warm: usize,
    /// How long `/start` and `/resume` wait for the sandbox to be healthy before answering.
    pub start_wait: Duration,
    /// A sandbox not healthy this long after its start is failed and removed.
    pub startup_deadline: Duration,
    /// Sandboxes without agent-server activity this long are paused (stopped); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// How often running sandboxes are checked against the engine (and for idleness).
    pub check_interval: Duration,
    /// How long records of stopped or failed sandboxes are kept.
    pub stopped_retention: Duration,
    /// CPUs per unit of `resource_factor` (0: no limit).
    pub cpus_per_factor: f64,
    /// Memory per unit of `resource_factor`, in MiB (0: no limit).
    pub memory_mib_per_factor: u64,
    /// The users of the Cloud API (`/api/v1`), a JSON file re-read when it changes; `None`:
    /// no Cloud API.
    pub users_file: Option<PathBuf>,
}

impl Config {
    /// The defaults, with state in `state_dir` and one API key.
    pub fn new(state_dir: impl Into<PathBuf>, api_key: impl Into<SecretString>) -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8090,
            state_dir: state_dir.into(),
            backend: BackendKind::Docker,
            image: oh_workspace_docker::DEFAULT_IMAGE.to_owned(),
            network: None,
            api_keys: vec![api_key.into()],
            public_host: "127.0.0.1".to_owned(),
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            max_sandboxes: 32,
            warm: 0,
            start_wait: Duration::from_secs(60),
            startup_deadline: Duration::from_secs(300),
            idle_timeout: Some(Duration::from_secs(30 * 60)),
            check_interval: Duration::from_secs(5),
            stopped_retention: Duration::from_secs(60 * 60),
            cpus_per_factor: 0.0,
            memory_mib_per_factor: 0,
            users_file: None,
        }
    }

    /// Keys from `OH_RUNTIME_API_KEYS_0`, `_1`, … (stops at the first missing index).
    pub fn keys_from_env() -> Vec<SecretString> {
        (0..)
            .map_while(|i| std::env::var(format!("OH_RUNTIME_API_KEYS_{i}")).ok())
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::new)
            .collect()
    }

    pub(crate) fn host_network(&self) -> bool {
        self.network.as_deref() == Some("host")
    }
}
