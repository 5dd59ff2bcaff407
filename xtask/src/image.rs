//! `cargo xtask image`: the agent-server image `openhands-agent-server:<version>` (and
//! `:latest`), holding our release binary, bash, git, coreutils, procps, ca-certificates and
//! tini, a non-root user `openhands` (10001) and the reference's conventions (port 8000,
//! `/workspace/project`, `tini --` entrypoint, `WORKDIR /`, `LC_ALL=C.UTF-8`).
//!
//! The binary is built on the host (`cargo build --release`). The image is the
//! `runtime-prebuilt` target of `docker/Dockerfile` (the recipe a registry-connected
//! `docker build` uses too), built from a context holding only that file and the binary,
//! over a base image: the one given with `--base` if the engine has it or can pull it (the
//! Dockerfile installs the packages it lacks), else one built offline here — a Debian
//! bookworm `debootstrap --variant=minbase` root with just those packages, stripped of
//! documentation, locales, package caches, apt and the full Perl, and `docker import`ed.
//! That base is cached under a tag derived from its recipe, so later builds reuse it.
//!
//! Every build ends with a smoke test (the binary runs in the image: its glibc fits);
//! `--verify` also starts the server in a container and checks it from outside.

use std::fs;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use serde_json::Value;

use super::bench::client::Http;

use super::{cargo, run, workspace_root};

/// Repository of the image.
const REPOSITORY: &str = "openhands-agent-server";

/// The Dockerfile, relative to the workspace root.
const DOCKERFILE: &str = "docker/Dockerfile";

/// The Dockerfile target built over a prebuilt binary.
const PREBUILT_TARGET: &str = "runtime-prebuilt";

/// The online base tried first, unless `--base` or `--offline`.
const DEFAULT_BASE: &str = "debian:bookworm-slim";

/// How long `docker pull` of the online base may take before the offline base is used.
const PULL_LIMIT: Duration = Duration::from_secs(20);

/// Packages of the offline base, besides what `minbase` brings (coreutils, dash, grep, sed,
/// tar, findutils, …). The same list as `ARG PACKAGES` in the Dockerfile (a test checks).
const PACKAGES: &[&str] = &["bash", "ca-certificates", "git", "procps", "tini"];

/// Directories emptied in the offline root (nothing the server or its commands need).
const EMPTY: &[&str] = &[
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/common-licenses",
    "usr/share/bash-completion",
    "var/cache/apt",
    "var/cache/debconf",
    "var/lib/apt/lists",
    "var/log",
];

/// Paths removed from the offline root to keep the image small: the full Perl (git's core
/// commands are C and shell; `perl-base` stays, as dpkg needs it), git's servers, mail tools
/// and dumb-HTTP walker, and apt (the server runs as a user without root). dpkg and its
/// database stay: the Dockerfile asks it which packages are installed.
const REMOVE: &[&str] = &[
    "usr/lib/x86_64-linux-gnu/perl",
    "usr/share/perl",
    "usr/bin/perl5.36-x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu/libperl.so.5.36",
    "usr/lib/x86_64-linux-gnu/libperl.so.5.36.0",
    "usr/lib/git-core/git-daemon",
    "usr/lib/git-core/git-http-backend",
    "usr/lib/git-core/git-http-fetch",
    "usr/lib/git-core/git-http-push",
    "usr/lib/git-core/git-imap-send",
    "usr/lib/git-core/git-shell",
    "usr/lib/git-core/scalar",
    "usr/bin/git-shell",
    "usr/bin/scalar",
    "usr/share/gitweb",
    "usr/lib/apt",
    "usr/bin/apt",
    "usr/bin/apt-get",
    "usr/bin/apt-cache",
    "usr/bin/apt-config",
    "usr/bin/apt-mark",
    "usr/bin/apt-cdrom",
    "usr/lib/x86_64-linux-gnu/libapt-pkg.so.6.0",
    "usr/lib/x86_64-linux-gnu/libapt-pkg.so.6.0.0",
    "usr/lib/x86_64-linux-gnu/libapt-private.so.0.0",
    "usr/lib/x86_64-linux-gnu/libapt-private.so.0.0.0",
];

/// The glibc charset converters kept (the Unicode ones and Latin-1/9); the other ~250 are
/// dropped for size, so `iconv` to those charsets fails cleanly.
const GCONV: &str = "usr/lib/x86_64-linux-gnu/gconv";
const GCONV_KEEP: &[&str] = &[
    "gconv-modules",
    "gconv-modules.cache",
    "gconv-modules.d",
    "UTF-16.so",
    "UTF-32.so",
    "UTF-7.so",
    "UNICODE.so",
    "ISO8859-1.so",
    "ISO8859-15.so",
];

/// Image settings `docker import` gives the offline base (an imported root has none).
const IMPORT_CHANGES: &[&str] =
    &["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];

/// Bump when the offline recipe changes in a way the lists above do not show, so the cached
/// base is rebuilt.
const RECIPE: u32 = 3;

/// The Debian release of the offline base. Our binary links against the host's glibc, so
/// the base's must not be older: bookworm (2.36) fits a bookworm host; the smoke test at
/// the end of every build catches a mismatch.
const SUITE: &str = "bookworm";

/// `cargo xtask image [OPTIONS]`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct Args {
    /// Tag only T instead of `<repo>:<version>` and `<repo>:latest`.
    #[arg(long, value_name = "T", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    tag: Option<String>,
    /// Use this server binary (no build).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// Use the existing release binary.
    #[arg(long, conflicts_with = "bin")]
    no_build: bool,
    /// The online base to try first.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_BASE, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    base: String,
    /// Go straight to the offline base.
    #[arg(long)]
    offline: bool,
    /// Then run the image as DockerWorkspace does and check health, the key, the user, git,
    /// /workspace and `docker stop`.
    #[arg(long)]
    verify: bool,
}

/// The options, as the task uses them.
type Options = Args;

/// The tags the image gets: `--tag` alone if given, else `<repo>:<version>` and `:latest`.
fn tags(options: &Options, version: &str) -> Vec<String> {
    match &options.tag {
        Some(tag) => vec![tag.clone()],
        None => vec![
            format!("{REPOSITORY}:{version}"),
            format!("{REPOSITORY}:latest"),
        ],
    }
}

/// The offline base's tag: the suite and a hash of the recipe.
fn offline_base_tag() -> String {
    let recipe = format!(
        "{RECIPE}|{SUITE}|{}|{}|{}|{}|{}",
        PACKAGES.join(","),
        EMPTY.join(","),
        REMOVE.join(","),
        GCONV_KEEP.join(","),
        IMPORT_CHANGES.join(","),
    );
    // FNV-1a: stable across runs and Rust versions, enough to tell recipes apart.
    let hash = recipe.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("openhands-rs/base:{SUITE}-{:012x}", hash & 0xffff_ffff_ffff)
}

fn say(message: &str) {
    eprintln!("image: {message}");
}

/// Seconds since `start`, for progress lines.
fn secs(start: Instant) -> String {
    format!("{:.1}s", start.elapsed().as_secs_f64())
}

fn image_exists(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pulls `image`, giving up after `limit` (no registry is the normal case here).
fn try_pull(image: &str, limit: Duration) -> bool {
    let Ok(mut child) = Command::new("docker")
        .args(["pull", "--quiet", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// The Debian mirror the host uses (it may be a local one), else deb.debian.org.
fn mirror() -> String {
    let from_list = fs::read_to_string("/etc/apt/sources.list")
        .ok()
        .and_then(|text| {
            text.lines()
                .filter(|l| l.split_whitespace().next() == Some("deb"))
                .flat_map(str::split_whitespace)
                .find(|w| w.starts_with("http://") || w.starts_with("https://"))
                .map(str::to_owned)
        });
    let from_sources = || {
        let dir = fs::read_dir("/etc/apt/sources.list.d").ok()?;
        dir.flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "sources"))
            .filter_map(|e| fs::read_to_string(e.path()).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.strip_prefix("URIs:"))
                    .flat_map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                    .collect::<Vec<_>>()
            })
            .find(|u| u.contains("debian") && !u.contains("security"))
    };
    from_list
        .or_else(from_sources)
        .unwrap_or_else(|| "http://deb.debian.org/debian".to_owned())
}

/// Builds (or reuses) the offline base image under `cache`; returns its tag.
fn offline_base(cache: &Path) -> Result<String> {
    let tag = offline_base_tag();
    if image_exists(&tag) {
        say(&format!("offline base {tag} (cached: yes)"));
        return Ok(tag);
    }
    say(&format!("offline base {tag} (cached: no)"));
    if Command::new("debootstrap")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        say("installing debootstrap…");
        run(Command::new("apt-get").args(["update", "-qq"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-qq", "debootstrap"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    // debootstrap wants absolute paths. The downloaded packages are kept, so a new recipe
    // does not download them again; the root is per process, so runs do not collide.
    fs::create_dir_all(cache.join("debs"))?;
    let cache = fs::canonicalize(cache)?;
    let root = cache.join(format!("{SUITE}-rootfs.{}", std::process::id()));
    let started = Instant::now();
    let mirror = mirror();
    say(&format!(
        "debootstrap {SUITE} (minbase + {}) from {mirror}…",
        PACKAGES.join(", ")
    ));
    let built = (|| {
        run(Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg(format!("--cache-dir={}", cache.join("debs").display()))
            .arg(SUITE)
            .arg(&root)
            .arg(&mirror))?;
        say(&format!(
            "debootstrap done ({}); trimming the root…",
            secs(started)
        ));
        trim(&root)?;
        say(&format!("docker import as {tag}…"));
        import(&root, &tag)
    })();
    if root.exists() {
        let _ = fs::remove_dir_all(&root);
    }
    built?;
    say(&format!("offline base ready ({})", secs(started)));
    Ok(tag)
}

/// Removes what the image does not need from the bootstrapped `root`.
fn trim(root: &Path) -> Result<()> {
    for rel in EMPTY {
        let path = root.join(rel);
        if path.exists() {
            fs::remove_dir_all(&path).with_context(|| format!("removing {}", path.display()))?;
            fs::create_dir_all(&path)?;
        }
    }
    for rel in REMOVE {
        let path = root.join(rel);
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if let Err(e) = removed
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(e).with_context(|| format!("removing {}", path.display()));
        }
    }
    if let Ok(entries) = fs::read_dir(root.join(GCONV)) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !GCONV_KEEP.iter().any(|k| name.to_str() == Some(k)) && entry.path().is_file() {
                fs::remove_file(entry.path())?;
            }
        }
    }
    Ok(())
}

/// `tar -C root -c . | docker import - tag`.
fn import(root: &Path, tag: &str) -> Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let Some(stdout) = tar.stdout.take() else {
        bail!("tar gave no output");
    };
    let mut docker = Command::new("docker");
    docker.arg("import");
    for change in IMPORT_CHANGES {
        docker.args(["--change", change]);
    }
    docker.args(["-", tag]).stdin(stdout).stdout(Stdio::null());
    let imported = run(&mut docker);
    let tar_status = tar.wait()?;
    imported?;
    ensure!(
        tar_status.success(),
        "tar of {} failed ({tar_status})",
        root.display()
    );
    Ok(())
}

/// The workspace version (`[workspace.package] version`).
fn version(root: &Path) -> Result<String> {
    let manifest = fs::read_to_string(root.join("Cargo.toml"))?;
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[workspace.package]";
        } else if in_package && let Some(rest) = line.strip_prefix("version") {
            let value = rest
                .trim_start()
                .trim_start_matches('=')
                .trim()
                .trim_matches('"');
            return Ok(value.to_owned());
        }
    }
    bail!("no [workspace.package] version in Cargo.toml")
}

/// The commit and ref baked into the image (`OPENHANDS_BUILD_GIT_SHA/REF`, as the
/// reference's build does; shown by `GET /server_info`). The variables themselves win.
fn git_info(root: &Path) -> (String, String) {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    let sha = std::env::var("OPENHANDS_BUILD_GIT_SHA")
        .ok()
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    let git_ref = std::env::var("OPENHANDS_BUILD_GIT_REF")
        .ok()
        .or_else(|| git(&["symbolic-ref", "-q", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    (sha, git_ref)
}

/// The image's size in bytes.
fn image_size(image: &str) -> Result<u64> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", image])
        .output()
        .context("running docker image inspect")?;
    ensure!(out.status.success(), "image {image} is not there");
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// `12.3 MB (11.7 MiB)`: `docker images` counts in MB of 10^6 bytes.
fn human_size(bytes: u64) -> String {
    #[allow(
        clippy::cast_precision_loss,
        reason = "image sizes are far below 2^52 bytes"
    )]
    let bytes = bytes as f64;
    format!(
        "{:.1} MB ({:.1} MiB)",
        bytes / 1e6,
        bytes / (1024.0 * 1024.0)
    )
}

/// `cargo xtask image [--tag T] [--bin PATH] [--no-build] [--base IMAGE] [--offline]
/// [--verify]`.
#[allow(
    clippy::print_stdout,
    reason = "the image's name and size are this task's output"
)]
pub(crate) fn main(options: Args) -> Result<ExitCode> {
    let root = workspace_root();
    let started = Instant::now();
    let version = version(&root)?;
    let docker_up = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ensure!(
        docker_up,
        "no Docker Engine answers (`docker version` failed)"
    );

    let binary = match &options.bin {
        Some(bin) => bin.clone(),
        None => {
            if options.no_build {
                say("using the existing release binary (--no-build)");
                cargo::binary_path("openhands-agent-server", cargo::Profile::Release)?
            } else {
                let step = Instant::now();
                say("cargo build --release -p oh-server --bin openhands-agent-server…");
                let binary = cargo::build_binary(
                    "oh-server",
                    "openhands-agent-server",
                    cargo::Profile::Release,
                )?;
                say(&format!("binary built ({})", secs(step)));
                binary
            }
        }
    };
    if !binary.is_file() {
        bail!("no server binary at {}", binary.display());
    }

    let base = if options.offline {
        say("--offline: not trying an online base");
        offline_base(&cargo::target_dir()?.join("image-cache"))?
    } else if image_exists(&options.base) {
        say(&format!("base {} (local)", options.base));
        options.base.clone()
    } else if try_pull(&options.base, PULL_LIMIT) {
        say(&format!("base {} (pulled)", options.base));
        options.base.clone()
    } else {
        say(&format!(
            "cannot pull {} (no registry?): using the offline base",
            options.base
        ));
        offline_base(&cargo::target_dir()?.join("image-cache"))?
    };

    let context = tempfile::tempdir()?;
    let in_context = context.path().join("openhands-agent-server");
    fs::copy(&binary, &in_context).with_context(|| format!("copying {}", binary.display()))?;
    // Symbols are not needed at run time (panics still print their messages).
    let stripped = Command::new("strip")
        .arg(&in_context)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        say("strip is not available: the binary keeps its symbols");
    }
    fs::copy(root.join(DOCKERFILE), context.path().join("Dockerfile"))
        .with_context(|| format!("copying {DOCKERFILE}"))?;
    let tags = tags(&options, &version);
    let (sha, git_ref) = git_info(&root);
    let step = Instant::now();
    say(&format!(
        "docker build --target {PREBUILT_TARGET} {} on {base}…",
        tags.join(", ")
    ));
    let mut build = Command::new("docker");
    build
        .arg("build")
        .args(["--target", PREBUILT_TARGET])
        .args(["--build-arg", &format!("BASE_IMAGE={base}")])
        .args(["--build-arg", &format!("VERSION={version}")])
        .args(["--build-arg", &format!("OPENHANDS_BUILD_GIT_SHA={sha}")])
        .args(["--build-arg", &format!("OPENHANDS_BUILD_GIT_REF={git_ref}")]);
    for tag in &tags {
        build.args(["--tag", tag]);
    }
    build.arg(context.path());
    run(&mut build)?;
    say(&format!("docker build done ({})", secs(step)));

    smoke(&tags[0], &version)?;
    if options.verify {
        verify(&tags[0])?;
    }
    println!(
        "image: {} — {}, built in {}",
        tags.join(", "),
        human_size(image_size(&tags[0])?),
        secs(started)
    );
    Ok(ExitCode::SUCCESS)
}

/// The binary starts in the image (its libraries and glibc are there) and is the version
/// just built.
fn smoke(image: &str, version: &str) -> Result<()> {
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "/usr/local/bin/openhands-agent-server",
        ])
        .args([image, "--version"])
        .output()
        .context("running docker run")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains(version) {
        bail!(
            "the server binary does not run in {image} ({}): {}{}\n(a glibc newer than \
             the base's? the offline base is Debian {SUITE})",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    say(&format!(
        "smoke test: `{}` runs in the image",
        stdout.trim()
    ));
    Ok(())
}

/// A container removed (with `docker rm -f`) when dropped.
struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.0])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Starts `image` as DockerWorkspace does (a session API key, `--host 0.0.0.0 --port 8000`,
/// the port published on loopback) and checks it from outside: health, authentication, a
/// command run as the non-root user with git and a writable workspace, the server's state
/// under /workspace, and a prompt stop through tini.
fn verify(image: &str) -> Result<()> {
    let key = format!("verify-{}", uuid::Uuid::new_v4().simple());
    let name = format!("oh-image-verify-{}", std::process::id());
    let out = Command::new("docker")
        .args(["run", "-d", "--rm", "--name", &name])
        .args(["-e", &format!("SESSION_API_KEY={key}")])
        .args(["-p", "127.0.0.1::8000", image])
        .args(["--host", "0.0.0.0", "--port", "8000"])
        .output()
        .context("running docker run")?;
    ensure!(
        out.status.success(),
        "docker run failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let container = Container(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    let result = verify_running(&container, &key);
    if result.is_err() {
        let logs = Command::new("docker")
            .args(["logs", "--tail", "20", &container.0])
            .output();
        if let Ok(logs) = logs {
            say(&format!(
                "verify: last log lines:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            ));
        }
    }
    result
}

fn verify_running(container: &Container, key: &str) -> Result<()> {
    let out = Command::new("docker")
        .args(["port", &container.0, "8000/tcp"])
        .output()?;
    let mapping = String::from_utf8_lossy(&out.stdout);
    let port: u16 = mapping
        .lines()
        .find_map(|l| l.rsplit_once(':')?.1.trim().parse().ok())
        .with_context(|| format!("no published port in `{}`", mapping.trim()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let http = |method: &str, path: &str, key: Option<&str>, body: Option<&Value>| {
        runtime.block_on(http(port, method, path, key, body))
    };

    let started = Instant::now();
    let health = loop {
        match http("GET", "/health", None, None) {
            Ok((200, body)) => break body,
            _ if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(100));
            }
            other => bail!("/health did not answer 200 within 30 s: {other:?}"),
        }
    };
    ensure!(
        health.get("status").and_then(Value::as_str) == Some("ok"),
        "/health answered {health}"
    );
    say(&format!("verify: /health ok after {}", secs(started)));

    let path = "/api/bash/execute_bash_command";
    let request = serde_json::json!({
        "command": "id -u; id -g; git --version; touch /workspace/project/.w && echo writable",
        "timeout": 30,
    });
    let (status, _) = http("POST", path, None, Some(&request))?;
    ensure!(
        status == 401,
        "{path} without the key answered {status}, not 401"
    );
    let (status, output) = http("POST", path, Some(key), Some(&request))?;
    ensure!(
        status == 200,
        "{path} with the key answered {status}: {output}"
    );
    let stdout = output.get("stdout").and_then(Value::as_str).unwrap_or("");
    let lines: Vec<&str> = stdout.lines().collect();
    ensure!(
        lines.len() == 4
            && lines[0] == "10001"
            && lines[1] == "10001"
            && lines[2].starts_with("git version ")
            && lines[3] == "writable",
        "unexpected command output: {output}"
    );
    // The server's own state went under /workspace (WORKDIR / and its relative defaults).
    let owner = serde_json::json!({"command": "stat -c '%U %n' /workspace/bash_events"});
    let (_, state) = http("POST", path, Some(key), Some(&owner))?;
    let state_out = state.get("stdout").and_then(Value::as_str).unwrap_or("");
    ensure!(
        state_out.trim() == "openhands /workspace/bash_events",
        "bash events are not in /workspace/bash_events: {state}"
    );
    say(&format!(
        "verify: key enforced (401 without it); commands run as uid/gid 10001 with {}; \
         /workspace/project writable; server state under /workspace",
        lines[2]
    ));

    let stop = Instant::now();
    run(Command::new("docker")
        .args(["stop", "--time", "10", &container.0])
        .stdout(Stdio::null()))?;
    let took = stop.elapsed();
    ensure!(
        took < Duration::from_secs(5),
        "docker stop took {took:?}: SIGTERM did not reach the server"
    );
    say(&format!("verify: docker stop took {}", secs(stop)));
    Ok(())
}

/// One request to `127.0.0.1:port` (hyper's pooled client, as the bench uses it), with the
/// session key if given, within 60 s; the status and the JSON body (`null` if the body is
/// not JSON).
async fn http(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    let client = Http::new(port, key.unwrap_or_default());
    let method = hyper::Method::from_bytes(method.as_bytes())?;
    let (content_type, body) = match body {
        Some(body) => (Some("application/json"), Bytes::from(body.to_string())),
        None => (None, Bytes::new()),
    };
    let reply = tokio::time::timeout(
        Duration::from_secs(60),
        client.send(method, path, content_type, body),
    )
    .await
    .with_context(|| format!("{path} did not answer within 60 s"))??;
    Ok((
        reply.status.as_u16(),
        serde_json::from_slice(&reply.body).unwrap_or(Value::Null),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of `ARG PACKAGES="..."` in the Dockerfile.
    fn dockerfile_packages(dockerfile: &str) -> Option<Vec<String>> {
        dockerfile.lines().find_map(|line| {
            let value = line.trim().strip_prefix("ARG PACKAGES=")?;
            Some(
                value
                    .trim_matches('"')
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect(),
            )
        })
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        use clap::Parser as _;
        Cli::try_parse_from(std::iter::once("image").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn default_tags_are_the_version_and_latest() {
        let options = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(options.base, "debian:bookworm-slim");
        assert!(!options.offline && !options.verify && !options.no_build);
        assert_eq!(
            tags(&options, "0.1.0"),
            [
                "openhands-agent-server:0.1.0",
                "openhands-agent-server:latest"
            ]
        );
        let tagged =
            parse(&["--tag", "x:dev", "--offline", "--verify"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tags(&tagged, "0.1.0"), ["x:dev"]);
        assert!(tagged.offline && tagged.verify);
    }

    #[test]
    fn options_take_their_values() {
        let options = parse(&["--bin", "/tmp/server", "--base", "debian:trixie-slim"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(options.bin, Some(PathBuf::from("/tmp/server")));
        assert_eq!(options.base, "debian:trixie-slim");
        assert!(parse(&["--no-build"]).is_ok_and(|o| o.no_build));
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&["--tag"]).is_err());
        assert!(parse(&["--tag", ""]).is_err());
        assert!(parse(&["--base"]).is_err());
        assert!(parse(&["--fast"]).is_err());
        assert!(parse(&["--bin", "x", "--no-build"]).is_err());
    }

    #[test]
    fn the_offline_base_tag_follows_the_recipe() {
        let tag = offline_base_tag();
        assert!(tag.starts_with("openhands-rs/base:bookworm-"), "{tag}");
        assert_eq!(tag.len(), "openhands-rs/base:bookworm-".len() + 12, "{tag}");
        assert_eq!(tag, offline_base_tag());
    }

    #[test]
    fn the_dockerfile_installs_the_offline_packages() {
        let text = fs::read_to_string(workspace_root().join(DOCKERFILE))
            .unwrap_or_else(|e| panic!("{DOCKERFILE}: {e}"));
        let packages: Vec<String> = PACKAGES.iter().map(|p| (*p).to_owned()).collect();
        assert_eq!(dockerfile_packages(&text), Some(packages));
        for stage in [
            "AS runtime-base",
            "AS runtime-prebuilt",
            "AS builder",
            "AS runtime",
        ] {
            assert!(text.contains(stage), "{DOCKERFILE} lacks `{stage}`");
        }
        // The classic builder builds every stage before the target: the prebuilt target
        // must come before the Rust builder, which cannot be pulled without a registry.
        let at = |needle: &str| text.find(needle).unwrap_or(usize::MAX);
        assert!(at("AS runtime-prebuilt") < at("AS builder"));
        assert!(text.contains(
            r#"ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/openhands-agent-server"]"#
        ));
    }

    #[test]
    fn the_version_comes_from_the_workspace() {
        let version = version(&workspace_root()).unwrap_or_else(|e| panic!("{e}"));
        assert!(version.split('.').count() == 3, "{version}");
    }

    #[test]
    fn sizes_read_as_docker_shows_them() {
        assert_eq!(human_size(98_600_000), "98.6 MB (94.0 MiB)");
    }
}
