//! Sandboxes as containers on one Docker Engine (bollard, through `oh-workspace-docker`'s
//! plumbing).
//!
//! The agent server's port is published with an empty host port, so the Engine picks a free
//! one at start and nothing races for ports; the port is read back from `inspect` after every
//! start (it changes when a stopped container starts again). With the `host` network the
//! workload listens on the port its command names, chosen by the caller.

use std::collections::HashMap;

use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, HostConfig, PortBinding, RestartPolicy,
    RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, ListContainersOptions, StopContainerOptions,
};
use futures::future::{BoxFuture, FutureExt};

use super::engine::{self, Limits, is_status};
use super::{
    Backend, Endpoint, MAX_RESTARTS, Managed, Observed, POOL_LABEL, PORT_LABEL, RUNTIME_LABEL,
    SERVER_LABEL, Spec,
};
use crate::config::Config;
use crate::error::BackendError;
use crate::store::PauseKind;

/// Seconds a stop waits before killing.
const STOP_TIMEOUT: i32 = 10;

/// The Docker backend.
#[derive(Debug)]
pub(crate) struct DockerBackend {
    docker: Docker,
    instance: String,
    network: Option<String>,
    bind_address: String,
    public_host: String,
    cpus_per_factor: f64,
    memory_mib_per_factor: u64,
    runtimes: Vec<String>,
}

impl DockerBackend {
    /// Connects to the local Engine.
    pub(crate) async fn connect(config: &Config, instance: &str) -> Result<Self, BackendError> {
        let docker = oh_workspace_docker::connect().await?;
        let runtimes = runtimes(&docker).await;
        Ok(Self {
            docker,
            instance: instance.to_owned(),
            network: config.network.clone(),
            bind_address: config.bind_address.to_string(),
            public_host: config.public_host.clone(),
            cpus_per_factor: config.cpus_per_factor,
            memory_mib_per_factor: config.memory_mib_per_factor,
            runtimes,
        })
    }

    fn host_network(&self) -> bool {
        self.network.as_deref() == Some("host")
    }

    fn body(&self, spec: &Spec) -> ContainerCreateBody {
        let mut labels = spec.labels.clone();
        labels.insert(SERVER_LABEL.to_owned(), self.instance.clone());
        labels.insert(PORT_LABEL.to_owned(), spec.port.to_string());
        let port_key = format!("{}/tcp", spec.port);
        let limits = Limits::new(
            self.cpus_per_factor,
            self.memory_mib_per_factor,
            spec.resource_factor,
        );
        let mut host_config = HostConfig {
            init: Some(true),
            network_mode: self.network.clone(),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ON_FAILURE),
                maximum_retry_count: Some(MAX_RESTARTS),
            }),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            runtime: spec.runtime.clone(),
            nano_cpus: limits.nano_cpus,
            memory: limits.memory_bytes,
            ..HostConfig::default()
        };
        let exposed = if self.host_network() {
            None
        } else {
            host_config.port_bindings = Some(HashMap::from([(
                port_key.clone(),
                Some(vec![PortBinding {
                    host_ip: Some(self.bind_address.clone()),
                    host_port: Some(String::new()),
                }]),
            )]));
            if self.network.is_none() {
                host_config.extra_hosts = Some(vec!["host.docker.internal:host-gateway".into()]);
            }
            Some(vec![port_key])
        };
        ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: Some(
                spec.env
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.expose()))
                    .collect(),
            ),
            working_dir: spec.working_dir.clone(),
            user: Some(spec.user.clone()),
            labels: Some(labels),
            exposed_ports: exposed,
            host_config: Some(host_config),
            ..ContainerCreateBody::default()
        }
    }
}

async fn runtimes(docker: &Docker) -> Vec<String> {
    match docker.info().await {
        Ok(info) => info
            .runtimes
            .map(|r| r.into_keys().collect())
            .unwrap_or_default(),
        Err(e) => {
            tracing::warn!("cannot list the Engine's runtimes: {e}");
            Vec::new()
        }
    }
}

impl Backend for DockerBackend {
    fn kind(&self) -> &'static str {
        "docker"
    }

    fn has_runtime<'a>(&'a self, name: &'a str) -> BoxFuture<'a, bool> {
        let found = self.runtimes.iter().any(|r| r == name);
        async move { found }.boxed()
    }

    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        engine::image_present(&self.docker, image).boxed()
    }

    fn create<'a>(&'a self, spec: &'a Spec) -> BoxFuture<'a, Result<String, BackendError>> {
        async move {
            engine::ensure_image(&self.docker, &spec.image, spec.pull).await?;
            let options = CreateContainerOptions {
                name: Some(spec.name.clone()),
                platform: String::new(),
            };
            let created = self
                .docker
                .create_container(Some(options), self.body(spec))
                .await
                .map_err(|e| {
                    if is_status(&e, 404) {
                        BackendError::ImageMissing {
                            image: spec.image.clone(),
                            detail: e.to_string(),
                        }
                    } else {
                        e.into()
                    }
                })?;
            if let Err(e) = self.docker.start_container(&created.id, None).await {
                // Never leave a container behind a failed start.
                if let Err(removal) =
                    oh_workspace_docker::force_remove(&self.docker, &created.id).await
                {
                    tracing::warn!(container = %spec.name, "removing after a failed start: {removal}");
                }
                return Err(e.into());
            }
            Ok(created.id)
        }
        .boxed()
    }

    fn observe<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<Observed, BackendError>> {
        async move {
            let info = match self
                .docker
                .inspect_container(handle, None::<InspectContainerOptions>)
                .await
            {
                Ok(info) => info,
                Err(e) if is_status(&e, 404) => return Ok(Observed::Missing),
                Err(e) => return Err(e.into()),
            };
            let restarts = u32::try_from(info.restart_count.unwrap_or(0)).unwrap_or(0);
            let state = info.state.clone().unwrap_or_default();
            let mut reasons = Vec::new();
            if state.oom_killed == Some(true) {
                reasons.push("OOMKilled".to_owned());
            } else if let Some(code) = state.exit_code.filter(|c| *c != 0) {
                reasons.push(format!("Error (exit code {code})"));
            }
            let port: Option<u16> = info
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(PORT_LABEL))
                .and_then(|p| p.parse().ok());
            Ok(match state.status {
                Some(ContainerStateStatusEnum::CREATED) => Observed::Pending,
                Some(ContainerStateStatusEnum::RUNNING) => {
                    let endpoint = if self.host_network() {
                        port.map(|port| Endpoint {
                            host: self.public_host.clone(),
                            port,
                        })
                    } else {
                        port.and_then(|port| {
                            let key = format!("{port}/tcp");
                            let published = info
                                .network_settings
                                .as_ref()?
                                .ports
                                .as_ref()?
                                .get(&key)?
                                .as_ref()?
                                .iter()
                                .find_map(|b| b.host_port.as_ref()?.parse().ok())?;
                            Some(Endpoint {
                                host: self.public_host.clone(),
                                port: published,
                            })
                        })
                    };
                    Observed::Running { endpoint, restarts }
                }
                Some(ContainerStateStatusEnum::PAUSED) => Observed::Frozen,
                Some(ContainerStateStatusEnum::RESTARTING) => Observed::Restarting {
                    restarts: restarts.max(1),
                    reasons,
                },
                Some(ContainerStateStatusEnum::REMOVING) => Observed::Missing,
                _ => Observed::Exited {
                    code: state.exit_code,
                    restarts,
                    reasons,
                },
            })
        }
        .boxed()
    }

    fn pause<'a>(
        &'a self,
        handle: &'a str,
        kind: PauseKind,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            match kind {
                PauseKind::Freeze => self.docker.pause_container(handle).await?,
                PauseKind::Stop => {
                    let options = StopContainerOptions {
                        t: Some(STOP_TIMEOUT),
                        signal: None,
                    };
                    self.docker.stop_container(handle, Some(options)).await?;
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn resume<'a>(
        &'a self,
        handle: &'a str,
        kind: PauseKind,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            match kind {
                PauseKind::Freeze => self.docker.unpause_container(handle).await?,
                PauseKind::Stop => self.docker.start_container(handle, None).await?,
            }
            Ok(())
        }
        .boxed()
    }

    fn remove<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        async move { Ok(oh_workspace_docker::force_remove(&self.docker, handle).await?) }.boxed()
    }

    fn logs<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, String> {
        oh_workspace_docker::tail_logs(&self.docker, handle).boxed()
    }

    fn managed(&self) -> BoxFuture<'_, Result<Vec<Managed>, BackendError>> {
        async move {
            let options = ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{SERVER_LABEL}={}", self.instance)],
                )])),
                ..ListContainersOptions::default()
            };
            Ok(self
                .docker
                .list_containers(Some(options))
                .await?
                .into_iter()
                .filter_map(|c| {
                    let labels = c.labels.unwrap_or_default();
                    Some(Managed {
                        handle: c.id?,
                        runtime_id: labels.get(RUNTIME_LABEL).cloned(),
                        pool: labels.get(POOL_LABEL).is_some_and(|v| v == "1"),
                    })
                })
                .collect())
        }
        .boxed()
    }
}
