//! The agent server's keys never reach commands: the agent's terminal and `LocalWorkspace`
//! get this process's environment without `SESSION_API_KEY`, `OH_SESSION_API_KEYS` (the
//! JSON-list form), `OH_SESSION_API_KEYS_<n>` and `OH_SECRET_KEY`.
//!
//! The keys have to be in the real process environment (which a test cannot change safely),
//! so `keys_are_not_in_the_environment_of_commands` runs this test binary again with them
//! set, restricted to the ignored `child_runs_env` (which does nothing without them).

use std::process::Command;
use std::time::Duration;

use oh_agent::tools::terminal::{Terminal, TerminalConfig};
use oh_agent::workspace::LocalWorkspace;
use oh_protocol::message::Content;
use oh_protocol::tool::TerminalAction;

use super::common;

/// Marks the child run; its value is visible to commands (proves `env` printed something).
const CHILD_FLAG: &str = "OH_TEST_ENV_KEYS_CHILD";

/// Variables holding server keys, with recognisable values.
const KEYS: &[(&str, &str)] = &[
    ("OH_SESSION_API_KEYS", r#"["jsonkey1"]"#),
    ("OH_SESSION_API_KEYS_0", "indexkey0"),
    ("OH_SESSION_API_KEYS_1", "indexkey1"),
    ("SESSION_API_KEY", "legacykey1"),
    ("OH_SECRET_KEY", "secretkey1"),
];

fn assert_no_key(what: &str, env: &str) {
    assert!(
        env.contains(&format!("{CHILD_FLAG}=visible")),
        "{what}: `env` did not print the environment:\n{env}"
    );
    for (name, value) in KEYS {
        let value = value.trim_start_matches("[\"").trim_end_matches("\"]");
        assert!(
            !env.contains(value) && !env.contains(&format!("{name}=")),
            "{what}: {name} reached the command:\n{env}"
        );
    }
}

/// The child half: runs `env` in the terminal tool and in a `LocalWorkspace`.
#[tokio::test]
#[ignore = "run by keys_are_not_in_the_environment_of_commands, with the keys set"]
async fn child_runs_env() {
    assert_eq!(
        std::env::var(CHILD_FLAG).as_deref(),
        Ok("visible"),
        "run only by keys_are_not_in_the_environment_of_commands"
    );
    let dir = tempfile::tempdir().unwrap();

    let mut config = TerminalConfig::new(dir.path());
    config.runtime_idle_timeout = None;
    let terminal = Terminal::start(config).await.unwrap();
    let observation = terminal
        .execute(&TerminalAction {
            // Only the lines that matter: the prompt variables' values would end the output.
            command: "env | grep -i -e key -e OH_TEST".to_owned(),
            is_input: false,
            timeout: Some(20.0),
            reset: false,
        })
        .await
        .unwrap();
    let printed: String = observation
        .content
        .iter()
        .filter_map(Content::as_text)
        .collect();
    assert_no_key("the terminal tool", &printed);
    terminal.close().await;

    let workspace = LocalWorkspace::new(dir.path());
    let result = workspace
        .execute_command(
            "env | grep -i -e key -e OH_TEST",
            None,
            Duration::from_secs(20),
        )
        .await;
    assert_no_key("LocalWorkspace", &result.stdout);
}

#[test]
fn keys_are_not_in_the_environment_of_commands() {
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--ignored", "--exact", "--nocapture"])
        .arg(common::test_name(module_path!(), "child_runs_env"))
        .env(CHILD_FLAG, "visible");
    for (name, value) in KEYS {
        child.env(name, value);
    }
    let output = child.output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && report.contains("1 passed"),
        "{report}"
    );
}
