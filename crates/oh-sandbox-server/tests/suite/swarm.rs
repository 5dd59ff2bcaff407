//! The Swarm backend end to end: a sandbox server on a one-node swarm (the local Engine,
//! made a swarm manager when it is not one yet), driven over its runtime API.
//!
//! Needs the Docker Engine and the image `openhands-agent-server:latest`
//! (`cargo xtask image`):
//! `cargo test -p oh-sandbox-server --test all -- --ignored --nocapture swarm::`.
//! The swarm is left initialised; every service a test creates is removed.
#![allow(clippy::print_stdout, reason = "test helpers")]

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{LocalNodeState, SwarmInitRequest};
use bollard::query_parameters::{ListContainersOptions, ListServicesOptions};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oh_sandbox_server::{API_KEY_HEADER, BackendKind, Config, SERVER_LABEL, SandboxServer};
use serde_json::{Value, json};

const IMAGE: &str = "openhands-agent-server:latest";
const API_KEY: &str = "swarm-test-runtime-api-key";

/// Makes the local Engine a one-node swarm manager unless it is part of a swarm already.
async fn ensure_swarm(docker: &Docker) {
    let info = docker.info().await.expect("docker info");
    let state = info.swarm.and_then(|s| s.local_node_state);
    if state == Some(LocalNodeState::ACTIVE) {
        return;
    }
    let request = SwarmInitRequest {
        listen_addr: Some("0.0.0.0:2377".into()),
        advertise_addr: Some("127.0.0.1".into()),
        ..SwarmInitRequest::default()
    };
    let node = docker.init_swarm(request).await.expect("docker swarm init");
    println!("initialised a one-node swarm (node {node})");
}

/// A sandbox server on the swarm; removes its services when dropped (even on a panic).
struct Harness {
    base: String,
    instance: String,
    client: Client<HttpConnector, Full<Bytes>>,
    docker: Docker,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: Option<tempfile::TempDir>,
    /// Handed over to a restarted server: not cleaned up on drop.
    handed_over: bool,
}

impl Harness {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), tweak).await
    }

    /// A server on the state of `dir` (a restart when it holds records).
    async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        let docker = Docker::connect_with_local_defaults()
            .expect("docker")
            .negotiate_version()
            .await
            .expect("docker version");
        ensure_swarm(&docker).await;
        docker
            .inspect_image(IMAGE)
            .await
            .unwrap_or_else(|e| panic!("{IMAGE} is needed (cargo xtask image): {e}"));
        let mut config = Config::new(dir.path(), API_KEY);
        config.backend = BackendKind::Swarm;
        config.port = 0;
        config.image = IMAGE.to_owned();
        config.idle_timeout = None;
        config.start_wait = Duration::from_secs(180);
        config.startup_deadline = Duration::from_secs(180);
        config.check_interval = Duration::from_secs(1);
        tweak(&mut config);
        let server = SandboxServer::bind(config).await.expect("bind");
        let base = format!("http://{}", server.local_addr());
        let instance = std::fs::read_to_string(dir.path().join("instance"))
            .expect("instance id")
            .trim()
            .to_owned();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            base,
            instance,
            client: Client::builder(TokioExecutor::new()).build_http(),
            docker,
            stop: Some(stop),
            task: Some(task),
            dir: Some(dir),
            handed_over: false,
        }
    }

    /// One request; the status and the body as JSON (`Null` when it is not JSON).
    async fn call(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = match body {
            Some(body) => {
                request = request.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(body).expect("encode"))
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(bytes)).expect("request");
        let response = tokio::time::timeout(Duration::from_secs(240), self.client.request(request))
            .await
            .unwrap_or_else(|_| panic!("{url} did not answer"))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A runtime-API call that must answer 200.
    async fn api(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let (status, value) = self
            .call(method, &url, &[(API_KEY_HEADER, API_KEY)], body)
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {value}");
        value
    }

    fn label_filter(&self) -> HashMap<String, Vec<String>> {
        HashMap::from([(
            "label".to_owned(),
            vec![format!("{SERVER_LABEL}={}", self.instance)],
        )])
    }

    /// The ids of this server's services.
    async fn services(&self) -> Vec<String> {
        let options = ListServicesOptions {
            filters: Some(self.label_filter()),
            ..ListServicesOptions::default()
        };
        self.docker
            .list_services(Some(options))
            .await
            .expect("docker service ls")
            .into_iter()
            .filter_map(|s| s.id)
            .collect()
    }

    /// The ids of this server's containers (any state, on this node).
    async fn containers(&self) -> Vec<String> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(self.label_filter()),
            ..ListContainersOptions::default()
        };
        self.docker
            .list_containers(Some(options))
            .await
            .expect("docker ps")
            .into_iter()
            .filter_map(|c| c.id)
            .collect()
    }

    /// Waits (up to a minute) until no service or container of this server is left:
    /// removing a service removes its containers a little later.
    async fn assert_all_gone(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut changes = tokio::time::interval(Duration::from_millis(500));
        loop {
            changes.tick().await;
            let (services, containers) = (self.services().await, self.containers().await);
            if services.is_empty() && containers.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "left behind: services {services:?}, containers {containers:?}"
            );
        }
    }

    async fn shutdown(mut self) {
        self.stop_server().await;
    }

    async fn stop_server(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    /// Stops this server and starts another on the same state (its sandboxes keep running).
    async fn restart(mut self) -> Self {
        self.stop_server().await;
        self.handed_over = true;
        let dir = self.dir.take().expect("state dir");
        let instance = self.instance.clone();
        drop(self);
        let restarted = Self::start_in(dir, |_| {}).await;
        assert_eq!(restarted.instance, instance);
        restarted
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if self.handed_over {
            return;
        }
        // Whatever a failed test left: remove this server's services with the CLI.
        let filter = format!("label={SERVER_LABEL}={}", self.instance);
        let listed = std::process::Command::new("docker")
            .args(["service", "ls", "-q", "--filter", &filter])
            .output();
        if let Ok(listed) = listed {
            let ids = String::from_utf8_lossy(&listed.stdout).to_string();
            for id in ids.split_whitespace() {
                let _ = std::process::Command::new("docker")
                    .args(["service", "rm", id])
                    .output();
            }
        }
    }
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {value}"))
}

/// `echo hi` through the agent server at `url` with the session key.
async fn echo_hi(harness: &Harness, url: &str, key: &str) {
    let endpoint = format!("{url}/api/bash/execute_bash_command");
    let body = json!({"command": "echo hi", "timeout": 10});
    let (status, output) = harness
        .call(
            Method::POST,
            &endpoint,
            &[("X-Session-API-Key", key)],
            Some(&body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{output}");
    assert_eq!(output["kind"], "BashOutput", "{output}");
    assert_eq!(output["exit_code"], 0, "{output}");
    assert_eq!(
        output["stdout"].as_str().map(str::trim),
        Some("hi"),
        "{output}"
    );
    // The key is what lets the command in.
    let (status, _) = harness
        .call(Method::POST, &endpoint, &[], Some(&body))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn health(harness: &Harness, url: &str) -> StatusCode {
    harness
        .call(Method::GET, &format!("{url}/health"), &[], None)
        .await
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine, swarm mode and the image"]
async fn a_sandbox_starts_runs_pauses_resumes_and_stops_as_a_swarm_service() {
    let harness = Harness::start(|_| {}).await;
    let start = json!({
        "image": IMAGE,
        "session_id": "swarm-e2e-1",
        "command": "/usr/local/bin/openhands-agent-server --port 60000",
        "working_dir": "/",
        "run_as_user": 10001,
        "fs_group": 10001,
    });
    let started = harness.api(Method::POST, "/start", Some(&start)).await;
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(started["pod_status"], "ready", "{started}");
    let runtime_id = text(&started, "runtime_id").to_owned();
    let url = text(&started, "url").to_owned();
    let key = text(&started, "session_api_key").to_owned();
    println!("sandbox {runtime_id} at {url}");
    assert_eq!(health(&harness, &url).await, StatusCode::OK);
    echo_hi(&harness, &url, &key).await;

    // One service, labelled, running the container as asked.
    let services = harness.services().await;
    assert_eq!(services.len(), 1, "{services:?}");
    let service = harness
        .docker
        .inspect_service(&services[0], None)
        .await
        .expect("service");
    let spec = service.spec.expect("spec");
    assert_eq!(
        spec.name.as_deref(),
        Some(format!("ohsb-{runtime_id}").as_str())
    );
    let template = spec.task_template.expect("task template");
    let container = template.container_spec.expect("container spec");
    assert_eq!(container.user.as_deref(), Some("10001:10001"));
    assert_eq!(container.init, Some(true));
    assert_eq!(container.capability_drop, Some(vec!["ALL".to_owned()]));
    assert_eq!(
        container.command,
        Some(vec![
            "/usr/local/bin/openhands-agent-server".to_owned(),
            "--port".to_owned(),
            "60000".to_owned()
        ])
    );
    let containers = harness.containers().await;
    assert_eq!(containers.len(), 1, "{containers:?}");

    // Pause: scaled to 0 and pinned to its node; the container goes.
    let paused = harness
        .api(
            Method::POST,
            "/pause",
            Some(&json!({"runtime_id": runtime_id})),
        )
        .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    let service = harness
        .docker
        .inspect_service(&services[0], None)
        .await
        .expect("service");
    let spec = service.spec.expect("spec");
    let replicas = spec
        .mode
        .and_then(|m| m.replicated)
        .and_then(|r| r.replicas);
    assert_eq!(replicas, Some(0));
    let constraints = spec
        .task_template
        .and_then(|t| t.placement)
        .and_then(|p| p.constraints)
        .unwrap_or_default();
    assert!(
        constraints.iter().any(|c| c.starts_with("node.id==")),
        "{constraints:?}"
    );
    let shown = harness
        .api(Method::GET, &format!("/runtime/{runtime_id}"), None)
        .await;
    assert_eq!(shown["status"], "paused", "{shown}");

    // Resume: a new task and container, maybe another port; the same key.
    let resumed = harness
        .api(
            Method::POST,
            "/resume",
            Some(&json!({"runtime_id": runtime_id})),
        )
        .await;
    assert_eq!(resumed["status"], "running", "{resumed}");
    let url = text(&resumed, "url").to_owned();
    assert_eq!(text(&resumed, "session_api_key"), key);
    println!("resumed at {url}");
    assert_eq!(health(&harness, &url).await, StatusCode::OK);
    echo_hi(&harness, &url, &key).await;

    // Stop: the service and its containers are removed.
    let stopped = harness
        .api(
            Method::POST,
            "/stop",
            Some(&json!({"runtime_id": runtime_id})),
        )
        .await;
    assert_eq!(stopped["status"], "stopped", "{stopped}");
    harness.assert_all_gone().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine, swarm mode and the image"]
async fn a_crashing_sandbox_is_restarted_then_failed_with_its_logs() {
    let harness = Harness::start(|_| {}).await;
    let start = json!({
        "image": IMAGE,
        "session_id": "swarm-e2e-crash",
        "command": "/bin/sh -c 'echo swarm-boom; exit 3'",
    });
    let url = format!("{}/start", harness.base);
    let (status, answer) = harness
        .call(
            Method::POST,
            &url,
            &[(API_KEY_HEADER, API_KEY)],
            Some(&start),
        )
        .await;
    // A failed start is an error naming the sandbox (502: its own fault), unless the
    // sandbox had a URL before it failed; the record tells the rest either way.
    let started = if status == StatusCode::OK {
        answer
    } else {
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
        let detail = text(&answer, "detail");
        assert!(detail.contains("swarm-e2e-crash"), "{detail}");
        assert!(detail.contains("swarm-boom"), "{detail}");
        harness
            .api(Method::GET, "/sessions/swarm-e2e-crash", None)
            .await
    };
    let runtime_id = text(&started, "runtime_id").to_owned();
    assert_eq!(started["status"], "error", "{started}");
    assert_eq!(started["pod_status"], "crashloopbackoff", "{started}");
    let restarts = started["restart_count"].as_u64().expect("restart_count");
    assert!(restarts >= 3, "{started}");
    let reasons = started["restart_reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().any(|r| r == "Error (exit code 3)"),
        "{started}"
    );
    assert!(
        text(&started, "pod_logs").contains("swarm-boom"),
        "{started}"
    );
    println!("{runtime_id}: {}", text(&started, "pod_logs"));
    harness.assert_all_gone().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine, swarm mode and the image"]
async fn a_sandbox_on_the_host_network_publishes_nothing() {
    let harness = Harness::start(|config| config.network = Some("host".to_owned())).await;
    let start = json!({
        "image": IMAGE,
        "session_id": "swarm-e2e-host",
        "command": "/usr/local/bin/openhands-agent-server --host 127.0.0.1 --port 60000",
    });
    let started = harness.api(Method::POST, "/start", Some(&start)).await;
    assert_eq!(started["status"], "running", "{started}");
    let url = text(&started, "url").to_owned();
    // The server picked a free host port instead of 60000.
    assert!(!url.ends_with(":60000"), "{url}");
    assert_eq!(health(&harness, &url).await, StatusCode::OK);
    echo_hi(&harness, &url, text(&started, "session_api_key")).await;
    let services = harness.services().await;
    let service = harness
        .docker
        .inspect_service(&services[0], None)
        .await
        .expect("service");
    let ports = service
        .spec
        .and_then(|s| s.endpoint_spec)
        .and_then(|e| e.ports)
        .unwrap_or_default();
    assert!(ports.is_empty(), "{ports:?}");
    let runtime_id = text(&started, "runtime_id").to_owned();
    harness
        .api(
            Method::POST,
            "/stop",
            Some(&json!({"runtime_id": runtime_id})),
        )
        .await;
    harness.assert_all_gone().await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine, swarm mode and the image"]
async fn a_restarted_server_adopts_its_running_and_paused_services() {
    let harness = Harness::start(|_| {}).await;
    let start = json!({
        "image": IMAGE,
        "session_id": "swarm-e2e-adopt",
        "command": "/usr/local/bin/openhands-agent-server --port 60000",
    });
    let started = harness.api(Method::POST, "/start", Some(&start)).await;
    assert_eq!(started["status"], "running", "{started}");
    let runtime_id = text(&started, "runtime_id").to_owned();
    let key = text(&started, "session_api_key").to_owned();

    // Running across a restart: same URL, still serving.
    let harness = harness.restart().await;
    let shown = harness
        .api(Method::GET, "/sessions/swarm-e2e-adopt", None)
        .await;
    assert_eq!(shown["status"], "running", "{shown}");
    assert_eq!(shown["runtime_id"], runtime_id.as_str());
    assert_eq!(shown["url"], started["url"], "{shown}");
    echo_hi(&harness, text(&shown, "url"), &key).await;

    // Paused across a restart: still paused (0 replicas), then resumable.
    let paused = harness
        .api(
            Method::POST,
            "/pause",
            Some(&json!({"runtime_id": runtime_id})),
        )
        .await;
    assert_eq!(paused["status"], "paused", "{paused}");
    let harness = harness.restart().await;
    let shown = harness
        .api(Method::GET, &format!("/runtime/{runtime_id}"), None)
        .await;
    assert_eq!(shown["status"], "paused", "{shown}");
    assert_eq!(harness.services().await.len(), 1);
    let resumed = harness
        .api(
            Method::POST,
            "/resume",
            Some(&json!({"runtime_id": runtime_id})),
        )
        .await;
    assert_eq!(resumed["status"], "running", "{resumed}");
    echo_hi(&harness, text(&resumed, "url"), &key).await;

    harness
        .api(
            Method::POST,
            "/stop",
            Some(&json!({"runtime_id": runtime_id})),
        )
        .await;
    harness.assert_all_gone().await;
    harness.shutdown().await;
}

/// The same end-to-end path as on Docker (`tests/sandbox.rs` of `openhands-e2e`), on the
/// swarm: our `ApiRemoteWorkspace` provisions a sandbox, runs a command, moves a file both
/// ways, runs a scripted conversation in it, keeps it alive for a second workspace with the
/// same session, pauses and resumes it, and cleans up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine, swarm mode and the image"]
async fn api_remote_workspace_end_to_end_on_swarm() {
    use oh_protocol::runtime::PullPolicy;
    use oh_protocol::{Agent, Event, ExecutionStatus, Llm, ToolSpec};
    use oh_testkit::{Reply, ScriptedLlm};
    use oh_workspace_api::ApiRemoteWorkspace;

    // Host network: the sandbox reaches the scripted LLM on the host's loopback.
    let harness = Harness::start(|c| c.network = Some("host".into())).await;
    let builder = || {
        ApiRemoteWorkspace::builder(&harness.base, API_KEY, IMAGE)
            .image_pull_policy(PullPolicy::Never)
            .working_dir("/workspace/project")
            .startup_wait_timeout(Duration::from_secs(120))
    };
    let first = builder().keep_alive(true).start().await.expect("a sandbox");
    let t = Duration::from_secs(20);
    let who = first
        .workspace()
        .execute_command("id -u", None, t)
        .await
        .expect("exec");
    assert_eq!(who.stdout.trim(), "10001", "{who:?}");
    let local = tempfile::tempdir().expect("temp dir");
    let payload: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let source = local.path().join("in.bin");
    std::fs::write(&source, &payload).expect("write");
    first
        .workspace()
        .file_upload(&source, "in.bin")
        .await
        .expect("upload");
    let back = local.path().join("out.bin");
    first
        .workspace()
        .file_download("in.bin", &back)
        .await
        .expect("download");
    assert_eq!(std::fs::read(&back).expect("read"), payload);
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo swarm-$(id -u)"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .expect("scripted llm");
    let mut config = Llm::new("openai/scripted-model");
    config.base_url = Some(llm.base_url());
    config.api_key = Some("scripted".into());
    let conversation = oh_client::RemoteConversation::builder(first.workspace())
        .agent(Agent::new(config, vec![ToolSpec::new("terminal")]))
        .autotitle(false)
        .create()
        .await
        .expect("conversation");
    conversation
        .send_text("Say where you are.")
        .await
        .expect("send");
    assert_eq!(
        conversation.run().await.expect("run"),
        ExecutionStatus::Finished
    );
    assert!(
        conversation
            .events()
            .iter()
            .any(|e| matches!(e, Event::Observation(_))
                && serde_json::to_string(e).is_ok_and(|s| s.contains("swarm-10001")))
    );
    conversation.close().await;
    // keep_alive: the service stays, and the same session reattaches to it.
    let session_id = first.session_id().to_owned();
    let runtime_id = first.runtime_id().to_owned();
    first.cleanup().await.expect("cleanup");
    drop(first);
    assert_eq!(harness.services().await.len(), 1);
    let mut second = builder()
        .session_id(&session_id)
        .start()
        .await
        .expect("reattach");
    assert_eq!(second.runtime_id(), runtime_id);
    second.pause().await.expect("pause");
    second.resume().await.expect("resume");
    let after = second
        .workspace()
        .execute_command("echo back", None, t)
        .await
        .expect("exec after resume");
    assert_eq!(after.stdout.trim(), "back");
    second.cleanup().await.expect("cleanup");
    harness.assert_all_gone().await;
}
