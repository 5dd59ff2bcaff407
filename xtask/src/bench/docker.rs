//! The `docker` measurement: the agent-server image's size and `DockerWorkspace` enter →
//! ready (container created and started, `/health` answering), for our image and for the
//! reference's. `DockerWorkspace` runs in the driver (`e2e-driver docker-ready`), which
//! times it.
//!
//! Ours is the image `cargo xtask image` builds. No registry is reachable here, so the
//! reference's published image cannot be pulled; its stand-in is built offline, once, from
//! the pinned Python environment's root (`xtask/pyenv.sh`: Debian trixie with the pinned
//! reference wheels in a venv) with `docker import`, its entrypoint the Python agent server.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::measure::Measured;
use super::server::{Kind, Launch};
use super::stats::Summary;

/// The image `cargo xtask image` tags.
pub(crate) const OURS_IMAGE: &str = "openhands-agent-server:latest";

/// The offline stand-in for the reference's image.
/// Tagged with the reference version (`REFERENCE_VERSION`; a tidy test keeps them equal).
pub(crate) const PYTHON_IMAGE: &str = "openhands-reference-server:1.58.2";

/// Size in MiB of a local image (`docker image inspect`).
fn image_mib(image: &str) -> Result<f64> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .stderr(Stdio::null())
        .output()
        .context("running docker image inspect")?;
    if !out.status.success() {
        bail!("image {image} is not there");
    }
    let bytes: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(bytes / (1024.0 * 1024.0))
}

/// Builds the reference's stand-in image from the pyenv root, unless it exists.
fn ensure_python_image(launch: &Launch) -> Result<()> {
    if image_mib(PYTHON_IMAGE).is_ok() {
        return Ok(());
    }
    eprintln!("bench: importing the reference environment as {PYTHON_IMAGE} (once)…");
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&launch.pyroot)
        .args([
            "--exclude=./proc/*",
            "--exclude=./sys/*",
            "--exclude=./dev/*",
        ])
        .args(["--exclude=./tmp/*", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar on the reference environment")?;
    let Some(stdout) = tar.stdout.take() else {
        bail!("tar gave no output");
    };
    let status = Command::new("docker")
        .args(["import"])
        .args([
            "-c",
            r#"ENTRYPOINT ["/opt/oh/bin/python", "-m", "openhands.agent_server"]"#,
        ])
        .args(["-c", "ENV LC_ALL=C.UTF-8 LANG=C.UTF-8"])
        .args(["-c", "WORKDIR /"])
        .args(["-", PYTHON_IMAGE])
        .stdin(stdout)
        .stdout(Stdio::null())
        .status()
        .context("running docker import")?;
    let tar_status = tar.wait()?;
    if !status.success() || !tar_status.success() {
        bail!("importing the reference environment failed (tar {tar_status}, docker {status})");
    }
    Ok(())
}

/// Image size and enter → ready (median of `starts`) for `kind`'s image.
pub(crate) async fn measure(kind: Kind, launch: &Launch, starts: usize) -> Result<Measured> {
    let image = match kind {
        Kind::Ours => OURS_IMAGE,
        Kind::Python => {
            ensure_python_image(launch)?;
            PYTHON_IMAGE
        }
    };
    let size = image_mib(image).with_context(|| match kind {
        Kind::Ours => "build it with `cargo xtask image`".to_owned(),
        Kind::Python => "the reference stand-in".to_owned(),
    })?;
    let mut cmd = crate::driver::command()?;
    cmd.args(["docker-ready", "--image", image, "--starts"])
        .arg(starts.max(1).to_string());
    let lines = tokio::task::spawn_blocking(move || crate::driver::json_lines(&mut cmd)).await??;
    let samples: Vec<f64> = lines
        .iter()
        .filter_map(|line| line.get("enter_ready_ms").and_then(Value::as_f64))
        .collect();
    if samples.len() != starts.max(1) {
        bail!(
            "the driver timed {} of {} starts",
            samples.len(),
            starts.max(1)
        );
    }
    let summary = Summary::of(&samples);
    Ok(Measured {
        values: vec![("image_mib", size), ("docker_ready_ms", summary.median)],
        details: json!({ "image": image, "enter_ready_ms": summary.json() }),
    })
}
