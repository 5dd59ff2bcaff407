//! Workspace operations through both variants of `Workspace`, with one body of code.

use std::path::Path;
use std::time::Duration;

use openhands::prelude::*;
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

    // Remotely, a failed transfer keeps the server's answer as its cause.
    let missing = workspace
        .file_download("no/such/file", scratch.path().join("never"))
        .await
        .expect_err("nothing to download");
    let cause = std::error::Error::source(&missing).expect("the server's answer is kept");
    let client = cause
        .downcast_ref::<openhands::client::Error>()
        .expect("an oh-client error");
    assert_eq!(client.status(), Some(404), "{client:?}");

    // A relative working directory with a relative path is refused before any request,
    // naming the working directory.
    let relative: Workspace = openhands::client::RemoteWorkspace::builder(server.url())
        .api_key("workspace-key")
        .working_dir("workspace/project")
        .build()
        .unwrap()
        .into();
    let refused = relative
        .file_upload(scratch.path().join("original.bin"), "x.bin")
        .await
        .expect_err("relative path under a relative working dir");
    let openhands::Error::InvalidOption { reason, source } = &refused else {
        panic!("{refused:?}")
    };
    assert!(reason.contains("\"workspace/project\""), "{reason}");
    assert!(source.is_some());

    server.shutdown().await.unwrap();
}

/// The outcome of one git query, with the working directory written `<wd>` so that two
/// workspaces' outcomes can be compared.
type Outcome = std::result::Result<String, String>;

/// One table of git queries: a repository (in `repo/`) with an added, a modified, a deleted
/// and a moved file in nested directories, and a directory outside any repository. Checks
/// every outcome against the table and returns them, so that the caller can compare two
/// workspaces with each other.
async fn git_table(workspace: &Workspace) -> Vec<(&'static str, Outcome)> {
    let setup = workspace
        .execute_command(
            "mkdir -p outside && echo loose > outside/loose.txt && \
             git init -q repo && cd repo && git config user.email t@example.com && \
             git config user.name t && mkdir -p src/deep && echo keep > src/deep/modified.txt && \
             echo gone > deleted.txt && echo move > old.txt && echo same > unchanged.txt && \
             git add -A && git commit -qm init && \
             echo changed > src/deep/modified.txt && rm deleted.txt && \
             mkdir -p moved/into && git mv old.txt moved/into/new.txt && \
             mkdir -p src/added && echo fresh > src/added/new.txt",
        )
        .await
        .unwrap();
    assert_eq!(setup.exit_code, 0, "{setup:?}");

    let working_dir = workspace.working_dir().to_string_lossy().into_owned();
    let real_dir = workspace
        .working_dir()
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let anonymous = |text: String| {
        text.replace(&real_dir, "<wd>")
            .replace(&working_dir, "<wd>")
    };
    let failure = |error: openhands::Error| match error {
        openhands::Error::Git {
            operation, message, ..
        } => anonymous(format!("{operation}: {message}")),
        other => panic!("not a git error: {other:?}"),
    };

    let mut outcomes = Vec::new();
    for path in ["repo", "repo/src", "outside"] {
        let outcome = workspace
            .git_changes(path)
            .await
            .map(|changes| {
                changes
                    .iter()
                    .map(|change| format!("{:?} {}", change.status, change.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .map_err(failure);
        outcomes.push((path, outcome));
    }
    for path in [
        "repo/src/deep/modified.txt",
        "repo/src/added/new.txt",
        "repo/deleted.txt",
        "repo/old.txt",
        "repo/moved/into/new.txt",
        "repo/unchanged.txt",
        "outside/loose.txt",
        "repo/missing.txt",
        "outside/missing.txt",
    ] {
        let outcome = workspace
            .git_diff(path)
            .await
            .map(|diff| format!("{:?} -> {:?}", diff.original, diff.modified))
            .map_err(failure);
        outcomes.push((path, outcome));
    }

    let ok = |text: &str| Ok(text.to_owned());
    let expected: Vec<(&str, Outcome)> = vec![
        (
            "repo",
            ok(
                "Deleted deleted.txt, Added moved/into/new.txt, Deleted old.txt, \
                Added src/added/new.txt, Updated src/deep/modified.txt",
            ),
        ),
        (
            "repo/src",
            ok("Added added/new.txt, Updated deep/modified.txt"),
        ),
        ("outside", ok("")),
        (
            "repo/src/deep/modified.txt",
            ok(r#"Some("keep") -> Some("changed")"#),
        ),
        ("repo/src/added/new.txt", ok(r#"Some("") -> Some("fresh")"#)),
        ("repo/deleted.txt", ok(r#"Some("gone") -> Some("")"#)),
        ("repo/old.txt", ok(r#"Some("move") -> Some("")"#)),
        ("repo/moved/into/new.txt", ok(r#"Some("") -> Some("move")"#)),
        ("repo/unchanged.txt", ok(r#"Some("same") -> Some("same")"#)),
        ("outside/loose.txt", ok("None -> None")),
        (
            "repo/missing.txt",
            Err("git_diff: File does not exist: <wd>/repo/missing.txt".to_owned()),
        ),
        (
            "outside/missing.txt",
            Err("git_diff: File does not exist: <wd>/outside/missing.txt".to_owned()),
        ),
    ];
    assert_eq!(outcomes, expected, "{}", workspace.kind());
    outcomes
}

/// The same git table through a local and a remote workspace: the same outcomes, errors
/// included.
#[tokio::test(flavor = "multi_thread")]
async fn git_reads_the_same_locally_and_remotely() {
    let dir = tempfile::tempdir().unwrap();
    let local = Workspace::local(dir.path());
    let local_outcomes = git_table(&local).await;

    let server = LocalServer::builder()
        .api_key("git-key")
        .start()
        .await
        .unwrap();
    let remote: Workspace = server.workspace().unwrap().into();
    assert!(!remote.is_local());
    let remote_outcomes = git_table(&remote).await;

    assert_eq!(local_outcomes, remote_outcomes);
    server.shutdown().await.unwrap();
}
