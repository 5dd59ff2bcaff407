//! The `terminal` tool: one persistent bash session per conversation.
//!
//! [`Terminal`] runs `bash --norc --noprofile -i` on a pseudo-terminal in the workspace
//! directory. Every prompt prints a JSON block (`###PS1JSON###` ... `###PS1END###`) with the
//! exit code, working directory and friends; a command is complete when the next block
//! appears, and its output is the text before it. Terminal echo is turned off and readline
//! inserts text verbatim (no bracketed paste, no tab completion), so the command text is
//! sent as typed and nothing has to be stripped from the output.
//!
//! A command that prints nothing for [`TerminalConfig::no_change_timeout`] (30 s), or runs
//! longer than the action's `timeout`, is reported with exit code `-1` and keeps running:
//! an empty command waits for more output, `is_input` types into it (key names such as
//! `C-c` included). [`llm_content`] renders an observation as the model sees it.

mod command;
mod output;
mod session;
mod shell;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oh_protocol::message::Content;
use oh_protocol::tool::{CmdOutputMetadata, TerminalAction, TerminalObservation};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use self::session::{Session, error_observation};
use crate::secrets::Secrets;
use crate::tools::ToolError;

/// How long a command may print nothing before it is reported as still running.
pub const NO_CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Most characters of command output kept (and of the text sent to the LLM).
pub const MAX_OUTPUT_CHARS: usize = output::MAX_OUTPUT_CHARS;

/// Environment variable holding the runtime's idle timeout in seconds; foreground timeouts
/// above 90% of it are refused.
pub const RUNTIME_IDLE_TIMEOUT_ENV: &str = "OH_RUNTIME_IDLE_TIMEOUT_SECONDS";

/// What reset reports.
const RESET_TEXT: &str = "Terminal session has been reset. All previous environment variables \
     and session state have been cleared.";

/// Settings of a terminal session.
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// Where the shell starts (and restarts after a reset).
    pub working_dir: PathBuf,
    /// How long a command may print nothing before it is reported as still running
    /// (default [`NO_CHANGE_TIMEOUT`]). Not used when the action sets `timeout`.
    pub no_change_timeout: Duration,
    /// Extra environment variables for the shell.
    pub env: Vec<(String, String)>,
    /// Secrets: exported when a command mentions them, masked in outputs.
    pub secrets: Secrets,
    /// The shell to run; default: `bash` on `PATH`.
    pub shell: Option<PathBuf>,
    /// The conversation's persistence directory; when set, observations name
    /// `<dir>/observations` as their `full_output_save_dir`.
    pub conversation_dir: Option<PathBuf>,
    /// The runtime's idle timeout in seconds ([`RUNTIME_IDLE_TIMEOUT_ENV`] by default);
    /// a foreground `timeout` above 90% of it is refused.
    pub runtime_idle_timeout: Option<f64>,
}

impl TerminalConfig {
    /// Defaults for a shell in `working_dir`.
    pub fn new(working_dir: impl Into<PathBuf>) -> Self {
        Self {
            working_dir: working_dir.into(),
            no_change_timeout: NO_CHANGE_TIMEOUT,
            env: Vec::new(),
            secrets: Secrets::new(),
            shell: None,
            conversation_dir: None,
            runtime_idle_timeout: runtime_idle_timeout_from_env(),
        }
    }
}

/// [`RUNTIME_IDLE_TIMEOUT_ENV`] as a positive number of seconds.
fn runtime_idle_timeout_from_env() -> Option<f64> {
    let raw = std::env::var(RUNTIME_IDLE_TIMEOUT_ENV).ok()?;
    let value: f64 = raw.trim().parse().ok()?;
    (value > 0.0).then_some(value)
}

/// A persistent shell session on a pseudo-terminal.
///
/// Calls are serialised; [`Terminal::interrupt`] and [`Terminal::close`] work while a call
/// waits. Dropping the terminal hangs its shell up (bash passes `SIGHUP` on to its jobs) and
/// kills it if it does not exit.
pub struct Terminal {
    config: TerminalConfig,
    session: tokio::sync::Mutex<Session>,
    /// Typing into the current shell without taking the session lock.
    input: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    /// Set while a command runs; Ctrl-C is only sent then (at an idle prompt it would print
    /// a prompt that could be mistaken for the end of the next command).
    busy: Arc<AtomicBool>,
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("working_dir", &self.config.working_dir)
            .field("closed", &*self.closing.borrow())
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// Starts the shell and waits for its first prompt.
    ///
    /// # Errors
    /// [`ToolError::Invalid`] if the working directory, shell path or an environment
    /// variable name is wrong; [`ToolError::Internal`] if the shell does not start.
    pub async fn start(config: TerminalConfig) -> Result<Self, ToolError> {
        let mut session = Session::new();
        session.restart(&config).await?;
        let input = session.input_sender();
        let busy = session.busy_flag();
        Ok(Self {
            config,
            session: tokio::sync::Mutex::new(session),
            input: Mutex::new(input),
            busy,
            closing: watch::Sender::new(false),
        })
    }

    /// The settings this terminal was started with.
    pub fn config(&self) -> &TerminalConfig {
        &self.config
    }

    /// Runs an action: a command, input to the running command, a wait for more output,
    /// or a reset. Problems the model can fix come back as error observations.
    ///
    /// # Errors
    /// [`ToolError::Invalid`] for `reset` together with `is_input`;
    /// [`ToolError::Internal`] if the shell cannot be (re)started or the terminal was
    /// closed.
    pub async fn execute(&self, action: &TerminalAction) -> Result<TerminalObservation, ToolError> {
        let mut observation = self.execute_unmasked(action).await?;
        // Always: values fetched by lookups are masked even once no secret is registered.
        let secrets = &self.config.secrets;
        for block in &mut observation.content {
            if let Content::Text(text) = block {
                text.text = secrets.mask(&text.text);
            }
        }
        observation.metadata.prefix = secrets.mask(&observation.metadata.prefix);
        observation.metadata.suffix = secrets.mask(&observation.metadata.suffix);
        if let Some(dir) = &self.config.conversation_dir
            && !output::observation_text(&observation).is_empty()
        {
            observation.full_output_save_dir =
                Some(dir.join("observations").to_string_lossy().into_owned());
        }
        Ok(observation)
    }

    /// [`Terminal::execute`] before secrets are masked.
    async fn execute_unmasked(
        &self,
        action: &TerminalAction,
    ) -> Result<TerminalObservation, ToolError> {
        if action.reset && action.is_input {
            return Err(ToolError::Invalid(
                "Cannot use reset=True with is_input=True".to_owned(),
            ));
        }
        if !action.is_input
            && let Some(kind) = command::literal_kind(&action.command)
        {
            return Ok(literal_rejection(&action.command, kind));
        }

        let mut session = self.session.lock().await;
        if session.closed {
            return Err(ToolError::Internal(
                "The terminal session is closed.".to_owned(),
            ));
        }
        let closing = self.closing.subscribe();
        if action.reset || session.needs_restart() {
            session.restart(&self.config).await?;
            self.set_input(session.input_sender());
            if action.command.trim().is_empty() && !action.is_input {
                Ok(TerminalObservation {
                    content: vec![Content::text(RESET_TEXT)],
                    is_error: false,
                    command: Some("[RESET]".to_owned()),
                    exit_code: Some(0),
                    timeout: false,
                    metadata: CmdOutputMetadata::default(),
                    full_output_save_dir: None,
                })
            } else {
                let inner = TerminalAction {
                    command: action.command.clone(),
                    is_input: action.is_input,
                    timeout: action.timeout,
                    reset: false,
                };
                let mut observation = session.run(&self.config, &inner, &closing).await?;
                let text = output::observation_text(&observation);
                observation.content = vec![Content::text(format!("{RESET_TEXT}\n\n{text}"))];
                observation.command = Some(format!("[RESET] {}", action.command));
                Ok(observation)
            }
        } else {
            session.run(&self.config, action, &closing).await
        }
    }

    /// Sends Ctrl-C to the foreground process, if a command is running. Does not wait.
    /// Returns whether Ctrl-C was sent (not when idle: at an idle prompt it would only print
    /// a new prompt).
    pub fn interrupt(&self) -> bool {
        if !self.busy.load(Ordering::SeqCst) {
            return false;
        }
        let input = self.input.lock().unwrap_or_else(PoisonError::into_inner);
        input.as_ref().is_some_and(|tx| tx.send(vec![0x03]).is_ok())
    }

    /// Waits until the command last reported as still running has completed (its prompt
    /// was printed), the shell exited or the terminal is closed, without taking the
    /// command's output: the next call reports it. Returns at once when no command runs.
    /// For tests, to wait for a command to finish in the background instead of sleeping.
    #[doc(hidden)]
    pub async fn wait_for_command(&self) {
        let closing = self.closing.subscribe();
        self.session.lock().await.wait_for_command(&closing).await;
    }

    /// Waits until the current shell has exited and returns its exit status (`128 + n`
    /// when signal `n` killed it); `None` if no shell runs or its status is lost. For
    /// tests, to wait until a killed shell is noticed instead of sleeping.
    #[doc(hidden)]
    pub async fn wait_for_shell_exit(&self) -> Option<i32> {
        let mut exit = self.session.lock().await.exit_watch()?;
        exit.wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|code| *code)
    }

    /// Stops the shell and its jobs. A call waiting for a command returns an error; later
    /// calls fail.
    pub async fn close(&self) {
        self.closing.send_replace(true);
        self.set_input(None);
        let mut session = self.session.lock().await;
        session.closed = true;
        session.stop().await;
    }

    fn set_input(&self, sender: Option<mpsc::UnboundedSender<Vec<u8>>>) {
        *self.input.lock().unwrap_or_else(PoisonError::into_inner) = sender;
    }
}

/// The error observation for a command that looks like a Python/JSON literal.
fn literal_rejection(command: &str, kind: &str) -> TerminalObservation {
    let head: String = command.trim_start().chars().take(60).collect();
    let text = format!(
        "[Tool-argument error] The `command` argument looks like a Python/JSON {kind}, not a \
         shell command. It starts with: {}\n\nThe `terminal` tool runs exactly ONE shell \
         command at a time. To pass structured data or multi-line code:\n  - Write a script \
         first with `file_editor` (command=\"create\", path=\"/tmp/run.py\", ...), then invoke \
         it: `python /tmp/run.py`.\n  - Or use a heredoc inline, e.g.:\n        python - \
         <<'EOF'\n        DATABASES = {{'default': {{...}}}}\n        # your code here\n        \
         EOF\n\nDo not put a Python list/dict literal into the `command` field; the shell \
         cannot interpret it.",
        output::python_repr(&head)
    );
    let mut observation = error_observation(text, command);
    observation.command = Some(command.to_owned());
    observation
}

/// What the LLM sees for a terminal observation: `[An error occurred during execution.]\n`
/// as a first block for errors, then `<prefix><output><suffix>` followed by the working
/// directory, Python interpreter and exit code lines, cut to [`MAX_OUTPUT_CHARS`]. When
/// that cut happens and a conversation directory is known (`conversation_dir`, else the
/// observation's `full_output_save_dir`), the uncut text is saved to
/// `<conversation dir>/observations/terminal_output_<sha256 first 8 hex>.txt` and the notice
/// names that file.
pub fn llm_content(
    observation: &TerminalObservation,
    conversation_dir: Option<&Path>,
) -> Vec<Content> {
    output::llm_content(observation, conversation_dir)
}

/// Validates the model's arguments into a [`TerminalAction`]. Unknown keys and wrong types
/// are rejected; booleans and `timeout` accept what the reference's Pydantic model accepts
/// in lax mode (`"true"`, `1`, `"5"`, ...). `null` means "not given".
///
/// # Errors
/// A Pydantic-style message listing every problem.
pub fn parse_action(
    arguments: serde_json::Map<String, serde_json::Value>,
) -> Result<TerminalAction, String> {
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut command = None;
    let mut is_input = false;
    let mut timeout = None;
    let mut reset = false;
    for (key, value) in &arguments {
        match key.as_str() {
            "command" => match value {
                Value::String(s) => command = Some(s.clone()),
                Value::Null => {}
                _ => errors.push((key.clone(), "Input should be a valid string".to_owned())),
            },
            "is_input" | "reset" => match lax_bool(value) {
                Ok(Some(b)) if key == "is_input" => is_input = b,
                Ok(Some(b)) => reset = b,
                Ok(None) => {}
                Err(msg) => errors.push((key.clone(), msg)),
            },
            "timeout" => match lax_number(value) {
                Ok(Some(t)) if t < 0.0 => errors.push((
                    key.clone(),
                    "Input should be greater than or equal to 0".to_owned(),
                )),
                Ok(t) => timeout = t,
                Err(msg) => errors.push((key.clone(), msg)),
            },
            _ => errors.push((key.clone(), "Extra inputs are not permitted".to_owned())),
        }
    }
    if command.is_none() && !errors.iter().any(|(k, _)| k == "command") {
        errors.insert(0, ("command".to_owned(), "Field required".to_owned()));
    }
    match command {
        Some(command) if errors.is_empty() => Ok(TerminalAction {
            command,
            is_input,
            timeout,
            reset,
        }),
        _ => {
            let count = errors.len();
            let plural = if count == 1 { "error" } else { "errors" };
            let mut text = format!("{count} validation {plural} for TerminalAction");
            for (field, msg) in errors {
                text.push_str(&format!("\n{field}\n  {msg}"));
            }
            Err(text)
        }
    }
}

/// A boolean as Pydantic's lax mode reads it.
fn lax_bool(value: &Value) -> Result<Option<bool>, String> {
    const MSG: &str = "Input should be a valid boolean";
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) => match n.as_f64() {
            Some(0.0) => Ok(Some(false)),
            Some(1.0) => Ok(Some(true)),
            _ => Err(format!("{MSG}, unable to interpret input")),
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "0" | "off" | "f" | "false" | "n" | "no" => Ok(Some(false)),
            "1" | "on" | "t" | "true" | "y" | "yes" => Ok(Some(true)),
            _ => Err(format!("{MSG}, unable to interpret input")),
        },
        _ => Err(MSG.to_owned()),
    }
}

/// A number (or numeric string) as Pydantic's lax mode reads a float.
fn lax_number(value: &Value) -> Result<Option<f64>, String> {
    const MSG: &str = "Input should be a valid number";
    match value {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_f64().map(Some).ok_or_else(|| MSG.to_owned()),
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Some(f)),
            _ => Err(format!("{MSG}, unable to parse string as a number")),
        },
        _ => Err(MSG.to_owned()),
    }
}
