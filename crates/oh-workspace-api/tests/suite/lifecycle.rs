//! Attach, start, resume, pause and cleanup.

use std::time::Duration;

use oh_client::RemoteWorkspace;
use oh_protocol::runtime::PullPolicy;
use oh_workspace_api::{ApiRemoteWorkspace, ApiRemoteWorkspaceBuilder, Error, TargetType};
use pretty_assertions::assert_eq;
use serde_json::json;

use super::fake::{API_KEY, AgentServer, FakeApi, Logs};

const UNSET: &str = "OH_WORKSPACE_API_TEST_SURELY_UNSET_8D2F";

fn builder(api: &FakeApi, session_id: &str) -> ApiRemoteWorkspaceBuilder {
    ApiRemoteWorkspace::builder(
        api.url.as_str(),
        API_KEY,
        "ghcr.io/openhands/agent-server:x",
    )
    .session_id(session_id)
    .startup_wait_timeout(Duration::from_secs(20))
}

/// Through `AsRef`, as code written for any remote workspace takes it.
async fn echo(workspace: &impl AsRef<RemoteWorkspace>) -> String {
    workspace
        .as_ref()
        .execute_command("echo hi", None, Duration::from_secs(10))
        .await
        .unwrap()
        .stdout
}

#[tokio::test]
async fn a_new_session_is_started_with_the_reference_body() {
    let agent = AgentServer::start("sk-session-1111").await;
    let api = FakeApi::start(&agent.url, &agent.key).await;
    let logs = Logs::global();
    let path = std::env::var("PATH").unwrap();

    let builder = builder(&api, "s-start").forward_env(["PATH", UNSET]);
    let workspace = builder.clone().start().await.unwrap();

    assert_eq!(
        api.lines(),
        [
            "GET /sessions/s-start",
            "POST /start",
            "GET /sessions/s-start"
        ]
    );
    let calls = api.calls();
    assert!(calls.iter().all(|c| c.api_key.as_deref() == Some(API_KEY)));
    assert_eq!(
        calls[1].body,
        json!({
            "image": "ghcr.io/openhands/agent-server:x",
            "command": "/usr/local/bin/openhands-agent-server --port 60000",
            "working_dir": "/",
            "environment": { "PATH": path },
            "session_id": "s-start",
            "run_as_user": 10001,
            "fs_group": 10001,
            "image_pull_policy": "IfNotPresent",
            "runtime_class": "sysbox-runc",
        })
    );
    assert_eq!(workspace.session_id(), "s-start");
    assert_eq!(workspace.runtime_id(), "rt-1");
    assert_eq!(workspace.url(), agent.url);
    assert_eq!(workspace.workspace().api_key(), Some("sk-session-1111"));
    assert_eq!(workspace.workspace().working_dir(), "/workspace");
    // The agent server requires the key: this proves the workspace sends it.
    assert_eq!(echo(&workspace).await, "hi\n");

    // Keys stay out of Debug output and logs; forwarded values too (names are logged).
    let shown = [
        format!("{builder:?}"),
        format!("{builder:#?}"),
        format!("{workspace:?}"),
        format!("{workspace:#?}"),
    ];
    for text in &shown {
        assert!(!text.contains(API_KEY), "{text}");
        assert!(!text.contains("sk-session-1111"), "{text}");
    }
    workspace.cleanup().await.unwrap();
    let mine = logs.lines_with("s-start");
    assert!(
        mine.contains("POST /start") && mine.contains("[\"PATH\"]"),
        "{mine}"
    );
    assert!(mine.contains("runtime_id=rt-1"), "{mine}");
    assert!(mine.contains("closing the runtime"), "{mine}");
    // Every line of every test so far: no key, no forwarded value.
    let text = logs.text();
    for secret in [API_KEY, "sk-session-", path.as_str()] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }

    // Cleanup stops the runtime, with both keys; a second cleanup does nothing.
    let stop = api.calls().last().cloned().unwrap();
    assert_eq!(stop.line(), "POST /stop");
    assert_eq!(stop.body, json!({ "runtime_id": "rt-1" }));
    assert_eq!(stop.session_key.as_deref(), Some("sk-session-1111"));
    assert_eq!(api.status("s-start").as_deref(), Some("stopped"));
    workspace.cleanup().await.unwrap();
    assert_eq!(api.calls().len(), 4);
    assert!(matches!(
        workspace.pause().await,
        Err(Error::NotRunning { .. })
    ));
    drop(workspace);
    assert_eq!(
        api.calls().len(),
        4,
        "a cleaned-up workspace closes nothing on drop"
    );
}

#[tokio::test]
async fn options_shape_the_start_body() {
    let api = FakeApi::start("http://127.0.0.1:1", "k").await;
    api.script(vec![super::fake::Step::Fail(400)]);
    let error = builder(&api, "s-options")
        .target_type(TargetType::Source)
        .runtime_class("")
        .resource_factor(2)
        .image_pull_policy(PullPolicy::Always)
        .working_dir("/w")
        .start()
        .await
        .unwrap_err();
    // A 400 from the status call is not transient: the wait ends at once.
    assert!(
        matches!(&error, Error::Api { source, .. } if source.status() == Some(400)),
        "{error:?}"
    );
    let body = &api.calls()[1].body;
    assert_eq!(
        body["command"],
        "/agent-server/.venv/bin/python -m openhands.agent_server --port 60000"
    );
    assert_eq!(body["resource_factor"], 2);
    assert_eq!(body["image_pull_policy"], "Always");
    assert_eq!(body["working_dir"], "/");
    assert!(body.get("runtime_class").is_none(), "{body}");
    assert_eq!(body["environment"], json!({}));
    // The failed start stopped its runtime.
    assert_eq!(
        api.lines(),
        [
            "GET /sessions/s-options",
            "POST /start",
            "GET /sessions/s-options",
            "POST /stop"
        ]
    );
}

#[tokio::test]
async fn an_invalid_resource_factor_is_refused_before_any_call() {
    let api = FakeApi::start("http://127.0.0.1:1", "k").await;
    for factor in [0, 3, 16] {
        let error = builder(&api, "s")
            .resource_factor(factor)
            .start()
            .await
            .unwrap_err();
        assert!(matches!(error, Error::InvalidOption { .. }), "{error:?}");
    }
    let error = builder(&api, "s")
        .startup_wait_timeout(Duration::ZERO)
        .start()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidOption { .. }), "{error:?}");
    assert!(api.calls().is_empty());
}

#[tokio::test]
async fn a_running_session_is_attached_to() {
    let agent = AgentServer::start("sk-session-2222").await;
    let api = FakeApi::start("http://127.0.0.1:1", "unused").await;
    api.seed("s-run", "rt-running", "running", &agent.url, &agent.key);
    let workspace = builder(&api, "s-run")
        .keep_alive(true)
        .start()
        .await
        .unwrap();
    assert_eq!(api.lines(), ["GET /sessions/s-run", "GET /sessions/s-run"]);
    assert_eq!(workspace.runtime_id(), "rt-running");
    assert_eq!(echo(&workspace).await, "hi\n");
    // keep_alive: neither cleanup nor drop calls the API.
    workspace.cleanup().await.unwrap();
    drop(workspace);
    assert_eq!(api.calls().len(), 2);
    assert_eq!(api.status("s-run").as_deref(), Some("running"));
}

#[tokio::test]
async fn a_paused_session_is_resumed_with_its_new_url_and_key() {
    // The runtime API issues a new key on resume; the new server accepts only that one.
    let agent = AgentServer::start("sk-session-new-3333").await;
    let api = FakeApi::start("http://127.0.0.1:1", "unused").await;
    api.seed(
        "s-paused",
        "rt-paused",
        "paused",
        "http://127.0.0.1:2",
        "sk-session-stale",
    );
    api.resume_to(&agent.url, &agent.key);
    let workspace = builder(&api, "s-paused")
        .pause_on_close(true)
        .start()
        .await
        .unwrap();
    assert_eq!(
        api.lines(),
        [
            "GET /sessions/s-paused",
            "POST /resume",
            "GET /sessions/s-paused"
        ]
    );
    assert_eq!(api.calls()[1].body, json!({ "runtime_id": "rt-paused" }));
    assert_eq!(workspace.url(), agent.url);
    assert_eq!(workspace.workspace().api_key(), Some("sk-session-new-3333"));
    // A handle taken after the resume has the new key too.
    assert_eq!(
        RemoteWorkspace::from(&workspace).api_key(),
        Some("sk-session-new-3333")
    );
    assert_eq!(echo(&workspace).await, "hi\n");
    // pause_on_close: cleanup pauses, with the new key.
    workspace.cleanup().await.unwrap();
    let last = api.calls().last().cloned().unwrap();
    assert_eq!(last.line(), "POST /pause");
    assert_eq!(last.session_key.as_deref(), Some("sk-session-new-3333"));
    assert_eq!(api.status("s-paused").as_deref(), Some("paused"));
}

#[tokio::test]
async fn a_failed_resume_starts_a_new_runtime() {
    let agent = AgentServer::start("sk-session-4444").await;
    let api = FakeApi::start(&agent.url, &agent.key).await;
    api.seed(
        "s-again",
        "rt-paused",
        "paused",
        "http://127.0.0.1:2",
        "old",
    );
    api.fail_resume();
    let workspace = builder(&api, "s-again").start().await.unwrap();
    assert_eq!(
        api.lines(),
        [
            "GET /sessions/s-again",
            "POST /resume",
            "POST /start",
            "GET /sessions/s-again"
        ]
    );
    assert_eq!(api.calls()[2].body["session_id"], "s-again");
    assert_eq!(workspace.runtime_id(), "rt-1");
    assert_eq!(echo(&workspace).await, "hi\n");
    workspace.cleanup().await.unwrap();
}

#[tokio::test]
async fn stopped_sessions_get_a_new_runtime() {
    let agent = AgentServer::start("sk-session-5555").await;
    let api = FakeApi::start(&agent.url, &agent.key).await;
    api.seed("s-old", "rt-old", "stopped", "http://127.0.0.1:2", "old");
    let workspace = builder(&api, "s-old").start().await.unwrap();
    assert_eq!(
        api.lines(),
        ["GET /sessions/s-old", "POST /start", "GET /sessions/s-old"]
    );
    assert_eq!(workspace.runtime_id(), "rt-1");
    workspace.cleanup().await.unwrap();
}

#[tokio::test]
async fn pause_and_resume_follow_the_rotated_key() {
    let first = AgentServer::start("sk-session-6666").await;
    let second = AgentServer::start("sk-session-7777").await;
    let api = FakeApi::start(&first.url, &first.key).await;
    let mut workspace = builder(&api, "s-cycle").start().await.unwrap();
    assert_eq!(echo(&workspace).await, "hi\n");

    workspace.pause().await.unwrap();
    assert_eq!(api.status("s-cycle").as_deref(), Some("paused"));
    api.resume_to(&second.url, &second.key);
    workspace.resume().await.unwrap();

    let calls = api.calls();
    let lines: Vec<String> = calls.iter().map(|c| c.line()).collect();
    assert_eq!(
        lines[3..],
        ["POST /pause", "POST /resume", "GET /sessions/s-cycle"]
    );
    assert_eq!(calls[3].session_key.as_deref(), Some("sk-session-6666"));
    assert_eq!(calls[4].session_key.as_deref(), Some("sk-session-6666"));
    assert_eq!(workspace.url(), second.url);
    assert_eq!(workspace.workspace().api_key(), Some("sk-session-7777"));
    // Only the second server accepts that key.
    assert_eq!(echo(&workspace).await, "hi\n");
    workspace.cleanup().await.unwrap();
    let stop = api.calls().last().cloned().unwrap();
    assert_eq!(stop.line(), "POST /stop");
    assert_eq!(stop.session_key.as_deref(), Some("sk-session-7777"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_workspace_stops_its_runtime() {
    let agent = AgentServer::start("sk-session-8888").await;
    let api = FakeApi::start(&agent.url, &agent.key).await;
    let workspace = builder(&api, "s-drop").start().await.unwrap();
    drop(workspace);
    // The drop waited for its stop call.
    assert_eq!(api.lines().last().map(String::as_str), Some("POST /stop"));
    assert_eq!(api.status("s-drop").as_deref(), Some("stopped"));

    let paused = builder(&api, "s-drop-pause")
        .pause_on_close(true)
        .start()
        .await
        .unwrap();
    drop(paused);
    assert_eq!(api.lines().last().map(String::as_str), Some("POST /pause"));
}

#[tokio::test]
async fn a_wrong_api_key_is_an_api_error() {
    let api = FakeApi::start("http://127.0.0.1:1", "k").await;
    let error = ApiRemoteWorkspace::builder(api.url.as_str(), "sk-wrong-9999", "img")
        .session_id("s")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Api { call, source, .. } if call == "GET /sessions/s" && source.status() == Some(401)),
        "{error:?}"
    );
    assert!(!format!("{error:?} {error}").contains("sk-wrong-9999"));
    assert_eq!(api.lines(), ["GET /sessions/s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_dropped_while_waiting_stops_its_runtime() {
    let api = FakeApi::start("http://127.0.0.1:1", "k").await;
    api.script(vec![super::fake::Step::Pod("pending")]);
    // Dropped once the readiness loop saw the pending pod (lookup, start, first check).
    tokio::select! {
        result = builder(&api, "s-cancel").start() => panic!("start ended: {result:?}"),
        () = api.calls_reach(3) => {}
    }
    assert_eq!(
        api.lines()[..3],
        [
            "GET /sessions/s-cancel",
            "POST /start",
            "GET /sessions/s-cancel"
        ]
    );
    assert_eq!(api.lines().last().map(String::as_str), Some("POST /stop"));
    assert_eq!(api.status("s-cancel").as_deref(), Some("stopped"));
}
