//! The warm pool: dormant agent servers, booted ahead of demand, handed out at `/start`.
//!
//! A member is an agent-server workload started with `OH_DEFERRED_INIT=true` and its own
//! random bootstrap secret (`OH_SECRET_KEY`): it serves `/health` and `GET /api/init`, and
//! nothing else until initialised. A claim takes a member out of the pool (in memory, under a
//! lock: a member is handed out once) and `POST`s `/api/init` with the bootstrap secret in
//! `X-Init-API-Key` and the runtime's fresh session key and secret key in the body, so the
//! member serves exactly one session, with a key that existed nowhere before the claim. A
//! failed claim destroys the member; the start then goes cold. Members are single-use and
//! never survive a restart of this server (their bootstrap secrets live only in memory):
//! reconciliation removes them.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use oh_client::ServiceClient;
use oh_protocol::SecretString;
use oh_protocol::runtime::{BINARY_COMMAND, Command, SANDBOX_USER, StartRequest};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::backend::{Backend, Observed, POOL_LABEL, Spec};
use crate::config::Config;
use crate::sandboxes::{Flavour, Sandboxes};
use crate::store;

/// Header of the bootstrap secret on `POST /api/init`.
const INIT_KEY_HEADER: &str = "X-Init-API-Key";

/// How long a member may take to boot before it is discarded.
const MEMBER_BOOT: Duration = Duration::from_secs(120);

/// A member ready to be claimed.
#[derive(Debug)]
struct Member {
    handle: String,
    url: String,
    port: u16,
    bootstrap: SecretString,
    flavour: Flavour,
}

/// A member taken out of the pool, not yet initialised.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) handle: String,
    pub(crate) url: String,
    pub(crate) port: u16,
    bootstrap: SecretString,
}

impl Claim {
    /// Initialises the dormant server with the runtime's session key.
    pub(crate) async fn initialize(&self, session_key: &SecretString) -> Result<(), String> {
        let client = ServiceClient::new(&self.url)
            .and_then(|c| c.with_header(INIT_KEY_HEADER, &self.bootstrap))
            .map_err(|e| e.to_string())?
            .with_timeout(Duration::from_secs(30));
        let secret_key = store::random_hex(32).map_err(|e| e.to_string())?;
        let body = serde_json::json!({
            "session_api_keys": [session_key.expose()],
            "secret_key": secret_key,
        });
        client
            .post::<_, serde_json::Value>("/api/init", &body, None)
            .await
            .map(drop)
            .map_err(|e| format!("POST /api/init: {e}"))
    }
}

/// The pool of one server.
#[derive(Debug)]
pub(crate) struct Pool {
    size: usize,
    members: Mutex<Vec<Member>>,
    /// Handles of members being booted or held.
    owned: Mutex<Vec<String>>,
    wake: Notify,
    /// Set at shutdown: the refill loop ends after the boot in flight (a create is never
    /// cut off halfway, so nothing it made escapes [`Pool::drain`]).
    closing: std::sync::atomic::AtomicBool,
}

impl Pool {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            size: config.warm,
            members: Mutex::default(),
            owned: Mutex::default(),
            wake: Notify::new(),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn members(&self) -> std::sync::MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.owned.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a workload is a member of this pool (ready or booting).
    pub(crate) fn owns(&self, handle: &str) -> bool {
        self.owned().iter().any(|h| h == handle)
    }

    /// Ready members.
    pub(crate) fn ready(&self) -> usize {
        self.members().len()
    }

    /// Takes a ready member of this flavour out of the pool.
    pub(crate) fn take(&self, flavour: &Flavour) -> Option<Claim> {
        let mut members = self.members();
        let at = members.iter().position(|m| &m.flavour == flavour);
        let Some(at) = at else {
            if self.size > 0 && !members.is_empty() {
                tracing::info!(
                    ?flavour,
                    "warm pool miss: the start asks for another image, command, user or resources"
                );
            }
            return None;
        };
        let member = members.swap_remove(at);
        self.owned().retain(|h| h != &member.handle);
        Some(Claim {
            handle: member.handle,
            url: member.url,
            port: member.port,
            bootstrap: member.bootstrap,
        })
    }

    fn is_closing(&self) -> bool {
        self.closing.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Asks the refill loop to end after the boot in flight; [`Pool::run`] then returns.
    pub(crate) fn close(&self) {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Asks the refill loop to top the pool up.
    pub(crate) fn refill_soon(&self) {
        self.wake.notify_one();
    }

    /// Keeps the pool full until the task is dropped.
    pub(crate) async fn run(sandboxes: Arc<Sandboxes>) {
        let pool = &sandboxes.pool;
        if pool.size == 0 {
            return;
        }
        let flavour_plan = match sandboxes.plan(pool_request(&sandboxes.config)).await {
            Ok(plan) => plan,
            Err(e) => {
                tracing::error!("the warm pool cannot be planned: {}", e.detail);
                return;
            }
        };
        let mut backoff = Duration::from_secs(1);
        while !pool.is_closing() {
            let wanted = pool.size.saturating_sub(pool.ready());
            let room = sandboxes
                .config
                .max_sandboxes
                .saturating_sub(sandboxes.running() + pool.ready());
            if wanted > 0 && room > 0 {
                let mut plan = flavour_plan.clone();
                if sandboxes.config.host_network() {
                    // Each member needs its own host port.
                    match sandboxes.plan(pool_request(&sandboxes.config)).await {
                        Ok(p) => plan = p,
                        Err(e) => tracing::warn!("warm pool: {}", e.detail),
                    }
                }
                match boot(&sandboxes, &plan).await {
                    Ok(member) => {
                        tracing::info!(url = %member.url, "warm sandbox ready");
                        pool.members().push(member);
                        backoff = Duration::from_secs(1);
                        continue;
                    }
                    Err(_) if pool.is_closing() => break,
                    Err(e) => {
                        tracing::warn!(
                            retry_in = ?backoff,
                            "warm pool: booting a member failed: {e}"
                        );
                        let _ = tokio::time::timeout(backoff, pool.wake.notified()).await;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                        continue;
                    }
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), pool.wake.notified()).await;
        }
    }

    /// Removes every member (at shutdown).
    pub(crate) async fn drain(&self, backend: &dyn Backend) {
        let handles: Vec<String> = std::mem::take(&mut *self.owned());
        self.members().clear();
        for handle in handles {
            if let Err(e) = backend.remove(&handle).await {
                tracing::warn!("removing a warm sandbox: {e}");
            }
        }
    }
}

/// What the Python client asks for by default, with the server's image: the flavour pooled.
fn pool_request(config: &Config) -> StartRequest {
    StartRequest {
        image: config.image.clone(),
        command: Some(Command::Line(BINARY_COMMAND.to_owned())),
        working_dir: Some("/".to_owned()),
        environment: std::collections::BTreeMap::new(),
        session_id: "warm-pool".to_owned(),
        run_as_user: Some(SANDBOX_USER),
        run_as_group: None,
        fs_group: Some(SANDBOX_USER),
        image_pull_policy: None,
        runtime_class: None,
        resource_factor: None,
    }
}

/// Starts one dormant member and waits until its `/api/init` says `dormant`.
async fn boot(sandboxes: &Sandboxes, plan: &crate::sandboxes::Plan) -> Result<Member, String> {
    let bootstrap = SecretString::new(store::random_hex(32).map_err(|e| e.to_string())?);
    let id = store::random_hex(12).map_err(|e| e.to_string())?;
    let mut spec: Spec = sandboxes.spec(&format!("pool-{id}"), plan, &bootstrap);
    // Not the session key: the bootstrap secret, and the deferred-init switch.
    spec.env.retain(|(k, _)| k != "OH_SESSION_API_KEYS_0");
    spec.env
        .push(("OH_DEFERRED_INIT".to_owned(), SecretString::new("true")));
    spec.env
        .push(("OH_SECRET_KEY".to_owned(), bootstrap.clone()));
    spec.labels.insert(POOL_LABEL.to_owned(), "1".to_owned());
    spec.name = format!("ohsb-pool-{id}");
    // Without a session key the server would bind loopback only.
    let argv = if spec.entrypoint.is_some() {
        spec.entrypoint.as_mut()
    } else {
        spec.cmd.as_mut()
    };
    if let Some(argv) = argv {
        argv.extend(["--host".to_owned(), "0.0.0.0".to_owned()]);
    }
    let handle = sandboxes
        .backend
        .create(&spec)
        .await
        .map_err(|e| e.to_string())?;
    sandboxes.pool.owned().push(handle.clone());
    let booted = if sandboxes.pool.is_closing() {
        Err("shutting down".to_owned())
    } else {
        wait_dormant(&sandboxes.pool, sandboxes.backend.as_ref(), &handle).await
    };
    match booted {
        Ok((url, port)) => Ok(Member {
            handle,
            url,
            port,
            bootstrap,
            flavour: plan.flavour(),
        }),
        Err(e) => {
            sandboxes.pool.owned().retain(|h| h != &handle);
            let _ = sandboxes.backend.remove(&handle).await;
            Err(e)
        }
    }
}

async fn wait_dormant(
    pool: &Pool,
    backend: &dyn Backend,
    handle: &str,
) -> Result<(String, u16), String> {
    let deadline = Instant::now() + MEMBER_BOOT;
    let mut pause = Duration::from_millis(10);
    loop {
        match backend.observe(handle).await {
            Ok(Observed::Running {
                endpoint: Some(endpoint),
                ..
            }) => {
                let url = endpoint.url();
                if let Ok(client) = ServiceClient::new(&url) {
                    let client = client.with_timeout(Duration::from_secs(2));
                    if let Ok(state) = client.get::<serde_json::Value>("/api/init").await {
                        match state.get("state").and_then(|s| s.as_str()) {
                            Some("dormant") => return Ok((url, endpoint.port)),
                            other => {
                                return Err(format!(
                                    "the member is not dormant (state {other:?}): does the image support deferred init?"
                                ));
                            }
                        }
                    }
                }
            }
            Ok(Observed::Running { endpoint: None, .. } | Observed::Pending) => {}
            Ok(other) => return Err(format!("the member is not running: {other:?}")),
            Err(e) => return Err(e.to_string()),
        }
        if Instant::now() >= deadline {
            return Err(format!("not dormant within {MEMBER_BOOT:?}"));
        }
        if pool.is_closing() {
            return Err("shutting down".to_owned());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}
