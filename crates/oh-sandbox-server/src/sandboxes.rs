//! The sandbox lifecycle: start, readiness, pause, resume, stop, reconciliation with the
//! engine, idle reaping. Records (intent and last observation) live in memory and on disk;
//! the engine is the truth about what runs.
//!
//! Rules:
//! * a record is on disk before the engine is asked to create anything, so every workload
//!   this server creates has a record or is an orphan it removes;
//! * one operation at a time per session (a per-session async lock);
//! * a start runs in its own task: a client that hangs up does not stop it halfway, and a
//!   failed start removes its workload and keeps the record (`error`, with the logs);
//! * records are written in the order they change (one writer at a time, latest snapshot).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use oh_protocol::SecretString;
use oh_protocol::runtime::{
    AGENT_SERVER_PORT, Command, PodStatus, PullPolicy, Runtime, RuntimeStatus, SANDBOX_USER,
    StartRequest,
};
use tokio::time::Instant;

use crate::backend::{Backend, MAX_RESTARTS, Observed, RUNTIME_LABEL, SESSION_LABEL, Spec};
use crate::config::Config;
use crate::error::{ApiError, BackendError};
use crate::pool::{Claim, Pool};
use crate::store::{self, Fault, PauseKind, Phase, Record, Store};

/// Variables a client may not set: they carry the sandbox's own keys and boot mode.
const RESERVED_ENV: &[&str] = &[
    "SESSION_API_KEY",
    "OH_SECRET_KEY",
    "OH_DEFERRED_INIT",
    "OPENHANDS_AGENT_SERVER_CONFIG_PATH",
];

/// Longest session id accepted.
const MAX_SESSION_ID: usize = 200;
/// Most environment variables in one start.
const MAX_ENV: usize = 512;
/// Most bytes of environment in one start.
const MAX_ENV_BYTES: usize = 256 * 1024;

/// Everything a start needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) session_id: String,
    pub(crate) image: String,
    pub(crate) pull: PullPolicy,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) env: Vec<(String, SecretString)>,
    pub(crate) working_dir: Option<String>,
    pub(crate) user: String,
    pub(crate) port: u16,
    pub(crate) resource_factor: u32,
    pub(crate) runtime: Option<String>,
    /// The Cloud API user asking (`None` for the runtime API).
    pub(crate) owner: Option<String>,
}

impl Plan {
    /// The warm pool's flavour of this start, when it can be served from the pool: no custom
    /// environment, the pool's image, command, user and resources.
    pub(crate) fn flavour(&self) -> Flavour {
        Flavour {
            image: self.image.clone(),
            entrypoint: self.entrypoint.as_deref().map(without_port),
            cmd: self.cmd.as_deref().map(without_port),
            working_dir: self.working_dir.clone(),
            user: self.user.clone(),
            resource_factor: self.resource_factor,
            runtime: self.runtime.clone(),
        }
    }
}

/// What is fixed when a container is created: a pooled container serves only starts that
/// ask for exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flavour {
    pub(crate) image: String,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) working_dir: Option<String>,
    pub(crate) user: String,
    pub(crate) resource_factor: u32,
    pub(crate) runtime: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    records: HashMap<String, Record>,
    /// Session id → runtime id of its latest runtime.
    by_session: HashMap<String, String>,
}

/// All sandboxes of this server.
#[derive(Debug)]
pub(crate) struct Sandboxes {
    pub(crate) config: Arc<Config>,
    pub(crate) backend: Arc<dyn Backend>,
    store: Store,
    inner: Mutex<Inner>,
    session_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    save_lock: tokio::sync::Mutex<()>,
    changed: tokio::sync::watch::Sender<u64>,
    pub(crate) pool: Pool,
}

impl Sandboxes {
    pub(crate) fn new(
        config: Arc<Config>,
        backend: Arc<dyn Backend>,
        store: Store,
        records: Vec<Record>,
    ) -> Self {
        let mut inner = Inner::default();
        for record in records {
            inner
                .by_session
                .insert(record.session_id.clone(), record.runtime_id.clone());
            inner.records.insert(record.runtime_id.clone(), record);
        }
        let pool = Pool::new(&config);
        Self {
            config,
            backend,
            store,
            inner: Mutex::new(inner),
            session_locks: Mutex::default(),
            save_lock: tokio::sync::Mutex::new(()),
            changed: tokio::sync::watch::Sender::new(0),
            pool,
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn session_lock(&self, session_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .session_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Forget locks nobody holds, so the map does not grow with every session ever seen.
        if locks.len() > 1024 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        Arc::clone(locks.entry(session_id.to_owned()).or_default())
    }

    // ---- reads ----

    pub(crate) fn by_session(&self, session_id: &str) -> Option<Record> {
        let inner = self.inner();
        let id = inner.by_session.get(session_id)?;
        inner.records.get(id).cloned()
    }

    pub(crate) fn by_runtime(&self, runtime_id: &str) -> Option<Record> {
        self.inner().records.get(runtime_id).cloned()
    }

    /// The live runtime whose session key this is, compared in constant time with every
    /// live runtime's key.
    pub(crate) fn by_session_key(&self, presented: &str) -> Option<Record> {
        let inner = self.inner();
        let mut found = None;
        for record in inner.records.values().filter(|r| r.phase.is_live()) {
            let key = record.session_api_key.expose().as_bytes();
            let given = presented.as_bytes();
            let mut diff = u8::from(key.len() != given.len());
            for (i, k) in key.iter().enumerate() {
                diff |= k ^ given.get(i).copied().unwrap_or(0);
            }
            if diff == 0 {
                found = Some(record);
            }
        }
        found.cloned()
    }

    /// Runtimes that are starting, running or paused, oldest first.
    pub(crate) fn live(&self) -> Vec<Record> {
        let mut live: Vec<Record> = self
            .inner()
            .records
            .values()
            .filter(|r| r.phase.is_live())
            .cloned()
            .collect();
        live.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        live
    }

    /// Every sandbox a Cloud API user owns, in no particular order.
    pub(crate) fn owned_by(&self, user_id: &str) -> Vec<Record> {
        self.inner()
            .records
            .values()
            .filter(|r| r.owner.as_deref() == Some(user_id))
            .cloned()
            .collect()
    }

    /// Sandboxes holding engine resources (what the capacity counts).
    fn running_count(inner: &Inner) -> usize {
        inner
            .records
            .values()
            .filter(|r| match r.phase {
                Phase::Starting | Phase::Running => true,
                Phase::Paused => r.paused_by == Some(PauseKind::Freeze),
                Phase::Error | Phase::Stopped => false,
            })
            .count()
    }

    pub(crate) fn running(&self) -> usize {
        Self::running_count(&self.inner())
    }

    /// The runtime-API view of a record.
    pub(crate) fn runtime(&self, record: &Record) -> Runtime {
        let crashing = record.restart_count >= 2;
        let (status, pod_status) = match record.phase {
            Phase::Starting if crashing => (RuntimeStatus::Starting, PodStatus::CrashLoopBackOff),
            Phase::Starting if record.url.is_some() => {
                (RuntimeStatus::Starting, PodStatus::Running)
            }
            Phase::Starting => (RuntimeStatus::Starting, PodStatus::Pending),
            Phase::Running => (RuntimeStatus::Running, PodStatus::Ready),
            Phase::Paused => (RuntimeStatus::Paused, PodStatus::Paused),
            Phase::Error if crashing => (RuntimeStatus::Error, PodStatus::CrashLoopBackOff),
            Phase::Error => (RuntimeStatus::Error, PodStatus::Failed),
            Phase::Stopped => (RuntimeStatus::Stopped, PodStatus::NotFound),
        };
        let mut events = Vec::new();
        if let Some(reason) = &record.reason {
            events
                .push(serde_json::json!({ "type": record_phase(record.phase), "message": reason }));
        }
        let pod_logs = match (&record.reason, &record.pod_logs) {
            (Some(reason), Some(logs)) if record.phase == Phase::Error => {
                Some(format!("{reason}\n{logs}"))
            }
            (Some(reason), None) if record.phase == Phase::Error => Some(reason.clone()),
            (_, logs) => logs.clone(),
        };
        // A runtime that is gone has no address and no key to hand out any more.
        let gone = matches!(record.phase, Phase::Stopped | Phase::Error);
        Runtime {
            runtime_id: record.runtime_id.clone(),
            session_id: record.session_id.clone(),
            url: if gone { None } else { record.url.clone() },
            session_api_key: (!gone).then(|| record.session_api_key.clone()),
            status,
            pod_status,
            restart_count: record.restart_count,
            restart_reasons: record.restart_reasons.clone(),
            container_statuses: Vec::new(),
            events,
            pod_logs,
            work_hosts: std::collections::BTreeMap::new(),
            image: record.image.clone(),
        }
    }

    // ---- writes ----

    /// Changes a record, writes it, and wakes whoever waits on a change.
    async fn update(&self, runtime_id: &str, change: impl FnOnce(&mut Record)) -> Option<Record> {
        let snapshot = {
            let mut inner = self.inner();
            let record = inner.records.get_mut(runtime_id)?;
            change(record);
            record.changed_at = store::now();
            record.clone()
        };
        self.persist(runtime_id).await;
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        Some(snapshot)
    }

    /// Writes the latest state of a record (or deletes its file when it is gone).
    async fn persist(&self, runtime_id: &str) {
        let _one_writer = self.save_lock.lock().await;
        let latest = self.inner().records.get(runtime_id).cloned();
        let store = self.store.clone();
        let id = runtime_id.to_owned();
        let written = tokio::task::spawn_blocking(move || match latest {
            Some(record) => store.save(&record),
            None => store.delete(&id),
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(runtime_id, "writing the sandbox record: {e}"),
            Err(e) => tracing::error!(runtime_id, "writing the sandbox record: {e}"),
        }
    }

    /// Waits until the runtime leaves `starting` or `budget` passes; the record then.
    ///
    /// A starting runtime without a URL yet (an image being pulled) is waited for longer, up
    /// to `startup_deadline`: the clients cannot use an answer without a URL (the Python
    /// client fails on it, printing the whole answer, key included).
    pub(crate) async fn settled(&self, runtime_id: &str, budget: Duration) -> Option<Record> {
        let start = Instant::now();
        let deadline = start + budget;
        let hard_deadline = start + budget.max(self.config.startup_deadline);
        let mut changes = self.changed.subscribe();
        loop {
            let record = self.by_runtime(runtime_id)?;
            if record.phase != Phase::Starting {
                return Some(record);
            }
            let until = if record.url.is_some() {
                deadline
            } else {
                hard_deadline
            };
            if Instant::now() >= until {
                return Some(record);
            }
            // Wake on every change; re-check at the deadline in any case.
            let _ = tokio::time::timeout_at(until, changes.changed()).await;
        }
    }

    // ---- start ----

    /// Checks a start request and works out what to run.
    pub(crate) async fn plan(&self, request: StartRequest) -> Result<Plan, ApiError> {
        let session_id = request.session_id.trim().to_owned();
        if session_id.is_empty() || session_id.len() > MAX_SESSION_ID {
            return Err(ApiError::invalid(format!(
                "session_id must have 1 to {MAX_SESSION_ID} characters"
            )));
        }
        if !session_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ApiError::invalid(
                "session_id may hold only letters, digits, '-', '_' and '.'",
            ));
        }
        let image = request.image.trim().to_owned();
        if image.is_empty()
            || image.len() > 512
            || image.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ApiError::invalid(
                "image must be a non-empty image reference without spaces",
            ));
        }
        let resource_factor = request.resource_factor.unwrap_or(1);
        if !matches!(resource_factor, 1 | 2 | 4 | 8) {
            return Err(ApiError::invalid("resource_factor must be 1, 2, 4 or 8"));
        }
        let uid = request.run_as_user.unwrap_or(SANDBOX_USER);
        let gid = request.run_as_group.or(request.fs_group).unwrap_or(uid);
        if uid == 0 || gid == 0 {
            return Err(ApiError::invalid(
                "sandboxes do not run as root (run_as_user / run_as_group 0)",
            ));
        }
        let working_dir = match request.working_dir.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(dir) if dir.starts_with('/') && !dir.contains('\0') && dir.len() <= 4096 => {
                Some(dir.to_owned())
            }
            Some(_) => return Err(ApiError::invalid("working_dir must be an absolute path")),
        };
        let env = check_env(&request.environment)?;
        let (mut entrypoint, mut cmd) = match request.command {
            None => (
                None,
                Some(vec!["--port".to_owned(), AGENT_SERVER_PORT.to_string()]),
            ),
            Some(Command::Line(line)) => {
                let argv = shlex::split(&line)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| ApiError::invalid("command is empty or badly quoted"))?;
                (Some(argv), Some(Vec::new()))
            }
            Some(Command::Argv(argv)) => (None, Some(argv)),
        };
        for argv in [&entrypoint, &cmd].into_iter().flatten() {
            if argv.len() > 256 || argv.iter().any(|a| a.contains('\0') || a.len() > 8192) {
                return Err(ApiError::invalid(
                    "command has too many or too long arguments",
                ));
            }
        }
        let mut port = port_of(entrypoint.iter().chain(cmd.iter()).flatten())?;
        if self.config.host_network() {
            // All sandboxes share the host's ports: each gets its own.
            let free = free_port()
                .await
                .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
            for argv in [&mut entrypoint, &mut cmd].into_iter().flatten() {
                set_port(argv, free);
            }
            if port_of(entrypoint.iter().chain(cmd.iter()).flatten())? != free {
                cmd.get_or_insert_with(Vec::new)
                    .extend(["--port".to_owned(), free.to_string()]);
            }
            port = free;
        }
        let runtime = match request.runtime_class.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) if self.backend.has_runtime(name).await => Some(name.to_owned()),
            Some(name) => {
                tracing::info!(
                    session_id,
                    runtime_class = name,
                    "the engine has no such runtime: using its default"
                );
                None
            }
        };
        Ok(Plan {
            session_id,
            image,
            pull: request.image_pull_policy.unwrap_or_default(),
            entrypoint,
            cmd,
            env,
            working_dir,
            user: format!("{uid}:{gid}"),
            port,
            resource_factor,
            runtime,
            owner: None,
        })
    }

    /// `POST /start`: the live runtime of this session, or a new one (from the warm pool
    /// when it fits). Answers once it is healthy, failed, or `start_wait` passed.
    pub(crate) async fn start(self: &Arc<Self>, plan: Plan) -> Result<Record, ApiError> {
        let runtime_id = self.launch(plan).await?;
        self.settled(&runtime_id, self.config.start_wait)
            .await
            .ok_or_else(|| ApiError::not_found("runtime"))
    }

    /// Starts the runtime of a start request (or finds the live one of its session) and
    /// returns its id at once; it may still be starting.
    pub(crate) async fn launch(self: &Arc<Self>, plan: Plan) -> Result<String, ApiError> {
        let lock = self.session_lock(&plan.session_id);
        let guard = lock.lock().await;
        if let Some(existing) = self.by_session(&plan.session_id)
            && existing.phase.is_live()
        {
            return Ok(existing.runtime_id);
        }
        let runtime_id = store::random_hex(12).map_err(internal)?;
        let key = SecretString::new(store::random_hex(32).map_err(internal)?);
        let now = store::now();
        let record = Record {
            runtime_id: runtime_id.clone(),
            session_id: plan.session_id.clone(),
            image: plan.image.clone(),
            phase: Phase::Starting,
            handle: None,
            session_api_key: key.clone(),
            url: None,
            container_port: plan.port,
            paused_by: None,
            created_at: now,
            changed_at: now,
            restart_count: 0,
            restart_reasons: Vec::new(),
            reason: None,
            pod_logs: None,
            from_pool: false,
            fault: None,
            owner: plan.owner.clone(),
        };
        {
            let mut inner = self.inner();
            let running = Self::running_count(&inner);
            if running >= self.config.max_sandboxes {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "at capacity: {running} of {} sandboxes are running; stop or pause one",
                        self.config.max_sandboxes
                    ),
                ));
            }
            inner.records.insert(runtime_id.clone(), record);
            inner
                .by_session
                .insert(plan.session_id.clone(), runtime_id.clone());
        }
        self.persist(&runtime_id).await;
        tracing::info!(
            session_id = %plan.session_id,
            runtime_id,
            image = %plan.image,
            env = ?plan.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            "starting a sandbox"
        );
        if plan.env.is_empty()
            && let Some(claim) = self.pool.take(&plan.flavour())
        {
            match self.claim(&runtime_id, &key, claim).await {
                Ok(()) => {
                    drop(guard);
                    self.pool.refill_soon();
                    return Ok(runtime_id);
                }
                Err(e) => {
                    tracing::warn!(
                        runtime_id,
                        "claiming a warm sandbox failed, starting cold: {e}"
                    );
                }
            }
            self.pool.refill_soon();
        }
        let spec = self.spec(&runtime_id, &plan, &key);
        let this = Arc::clone(self);
        let id = runtime_id.clone();
        tokio::spawn(async move { this.bring_up(id, spec).await });
        drop(guard);
        Ok(runtime_id)
    }

    /// Hands a warm member to a runtime: its key goes to the dormant server's `/api/init`.
    async fn claim(
        &self,
        runtime_id: &str,
        key: &SecretString,
        claim: Claim,
    ) -> Result<(), String> {
        let initialized = claim.initialize(key).await;
        if let Err(e) = initialized {
            if let Err(removal) = self.backend.remove(&claim.handle).await {
                tracing::warn!("removing a failed warm sandbox: {removal}");
            }
            return Err(e);
        }
        let still_wanted = self
            .update(runtime_id, |r| {
                if r.phase == Phase::Starting {
                    r.handle = Some(claim.handle.clone());
                    r.url = Some(claim.url.clone());
                    r.container_port = claim.port;
                    r.from_pool = true;
                    r.phase = Phase::Running;
                }
            })
            .await
            .is_some_and(|r| r.phase == Phase::Running);
        if !still_wanted {
            // Stopped while being claimed.
            let _ = self.backend.remove(&claim.handle).await;
        }
        Ok(())
    }

    pub(crate) fn spec(&self, runtime_id: &str, plan: &Plan, key: &SecretString) -> Spec {
        let mut env = plan.env.clone();
        env.push(("OH_SESSION_API_KEYS_0".to_owned(), key.clone()));
        let labels = HashMap::from([
            (RUNTIME_LABEL.to_owned(), runtime_id.to_owned()),
            (SESSION_LABEL.to_owned(), plan.session_id.clone()),
        ]);
        Spec {
            name: format!("ohsb-{runtime_id}"),
            image: plan.image.clone(),
            pull: plan.pull,
            entrypoint: plan.entrypoint.clone(),
            cmd: plan.cmd.clone(),
            env,
            working_dir: plan.working_dir.clone(),
            user: plan.user.clone(),
            labels,
            port: plan.port,
            resource_factor: plan.resource_factor,
            runtime: plan.runtime.clone(),
        }
    }

    /// Creates the workload of a starting runtime and supervises it until it is healthy.
    async fn bring_up(self: Arc<Self>, runtime_id: String, spec: Spec) {
        let handle = match self.backend.create(&spec).await {
            Ok(handle) => handle,
            Err(e) => {
                tracing::warn!(runtime_id, "sandbox start failed: {e}");
                let fault = match e {
                    BackendError::ImageMissing { .. } => Fault::Client,
                    BackendError::Unavailable(_) => Fault::Engine,
                    BackendError::Engine(_) | BackendError::Other(_) => Fault::Sandbox,
                };
                self.fail_as(&runtime_id, None, e.to_string(), None, fault)
                    .await;
                return;
            }
        };
        let kept = self
            .update(&runtime_id, |r| {
                if r.phase == Phase::Starting {
                    r.handle = Some(handle.clone());
                }
            })
            .await
            .is_some_and(|r| r.handle.as_deref() == Some(handle.as_str()));
        if !kept {
            // Stopped (or forgotten) while it was being created.
            let _ = self.backend.remove(&handle).await;
            return;
        }
        let deadline = Instant::now() + self.config.startup_deadline;
        self.supervise(&runtime_id, &handle, deadline).await;
    }

    /// Polls the engine and the agent server's `/health` until the runtime is healthy,
    /// failed, no longer starting, or `deadline` passes (then it fails).
    async fn supervise(&self, runtime_id: &str, handle: &str, deadline: Instant) {
        let mut pause = Duration::from_millis(10);
        loop {
            let Some(record) = self.by_runtime(runtime_id) else {
                return;
            };
            if record.phase != Phase::Starting || record.handle.as_deref() != Some(handle) {
                return;
            }
            match self.backend.observe(handle).await {
                Ok(Observed::Running {
                    endpoint: Some(endpoint),
                    restarts,
                }) => {
                    let url = endpoint.url();
                    if record.url.as_deref() != Some(url.as_str())
                        || record.restart_count != restarts
                    {
                        self.update(runtime_id, |r| {
                            r.url = Some(url.clone());
                            r.restart_count = restarts;
                        })
                        .await;
                    }
                    if healthy(&url).await {
                        tracing::info!(runtime_id, url, "sandbox ready");
                        self.update(runtime_id, |r| {
                            if r.phase == Phase::Starting {
                                r.phase = Phase::Running;
                                r.reason = None;
                            }
                        })
                        .await;
                        return;
                    }
                }
                Ok(Observed::Running { endpoint: None, .. } | Observed::Pending) => {}
                Ok(Observed::Restarting { restarts, reasons }) => {
                    self.update(runtime_id, |r| {
                        r.restart_count = restarts;
                        r.restart_reasons.clone_from(&reasons);
                    })
                    .await;
                    if i64::from(restarts) >= MAX_RESTARTS {
                        self.fail(
                            runtime_id,
                            Some(handle),
                            "the sandbox keeps crashing".into(),
                            Some((restarts, reasons)),
                        )
                        .await;
                        return;
                    }
                }
                Ok(Observed::Exited {
                    code,
                    restarts,
                    reasons,
                }) => {
                    // The engine restarts a crash (non-zero exit) a few times.
                    let will_restart =
                        code.is_some_and(|c| c != 0) && i64::from(restarts) < MAX_RESTARTS;
                    if !will_restart {
                        let what = match code {
                            Some(code) if restarts > 0 => {
                                format!("the sandbox keeps crashing (last exit code {code})")
                            }
                            Some(code) => format!("the sandbox exited with code {code}"),
                            None => "the sandbox exited".to_owned(),
                        };
                        self.fail(runtime_id, Some(handle), what, Some((restarts, reasons)))
                            .await;
                        return;
                    }
                }
                Ok(Observed::Frozen) => {
                    // Paused behind our back: report it as paused.
                    self.update(runtime_id, |r| {
                        r.phase = Phase::Paused;
                        r.paused_by = Some(PauseKind::Freeze);
                    })
                    .await;
                    return;
                }
                Ok(Observed::Missing) => {
                    self.fail(
                        runtime_id,
                        None,
                        "the sandbox's container disappeared".into(),
                        None,
                    )
                    .await;
                    return;
                }
                Err(e) => tracing::warn!(runtime_id, "observing the sandbox: {e}"),
            }
            let now = Instant::now();
            if now >= deadline {
                let waited = self.config.startup_deadline.as_secs_f64();
                self.fail(
                    runtime_id,
                    Some(handle),
                    format!("the agent server was not healthy within {waited:.0} s"),
                    None,
                )
                .await;
                return;
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Marks a runtime failed by its own fault: its logs are kept, its workload removed.
    async fn fail(
        &self,
        runtime_id: &str,
        handle: Option<&str>,
        reason: String,
        restarts: Option<(u32, Vec<String>)>,
    ) {
        self.fail_as(runtime_id, handle, reason, restarts, Fault::Sandbox)
            .await;
    }

    async fn fail_as(
        &self,
        runtime_id: &str,
        handle: Option<&str>,
        reason: String,
        restarts: Option<(u32, Vec<String>)>,
        fault: Fault,
    ) {
        let handle = handle
            .map(str::to_owned)
            .or_else(|| self.by_runtime(runtime_id).and_then(|r| r.handle));
        let logs = match &handle {
            Some(h) => Some(self.backend.logs(h).await).filter(|l| !l.trim().is_empty()),
            None => None,
        };
        if let Some(h) = &handle
            && let Err(e) = self.backend.remove(h).await
        {
            tracing::warn!(runtime_id, "removing a failed sandbox: {e}");
        }
        tracing::warn!(runtime_id, reason, "sandbox failed");
        self.update(runtime_id, |r| {
            r.phase = Phase::Error;
            r.reason = Some(reason);
            r.pod_logs = logs;
            r.handle = None;
            r.fault = Some(fault);
            if let Some((count, reasons)) = restarts {
                r.restart_count = r.restart_count.max(count);
                if !reasons.is_empty() {
                    r.restart_reasons = reasons;
                }
            }
        })
        .await;
    }

    // ---- pause, resume, stop ----

    pub(crate) async fn pause(
        &self,
        runtime_id: &str,
        kind: PauseKind,
    ) -> Result<Record, ApiError> {
        let record = self
            .by_runtime(runtime_id)
            .ok_or_else(|| ApiError::not_found(format!("runtime {runtime_id}")))?;
        let lock = self.session_lock(&record.session_id);
        let _guard = lock.lock().await;
        let record = self
            .by_runtime(runtime_id)
            .ok_or_else(|| ApiError::not_found(format!("runtime {runtime_id}")))?;
        match record.phase {
            Phase::Paused => return Ok(record),
            Phase::Running => {}
            Phase::Starting => return Err(ApiError::conflict("the runtime is still starting")),
            Phase::Error | Phase::Stopped => {
                return Err(ApiError::conflict(format!(
                    "the runtime is {}",
                    record_phase(record.phase)
                )));
            }
        }
        let handle = record
            .handle
            .clone()
            .ok_or_else(|| ApiError::conflict("the runtime has no workload"))?;
        let kind = self.backend.pause_kind(kind);
        self.backend.pause(&handle, kind).await?;
        tracing::info!(runtime_id, ?kind, "sandbox paused");
        self.update(runtime_id, |r| {
            r.phase = Phase::Paused;
            r.paused_by = Some(kind);
        })
        .await
        .ok_or_else(|| ApiError::not_found("runtime"))
    }

    pub(crate) async fn resume(&self, runtime_id: &str) -> Result<Record, ApiError> {
        let record = self
            .by_runtime(runtime_id)
            .ok_or_else(|| ApiError::not_found(format!("runtime {runtime_id}")))?;
        let lock = self.session_lock(&record.session_id);
        let guard = lock.lock().await;
        let record = self
            .by_runtime(runtime_id)
            .ok_or_else(|| ApiError::not_found(format!("runtime {runtime_id}")))?;
        match record.phase {
            Phase::Running => return Ok(record),
            Phase::Starting => {}
            Phase::Paused => {
                let handle = record
                    .handle
                    .clone()
                    .ok_or_else(|| ApiError::conflict("the runtime has no workload"))?;
                let kind = record.paused_by.unwrap_or(PauseKind::Freeze);
                if let Err(e) = self.backend.resume(&handle, kind).await {
                    if matches!(e, BackendError::Unavailable(_)) {
                        return Err(e.into());
                    }
                    // The workload cannot come back: the runtime is gone.
                    let _ = self.backend.remove(&handle).await;
                    self.update(runtime_id, |r| {
                        r.phase = Phase::Stopped;
                        r.handle = None;
                        r.reason = Some(format!("could not resume: {e}"));
                    })
                    .await;
                    return Err(ApiError::conflict(format!(
                        "the runtime cannot be resumed: {e}"
                    )));
                }
                self.update(runtime_id, |r| {
                    r.phase = Phase::Starting;
                    r.paused_by = None;
                })
                .await;
                tracing::info!(runtime_id, "sandbox resuming");
                let deadline = Instant::now() + self.config.startup_deadline;
                let this_handle = handle;
                let id = runtime_id.to_owned();
                // Supervised here (not in a task): a resume holds the session's lock only
                // until the workload runs again.
                drop(guard);
                let supervising = self.supervise(&id, &this_handle, deadline);
                return match tokio::time::timeout(self.config.start_wait, supervising).await {
                    Ok(()) => self
                        .by_runtime(runtime_id)
                        .ok_or_else(|| ApiError::not_found("runtime")),
                    Err(_) => self
                        .by_runtime(runtime_id)
                        .ok_or_else(|| ApiError::not_found("runtime")),
                };
            }
            Phase::Error | Phase::Stopped => {
                return Err(ApiError::conflict(format!(
                    "the runtime is {}; start a new one",
                    record_phase(record.phase)
                )));
            }
        }
        drop(guard);
        self.settled(runtime_id, self.config.start_wait)
            .await
            .ok_or_else(|| ApiError::not_found("runtime"))
    }

    /// Stops and removes a runtime's workload; the record stays (`stopped`) until purged.
    pub(crate) async fn stop(&self, runtime_id: &str, reason: &str) -> Result<Record, ApiError> {
        let record = self
            .by_runtime(runtime_id)
            .ok_or_else(|| ApiError::not_found(format!("runtime {runtime_id}")))?;
        let lock = self.session_lock(&record.session_id);
        let _guard = lock.lock().await;
        // Mark it first and take its handle: a start still creating its workload then sees
        // that it is no longer wanted and removes what it created.
        let mut taken = None;
        let record = self
            .update(runtime_id, |r| {
                taken = r.handle.take();
                if r.phase != Phase::Error {
                    r.phase = Phase::Stopped;
                    r.reason = Some(reason.to_owned());
                }
            })
            .await
            .ok_or_else(|| ApiError::not_found("runtime"))?;
        if let Some(handle) = &taken {
            // If this fails the record says stopped and the workload is an orphan, which
            // the background check removes.
            self.backend.remove(handle).await?;
        }
        tracing::info!(runtime_id, reason, "sandbox stopped");
        Ok(record)
    }

    // ---- reconciliation ----

    /// At boot: joins records with what the engine runs. A start cut off by a crash is
    /// failed and its workload removed; a running or paused sandbox whose workload is gone
    /// is `stopped`; a workload without a record (and every old pool member) is removed.
    pub(crate) async fn recover(self: &Arc<Self>) -> Result<(), BackendError> {
        let managed = self.backend.managed().await?;
        let mut by_runtime: HashMap<String, Vec<String>> = HashMap::new();
        for workload in &managed {
            match self.owner_of(workload) {
                Some(id) => by_runtime
                    .entry(id)
                    .or_default()
                    .push(workload.handle.clone()),
                None => {
                    tracing::info!(handle = %workload.handle, "removing a workload without a live record");
                    self.backend.remove(&workload.handle).await?;
                }
            }
        }
        let records: Vec<Record> = self.inner().records.values().cloned().collect();
        for record in records {
            let id = &record.runtime_id;
            let handles = by_runtime.remove(id).unwrap_or_default();
            match record.phase {
                Phase::Starting => {
                    for handle in &handles {
                        self.backend.remove(handle).await?;
                    }
                    self.update(id, |r| {
                        r.phase = Phase::Error;
                        r.handle = None;
                        r.reason = Some(
                            "the sandbox server restarted while this sandbox was starting".into(),
                        );
                    })
                    .await;
                }
                Phase::Running | Phase::Paused => {
                    let handle = record
                        .handle
                        .clone()
                        .filter(|h| handles.contains(h))
                        .or_else(|| handles.first().cloned());
                    for other in handles.iter().filter(|h| Some(*h) != handle.as_ref()) {
                        self.backend.remove(other).await?;
                    }
                    match handle {
                        None => {
                            self.update(id, |r| {
                                r.phase = Phase::Stopped;
                                r.handle = None;
                                r.reason = Some("its container is gone".into());
                            })
                            .await;
                        }
                        Some(handle) => self.adopt(&record, &handle).await?,
                    }
                }
                Phase::Error | Phase::Stopped => {
                    for handle in &handles {
                        self.backend.remove(handle).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The live runtime a workload belongs to: the record holding its handle (a claimed pool
    /// member keeps its pool labels), else, for a workload that is not a pool member, the
    /// record its runtime label names.
    fn owner_of(&self, workload: &crate::backend::Managed) -> Option<String> {
        let inner = self.inner();
        let by_handle = inner
            .records
            .values()
            .find(|r| r.phase.is_live() && r.handle.as_deref() == Some(workload.handle.as_str()));
        if let Some(record) = by_handle {
            return Some(record.runtime_id.clone());
        }
        if workload.pool {
            return None;
        }
        let id = workload.runtime_id.as_ref()?;
        inner
            .records
            .get(id)
            .filter(|r| r.phase.is_live())
            .map(|r| r.runtime_id.clone())
    }

    /// Takes over a sandbox found running (or paused) after a restart.
    async fn adopt(self: &Arc<Self>, record: &Record, handle: &str) -> Result<(), BackendError> {
        let id = &record.runtime_id;
        match self.backend.observe(handle).await? {
            Observed::Running {
                endpoint: Some(endpoint),
                ..
            } if record.phase == Phase::Running => {
                let url = endpoint.url();
                self.update(id, |r| {
                    r.handle = Some(handle.to_owned());
                    r.url = Some(url);
                })
                .await;
            }
            Observed::Frozen => {
                self.update(id, |r| {
                    r.handle = Some(handle.to_owned());
                    r.phase = Phase::Paused;
                    r.paused_by = Some(PauseKind::Freeze);
                })
                .await;
            }
            Observed::Exited { .. } if record.phase == Phase::Paused => {
                self.update(id, |r| {
                    r.handle = Some(handle.to_owned());
                    r.paused_by = Some(PauseKind::Stop);
                })
                .await;
            }
            Observed::Missing => {
                self.update(id, |r| {
                    r.phase = Phase::Stopped;
                    r.handle = None;
                    r.reason = Some("its container is gone".into());
                })
                .await;
            }
            _ => {
                // Running but not where we left it, restarting, or exited: probe it again.
                self.update(id, |r| {
                    r.handle = Some(handle.to_owned());
                    r.phase = Phase::Starting;
                })
                .await;
                let this = Arc::clone(self);
                let (id, handle) = (id.clone(), handle.to_owned());
                let deadline = Instant::now() + self.config.startup_deadline;
                tokio::spawn(async move { this.supervise(&id, &handle, deadline).await });
            }
        }
        Ok(())
    }

    /// One pass of the background checks: running sandboxes against the engine, idle ones
    /// paused, old records of stopped ones purged, stray workloads removed.
    pub(crate) async fn check(self: &Arc<Self>) {
        let records: Vec<Record> = self.inner().records.values().cloned().collect();
        for record in records {
            let id = record.runtime_id.as_str();
            match (record.phase, record.handle.as_deref()) {
                (Phase::Running, Some(handle)) => match self.backend.observe(handle).await {
                    Ok(Observed::Running { endpoint, .. }) => {
                        let url = endpoint.map(|e| e.url());
                        if url.is_some() && url != record.url {
                            self.update(id, |r| r.url = url).await;
                        }
                        self.reap_if_idle(&record).await;
                    }
                    Ok(Observed::Missing) => {
                        tracing::warn!(runtime_id = id, "the sandbox's container is gone");
                        self.update(id, |r| {
                            r.phase = Phase::Stopped;
                            r.handle = None;
                            r.reason = Some("its container is gone".into());
                        })
                        .await;
                    }
                    Ok(Observed::Exited {
                        code,
                        restarts,
                        reasons,
                    }) => {
                        let reason = format!(
                            "the sandbox exited (code {})",
                            code.map_or_else(|| "unknown".to_owned(), |c| c.to_string())
                        );
                        self.fail(id, Some(handle), reason, Some((restarts, reasons)))
                            .await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(runtime_id = id, "check: {e}"),
                },
                (Phase::Error | Phase::Stopped, _) => {
                    let age = store::now() - record.changed_at;
                    if age > self.config.stopped_retention.as_secs_f64() {
                        self.forget(id).await;
                    }
                }
                _ => {}
            }
        }
        match self.backend.managed().await {
            Ok(managed) => {
                for workload in managed {
                    // Pool members (booting or ready) are the pool's; a claimed one belongs
                    // to its runtime's record.
                    if workload.pool && self.pool.owns(&workload.handle) {
                        continue;
                    }
                    if self.owner_of(&workload).is_none() && !workload.pool {
                        tracing::info!(handle = %workload.handle, "removing a workload without a live record");
                        let _ = self.backend.remove(&workload.handle).await;
                    }
                }
            }
            Err(e) => tracing::debug!("check: listing workloads: {e}"),
        }
    }

    async fn reap_if_idle(&self, record: &Record) {
        let (Some(timeout), Some(url)) = (self.config.idle_timeout, record.url.as_deref()) else {
            return;
        };
        // A sandbox just started or resumed is not idle, whatever its server says.
        if store::now() - record.changed_at < timeout.as_secs_f64() {
            return;
        }
        let Ok(workspace) = oh_client::RemoteWorkspace::builder(url)
            .api_key(record.session_api_key.expose())
            .read_timeout(Duration::from_secs(5))
            .build()
        else {
            return;
        };
        let Ok(info) = workspace.server_info().await else {
            return;
        };
        if info.idle_time < timeout.as_secs_f64() {
            return;
        }
        // Never pause a sandbox whose agent is running (an LLM call can be silent for long):
        // it would be stuck `running` after the resume. Unknown counts as running.
        let running = oh_client::ServiceClient::new(url)
            .and_then(|c| c.with_header("X-Session-API-Key", &record.session_api_key))
            .map(|c| c.with_timeout(Duration::from_secs(5)));
        let running = match running {
            Ok(client) => client
                .get::<u64>("/api/conversations/count?status=running")
                .await
                .unwrap_or(1),
            Err(_) => 1,
        };
        if running > 0 {
            tracing::debug!(runtime_id = %record.runtime_id, "idle but a conversation is running");
            return;
        }
        tracing::info!(
            runtime_id = %record.runtime_id,
            idle_seconds = info.idle_time,
            "pausing an idle sandbox"
        );
        if let Err(e) = self.pause(&record.runtime_id, PauseKind::Stop).await {
            tracing::warn!(runtime_id = %record.runtime_id, "pausing an idle sandbox: {}", e.detail);
        }
    }

    /// Drops a record for good (purged, or a Cloud sandbox its owner deleted).
    pub(crate) async fn forget(&self, runtime_id: &str) {
        {
            let mut inner = self.inner();
            if let Some(record) = inner.records.remove(runtime_id)
                && inner.by_session.get(&record.session_id).map(String::as_str) == Some(runtime_id)
            {
                inner.by_session.remove(&record.session_id);
            }
        }
        self.persist(runtime_id).await;
    }
}

fn record_phase(phase: Phase) -> &'static str {
    match phase {
        Phase::Starting => "starting",
        Phase::Running => "running",
        Phase::Paused => "paused",
        Phase::Error => "error",
        Phase::Stopped => "stopped",
    }
}

fn internal(error: std::io::Error) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}

/// True when `<url>/health` answers 2xx.
pub(crate) async fn healthy(url: &str) -> bool {
    match oh_client::RemoteWorkspace::builder(url).build() {
        Ok(workspace) => workspace.alive().await,
        Err(_) => false,
    }
}

fn check_env(
    environment: &std::collections::BTreeMap<String, SecretString>,
) -> Result<Vec<(String, SecretString)>, ApiError> {
    if environment.len() > MAX_ENV {
        return Err(ApiError::invalid(format!(
            "environment has more than {MAX_ENV} variables"
        )));
    }
    let mut bytes = 0;
    let mut env = Vec::with_capacity(environment.len());
    for (name, value) in environment {
        let valid_name = !name.is_empty()
            && name.len() <= 256
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(ApiError::invalid(format!(
                "environment variable name {name:?} is not a valid name"
            )));
        }
        if RESERVED_ENV.contains(&name.as_str()) || name.starts_with("OH_SESSION_API_KEYS") {
            return Err(ApiError::invalid(format!(
                "environment variable {name} is reserved: the sandbox server sets it"
            )));
        }
        if value.expose().contains('\0') {
            return Err(ApiError::invalid(format!(
                "environment variable {name} holds a NUL byte"
            )));
        }
        bytes += name.len() + value.expose().len();
        if bytes > MAX_ENV_BYTES {
            return Err(ApiError::invalid("environment is too large"));
        }
        env.push((name.clone(), value.clone()));
    }
    Ok(env)
}

/// The value of `--port N` / `--port=N` (the last one wins, as argument parsers do);
/// 8000 (the agent server's default) when there is none.
fn port_of<'a>(argv: impl Iterator<Item = &'a String>) -> Result<u16, ApiError> {
    let mut port = None;
    let mut next_is_port = false;
    for arg in argv {
        let value = if next_is_port {
            next_is_port = false;
            Some(arg.as_str())
        } else if arg == "--port" {
            next_is_port = true;
            None
        } else {
            arg.strip_prefix("--port=")
        };
        if let Some(value) = value {
            port = Some(
                value
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| ApiError::invalid(format!("--port {value:?} is not a port")))?,
            );
        }
    }
    Ok(port.unwrap_or(8000))
}

/// The arguments without `--port N` / `--port=N` (host-network sandboxes each get a port).
fn without_port(argv: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut skip = false;
    for arg in argv {
        if skip {
            skip = false;
        } else if arg == "--port" {
            skip = true;
        } else if !arg.starts_with("--port=") {
            out.push(arg.clone());
        }
    }
    out
}

fn set_port(argv: &mut [String], port: u16) {
    let mut next_is_port = false;
    for arg in argv.iter_mut() {
        if next_is_port {
            *arg = port.to_string();
            next_is_port = false;
        } else if arg == "--port" {
            next_is_port = true;
        } else if arg.starts_with("--port=") {
            *arg = format!("--port={port}");
        }
    }
}

/// A free port on the host's loopback, for sandboxes on the host network.
async fn free_port() -> std::io::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_read_and_rewritten() -> Result<(), String> {
        let mut argv: Vec<String> = ["/bin/server", "--port", "60000", "--port=1"]
            .map(String::from)
            .to_vec();
        assert_eq!(port_of(argv.iter()).map_err(|e| e.detail)?, 1);
        set_port(&mut argv, 4242);
        assert_eq!(argv[2], "4242");
        assert_eq!(argv[3], "--port=4242");
        let none: Vec<String> = vec!["x".into()];
        assert_eq!(port_of(none.iter()).map_err(|e| e.detail)?, 8000);
        let bad: Vec<String> = vec!["--port".into(), "70000".into()];
        assert!(port_of(bad.iter()).is_err());
        Ok(())
    }

    #[test]
    fn reserved_and_bad_names_are_refused() {
        let env =
            |k: &str| std::collections::BTreeMap::from([(k.to_owned(), SecretString::new("v"))]);
        assert!(check_env(&env("OK_NAME")).is_ok());
        for bad in [
            "OH_SESSION_API_KEYS_0",
            "SESSION_API_KEY",
            "1X",
            "A-B",
            "",
            "A=B",
        ] {
            assert!(check_env(&env(bad)).is_err(), "{bad}");
        }
    }
}
