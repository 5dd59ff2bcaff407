//! Create, resume, the wait loop, cleanup and drop.

use std::time::Duration;

use oh_client::RemoteWorkspace;
use oh_protocol::cloud::SandboxStatus;
use oh_workspace_cloud::{Error, OpenHandsCloudWorkspace, OpenHandsCloudWorkspaceBuilder};
use pretty_assertions::assert_eq;

use super::fake::{API_KEY, AgentServer, FakeCloud, Logs, Step};

const SPEC: &str = "ghcr.io/openhands/agent-server:main-python";

fn builder(cloud: &FakeCloud) -> OpenHandsCloudWorkspaceBuilder {
    OpenHandsCloudWorkspace::builder(cloud.url.as_str(), API_KEY)
        .sandbox_spec_id(SPEC)
        .init_timeout(Duration::from_secs(20))
}

fn get_line(id: &str) -> String {
    format!("GET /api/v1/sandboxes?id={id}")
}

fn delete_line(id: &str) -> String {
    format!("DELETE /api/v1/sandboxes/{id}?sandbox_id={id}")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_is_created_waited_for_and_deleted() {
    let agent = AgentServer::start("sk-session-1111").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![Step::Status("STARTING"), Step::Status("RUNNING")]);

    let workspace = builder(&cloud).start().await.unwrap();

    assert_eq!(
        cloud.lines(),
        [
            "POST /api/v1/sandboxes?sandbox_spec_id=ghcr.io%2Fopenhands%2Fagent-server%3Amain-python"
                .to_owned(),
            get_line("sb-1"),
            get_line("sb-1"),
        ]
    );
    let calls = cloud.calls();
    assert!(calls[0].body.is_empty(), "the create call has no body");
    assert!(
        calls
            .iter()
            .all(|c| c.authorization.as_deref() == Some(&format!("Bearer {API_KEY}")))
    );
    assert_eq!(workspace.sandbox_id(), Some("sb-1"));
    assert_eq!(workspace.url(), agent.url);
    assert_eq!(workspace.workspace().api_key(), Some(agent.key.as_str()));
    assert_eq!(workspace.working_dir(), "/workspace/project");
    assert_eq!(echo(&workspace).await.trim(), "hi");

    workspace.cleanup().await.unwrap();
    workspace.cleanup().await.unwrap();
    assert_eq!(cloud.lines().last(), Some(&delete_line("sb-1")));
    assert_eq!(cloud.lines().len(), 4, "one DELETE only");
    assert!(!cloud.exists("sb-1"));
    drop(workspace);
    assert_eq!(cloud.lines().len(), 4, "no DELETE on drop after cleanup");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_spec_the_create_call_has_no_query() {
    let agent = AgentServer::start("sk-session-1112").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![Step::Status("RUNNING")]);
    let workspace = OpenHandsCloudWorkspace::builder(cloud.url.as_str(), API_KEY)
        .start()
        .await
        .unwrap();
    assert_eq!(cloud.lines()[0], "POST /api/v1/sandboxes");
    workspace.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sandbox_is_resumed_while_waiting() {
    let agent = AgentServer::start("sk-session-2222").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![Step::Status("PAUSED")]);

    let workspace = builder(&cloud).start().await.unwrap();

    assert_eq!(
        cloud.lines()[1..],
        [
            get_line("sb-1"),
            "POST /api/v1/sandboxes/sb-1/resume".to_owned(),
            get_line("sb-1"),
        ]
    );
    assert_eq!(echo(&workspace).await.trim(), "hi");
    workspace.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_and_missing_are_fatal_and_the_sandbox_is_deleted() {
    let agent = AgentServer::start("sk-session-3333").await;
    for (word, status) in [
        ("ERROR", SandboxStatus::Error),
        ("MISSING", SandboxStatus::Missing),
    ] {
        let cloud = FakeCloud::start(&agent.url, &agent.key).await;
        cloud.script(vec![Step::Status("STARTING"), Step::Status(word)]);
        let error = builder(&cloud).start().await.unwrap_err();
        let text = error.to_string();
        assert!(text.contains("sb-1") && text.contains(word), "{text}");
        match error {
            Error::Failed {
                sandbox_id,
                status: got,
            } => {
                assert_eq!(sandbox_id, "sb-1");
                assert_eq!(got, status);
            }
            other => panic!("expected Failed, got {other:?}"),
        }
        assert_eq!(
            cloud.lines()[1..],
            [get_line("sb-1"), get_line("sb-1"), delete_line("sb-1")]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_is_bounded_by_init_timeout() {
    let agent = AgentServer::start("sk-session-4444").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![Step::Null, Step::Status("STARTING")]);

    let error = builder(&cloud)
        .init_timeout(Duration::from_millis(400))
        .start()
        .await
        .unwrap_err();

    match &error {
        Error::NotReady {
            sandbox_id,
            last_state,
            waited,
        } => {
            assert_eq!(sandbox_id, "sb-1");
            assert!(last_state.contains("STARTING"), "{last_state}");
            assert!(*waited >= Duration::from_millis(400), "{waited:?}");
            assert!(*waited < Duration::from_secs(5), "{waited:?}");
        }
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert_eq!(cloud.lines().last(), Some(&delete_line("sb-1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_status_errors_are_retried() {
    let agent = AgentServer::start("sk-session-5555").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![
        Step::Fail(503),
        Step::Fail(502),
        Step::Status("RUNNING"),
    ]);

    let workspace = builder(&cloud).start().await.unwrap();

    assert_eq!(
        cloud.lines()[1..],
        [get_line("sb-1"), get_line("sb-1"), get_line("sb-1")]
    );
    workspace.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_status_call_ends_the_wait() {
    let agent = AgentServer::start("sk-session-5556").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![Step::Fail(400)]);
    let error = builder(&cloud).start().await.unwrap_err();
    assert!(matches!(error, Error::Api { .. }), "{error:?}");
    assert_eq!(cloud.lines().last(), Some(&delete_line("sb-1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_a_typed_error() {
    let agent = AgentServer::start("sk-session-6666").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;

    let error = OpenHandsCloudWorkspace::builder(cloud.url.as_str(), "sk-wrong")
        .start()
        .await
        .unwrap_err();

    match &error {
        Error::Unauthorized { call, source } => {
            assert_eq!(call, "POST /api/v1/sandboxes");
            assert_eq!(source.status(), Some(401));
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(
        cloud.lines(),
        ["POST /api/v1/sandboxes"],
        "nothing to delete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_leaves_the_sandbox() {
    let agent = AgentServer::start("sk-session-7777").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![Step::Status("RUNNING")]);

    let workspace = builder(&cloud).keep_alive(true).start().await.unwrap();
    workspace.cleanup().await.unwrap();
    drop(workspace);

    assert!(cloud.lines().iter().all(|l| !l.starts_with("DELETE")));
    assert!(cloud.exists("sb-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_workspace_deletes_the_sandbox() {
    let agent = AgentServer::start("sk-session-7778").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![Step::Status("RUNNING")]);

    let workspace = builder(&cloud).start().await.unwrap();
    drop(workspace);

    assert_eq!(cloud.lines().last(), Some(&delete_line("sb-1")));
    assert!(!cloud.exists("sb-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_to_a_sandbox_that_cannot_come_back_names_its_status() {
    let agent = AgentServer::start("sk-session-8889").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    for (id, status) in [("sb-gone", "MISSING"), ("sb-broken", "ERROR")] {
        cloud.seed(id, status, Vec::new());
        let error = builder(&cloud).sandbox_id(id).start().await.unwrap_err();
        match error {
            Error::Failed {
                sandbox_id,
                status: seen,
            } => {
                assert_eq!((sandbox_id.as_str(), seen.as_str()), (id, status));
            }
            other => panic!("{id}: {other:?}"),
        }
        assert!(
            !cloud.lines().iter().any(|l| l.contains("/resume")),
            "{:?}",
            cloud.lines()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_sandbox_is_resumed_and_resume_refreshes_url_and_key() {
    let agent = AgentServer::start("sk-session-8888").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.seed("sb-old", "PAUSED", Vec::new());

    let mut workspace = builder(&cloud).sandbox_id("sb-old").start().await.unwrap();

    assert_eq!(
        cloud.lines(),
        [
            get_line("sb-old"),
            "POST /api/v1/sandboxes/sb-old/resume".to_owned(),
            get_line("sb-old")
        ]
    );
    assert_eq!(workspace.sandbox_id(), Some("sb-old"));
    assert!(matches!(
        workspace.pause().await,
        Err(Error::Unsupported { operation: "pause" })
    ));

    // After a resume the Cloud serves another agent server with another key.
    let other = AgentServer::start("sk-session-9999").await;
    cloud.resume_to(&other.url, &other.key);
    workspace.resume().await.unwrap();
    assert_eq!(workspace.url(), other.url);
    assert_eq!(workspace.workspace().api_key(), Some(other.key.as_str()));
    // A handle taken after the resume has the new key too.
    assert_eq!(
        RemoteWorkspace::from(&workspace).api_key(),
        Some(other.key.as_str())
    );
    assert_eq!(echo(&workspace).await.trim(), "hi");

    workspace.cleanup().await.unwrap();
    assert_eq!(cloud.lines().last(), Some(&delete_line("sb-old")));
    assert!(matches!(
        workspace.resume().await,
        Err(Error::NotRunning { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_show_in_debug_or_logs() {
    let logs = Logs::global();
    let agent = AgentServer::start("sk-session-aaaa-secret").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.script(vec![Step::Fail(503), Step::Status("RUNNING")]);

    let builder = builder(&cloud).session_api_key("sk-local-bbbb-secret");
    let workspace = builder.clone().start().await.unwrap();
    let _ = workspace.get_llm(None).await;
    let _ = workspace.get_secrets(None).await;
    workspace.cleanup().await.unwrap();
    let error = OpenHandsCloudWorkspace::builder(cloud.url.as_str(), "sk-wrong-cccc-secret")
        .start()
        .await
        .unwrap_err();

    let text = format!(
        "{builder:?}\n{workspace:?}\n{error:?}\n{error}\n{}",
        logs.text()
    );
    assert!(text.contains("sb-1"), "the logs were captured");
    for key in [
        API_KEY,
        "sk-session-aaaa-secret",
        "sk-local-bbbb-secret",
        "sk-wrong-cccc-secret",
    ] {
        assert!(!text.contains(key), "{key} leaked:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_mode_makes_no_sandbox_calls() {
    let agent = AgentServer::start("sk-session-local").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    let port: u16 = agent.url.rsplit(':').next().unwrap().parse().unwrap();

    let workspace = OpenHandsCloudWorkspace::builder(cloud.url.as_str(), API_KEY)
        .local_agent_server_mode(true)
        .read_env(false)
        .agent_server_port(port)
        .sandbox_id("sb-here")
        .session_api_key(agent.key.as_str())
        .start()
        .await
        .unwrap();

    assert_eq!(workspace.url(), format!("http://localhost:{port}"));
    assert_eq!(workspace.sandbox_id(), Some("sb-here"));
    assert_eq!(echo(&workspace).await.trim(), "hi");
    workspace.cleanup().await.unwrap();
    drop(workspace);
    assert_eq!(cloud.lines(), Vec::<String>::new());
}
