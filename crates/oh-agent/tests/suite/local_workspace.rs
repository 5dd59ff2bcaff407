//! Behaviour of `LocalWorkspace`.
//!
//! Results were checked against the Python reference (openhands-sdk 1.57.0) running the same
//! commands and copies; `<D>` stands for the temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use oh_agent::workspace::{DEFAULT_COMMAND_TIMEOUT, LocalWorkspace};
use oh_protocol::workspace::{CommandResult, FileOperationResult};
use pretty_assertions::assert_eq;

use super::common;

fn workspace() -> (tempfile::TempDir, LocalWorkspace) {
    let dir = tempfile::tempdir().unwrap();
    let workspace = LocalWorkspace::new(dir.path());
    (dir, workspace)
}

async fn run(workspace: &LocalWorkspace, command: &str) -> CommandResult {
    workspace
        .execute_command(command, None, DEFAULT_COMMAND_TIMEOUT)
        .await
}

fn redact(result: FileOperationResult, dir: &Path) -> FileOperationResult {
    let root = dir.to_string_lossy();
    FileOperationResult {
        source_path: result.source_path.replace(&*root, "<D>"),
        destination_path: result.destination_path.replace(&*root, "<D>"),
        error: result.error.map(|error| error.replace(&*root, "<D>")),
        ..result
    }
}

#[tokio::test]
async fn exit_code_stdout_and_stderr() {
    let (_dir, workspace) = workspace();
    let result = run(&workspace, "echo out; echo err >&2; exit 3").await;
    assert_eq!(
        result,
        CommandResult {
            command: "echo out; echo err >&2; exit 3".to_owned(),
            exit_code: 3,
            stdout: "out\n".to_owned(),
            stderr: "err\n".to_owned(),
            timeout_occurred: false,
        }
    );
}

#[tokio::test]
async fn a_signal_gives_a_negative_exit_code() {
    let (_dir, workspace) = workspace();
    let result = run(&workspace, "kill -9 $$").await;
    assert_eq!(result.exit_code, -9);
    assert!(!result.timeout_occurred);
}

#[tokio::test]
async fn commands_run_in_the_working_dir_or_the_given_cwd() {
    let (dir, workspace) = workspace();
    let result = run(&workspace, "pwd").await;
    assert_eq!(result.stdout, format!("{}\n", dir.path().display()));
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let result = workspace
        .execute_command("pwd", Some(&sub), DEFAULT_COMMAND_TIMEOUT)
        .await;
    assert_eq!(result.stdout, format!("{}\n", sub.display()));
    // No state carries over between calls.
    run(&workspace, "cd sub; export KEPT=1").await;
    let result = run(&workspace, "pwd; echo \"${KEPT:-none}\"").await;
    assert_eq!(result.stdout, format!("{}\nnone\n", dir.path().display()));
}

#[tokio::test]
async fn output_uses_universal_newlines_and_the_environment_is_sanitised() {
    let (_dir, workspace) = workspace();
    assert_eq!(
        run(&workspace, "printf 'a\\r\\nb\\rc'").await.stdout,
        "a\nb\nc"
    );
    let result = run(&workspace, "echo $AI_AGENT; echo ${SESSION_API_KEY:-unset}").await;
    assert_eq!(result.stdout, "openhands\nunset\n");
}

#[tokio::test]
async fn a_timeout_kills_the_process_group_and_reports_minus_one() {
    // The reference reports exit code -1 and timeout_occurred without adding a message; it
    // only kills the shell, so it waits for the orphaned `sleep`. The port kills the group.
    let (dir, workspace) = workspace();
    let marker = dir.path().join("survived");
    let pid_file = dir.path().join("child.pid");
    let command = format!(
        "echo before; (sleep 3; touch {}) & echo $! > {}; sleep 5; echo after",
        marker.display(),
        pid_file.display()
    );
    let started = Instant::now();
    let result = workspace
        .execute_command(&command, None, Duration::from_millis(500))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(result.exit_code, -1);
    assert!(result.timeout_occurred);
    assert_eq!(result.stdout, "before\n");
    assert_eq!(result.stderr, "");
    // Had the background child survived, it would touch the marker before it ends.
    let child: u32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    common::wait_for("the background child to end", || {
        !common::process_alive(child)
    })
    .await;
    assert!(!marker.exists(), "a background child outlived the timeout");
}

#[tokio::test]
async fn a_missing_cwd_is_reported_in_the_result() {
    // The reference raises FileNotFoundError here; the port reports it instead.
    let (dir, workspace) = workspace();
    let missing = dir.path().join("missing");
    let result = workspace
        .execute_command("pwd", Some(&missing), DEFAULT_COMMAND_TIMEOUT)
        .await;
    assert_eq!(result.exit_code, -1);
    assert!(!result.timeout_occurred);
    assert_eq!(
        result.stderr,
        format!(
            "[Errno 2] No such file or directory: '{}'",
            missing.display()
        )
    );
}

#[tokio::test]
async fn upload_and_download_round_trip_binary_content_and_metadata() {
    let (dir, workspace) = workspace();
    let bytes: Vec<u8> = (0..=255u8).collect();
    let source = dir.path().join("src.bin");
    fs::write(&source, &bytes).unwrap();
    fs::set_permissions(&source, fs::Permissions::from_mode(0o640)).unwrap();
    let uploaded = dir.path().join("a/b/dst.bin");
    let result = workspace.file_upload(&source, &uploaded).await;
    assert_eq!(
        redact(result, dir.path()),
        FileOperationResult {
            success: true,
            source_path: "<D>/src.bin".to_owned(),
            destination_path: "<D>/a/b/dst.bin".to_owned(),
            file_size: Some(256),
            error: None,
        }
    );
    let uploaded_meta = fs::metadata(&uploaded).unwrap();
    assert_eq!(uploaded_meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(
        uploaded_meta.modified().unwrap(),
        fs::metadata(&source).unwrap().modified().unwrap()
    );

    let downloaded = dir.path().join("back/copy.bin");
    let result = workspace.file_download(&uploaded, &downloaded).await;
    assert!(result.success, "{result:?}");
    assert_eq!(result.file_size, Some(256));
    assert_eq!(fs::read(&downloaded).unwrap(), bytes);
}

#[tokio::test]
async fn copy_failures_carry_python_error_texts() {
    let (dir, workspace) = workspace();
    let source = dir.path().join("src.bin");
    fs::write(&source, b"data").unwrap();
    let adir = dir.path().join("adir");
    fs::create_dir(&adir).unwrap();
    let cases = [
        (
            dir.path().join("missing.txt"),
            dir.path().join("x.txt"),
            "[Errno 2] No such file or directory: '<D>/missing.txt'",
        ),
        (
            adir.clone(),
            dir.path().join("y"),
            "[Errno 21] Is a directory: '<D>/adir'",
        ),
        (
            source.clone(),
            source.clone(),
            "PosixPath('<D>/src.bin') and PosixPath('<D>/src.bin') are the same file",
        ),
        (
            source.clone(),
            source.join("x"),
            "[Errno 17] File exists: '<D>/src.bin'",
        ),
    ];
    for (from, to, expected) in cases {
        let result = redact(workspace.file_download(&from, &to).await, dir.path());
        assert!(!result.success);
        assert_eq!(result.file_size, None);
        assert_eq!(result.error.as_deref(), Some(expected));
    }
    assert_eq!(
        fs::read(&source).unwrap(),
        b"data",
        "a self-copy must not truncate"
    );
}

#[tokio::test]
async fn a_fifo_is_refused_without_waiting_for_a_writer() {
    // shutil.copy2 raises SpecialFileError for a named pipe; opening it would block.
    let (dir, workspace) = workspace();
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let out = dir.path().join("out");
    let copy = workspace.file_download(&fifo, &out);
    let Ok(result) = tokio::time::timeout(Duration::from_secs(10), copy).await else {
        // Release the stuck reader so that the runtime can stop, then fail.
        drop(fs::OpenOptions::new().write(true).open(&fifo));
        panic!("the copy waits for a writer on the FIFO");
    };
    let result = redact(result, dir.path());
    assert!(!result.success);
    assert_eq!(result.error.as_deref(), Some("`<D>/pipe` is a named pipe"));
}

#[tokio::test]
async fn copying_onto_a_directory_puts_the_file_inside() {
    // As shutil.copy2; the reported size is the directory's, as in the reference.
    let (dir, workspace) = workspace();
    let source = dir.path().join("src.bin");
    fs::write(&source, b"data").unwrap();
    let adir = dir.path().join("adir");
    fs::create_dir(&adir).unwrap();
    let result = workspace.file_upload(&source, &adir).await;
    assert!(result.success);
    assert_eq!(result.file_size, Some(fs::metadata(&adir).unwrap().len()));
    assert_eq!(fs::read(adir.join("src.bin")).unwrap(), b"data");
}
