//! The `openhands-sandbox-server` binary killed with -9 and restarted, on the real engine:
//! what it had is served again, reconciled with the engine, and nothing is orphaned. Ignored
//! by default (needs the Docker Engine and `cargo xtask image`); CI runs them with
//! `cargo test -p oh-sandbox-server -- --ignored`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use oh_client::ServiceClient;
use oh_protocol::SecretString;
use oh_sandbox_server::{RUNTIME_LABEL, SERVER_LABEL};
use serde_json::{Value, json};

const IMAGE: &str = "openhands-agent-server:latest";
const KEY: &str = "restart-test-key";

/// The server binary on a free port; killed with -9 on drop.
struct Binary {
    child: Child,
    url: String,
}

impl Binary {
    fn start(state: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_openhands-sandbox-server"))
            .args([
                "--port",
                "0",
                "--api-key",
                KEY,
                "--check-interval-seconds",
                "0.2",
            ])
            .arg("--state-dir")
            .arg(state)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                if !sent && let Some(at) = line.find("listening on http://") {
                    let url = line[at + "listening on ".len()..].trim().to_owned();
                    let _ = tx.send(url);
                    sent = true;
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("needs the Docker Engine: the server did not start");
        Self { child, url }
    }

    fn api(&self) -> ServiceClient {
        ServiceClient::new(&self.url)
            .unwrap()
            .with_header("X-API-Key", &SecretString::new(KEY))
            .unwrap()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn labelled(label: &str) -> Vec<String> {
    let docker = oh_workspace_docker::connect().await.unwrap();
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![label.to_owned()],
        )])),
        ..ListContainersOptions::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

async fn ours(state: &Path) -> Vec<String> {
    let instance = std::fs::read_to_string(state.join("instance")).unwrap();
    labelled(&format!("{SERVER_LABEL}={instance}")).await
}

/// Polls `check` every 50 ms until it holds, for at most `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_body(session: &str, command: &str) -> Value {
    json!({"image": IMAGE, "session_id": session, "command": command,
           "working_dir": "/", "run_as_user": 10001, "fs_group": 10001})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn kill_9_mid_start_then_restart_fails_that_start_and_leaves_nothing_running() {
    let state = tempfile::tempdir().unwrap();
    // An agent server that never answers: the start is still in flight at the kill.
    let hanging =
        oh_testkit::docker::derived_image(IMAGE, "oh-sandbox-test-hang:latest", "sleep 600")
            .await
            .expect("needs the Docker Engine and `cargo xtask image`");
    let server = Binary::start(state.path(), &["--start-wait-seconds", "60"]);
    let (url, image) = (server.url.clone(), hanging.clone());
    let start = tokio::spawn(async move {
        oh_workspace_api::ApiRemoteWorkspace::builder(&url, KEY, &image)
            .image_pull_policy(oh_protocol::runtime::PullPolicy::Never)
            .session_id("cut-off")
            .start()
            .await
    });
    eventually(
        Duration::from_secs(30),
        "the sandbox's container exists",
        || async { !ours(state.path()).await.is_empty() },
    )
    .await;
    server.kill();
    // Our client's error is typed and names the session and the call it was in.
    let cut = start
        .await
        .unwrap()
        .expect_err("the start succeeded although the server was killed");
    assert!(
        matches!(cut, oh_workspace_api::Error::Api { .. }),
        "{cut:?}"
    );
    let text = cut.to_string();
    assert!(
        text.contains("cut-off") && text.contains("POST /start"),
        "{text}"
    );
    // The container outlived the server; the restart removes it and fails the start.
    assert_eq!(ours(state.path()).await.len(), 1);
    let server = Binary::start(state.path(), &[]);
    assert!(
        ours(state.path()).await.is_empty(),
        "the restart left the container"
    );
    let runtime: Value = server.api().get("/sessions/cut-off").await.unwrap();
    assert_eq!(runtime["status"], "error", "{runtime}");
    assert!(
        runtime["pod_logs"].as_str().unwrap().contains("restarted"),
        "{runtime}"
    );
    // The same session starts again (the failed runtime is replaced).
    let again = oh_workspace_api::ApiRemoteWorkspace::builder(&server.url, KEY, IMAGE)
        .image_pull_policy(oh_protocol::runtime::PullPolicy::Never)
        .session_id("cut-off")
        .start()
        .await
        .unwrap();
    assert_ne!(again.runtime_id(), runtime["runtime_id"].as_str().unwrap());
    again.cleanup().await.unwrap();
    assert!(ours(state.path()).await.is_empty());
    let docker = oh_workspace_docker::connect().await.unwrap();
    let _ = docker
        .remove_image(
            &hanging,
            None::<bollard::query_parameters::RemoveImageOptions>,
            None,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn after_kill_9_every_sandbox_is_served_and_the_engine_reconciled() {
    let state = tempfile::tempdir().unwrap();
    let server = Binary::start(state.path(), &[]);
    let api = server.api();
    let command = "/usr/local/bin/openhands-agent-server --port 60000";
    let mut runtimes = Vec::new();
    for session in ["kept-running", "kept-paused", "loses-its-container"] {
        let runtime: Value = api
            .post("/start", &start_body(session, command), None)
            .await
            .unwrap();
        assert_eq!(runtime["status"], "running", "{runtime}");
        runtimes.push(runtime);
    }
    let _: Value = api
        .post(
            "/pause",
            &json!({"runtime_id": runtimes[1]["runtime_id"]}),
            None,
        )
        .await
        .unwrap();
    server.kill();
    let docker = oh_workspace_docker::connect().await.unwrap();
    // While it is down: one sandbox's container disappears, and a stray appears with this
    // server's label but no record.
    let lost = labelled(&format!(
        "{RUNTIME_LABEL}={}",
        runtimes[2]["runtime_id"].as_str().unwrap()
    ))
    .await;
    assert_eq!(lost.len(), 1);
    docker
        .remove_container(
            &lost[0],
            Some(RemoveContainerOptions {
                force: true,
                ..RemoveContainerOptions::default()
            }),
        )
        .await
        .unwrap();
    let instance = std::fs::read_to_string(state.path().join("instance")).unwrap();
    let stray = docker
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            bollard::models::ContainerCreateBody {
                image: Some(IMAGE.to_owned()),
                labels: Some(HashMap::from([(SERVER_LABEL.to_owned(), instance)])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let server = Binary::start(state.path(), &[]);
    let api = server.api();
    let list: Value = api.get("/list").await.unwrap();
    let listed: Vec<&str> = list["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["kept-running", "kept-paused"], "{list}");
    let running: Value = api.get("/sessions/kept-running").await.unwrap();
    assert_eq!(running["status"], "running");
    assert_eq!(running["session_api_key"], runtimes[0]["session_api_key"]);
    // Its agent server still answers with the same key.
    let agent = ServiceClient::new(running["url"].as_str().unwrap())
        .unwrap()
        .with_header(
            "X-Session-API-Key",
            &SecretString::new(running["session_api_key"].as_str().unwrap()),
        )
        .unwrap();
    let count: Value = agent.get("/api/conversations/count").await.unwrap();
    assert_eq!(count, json!(0));
    let paused: Value = api.get("/sessions/kept-paused").await.unwrap();
    assert_eq!(paused["status"], "paused");
    let resumed: Value = api
        .post(
            "/resume",
            &json!({"runtime_id": paused["runtime_id"]}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(resumed["status"], "running", "{resumed}");
    let gone: Value = api.get("/sessions/loses-its-container").await.unwrap();
    assert_eq!(gone["status"], "stopped", "{gone}");
    let stray_left = labelled(SERVER_LABEL).await.contains(&stray.id);
    assert!(!stray_left, "the stray container was not removed");
    // A container that disappears while the server runs is noticed by the checks.
    let id = running["runtime_id"].as_str().unwrap();
    let container = labelled(&format!("{RUNTIME_LABEL}={id}")).await;
    docker
        .remove_container(
            &container[0],
            Some(RemoveContainerOptions {
                force: true,
                ..RemoveContainerOptions::default()
            }),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the check marks it stopped",
        || async {
            let r: Value = api.get("/sessions/kept-running").await.unwrap();
            r["status"] == "stopped"
        },
    )
    .await;
    for runtime in [&resumed] {
        let _: Value = api
            .post("/stop", &json!({"runtime_id": runtime["runtime_id"]}), None)
            .await
            .unwrap();
    }
    assert!(
        ours(state.path()).await.is_empty(),
        "containers left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn an_idle_sandbox_is_paused_and_resumes_with_its_key() {
    let state = tempfile::tempdir().unwrap();
    let server = Binary::start(state.path(), &["--idle-timeout-seconds", "2"]);
    let api = server.api();
    let command = "/usr/local/bin/openhands-agent-server --port 60000";
    let runtime: Value = api
        .post("/start", &start_body("idle", command), None)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the idle sandbox is paused",
        || async {
            let r: Value = api.get("/sessions/idle").await.unwrap();
            r["status"] == "paused"
        },
    )
    .await;
    let resumed: Value = api
        .post(
            "/resume",
            &json!({"runtime_id": runtime["runtime_id"]}),
            None,
        )
        .await
        .unwrap();
    assert_eq!(resumed["status"], "running", "{resumed}");
    assert_eq!(resumed["session_api_key"], runtime["session_api_key"]);
    let agent = ServiceClient::new(resumed["url"].as_str().unwrap())
        .unwrap()
        .with_header(
            "X-Session-API-Key",
            &SecretString::new(resumed["session_api_key"].as_str().unwrap()),
        )
        .unwrap();
    let count: Value = agent.get("/api/conversations/count").await.unwrap();
    assert_eq!(count, json!(0));
    let _: Value = api
        .post("/stop", &json!({"runtime_id": runtime["runtime_id"]}), None)
        .await
        .unwrap();
    assert!(ours(state.path()).await.is_empty());
}
