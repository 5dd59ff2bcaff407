//! Running shell commands: the one implementation behind [`LocalWorkspace`]'s
//! `execute_command`, the agent server's `/api/bash` routes and the terminal tool's signals.
//!
//! * Every command is a fresh `/bin/sh -c` in its own process group, with the
//!   [sanitized environment](super::sanitized_env_with), stdin from `/dev/null` and both output
//!   pipes captured; dropping the child kills the shell.
//! * [`exit_code`] is Python's `returncode`; [`spawn_error`] is Python's text for a shell that
//!   could not be started.
//! * [`signal_group`] and [`signal_process`] send a typed [`Signal`] with a system call (no
//!   `kill` process is spawned).
//! * [`Utf8Decoder`] decodes output as it arrives, without splitting a character across
//!   reads.
//! * [`Execution`] runs a started command to its end or its timeout: output as it comes
//!   (decoded), the exit code, and on timeout the group stopped the caller's way ([`Stop`])
//!   and what was still in the pipes.
//!
//! [`LocalWorkspace`]: super::LocalWorkspace

use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::pyfmt;

/// A signal sent to a command or its process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    /// `SIGINT`, what Ctrl-C sends.
    Interrupt,
    /// `SIGTERM`, a request to stop.
    Terminate,
    /// `SIGKILL`, which cannot be caught.
    Kill,
}

impl Signal {
    fn raw(self) -> rustix::process::Signal {
        match self {
            Signal::Interrupt => rustix::process::Signal::INT,
            Signal::Terminate => rustix::process::Signal::TERM,
            Signal::Kill => rustix::process::Signal::KILL,
        }
    }
}

/// Sends `signal` to every process of the group `pgid`. Group 0 (no group: the caller never
/// learnt the child's id) is refused with `InvalidInput` rather than signalling the caller's
/// own group; a group that is gone gives `ESRCH`.
pub fn signal_group(pgid: u32, signal: Signal) -> io::Result<()> {
    let pid = pid(pgid)?;
    rustix::process::kill_process_group(pid, signal.raw()).map_err(io::Error::from)
}

/// Sends `signal` to the process `pid` alone. Pid 0 is refused with `InvalidInput`.
pub fn signal_process(pid_: u32, signal: Signal) -> io::Result<()> {
    let pid = pid(pid_)?;
    rustix::process::kill_process(pid, signal.raw()).map_err(io::Error::from)
}

fn pid(raw: u32) -> io::Result<rustix::process::Pid> {
    i32::try_from(raw)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no process id"))
}

/// [`signal_group`] for cleanup paths: a group that is already gone is fine, anything else is
/// logged.
pub fn signal_group_quietly(pgid: u32, signal: Signal) {
    match signal_group(pgid, signal) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error()) => {}
        Err(err) if err.kind() == io::ErrorKind::InvalidInput => {}
        Err(err) => tracing::warn!(error = %err, pgid, ?signal, "could not signal a process group"),
    }
}

/// Starts `command` with `/bin/sh -c` in `cwd` (the process's own directory when `None`), with
/// the sanitized environment plus `extra_env`, in a new process group.
pub fn spawn_shell(
    command: &str,
    cwd: Option<&Path>,
    extra_env: &[(String, String)],
) -> io::Result<Child> {
    let mut shell = Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(command)
        .env_clear()
        .envs(super::sanitized_env_with(extra_env))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        shell.current_dir(cwd);
    }
    shell.spawn()
}

/// Python's text for a shell that could not be started in `cwd`: `[Errno 2] No such file or
/// directory: '/nope'`. Python names the directory when changing into it failed, else the
/// program.
pub fn spawn_error(err: &io::Error, cwd: Option<&Path>) -> String {
    let culprit = cwd
        .filter(|cwd| !cwd.is_dir() || err.kind() == io::ErrorKind::PermissionDenied)
        .unwrap_or(Path::new("/bin/sh"));
    pyfmt::os_error(err, culprit)
}

/// Python's `returncode`: the exit code, or minus the signal that ended the process.
pub fn exit_code(status: ExitStatus) -> i64 {
    status
        .code()
        .map(i64::from)
        .or_else(|| status.signal().map(|signal| -i64::from(signal)))
        .unwrap_or(-1)
}

/// Decodes a byte stream as UTF-8 piece by piece: invalid bytes become U+FFFD, and a
/// character split between two reads is decoded whole with the second.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    /// An incomplete UTF-8 sequence at the end of the last read.
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// The text of `bytes` (after what an earlier call held back), keeping back an incomplete
    /// sequence at the end.
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(bytes);
        let mut text = String::with_capacity(data.len());
        let mut rest = &data[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    return text;
                }
                Err(err) => {
                    let (valid, after) = rest.split_at(err.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(valid));
                    match err.error_len() {
                        Some(len) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = after.get(len..).unwrap_or_default();
                        }
                        None => {
                            self.pending = after.to_vec();
                            return text;
                        }
                    }
                }
            }
        }
    }

    /// The end of the stream: an incomplete sequence held back becomes U+FFFD.
    pub fn finish(&mut self) -> String {
        let pending = std::mem::take(&mut self.pending);
        String::from_utf8_lossy(&pending).into_owned()
    }
}

/// How long output is still read after a timed-out command was stopped, in case a process
/// outside its group holds the pipes open.
pub const DRAIN: Duration = Duration::from_secs(2);

/// Bytes read from a pipe at a time.
const READ_SIZE: usize = 64 * 1024;

/// How a command that ran out of time is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// `SIGKILL` to the group at once (the reference's `LocalWorkspace`).
    Kill,
    /// `SIGTERM` to the group, then `SIGKILL` if the shell is still there after `grace` (the
    /// reference's bash service).
    Terminate {
        /// How long the shell gets to exit after `SIGTERM`.
        grace: Duration,
    },
}

/// Sends `SIGTERM` to the group, then `SIGKILL` if `exited` has not turned `true` within
/// `grace`; gives up (logging) if it still has not after another `grace`.
pub async fn terminate_group(pgid: u32, mut exited: watch::Receiver<bool>, grace: Duration) {
    signal_group_quietly(pgid, Signal::Terminate);
    let wait = |mut exited: watch::Receiver<bool>| async move {
        tokio::time::timeout(grace, exited.wait_for(|done| *done))
            .await
            .is_ok_and(|res| res.is_ok())
    };
    if !wait(exited.clone()).await {
        signal_group_quietly(pgid, Signal::Kill);
        if !wait(exited.clone()).await {
            tracing::error!(pgid, "could not stop a command");
        }
    }
    let _ = exited.borrow_and_update();
}

/// Decoded output of a command, as it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text from standard output.
    Stdout(String),
    /// Text from standard error.
    Stderr(String),
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// Python's `returncode` ([`exit_code`]); -1 when it timed out or could not be waited for.
    pub exit_code: i64,
    /// The command ran out of time and was stopped.
    pub timed_out: bool,
    /// Standard output read after the end: the rest of an incomplete character, and on
    /// timeout what was still in the pipe.
    pub stdout: String,
    /// Standard error read after the end, as `stdout`.
    pub stderr: String,
}

/// One started command, run to its end (exit and end of file on both pipes) or its deadline.
#[derive(Debug)]
pub struct Execution {
    child: Child,
    pgid: u32,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    out: Utf8Decoder,
    err: Utf8Decoder,
    buf: Vec<u8>,
    status: Option<io::Result<ExitStatus>>,
    deadline: Option<Instant>,
    timed_out: bool,
    exited: watch::Sender<bool>,
}

impl Execution {
    /// Takes over `child` (started by [`spawn_shell`]) with `timeout` from now (`None`: no
    /// limit).
    pub fn new(mut child: Child, timeout: Option<Duration>) -> Self {
        Self {
            pgid: child.id().unwrap_or(0),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            out: Utf8Decoder::default(),
            err: Utf8Decoder::default(),
            buf: vec![0; 2 * READ_SIZE],
            status: None,
            deadline: timeout.and_then(|t| Instant::now().checked_add(t)),
            timed_out: false,
            exited: watch::Sender::new(false),
        }
    }

    /// The command's process group (the shell's pid; 0 if it was not known).
    pub fn pgid(&self) -> u32 {
        self.pgid
    }

    /// Turns `true` once the shell has exited (for [`terminate_group`] from elsewhere).
    pub fn exited(&self) -> watch::Receiver<bool> {
        self.exited.subscribe()
    }

    /// The next piece of output; `None` once the command is over or its time is up (then
    /// call [`finish`](Self::finish)).
    pub async fn next(&mut self) -> Option<Piece> {
        while !self.timed_out
            && (self.stdout.is_some() || self.stderr.is_some() || self.status.is_none())
        {
            let deadline = self.deadline;
            let sleep = async move {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            let (half, rest) = self.buf.split_at_mut(READ_SIZE);
            tokio::select! {
                read = read_some(&mut self.stdout, half) => match read {
                    Ok(n) if n > 0 => {
                        let text = self.out.decode(half.get(..n).unwrap_or_default());
                        if !text.is_empty() {
                            return Some(Piece::Stdout(text));
                        }
                    }
                    _ => self.stdout = None,
                },
                read = read_some(&mut self.stderr, rest) => match read {
                    Ok(n) if n > 0 => {
                        let text = self.err.decode(rest.get(..n).unwrap_or_default());
                        if !text.is_empty() {
                            return Some(Piece::Stderr(text));
                        }
                    }
                    _ => self.stderr = None,
                },
                done = self.child.wait(), if self.status.is_none() => {
                    self.status = Some(done);
                    self.exited.send_replace(true);
                }
                () = sleep => self.timed_out = true,
            }
        }
        None
    }

    /// How the command ended. On timeout the group is stopped as `stop` says and the pipes
    /// are read for up to [`DRAIN`] more; reading stops at once otherwise. Call after
    /// [`next`](Self::next) gave `None`.
    pub async fn finish(mut self, stop: Stop) -> Ended {
        let mut stdout = String::new();
        let mut stderr = String::new();
        let timed_out = self.timed_out;
        let exit_code = if timed_out {
            self.stop(stop).await;
            self.deadline = Instant::now().checked_add(DRAIN);
            self.timed_out = false;
            while let Some(piece) = self.next().await {
                match piece {
                    Piece::Stdout(text) => stdout.push_str(&text),
                    Piece::Stderr(text) => stderr.push_str(&text),
                }
            }
            -1
        } else {
            match &self.status {
                Some(Ok(status)) => exit_code(*status),
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "waiting for a command failed");
                    -1
                }
                None => -1,
            }
        };
        self.exited.send_replace(true);
        stdout.push_str(&self.out.finish());
        stderr.push_str(&self.err.finish());
        Ended {
            exit_code,
            timed_out,
            stdout,
            stderr,
        }
    }

    /// Stops a command that ran out of time.
    async fn stop(&mut self, stop: Stop) {
        if self.status.is_some() {
            // The shell is gone but something in its group holds the pipes open.
            signal_group_quietly(self.pgid, Signal::Kill);
            return;
        }
        match stop {
            Stop::Kill => {
                signal_group_quietly(self.pgid, Signal::Kill);
                if let Err(err) = self.child.kill().await {
                    tracing::debug!(error = %err, "killing the shell failed (it may have exited)");
                }
                self.status = Some(self.child.wait().await);
            }
            Stop::Terminate { grace } => {
                let exited = self.exited.subscribe();
                let child = &mut self.child;
                let sender = &self.exited;
                let waiter = async {
                    let status = child.wait().await;
                    sender.send_replace(true);
                    status
                };
                let both =
                    async { tokio::join!(waiter, terminate_group(self.pgid, exited, grace)) };
                match tokio::time::timeout(grace * 3, both).await {
                    Ok((status, ())) => self.status = Some(status),
                    Err(_) => tracing::error!(pgid = self.pgid, "a timed-out command did not die"),
                }
            }
        }
    }
}

async fn read_some<R: AsyncRead + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read(buf).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_between_reads_is_decoded_whole() {
        let mut decoder = Utf8Decoder::default();
        let bytes = "aé😀".as_bytes();
        assert_eq!(decoder.decode(&bytes[..2]), "a");
        assert_eq!(decoder.decode(&bytes[2..4]), "é");
        assert_eq!(decoder.decode(&bytes[4..6]), "");
        assert_eq!(decoder.decode(&bytes[6..]), "😀");
        assert_eq!(decoder.finish(), "");
        assert_eq!(decoder.decode(b"x\xffy\xe2\x82"), "x\u{FFFD}y");
        assert_eq!(decoder.finish(), "\u{FFFD}");
    }

    #[tokio::test]
    async fn signals_reach_the_whole_group() {
        let mut child = spawn_shell("sleep 30 & sleep 30; wait", None, &[]).expect("spawn");
        let pgid = child.id().expect("pid");
        signal_group(pgid, Signal::Terminate).expect("signal");
        let status = child.wait().await.expect("wait");
        assert_eq!(exit_code(status), -15);
        // Cleanup paths signal groups that may be gone already.
        signal_group_quietly(pgid, Signal::Kill);
        assert!(signal_group(0, Signal::Kill).is_err());
    }

    #[test]
    fn spawn_errors_name_the_directory_only_when_it_is_the_culprit() {
        let missing = io::Error::from_raw_os_error(2);
        assert_eq!(
            spawn_error(&missing, Some(Path::new("/nope/x"))),
            "[Errno 2] No such file or directory: '/nope/x'"
        );
        assert_eq!(
            spawn_error(&missing, Some(Path::new("/"))),
            "[Errno 2] No such file or directory: '/bin/sh'"
        );
        assert_eq!(
            spawn_error(&missing, None),
            "[Errno 2] No such file or directory: '/bin/sh'"
        );
    }
}
