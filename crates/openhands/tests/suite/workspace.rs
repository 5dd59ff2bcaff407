//! Workspace operations through both variants of `Workspace`, with one body of code.

use std::path::Path;
use std::time::Duration;

use openhands::prelude::*;
use openhands::protocol::GitChangeStatus;
use pretty_assertions::assert_eq;

const SECOND: Duration = Duration::from_secs(1);

/// Commands: output, exit codes, the directory they run in (the working directory unless
/// told otherwise, for both variants) and timeouts.
async fn commands(workspace: &Workspace) {
    let result = workspace
        .execute_command("echo hi; echo oops >&2")
        .await
        .unwrap();
    assert_eq!(
        (
            result.exit_code,
            result.stdout.as_str(),
            result.stderr.as_str()
        ),
        (0, "hi\n", "oops\n")
    );
    assert!(!result.timeout_occurred);

    let working_dir = workspace.working_dir().canonicalize().unwrap();
    let pwd = |result: CommandResult| Path::new(result.stdout.trim()).canonicalize().unwrap();
    let default = workspace.execute_command("pwd").await.unwrap();
    assert_eq!(pwd(default), working_dir, "no cwd: the working directory");

    let made = workspace.execute_command("mkdir -p sub/dir").await.unwrap();
    assert_eq!(made.exit_code, 0, "{made:?}");
    let relative = workspace
        .execute_command("pwd")
        .cwd("sub/dir")
        .await
        .unwrap();
    assert_eq!(pwd(relative), working_dir.join("sub/dir"), "relative cwd");
    let absolute = workspace
        .execute_command("pwd")
        .cwd(working_dir.join("sub"))
        .timeout(10 * SECOND)
        .await
        .unwrap();
    assert_eq!(pwd(absolute), working_dir.join("sub"), "absolute cwd");

    let result = workspace.execute_command("exit 3").await.unwrap();
    assert_eq!(result.exit_code, 3);

    let result = workspace
        .execute_command("sleep 5")
        .timeout(SECOND)
        .await
        .unwrap();
    assert!(result.timeout_occurred, "{result:?}");
    assert_eq!(result.exit_code, -1);
}

/// Upload to a relative path, download back, compare; a missing file is an error.
async fn round_trip(workspace: &Workspace, scratch: &Path) {
    let original = scratch.join("original.bin");
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&original, &content).unwrap();

    let uploaded = workspace
        .file_upload(&original, "inbox/data.bin")
        .await
        .unwrap();
    assert!(uploaded.success);
    assert_eq!(uploaded.file_size, Some(content.len() as u64));
    let in_workspace = workspace.working_dir().join("inbox/data.bin");
    assert_eq!(std::fs::read(&in_workspace).unwrap(), content);

    let copy = scratch.join("back/copy.bin");
    let downloaded = workspace
        .file_download("inbox/data.bin", &copy)
        .await
        .unwrap();
    assert!(downloaded.success);
    assert_eq!(std::fs::read(&copy).unwrap(), content);

    // An absolute workspace path works too.
    let absolute = scratch.join("absolute.bin");
    workspace
        .file_download(&in_workspace, &absolute)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&absolute).unwrap(), content);

    // The same failures are the same typed error for both variants.
    let missing = workspace
        .file_download("no/such/file", scratch.join("never"))
        .await
        .expect_err("nothing to download");
    assert!(!scratch.join("never").exists());
    let openhands::Error::FileOperation {
        operation, message, ..
    } = &missing
    else {
        panic!("{missing:?}")
    };
    assert_eq!(*operation, "file_download");
    assert!(!message.is_empty());

    let missing = workspace
        .file_upload(scratch.join("absent.txt"), "x.txt")
        .await
        .expect_err("no source");
    let openhands::Error::FileOperation {
        operation, message, ..
    } = &missing
    else {
        panic!("{missing:?}")
    };
    assert_eq!(*operation, "file_upload");
    assert!(message.contains("No such file"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn local_workspace_operations() {
    let dir = tempfile::tempdir().unwrap();
    let working_dir = dir.path().join("project");
    std::fs::create_dir_all(&working_dir).unwrap();
    let workspace = Workspace::local(&working_dir);
    assert!(workspace.is_local());
    assert_eq!(workspace.kind(), "LocalWorkspace");
    assert_eq!(workspace.working_dir(), working_dir);

    commands(&workspace).await;
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    round_trip(&workspace, &scratch).await;

    let unsupported = workspace.git_changes(".").await.expect_err("local git");
    assert!(
        matches!(
            unsupported,
            openhands::Error::Unsupported {
                operation: "git_changes",
                workspace: "LocalWorkspace"
            }
        ),
        "{unsupported:?}"
    );
    assert!(workspace.git_diff("a.txt").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_workspace_operations() {
    let server = LocalServer::builder()
        .api_key("workspace-key")
        .start()
        .await
        .unwrap();
    let workspace: Workspace = server.workspace().unwrap().into();
    assert!(!workspace.is_local());
    assert_eq!(workspace.kind(), "RemoteWorkspace");
    assert_eq!(workspace.working_dir(), server.working_dir());

    commands(&workspace).await;
    let scratch = tempfile::tempdir().unwrap();
    round_trip(&workspace, scratch.path()).await;

    // git: a repository in the working directory with one change and one new file.
    let setup = workspace
        .execute_command(
            "git init -q repo && cd repo && git config user.email t@example.com && \
             git config user.name t && echo one > a.txt && git add a.txt && \
             git commit -qm init && echo two > a.txt && echo new > b.txt",
        )
        .await
        .unwrap();
    assert_eq!(setup.exit_code, 0, "{setup:?}");
    let mut changes: Vec<(GitChangeStatus, String)> = workspace
        .git_changes("repo")
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.status, c.path))
        .collect();
    changes.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        changes,
        vec![
            (GitChangeStatus::Updated, "a.txt".to_owned()),
            (GitChangeStatus::Added, "b.txt".to_owned()),
        ]
    );
    let diff = workspace.git_diff("repo/a.txt").await.unwrap();
    assert_eq!(diff.original.as_deref().map(str::trim_end), Some("one"));
    assert_eq!(diff.modified.as_deref().map(str::trim_end), Some("two"));

    server.shutdown().await.unwrap();
}
