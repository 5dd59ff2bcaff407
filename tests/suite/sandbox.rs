//! `ApiRemoteWorkspace` against our sandbox server, on the real Docker Engine. These tests
//! need the engine and the image `cargo xtask image` builds, so they are ignored by default;
//! CI runs them with `cargo test -p openhands-e2e --test all -- --ignored sandbox::`.
//!
//! Each test starts its own `SandboxServer` in process (own state directory, so own
//! instance label) and ends by counting the containers that carry its label: none may be
//! left, whatever happened.
#![allow(clippy::print_stdout, reason = "tests print their figures")]

use super::server;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::query_parameters::ListContainersOptions;
use oh_protocol::runtime::PullPolicy;
use oh_sandbox_server::SERVER_LABEL;
use oh_testkit::{Reply, ScriptedLlm};
use openhands::prelude::*;
use openhands::{ApiRemoteWorkspace, Error};
use serde_json::json;
use server::{IMAGE, NEEDS, Server, containers_of, runtime_status, scripted_agent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn a_sandbox_runs_commands_files_and_a_conversation_and_cleanup_removes_it() {
    // Host networking: the sandbox reaches the scripted LLM on the host's loopback.
    let server = Server::start(|c| c.network = Some("host".into())).await;
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "terminal",
            json!({"command": "echo made-by-$(id -u) > mark.txt && cat mark.txt"}),
        ),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    // SAFETY-free: the variable is read by the workspace at start.
    let started = Instant::now();
    let workspace = server
        .workspace()
        .forward_env(["PATH"])
        .working_dir("/workspace/project")
        .start()
        .await
        .expect(NEEDS);
    println!("provisioned in {:?}", started.elapsed());
    assert_eq!(server.containers().await, 1);
    server::runs_commands_and_files(workspace.workspace()).await;
    // The facade's conversation runs there.
    let conversation = Conversation::builder(scripted_agent(&llm), &workspace)
        .autotitle(false)
        .build()
        .await
        .unwrap();
    conversation.send_text("Leave a mark.").await.unwrap();
    assert_eq!(conversation.run().await.unwrap(), ExecutionStatus::Finished);
    let marked = conversation.events().iter().any(|e| {
        matches!(e, Event::Observation(_))
            && serde_json::to_string(e).unwrap().contains("made-by-10001")
    });
    assert!(marked, "the agent's command did not run in the sandbox");
    conversation.close().await;
    let session_id = workspace.session_id().to_owned();
    workspace.cleanup().await.unwrap();
    assert_eq!(
        runtime_status(&server, &session_id).await["status"],
        "stopped"
    );
    assert_eq!(server.containers().await, 0, "cleanup left a container");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn keep_alive_leaves_the_sandbox_and_the_same_session_reattaches() {
    let server = Server::start(|_| {}).await;
    let first = server
        .workspace()
        .keep_alive(true)
        .start()
        .await
        .expect(NEEDS);
    let session_id = first.session_id().to_owned();
    let runtime_id = first.runtime_id().to_owned();
    first
        .workspace()
        .execute_command(
            "echo kept > /workspace/kept.txt",
            None,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    first.cleanup().await.unwrap();
    drop(first);
    assert_eq!(
        runtime_status(&server, &session_id).await["status"],
        "running"
    );
    assert_eq!(
        server.containers().await,
        1,
        "keep_alive removed the sandbox"
    );
    let second = server
        .workspace()
        .session_id(&session_id)
        .start()
        .await
        .unwrap();
    assert_eq!(
        second.runtime_id(),
        runtime_id,
        "a new sandbox instead of the kept one"
    );
    let kept = second
        .workspace()
        .execute_command("cat /workspace/kept.txt", None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(kept.stdout.trim(), "kept");
    second.cleanup().await.unwrap();
    assert_eq!(server.containers().await, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn pause_then_resume_keeps_the_workspace_authenticated() {
    let server = Server::start(|_| {}).await;
    let mut workspace = server.workspace().start().await.expect(NEEDS);
    workspace.pause().await.unwrap();
    assert_eq!(
        runtime_status(&server, workspace.session_id()).await["status"],
        "paused"
    );
    workspace.resume().await.unwrap();
    let after = workspace
        .workspace()
        .execute_command("echo back", None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(after.stdout.trim(), "back");
    // A paused session is resumed by a workspace that attaches to it.
    workspace.pause().await.unwrap();
    let attached = server
        .workspace()
        .session_id(workspace.session_id())
        .start()
        .await
        .unwrap();
    assert_eq!(attached.runtime_id(), workspace.runtime_id());
    let out = attached
        .workspace()
        .execute_command("echo attached", None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "attached");
    attached.cleanup().await.unwrap();
    workspace.cleanup().await.unwrap();
    assert_eq!(server.containers().await, 0);
    server.stop().await;
}

/// A typed error names the session, and what the server said names the state.
fn assert_names(error: &Error, session_id: &str, state: &str) {
    let chain = {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    };
    println!("error: {chain}");
    assert!(chain.contains(session_id), "no session id in: {chain}");
    assert!(chain.contains(state), "no {state:?} in: {chain}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn failures_are_typed_errors_and_leave_nothing_running() {
    let server = Server::start(|c| {
        c.start_wait = Duration::from_secs(2);
        c.startup_deadline = Duration::from_secs(60);
    })
    .await;
    let client = |image: &str, session: &str| {
        ApiRemoteWorkspace::builder(&server.url, server.key.as_str(), image)
            .image_pull_policy(PullPolicy::Never)
            .session_id(session)
            .startup_wait_timeout(Duration::from_secs(4))
    };
    // An image that does not exist.
    let error = client("no-such-image:42", "missing-image")
        .start()
        .await
        .unwrap_err();
    assert_names(&Error::from(error), "missing-image", "status error");
    assert_names(
        &Error::from(
            client("no-such-image:42", "missing-image-2")
                .start()
                .await
                .unwrap_err(),
        ),
        "missing-image-2",
        "does not exist",
    );
    // An agent server that exits at once, again and again.
    let crashing = oh_testkit::docker::derived_image(
        IMAGE,
        "oh-sandbox-test-crash:latest",
        "echo crashing >&2; exit 3",
    )
    .await
    .unwrap();
    let error = client(&crashing, "crash-loop").start().await.unwrap_err();
    let error = Error::from(error);
    assert_names(&error, "crash-loop", "crashloopbackoff");
    assert_names(&error, "crash-loop", "crashing");
    // An agent server slower than the client's budget: a typed error after the budget, and
    // the client stops the sandbox.
    let slow = oh_testkit::docker::derived_image(IMAGE, "oh-sandbox-test-slow:latest", "sleep 600")
        .await
        .unwrap();
    let started = Instant::now();
    let error = client(&slow, "too-slow").start().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, openhands::api::Error::NotReady { .. }),
        "{error:?}"
    );
    assert_names(&Error::from(error), "too-slow", "running");
    assert_eq!(
        runtime_status(&server, "too-slow").await["status"],
        "stopped"
    );
    // A wrong API key.
    let error = ApiRemoteWorkspace::builder(&server.url, "wrong-key", IMAGE)
        .session_id("wrong-key")
        .start()
        .await
        .unwrap_err();
    assert_names(&Error::from(error), "wrong-key", "401");
    assert_eq!(
        server.containers().await,
        0,
        "a failed start left a container"
    );
    server.stop().await;
    let docker = oh_workspace_docker::connect().await.unwrap();
    for image in [crashing, slow] {
        let _ = docker
            .remove_image(
                &image,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn past_the_cap_a_start_is_429_and_the_warm_pool_serves_starts() {
    let server = Server::start(|c| {
        c.max_sandboxes = 2;
        c.warm = 1;
    })
    .await;
    let first = server.workspace().start().await.expect(NEEDS);
    let second = server.workspace().start().await.unwrap();
    let third = server.workspace().start().await.unwrap_err();
    assert_names(&Error::from(third), "agent-server-", "429");
    for w in [&first, &second] {
        let out = w
            .workspace()
            .execute_command("echo ok", None, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.stdout.trim(), "ok");
    }
    first.cleanup().await.unwrap();
    second.cleanup().await.unwrap();
    let instance = server.instance.clone();
    server.stop().await;
    assert_eq!(containers_of(&instance).await, 0, "containers left behind");
}

/// Published host ports of this server's warm-pool containers (claimed or not).
async fn pool_ports(server: &Server) -> Vec<u16> {
    let docker = oh_workspace_docker::connect().await.unwrap();
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{SERVER_LABEL}={}", server.instance),
                format!("{}=1", oh_sandbox_server::POOL_LABEL),
            ],
        )])),
        ..ListContainersOptions::default()
    };
    docker
        .list_containers(Some(options))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|c| c.ports.unwrap_or_default())
        .filter_map(|p| p.public_port)
        .collect()
}

async fn wait_warm(server: &Server, ready: u64) {
    let health = oh_client::ServiceClient::new(&server.url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h: serde_json::Value = health.get("/health").await.unwrap();
        if h["warm_ready"].as_u64() == Some(ready) {
            return;
        }
        assert!(Instant::now() < deadline, "the pool did not fill: {h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn a_start_without_custom_environment_claims_a_warm_sandbox_once() {
    let server = Server::start(|c| c.warm = 1).await;
    wait_warm(&server, 1).await;
    let started = Instant::now();
    let first = server.workspace().start().await.expect(NEEDS);
    let out = first
        .workspace()
        .execute_command("echo warm", None, Duration::from_secs(10))
        .await
        .unwrap();
    println!("warm start to first echo: {:?}", started.elapsed());
    assert_eq!(out.stdout.trim(), "warm");
    let port =
        |w: &ApiRemoteWorkspace| -> u16 { w.url().rsplit(':').next().unwrap().parse().unwrap() };
    assert!(
        pool_ports(&server).await.contains(&port(&first)),
        "the start was not served from the pool"
    );
    // The claimed server answers only its own key: the pool's bootstrap secret is not a
    // session key, and a request without a key is refused.
    let anonymous = oh_client::RemoteWorkspace::new(first.url(), "/").unwrap();
    let refused = anonymous
        .execute_command("true", None, Duration::from_secs(10))
        .await;
    assert_eq!(refused.err().and_then(|e| e.status()), Some(401));
    // Stopped right after a claim (its refill in flight) and restarted: the refill leaves
    // nothing behind, and the claimed sandbox is adopted, not taken for a stray.
    let instance = server.instance.clone();
    let (state, key) = server.stop_keeping_state().await;
    assert_eq!(
        containers_of(&instance).await,
        1,
        "a pool member outlived the server"
    );
    let server = Server::start_in(state, key, |c| c.warm = 1).await;
    let adopted = runtime_status(&server, first.session_id()).await;
    assert_eq!(adopted["status"], "running", "{adopted}");
    let out = first
        .workspace()
        .execute_command("echo still here", None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out.stdout.trim(), "still here");
    // The pool refills with another container; the next start gets that one.
    wait_warm(&server, 1).await;
    let second = server.workspace().start().await.unwrap();
    assert_ne!(
        port(&second),
        port(&first),
        "a pooled server served two sessions"
    );
    assert!(pool_ports(&server).await.contains(&port(&second)));
    // A start with custom environment is not served from the pool.
    wait_warm(&server, 1).await;
    let custom = server
        .workspace()
        .forward_env(["PATH"])
        .start()
        .await
        .unwrap();
    assert!(!pool_ports(&server).await.contains(&port(&custom)));
    // `first` was started through the server before the restart (another port): stop it
    // through this one; its own cleanup can no longer reach the old address.
    let client = oh_client::ServiceClient::new(&server.url)
        .unwrap()
        .with_header("X-API-Key", &server.key.as_str().into())
        .unwrap();
    let stopped: serde_json::Value = client
        .post("/stop", &json!({"runtime_id": first.runtime_id()}), None)
        .await
        .unwrap();
    assert_eq!(stopped["status"], "stopped");
    assert!(
        first.cleanup().await.is_err(),
        "the old server address still answers"
    );
    for w in [&second, &custom] {
        w.cleanup().await.unwrap();
    }
    let instance = server.instance.clone();
    server.stop().await;
    assert_eq!(
        containers_of(&instance).await,
        0,
        "the pool left containers"
    );
}
