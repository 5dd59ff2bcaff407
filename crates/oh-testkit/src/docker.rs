//! Images for tests on the Docker Engine (feature `docker`).

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CommitContainerOptions, CreateContainerOptions, RemoveContainerOptions,
};
use futures::StreamExt;

/// Why a test image could not be made.
pub type Error = bollard::errors::Error;

/// Builds `tag` (`repo:tag`) from `base` (an agent-server image) with its
/// `/usr/local/bin/openhands-agent-server` replaced by a shell script running `script`: an
/// agent server that crashes, hangs or is slow, as a test needs. Made by running a root
/// container from `base` and committing it (`USER 10001` again); no build context, no
/// registry. Returns `tag`.
pub async fn derived_image(base: &str, tag: &str, script: &str) -> Result<String, Error> {
    let docker = bollard::Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let write = format!(
        "printf '#!/bin/sh\\n%s\\n' '{}' > /usr/local/bin/openhands-agent-server \
         && chmod 755 /usr/local/bin/openhands-agent-server",
        script.replace('\'', "'\\''")
    );
    let body = ContainerCreateBody {
        image: Some(base.to_owned()),
        user: Some("root".to_owned()),
        entrypoint: Some(vec!["/bin/sh".to_owned(), "-c".to_owned(), write]),
        cmd: Some(Vec::new()),
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptions {
        name: Some(format!("oh-derive-{}", uuid::Uuid::new_v4().simple())),
        platform: String::new(),
    };
    // The commit takes the container's config, entrypoint included, unless told otherwise:
    // the derived image must start like its base.
    let base_config = docker.inspect_image(base).await?.config.unwrap_or_default();
    let created = docker.create_container(Some(options), body).await?;
    let result = async {
        docker.start_container(&created.id, None).await?;
        let mut wait = docker.wait_container(&created.id, None);
        while let Some(step) = wait.next().await {
            step?;
        }
        let (repo, version) = tag.split_once(':').unwrap_or((tag, "latest"));
        let commit = CommitContainerOptions {
            container: Some(created.id.clone()),
            repo: Some(repo.to_owned()),
            tag: Some(version.to_owned()),
            changes: Some("USER 10001".to_owned()),
            ..CommitContainerOptions::default()
        };
        let config = bollard::models::ContainerConfig {
            entrypoint: base_config.entrypoint.clone(),
            cmd: base_config.cmd.clone(),
            ..bollard::models::ContainerConfig::default()
        };
        docker.commit_container(commit, config).await
    }
    .await;
    let removal = RemoveContainerOptions {
        force: true,
        ..RemoveContainerOptions::default()
    };
    let _ = docker.remove_container(&created.id, Some(removal)).await;
    result.map(|_| tag.to_owned())
}
