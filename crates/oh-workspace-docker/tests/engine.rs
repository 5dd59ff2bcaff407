//! DockerWorkspace on the real Docker Engine. These tests need the engine and the image
//! `cargo xtask image` builds, so they are ignored by default; CI runs them with
//! `cargo test -p oh-workspace-docker -- --ignored` after building the image.
#![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use oh_client::RemoteConversation;
use oh_protocol::{Agent, Event, ExecutionStatus, Llm, ToolSpec};
use oh_testkit::{Reply, ScriptedLlm};
use oh_workspace_docker::{DockerWorkspace, Error, connect};
use serde_json::json;

const NEEDS: &str = "needs the Docker Engine and `cargo xtask image`";

/// Ids of the containers carrying our label.
async fn labelled() -> Vec<String> {
    oh_workspace_docker::containers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

async fn exists(id: &str) -> bool {
    labelled().await.iter().any(|c| c == id)
}

/// Whether a container with this name exists (any state).
async fn exists_named(name: &str) -> bool {
    let docker = connect().await.unwrap();
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([("name".to_owned(), vec![name.to_owned()])])),
        ..ListContainersOptions::default()
    };
    !docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn commands_and_files_run_in_the_container_and_cleanup_removes_it() {
    let workspace = DockerWorkspace::builder().start().await.expect(NEEDS);
    let id = workspace.container_id().to_owned();
    assert!(exists(&id).await);
    let t = Duration::from_secs(20);
    let who = workspace
        .workspace()
        .execute_command("id -u; pwd; git --version", Some("/workspace/project"), t)
        .await
        .unwrap();
    assert_eq!(who.exit_code, 0, "{who:?}");
    let lines: Vec<&str> = who.stdout.lines().collect();
    assert_eq!(lines[0], "10001", "the server runs as the non-root user");
    assert_eq!(lines[1], "/workspace/project");
    assert!(lines[2].starts_with("git version"));
    // The generated key is required.
    let anonymous =
        oh_client::RemoteWorkspace::new(workspace.workspace().host(), "/workspace/project")
            .unwrap();
    let refused = anonymous.execute_command("true", None, t).await;
    assert_eq!(refused.err().and_then(|e| e.status()), Some(401));
    // Files both ways.
    let local = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let source = local.path().join("in.bin");
    std::fs::write(&source, &payload).unwrap();
    workspace
        .workspace()
        .file_upload(&source, "/workspace/project/data/in.bin")
        .await
        .unwrap();
    let size = workspace
        .workspace()
        .execute_command("wc -c < data/in.bin", Some("/workspace/project"), t)
        .await
        .unwrap();
    assert_eq!(size.stdout.trim(), "200000");
    let back = local.path().join("out.bin");
    workspace
        .workspace()
        .file_download("/workspace/project/data/in.bin", &back)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), payload);
    // Published on loopback only.
    assert!(
        workspace
            .workspace()
            .host()
            .starts_with("http://127.0.0.1:")
    );
    workspace.cleanup().await.unwrap();
    assert!(!exists(&id).await, "cleanup left the container");
    assert!(matches!(workspace.pause().await, Err(Error::NotRunning)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn a_scripted_conversation_runs_inside_the_container() {
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "terminal",
            json!({"command": "echo inside-$(id -u) > made-in-container.txt && cat made-in-container.txt"}),
        ),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    // Host networking, so the container reaches the scripted LLM on the host's loopback.
    let workspace = DockerWorkspace::builder()
        .network("host")
        .start()
        .await
        .expect(NEEDS);
    let mut config = Llm::new("openai/scripted-model");
    config.base_url = Some(llm.base_url());
    config.api_key = Some("scripted".into());
    let agent = Agent::new(config, vec![ToolSpec::new("terminal")]);
    let conversation = RemoteConversation::builder(workspace.workspace())
        .agent(agent)
        .autotitle(false)
        .create()
        .await
        .unwrap();
    conversation.send_text("Leave a mark.").await.unwrap();
    let status = conversation.run().await.unwrap();
    assert_eq!(status, ExecutionStatus::Finished);
    let observed = conversation.events().iter().any(|e| {
        matches!(e, Event::Observation(_))
            && serde_json::to_string(e).unwrap().contains("inside-10001")
    });
    assert!(observed, "the command did not run in the container");
    let local = tempfile::tempdir().unwrap();
    let mark = local.path().join("mark.txt");
    workspace
        .workspace()
        .file_download("/workspace/project/made-in-container.txt", &mark)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&mark).unwrap(), "inside-10001\n");
    conversation.close().await;
    workspace.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn pause_freezes_and_resume_thaws() {
    let workspace = DockerWorkspace::builder().start().await.expect(NEEDS);
    workspace.pause().await.unwrap();
    assert!(
        !workspace.workspace().alive().await,
        "a paused server answered"
    );
    workspace.resume().await.unwrap();
    let echo = workspace
        .workspace()
        .execute_command("echo back", None, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(echo.stdout, "back\n");
    workspace.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn dropping_the_workspace_removes_the_container() {
    let workspace = DockerWorkspace::builder().start().await.expect(NEEDS);
    let id = workspace.container_id().to_owned();
    drop(workspace);
    assert!(!exists(&id).await, "drop left the container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn a_dying_container_fails_fast_with_its_logs_and_is_removed() {
    let started = std::time::Instant::now();
    // An option the server rejects: it exits at once.
    let failed = DockerWorkspace::builder()
        .env("OH_MAX_CONCURRENT_RUNS", "0")
        .start()
        .await;
    let elapsed = started.elapsed();
    let name = match failed {
        Err(Error::ContainerExited { logs, name, .. }) => {
            assert!(
                logs.contains("max_concurrent_runs"),
                "the logs miss the cause: {logs}"
            );
            name
        }
        other => panic!("expected ContainerExited, got {other:?}"),
    };
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert!(
        !exists_named(&name).await,
        "the failed container was left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn a_missing_image_is_a_clear_error() {
    let missing = DockerWorkspace::builder()
        .image("openhands-agent-server:no-such-tag")
        .start()
        .await;
    assert!(
        matches!(missing, Err(Error::ImageMissing { ref image }) if image.ends_with("no-such-tag")),
        "{missing:?}"
    );
    // Only the image this repository builds is sent to `cargo xtask image`.
    let message = missing.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("pull or build it"), "{message}");
    assert!(!message.contains("xtask"), "{message}");
}

/// A working directory the container's user cannot create fails `start` with its path,
/// and leaves no container; a relative one is refused before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn a_working_dir_that_cannot_be_made_fails_at_start() {
    let refused = DockerWorkspace::builder()
        .working_dir("/nope/dir")
        .start()
        .await;
    let Err(Error::InvalidOption(message)) = &refused else {
        panic!("{refused:?}")
    };
    assert!(message.contains("/nope/dir"), "{message}");
    let name = message
        .split("container ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no container named in {message}"));
    assert!(name.starts_with("agent-server-"), "{message}");
    assert!(!exists_named(name).await, "{name} was removed");

    let relative = DockerWorkspace::builder()
        .working_dir("relative/dir")
        .start()
        .await;
    let Err(Error::InvalidOption(message)) = &relative else {
        panic!("{relative:?}")
    };
    assert!(message.contains("absolute"), "{message}");
}

/// On Docker's default bridge, an LLM on the host's loopback is out of reach; the run's
/// error says why and what to do, instead of a bare "connection refused".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn an_llm_on_the_hosts_loopback_is_explained_on_the_bridge_network() {
    let llm = ScriptedLlm::start(vec![Reply::tool(
        "finish",
        json!({"message": "unreachable"}),
    )])
    .await
    .unwrap();
    let workspace = DockerWorkspace::builder().start().await.expect(NEEDS);
    let mut config = Llm::new("openai/scripted-model");
    config.base_url = Some(llm.base_url());
    config.api_key = Some("scripted".into());
    config.num_retries = 0;
    let conversation = RemoteConversation::builder(workspace.workspace())
        .agent(Agent::new(config, vec![ToolSpec::new("terminal")]))
        .autotitle(false)
        .create()
        .await
        .unwrap();
    conversation.send_text("Say hi.").await.unwrap();
    let failed = conversation
        .run()
        .await
        .expect_err("the LLM is out of reach");
    let oh_client::Error::Run(oh_protocol::RunFailure { detail, .. }) = &failed else {
        panic!("{failed:?}")
    };
    assert!(detail.contains("the container itself"), "{detail}");
    assert!(detail.contains("network(\"host\")"), "{detail}");
    assert_eq!(
        llm.remaining(),
        1,
        "the container never reached the host's loopback"
    );
    conversation.close().await;
    workspace.cleanup().await.unwrap();
}

/// The child half of the panic test: starts a workspace, records its container and panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by panicking_mid_use_leaves_no_container"]
async fn panic_child() {
    let Ok(record) = std::env::var("OH_DOCKER_PANIC_RECORD") else {
        return;
    };
    let workspace = DockerWorkspace::builder().start().await.expect(NEEDS);
    std::fs::write(&record, workspace.container_id()).unwrap();
    let _ = workspace
        .workspace()
        .execute_command("true", None, Duration::from_secs(10))
        .await;
    panic!("a test that panics while the workspace is in use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn panicking_mid_use_leaves_no_container() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("container-id");
    // The child's own test report is captured, not mixed into this one.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "panic_child"])
        .env("OH_DOCKER_PANIC_RECORD", &record)
        .output()
        .unwrap();
    assert!(
        !child.status.success()
            && String::from_utf8_lossy(&child.stdout).contains("a test that panics"),
        "the child test was meant to panic mid-use"
    );
    let id = std::fs::read_to_string(&record).expect("the child never started a container");
    assert!(!id.is_empty());
    assert!(!exists(&id).await, "the panicking test left its container");
}

/// Runs the child test `test` of this binary, which starts a workspace and writes its
/// container id to the file named by `record_var`; returns once the container exists.
async fn child_holding_a_workspace(
    test: &str,
    record_var: &str,
) -> (tempfile::TempDir, std::process::Child, String) {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("container-id");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", test])
        .env(record_var, &record)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !record.exists() || std::fs::read_to_string(&record).unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the child never started a container"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let id = std::fs::read_to_string(&record).unwrap();
    assert!(exists(&id).await);
    (dir, child, id)
}

/// SIGINT, as Ctrl-C sends it.
fn interrupt(child: &std::process::Child) {
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
}

/// The child half of the Ctrl-C test: starts a workspace with the opt-in Ctrl-C handler,
/// records its container, waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by ctrl_c_removes_the_container"]
async fn ctrl_c_child() {
    let Ok(record) = std::env::var("OH_DOCKER_CTRLC_RECORD") else {
        return;
    };
    let workspace = DockerWorkspace::builder()
        .handle_ctrl_c(true)
        .start()
        .await
        .expect(NEEDS);
    std::fs::write(&record, workspace.container_id()).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(workspace);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn ctrl_c_removes_the_container() {
    let (_dir, mut child, id) =
        child_holding_a_workspace("ctrl_c_child", "OH_DOCKER_CTRLC_RECORD").await;
    interrupt(&child);
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "the Ctrl-C handler did not exit with 130"
    );
    assert!(!exists(&id).await, "Ctrl-C left the container");
    let left = oh_workspace_docker::containers(Some(child.id()))
        .await
        .unwrap();
    assert!(left.is_empty(), "the child left containers: {left:?}");
}

/// The child half of the shutdown-future test: the application's own Ctrl-C handling is
/// the shutdown future of its workspace; after it fires, the process goes on running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the_shutdown_future_removes_the_container"]
async fn shutdown_child() {
    let Ok(record) = std::env::var("OH_DOCKER_SHUTDOWN_RECORD") else {
        return;
    };
    let workspace = DockerWorkspace::builder()
        .cleanup_on(tokio::signal::ctrl_c())
        .start()
        .await
        .expect(NEEDS);
    std::fs::write(&record, workspace.container_id()).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(workspace);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn the_shutdown_future_removes_the_container() {
    let (_dir, mut child, id) =
        child_holding_a_workspace("shutdown_child", "OH_DOCKER_SHUTDOWN_RECORD").await;
    interrupt(&child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while exists(&id).await {
        assert!(
            std::time::Instant::now() < deadline,
            "the shutdown future did not remove the container"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the library ended the process; the application owns that"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let left = oh_workspace_docker::containers(Some(child.id()))
        .await
        .unwrap();
    assert!(left.is_empty(), "the child left containers: {left:?}");
}

/// The child half of the unreachable-daemon test, run with a `DOCKER_HOST` that answers
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by an_unreachable_daemon_is_a_clear_error"]
async fn unreachable_child() {
    if std::env::var("OH_DOCKER_UNREACHABLE").is_err() {
        return;
    }
    let started = DockerWorkspace::builder().start().await;
    assert!(
        matches!(started, Err(Error::DaemonUnreachable(_))),
        "{started:?}"
    );
}

#[test]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
fn an_unreachable_daemon_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-daemon.sock");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "unreachable_child"])
        .env("OH_DOCKER_UNREACHABLE", "1")
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && report.contains("1 passed"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn cleanup_image_removes_the_image_too() {
    let docker = connect().await.unwrap();
    let options = bollard::query_parameters::TagImageOptions {
        repo: Some("openhands-agent-server".to_owned()),
        tag: Some("cleanup-test".to_owned()),
    };
    docker
        .tag_image(oh_workspace_docker::DEFAULT_IMAGE, Some(options))
        .await
        .expect(NEEDS);
    let workspace = DockerWorkspace::builder()
        .image("openhands-agent-server:cleanup-test")
        .cleanup_image(true)
        .start()
        .await
        .unwrap();
    workspace.cleanup().await.unwrap();
    assert!(
        docker
            .inspect_image("openhands-agent-server:cleanup-test")
            .await
            .is_err()
    );
    assert!(
        docker
            .inspect_image(oh_workspace_docker::DEFAULT_IMAGE)
            .await
            .is_ok(),
        "only the workspace's own tag goes"
    );
}
