//! Everything the project's crates log in a test process, captured for assertions (a key
//! or a secret must never show up).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// What the `oh_*` and `openhands` crates log (every level) once [`Logs::global`] was first
/// called. A global subscriber, not a per-test `set_default`: with tests on parallel
/// threads, per-thread subscribers miss events (callsite interest is cached process-wide).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logs")
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The crates captured, at every level.
const FILTER: &str = "oh_agent=trace,oh_client=trace,oh_server=trace,oh_sandbox_server=trace,\
                      oh_workspace_api=trace,oh_workspace_cloud=trace,\
                      oh_workspace_docker=trace,openhands=trace";

impl Logs {
    /// The process's capture, installed as the global subscriber on first use.
    ///
    /// # Panics
    /// If another global subscriber was installed first.
    pub fn global() -> &'static Self {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Self::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(FILTER)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            #[allow(
                clippy::expect_used,
                reason = "test support: a second subscriber is a bug"
            )]
            tracing::subscriber::set_global_default(subscriber)
                .expect("a global subscriber was installed before Logs::global");
            logs
        })
    }

    /// Every line logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// The lines that mention `needle`.
    pub fn lines_with(&self, needle: &str) -> String {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .collect::<Vec<_>>()
            .join("\n")
    }
}
