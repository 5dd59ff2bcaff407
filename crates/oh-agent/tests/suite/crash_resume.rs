//! A conversation whose process is killed (SIGKILL) in the middle of a run reloads every
//! event it persisted and can run again.
//!
//! The test re-executes its own binary as a child process that runs the conversation; the
//! parent kills it while a terminal command is running, then resumes the conversation.

use super::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use oh_agent::conversation::INTERRUPTED_BY_RESTART;
use oh_protocol::{Event, ExecutionStatus};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::json;

const ROLE: &str = "OH_CRASH_TEST_ROLE";
const DIR: &str = "OH_CRASH_TEST_DIR";
const ID: &str = "OH_CRASH_TEST_ID";

fn paths(root: &Path) -> (PathBuf, PathBuf) {
    (root.join("ws"), root.join("conversations"))
}

/// The child: runs a conversation whose second step blocks in a long terminal command.
/// Ignored in normal runs; `killed_mid_run_resumes` launches it with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child half of killed_mid_run_resumes"]
async fn child_runs_until_killed() {
    assert_eq!(
        std::env::var(ROLE).as_deref(),
        Ok("child"),
        "run by killed_mid_run_resumes"
    );
    let root = PathBuf::from(std::env::var(DIR).unwrap());
    let id: uuid::Uuid = std::env::var(ID).unwrap().parse().unwrap();
    let (ws, store) = paths(&root);
    let llm = ScriptedLlm::start(vec![
        Reply::tool("think", json!({"thought": "first, a harmless step"})),
        Reply::tool(
            "terminal",
            json!({"command": "touch started && sleep 60", "timeout": 120}),
        ),
    ])
    .await
    .unwrap();
    let conv =
        common::start(common::config(common::agent(&llm.base_url()), &ws, Some(&store)).id(id));
    conv.send_text("do a long thing").await.unwrap();
    let _ = conv.run().await;
    unreachable!("the parent kills this process before the run ends");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_run_resumes() {
    let root = tempfile::tempdir().unwrap();
    let (ws, store) = paths(root.path());
    let id = uuid::Uuid::new_v4();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .arg(common::test_name(module_path!(), "child_runs_until_killed"))
        .env(ROLE, "child")
        .env(DIR, root.path())
        .env(ID, id.to_string())
        .spawn()
        .unwrap();

    // Wait until the long command is running.
    common::wait_for("the child to start the command", || {
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
        ws.join("started").exists()
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let events_dir = store.join(id.simple().to_string()).join("events");
    let on_disk = std::fs::read_dir(&events_dir).unwrap().count();

    let llm = ScriptedLlm::start(vec![Reply::tool("finish", json!({"message": "recovered"}))])
        .await
        .unwrap();
    let conv =
        common::start(common::config(common::agent(&llm.base_url()), &ws, Some(&store)).id(id));
    let events = conv.events();
    // Every persisted event came back, plus the error recorded for the cut-off command.
    assert_eq!(
        events.len(),
        on_disk + 1,
        "the reloaded events plus the error for the cut-off call"
    );
    let kinds = common::kinds(&events);
    assert_eq!(
        kinds,
        [
            "SystemPromptEvent",
            "message:user",
            "Action:think",
            "Observation:think",
            "Action:terminal",
            "AgentErrorEvent",
        ]
    );
    let Some(Event::AgentError(error)) = events
        .iter()
        .rev()
        .find(|e| matches!(e, Event::AgentError(_)))
    else {
        panic!("no error event");
    };
    assert_eq!(error.error, INTERRUPTED_BY_RESTART);
    assert_eq!(
        conv.status(),
        ExecutionStatus::Error,
        "a sane status after the crash"
    );

    // It can run again, and the model sees the interrupted call's error as its result.
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let request = llm.requests()[0].body.to_string();
    assert!(
        request.contains("A restart occurred while this tool was in progress"),
        "{request}"
    );
    conv.close().await;
}
