//! The readiness loop: retried states, fatal states, transient errors, the time budget.

use std::time::Duration;

use oh_protocol::runtime::PodStatus;
use oh_workspace_api::{ApiRemoteWorkspace, ApiRemoteWorkspaceBuilder, Error};
use pretty_assertions::assert_eq;

use super::fake::{API_KEY, AgentServer, FakeApi, Logs, Step};

fn builder(api: &FakeApi, session_id: &str) -> ApiRemoteWorkspaceBuilder {
    ApiRemoteWorkspace::builder(api.url.as_str(), API_KEY, "img")
        .session_id(session_id)
        .startup_wait_timeout(Duration::from_secs(20))
}

fn status_calls(api: &FakeApi) -> usize {
    api.lines()
        .iter()
        .filter(|l| l.starts_with("GET /sessions/"))
        .count()
}

#[tokio::test]
async fn pending_and_running_pods_are_waited_for() {
    let agent = AgentServer::start("sk-session-1").await;
    let api = FakeApi::start(&agent.url, &agent.key).await;
    api.script(vec![
        Step::Pod("pending"),
        Step::Pod("not found"),
        Step::Pod("running"),
        Step::Pod("Evicted"),
        Step::Pod("ready"),
    ]);
    let workspace = builder(&api, "s-pending").start().await.unwrap();
    // One lookup, then five readiness checks.
    assert_eq!(status_calls(&api), 6);
    assert!(workspace.workspace().alive().await);
    workspace.cleanup().await.unwrap();
}

#[tokio::test]
async fn transient_status_errors_are_retried() {
    let agent = AgentServer::start("sk-session-2").await;
    let api = FakeApi::start(&agent.url, &agent.key).await;
    let logs = Logs::global();
    api.script(vec![Step::Fail(503), Step::Fail(429), Step::Fail(502)]);
    let workspace = builder(&api, "s-503").start().await.unwrap();
    assert_eq!(status_calls(&api), 5);
    workspace.cleanup().await.unwrap();
    let mine = logs.lines_with("s-503");
    assert_eq!(
        mine.matches("status call failed, retrying").count(),
        3,
        "{mine}"
    );
    let text = logs.text();
    assert!(
        !text.contains(API_KEY) && !text.contains("sk-session-"),
        "{text}"
    );
}

#[tokio::test]
async fn a_crash_loop_fails_at_once_with_the_logs() {
    let api = FakeApi::start("http://127.0.0.1:1", "k").await;
    api.script(vec![
        Step::Pod("pending"),
        Step::Fatal {
            pod: "CrashLoopBackOff",
            logs: "Traceback: out of memory",
            reasons: vec!["OOMKilled"],
        },
    ]);
    let error = builder(&api, "s-crash").start().await.unwrap_err();
    match &error {
        Error::Failed {
            session_id,
            pod_status,
            restart_reasons,
            logs,
        } => {
            assert_eq!(session_id, "s-crash");
            assert_eq!(*pod_status, PodStatus::CrashLoopBackOff);
            assert_eq!(restart_reasons, &["OOMKilled"]);
            assert_eq!(logs, "Traceback: out of memory");
        }
        other => panic!("not Failed: {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("s-crash") && text.contains("crashloopbackoff"),
        "{text}"
    );
    assert!(text.contains("Traceback: out of memory"), "{text}");
    // Not retried; the failed runtime was stopped.
    assert_eq!(
        api.lines(),
        [
            "GET /sessions/s-crash",
            "POST /start",
            "GET /sessions/s-crash",
            "GET /sessions/s-crash",
            "POST /stop"
        ]
    );
}

#[tokio::test]
async fn failed_and_unknown_pods_are_fatal() {
    for pod in ["failed", "Unknown"] {
        let api = FakeApi::start("http://127.0.0.1:1", "k").await;
        api.script(vec![Step::Fatal {
            pod,
            logs: "bad image",
            reasons: vec![],
        }]);
        let error = builder(&api, "s-failed").start().await.unwrap_err();
        assert!(
            matches!(&error, Error::Failed { pod_status, logs, .. } if pod_status.as_str() == pod.to_lowercase() && logs == "bad image"),
            "{error:?}"
        );
        assert_eq!(status_calls(&api), 2);
    }
}

#[tokio::test]
async fn a_sandbox_that_never_gets_ready_times_out() {
    let api = FakeApi::start("http://127.0.0.1:1", "k").await;
    api.script(vec![Step::Pod("pending")]);
    let budget = Duration::from_millis(400);
    let started = tokio::time::Instant::now();
    let error = builder(&api, "s-slow")
        .startup_wait_timeout(budget)
        .start()
        .await
        .unwrap_err();
    let took = started.elapsed();
    match &error {
        Error::NotReady {
            session_id,
            last_state,
            waited,
        } => {
            assert_eq!(session_id, "s-slow");
            assert_eq!(last_state, "pod status pending");
            assert!(*waited >= budget, "{waited:?}");
        }
        other => panic!("not NotReady: {other:?}"),
    }
    assert!(took < Duration::from_secs(5), "{took:?}");
    // 50, 100, 200 ms of waits fit in the budget: a handful of checks, not a busy loop.
    let checks = status_calls(&api) - 1;
    assert!((3..=6).contains(&checks), "{checks} checks");
    assert_eq!(api.lines().last().map(String::as_str), Some("POST /stop"));
}

#[tokio::test]
async fn a_ready_pod_whose_server_does_not_answer_is_not_ready() {
    // Nothing listens on the URL the runtime API hands out.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let api = FakeApi::start(&dead, "k").await;
    let error = builder(&api, "s-dead")
        .startup_wait_timeout(Duration::from_millis(300))
        .keep_alive(true)
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::NotReady { last_state, .. } if last_state.contains("/health not answering")),
        "{error:?}"
    );
    // keep_alive: the runtime is left as it is, even after a failed start.
    assert!(!api.lines().iter().any(|l| l == "POST /stop"));
}

#[tokio::test]
async fn a_runtime_without_a_url_is_invalid_and_stopped() {
    let api = FakeApi::start("", "k").await;
    let error = builder(&api, "s-nourl").start().await.unwrap_err();
    assert!(
        matches!(&error, Error::InvalidRuntime { session_id, .. } if session_id == "s-nourl"),
        "{error:?}"
    );
    assert_eq!(
        api.lines(),
        ["GET /sessions/s-nourl", "POST /start", "POST /stop"]
    );
}
