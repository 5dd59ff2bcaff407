//! `/api/git/changes` and `/api/git/diff` (spec §3.18), on repositories made with the git CLI.

use super::common;

use std::path::Path;
use std::process::Command;

use common::TestServer;
use serde_json::{Value, json};

/// Runs git in `dir` with a fixed identity; panics on failure.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, content).expect("write");
}

fn q(path: &Path) -> String {
    form_urlencoded::byte_serialize(path.to_str().expect("utf-8").as_bytes()).collect()
}

async fn changes(server: &TestServer, path: &Path, extra: &str) -> (u16, Value) {
    let reply = server
        .get(&format!("/api/git/changes?path={}{extra}", q(path)))
        .await;
    (reply.status.as_u16(), reply.json())
}

async fn diff(server: &TestServer, path: &Path, extra: &str) -> (u16, Value) {
    let reply = server
        .get(&format!("/api/git/diff?path={}{extra}", q(path)))
        .await;
    (reply.status.as_u16(), reply.json())
}

fn change(status: &str, path: &str) -> Value {
    json!({"status": status, "path": path})
}

#[tokio::test]
async fn a_fresh_repository_lists_everything_as_added() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    write(&repo.join("staged.txt"), "x\n");
    git(repo, &["add", "staged.txt"]);
    write(&repo.join("untracked.txt"), "y\n");
    write(&repo.join("sp ace.txt"), "z\n");
    write(&repo.join("dir/deep.txt"), "d\n");
    write(&repo.join(".gitignore"), "ignored.log\n");
    write(&repo.join("ignored.log"), "no\n");
    let expected = json!([
        change("ADDED", ".gitignore"),
        change("ADDED", "dir/deep.txt"),
        change("ADDED", "sp ace.txt"),
        change("ADDED", "staged.txt"),
        change("ADDED", "untracked.txt"),
    ]);
    assert_eq!(changes(&server, repo, "").await, (200, expected.clone()));
    // HEAD without commits is the empty tree.
    assert_eq!(changes(&server, repo, "&ref=HEAD").await, (200, expected));
}

#[tokio::test]
async fn modified_deleted_renamed_and_untracked_files() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    for name in [
        "keep.txt",
        "edit.txt",
        "gone.txt",
        "old.txt",
        "moved_by_hand.txt",
    ] {
        write(&repo.join(name), &format!("{name}\n"));
    }
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "init"]);
    let (status, body) = changes(&server, repo, "").await;
    assert_eq!((status, body), (200, json!([])));

    write(&repo.join("edit.txt"), "edited\n");
    git(repo, &["rm", "-q", "gone.txt"]);
    git(repo, &["mv", "old.txt", "new.txt"]);
    std::fs::rename(repo.join("moved_by_hand.txt"), repo.join("landed.txt")).expect("mv");
    write(&repo.join("sub/fresh.txt"), "fresh\n");
    let expected = json!([
        change("UPDATED", "edit.txt"),
        change("DELETED", "gone.txt"),
        change("ADDED", "landed.txt"),
        change("DELETED", "moved_by_hand.txt"),
        change("ADDED", "new.txt"),
        change("DELETED", "old.txt"),
        change("ADDED", "sub/fresh.txt"),
    ]);
    assert_eq!(changes(&server, repo, "").await, (200, expected.clone()));
    assert_eq!(changes(&server, repo, "&ref=HEAD").await, (200, expected));

    // A subdirectory lists its own changes, relative to itself.
    assert_eq!(
        changes(&server, &repo.join("sub"), "").await,
        (200, json!([change("ADDED", "fresh.txt")]))
    );

    // An explicit base that does not resolve is a 400 with git's command line.
    let (status, body) = changes(&server, repo, "&ref=nope").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"detail": "Git command failed: git --no-pager rev-parse --verify 'nope^{commit}'"})
    );

    // Against the first commit after a second one, committed work shows too.
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "second"]);
    let first = git(repo, &["rev-list", "--max-parents=0", "HEAD"]);
    let (status, body) = changes(&server, repo, &format!("&ref={first}")).await;
    assert_eq!(status, 200);
    assert!(
        body.as_array()
            .expect("list")
            .contains(&change("UPDATED", "edit.txt")),
        "{body}"
    );
}

#[tokio::test]
async fn non_repositories_have_no_changes() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    write(&dir.path().join("plain.txt"), "p\n");
    assert_eq!(changes(&server, dir.path(), "").await, (200, json!([])));
    assert_eq!(
        changes(&server, &dir.path().join("missing"), "").await,
        (200, json!([]))
    );
    let reply = server.get("/api/git/changes").await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json()["detail"][0]["loc"], json!(["query", "path"]));
}

#[tokio::test]
async fn repositories_below_a_plain_directory_are_listed_with_their_prefix() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path();
    for name in ["alpha", "beta"] {
        git(root, &["init", "-q", name]);
        write(&root.join(name).join("file.txt"), "x\n");
    }
    write(&root.join("loose/file.txt"), "not in a repo\n");
    assert_eq!(
        changes(&server, root, "").await,
        (
            200,
            json!([
                change("ADDED", "alpha/file.txt"),
                change("ADDED", "beta/file.txt")
            ])
        )
    );
}

#[tokio::test]
async fn the_base_is_the_fork_point_with_the_remote_default_branch() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let bare = dir.path().join("bare.git");
    let clone = dir.path().join("clone");
    git(dir.path(), &["init", "-q", "--bare", "bare.git"]);
    git(
        dir.path(),
        &["clone", "-q", bare.to_str().expect("utf-8"), "clone"],
    );
    write(&clone.join("base.txt"), "base\n");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "base"]);
    git(&clone, &["push", "-q", "origin", "main"]);
    git(&clone, &["remote", "set-head", "origin", "main"]);
    git(&clone, &["checkout", "-q", "-b", "feature"]);
    write(&clone.join("feature.txt"), "feature\n");
    git(&clone, &["add", "."]);
    git(&clone, &["commit", "-q", "-m", "feature"]);
    write(&clone.join("base.txt"), "changed\n");
    assert_eq!(
        changes(&server, &clone, "").await,
        (
            200,
            json!([
                change("UPDATED", "base.txt"),
                change("ADDED", "feature.txt")
            ])
        )
    );
    // Pushed with a clean tree: the branch's own work stays visible.
    git(&clone, &["checkout", "-q", "base.txt"]);
    git(&clone, &["push", "-q", "origin", "feature"]);
    assert_eq!(
        changes(&server, &clone, "").await,
        (200, json!([change("ADDED", "feature.txt")]))
    );
    // A dirty tree compares with the upstream branch: only the new edit.
    write(&clone.join("base.txt"), "again\n");
    assert_eq!(
        changes(&server, &clone, "").await,
        (200, json!([change("UPDATED", "base.txt")]))
    );
}

#[tokio::test]
async fn diff_gives_both_versions_of_a_file() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let repo = dir.path().canonicalize().expect("canonical");
    git(&repo, &["init", "-q"]);
    write(&repo.join("code.py"), "print('a')\r\nprint('b')\r\n");
    write(&repo.join("same.txt"), "  padded  \n");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "init"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    write(
        &repo.join("code.py"),
        "print('a')\nprint('c')\nprint('d')\n",
    );
    write(&repo.join("new.txt"), "brand new\n");

    assert_eq!(
        diff(&server, &repo.join("code.py"), "").await,
        (
            200,
            json!({"modified": "print('a')\nprint('c')\nprint('d')", "original": "print('a')\nprint('b')"})
        )
    );
    assert_eq!(
        diff(&server, &repo.join("new.txt"), "").await,
        (200, json!({"modified": "brand new", "original": ""}))
    );
    assert_eq!(
        diff(&server, &repo.join("same.txt"), "&ref=HEAD").await,
        (
            200,
            json!({"modified": "  padded  ", "original": "  padded  "})
        )
    );

    // A commit's own change, read from git objects.
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "second"]);
    assert_eq!(
        diff(&server, &repo.join("code.py"), &format!("&commit={first}")).await,
        (
            200,
            json!({"modified": "print('a')\nprint('b')", "original": ""})
        )
    );
    let second = git(&repo, &["rev-parse", "--short", "HEAD"]);
    assert_eq!(
        diff(&server, &repo.join("new.txt"), &format!("&commit={second}")).await,
        (200, json!({"modified": "brand new", "original": ""}))
    );

    // Mistakes.
    let missing = repo.join("missing.txt");
    assert_eq!(
        diff(&server, &missing, "").await,
        (
            400,
            json!({"detail": format!("File does not exist: {}", missing.display())})
        )
    );
    let (status, body) = diff(&server, &repo.join("code.py"), "&ref=HEAD&commit=abcd").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"detail": "'ref' and 'commit' are mutually exclusive"})
    );
    let (status, _) = diff(&server, &repo.join("code.py"), "&commit=xyz!").await;
    assert_eq!(status, 422);
    let (status, body) = diff(&server, &repo.join("code.py"), "&commit=abcdef12").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"detail": "Git command failed: git --no-pager rev-parse --verify 'abcdef12^{commit}'"})
    );

    // Outside any repository both sides are null.
    let outside = tempfile::tempdir().expect("dir");
    write(&outside.path().join("f.txt"), "f\n");
    assert_eq!(
        diff(&server, &outside.path().join("f.txt"), "").await,
        (200, json!({"modified": null, "original": null}))
    );
}

#[tokio::test]
async fn commits_are_listed_newest_first() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let repo = dir.path();
    git(repo, &["init", "-q"]);
    for n in 0..3 {
        write(&repo.join(format!("f{n}.txt")), "x\n");
        git(repo, &["add", "."]);
        git(repo, &["commit", "-q", "-m", &format!("commit {n}")]);
    }
    let reply = server
        .get(&format!("/api/git/commits?path={}&limit=2", q(repo)))
        .await
        .json();
    assert_eq!(reply["has_more"], true);
    let subjects: Vec<&str> = reply["commits"]
        .as_array()
        .expect("commits")
        .iter()
        .filter_map(|c| c["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["commit 2", "commit 1"]);
    let sha = reply["commits"][0]["sha"].as_str().expect("sha");
    let changed = server
        .get(&format!("/api/git/commits/{sha}/changes?path={}", q(repo)))
        .await;
    assert_eq!(changed.json(), json!([change("ADDED", "f2.txt")]));
}
