//! Bounded blocking work of the workspace routes (`files`, `git`).
//!
//! tokio's blocking pool is shared by the whole process (512 threads by default): bash event
//! storage, conversation persistence and every `tokio::fs` call use it. A filesystem call
//! that never returns (a FIFO opened for reading, a hung network filesystem) pins its thread
//! for good, so without a bound a client could fill the pool and stall every route that needs
//! it. Each family of blocking work therefore runs under its own semaphore, and a permit is
//! released only when the blocking call itself returns: a family can pin at most its own
//! number of threads, whatever hangs. A request waits at most [`QUEUE_WAIT`] for a permit
//! (503 when none frees up) and at most [`CALL_TIMEOUT`] for the call (504; the call keeps its
//! thread and its permit until it returns). The caps are per process, as the pool is.
//!
//! Files are only opened for their content through [`oh_agent::regular_file`], which never
//! waits on a FIFO; the bound is the second line of defence.

use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{ApiError, ApiResult};

/// How long a request waits for a permit of its family.
pub(crate) const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// How long a request waits for its blocking call.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Blocking calls of `/api/file/*` running at once.
pub(crate) const FILES_PERMITS: usize = 32;

/// Blocking calls of `/api/git/*` (path resolution, reading the file to diff) at once.
pub(crate) const GIT_PERMITS: usize = 16;

static FILES: Semaphore = Semaphore::const_new(FILES_PERMITS);
static GIT: Semaphore = Semaphore::const_new(GIT_PERMITS);

/// A family of blocking work, each with its own cap.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Family {
    /// Upload, download and directory creation.
    Files,
    /// The git routes' own filesystem work (not the git processes, see `git.rs`).
    Git,
}

impl Family {
    fn semaphore(self) -> &'static Semaphore {
        match self {
            Self::Files => &FILES,
            Self::Git => &GIT,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Files => "file",
            Self::Git => "git",
        }
    }
}

/// Waits at most `wait` for a permit of `family`.
async fn permit(family: Family, wait: Duration) -> ApiResult<SemaphorePermit<'static>> {
    match tokio::time::timeout(wait, family.semaphore().acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        // The semaphores are never closed; treat it as busy all the same.
        Ok(Err(_)) | Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "Too many {} operations in progress; try again later",
                family.name()
            ),
        )),
    }
}

/// Runs `op` on the blocking pool under a permit of `family`, bounded as the module docs say.
pub(crate) async fn run<T, F>(family: Family, op: F) -> ApiResult<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    run_within(family, QUEUE_WAIT, CALL_TIMEOUT, op).await
}

async fn run_within<T, F>(family: Family, wait: Duration, timeout: Duration, op: F) -> ApiResult<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let permit = permit(family, wait).await?;
    let task = tokio::task::spawn_blocking(move || {
        // Held until the call returns, not until the request gives up.
        let _permit = permit;
        op()
    });
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(ApiError::internal(format!(
            "a blocking {} operation failed: {err}",
            family.name()
        ))),
        Err(_) => {
            tracing::warn!(
                family = family.name(),
                "a blocking operation is still running after {timeout:?}"
            );
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("The {} operation timed out", family.name()),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A call that never returns keeps its permit: the family cannot pin more threads than
    /// its cap, and a request beyond the cap is refused with 503 instead of queueing forever.
    #[tokio::test]
    async fn stuck_calls_keep_their_permits_and_the_rest_is_refused() {
        let short = Duration::from_millis(50);
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = std::sync::Arc::new(std::sync::Mutex::new(released));
        let mut stuck = Vec::new();
        for _ in 0..GIT_PERMITS {
            let released = std::sync::Arc::clone(&released);
            stuck.push(tokio::spawn(run_within(
                Family::Git,
                short,
                short,
                move || {
                    let _ = released.lock().unwrap().recv();
                },
            )));
        }
        for reply in futures::future::join_all(stuck).await {
            assert_eq!(
                reply.unwrap().unwrap_err().status(),
                StatusCode::GATEWAY_TIMEOUT
            );
        }
        let refused = run_within(Family::Git, short, short, || ())
            .await
            .unwrap_err();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Another family is not affected.
        run_within(Family::Files, short, short, || ())
            .await
            .unwrap();
        drop(release);
        // The permits come back once the calls return.
        let back = run_within(Family::Git, Duration::from_secs(20), short, || ()).await;
        assert!(back.is_ok(), "{back:?}");
    }
}
