//! Docker Engine plumbing shared by the Docker and Swarm backends: status checks, images
//! (present, pulled per policy) and resource limits.

use bollard::Docker;
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;
use oh_protocol::runtime::PullPolicy;

use crate::error::BackendError;

/// Whether an Engine call failed with HTTP status `code`.
pub(crate) fn is_status(error: &bollard::errors::Error, code: u16) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code
    )
}

/// Whether the Engine has the image locally.
pub(crate) async fn image_present(docker: &Docker, image: &str) -> Result<bool, BackendError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(true),
        Err(e) if is_status(&e, 404) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Makes the image available on the Engine as the pull policy says.
pub(crate) async fn ensure_image(
    docker: &Docker,
    image: &str,
    pull: PullPolicy,
) -> Result<(), BackendError> {
    let present = docker.inspect_image(image).await.is_ok();
    match (pull, present) {
        (PullPolicy::Never, false) => Err(BackendError::ImageMissing {
            image: image.to_owned(),
            detail: "not present and the pull policy is Never".to_owned(),
        }),
        (PullPolicy::Never | PullPolicy::IfNotPresent, true) => Ok(()),
        (PullPolicy::Always, true) => {
            if let Err(e) = pull_image(docker, image).await {
                tracing::warn!(image, "pull failed, using the local image: {e}");
            }
            Ok(())
        }
        (_, false) => {
            pull_image(docker, image)
                .await
                .map_err(|detail| BackendError::ImageMissing {
                    image: image.to_owned(),
                    detail: format!("not present and the pull failed: {detail}"),
                })
        }
    }
}

/// Pulls an image; the Engine's message when it fails.
async fn pull_image(docker: &Docker, image: &str) -> Result<(), String> {
    let options = CreateImageOptions {
        from_image: Some(image.to_owned()),
        ..CreateImageOptions::default()
    };
    let mut stream = docker.create_image(Some(options), None, None);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| e.to_string())?;
        if let Some(error) = info.error_detail.and_then(|d| d.message) {
            return Err(error);
        }
    }
    Ok(())
}

/// CPU and memory limits of a workload: the configured amount per unit of
/// `resource_factor`, times the factor (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Limits {
    /// CPUs in units of 10⁻⁹.
    pub(crate) nano_cpus: Option<i64>,
    /// Memory in bytes.
    pub(crate) memory_bytes: Option<i64>,
}

impl Limits {
    /// The limits for `factor` (0 counts as 1); a zero amount per factor means no limit.
    pub(crate) fn new(cpus_per_factor: f64, memory_mib_per_factor: u64, factor: u32) -> Self {
        let factor = i64::from(factor.max(1));
        let nano_cpus = (cpus_per_factor > 0.0).then(|| {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "a few CPUs in nanoCPUs fits; NaN and overflow saturate"
            )]
            let nano = (cpus_per_factor * 1e9) as i64;
            nano.saturating_mul(factor)
        });
        let memory_bytes = (memory_mib_per_factor > 0).then(|| {
            i64::try_from(memory_mib_per_factor.saturating_mul(1 << 20))
                .unwrap_or(i64::MAX)
                .saturating_mul(factor)
        });
        Self {
            nano_cpus,
            memory_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_scale_with_the_factor() {
        assert_eq!(Limits::new(0.0, 0, 4), Limits::default());
        let two = Limits::new(0.5, 1024, 2);
        assert_eq!(two.nano_cpus, Some(1_000_000_000));
        assert_eq!(two.memory_bytes, Some(2 * 1024 * 1024 * 1024));
        // A factor of 0 counts as 1.
        assert_eq!(Limits::new(1.5, 0, 0).nano_cpus, Some(1_500_000_000));
        assert_eq!(Limits::new(0.0, u64::MAX, 8).memory_bytes, Some(i64::MAX));
    }
}
