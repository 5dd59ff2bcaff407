//! [`ReadinessWait`]: how a client of a sandbox service waits until a sandbox's agent server
//! is ready.

use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::{ServiceClient, error_chain};
use crate::error::Result;
use crate::workspace::RemoteWorkspace;

/// First and longest pause between two checks.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// Time allowed for the agent server's `/health` probe.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The wait of a runtime-API or Cloud client until a sandbox runs and its agent server
/// answers: one budget for the whole wait, status calls cut at its deadline, transient
/// failures of those calls (no answer, a timeout, 429, 5xx) retried at the next check, and
/// pauses that start at 50 ms and double up to 2 s, so a sandbox that is ready at once
/// costs no sleep.
///
/// The caller reads each status answer (the service's own format) and decides; the wait
/// keeps what the last check saw ([`saw`](Self::saw)) for the error when the budget runs
/// out ([`WaitExpired`]).
///
/// ```no_run
/// # async fn demo(api: oh_client::ServiceClient) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use oh_client::ReadinessWait;
///
/// let mut wait = ReadinessWait::new(Duration::from_secs(300));
/// loop {
///     if let Some(status) = wait.status::<serde_json::Value>(&api, "/sessions/s1").await? {
///         if status["pod_status"] == "ready" {
///             break;
///         }
///         wait.saw(format!("pod status {}", status["pod_status"]));
///     }
///     wait.pause().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ReadinessWait {
    began: Instant,
    deadline: Instant,
    pause: Duration,
    attempt: u32,
    last_state: String,
}

/// A [`ReadinessWait`] whose budget ran out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not ready after {waited:?} (last state: {last_state})")]
#[non_exhaustive]
pub struct WaitExpired {
    /// What the last check saw (a status, `/health` not answering, a failed call).
    pub last_state: String,
    /// How long it waited.
    pub waited: Duration,
}

impl ReadinessWait {
    /// A wait of at most `budget`, starting now.
    pub fn new(budget: Duration) -> Self {
        let began = Instant::now();
        Self {
            began,
            deadline: began + budget,
            pause: FIRST_PAUSE,
            attempt: 0,
            last_state: String::new(),
        }
    }

    /// The number of the current check (1 during the first; 0 before it).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The time since the wait began.
    pub fn elapsed(&self) -> Duration {
        self.began.elapsed()
    }

    /// What is left of the budget (zero once it is spent).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Records what this check saw; the error names the last one if the budget runs out.
    pub fn saw(&mut self, state: impl Into<String>) {
        self.last_state = state.into();
    }

    /// Starts the next check with its status call, `GET {path}` within what is left of the
    /// budget. `Ok(Some(answer))` to read; `Ok(None)` when the call was cut by the deadline
    /// or failed transiently (logged, and recorded as the last state unless an earlier check
    /// saw something: that says more); any other failure is returned and ends the wait.
    pub async fn status<T: DeserializeOwned>(
        &mut self,
        api: &ServiceClient,
        path: &str,
    ) -> Result<Option<T>> {
        self.attempt += 1;
        match tokio::time::timeout(self.remaining(), api.get::<T>(path)).await {
            Err(_) => {
                if self.attempt == 1 {
                    self.last_state = format!("GET {path} did not answer in time");
                }
                Ok(None)
            }
            Ok(Err(e)) if e.is_transient() => {
                tracing::warn!(
                    path,
                    attempt = self.attempt,
                    "status call failed, retrying: {}",
                    error_chain(&e)
                );
                self.last_state = format!("GET {path} failed: {}", error_chain(&e));
                Ok(None)
            }
            Ok(Err(e)) => Err(e),
            Ok(Ok(answer)) => Ok(Some(answer)),
        }
    }

    /// Whether `remote` answers `/health` within what is left of the budget (at most 5 s).
    pub async fn healthy(&self, remote: &RemoteWorkspace) -> bool {
        let within = self.remaining().min(HEALTH_TIMEOUT);
        tokio::time::timeout(within, remote.alive())
            .await
            .unwrap_or(false)
    }

    /// Sleeps until the next check, or returns [`WaitExpired`] with the last state when the
    /// budget is spent. A pause that would reach the deadline sleeps until it and ends the
    /// wait: a check started with no time left could not be answered.
    pub async fn pause(&mut self) -> Result<(), WaitExpired> {
        let now = Instant::now();
        if now + self.pause < self.deadline {
            tracing::debug!(wait_ms = self.pause.as_millis() as u64, "waiting");
            tokio::time::sleep(self.pause).await;
            self.pause = (self.pause * 2).min(MAX_PAUSE);
            return Ok(());
        }
        tokio::time::sleep_until(self.deadline).await;
        Err(WaitExpired {
            last_state: std::mem::take(&mut self.last_state),
            waited: self.began.elapsed(),
        })
    }
}
