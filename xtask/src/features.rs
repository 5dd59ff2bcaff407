//! `cargo xtask features`: the facade builds with every feature on its own, with none, with
//! the defaults and with all of them (the loop `cargo hack --each-feature` would run), and
//! its `client` feature stays free of the local backends.
//!
//! Each combination is a `cargo check -p openhands` that must succeed without warnings. The
//! features are read from `crates/openhands/Cargo.toml`, so a new one is covered at once.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::{cargo, workspace_root};

/// The facade package.
const PACKAGE: &str = "openhands";

/// Crates a client-only build must not pull in: Docker, the agent core, the server.
const NOT_IN_CLIENT: &[&str] = &["bollard", "oh-agent", "oh-server"];

/// `cargo xtask features`.
#[allow(clippy::print_stdout, reason = "the results are this task's output")]
pub(crate) fn main() -> Result<ExitCode> {
    let root = workspace_root();
    let cargo = cargo::cargo();
    let features = declared_features(&root.join("crates").join(PACKAGE).join("Cargo.toml"))?;

    let mut combinations: Vec<Vec<String>> = vec![
        vec!["--no-default-features".into()],
        Vec::new(),
        vec!["--all-features".into()],
    ];
    for feature in &features {
        combinations.push(vec![
            "--no-default-features".into(),
            "--features".into(),
            feature.clone(),
        ]);
    }

    let mut failed = 0;
    for flags in &combinations {
        let shown = if flags.is_empty() {
            "(default features)".to_owned()
        } else {
            flags.join(" ")
        };
        let started = Instant::now();
        let output = Command::new(&cargo)
            .current_dir(&root)
            .args(["check", "--quiet", "-p", PACKAGE])
            .args(flags)
            .output()
            .context("running cargo check")?;
        let took = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let warned = stderr
            .lines()
            .any(|l| l.starts_with("warning") || l.starts_with("error"));
        if output.status.success() && !warned {
            println!("ok    cargo check -p {PACKAGE} {shown} ({took:.1}s)");
        } else {
            failed += 1;
            let why = if output.status.success() {
                "warnings"
            } else {
                "errors"
            };
            println!("FAIL  cargo check -p {PACKAGE} {shown}: {why}");
            for line in stderr.lines() {
                println!("      | {line}");
            }
        }
    }

    let tree = Command::new(&cargo)
        .current_dir(&root)
        .args(["tree", "-p", PACKAGE, "--no-default-features", "--features"])
        .args(["client", "-e", "normal", "--prefix", "none"])
        .output()
        .context("running cargo tree")?;
    if !tree.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&tree.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&tree.stdout);
    let found: Vec<&str> = NOT_IN_CLIENT
        .iter()
        .copied()
        .filter(|name| {
            tree.lines()
                .any(|line| line.split_whitespace().next() == Some(*name))
        })
        .collect();
    if found.is_empty() {
        println!(
            "ok    cargo tree -p {PACKAGE} --no-default-features --features client: none of {}",
            NOT_IN_CLIENT.join(", ")
        );
    } else {
        failed += 1;
        println!(
            "FAIL  cargo tree -p {PACKAGE} --no-default-features --features client pulls in {} \
             (see `cargo tree -p {PACKAGE} --no-default-features --features client -e normal -i <crate>`)",
            found.join(", ")
        );
    }
    let checks = combinations.len() + 1;
    println!(
        "features: {} of {checks} checks passed ({} feature combinations)",
        checks - failed,
        combinations.len()
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The features of a manifest's `[features]` table, without `default`.
fn declared_features(manifest: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let mut features = Vec::new();
    let mut in_features = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
        } else if in_features
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
        {
            let name = name.trim();
            if name != "default" && !name.is_empty() {
                features.push(name.to_owned());
            }
        }
    }
    if features.is_empty() {
        bail!("{} declares no features", manifest.display());
    }
    Ok(features)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_facade_features() {
        let features =
            declared_features(&workspace_root().join("crates/openhands/Cargo.toml")).unwrap();
        for expected in ["client", "docker", "api", "cloud", "server", "local"] {
            assert!(features.iter().any(|f| f == expected), "{features:?}");
        }
        assert!(!features.iter().any(|f| f == "default"));
    }
}
