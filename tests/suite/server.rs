//! A sandbox server in the test process, on the real engine, and what its tests share:
//! the image, a container count by the server's label, the scripted agent. Dropping a
//! server that was not stopped removes every container carrying its label.

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::ListContainersOptions;
use oh_protocol::runtime::PullPolicy;
use oh_sandbox_server::{Config, SERVER_LABEL, SandboxServer};
use oh_testkit::ScriptedLlm;
use openhands::prelude::*;
use openhands::{ApiRemoteWorkspace, RemoteWorkspace};

pub(crate) const IMAGE: &str = "openhands-agent-server:latest";
pub(crate) const NEEDS: &str = "needs the Docker Engine and `cargo xtask image`";

/// A sandbox server in this process; stopped (its sandboxes left to the test) on drop.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) key: String,
    pub(crate) instance: String,
    _state: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub(crate) async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        let key = format!("test-key-{}", uuid::Uuid::new_v4().simple());
        Self::start_in(tempfile::tempdir().unwrap(), key, configure).await
    }

    /// A server on the state in `state` (a restart when it holds records).
    pub(crate) async fn start_in(
        state: tempfile::TempDir,
        key: String,
        configure: impl FnOnce(&mut Config),
    ) -> Self {
        let mut config = Config::new(state.path(), key.as_str());
        config.port = 0;
        config.image = IMAGE.to_owned();
        config.check_interval = Duration::from_millis(500);
        configure(&mut config);
        let server = SandboxServer::bind(config).await.expect(NEEDS);
        let url = format!("http://{}", server.local_addr());
        let instance = std::fs::read_to_string(state.path().join("instance")).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            url,
            key,
            instance,
            _state: state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub(crate) fn workspace(&self) -> openhands::ApiRemoteWorkspaceBuilder {
        ApiRemoteWorkspace::builder(&self.url, self.key.as_str(), IMAGE)
            .image_pull_policy(PullPolicy::Never)
            .startup_wait_timeout(Duration::from_secs(60))
    }

    /// Containers carrying this server's label (any state).
    pub(crate) async fn containers(&self) -> usize {
        containers_of(&self.instance).await
    }

    pub(crate) async fn stop(self) {
        drop(self.stop_keeping_state().await);
    }

    /// Stops the server (its sandboxes keep running); its state and key, for a restart.
    pub(crate) async fn stop_keeping_state(mut self) -> (tempfile::TempDir, String) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        let empty = tempfile::tempdir().unwrap();
        (std::mem::replace(&mut self._state, empty), self.key.clone())
    }
}

/// Containers carrying the label of the server `instance` (any state).
pub(crate) async fn containers_of(instance: &str) -> usize {
    let docker = oh_workspace_docker::connect().await.unwrap();
    labelled(&docker, instance).await.unwrap().len()
}

/// Ids of the containers (any state) carrying the label of the server `instance`.
pub(crate) async fn labelled(
    docker: &bollard::Docker,
    instance: &str,
) -> Result<Vec<String>, bollard::errors::Error> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "label".to_owned(),
            vec![format!("{SERVER_LABEL}={instance}")],
        )])),
        ..ListContainersOptions::default()
    };
    Ok(docker
        .list_containers(Some(options))
        .await?
        .into_iter()
        .filter_map(|c| c.id)
        .collect())
}

/// A test that panicked never stopped its server: remove what carries its label, so a
/// failed test leaves no container behind either.
impl Drop for Server {
    fn drop(&mut self) {
        if self.stop.is_none() {
            return;
        }
        let instance = self.instance.clone();
        oh_client::block_on_own_thread(async move {
            let Ok(docker) = oh_workspace_docker::connect().await else {
                return;
            };
            for id in labelled(&docker, &instance).await.unwrap_or_default() {
                let _ = oh_workspace_docker::force_remove(&docker, &id).await;
            }
        });
    }
}

pub(crate) async fn runtime_status(server: &Server, session_id: &str) -> serde_json::Value {
    let client = oh_client::ServiceClient::new(&server.url)
        .unwrap()
        .with_header("X-API-Key", &server.key.as_str().into())
        .unwrap();
    client
        .get(&format!("/sessions/{session_id}"))
        .await
        .unwrap()
}

pub(crate) fn scripted_agent(llm: &ScriptedLlm) -> Agent {
    let mut config = Llm::new("openai/scripted-model");
    config.base_url = Some(llm.base_url());
    config.api_key = Some("scripted".into());
    Agent::new(config, vec![ToolSpec::new("terminal")])
}

/// What every sandbox must do: run a command as uid 10001, and take a 100 kB file in and give
/// it back unchanged (under `/workspace/project`, where the file is left as `in.bin`).
pub(crate) async fn runs_commands_and_files(workspace: &RemoteWorkspace) {
    let t = Duration::from_secs(20);
    let who = workspace
        .execute_command("id -u; pwd", None, t)
        .await
        .unwrap();
    assert_eq!(who.exit_code, 0, "{who:?}");
    assert_eq!(who.stdout.lines().next(), Some("10001"));
    let local = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let source = local.path().join("in.bin");
    std::fs::write(&source, &payload).unwrap();
    workspace
        .file_upload(&source, "/workspace/project/in.bin")
        .await
        .unwrap();
    let back = local.path().join("out.bin");
    workspace
        .file_download("/workspace/project/in.bin", &back)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), payload);
}
