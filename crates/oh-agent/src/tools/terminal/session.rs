//! One persistent shell session: running commands, waiting for their prompt, timeouts and
//! continuation.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oh_protocol::message::Content;
use oh_protocol::tool::{CmdOutputMetadata, TerminalAction, TerminalObservation};
use regex::Regex;
use tokio::sync::watch;

use super::TerminalConfig;
use super::command::{parse_key, split_commands};
use super::output::{PS1, PromptBlock, clean_output, python_float, python_g, strip_prompts};
use super::shell::{ShellHandle, SpawnOptions};
use crate::secrets::{ansi_c_quote, is_env_name};
use crate::tools::ToolError;
use crate::workspace::{is_sensitive_env, sanitized_env};

/// The reference's `TIMEOUT_MESSAGE_TEMPLATE`.
const TIMEOUT_MESSAGE: &str = "You may wait longer to see additional output by sending empty \
     command '', send other commands to interact with the current process, send keys \
     (\"C-c\", \"C-z\", \"C-d\") to interrupt/kill the previous command before sending your \
     new command, or use the timeout parameter in terminal for future commands.";
/// Put before the output of a command that was already reported as still running.
const CONTINUE_PREFIX: &str = "[Below is the output of the previous command.]\n";
const NO_RUNNING_LOGS: &str = "No previous running command to retrieve logs from.";
const NO_RUNNING_INPUT: &str = "No previous running command to interact with.";

/// Typed once after the shell starts: no history expansion, no echo (so outputs need no
/// echo stripping), and a readline that inserts text verbatim (no bracketed paste, no
/// completion on tabs, 8-bit input as is). The sentinel marks the end of start-up output.
const INIT_LINE: &str = "set +H; stty -echo 2>/dev/null; \
     bind 'set enable-bracketed-paste off' 2>/dev/null; \
     bind 'set disable-completion on' 2>/dev/null; \
     bind 'set input-meta on' 2>/dev/null; \
     bind 'set output-meta on' 2>/dev/null; \
     bind 'set convert-meta off' 2>/dev/null; \
     bind 'set bell-style none' 2>/dev/null; \
     printf '%s%s\\n' __OH_INIT_ DONE__\n";
const INIT_SENTINEL: &str = "__OH_INIT_DONE__";
/// How long the shell may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// After a heredoc completion marker, how long to wait for the prompt that follows it.
const BOUNDARY_PROMPT_WAIT: Duration = Duration::from_secs(1);
/// Polling interval bounds (the reference's adaptive polling, 1.57).
const MIN_POLL: Duration = Duration::from_millis(20);
const MAX_POLL: Duration = Duration::from_millis(500);

/// Whether a command is still running in the shell.
#[derive(Debug)]
enum Status {
    Idle,
    Running(Running),
}

/// The status, mirrored into a flag readable without the session lock.
#[derive(Debug)]
struct Tracked {
    value: Status,
    busy: Arc<AtomicBool>,
}

impl Tracked {
    fn set(&mut self, status: Status) {
        self.busy
            .store(matches!(status, Status::Running(_)), Ordering::SeqCst);
        self.value = status;
    }
}

/// A command that was reported as still running (or is being waited for).
#[derive(Debug)]
struct Running {
    /// Screen position where its output starts.
    start: usize,
    /// Output before this position was already returned.
    shown: usize,
    /// Where to continue looking for the end marker of the prompt.
    scanned: usize,
    /// An observation for this command was already returned.
    continued: bool,
    /// Completion marker printed after a multi-statement heredoc command.
    boundary: Option<Regex>,
    /// When the completion marker was first seen without a prompt after it.
    boundary_seen: Option<Instant>,
}

impl Running {
    fn new(start: usize, boundary: Option<Regex>) -> Self {
        Self {
            start,
            shown: start,
            scanned: start,
            continued: false,
            boundary,
            boundary_seen: None,
        }
    }
}

/// How waiting for a command ended.
#[derive(Debug)]
enum Outcome {
    Done(Done),
    NoChange,
    Hard(f64),
    Exited(i32),
    Closed,
}

/// A completed command: where its output ends and what follows.
#[derive(Debug)]
struct Done {
    /// Output ends here.
    output_end: usize,
    /// The screen is consumed up to here.
    consume_to: usize,
    /// The prompt, if one was seen (a heredoc boundary may complete without one).
    prompt: Option<PromptBlock>,
    /// Exit status printed with the heredoc completion marker.
    boundary_code: Option<i64>,
}

/// The state of the terminal: the shell, if any, and what it is doing.
#[derive(Debug)]
pub(super) struct Session {
    shell: Option<ShellHandle>,
    status: Tracked,
    cwd: Option<String>,
    /// The shell exited by itself; the next call starts a new one.
    died: bool,
    /// [`super::Terminal::close`] was called.
    pub(super) closed: bool,
}

impl Session {
    pub(super) fn new() -> Self {
        Self {
            shell: None,
            status: Tracked {
                value: Status::Idle,
                busy: Arc::new(AtomicBool::new(false)),
            },
            cwd: None,
            died: false,
            closed: false,
        }
    }

    /// A flag that is set while a command runs.
    pub(super) fn busy_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.status.busy)
    }

    /// Whether the shell is gone (never started, exited, or exited during a command), so
    /// the next call has to start a new one.
    pub(super) fn needs_restart(&self) -> bool {
        self.died
            || self
                .shell
                .as_ref()
                .is_none_or(|shell| shell.exit_code().is_some())
    }

    /// A sender for typing into the current shell from synchronous code.
    pub(super) fn input_sender(&self) -> Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>> {
        self.shell.as_ref().map(ShellHandle::input_sender)
    }

    /// Starts a new shell (stopping the current one first).
    pub(super) async fn restart(&mut self, config: &TerminalConfig) -> Result<(), ToolError> {
        self.stop().await;
        let (shell, metadata) = start_shell(config).await?;
        self.shell = Some(shell);
        self.cwd = metadata.working_dir;
        self.status.set(Status::Idle);
        self.died = false;
        Ok(())
    }

    /// Stops the shell and its children.
    pub(super) async fn stop(&mut self) {
        if let Some(shell) = self.shell.take() {
            shell.shutdown().await;
        }
        self.status.set(Status::Idle);
    }

    /// Waits until the command reported as still running has completed, the shell exited
    /// or the terminal closes, leaving the command's output for the next call. Returns at
    /// once when no command runs.
    pub(super) async fn wait_for_command(&mut self, closing: &watch::Receiver<bool>) {
        if let (Some(shell), Status::Running(run)) = (self.shell.as_ref(), &mut self.status.value) {
            // An infinite timeout: only completion, exit or closing end the wait.
            let _ = wait(shell, run, Some(f64::INFINITY), Duration::MAX, closing).await;
        }
    }

    /// A receiver of the current shell's exit status, if a shell runs.
    pub(super) fn exit_watch(&self) -> Option<watch::Receiver<Option<i32>>> {
        self.shell.as_ref().map(ShellHandle::exit_watch)
    }

    /// Runs one action in the current shell (no reset handling, no masking).
    pub(super) async fn run(
        &mut self,
        config: &TerminalConfig,
        action: &TerminalAction,
        closing: &watch::Receiver<bool>,
    ) -> Result<TerminalObservation, ToolError> {
        let command = normalize_eols(action.command.trim());
        let is_input = action.is_input;

        let needs_boundary = match self.validate(config, &command, action) {
            Ok(needs_boundary) => needs_boundary,
            Err(rejection) => return Ok(error_observation(rejection, &command)),
        };

        let Some(shell) = self.shell.as_ref() else {
            return Err(ToolError::Internal(
                "The terminal session is not running.".to_owned(),
            ));
        };

        // A new command while the previous one is (or was) running.
        let mut leftover = String::new();
        if !is_input
            && !command.is_empty()
            && let Status::Running(run) = &mut self.status.value
        {
            match check_done(shell, run) {
                Some(done) => {
                    let finished = finish(shell, run, &done, "");
                    leftover = finished.output;
                    if let Some(dir) = finished.metadata.working_dir {
                        self.cwd = Some(dir);
                    }
                    self.status.set(Status::Idle);
                }
                None => return Ok(not_executed(shell, run, &command)),
            }
        }

        // Secrets the command mentions are exported first, by a separate command.
        // Lookups are fetched now; one that fails is left out, and the observation says so.
        let mut lookup_failures = Vec::new();
        if !is_input && !command.is_empty() {
            let resolved = config.secrets.resolve_referenced(&command).await;
            lookup_failures = resolved.failures;
            let exports: Vec<String> = resolved
                .values
                .into_iter()
                .map(|(name, value)| format!("export {name}={}", ansi_c_quote(&value)))
                .collect();
            if !exports.is_empty() {
                self.export(config, &exports.join(" && "), closing).await?;
            }
        }

        let Some(shell) = self.shell.as_ref() else {
            return Err(ToolError::Internal(
                "The terminal session is not running.".to_owned(),
            ));
        };
        let mut key_ctrl = None;
        if is_input || command.is_empty() {
            if !command.is_empty() {
                match parse_key(&command) {
                    Some(key) => {
                        key_ctrl = key.ctrl;
                        shell.send(key.bytes);
                    }
                    None => shell.send(format!("{command}\n")),
                }
            }
        } else {
            consume_stale_prompts(shell);
            let boundary = if needs_boundary {
                boundary_marker()
            } else {
                None
            };
            let start = shell.screen.end();
            shell.send(format!("{command}\n"));
            let boundary_re = match boundary {
                Some((line, re)) => {
                    shell.send(line);
                    Some(re)
                }
                None => None,
            };
            self.status
                .set(Status::Running(Running::new(start, boundary_re)));
        }

        let Status::Running(run) = &mut self.status.value else {
            return Err(ToolError::Internal(
                "The terminal lost track of the running command.".to_owned(),
            ));
        };
        let outcome = wait(
            shell,
            run,
            action.timeout,
            config.no_change_timeout,
            closing,
        )
        .await;
        let mut observation = match outcome {
            Outcome::Done(done) => {
                let finished = finish(shell, run, &done, &command);
                self.status.set(Status::Idle);
                self.completed(finished, command, key_ctrl)
            }
            Outcome::NoChange => {
                let suffix = format!(
                    "\n[The command has no new output after {} seconds. {TIMEOUT_MESSAGE}]",
                    seconds_text(config.no_change_timeout)
                );
                still_running(shell, run, &command, suffix)
            }
            Outcome::Hard(timeout) => {
                let suffix = format!(
                    "\n[The command timed out after {} seconds. {TIMEOUT_MESSAGE}]",
                    python_float(timeout)
                );
                still_running(shell, run, &command, suffix)
            }
            Outcome::Exited(code) => {
                let from = run.shown.max(run.start);
                let raw = shell.screen.text(from, shell.screen.end());
                let output = clean_output(&strip_prompts(&raw), &command);
                self.status.set(Status::Idle);
                self.died = true;
                shell_exited(output, command, code)
            }
            Outcome::Closed => {
                return Err(ToolError::Internal(
                    "The terminal session was closed.".to_owned(),
                ));
            }
        };
        if !leftover.is_empty() {
            let text = observation
                .content
                .first()
                .and_then(Content::as_text)
                .unwrap_or_default();
            let joined = if text.is_empty() {
                leftover
            } else {
                format!("{leftover}\n{text}")
            };
            observation.content = vec![Content::text(joined)];
        }
        if !lookup_failures.is_empty() {
            let notes: Vec<String> = lookup_failures
                .iter()
                .map(|(name, reason)| {
                    format!(
                        "[Secret {name} could not be fetched ({reason}); the command ran without it.]"
                    )
                })
                .collect();
            let text = observation
                .content
                .first()
                .and_then(Content::as_text)
                .unwrap_or_default();
            let joined = if text.is_empty() {
                notes.join("\n")
            } else {
                format!("{}\n{text}", notes.join("\n"))
            };
            observation.content = vec![Content::text(joined)];
        }
        Ok(observation)
    }

    /// The checks before anything is typed: the error text if the action is rejected, else whether the command needs a heredoc completion boundary.
    fn validate(
        &self,
        config: &TerminalConfig,
        command: &str,
        action: &TerminalAction,
    ) -> Result<bool, String> {
        let is_input = action.is_input;
        if let Some(text) = timeout_rejection(config, command, is_input, action.timeout) {
            return Err(text);
        }
        let running = matches!(self.status.value, Status::Running(_));
        if !running && command.is_empty() {
            return Err(NO_RUNNING_LOGS.to_owned());
        }
        if !running && is_input {
            return Err(NO_RUNNING_INPUT.to_owned());
        }
        if is_input || command.is_empty() {
            return Ok(false);
        }
        let split = split_commands(command);
        if split.statements.len() > 1 {
            let list: Vec<String> = split
                .statements
                .iter()
                .enumerate()
                .map(|(i, cmd)| format!("({}) {cmd}", i + 1))
                .collect();
            let text = format!(
                "Cannot execute multiple commands at once.\nPlease run each command \
                 separately OR chain them into a single command via && or ;\nProvided \
                 commands:\n{}",
                list.join("\n")
            );
            return Err(text);
        }
        Ok(split.needs_boundary)
    }

    /// The observation of a completed command; remembers its working directory.
    fn completed(
        &mut self,
        finished: Finished,
        command: String,
        key_ctrl: Option<char>,
    ) -> TerminalObservation {
        let mut metadata = finished.metadata;
        if let Some(dir) = &metadata.working_dir {
            self.cwd = Some(dir.clone());
        } else {
            metadata.working_dir.clone_from(&self.cwd);
        }
        metadata.suffix = match key_ctrl {
            Some(letter) => format!(
                "\n[The command completed with exit code {}. CTRL+{letter} was sent.]",
                metadata.exit_code
            ),
            None => format!(
                "\n[The command completed with exit code {}.]",
                metadata.exit_code
            ),
        };
        TerminalObservation {
            content: vec![Content::text(finished.output)],
            is_error: false,
            command: Some(command),
            exit_code: Some(metadata.exit_code),
            timeout: false,
            metadata,
            full_output_save_dir: None,
        }
    }

    /// Runs `export ...` and waits for it; its output is discarded.
    async fn export(
        &mut self,
        config: &TerminalConfig,
        exports: &str,
        closing: &watch::Receiver<bool>,
    ) -> Result<(), ToolError> {
        let Some(shell) = self.shell.as_ref() else {
            return Err(ToolError::Internal(
                "The terminal session is not running.".to_owned(),
            ));
        };
        consume_stale_prompts(shell);
        let start = shell.screen.end();
        shell.send(format!("{exports}\n"));
        self.status.set(Status::Running(Running::new(start, None)));
        let Status::Running(run) = &mut self.status.value else {
            return Err(ToolError::Internal(
                "The terminal lost track of the running command.".to_owned(),
            ));
        };
        match wait(shell, run, None, config.no_change_timeout, closing).await {
            Outcome::Done(done) => {
                shell.screen.consume_to(done.consume_to);
                self.status.set(Status::Idle);
                Ok(())
            }
            Outcome::Exited(_) => {
                self.status.set(Status::Idle);
                self.died = true;
                Err(ToolError::Internal(
                    "The shell exited while secrets were being exported.".to_owned(),
                ))
            }
            _ => Err(ToolError::Internal(
                "Exporting secrets into the terminal session did not finish.".to_owned(),
            )),
        }
    }
}

/// Output and metadata of a completed command.
#[derive(Debug)]
struct Finished {
    output: String,
    metadata: CmdOutputMetadata,
}

/// Takes the output of a completed command off the screen.
fn finish(shell: &ShellHandle, run: &Running, done: &Done, command: &str) -> Finished {
    let screen = &shell.screen;
    let from = run.shown.max(run.start);
    let front_dropped = screen.base() > from;
    let mut raw = screen.text(from, done.output_end);
    if run.boundary.is_some() {
        raw = strip_prompts(&raw);
    }
    screen.consume_to(done.consume_to);
    let mut metadata = match (&done.prompt, done.boundary_code) {
        (Some(prompt), _) => prompt.metadata.clone(),
        (None, code) => CmdOutputMetadata {
            exit_code: code.unwrap_or(-1),
            ..CmdOutputMetadata::default()
        },
    };
    if let Some(code) = done.boundary_code {
        metadata.exit_code = code;
    }
    if front_dropped {
        metadata.prefix = format!(
            "[Previous command outputs are truncated. Showing the last {} lines of the output \
             below.]\n",
            raw.lines().count()
        );
    }
    if run.continued {
        metadata.prefix = String::new();
    }
    Finished {
        output: clean_output(&raw, command),
        metadata,
    }
}

/// The observation of a command that is still running after a timeout.
fn still_running(
    shell: &ShellHandle,
    run: &mut Running,
    command: &str,
    suffix: String,
) -> TerminalObservation {
    let output = take_new_output(shell, run, command);
    let prefix = if run.continued {
        CONTINUE_PREFIX.to_owned()
    } else {
        String::new()
    };
    run.continued = true;
    TerminalObservation {
        content: vec![Content::text(output)],
        is_error: false,
        command: Some(command.to_owned()),
        exit_code: Some(-1),
        timeout: false,
        metadata: CmdOutputMetadata {
            prefix,
            suffix,
            ..CmdOutputMetadata::default()
        },
        full_output_save_dir: None,
    }
}

/// The observation of a command during which the shell itself exited.
fn shell_exited(output: String, command: String, code: i32) -> TerminalObservation {
    TerminalObservation {
        content: vec![Content::text(output)],
        is_error: false,
        command: Some(command),
        exit_code: Some(i64::from(code)),
        timeout: false,
        metadata: CmdOutputMetadata {
            exit_code: i64::from(code),
            suffix: format!(
                "\n[The shell exited with code {code}. A new terminal session will be started \
                 for the next command.]"
            ),
            ..CmdOutputMetadata::default()
        },
        full_output_save_dir: None,
    }
}

/// A new command sent while the previous one still runs: not executed.
fn not_executed(shell: &ShellHandle, run: &mut Running, command: &str) -> TerminalObservation {
    let suffix = format!(
        "\n[Your command \"{command}\" is NOT executed. The previous command is still \
         running - You CANNOT send new commands until the previous command is \
         completed. By setting `is_input` to `true`, you can interact with the current \
         process: {TIMEOUT_MESSAGE}]"
    );
    TerminalObservation {
        is_error: true,
        ..still_running(shell, run, command, suffix)
    }
}

/// Output of a running command not returned yet (up to any half-printed prompt).
fn take_new_output(shell: &ShellHandle, run: &mut Running, command: &str) -> String {
    let from = run.shown.max(run.start);
    let end = shell.screen.end();
    let mut raw = shell.screen.text(from, end);
    let mut shown = end;
    // Keep a prompt that is still arriving for the completion check.
    if let Some(begin) = raw.rfind("###PS1JSON###")
        && !raw[begin..].contains("###PS1END###")
    {
        let cut = if raw[..begin].ends_with('\n') {
            begin - 1
        } else {
            begin
        };
        shown = from + cut;
        raw.truncate(cut);
    }
    run.shown = shown;
    if run.boundary.is_some() {
        raw = strip_prompts(&raw);
    }
    let echo = if run.continued { "" } else { command };
    clean_output(&raw, echo)
}

/// Whether the running command completed.
fn check_done(shell: &ShellHandle, run: &mut Running) -> Option<Done> {
    let screen = &shell.screen;
    if let Some(marker) = &run.boundary {
        let (m_start, m_end, code) = screen.find_regex(marker, run.start)?;
        if let Some(prompt) = screen.find_prompt(m_end, m_end) {
            return Some(Done {
                output_end: m_start,
                consume_to: prompt.end,
                boundary_code: None,
                prompt: Some(prompt),
            });
        }
        let seen = *run.boundary_seen.get_or_insert_with(Instant::now);
        if seen.elapsed() >= BOUNDARY_PROMPT_WAIT {
            return Some(Done {
                output_end: m_start,
                consume_to: m_end,
                prompt: None,
                boundary_code: code.parse().ok(),
            });
        }
        return None;
    }
    let end = screen.end();
    match screen.find_prompt(run.start, run.scanned) {
        Some(prompt) => Some(Done {
            output_end: prompt.start,
            consume_to: prompt.end,
            prompt: Some(prompt),
            boundary_code: None,
        }),
        None => {
            run.scanned = end;
            None
        }
    }
}

/// Waits for the running command to complete, time out, or the shell to exit.
async fn wait(
    shell: &ShellHandle,
    run: &mut Running,
    hard_timeout: Option<f64>,
    no_change_timeout: Duration,
    closing: &watch::Receiver<bool>,
) -> Outcome {
    let start = Instant::now();
    let mut last_change = start;
    let mut changes = shell.screen.subscribe();
    changes.borrow_and_update();
    let mut exit = shell.exit_watch();
    let mut exit_open = true;
    let mut closing = closing.clone();
    let mut closing_open = true;
    let hard = hard_timeout
        .filter(|t| t.is_finite())
        .map(|t| Duration::from_secs_f64(t.max(0.0)));
    loop {
        if *closing.borrow_and_update() {
            return Outcome::Closed;
        }
        if let Some(done) = check_done(shell, run) {
            return Outcome::Done(done);
        }
        if let Some(code) = shell.exit_code() {
            // Let the reader pick up what the shell printed last.
            let drain_until = Instant::now() + Duration::from_millis(200);
            while !shell.screen.eof() && Instant::now() < drain_until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Some(done) = check_done(shell, run) {
                return Outcome::Done(done);
            }
            return Outcome::Exited(code);
        }
        let now = Instant::now();
        let deadline = match (hard, hard_timeout) {
            (Some(hard), Some(value)) => {
                if now.duration_since(start) >= hard {
                    return Outcome::Hard(value);
                }
                Some(start + hard)
            }
            // An infinite timeout: wait for completion, with no soft timeout either.
            (None, Some(_)) => None,
            (_, None) => {
                if now.duration_since(last_change) >= no_change_timeout {
                    return Outcome::NoChange;
                }
                Some(last_change + no_change_timeout)
            }
        };
        let interval = (now.duration_since(start) / 4).clamp(MIN_POLL, MAX_POLL);
        let sleep_for = deadline.map_or(interval, |d| interval.min(d.duration_since(now)));
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_ok() {
                    last_change = Instant::now();
                } else {
                    tokio::time::sleep(sleep_for).await;
                }
            }
            changed = exit.changed(), if exit_open => {
                if changed.is_err() {
                    exit_open = false;
                }
            }
            changed = closing.changed(), if closing_open => {
                if changed.is_err() {
                    closing_open = false;
                }
            }
            () = tokio::time::sleep(sleep_for) => {}
        }
    }
}

/// Drops prompts left on an idle screen (a Ctrl-C at the prompt prints a new one).
fn consume_stale_prompts(shell: &ShellHandle) {
    let screen = &shell.screen;
    let mut from = screen.base();
    while let Some(prompt) = screen.find_prompt(from, from) {
        from = prompt.end;
    }
    screen.consume_to(from);
}

/// A unique completion marker: the line to type after the command, and its pattern.
fn boundary_marker() -> Option<(String, Regex)> {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let start = format!("__OH_COMMAND_FINISHED_{id}_");
    let line = format!(
        "(__openhands_status=$?; printf '\\n%s%s%s\\n' '{start}' \"$__openhands_status\" '__' \
         > /dev/tty; exit \"$__openhands_status\")\n"
    );
    let re = Regex::new(&format!(r"\n?{}(\d+)__\n?", regex::escape(&start))).ok()?;
    Some((line, re))
}

/// `\r\n` and lone `\r` become `\n`.
fn normalize_eols(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// An error observation with just a text.
pub(super) fn error_observation(text: String, command: &str) -> TerminalObservation {
    TerminalObservation {
        content: vec![Content::text(text)],
        is_error: true,
        command: Some(command.to_owned()),
        exit_code: None,
        timeout: false,
        metadata: CmdOutputMetadata::default(),
        full_output_save_dir: None,
    }
}

/// The rejection of a foreground timeout above 90% of the runtime's idle timeout.
fn timeout_rejection(
    config: &TerminalConfig,
    command: &str,
    is_input: bool,
    timeout: Option<f64>,
) -> Option<String> {
    let timeout = timeout?;
    let idle = config.runtime_idle_timeout?;
    if is_input || command.trim().is_empty() || idle <= 0.0 {
        return None;
    }
    let max = idle * 0.9;
    if timeout <= max {
        return None;
    }
    Some(format!(
        "Refusing to run foreground terminal command with timeout={}s.\n\nThis runtime is \
         subject to idle cleanup after {}s. Foreground terminal commands are capped at 90% of \
         that threshold, currently {}s, so commands can return control before the runtime is \
         considered idle.\n\nFor long-running work, use a shorter timeout, omit the timeout to \
         use the terminal soft-timeout/polling flow, or start the command in the background \
         and poll its log file.",
        python_g(timeout),
        python_g(idle),
        python_g(max)
    ))
}

/// Whole seconds as an integer, otherwise as a float.
fn seconds_text(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        duration.as_secs().to_string()
    } else {
        python_float(duration.as_secs_f64())
    }
}

/// Starts a shell for `config` and waits for its first prompt.
async fn start_shell(
    config: &TerminalConfig,
) -> Result<(ShellHandle, CmdOutputMetadata), ToolError> {
    if !config.working_dir.is_dir() {
        return Err(ToolError::Invalid(format!(
            "working_dir '{}' is not a valid directory",
            config.working_dir.display()
        )));
    }
    let shell_path = resolve_shell(config.shell.as_deref())?;
    let env = shell_env(config)?;
    let shell = ShellHandle::spawn(SpawnOptions {
        shell: &shell_path,
        working_dir: &config.working_dir,
        env,
    })
    .map_err(|err| {
        ToolError::Internal(format!(
            "Could not start the shell {}: {err}",
            shell_path.display()
        ))
    })?;
    shell.send(INIT_LINE);

    let deadline = Instant::now() + START_TIMEOUT;
    let mut changes = shell.screen.subscribe();
    loop {
        if let Some(after) = shell.screen.find_end_of(INIT_SENTINEL, 0)
            && let Some(prompt) = shell.screen.find_prompt(after, after)
        {
            shell.screen.consume_to(prompt.end);
            tracing::debug!(pid = ?shell.pid(), "terminal shell started");
            return Ok((shell, prompt.metadata));
        }
        if shell.exit_code().is_some() || Instant::now() >= deadline {
            let printed = shell.screen.text(0, shell.screen.end());
            let printed: String = printed.chars().take(2000).collect();
            return Err(ToolError::Internal(format!(
                "The shell {} did not start properly. It printed:\n{}",
                shell_path.display(),
                printed.trim()
            )));
        }
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(MIN_POLL) => {}
        }
    }
}

/// The configured shell, or `bash` on `PATH`.
fn resolve_shell(shell: Option<&Path>) -> Result<PathBuf, ToolError> {
    if let Some(path) = shell {
        if !path.is_file() {
            return Err(ToolError::Invalid(format!(
                "Shell binary not found at: {}. Please provide a valid shell path.",
                path.display()
            )));
        }
        return Ok(path.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("bash"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            ToolError::Internal(
                "Could not find bash in PATH. Please provide an explicit shell path.".to_owned(),
            )
        })
}

/// The shell's environment: this process's as every command gets it
/// ([`sanitized_env`]: no credentials of the agent server), plus the pager and prompt
/// settings and the configured extra variables (credentials among them are dropped too).
fn shell_env(config: &TerminalConfig) -> Result<Vec<(OsString, OsString)>, ToolError> {
    let mut env: BTreeMap<OsString, OsString> = sanitized_env().into_iter().collect();
    env.insert("GIT_PAGER".into(), "cat".into());
    env.insert("PAGER".into(), "cat".into());
    for (name, value) in &config.env {
        if !is_env_name(name) {
            return Err(ToolError::Invalid(format!(
                "Invalid terminal environment variable name: {}",
                super::output::python_repr(name)
            )));
        }
        env.insert(name.into(), value.into());
    }
    env.retain(|name, _| !is_sensitive_env(name));
    let agent_unset = env
        .get(OsStr::new("AI_AGENT"))
        .and_then(|v| v.to_str())
        .is_none_or(|v| v.trim().is_empty());
    if agent_unset {
        env.insert("AI_AGENT".into(), "openhands".into());
    }
    env.insert("TERM".into(), "xterm-256color".into());
    env.insert("PS1".into(), PS1.into());
    env.insert("PS2".into(), "".into());
    env.insert(
        "PROMPT_COMMAND".into(),
        format!("PS1={}", ansi_c_quote(PS1)).into(),
    );
    Ok(env.into_iter().collect())
}
