//! `cargo xtask image`: the agent-server image `openhands-agent-server:<version>` (and
//! `:latest`), holding our release binary, bash, git, coreutils, procps, ca-certificates and
//! tini, a non-root user `openhands` (10001) and the reference's conventions (port 8000,
//! `/workspace/project`, `tini --` entrypoint, `WORKDIR /`, `LC_ALL=C.UTF-8`).
//!
//! The binary is built on the host (`cargo build --release`). The runtime stage is
//! `docker/Dockerfile.prebuilt` over a base that already holds the packages: the base image
//! given with `--base` if the engine has it (or can pull it), else one built offline here —
//! a Debian bookworm `debootstrap --variant=minbase` root with just those packages, stripped
//! of documentation, locales and package caches, and `docker import`ed. That base is cached
//! under a tag derived from its recipe, so later builds reuse it. `docker/Dockerfile` is the
//! same image built entirely by Docker, for machines with a registry.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::{USAGE, describe, run, workspace_root};

/// Repository of the image.
const REPOSITORY: &str = "openhands-agent-server";

/// Packages of the offline base, besides what `minbase` brings (coreutils, bash's deps…).
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
/// commands are C and shell; `perl-base` stays, as dpkg needs it), git's servers and mail
/// tools, and apt (the server runs as a user without root).
const REMOVE: &[&str] = &[
    "usr/lib/x86_64-linux-gnu/perl",
    "usr/share/perl",
    "usr/bin/perl5.36-x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu/libperl.so.5.36",
    "usr/lib/x86_64-linux-gnu/libperl.so.5.36.0",
    "usr/lib/git-core/git-daemon",
    "usr/lib/git-core/git-http-backend",
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

/// Bump when the offline recipe changes, so the cached base is rebuilt.
const RECIPE: u32 = 2;

/// The Debian release of the base (the host's: our binary links against its glibc).
const SUITE: &str = "bookworm";

/// Parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Options {
    /// Extra tag (the version tag and `latest` are always set unless this replaces them).
    tag: Option<String>,
    /// Use this binary instead of building one.
    bin: Option<PathBuf>,
    /// Skip `cargo build`, use the existing release binary.
    no_build: bool,
    /// The base image to try first.
    base: String,
    /// Do not try the online base at all.
    offline: bool,
}

fn parse(args: &[OsString]) -> Result<Options> {
    let mut options = Options {
        tag: None,
        bin: None,
        no_build: false,
        base: "debian:bookworm-slim".to_owned(),
        offline: false,
    };
    let mut args = args.iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .with_context(|| format!("`{name}` needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "--tag" => options.tag = Some(value("--tag")?),
            "--bin" => options.bin = Some(PathBuf::from(value("--bin")?)),
            "--base" => options.base = value("--base")?,
            "--no-build" => options.no_build = true,
            "--offline" => options.offline = true,
            other => bail!("unknown option `{other}`\n\n{USAGE}"),
        }
    }
    if options.tag.as_deref().is_some_and(|t| t.is_empty()) {
        bail!("`--tag` needs a non-empty value");
    }
    Ok(options)
}

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
        "{RECIPE}|{SUITE}|{}|{}|{}",
        PACKAGES.join(","),
        EMPTY.join(","),
        REMOVE.join(","),
    ) + &GCONV_KEEP.join(",");
    // FNV-1a: stable across runs and Rust versions, enough to tell recipes apart.
    let hash = recipe.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("openhands-rs/base:{SUITE}-{:012x}", hash & 0xffff_ffff_ffff)
}

fn say(message: &str) {
    eprintln!("image: {message}");
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

/// Builds (or reuses) the offline base image; returns its tag.
fn offline_base(cache: &Path) -> Result<String> {
    let tag = offline_base_tag();
    if image_exists(&tag) {
        say(&format!("offline base {tag} (cached)"));
        return Ok(tag);
    }
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
    let root = cache.join(format!("{SUITE}-rootfs"));
    if root.exists() {
        fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    }
    fs::create_dir_all(cache)?;
    let started = Instant::now();
    let mirror = mirror();
    say(&format!(
        "debootstrap {SUITE} (minbase + {}) from {mirror}, a few minutes…",
        PACKAGES.join(", ")
    ));
    run(Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&root)
        .arg(&mirror))?;
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
    say(&format!(
        "root ready in {:.0}s; importing it as {tag}…",
        started.elapsed().as_secs_f64()
    ));
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let Some(stdout) = tar.stdout.take() else {
        bail!("tar gave no output");
    };
    let mut import = Command::new("docker");
    import.args(["import", "-", &tag]).stdin(stdout);
    run(&mut import)?;
    let tar_status = tar.wait()?;
    if !tar_status.success() {
        bail!("tar of {} failed ({tar_status})", root.display());
    }
    let _ = fs::remove_dir_all(&root);
    Ok(tag)
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

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// `cargo xtask image [--tag T] [--bin PATH] [--no-build] [--base IMAGE] [--offline]`.
#[allow(
    clippy::print_stdout,
    reason = "the image's name and size are this task's output"
)]
pub(crate) fn main(args: &[OsString]) -> Result<ExitCode> {
    let options = parse(args)?;
    let root = workspace_root();
    let started = Instant::now();
    let version = version(&root)?;
    let binary = match &options.bin {
        Some(bin) => bin.clone(),
        None => {
            if !options.no_build {
                say("building openhands-agent-server (release)…");
                let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                run(Command::new(cargo).current_dir(&root).args([
                    "build",
                    "--release",
                    "-p",
                    "oh-server",
                    "--bin",
                    "openhands-agent-server",
                ]))?;
            }
            target_dir(&root)
                .join("release")
                .join("openhands-agent-server")
        }
    };
    if !binary.is_file() {
        bail!("no server binary at {}", binary.display());
    }
    let base = if !options.offline && image_exists(&options.base) {
        say(&format!("base {} (local)", options.base));
        options.base.clone()
    } else if !options.offline && try_pull(&options.base, Duration::from_secs(20)) {
        say(&format!("base {} (pulled)", options.base));
        options.base.clone()
    } else {
        if !options.offline {
            say(&format!(
                "cannot pull {} (no registry?): using the offline base",
                options.base
            ));
        }
        offline_base(&target_dir(&root).join("image-cache"))?
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
    fs::copy(
        root.join("docker").join("Dockerfile.prebuilt"),
        context.path().join("Dockerfile"),
    )?;
    let tags = tags(&options, &version);
    say(&format!("docker build {} on {base}…", tags.join(", ")));
    let mut build = Command::new("docker");
    build
        .arg("build")
        .args(["--build-arg", &format!("BASE_IMAGE={base}")])
        .args(["--build-arg", &format!("VERSION={version}")]);
    for tag in &tags {
        build.args(["--tag", tag]);
    }
    build.arg(context.path());
    run(&mut build).with_context(|| format!("`{}`", describe(&build)))?;
    let size = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", &tags[0]])
        .output()?;
    let bytes: f64 = String::from_utf8_lossy(&size.stdout)
        .trim()
        .parse()
        .unwrap_or(f64::NAN);
    println!(
        "image: {} ({:.1} MiB) built in {:.0}s",
        tags.join(", "),
        bytes / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn default_tags_are_the_version_and_latest() {
        let options = parse(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            tags(&options, "0.1.0"),
            [
                "openhands-agent-server:0.1.0",
                "openhands-agent-server:latest"
            ]
        );
        let tagged = parse(&os(&["--tag", "x:dev", "--offline"])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tags(&tagged, "0.1.0"), ["x:dev"]);
        assert!(tagged.offline);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse(&os(&["--tag"])).is_err());
        assert!(parse(&os(&["--tag", ""])).is_err());
        assert!(parse(&os(&["--fast"])).is_err());
    }

    #[test]
    fn the_offline_base_tag_follows_the_recipe() {
        let tag = offline_base_tag();
        assert!(tag.starts_with("openhands-rs/base:bookworm-"), "{tag}");
        assert_eq!(tag, offline_base_tag());
    }

    #[test]
    fn the_version_comes_from_the_workspace() {
        let version = version(&workspace_root()).unwrap_or_else(|e| panic!("{e}"));
        assert!(version.split('.').count() == 3, "{version}");
    }
}
