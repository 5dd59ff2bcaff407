//! The `terminal` tool on a real bash: session semantics, timeouts, continuation, input,
//! rejections, reset, secrets and the text the LLM sees.

use std::path::Path;
use std::time::{Duration, Instant};

use oh_agent::secrets::Secrets;
use oh_agent::tools::ToolError;
use oh_agent::tools::terminal::{
    MAX_OUTPUT_CHARS, Terminal, TerminalConfig, llm_content, parse_action,
};
use oh_agent::tools::truncate::CLIPPED_NOTICE;
use oh_protocol::message::Content;
use oh_protocol::tool::{TerminalAction, TerminalObservation};
use pretty_assertions::assert_eq;
use serde_json::json;
use sha2::Digest as _;
use tempfile::TempDir;

use super::common;

const RESET_TEXT: &str = "Terminal session has been reset. All previous environment variables \
                          and session state have been cleared.";
const CONTINUE_PREFIX: &str = "[Below is the output of the previous command.]\n";

fn config(dir: &TempDir) -> TerminalConfig {
    let mut config = TerminalConfig::new(dir.path());
    config.no_change_timeout = Duration::from_secs(2);
    config.runtime_idle_timeout = None;
    config
}

async fn start(dir: &TempDir) -> Terminal {
    Terminal::start(config(dir)).await.unwrap()
}

async fn start_with(config: TerminalConfig) -> Terminal {
    Terminal::start(config).await.unwrap()
}

fn cmd(command: &str) -> TerminalAction {
    TerminalAction {
        command: command.to_owned(),
        is_input: false,
        timeout: None,
        reset: false,
    }
}

fn input(text: &str) -> TerminalAction {
    TerminalAction {
        is_input: true,
        ..cmd(text)
    }
}

fn with_timeout(command: &str, seconds: f64) -> TerminalAction {
    TerminalAction {
        timeout: Some(seconds),
        ..cmd(command)
    }
}

fn text(observation: &TerminalObservation) -> String {
    observation
        .content
        .iter()
        .filter_map(Content::as_text)
        .collect()
}

fn llm_texts(observation: &TerminalObservation, dir: Option<&Path>) -> Vec<String> {
    llm_content(observation, dir)
        .iter()
        .map(|c| c.as_text().unwrap().to_owned())
        .collect()
}

async fn run(terminal: &Terminal, command: &str) -> TerminalObservation {
    terminal.execute(&cmd(command)).await.unwrap()
}

fn working_dir(dir: &TempDir) -> String {
    dir.path()
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[tokio::test]
async fn echo_reports_output_exit_code_and_metadata() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "echo hello").await;
    assert_eq!(text(&obs), "hello");
    assert_eq!(obs.exit_code, Some(0));
    assert!(!obs.is_error);
    assert_eq!(obs.command.as_deref(), Some("echo hello"));
    assert_eq!(obs.metadata.exit_code, 0);
    assert_eq!(obs.metadata.working_dir, Some(working_dir(&dir)));
    assert_eq!(
        obs.metadata.suffix,
        "\n[The command completed with exit code 0.]"
    );
    assert!(obs.metadata.username.is_some());
    assert!(obs.metadata.hostname.is_some());

    let mut expected = format!(
        "hello\n[The command completed with exit code 0.]\n[Current working directory: {}]",
        working_dir(&dir)
    );
    if let Some(py) = obs
        .metadata
        .py_interpreter_path
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        expected.push_str(&format!("\n[Python interpreter: {py}]"));
    }
    expected.push_str("\n[Command finished with exit code 0]");
    assert_eq!(llm_texts(&obs, None), vec![expected]);
    terminal.close().await;
}

#[tokio::test]
async fn failing_commands_report_their_exit_code() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "false").await;
    assert_eq!((obs.exit_code, text(&obs)), (Some(1), String::new()));
    let obs = run(&terminal, "ls /definitely/not/here").await;
    assert_eq!(obs.exit_code, Some(2));
    assert!(text(&obs).contains("No such file or directory"), "{obs:?}");
    let obs = run(&terminal, "bash -c 'exit 7'").await;
    assert_eq!(obs.metadata.exit_code, 7);
    terminal.close().await;
}

#[tokio::test]
async fn working_directory_and_environment_persist() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "mkdir -p sub/deeper && cd sub/deeper").await;
    assert_eq!(obs.exit_code, Some(0));
    let expected = format!("{}/sub/deeper", working_dir(&dir));
    assert_eq!(obs.metadata.working_dir.as_deref(), Some(expected.as_str()));
    assert_eq!(text(&run(&terminal, "pwd").await), expected);

    run(&terminal, "export GREETING='hi there'").await;
    assert_eq!(
        text(&run(&terminal, "echo \"$GREETING\"").await),
        "hi there"
    );
    terminal.close().await;
}

#[tokio::test]
async fn stderr_and_stdout_are_interleaved_and_lines_kept() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "echo a; echo b >&2; echo c").await;
    assert_eq!(text(&obs), "a\nb\nc");
    let obs = run(&terminal, "printf 'one\\n  two\\nthree\\n\\n\\n'").await;
    assert_eq!(text(&obs), "one\n  two\nthree");
    let obs = run(&terminal, "printf abc").await;
    assert_eq!(text(&obs), "abc");
    terminal.close().await;
}

#[tokio::test]
async fn command_without_output() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "true").await;
    assert_eq!((text(&obs), obs.exit_code), (String::new(), Some(0)));
    assert_eq!(obs.full_output_save_dir, None);
    terminal.close().await;
}

#[tokio::test]
async fn text_is_sent_verbatim() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    // Tabs are not completed, `!` is not expanded, non-ASCII passes through.
    let obs = run(&terminal, "printf '%s\\n' 'tab\there' 'café ✓' 'wow!'").await;
    assert_eq!(text(&obs), "tab\there\ncafé ✓\nwow!");
    // `\;` reaches find unchanged (the reference's escaping broke this).
    run(&terminal, "touch a.txt").await;
    let obs = run(&terminal, "find . -name '*.txt' -exec echo found {} \\;").await;
    assert_eq!(text(&obs), "found ./a.txt");
    // A long single line (longer than a canonical-mode tty line).
    let long = "x".repeat(6000);
    let obs = run(&terminal, &format!("echo {long} | wc -c")).await;
    assert_eq!(text(&obs), "6001");
    terminal.close().await;
}

#[tokio::test]
async fn long_output_is_cut_to_the_limit() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "head -c 40000 /dev/zero | tr '\\0' x; echo").await;
    let content = text(&obs);
    assert_eq!(content.chars().count(), MAX_OUTPUT_CHARS);
    assert!(content.contains(CLIPPED_NOTICE));
    assert!(content.starts_with("xxxx") && content.ends_with("xxxx"));
    assert_eq!(obs.exit_code, Some(0));
    terminal.close().await;
}

#[tokio::test]
async fn llm_content_saves_the_cut_text_and_names_the_file() {
    let dir = TempDir::new().unwrap();
    let conversation = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.conversation_dir = Some(conversation.path().to_owned());
    let terminal = start_with(config).await;
    let obs = run(&terminal, "seq 1 10000").await;
    let observations = conversation.path().join("observations");
    assert_eq!(
        obs.full_output_save_dir.as_deref(),
        Some(observations.to_string_lossy().as_ref())
    );

    // Without a directory: the plain notice, nothing written.
    let unsaved = TerminalObservation {
        full_output_save_dir: None,
        ..obs.clone()
    };
    let plain = llm_texts(&unsaved, None);
    assert_eq!(plain[0].chars().count(), MAX_OUTPUT_CHARS);
    assert!(plain[0].contains(CLIPPED_NOTICE));
    assert!(!observations.exists());

    let texts = llm_texts(&obs, Some(conversation.path()));
    assert_eq!(texts.len(), 1);
    let llm = &texts[0];
    assert_eq!(llm.chars().count(), MAX_OUTPUT_CHARS);
    let files: Vec<_> = std::fs::read_dir(&observations)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let saved = std::fs::read_to_string(&files[0]).unwrap();
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let hash = hex(&sha2::Sha256::digest(saved.as_bytes()))[..8].to_owned();
    assert_eq!(name, format!("terminal_output_{hash}.txt"));
    assert!(llm.contains(&format!(
        "The complete output has been saved to {}",
        files[0].display()
    )));
    let head: String = saved
        .chars()
        .take((MAX_OUTPUT_CHARS - CLIPPED_NOTICE.len()).div_ceil(2))
        .collect();
    assert!(llm.contains(&format!(
        "(truncated part starts around line {}).</NOTE>",
        head.lines().count() + 1
    )));
    assert!(saved.starts_with("1\n2\n3\n"));
    assert!(saved.ends_with("[Command finished with exit code 0]"));
    assert!(llm.starts_with("1\n2\n"));
    assert!(llm.ends_with("[Command finished with exit code 0]"));

    // The observation's own save dir is used when no directory is passed.
    let again = llm_texts(&obs, None);
    assert_eq!(&again[0], llm);
    terminal.close().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn soft_timeout_then_empty_command_continues() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.no_change_timeout = Duration::from_millis(800);
    let terminal = start_with(config).await;

    // Each pause is 1.5 soft timeouts long: the first call gives up during the first
    // pause, the second call sees "second" and gives up during the second pause.
    let obs = run(
        &terminal,
        "echo first; sleep 1.2; echo second; sleep 1.2; echo third",
    )
    .await;
    assert_eq!(text(&obs), "first");
    assert_eq!(obs.exit_code, Some(-1));
    assert_eq!(obs.metadata.prefix, "");
    assert!(
        obs.metadata.suffix.starts_with(
            "\n[The command has no new output after 0.8 seconds. You may wait longer to see \
             additional output by sending empty command '', send other commands to interact \
             with the current process, send keys (\"C-c\", \"C-z\", \"C-d\") to interrupt/kill \
             the previous command before sending your new command, or use the timeout \
             parameter in terminal for future commands.]"
        ),
        "{:?}",
        obs.metadata.suffix
    );
    // No working directory / exit code lines while running.
    assert_eq!(
        llm_texts(&obs, None),
        vec![format!("first{}", obs.metadata.suffix)]
    );

    let obs = run(&terminal, "").await;
    assert_eq!(text(&obs), "second");
    assert_eq!(obs.exit_code, Some(-1));
    assert_eq!(obs.metadata.prefix, CONTINUE_PREFIX);
    assert_eq!(obs.command.as_deref(), Some(""));

    let obs = run(&terminal, "").await;
    assert_eq!(text(&obs), "third");
    assert_eq!(obs.exit_code, Some(0));
    assert_eq!(obs.metadata.prefix, "");
    terminal.close().await;
}

#[tokio::test]
async fn hard_timeout_then_ctrl_c() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let started = Instant::now();
    let obs = terminal
        .execute(&with_timeout("echo start; sleep 30", 0.5))
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!((text(&obs), obs.exit_code), ("start".to_owned(), Some(-1)));
    assert!(
        obs.metadata
            .suffix
            .starts_with("\n[The command timed out after 0.5 seconds. You may wait longer"),
        "{:?}",
        obs.metadata.suffix
    );

    // An integral timeout prints like a Python float.
    let obs = terminal.execute(&with_timeout("", 1.0)).await.unwrap();
    assert!(obs.metadata.suffix.contains("timed out after 1.0 seconds"));
    assert_eq!(obs.metadata.prefix, CONTINUE_PREFIX);

    let obs = terminal.execute(&input("C-c")).await.unwrap();
    assert_eq!(obs.exit_code, Some(130));
    assert_eq!(
        obs.metadata.suffix,
        "\n[The command completed with exit code 130. CTRL+C was sent.]"
    );
    assert_eq!(
        text(&run(&terminal, "echo still alive").await),
        "still alive"
    );
    terminal.close().await;
}

#[tokio::test]
async fn input_reaches_a_process_reading_stdin() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.no_change_timeout = Duration::from_millis(500);
    let terminal = start_with(config).await;
    let obs = run(&terminal, "read x; echo got $x").await;
    assert_eq!(obs.exit_code, Some(-1));
    let obs = terminal.execute(&input("hello world")).await.unwrap();
    assert_eq!(text(&obs), "got hello world");
    assert_eq!(obs.exit_code, Some(0));
    assert_eq!(obs.command.as_deref(), Some("hello world"));
    terminal.close().await;
}

#[tokio::test]
async fn key_names_are_typed_as_keys() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.no_change_timeout = Duration::from_millis(400);
    let terminal = start_with(config).await;
    let obs = run(&terminal, "cat -vT").await;
    assert_eq!(obs.exit_code, Some(-1));
    terminal.execute(&input("UP")).await.unwrap();
    terminal.execute(&input("TAB")).await.unwrap();
    let obs = terminal.execute(&input("ENTER")).await.unwrap();
    assert_eq!(text(&obs), "^[[A^I");
    let obs = terminal.execute(&input("C-d")).await.unwrap();
    assert_eq!(obs.exit_code, Some(0));
    assert_eq!(
        obs.metadata.suffix,
        "\n[The command completed with exit code 0. CTRL+D was sent.]"
    );
    terminal.close().await;
}

#[tokio::test]
async fn interrupt_stops_the_foreground_command() {
    let dir = TempDir::new().unwrap();
    let terminal = std::sync::Arc::new(start(&dir).await);
    let runner = {
        let terminal = std::sync::Arc::clone(&terminal);
        tokio::spawn(async move {
            let command = "sh -c 'touch started && exec sleep 100'";
            terminal.execute(&with_timeout(command, 30.0)).await
        })
    };
    // Once the file exists the command is the terminal's foreground process.
    let started = dir.path().join("started");
    common::wait_for("the command to start", || started.exists()).await;
    assert!(terminal.interrupt(), "no Ctrl-C sent while a command runs");
    let obs = common::within("the interrupted call", runner)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(obs.exit_code, Some(130));
    assert_eq!(text(&run(&terminal, "echo usable").await), "usable");
    terminal.close().await;
}

#[tokio::test]
async fn interrupt_while_idle_leaves_the_session_usable() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    // A Ctrl-C at the idle prompt would print a prompt that could end the next command early.
    assert!(!terminal.interrupt(), "Ctrl-C sent at an idle prompt");
    let obs = run(&terminal, "echo fine").await;
    assert_eq!((text(&obs), obs.exit_code), ("fine".to_owned(), Some(0)));
    terminal.close().await;
}

#[tokio::test]
async fn new_command_while_running_is_not_executed() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.no_change_timeout = Duration::from_millis(500);
    let terminal = start_with(config).await;
    let obs = run(&terminal, "echo busy; sleep 30").await;
    assert_eq!(obs.exit_code, Some(-1));
    let obs = run(&terminal, "touch should-not-exist").await;
    assert!(obs.is_error);
    assert_eq!(obs.exit_code, Some(-1));
    assert_eq!(text(&obs), "");
    assert_eq!(obs.metadata.prefix, CONTINUE_PREFIX);
    assert!(
        obs.metadata.suffix.starts_with(
            "\n[Your command \"touch should-not-exist\" is NOT executed. The previous command \
             is still running - You CANNOT send new commands until the previous command is \
             completed. By setting `is_input` to `true`, you can interact with the current \
             process: You may wait longer"
        ),
        "{:?}",
        obs.metadata.suffix
    );
    assert_eq!(
        llm_texts(&obs, None)[0],
        "[An error occurred during execution.]\n"
    );
    let obs = terminal.execute(&input("C-c")).await.unwrap();
    assert_eq!(obs.exit_code, Some(130));
    assert!(!dir.path().join("should-not-exist").exists());
    terminal.close().await;
}

#[tokio::test]
async fn finished_background_command_lets_the_next_one_run() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.no_change_timeout = Duration::from_millis(300);
    let terminal = start_with(config).await;
    let obs = run(&terminal, "echo one; sleep 0.8; echo two").await;
    assert_eq!((text(&obs), obs.exit_code), ("one".to_owned(), Some(-1)));
    common::within("the command to finish", terminal.wait_for_command()).await;
    let obs = run(&terminal, "echo three").await;
    assert_eq!(text(&obs), "two\nthree");
    assert_eq!(obs.exit_code, Some(0));
    terminal.close().await;
}

#[tokio::test]
async fn nothing_running_rejections() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "").await;
    assert!(obs.is_error);
    assert_eq!(obs.exit_code, None);
    assert_eq!(
        llm_texts(&obs, None),
        vec![
            "[An error occurred during execution.]\n".to_owned(),
            "No previous running command to retrieve logs from.".to_owned()
        ]
    );
    let obs = terminal.execute(&input("C-c")).await.unwrap();
    assert!(obs.is_error);
    assert_eq!(text(&obs), "No previous running command to interact with.");
    terminal.close().await;
}

#[tokio::test]
async fn several_statements_are_rejected() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "echo a\necho b\n").await;
    assert!(obs.is_error);
    assert_eq!(
        text(&obs),
        "Cannot execute multiple commands at once.\nPlease run each command separately OR \
         chain them into a single command via && or ;\nProvided commands:\n(1) echo a\n(2) \
         echo b"
    );
    assert_eq!(obs.command.as_deref(), Some("echo a\necho b"));
    // Nothing ran.
    assert!(obs.metadata.working_dir.is_none());
    terminal.close().await;
}

#[tokio::test]
async fn chains_heredocs_and_multi_line_strings_are_one_command() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "echo a && echo b; false || echo c | tr c C").await;
    assert_eq!(text(&obs), "a\nb\nC");

    let obs = run(&terminal, "cat <<'EOF'\nline $HOME\n\tindented\nEOF").await;
    assert_eq!(text(&obs), "line $HOME\n\tindented");

    let obs = run(&terminal, "echo \"multi\nline\"").await;
    assert_eq!(text(&obs), "multi\nline");

    let obs = run(&terminal, "for i in 1 2; do\n  echo n$i\ndone").await;
    assert_eq!(text(&obs), "n1\nn2");

    // Statements after a heredoc run together; the output has no prompts in between.
    let obs = run(
        &terminal,
        "cat > f.txt <<EOF\nhello\nEOF\ncat f.txt && wc -l f.txt",
    )
    .await;
    assert_eq!(text(&obs), "hello\n1 f.txt");
    assert_eq!(obs.exit_code, Some(0));
    let obs = run(&terminal, "cat > g.txt <<EOF\nx\nEOF\nfalse").await;
    assert_eq!((text(&obs), obs.exit_code), (String::new(), Some(1)));
    assert_eq!(text(&run(&terminal, "echo next").await), "next");
    terminal.close().await;
}

#[tokio::test]
async fn python_literals_are_rejected() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "[{\"a\": 1}]").await;
    assert!(obs.is_error);
    assert_eq!(obs.exit_code, None);
    assert!(text(&obs).starts_with(
        "[Tool-argument error] The `command` argument looks like a Python/JSON list literal, \
         not a shell command. It starts with: '[{\"a\": 1}]'\n\n"
    ));
    assert!(text(&obs).contains("DATABASES = {'default': {...}}"));
    let obs = run(&terminal, "{'key': 'value'}").await;
    assert!(text(&obs).contains("dict literal"));
    // Bash tests are fine.
    let obs = run(&terminal, "[[ -d . ]] && echo dir").await;
    assert_eq!(text(&obs), "dir");
    terminal.close().await;
}

#[tokio::test]
async fn reset_recreates_the_shell() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    run(&terminal, "export FOO=bar; mkdir -p sub; cd sub").await;

    let obs = terminal
        .execute(&TerminalAction {
            reset: true,
            ..cmd("echo ${FOO:-unset}; pwd")
        })
        .await
        .unwrap();
    assert_eq!(
        text(&obs),
        format!("{RESET_TEXT}\n\nunset\n{}", working_dir(&dir))
    );
    assert_eq!(
        obs.command.as_deref(),
        Some("[RESET] echo ${FOO:-unset}; pwd")
    );
    assert_eq!(obs.exit_code, Some(0));

    let obs = terminal
        .execute(&TerminalAction {
            reset: true,
            ..cmd("")
        })
        .await
        .unwrap();
    assert_eq!(text(&obs), RESET_TEXT);
    assert_eq!(obs.command.as_deref(), Some("[RESET]"));
    assert_eq!(obs.exit_code, Some(0));
    assert_eq!(llm_texts(&obs, None), vec![RESET_TEXT.to_owned()]);

    let err = terminal
        .execute(&TerminalAction {
            reset: true,
            is_input: true,
            ..cmd("x")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, ToolError::Invalid(ref m) if m == "Cannot use reset=True with is_input=True")
    );
    terminal.close().await;
}

#[tokio::test]
async fn reset_stops_a_running_command() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.no_change_timeout = Duration::from_millis(300);
    let terminal = start_with(config).await;
    let obs = run(&terminal, "sleep 50").await;
    assert_eq!(obs.exit_code, Some(-1));
    let obs = terminal
        .execute(&TerminalAction {
            reset: true,
            ..cmd("echo fresh")
        })
        .await
        .unwrap();
    assert_eq!(text(&obs), format!("{RESET_TEXT}\n\nfresh"));
    terminal.close().await;
}

#[tokio::test]
async fn secrets_are_exported_when_mentioned_and_masked() {
    let dir = TempDir::new().unwrap();
    let secrets = Secrets::new();
    secrets.set("MY_TOKEN", "s3cr3t-v4lue", None);
    secrets.set("UNUSED_SECRET", "other-v4lue", None);
    let mut config = config(&dir);
    config.secrets = secrets;
    let terminal = start_with(config).await;

    let obs = run(&terminal, "echo \"token=$MY_TOKEN\"").await;
    assert_eq!(text(&obs), "token=<secret-hidden>");
    // Mentioned in lower case: still exported (bash itself is case-sensitive).
    let obs = run(&terminal, "env | grep -c -i '^my_token=s3cr3t'").await;
    assert_eq!(text(&obs), "1");
    // Not mentioned: not exported.
    let obs = run(&terminal, "env | grep -c '^UNUSED' || true").await;
    assert_eq!(text(&obs), "0");
    // The export persists in the session and values are masked wherever they appear.
    let obs = run(&terminal, "env | grep '^MY_T' | cut -d= -f2").await;
    assert_eq!(text(&obs), "<secret-hidden>");
    terminal.close().await;
}

#[tokio::test]
async fn sensitive_environment_is_not_passed_and_defaults_are_set() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.env = vec![
        ("EXTRA_VAR".to_owned(), "extra value".to_owned()),
        ("SESSION_API_KEY".to_owned(), "leak".to_owned()),
    ];
    let terminal = start_with(config).await;
    let obs = run(
        &terminal,
        "echo \"$EXTRA_VAR|${SESSION_API_KEY-none}|$PAGER|$GIT_PAGER|$AI_AGENT|$TERM|$PS2\"",
    )
    .await;
    assert_eq!(
        text(&obs),
        "extra value|none|cat|cat|openhands|xterm-256color|"
    );
    terminal.close().await;

    let mut bad = self::config(&dir);
    bad.env = vec![("1BAD".to_owned(), "x".to_owned())];
    let err = Terminal::start(bad).await.unwrap_err();
    assert!(matches!(err, ToolError::Invalid(_)));
}

#[tokio::test]
async fn exiting_the_shell_starts_a_new_one_next_time() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    run(&terminal, "export GONE=1").await;
    let started = Instant::now();
    let obs = run(&terminal, "exit 3").await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(obs.exit_code, Some(3));
    assert!(
        obs.metadata.suffix.contains("The shell exited with code 3"),
        "{obs:?}"
    );
    let obs = run(&terminal, "echo back ${GONE:-fresh}").await;
    assert_eq!(text(&obs), format!("{RESET_TEXT}\n\nback fresh"));
    assert_eq!(
        obs.command.as_deref(),
        Some("[RESET] echo back ${GONE:-fresh}")
    );
    assert_eq!(obs.exit_code, Some(0));
    terminal.close().await;
}

#[tokio::test]
async fn a_shell_killed_while_idle_is_restarted() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let shell: u32 = text(&run(&terminal, "echo $$").await).parse().unwrap();
    oh_agent::workspace::exec::signal_process(shell, oh_agent::workspace::exec::Signal::Kill)
        .unwrap();
    let status = common::within("the shell's exit", terminal.wait_for_shell_exit()).await;
    assert_eq!(status, Some(128 + 9));
    let obs = run(&terminal, "echo again").await;
    assert_eq!(text(&obs), format!("{RESET_TEXT}\n\nagain"));
    terminal.close().await;
}

#[tokio::test]
async fn big_output_burst_does_not_hang() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let started = Instant::now();
    let obs = run(&terminal, "seq 1 200000").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    let content = text(&obs);
    assert_eq!(obs.exit_code, Some(0));
    assert!(content.starts_with("1\n2\n3\n"));
    assert!(content.ends_with("199999\n200000"));
    assert!(content.contains(CLIPPED_NOTICE));
    assert_eq!(text(&run(&terminal, "echo ok").await), "ok");
    terminal.close().await;
}

#[tokio::test]
async fn foreground_timeout_above_the_idle_cap_is_refused() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.runtime_idle_timeout = Some(100.0);
    let terminal = start_with(config).await;
    let obs = terminal
        .execute(&with_timeout("sleep 1", 95.0))
        .await
        .unwrap();
    assert!(obs.is_error);
    assert_eq!(
        text(&obs),
        "Refusing to run foreground terminal command with timeout=95s.\n\nThis runtime is \
         subject to idle cleanup after 100s. Foreground terminal commands are capped at 90% of \
         that threshold, currently 90s, so commands can return control before the runtime is \
         considered idle.\n\nFor long-running work, use a shorter timeout, omit the timeout to \
         use the terminal soft-timeout/polling flow, or start the command in the background \
         and poll its log file."
    );
    let obs = terminal
        .execute(&with_timeout("echo ok", 90.0))
        .await
        .unwrap();
    assert_eq!(text(&obs), "ok");
    terminal.close().await;
}

#[tokio::test]
async fn close_kills_the_shell_and_its_jobs() {
    let dir = TempDir::new().unwrap();
    let mut config = config(&dir);
    config.no_change_timeout = Duration::from_millis(300);
    let terminal = start_with(config).await;
    let obs = run(&terminal, "sleep 1000 & echo $!").await;
    // Interactive bash announces the job (`[1] <pid>`) before the echo.
    let background: u32 = text(&obs).lines().last().unwrap().parse().unwrap();
    let obs = run(&terminal, "echo $$").await;
    let shell: u32 = text(&obs).trim().parse().unwrap();
    let obs = run(&terminal, "sleep 1001").await;
    assert_eq!(obs.exit_code, Some(-1));
    assert!(Path::new(&format!("/proc/{background}")).exists());

    terminal.close().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.contains(") Z "))
            .unwrap_or(false)
    };
    while (alive(background) || alive(shell)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(shell), "shell {shell} still alive");
    assert!(
        !alive(background),
        "background job {background} still alive"
    );
    let err = terminal.execute(&cmd("echo hi")).await.unwrap_err();
    assert!(matches!(err, ToolError::Internal(_)));
}

#[tokio::test]
async fn dropping_the_terminal_hangs_up_its_shell() {
    let dir = TempDir::new().unwrap();
    let terminal = start(&dir).await;
    let obs = run(&terminal, "sleep 1000 & echo $!").await;
    let background: u32 = text(&obs).lines().last().unwrap().parse().unwrap();
    let shell: u32 = text(&run(&terminal, "echo $$").await).parse().unwrap();
    drop(terminal);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (common::process_alive(background) || common::process_alive(shell))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!common::process_alive(shell), "shell {shell} still alive");
    assert!(
        !common::process_alive(background),
        "job {background} still alive"
    );
}

#[test]
fn runtime_shutdown_hangs_up_the_shell() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = TempDir::new().unwrap();
    let (terminal, background, shell) = runtime.block_on(async {
        let terminal = start(&dir).await;
        let obs = run(&terminal, "sleep 1000 & echo $!").await;
        let background: u32 = text(&obs).lines().last().unwrap().parse().unwrap();
        let shell: u32 = text(&run(&terminal, "echo $$").await).parse().unwrap();
        (terminal, background, shell)
    });
    // The runtime goes first (as when a test panics): its tasks, holding the PTY, are
    // dropped, which hangs the terminal up.
    drop(runtime);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (common::process_alive(background) || common::process_alive(shell))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!common::process_alive(shell), "shell {shell} still alive");
    assert!(
        !common::process_alive(background),
        "job {background} still alive"
    );
    drop(terminal);
}

#[test]
fn terminal_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Terminal>();
}

#[tokio::test]
async fn start_rejects_a_missing_working_directory() {
    let dir = TempDir::new().unwrap();
    let err = Terminal::start(TerminalConfig::new(dir.path().join("missing")))
        .await
        .unwrap_err();
    assert!(matches!(err, ToolError::Invalid(ref m) if m.contains("is not a valid directory")));
}

#[test]
fn parse_action_is_strict() {
    let args = |v: serde_json::Value| v.as_object().unwrap().clone();
    assert_eq!(
        parse_action(args(json!({"command": "ls"}))).unwrap(),
        cmd("ls")
    );
    assert_eq!(
        parse_action(args(json!({
            "command": "ls", "is_input": true, "timeout": 5, "reset": false
        })))
        .unwrap(),
        TerminalAction {
            is_input: true,
            timeout: Some(5.0),
            ..cmd("ls")
        }
    );
    assert_eq!(
        parse_action(args(
            json!({"command": "ls", "timeout": 2.5, "is_input": "true"})
        ))
        .unwrap(),
        TerminalAction {
            is_input: true,
            timeout: Some(2.5),
            ..cmd("ls")
        }
    );
    assert_eq!(
        parse_action(args(json!({"command": "ls", "foo": 1}))).unwrap_err(),
        "1 validation error for TerminalAction\nfoo\n  Extra inputs are not permitted"
    );
    assert_eq!(
        parse_action(args(json!({"command": 5}))).unwrap_err(),
        "1 validation error for TerminalAction\ncommand\n  Input should be a valid string"
    );
    assert_eq!(
        parse_action(args(json!({}))).unwrap_err(),
        "1 validation error for TerminalAction\ncommand\n  Field required"
    );
    assert_eq!(
        parse_action(args(json!({"command": "ls", "timeout": -1}))).unwrap_err(),
        "1 validation error for TerminalAction\ntimeout\n  Input should be greater than or \
         equal to 0"
    );
    let err = parse_action(args(
        json!({"command": "ls", "is_input": 2, "timeout": [1]}),
    ))
    .unwrap_err();
    assert!(
        err.starts_with("2 validation errors for TerminalAction"),
        "{err}"
    );
    assert!(parse_action(args(json!({"command": "ls", "reset": "maybe"}))).is_err());
}

/// A server started in the background by a non-interactive shell inherits SIGINT ignored;
/// Ctrl-C must still stop a command. Re-runs `hard_timeout_then_ctrl_c` in a child process
/// of this test binary with SIGINT ignored.
#[test]
fn ctrl_c_works_when_sigint_was_ignored_by_the_parent() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("trap '' INT; exec \"$0\" --exact \"$1\" --test-threads=1")
        .arg(&exe)
        .arg(common::test_name(
            module_path!(),
            "hard_timeout_then_ctrl_c",
        ))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    // "1 passed": the filter named the test (a filter naming nothing passes with 0 tests).
    assert!(
        output.status.success() && report.contains("1 passed"),
        "Ctrl-C did not stop the command with SIGINT ignored:\n{report}"
    );
}
