//! Tidy checks: architecture invariants of the workspace, read from
//! `cargo tree` and `git grep`. Each invariant is its own test.

use std::collections::BTreeSet;
use std::process::Command;

use super::workspace_root;

/// The names of every package `package` depends on, transitively, along the
/// given kinds of edges (`normal`, `build`, `dev`), for all features and all
/// targets. The package itself is left out.
fn dependencies(package: &str, edges: &str) -> BTreeSet<String> {
    let output = crate::cargo::command()
        .args(["tree", "--package", package, "--edges", edges])
        .args(["--all-features", "--target", "all"])
        .args(["--prefix", "none", "--format", "{p}"])
        .output()
        .expect("could not run `cargo tree`");
    assert!(
        output.status.success(),
        "`cargo tree --package {package}` failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        // `{p}` is `name vX.Y.Z (source)`; dependency-kind headers such as
        // `[build-dependencies]` and blank lines are not packages.
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| !name.starts_with('['))
        .filter(|name| *name != package)
        .map(str::to_owned)
        .collect()
}

/// Panics naming every crate of `forbidden` that `package` depends on.
fn assert_no_dependency(package: &str, edges: &str, forbidden: &[&str], why: &str) {
    let deps = dependencies(package, edges);
    let found: Vec<&str> = forbidden
        .iter()
        .copied()
        .filter(|name| deps.contains(*name))
        .collect();
    assert!(
        found.is_empty(),
        "{package} must not depend on {} ({why}); see `cargo tree -p {package} -e {edges} -i <crate>`",
        found
            .iter()
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", "),
    );
}

#[test]
fn protocol_has_no_runtime_or_io_dependencies() {
    assert_no_dependency(
        "oh-protocol",
        "normal,build",
        &[
            "tokio",
            "hyper",
            "hyper-util",
            "rustls",
            "bollard",
            "reqwest",
            "mio",
        ],
        "the wire types stay free of async runtimes, HTTP stacks and I/O",
    );
}

#[test]
fn agent_and_client_are_independent() {
    assert_no_dependency(
        "oh-agent",
        "normal",
        &["oh-client"],
        "the agent core never talks to a remote server",
    );
    assert_no_dependency(
        "oh-client",
        "normal",
        &["oh-agent"],
        "the client drives a server and never embeds the agent",
    );
}

/// The product's library crates under the `openhands` facade.
const LAYERS_BELOW_THE_FACADE: [&str; 7] = [
    "oh-protocol",
    "oh-agent",
    "oh-server",
    "oh-client",
    "oh-workspace-docker",
    "oh-workspace-api",
    "oh-workspace-cloud",
];

#[test]
fn nothing_depends_on_the_facade() {
    for package in LAYERS_BELOW_THE_FACADE {
        assert_no_dependency(
            package,
            "normal,build,dev",
            &["openhands"],
            "the `openhands` facade sits on top of the workspace",
        );
    }
}

#[test]
fn no_machine_paths_in_tracked_files() {
    let root = workspace_root();
    let inside_repo = Command::new("git")
        .current_dir(&root)
        .args(["rev-parse", "--is-inside-work-tree"])
        .output();
    match inside_repo {
        Ok(output) if output.status.success() => {}
        _ => {
            println!("note: skipping the machine-path check: `git` or a git work tree is missing");
            return;
        }
    }
    // Built from pieces so that this file does not match itself.
    let pattern = format!(
        "({}|{})",
        ["", "work", ""].join("/"),
        ["", "tmp", "bash_jobs"].join("/")
    );
    let output = Command::new("git")
        .current_dir(&root)
        .args(["grep", "-n", "-E", &pattern, "--", ".", ":(exclude)*.lock"])
        .output()
        .expect("could not run `git grep`");
    // `git grep` exits 1 when nothing matches, 0 when something does.
    match output.status.code() {
        Some(1) => {}
        Some(0) => panic!(
            "tracked files contain absolute paths of a build machine; \
             use relative paths or placeholders:\n{}",
            String::from_utf8_lossy(&output.stdout)
        ),
        _ => panic!(
            "`git grep` failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

#[test]
fn one_reference_version_everywhere() {
    let version = super::REFERENCE_VERSION;
    let script = std::fs::read_to_string(workspace_root().join("xtask").join("pyenv.sh"))
        .expect("read xtask/pyenv.sh");
    let default = format!("VER=\"${{PYREF_VERSION:-{version}}}\"");
    assert!(
        script.contains(&default),
        "xtask/pyenv.sh must default to the reference version {version} (`{default}`)"
    );
    assert!(
        super::bench::docker::PYTHON_IMAGE.ends_with(&format!(":{version}")),
        "the reference's stand-in image must be tagged {version}: {}",
        super::bench::docker::PYTHON_IMAGE
    );
}

/// The product's constants xtask repeats (it links no product crate) are the product's.
#[test]
fn repeated_constants_match_the_product() {
    let root = workspace_root();
    let backend = std::fs::read_to_string(root.join("crates/oh-sandbox-server/src/backend/mod.rs"))
        .expect("reading the sandbox server's backend");
    for (name, value) in [
        ("SERVER_LABEL", crate::bench::sandbox::SERVER_LABEL),
        ("POOL_LABEL", crate::bench::sandbox::POOL_LABEL),
    ] {
        assert!(
            backend.contains(&format!("pub const {name}: &str = \"{value}\";")),
            "oh_sandbox_server::{name} is no longer {value:?}: update xtask/src/bench/sandbox.rs"
        );
    }
}

/// xtask orchestrates: it links none of the product's crates, so it builds (and
/// `cargo xtask fixtures` runs) while the wire types are being reworked.
#[test]
fn xtask_links_no_product_crate() {
    assert_no_dependency(
        "xtask",
        "normal",
        &[
            LAYERS_BELOW_THE_FACADE.as_slice(),
            &["oh-sandbox-server", "oh-testkit", "openhands"],
        ]
        .concat(),
        "it runs the product's binaries and tests instead",
    );
}
