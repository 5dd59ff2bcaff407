//! Sandboxes as one-replica Docker Swarm services, created through a manager node.
//!
//! * A sandbox is a service named like its container would be, with one replica, restarted
//!   on failure at most [`MAX_RESTARTS`] times. Its labels are on the service (what
//!   [`managed`](Backend::managed) lists) and on the container spec (so each node's containers
//!   can be told apart too).
//! * The agent server's port is published in *host* mode with no published port: the node
//!   picks a free one when the task starts, and it is read back from the task's port status
//!   on every observation (it changes whenever the task is replaced). The routing mesh
//!   (ingress mode) is not used: it does not route everywhere (not on our test machine). Host
//!   mode publishes on every interface of the node: `bind_address` does not apply here.
//! * The host in a sandbox URL is the node's `org.openhands-rs.public_addr` label, else the
//!   address the manager knows the node by, else (`0.0.0.0` or none) the configured
//!   `public_host`.
//! * Swarm has no pause: both pause kinds pin the service to the node it runs on and scale it
//!   to 0 replicas, which removes the container; resume scales it back to 1, which starts a
//!   *new* container. Only volumes survive a pause, never the container's writable layer.
//! * With the `host` network nothing is published: the service joins the network `host` and
//!   the agent server listens on the port its command names (chosen by the caller).
//! * Not available to Swarm services on Engine 20.10 (API 1.41): a container runtime
//!   ([`has_runtime`](Backend::has_runtime) is always false), `no-new-privileges` (sent, but
//!   read back as false). Capabilities are dropped from API 1.41 on. No `nofile` ulimit is
//!   set: a limit above the node daemon's own makes every task fail at start ("error setting
//!   rlimit"), and in Swarm that shows up late, on a worker, as a crash loop; tasks inherit
//!   the daemon's limits instead.
//! * Images: the manager pulls per the pull policy; other nodes pull on first use.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, LocalNodeState, NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, Task, TaskSpec, TaskSpecContainerSpec,
    TaskSpecContainerSpecPrivileges, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    ListServicesOptions, ListTasksOptions, LogsOptions, UpdateServiceOptions,
};
use futures::StreamExt;
use futures::future::{BoxFuture, FutureExt};

use super::engine::{self, Limits, is_status};
use super::{
    Backend, Endpoint, MAX_RESTARTS, Managed, Observed, POOL_LABEL, PORT_LABEL, PUBLIC_ADDR_LABEL,
    RUNTIME_LABEL, SERVER_LABEL, Spec,
};
use crate::config::Config;
use crate::error::BackendError;
use crate::store::PauseKind;

/// Longest service name Swarm accepts.
const MAX_NAME: usize = 63;

/// Wait between a task's failure and its replacement.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// How long a task gets to stop before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How long a resume waits for the paused task's container to be gone.
const STOPPED_WAIT: Duration = Duration::from_secs(30);

/// How often a resume looks at the paused task meanwhile.
const STOPPED_POLL: Duration = Duration::from_millis(200);

/// Log lines kept of a failed sandbox.
const LOG_TAIL: &str = "60";

/// How long reading a service's logs may take (a node may be unreachable).
const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// The Swarm backend.
#[derive(Debug)]
pub(crate) struct SwarmBackend {
    docker: Docker,
    instance: String,
    network: Option<String>,
    public_host: String,
    cpus_per_factor: f64,
    memory_mib_per_factor: u64,
    /// The API version spoken has `ContainerSpec.CapabilityDrop` (1.41).
    cap_drop: bool,
}

impl SwarmBackend {
    /// Connects to the local Engine, which must be a manager of an active swarm.
    pub(crate) async fn connect(config: &Config, instance: &str) -> Result<Self, BackendError> {
        let docker = oh_workspace_docker::connect().await?;
        let info = docker.info().await?;
        let swarm = info.swarm.unwrap_or_default();
        let active = swarm.local_node_state == Some(LocalNodeState::ACTIVE);
        if !active || swarm.control_available != Some(true) {
            let state = if active {
                "a worker node"
            } else {
                "not part of a swarm"
            };
            return Err(BackendError::Other(format!(
                "the Docker Engine is {state}, not a swarm manager; run `docker swarm init` \
                 (or point DOCKER_HOST at a manager) to use the swarm backend"
            )));
        }
        let version = docker.client_version();
        let cap_drop = (version.major_version, version.minor_version) >= (1, 41);
        Ok(Self {
            docker,
            instance: instance.to_owned(),
            network: config.network.clone(),
            public_host: config.public_host.clone(),
            cpus_per_factor: config.cpus_per_factor,
            memory_mib_per_factor: config.memory_mib_per_factor,
            cap_drop,
        })
    }

    fn host_network(&self) -> bool {
        self.network.as_deref() == Some("host")
    }

    fn service_spec(&self, spec: &Spec) -> ServiceSpec {
        let mut labels = spec.labels.clone();
        labels.insert(SERVER_LABEL.to_owned(), self.instance.clone());
        labels.insert(PORT_LABEL.to_owned(), spec.port.to_string());
        let limits = Limits::new(
            self.cpus_per_factor,
            self.memory_mib_per_factor,
            spec.resource_factor,
        );
        let container_spec = TaskSpecContainerSpec {
            image: Some(spec.image.clone()),
            labels: Some(labels.clone()),
            command: spec.entrypoint.clone(),
            args: spec.cmd.clone(),
            env: Some(
                spec.env
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.expose()))
                    .collect(),
            ),
            dir: spec.working_dir.clone(),
            user: Some(spec.user.clone()),
            init: Some(true),
            privileges: Some(TaskSpecContainerSpecPrivileges {
                no_new_privileges: Some(true),
                ..TaskSpecContainerSpecPrivileges::default()
            }),
            capability_drop: self.cap_drop.then(|| vec!["ALL".to_owned()]),
            stop_grace_period: Some(nanos(STOP_GRACE)),
            ..TaskSpecContainerSpec::default()
        };
        let networks = self.network.as_ref().map(|network| {
            vec![NetworkAttachmentConfig {
                target: Some(network.clone()),
                ..NetworkAttachmentConfig::default()
            }]
        });
        let endpoint_spec = (!self.host_network()).then(|| EndpointSpec {
            ports: Some(vec![EndpointPortConfig {
                protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                target_port: Some(i64::from(spec.port)),
                // Unset: the node picks a free port when the task starts.
                published_port: None,
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                name: None,
            }]),
            ..EndpointSpec::default()
        });
        let resources = (limits != Limits::default()).then(|| TaskSpecResources {
            limits: Some(bollard::models::Limit {
                nano_cpus: limits.nano_cpus,
                memory_bytes: limits.memory_bytes,
                pids: None,
            }),
            ..TaskSpecResources::default()
        });
        ServiceSpec {
            name: Some(spec.name.clone()),
            labels: Some(labels),
            task_template: Some(TaskSpec {
                container_spec: Some(container_spec),
                resources,
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
                    delay: Some(nanos(RESTART_DELAY)),
                    max_attempts: Some(MAX_RESTARTS),
                    window: None,
                }),
                networks,
                ..TaskSpec::default()
            }),
            mode: Some(replicated(1)),
            endpoint_spec,
            ..ServiceSpec::default()
        }
    }

    /// Every task of a service (any state), oldest first.
    async fn tasks(&self, service_id: &str) -> Result<Vec<Task>, BackendError> {
        let options = ListTasksOptions {
            filters: Some(HashMap::from([(
                "service".to_owned(),
                vec![service_id.to_owned()],
            )])),
        };
        let mut tasks = self.docker.list_tasks(Some(options)).await?;
        // A service id filter also matches ids starting with it, and names: keep this one's.
        tasks.retain(|t| t.service_id.as_deref() == Some(service_id));
        tasks.sort_by_cached_key(|t| {
            (
                time_key(t.created_at.as_deref()),
                time_key(t.updated_at.as_deref()),
            )
        });
        Ok(tasks)
    }

    /// Where clients reach a node: its public-address label, the address the manager knows,
    /// or the configured public host. `None` when the node is unknown (left the swarm).
    async fn node_host(&self, node_id: &str) -> Result<Option<String>, BackendError> {
        let node = match self.docker.inspect_node(node_id).await {
            Ok(node) => node,
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let label = node
            .spec
            .as_ref()
            .and_then(|s| s.labels.as_ref())
            .and_then(|l| l.get(PUBLIC_ADDR_LABEL))
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty());
        let addr = node
            .status
            .and_then(|s| s.addr)
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty() && a != "0.0.0.0" && a != "::");
        Ok(Some(
            label.or(addr).unwrap_or_else(|| self.public_host.clone()),
        ))
    }

    /// The endpoint of a running task, once its port is published.
    async fn endpoint(&self, task: &Task, port: u16) -> Result<Option<Endpoint>, BackendError> {
        let published = if self.host_network() {
            Some(port)
        } else {
            task.status
                .as_ref()
                .and_then(|s| s.port_status.as_ref())
                .and_then(|p| p.ports.as_ref())
                .into_iter()
                .flatten()
                .filter(|p| p.target_port == Some(i64::from(port)))
                .find_map(|p| p.published_port.and_then(|p| u16::try_from(p).ok()))
                .filter(|p| *p != 0)
        };
        let (Some(published), Some(node)) = (published, task.node_id.as_deref()) else {
            return Ok(None);
        };
        Ok(self.node_host(node).await?.map(|host| Endpoint {
            host,
            port: published,
        }))
    }

    /// Waits until no task of the service holds a container any more (every task has reached
    /// a final state), up to [`STOPPED_WAIT`]. Scaling to 0 returns before the old task's
    /// container has stopped; a task started meanwhile on the same node would find the
    /// host-mode port still taken and crash-loop ("address already in use").
    async fn wait_stopped(&self, handle: &str) -> Result<(), BackendError> {
        let service = self.docker.inspect_service(handle, None).await?;
        let id = service.id.as_deref().unwrap_or(handle);
        let deadline = tokio::time::Instant::now() + STOPPED_WAIT;
        loop {
            let tasks = self.tasks(id).await?;
            if tasks.iter().all(finished) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    service = handle,
                    "swarm: the paused task is still stopping; resuming anyway"
                );
                return Ok(());
            }
            tokio::time::sleep(STOPPED_POLL).await;
        }
    }

    /// Sets the replica count, pinning the service to its current node when it scales to 0.
    /// Swarm needs the version it last saw; a concurrent update makes it retry once.
    async fn scale(&self, handle: &str, replicas: i64) -> Result<(), BackendError> {
        let mut retried = false;
        loop {
            let service = self.docker.inspect_service(handle, None).await?;
            let version = service
                .version
                .and_then(|v| v.index)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| {
                    BackendError::Other(format!("service {handle} has no usable version"))
                })?;
            let mut spec = service.spec.unwrap_or_default();
            if replicas == 0 {
                let node = self
                    .tasks(service.id.as_deref().unwrap_or(handle))
                    .await?
                    .iter()
                    .rev()
                    .filter(|t| wanted(t) || state(t) == Some(TaskState::RUNNING))
                    .find_map(|t| t.node_id.clone());
                if let Some(node) = node {
                    pin(&mut spec, &node);
                }
            }
            spec.mode = Some(replicated(replicas));
            let options = UpdateServiceOptions {
                version,
                ..UpdateServiceOptions::default()
            };
            match self
                .docker
                .update_service(handle, spec, options, None)
                .await
            {
                Ok(response) => {
                    for warning in response.warnings.unwrap_or_default() {
                        tracing::info!(service = handle, "swarm: {warning}");
                    }
                    return Ok(());
                }
                Err(e) if !retried && is_out_of_sequence(&e) => retried = true,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Durations in Swarm specs are nanoseconds.
fn nanos(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn replicated(replicas: i64) -> ServiceSpecMode {
    ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated {
            replicas: Some(replicas),
        }),
        ..ServiceSpecMode::default()
    }
}

/// Replaces any `node.id` placement constraint with `node.id==<node>`.
fn pin(spec: &mut ServiceSpec, node: &str) {
    let template = spec.task_template.get_or_insert_with(TaskSpec::default);
    let placement = template
        .placement
        .get_or_insert_with(TaskSpecPlacement::default);
    let constraints = placement.constraints.get_or_insert_with(Vec::new);
    constraints.retain(|c| !c.replace(' ', "").starts_with("node.id=="));
    constraints.push(format!("node.id=={node}"));
}

/// An update refused because the service changed since it was read (Engine 20.10 answers
/// 500 "update out of sequence").
fn is_out_of_sequence(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError { status_code, message }
            if *status_code == 409 || message.contains("out of sequence")
    )
}

/// A sortable key of a Swarm timestamp (RFC 3339, UTC, up to nine fractional digits with
/// trailing zeros trimmed, so the strings do not sort by themselves).
fn time_key(stamp: Option<&str>) -> (String, u32) {
    let Some(stamp) = stamp else {
        return (String::new(), 0);
    };
    let (seconds, rest) = match stamp.split_once('.') {
        Some((seconds, rest)) => (seconds, rest),
        None => (stamp.trim_end_matches('Z'), ""),
    };
    let digits: String = rest
        .chars()
        .take_while(char::is_ascii_digit)
        .take(9)
        .collect();
    let nanos = format!("{digits:0<9}").parse().unwrap_or(0);
    (seconds.to_owned(), nanos)
}

/// The orchestrator still wants this task to run (it is not being shut down or replaced).
fn wanted(task: &Task) -> bool {
    matches!(
        task.desired_state,
        Some(
            TaskState::NEW
                | TaskState::ALLOCATED
                | TaskState::PENDING
                | TaskState::ASSIGNED
                | TaskState::ACCEPTED
                | TaskState::PREPARING
                | TaskState::READY
                | TaskState::STARTING
                | TaskState::RUNNING
        )
    )
}

/// The task is over: its container is gone or never existed.
fn finished(task: &Task) -> bool {
    matches!(
        state(task),
        None | Some(
            TaskState::COMPLETE
                | TaskState::SHUTDOWN
                | TaskState::FAILED
                | TaskState::REJECTED
                | TaskState::REMOVE
                | TaskState::ORPHANED
        )
    )
}

fn state(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

fn failed(task: &Task) -> bool {
    matches!(state(task), Some(TaskState::FAILED | TaskState::REJECTED))
}

fn exit_code(task: &Task) -> Option<i64> {
    task.status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.exit_code)
}

/// Why a task failed, in the Docker backend's words where they apply.
fn reason(task: &Task) -> String {
    if let Some(code) = exit_code(task).filter(|c| *c != 0) {
        return format!("Error (exit code {code})");
    }
    let status = task.status.as_ref();
    status
        .and_then(|s| s.err.clone())
        .or_else(|| status.and_then(|s| s.message.clone()))
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| "the task failed".to_owned())
}

/// What the tasks (oldest first) of a service with `replicas` wanted say. A running task is
/// handed back with `Running { endpoint: None }`: the caller reads its endpoint.
fn classify(replicas: i64, tasks: &[Task]) -> (Observed, Option<&Task>) {
    let failures: Vec<&Task> = tasks.iter().filter(|t| failed(t)).collect();
    let restarts = u32::try_from(failures.len()).unwrap_or(u32::MAX);
    let reasons: Vec<String> = failures.iter().map(|t| reason(t)).collect();
    if replicas == 0 {
        // Paused by us (or scaled down by someone).
        return (
            Observed::Exited {
                code: None,
                restarts,
                reasons,
            },
            None,
        );
    }
    let exhausted = i64::from(restarts) > MAX_RESTARTS;
    let (task, latest_only) = match tasks.iter().rev().find(|t| wanted(t)) {
        Some(task) => (task, false),
        None => match tasks.last() {
            Some(task) => (task, true),
            // Just created: the orchestrator has not made its task yet.
            None => return (Observed::Pending, None),
        },
    };
    let observed = match state(task) {
        Some(TaskState::RUNNING) if !latest_only => {
            return (
                Observed::Running {
                    endpoint: None,
                    restarts,
                },
                Some(task),
            );
        }
        Some(TaskState::FAILED | TaskState::REJECTED) if exhausted => Observed::Exited {
            code: exit_code(task),
            restarts,
            reasons,
        },
        Some(TaskState::COMPLETE) => Observed::Exited {
            code: Some(exit_code(task).unwrap_or(0)),
            restarts,
            reasons,
        },
        // Failed with attempts left, or its replacement on its way.
        _ if restarts > 0 => Observed::Restarting { restarts, reasons },
        _ => Observed::Pending,
    };
    (observed, None)
}

impl Backend for SwarmBackend {
    fn pause_kind(&self, _requested: PauseKind) -> PauseKind {
        // Swarm has no freeze: a pause scales the service to zero.
        PauseKind::Stop
    }

    fn kind(&self) -> &'static str {
        "swarm"
    }

    fn has_runtime<'a>(&'a self, _: &'a str) -> BoxFuture<'a, bool> {
        // Swarm services cannot choose a container runtime.
        async { false }.boxed()
    }

    fn image_exists<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, BackendError>> {
        // The manager's images; other nodes pull on first use.
        engine::image_present(&self.docker, image).boxed()
    }

    fn create<'a>(&'a self, spec: &'a Spec) -> BoxFuture<'a, Result<String, BackendError>> {
        async move {
            if spec.name.len() > MAX_NAME {
                return Err(BackendError::Other(format!(
                    "service name {} is longer than {MAX_NAME} characters",
                    spec.name
                )));
            }
            engine::ensure_image(&self.docker, &spec.image, spec.pull).await?;
            let created = self
                .docker
                .create_service(self.service_spec(spec), None)
                .await?;
            for warning in created.warnings.unwrap_or_default() {
                tracing::info!(service = %spec.name, "swarm: {warning}");
            }
            created.id.ok_or_else(|| {
                BackendError::Other(format!("swarm created {} without an id", spec.name))
            })
        }
        .boxed()
    }

    fn observe<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<Observed, BackendError>> {
        async move {
            let service = match self.docker.inspect_service(handle, None).await {
                Ok(service) => service,
                Err(e) if is_status(&e, 404) => return Ok(Observed::Missing),
                Err(e) => return Err(e.into()),
            };
            let spec = service.spec.unwrap_or_default();
            let replicas = spec
                .mode
                .as_ref()
                .and_then(|m| m.replicated.as_ref())
                .and_then(|r| r.replicas)
                .unwrap_or(1);
            let port: Option<u16> = spec
                .labels
                .as_ref()
                .and_then(|l| l.get(PORT_LABEL))
                .and_then(|p| p.parse().ok());
            let service_id = service.id.as_deref().unwrap_or(handle);
            let tasks = self.tasks(service_id).await?;
            match classify(replicas, &tasks) {
                (Observed::Running { restarts, .. }, Some(task)) => {
                    let endpoint = match port {
                        Some(port) => self.endpoint(task, port).await?,
                        None => None,
                    };
                    Ok(Observed::Running { endpoint, restarts })
                }
                (observed, _) => Ok(observed),
            }
        }
        .boxed()
    }

    fn pause<'a>(
        &'a self,
        handle: &'a str,
        _: PauseKind,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        self.scale(handle, 0).boxed()
    }

    fn resume<'a>(
        &'a self,
        handle: &'a str,
        _: PauseKind,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            self.wait_stopped(handle).await?;
            self.scale(handle, 1).await
        }
        .boxed()
    }

    fn remove<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        async move {
            // The containers go shortly after (their ports and disk are freed then).
            match self.docker.delete_service(handle).await {
                Ok(()) => Ok(()),
                Err(e) if is_status(&e, 404) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn logs<'a>(&'a self, handle: &'a str) -> BoxFuture<'a, String> {
        async move {
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                tail: LOG_TAIL.to_owned(),
                ..LogsOptions::default()
            };
            let mut out = String::new();
            let read = async {
                let mut logs = self.docker.service_logs(handle, Some(options));
                while let Some(Ok(chunk)) = logs.next().await {
                    out.push_str(&chunk.to_string());
                }
            };
            if tokio::time::timeout(LOG_TIMEOUT, read).await.is_err() {
                tracing::debug!(service = handle, "reading the service's logs timed out");
            }
            out
        }
        .boxed()
    }

    fn managed(&self) -> BoxFuture<'_, Result<Vec<Managed>, BackendError>> {
        async move {
            let options = ListServicesOptions {
                filters: Some(HashMap::from([(
                    "label".to_owned(),
                    vec![format!("{SERVER_LABEL}={}", self.instance)],
                )])),
                ..ListServicesOptions::default()
            };
            Ok(self
                .docker
                .list_services(Some(options))
                .await?
                .into_iter()
                .filter_map(|s| {
                    let labels = s.spec.and_then(|s| s.labels).unwrap_or_default();
                    Some(Managed {
                        handle: s.id?,
                        runtime_id: labels.get(RUNTIME_LABEL).cloned(),
                        pool: labels.get(POOL_LABEL).is_some_and(|v| v == "1"),
                    })
                })
                .collect())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerStatus, TaskStatus};

    use super::*;

    fn task(created: &str, desired: TaskState, state: TaskState, exit: Option<i64>) -> Task {
        Task {
            created_at: Some(created.to_owned()),
            desired_state: Some(desired),
            node_id: Some("node".to_owned()),
            status: Some(TaskStatus {
                state: Some(state),
                err: exit
                    .filter(|c| *c != 0)
                    .map(|c| format!("task: non-zero exit ({c})")),
                container_status: Some(ContainerStatus {
                    exit_code: exit,
                    ..ContainerStatus::default()
                }),
                ..TaskStatus::default()
            }),
            ..Task::default()
        }
    }

    #[test]
    fn timestamps_sort_by_time_not_by_text() {
        // Trailing zeros are trimmed: ".1Z" is later than ".09Z" but sorts before it as text.
        let a = time_key(Some("2026-01-01T00:00:05.09Z"));
        let b = time_key(Some("2026-01-01T00:00:05.1Z"));
        let c = time_key(Some("2026-01-01T00:00:06Z"));
        assert!(a < b && b < c, "{a:?} {b:?} {c:?}");
        assert!(time_key(None) < a);
    }

    #[test]
    fn tasks_map_to_observations() {
        use TaskState::{FAILED, READY, REJECTED, RUNNING, SHUTDOWN};
        let t = |n: u32, desired, state, exit| {
            task(&format!("2026-01-01T00:00:{n:02}Z"), desired, state, exit)
        };
        // Paused (0 replicas): exited, no code.
        assert_eq!(
            classify(0, &[]).0,
            Observed::Exited {
                code: None,
                restarts: 0,
                reasons: vec![]
            }
        );
        // Just created.
        assert_eq!(classify(1, &[]).0, Observed::Pending);
        assert_eq!(
            classify(1, &[t(1, RUNNING, READY, None)]).0,
            Observed::Pending
        );
        // Running: the running task is handed back for its endpoint.
        let up = [t(1, RUNNING, RUNNING, None)];
        let (observed, running) = classify(1, &up);
        assert_eq!(
            observed,
            Observed::Running {
                endpoint: None,
                restarts: 0
            }
        );
        assert!(running.is_some());
        // One crash, replacement waiting out the restart delay (desired state ready).
        let once = [t(1, SHUTDOWN, FAILED, Some(3)), t(2, READY, READY, None)];
        assert_eq!(
            classify(1, &once).0,
            Observed::Restarting {
                restarts: 1,
                reasons: vec!["Error (exit code 3)".into()]
            }
        );
        // Running again after a crash: the crash counts as a restart.
        let again = [
            t(1, SHUTDOWN, FAILED, Some(3)),
            t(2, RUNNING, RUNNING, None),
        ];
        assert_eq!(
            classify(1, &again).0,
            Observed::Running {
                endpoint: None,
                restarts: 1
            }
        );
        // Attempts used up: 1 + MAX_RESTARTS failures, nothing wanted any more.
        let gave_up: Vec<Task> = (0..=MAX_RESTARTS)
            .map(|n| t(u32::try_from(n).unwrap_or(0), SHUTDOWN, FAILED, Some(3)))
            .collect();
        match classify(1, &gave_up).0 {
            Observed::Exited {
                code: Some(3),
                restarts,
                reasons,
            } => {
                assert_eq!(i64::from(restarts), MAX_RESTARTS + 1);
                assert_eq!(reasons.len(), gave_up.len());
            }
            other => panic!("{other:?}"),
        }
        // Rejected (e.g. no such image on the node), attempts left: restarting.
        let mut rejected = t(1, SHUTDOWN, REJECTED, None);
        if let Some(status) = rejected.status.as_mut() {
            status.err = Some("No such image: x".into());
        }
        assert_eq!(
            classify(1, &[rejected]).0,
            Observed::Restarting {
                restarts: 1,
                reasons: vec!["No such image: x".into()]
            }
        );
        // Exited 0: not restarted (on-failure), reported as exited.
        assert_eq!(
            classify(1, &[t(1, SHUTDOWN, TaskState::COMPLETE, Some(0))]).0,
            Observed::Exited {
                code: Some(0),
                restarts: 0,
                reasons: vec![]
            }
        );
        // An old task being shut down is not "running".
        assert_eq!(
            classify(1, &[t(1, SHUTDOWN, RUNNING, None)]).0,
            Observed::Pending
        );
    }

    #[test]
    fn a_task_stopping_after_a_pause_still_holds_its_container() {
        let stopping = task(
            "2026-01-01T00:00:00Z",
            TaskState::SHUTDOWN,
            TaskState::RUNNING,
            None,
        );
        assert!(!finished(&stopping));
        let gone = task(
            "2026-01-01T00:00:00Z",
            TaskState::SHUTDOWN,
            TaskState::SHUTDOWN,
            Some(0),
        );
        assert!(finished(&gone));
        let crashed = task(
            "2026-01-01T00:00:00Z",
            TaskState::RUNNING,
            TaskState::FAILED,
            Some(1),
        );
        assert!(finished(&crashed));
    }

    #[test]
    fn pinning_replaces_an_older_node_constraint() {
        let mut spec = ServiceSpec {
            task_template: Some(TaskSpec {
                placement: Some(TaskSpecPlacement {
                    constraints: Some(vec!["node.id == old".into(), "node.labels.zone==a".into()]),
                    ..TaskSpecPlacement::default()
                }),
                ..TaskSpec::default()
            }),
            ..ServiceSpec::default()
        };
        pin(&mut spec, "new");
        let constraints = spec
            .task_template
            .and_then(|t| t.placement)
            .and_then(|p| p.constraints)
            .unwrap_or_default();
        assert_eq!(constraints, vec!["node.labels.zone==a", "node.id==new"]);
    }
}
