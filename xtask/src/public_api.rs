//! `cargo xtask public-api [--bless]`: the public API of the facade and of the client, item by
//! item, against the lists committed next to their manifests (`public-api.txt`), so that an
//! export nobody meant to make shows up as a diff in review.
//!
//! The list comes from rustdoc's JSON output (`--output-format json`), which is unstable: the
//! stable toolchain emits it with `RUSTC_BOOTSTRAP=1`, into a target directory of its own so
//! the flag never invalidates the ordinary builds. The `public-api` crate turns the JSON into
//! one line per item (every item, field, variant, method and trait impl, blanket impls left
//! out). Its JSON reader is pinned to one format version; a toolchain that writes another
//! stops this task with both numbers rather than with a parse error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::workspace_root;

/// The rustdoc JSON format the pinned `public-api` (through `rustdoc-types`) reads: the one
/// the workspace's toolchain (rust-version in `Cargo.toml`) writes.
const FORMAT_VERSION: u64 = 57;

/// The crates whose public API is checked, and their features.
const CRATES: &[(&str, &[&str])] = &[("openhands", &["--all-features"]), ("oh-client", &[])];

/// `cargo xtask public-api [--bless]`.
#[allow(clippy::print_stdout, reason = "the results are this task's output")]
pub(crate) fn main(bless: bool) -> Result<ExitCode> {
    let root = workspace_root();
    let target = crate::cargo::target_dir()?.join("public-api");
    let mut failed = 0;
    for (package, flags) in CRATES {
        let listed = root.join("crates").join(package).join("public-api.txt");
        let json = rustdoc_json(&target, package, flags)?;
        let api = items(&json)?;
        if bless {
            std::fs::write(&listed, lines(&api))
                .with_context(|| format!("writing {}", listed.display()))?;
            println!(
                "public-api: {package}: {} items written to {}",
                api.len(),
                shown(&root, &listed)
            );
            continue;
        }
        let committed = std::fs::read_to_string(&listed).with_context(|| {
            format!(
                "reading {} (create it with `cargo xtask public-api --bless`)",
                listed.display()
            )
        })?;
        let committed: BTreeSet<String> = committed.lines().map(str::to_owned).collect();
        let removed: Vec<&String> = committed.difference(&api).collect();
        let added: Vec<&String> = api.difference(&committed).collect();
        if removed.is_empty() && added.is_empty() {
            println!("public-api: {package}: PASS ({} items)", api.len());
            continue;
        }
        failed += 1;
        println!(
            "public-api: {package}: FAIL, the public API differs from {} ({} removed, {} added):",
            shown(&root, &listed),
            removed.len(),
            added.len()
        );
        for line in removed {
            println!("-{line}");
        }
        for line in added {
            println!("+{line}");
        }
    }
    if failed > 0 {
        println!(
            "public-api: if the change is meant, run `cargo xtask public-api --bless` and \
             commit the lists"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Builds the rustdoc JSON of `package` into `target` and returns its path.
fn rustdoc_json(target: &Path, package: &str, flags: &[&str]) -> Result<PathBuf> {
    let status = crate::cargo::command()
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTDOCFLAGS")
        .args(["rustdoc", "--quiet", "--lib", "-p", package])
        .args(flags)
        .arg("--target-dir")
        .arg(target)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .status()
        .context("running cargo rustdoc")?;
    if !status.success() {
        bail!("`cargo rustdoc -p {package}` (JSON output) failed: {status}");
    }
    let path = target
        .join("doc")
        .join(format!("{}.json", package.replace('-', "_")));
    let head: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let version = head["format_version"].as_u64();
    if version != Some(FORMAT_VERSION) {
        bail!(
            "rustdoc wrote JSON format {version:?} but the pinned public-api reads format \
             {FORMAT_VERSION}: after a toolchain update, move public-api and rustdoc-types in \
             xtask/Cargo.toml to the versions for the new format (and FORMAT_VERSION here)"
        );
    }
    Ok(path)
}

/// The public items, one rendered line each.
fn items(json: &Path) -> Result<BTreeSet<String>> {
    let api = public_api::Builder::from_rustdoc_json(json)
        .omit_blanket_impls(true)
        .build()
        .with_context(|| format!("reading the public API from {}", json.display()))?;
    Ok(api.items().map(ToString::to_string).collect())
}

/// The items as the committed file holds them: sorted, one per line.
fn lines(api: &BTreeSet<String>) -> String {
    let mut text = String::new();
    for line in api {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// `path` relative to the workspace root, for messages.
fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}
