//! `OpenHandsCloudWorkspace` against our sandbox server's Cloud API, on the real Docker
//! Engine. Ignored by default (they need the engine and `cargo xtask image`); CI runs them
//! with `cargo test -p openhands-e2e --test all -- --ignored --test-threads 1 cloud::`.
//!
//! The sandboxes share the host's network: the agent server inside resolves the lookup
//! secrets at the sandbox server's loopback URL (the client's `cloud_api_url`, as upstream)
//! and calls the scripted LLM there. Every test ends by counting the containers carrying
//! its server's label: none may be left.
#![allow(clippy::print_stdout, reason = "tests print their figures")]

use super::server;

use std::time::{Duration, Instant};

use oh_client::ServiceClient;
use oh_testkit::logs::Logs;
use oh_testkit::{Reply, ScriptedLlm};
use openhands::OpenHandsCloudWorkspace;
use openhands::cloud::{Error, OpenHandsCloudWorkspaceBuilder};
use openhands::prelude::*;
use serde_json::{Value, json};
use server::{IMAGE, NEEDS, Server};

const ALICE: &str = "alice-cloud-key-4f1c2d";
const BOB: &str = "bob-cloud-key-9a8b7c";
const SECRET: &str = "deploy-token-7e3f9a1b5c";
const LLM_KEY: &str = "sk-user-llm-key-2b6d";

/// A sandbox server with a users file (Alice with LLM settings and a secret, and Bob).
struct Cloud {
    server: Server,
    _users: tempfile::TempDir,
}

impl Cloud {
    async fn start(
        llm_base_url: &str,
        configure: impl FnOnce(&mut oh_sandbox_server::Config),
    ) -> Self {
        let users = tempfile::tempdir().unwrap();
        let path = users.path().join("users.json");
        let file = json!({"users": [
            {"id": "alice", "api_key": ALICE,
             "llm": {"model": "openai/scripted-model", "api_key": LLM_KEY, "base_url": llm_base_url},
             "secrets": {"DEPLOY_TOKEN": {"value": SECRET, "description": "deploys the app"}}},
            {"id": "bob", "api_key": BOB}
        ]});
        std::fs::write(&path, file.to_string()).unwrap();
        let server = Server::start(|c| {
            c.users_file = Some(path);
            c.network = Some("host".into());
            configure(c);
        })
        .await;
        Self {
            server,
            _users: users,
        }
    }

    fn workspace(&self, key: &str) -> OpenHandsCloudWorkspaceBuilder {
        OpenHandsCloudWorkspace::builder(&self.server.url, key)
            .sandbox_spec_id(IMAGE)
            .init_timeout(Duration::from_secs(60))
            .read_env(false)
    }

    /// The Cloud API as `key`'s user.
    fn api(&self, key: &str) -> ServiceClient {
        ServiceClient::new(&self.server.url)
            .unwrap()
            .with_header("Authorization", &format!("Bearer {key}").into())
            .unwrap()
    }

    async fn info(&self, key: &str, id: &str) -> Value {
        let list: Value = self
            .api(key)
            .get(&format!("/api/v1/sandboxes?id={id}"))
            .await
            .unwrap();
        list[0].clone()
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn a_cloud_sandbox_runs_a_conversation_with_the_users_llm_and_secret() {
    let logs = Logs::global();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "terminal",
            json!({"command": "printf %s \"$DEPLOY_TOKEN\" > /workspace/project/token.txt \
                               && echo \"token: $DEPLOY_TOKEN\""}),
        ),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await
    .unwrap();
    let cloud = Cloud::start(&llm.base_url(), |_| {}).await;
    let started = Instant::now();
    let workspace = cloud.workspace(ALICE).start().await.expect(NEEDS);
    println!("provisioned in {:?}", started.elapsed());
    assert_eq!(cloud.server.containers().await, 1);
    let sandbox_id = workspace.sandbox_id().unwrap().to_owned();
    server::runs_commands_and_files(workspace.workspace()).await;
    let local = tempfile::tempdir().unwrap();

    // The user's LLM settings and secrets follow them into the sandbox.
    let llm_config = workspace.get_llm(None).await.unwrap();
    assert_eq!(llm_config.model, "openai/scripted-model");
    assert_eq!(
        llm_config.base_url.as_deref(),
        Some(llm.base_url().as_str())
    );
    let secrets = workspace.get_secrets(None).await.unwrap();
    assert_eq!(secrets.keys().collect::<Vec<_>>(), ["DEPLOY_TOKEN"]);
    match &secrets["DEPLOY_TOKEN"] {
        SecretSource::Lookup(lookup) => {
            assert!(lookup.url.starts_with(&cloud.server.url), "{}", lookup.url);
        }
        other => panic!("not a lookup: {other:?}"),
    }
    let agent = Agent::new(llm_config, vec![ToolSpec::new("terminal")]);
    let conversation = Conversation::builder(agent, &workspace)
        .autotitle(false)
        .secrets(secrets)
        .build()
        .await
        .unwrap();
    conversation
        .send_text("Use the deploy token.")
        .await
        .unwrap();
    assert_eq!(conversation.run().await.unwrap(), ExecutionStatus::Finished);

    // The LLM was called with the user's key, from get_llm().
    let calls = llm.requests();
    assert_eq!(calls.len(), 2);
    for call in &calls {
        assert_eq!(
            call.header("authorization"),
            Some(format!("Bearer {LLM_KEY}").as_str())
        );
    }
    // The value reached the agent's shell ...
    workspace
        .workspace()
        .file_download(
            "/workspace/project/token.txt",
            local.path().join("token.txt"),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(local.path().join("token.txt")).unwrap(),
        SECRET
    );
    // ... and shows nowhere: not in the events (the echo is masked) ...
    let events = serde_json::to_string(&conversation.events()).unwrap();
    assert!(
        events.contains("token: "),
        "the command did not run: {events}"
    );
    assert!(!events.contains(SECRET), "the secret is in the events");
    // ... nor in REST answers of the agent server or the Cloud API ...
    let key = cloud.info(ALICE, &sandbox_id).await["session_api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let agent_server = ServiceClient::new(workspace.url())
        .unwrap()
        .with_header("X-Session-API-Key", &key.as_str().into())
        .unwrap();
    let id = conversation.id();
    for path in [
        format!("/api/conversations/{id}"),
        format!("/api/conversations/{id}/events/search?limit=100"),
        "/api/conversations/search".to_owned(),
    ] {
        let text = agent_server.get_text(&path).await.unwrap();
        assert!(!text.contains(SECRET), "{path} shows the secret");
    }
    let alice = cloud.api(ALICE);
    for path in [
        "/api/v1/users/me".to_owned(),
        "/api/v1/sandboxes/search".to_owned(),
        format!("/api/v1/sandboxes?id={sandbox_id}"),
    ] {
        let text = alice.get_text(&path).await.unwrap();
        assert!(!text.contains(SECRET) && !text.contains(LLM_KEY), "{path}");
    }
    // ... nor in any log: ours, and the sandbox's own.
    let ours = logs.text();
    assert!(ours.contains("secret read by a sandbox"), "no audit line");
    assert!(!ours.contains(SECRET) && !ours.contains(LLM_KEY) && !ours.contains(&key));
    let sandbox_logs = container_logs(&cloud.server.instance).await;
    assert!(!sandbox_logs.is_empty());
    assert!(
        !sandbox_logs.contains(SECRET),
        "the sandbox logged the secret"
    );

    conversation.close().await;
    workspace.cleanup().await.unwrap();
    assert_eq!(cloud.info(ALICE, &sandbox_id).await, Value::Null);
    assert_eq!(
        cloud.server.containers().await,
        0,
        "cleanup left a container"
    );
    cloud.server.stop().await;
}

/// Everything the containers of a server instance wrote to stdout and stderr.
async fn container_logs(instance: &str) -> String {
    use bollard::query_parameters::LogsOptions;
    use futures::StreamExt;
    let docker = oh_workspace_docker::connect().await.unwrap();
    let mut text = String::new();
    for id in server::labelled(&docker, instance).await.unwrap() {
        let mut stream = docker.logs(
            &id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                ..LogsOptions::default()
            }),
        );
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn keep_alive_and_sandbox_id_reattach_and_other_users_see_nothing() {
    let cloud = Cloud::start("http://127.0.0.1:9/v1", |_| {}).await;
    let first = cloud
        .workspace(ALICE)
        .keep_alive(true)
        .start()
        .await
        .expect(NEEDS);
    let id = first.sandbox_id().unwrap().to_owned();
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
    assert_eq!(cloud.info(ALICE, &id).await["status"], "RUNNING");
    assert_eq!(cloud.server.containers().await, 1);

    // Bob can neither see, nor attach to, nor delete it.
    assert_eq!(cloud.info(BOB, &id).await, Value::Null);
    let bob = cloud.api(BOB);
    let page: Value = bob.get("/api/v1/sandboxes/search").await.unwrap();
    assert_eq!(page["items"], json!([]));
    let refused = bob
        .delete::<Value>(&format!("/api/v1/sandboxes/{id}?sandbox_id={id}"), None)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(404), "{refused}");
    let error = cloud
        .workspace(BOB)
        .sandbox_id(&id)
        .start()
        .await
        .unwrap_err();
    println!("bob attaching: {}", chain(&error));
    assert!(matches!(error, Error::Api { .. }), "{error:?}");
    assert_eq!(cloud.info(ALICE, &id).await["status"], "RUNNING");
    assert_eq!(cloud.server.containers().await, 1);

    // Alice reattaches by id: the same sandbox, the file still there.
    let second = cloud
        .workspace(ALICE)
        .sandbox_id(&id)
        .start()
        .await
        .unwrap();
    assert_eq!(second.sandbox_id(), Some(id.as_str()));
    let kept = second
        .workspace()
        .execute_command("cat /workspace/kept.txt", None, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(kept.stdout.trim(), "kept");
    second.cleanup().await.unwrap();
    assert_eq!(cloud.info(ALICE, &id).await, Value::Null);
    assert_eq!(cloud.server.containers().await, 0);
    cloud.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the Docker Engine and `cargo xtask image`"]
async fn failures_are_typed_errors_and_leave_nothing_running() {
    Logs::global();
    let cloud = Cloud::start("http://127.0.0.1:9/v1", |c| {
        c.startup_deadline = Duration::from_secs(60);
    })
    .await;

    // A wrong user key: 401, nothing created.
    let error = cloud.workspace("not-a-user-key").start().await.unwrap_err();
    println!("wrong key: {}", chain(&error));
    assert!(matches!(error, Error::Unauthorized { .. }), "{error:?}");
    assert_eq!(cloud.server.containers().await, 0);

    // An agent server that exits at once, again and again: ERROR.
    let crashing = oh_testkit::docker::derived_image(
        IMAGE,
        "oh-sandbox-test-crash:latest",
        "echo crashing >&2; exit 3",
    )
    .await
    .unwrap();
    let error = cloud
        .workspace(ALICE)
        .sandbox_spec_id(&crashing)
        .start()
        .await
        .unwrap_err();
    println!("crashing: {}", chain(&error));
    match &error {
        Error::Failed { sandbox_id, status } => {
            assert_eq!(status.as_str(), "ERROR");
            assert!(chain(&error).contains(sandbox_id.as_str()));
        }
        other => panic!("{other:?}"),
    }

    // Slower than the client's budget: a typed error after init_timeout, and the client
    // deletes the sandbox.
    let slow = oh_testkit::docker::derived_image(IMAGE, "oh-sandbox-test-slow:latest", "sleep 600")
        .await
        .unwrap();
    let started = Instant::now();
    let error = cloud
        .workspace(ALICE)
        .sandbox_spec_id(&slow)
        .init_timeout(Duration::from_secs(4))
        .start()
        .await
        .unwrap_err();
    println!("slow: {} after {:?}", chain(&error), started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(20));
    match &error {
        Error::NotReady { last_state, .. } => {
            assert!(last_state.contains("STARTING"), "{last_state}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cloud.server.containers().await, 0);

    // A sandbox whose container vanished: MISSING, and attaching to it says so.
    let kept = cloud
        .workspace(ALICE)
        .keep_alive(true)
        .start()
        .await
        .unwrap();
    let id = kept.sandbox_id().unwrap().to_owned();
    let a_key = cloud.info(ALICE, &id).await["session_api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Another sandbox's key on this sandbox's secrets: 403.
    let other = cloud.workspace(ALICE).start().await.unwrap();
    let other_id = other.sandbox_id().unwrap().to_owned();
    let with_a_key = ServiceClient::new(&cloud.server.url)
        .unwrap()
        .with_header("X-Session-API-Key", &a_key.as_str().into())
        .unwrap();
    let refused = with_a_key
        .get_text(&format!(
            "/api/v1/sandboxes/{other_id}/settings/secrets/DEPLOY_TOKEN"
        ))
        .await
        .unwrap_err();
    println!("another sandbox's key: {}", chain(&refused));
    assert_eq!(refused.status(), Some(403));
    assert!(!chain(&refused).contains(SECRET));
    other.cleanup().await.unwrap();
    drop(kept);
    remove_containers(&cloud.server.instance).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while cloud.info(ALICE, &id).await["status"] != "MISSING" {
        assert!(Instant::now() < deadline, "the server did not notice");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let error = cloud
        .workspace(ALICE)
        .sandbox_id(&id)
        .start()
        .await
        .unwrap_err();
    println!("missing: {}", chain(&error));
    match &error {
        Error::Failed { sandbox_id, status } => {
            assert_eq!(
                (sandbox_id.as_str(), status.as_str()),
                (id.as_str(), "MISSING")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(cloud.server.containers().await, 0);
    cloud.server.stop().await;
}

/// Removes every container of a server instance behind its back.
async fn remove_containers(instance: &str) {
    let docker = oh_workspace_docker::connect().await.unwrap();
    for id in server::labelled(&docker, instance).await.unwrap() {
        oh_workspace_docker::force_remove(&docker, &id)
            .await
            .unwrap();
    }
}
