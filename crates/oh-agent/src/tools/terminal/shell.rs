//! The bash process on a pseudo-terminal, and the screen buffer its output is read into.
//!
//! Three background tasks serve one shell: a reader copying everything the PTY prints into
//! the [`Screen`] (so a chatty command never blocks on a full PTY), a writer sending queued
//! keystrokes (so [`ShellHandle::send`] never blocks, and Ctrl-C can be queued from
//! synchronous code), and a waiter reaping the process and reporting its exit status.
//!
//! Shutdown: dropping both PTY halves hangs the terminal up, so bash gets `SIGHUP` and, as
//! an interactive shell, passes it on to all its jobs before exiting. If bash is still
//! alive after a grace period it is killed. Once bash is gone (or the runtime drops the
//! waiter), whatever is left in its session is killed too, so no job outlives the terminal.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::output::{PromptBlock, find_prompt};
use crate::workspace::exec::{Signal, Utf8Decoder, signal_process};

/// Most text the screen keeps; past it the oldest lines are dropped (down to
/// [`SCREEN_KEEP`]). The reference keeps about 10 000 lines of history.
const SCREEN_LIMIT: usize = 8 * 1024 * 1024;
/// What is left after dropping old lines.
const SCREEN_KEEP: usize = 6 * 1024 * 1024;
/// How long bash gets to exit after the hang-up before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);
/// Terminal size; the reference's tmux window is 256 × 200.
const ROWS: u16 = 200;
const COLS: u16 = 256;

/// Text the shell printed, with `\r` removed and absolute positions: position `p` is the
/// `p`-th byte printed since the shell started, so positions stay valid when old text is
/// dropped.
#[derive(Debug, Default)]
struct ScreenState {
    text: String,
    /// Absolute position of `text[0]`.
    base: usize,
    /// Decodes the PTY's bytes, holding back a character split between reads.
    decoder: Utf8Decoder,
    /// The PTY reported end of file or an error.
    eof: bool,
}

/// The shared screen buffer of one shell.
#[derive(Debug)]
pub(super) struct Screen {
    state: Mutex<ScreenState>,
    changed: watch::Sender<u64>,
}

impl Screen {
    fn new() -> Self {
        Self {
            state: Mutex::new(ScreenState::default()),
            changed: watch::Sender::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ScreenState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends raw PTY bytes.
    fn push(&self, bytes: &[u8]) {
        {
            let mut state = self.lock();
            let mut decoded = state.decoder.decode(bytes);
            decoded.retain(|c| c != '\r');
            state.text.push_str(&decoded);
            if state.text.len() > SCREEN_LIMIT {
                // Drop whole lines, keeping about SCREEN_KEEP bytes.
                let mut cut = state.text.len() - SCREEN_KEEP;
                while !state.text.is_char_boundary(cut) {
                    cut += 1;
                }
                let cut = state.text[cut..].find('\n').map_or(cut, |i| cut + i + 1);
                state.text.drain(..cut);
                state.base += cut;
            }
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn set_eof(&self) {
        self.lock().eof = true;
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that sees a change whenever text arrives.
    pub(super) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Absolute position just after the last byte received.
    pub(super) fn end(&self) -> usize {
        let state = self.lock();
        state.base + state.text.len()
    }

    /// Absolute position of the oldest byte still kept.
    pub(super) fn base(&self) -> usize {
        self.lock().base
    }

    /// Whether the PTY was closed from the other side.
    pub(super) fn eof(&self) -> bool {
        self.lock().eof
    }

    /// The kept text between two absolute positions (clamped to what is kept).
    pub(super) fn text(&self, from: usize, to: usize) -> String {
        let state = self.lock();
        let from = from.saturating_sub(state.base).min(state.text.len());
        let to = to.saturating_sub(state.base).clamp(from, state.text.len());
        state.text[from..to].to_owned()
    }

    /// The first complete prompt block whose end marker starts at or after `scan_from`,
    /// and whose start is at or after `min_start`. Positions are absolute.
    pub(super) fn find_prompt(&self, min_start: usize, scan_from: usize) -> Option<PromptBlock> {
        let state = self.lock();
        let min_start = min_start.saturating_sub(state.base).min(state.text.len());
        let scan_from = scan_from
            .saturating_sub(state.base)
            .clamp(min_start, state.text.len());
        find_prompt(&state.text, min_start, scan_from).map(|mut block| {
            block.start += state.base;
            block.end += state.base;
            block
        })
    }

    /// The absolute end of the first occurrence of `needle` at or after `from`.
    pub(super) fn find_end_of(&self, needle: &str, from: usize) -> Option<usize> {
        let state = self.lock();
        let rel = from.saturating_sub(state.base).min(state.text.len());
        let at = state.text[rel..].find(needle)?;
        Some(state.base + rel + at + needle.len())
    }

    /// The first match of `pattern` at or after `from`, as absolute `(start, end)` and the
    /// text of its first capture group.
    pub(super) fn find_regex(
        &self,
        pattern: &regex::Regex,
        from: usize,
    ) -> Option<(usize, usize, String)> {
        let state = self.lock();
        let rel = from.saturating_sub(state.base).min(state.text.len());
        let caps = pattern.captures_at(&state.text, rel)?;
        let whole = caps.get(0)?;
        let group = caps.get(1).map_or("", |m| m.as_str()).to_owned();
        Some((whole.start() + state.base, whole.end() + state.base, group))
    }

    /// Forgets everything before the absolute position `pos`.
    pub(super) fn consume_to(&self, pos: usize) {
        let mut state = self.lock();
        let rel = pos.saturating_sub(state.base).min(state.text.len());
        if rel > 0 && state.text.is_char_boundary(rel) {
            state.text.drain(..rel);
            state.base += rel;
        }
    }
}

/// Options for spawning a shell.
#[derive(Debug)]
pub(super) struct SpawnOptions<'a> {
    pub(super) shell: &'a Path,
    pub(super) working_dir: &'a Path,
    pub(super) env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
}

/// A running shell: its screen, its input queue and its lifetime.
#[derive(Debug)]
pub(super) struct ShellHandle {
    pub(super) screen: Arc<Screen>,
    input: mpsc::UnboundedSender<Vec<u8>>,
    exit: watch::Receiver<Option<i32>>,
    shutdown: Option<oneshot::Sender<()>>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
    pid: Option<u32>,
}

impl ShellHandle {
    /// Starts `shell --norc --noprofile -i` on a new PTY.
    pub(super) fn spawn(options: SpawnOptions<'_>) -> std::io::Result<Self> {
        let (pty, pts) = pty_process::open().map_err(to_io)?;
        pty.resize(pty_process::Size::new(ROWS, COLS))
            .map_err(to_io)?;
        // A server started in the background by a non-interactive shell inherits SIGINT and
        // SIGQUIT ignored, and bash passes that on to every command, so Ctrl-C would do
        // nothing. GNU env restores the defaults before bash starts, where it exists.
        let command = match default_signal_env() {
            Some(env) => pty_process::Command::new(env)
                .arg("--default-signal=INT,QUIT")
                .arg(options.shell),
            None => pty_process::Command::new(options.shell),
        };
        let command = command
            .args(["--norc", "--noprofile", "-i"])
            .current_dir(options.working_dir)
            .env_clear()
            .envs(options.env)
            // Not killed when the waiter task is dropped (runtime shutdown): the PTY halves
            // are dropped too, and the hang-up lets bash pass SIGHUP on to its jobs, which
            // a SIGKILL would prevent.
            .kill_on_drop(false);
        let mut child = command.spawn(pts).map_err(to_io)?;
        let pid = child.id();
        let (mut read_half, mut write_half) = pty.into_split();

        let screen = Arc::new(Screen::new());
        let reader_screen = Arc::clone(&screen);
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match read_half.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => reader_screen.push(&buf[..n]),
                }
            }
            reader_screen.set_eof();
        });

        let (input, mut input_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let writer = tokio::spawn(async move {
            while let Some(bytes) = input_rx.recv().await {
                if write_half.write_all(&bytes).await.is_err() {
                    break;
                }
                if write_half.flush().await.is_err() {
                    break;
                }
            }
        });

        let (exit_tx, exit) = watch::channel(None);
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let reaper = pid.map(SessionReaper);
        tokio::spawn(async move {
            // Dropped when bash has exited, or with this task at runtime shutdown: either
            // way nothing of the session may outlive it.
            let _reaper = reaper;
            let status = tokio::select! {
                status = child.wait() => status,
                _ = shutdown_rx => {
                    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
                        Ok(status) => status,
                        Err(_) => {
                            let _ = child.start_kill();
                            child.wait().await
                        }
                    }
                }
            };
            let code = match status {
                Ok(status) => status
                    .code()
                    .or_else(|| status.signal().map(|s| 128 + s))
                    .unwrap_or(-1),
                Err(_) => -1,
            };
            let _ = exit_tx.send(Some(code));
        });

        Ok(Self {
            screen,
            input,
            exit,
            shutdown: Some(shutdown),
            reader,
            writer,
            pid,
        })
    }

    /// Queues bytes to be typed into the terminal.
    pub(super) fn send(&self, bytes: impl Into<Vec<u8>>) {
        let _ = self.input.send(bytes.into());
    }

    /// A sender for typing from synchronous code (Ctrl-C on interrupt).
    pub(super) fn input_sender(&self) -> mpsc::UnboundedSender<Vec<u8>> {
        self.input.clone()
    }

    /// The shell's exit status, once it has exited.
    pub(super) fn exit_code(&self) -> Option<i32> {
        *self.exit.borrow()
    }

    /// A receiver that changes when the shell exits.
    pub(super) fn exit_watch(&self) -> watch::Receiver<Option<i32>> {
        self.exit.clone()
    }

    /// The shell's process id.
    pub(super) fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Hangs the terminal up and waits for bash to exit (killing it after a grace period).
    pub(super) async fn shutdown(mut self) {
        self.reader.abort();
        self.writer.abort();
        let _ = (&mut self.reader).await;
        let _ = (&mut self.writer).await;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let mut exit = self.exit.clone();
        let _ = tokio::time::timeout(
            EXIT_GRACE + Duration::from_secs(2),
            exit.wait_for(Option::is_some),
        )
        .await;
    }
}

/// `/usr/bin/env` if it understands `--default-signal` (GNU coreutils ≥ 8.31), checked once.
fn default_signal_env() -> Option<&'static Path> {
    static ENV: std::sync::OnceLock<Option<&'static Path>> = std::sync::OnceLock::new();
    *ENV.get_or_init(|| {
        let env = Path::new("/usr/bin/env");
        let works = std::process::Command::new(env)
            .args(["--default-signal=INT,QUIT", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        works.then_some(env)
    })
}

/// Kills every process left in the shell's session (bash runs as a session leader, so its
/// pid is the session id) when dropped. Jobs normally die with the hang-up; this catches those
/// that ignore it (`nohup`), were disowned, or missed it because bash exited on a read error.
#[derive(Debug)]
struct SessionReaper(u32);

impl Drop for SessionReaper {
    fn drop(&mut self) {
        kill_session(self.0);
    }
}

/// Processes whose session id is `sid`, from `/proc/<pid>/stat`.
fn session_members(sid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // Fields after the command name: state ppid pgrp session ...
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after
                .split_whitespace()
                .nth(3)
                .and_then(|f| f.parse::<u32>().ok())
                == Some(sid)
        })
        .collect()
}

/// SIGKILLs the members of session `sid`.
fn kill_session(sid: u32) {
    for pid in session_members(sid) {
        if let Err(err) = signal_process(pid, Signal::Kill) {
            tracing::debug!(error = %err, pid, "could not kill a process left in a terminal session");
        }
    }
}

impl Drop for ShellHandle {
    fn drop(&mut self) {
        // Closing both PTY halves hangs the terminal up; the waiter task then gives bash
        // the grace period and kills it if needed (the dropped `shutdown` sender wakes it).
        self.reader.abort();
        self.writer.abort();
    }
}

fn to_io(err: pty_process::Error) -> std::io::Error {
    match err {
        pty_process::Error::Io(err) => err,
        other => std::io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_split_utf8_and_drops_carriage_returns() {
        let screen = Screen::new();
        let bytes = "é✓\r\nok".as_bytes();
        screen.push(&bytes[..1]);
        screen.push(&bytes[1..4]);
        screen.push(&bytes[4..]);
        screen.push(b"\xff!");
        assert_eq!(screen.text(0, screen.end()), "é✓\nok\u{fffd}!");
    }

    #[test]
    fn old_lines_are_dropped_with_absolute_positions_kept() {
        let screen = Screen::new();
        let line = "ééééééééé\n"; // 19 bytes
        let chunk = line.repeat(10_000);
        let mut pushed = 0;
        while pushed <= SCREEN_LIMIT {
            screen.push(chunk.as_bytes());
            pushed += chunk.len();
        }
        assert_eq!(screen.end(), pushed);
        assert!(screen.base() > 0);
        assert!(screen.end() - screen.base() <= SCREEN_KEEP);
        assert_eq!(screen.base() % line.len(), 0);
        let tail = screen.text(screen.end() - line.len(), screen.end());
        assert_eq!(tail, line);
        screen.consume_to(screen.end() - 1);
        assert_eq!(screen.text(0, screen.end()), "\n");
    }
}
