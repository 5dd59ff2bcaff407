//! Bash commands outside any conversation (spec §7): `/api/bash/*`.
//!
//! Each command runs with `/bin/sh -c` in its own process group, in the background. Its events
//! (one `BashCommand`, then `BashOutput`s whose `order` counts up from 0, the last one carrying
//! the exit code) are written as pretty JSON files under `bash_events_dir`, named as the
//! reference names them (`<YYYYmmddHHMMSSffffff>_BashCommand_<id>`,
//! `<…>_BashOutput_<command id>_<id>`), and indexed in memory so that searching — which
//! `RemoteWorkspace` does every 0.1 s while a command runs — never scans the directory. Page
//! ids are those file names, as in the reference.
//!
//! Memory stays bounded: the index holds only what search and get filter and sort on (file
//! name, kind, ids, order — a few hundred bytes an event); bodies are read from their file
//! when needed, as the reference does, except for the most recently stored ones, kept in a
//! cache of at most [`CACHE_BUDGET`] bytes. At start the index is built from the file names
//! (an output's file is read for its `order`, then dropped). With
//! `bash_events_retention_seconds`, a background loop ([`BashService::spawn_retention`])
//! deletes events whose timestamp (the one in the file name, as the reference compares) is
//! older than that many seconds: at start, then every `max(60, n / 2)` seconds.
//!
//! Timestamps are strictly increasing across all events of the service, so the storage order
//! (file names) is the emission order even for output floods within one microsecond.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::{delete, get, post};
use oh_agent::workspace::exec;
use oh_protocol::bash::{BashCommand, BashEvent, BashOutput, ExecuteBashRequest, HexUuid};
use oh_protocol::time::utc_timestamp;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::process::Child;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ok};
use crate::extract::{Json, Query, parse_uuid, path_param};
use crate::runtime::{RuntimeScope, resolve};

/// Largest output chunk, in characters (Unicode scalar values, as Python counts them).
const MAX_CONTENT_CHARS: usize = 1024 * 1024;

/// Grace period between SIGTERM and SIGKILL, and again after SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// Bytes of recently stored events kept in memory (estimated by [`event_size`]).
const CACHE_BUDGET: usize = 2 * 1024 * 1024;

/// Larger events are never cached.
const CACHE_LIMIT: usize = 64 * 1024;

/// Shortest period of the retention loop (the reference's).
const RETENTION_MIN_INTERVAL: Duration = Duration::from_secs(60);

/// Runs commands and stores their events under `bash_events_dir` (the server's) or under a
/// conversation's `bash_events` directory (the runtime-scoped routes, see `runtime`).
#[derive(Debug, Clone)]
pub(crate) struct BashService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    index: Mutex<Index>,
    /// Commands whose process may still run, by command id.
    running: Mutex<HashMap<uuid::Uuid, Running>>,
    /// Microseconds of the last timestamp handed out (timestamps strictly increase).
    clock: AtomicI64,
    /// Every stored event, for live subscribers (the bash socket).
    events: broadcast::Sender<Arc<BashEvent>>,
    /// Processes being spawned at once (see [`SPAWNS_AT_ONCE`]).
    spawns: tokio::sync::Semaphore,
    /// Extra environment of every command (`Config::command_env`).
    env: Vec<(String, String)>,
    /// Working directory of commands that name none, which theirs must be inside (a
    /// conversation's workspace); `None` for the server's own service.
    default_cwd: Option<PathBuf>,
}

/// fork/exec runs on the blocking pool, a few at a time: a burst of commands neither holds up
/// the async workers (and with them `/health`) nor floods the CPU with spawning threads.
const SPAWNS_AT_ONCE: usize = 2;

/// A command that was spawned and has not finished yet.
#[derive(Debug, Clone)]
struct Running {
    /// Process group id (the shell's pid).
    pgid: u32,
    /// Becomes `true` once the shell has exited.
    exited: watch::Receiver<bool>,
}

/// Stored events by file name (the storage order), with secondary indexes and the cache.
#[derive(Debug, Default)]
struct Index {
    entries: BTreeMap<Arc<str>, Entry>,
    /// Event id → file name.
    by_id: HashMap<uuid::Uuid, Arc<str>>,
    /// Command id → file names of its outputs.
    by_command: HashMap<uuid::Uuid, BTreeSet<Arc<str>>>,
    cache: Cache,
}

/// What the index knows of a stored event: enough to filter, sort and find its file.
#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: Kind,
    command_id: Option<uuid::Uuid>,
    order: Option<u64>,
    event_id: uuid::Uuid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Command,
    Output,
}

impl Kind {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "BashCommand" => Some(Self::Command),
            "BashOutput" => Some(Self::Output),
            _ => None,
        }
    }
}

/// The most recently stored events, oldest evicted first, within [`CACHE_BUDGET`] bytes.
#[derive(Debug, Default)]
struct Cache {
    events: HashMap<Arc<str>, (Arc<BashEvent>, usize)>,
    /// Insertion order; may hold names already removed from `events`.
    order: VecDeque<Arc<str>>,
    bytes: usize,
}

impl Cache {
    fn insert(&mut self, name: Arc<str>, event: Arc<BashEvent>) {
        let size = event_size(&event);
        if size > CACHE_LIMIT {
            return;
        }
        self.order.push_back(Arc::clone(&name));
        if let Some((_, old)) = self.events.insert(name, (event, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.bytes > CACHE_BUDGET {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.remove(&oldest);
        }
    }

    fn get(&self, name: &str) -> Option<Arc<BashEvent>> {
        self.events.get(name).map(|(event, _)| Arc::clone(event))
    }

    fn remove(&mut self, name: &str) {
        if let Some((_, size)) = self.events.remove(name) {
            self.bytes -= size;
        }
        // Forget names removed out of order (purge) once they dominate.
        if self.events.is_empty() {
            self.order.clear();
        } else if self.order.len() > 2 * self.events.len() + 64 {
            let events = &self.events;
            self.order.retain(|name| events.contains_key(name));
        }
    }
}

/// Estimated bytes an event holds in memory.
fn event_size(event: &BashEvent) -> usize {
    let text = match event {
        BashEvent::Command(command) => {
            command.command.len() + command.cwd.as_ref().map_or(0, String::len)
        }
        BashEvent::Output(output) => {
            output.stdout.as_ref().map_or(0, String::len)
                + output.stderr.as_ref().map_or(0, String::len)
        }
        _ => 0,
    };
    text + 2 * std::mem::size_of::<BashEvent>() + 64
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYYmmddHHMMSSffffff` of a UTC instant: the prefix of storage names.
fn name_stamp(micros: i64) -> String {
    utc_timestamp(micros)
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// The storage name of an event (reference layout).
fn file_name(event: &BashEvent, micros: i64) -> Option<String> {
    match event {
        BashEvent::Command(command) => {
            Some(format!("{}_BashCommand_{}", name_stamp(micros), command.id))
        }
        BashEvent::Output(output) => Some(format!(
            "{}_BashOutput_{}_{}",
            name_stamp(micros),
            output.command_id,
            output.id
        )),
        _ => None,
    }
}

/// The index entry of an event.
fn entry_of(event: &BashEvent) -> Option<Entry> {
    match event {
        BashEvent::Command(command) => Some(Entry {
            kind: Kind::Command,
            command_id: None,
            order: None,
            event_id: command.id.0,
        }),
        BashEvent::Output(output) => Some(Entry {
            kind: Kind::Output,
            command_id: Some(output.command_id.0),
            order: Some(output.order),
            event_id: output.id.0,
        }),
        _ => None,
    }
}

/// An id as the index keys it: only the 32 lowercase hex digits that file names carry.
fn stored_id(raw: &str) -> Option<uuid::Uuid> {
    let id = uuid::Uuid::try_parse(raw).ok()?;
    (HexUuid(id).to_string() == raw).then_some(id)
}

impl Index {
    fn insert(&mut self, name: Arc<str>, entry: Entry) {
        self.by_id.insert(entry.event_id, Arc::clone(&name));
        if let Some(command_id) = entry.command_id {
            self.by_command
                .entry(command_id)
                .or_default()
                .insert(Arc::clone(&name));
        }
        self.entries.insert(name, entry);
    }

    fn remove(&mut self, name: &str) {
        let Some(entry) = self.entries.remove(name) else {
            return;
        };
        if self
            .by_id
            .get(&entry.event_id)
            .is_some_and(|n| &**n == name)
        {
            self.by_id.remove(&entry.event_id);
        }
        if let Some(command_id) = entry.command_id
            && let Some(names) = self.by_command.get_mut(&command_id)
        {
            names.remove(name);
            if names.is_empty() {
                self.by_command.remove(&command_id);
            }
        }
        self.cache.remove(name);
    }

    /// Estimated bytes held: the entries with their names and secondary indexes, plus the
    /// cache.
    #[cfg(test)]
    fn resident_bytes(&self) -> usize {
        // Per entry: its name, the name pointer in three maps, the entry, two ids and map
        // overhead.
        let per_entry = 3 * std::mem::size_of::<Arc<str>>()
            + std::mem::size_of::<Entry>()
            + 2 * std::mem::size_of::<uuid::Uuid>()
            + 64;
        let names: usize = self.entries.keys().map(|name| name.len() + 16).sum();
        names
            + self.entries.len() * per_entry
            + self.cache.bytes
            + self.cache.order.len() * std::mem::size_of::<Arc<str>>()
    }
}

/// Filters of a search (already validated).
#[derive(Debug, Default)]
struct Search {
    kind: Option<Kind>,
    command_id: Option<uuid::Uuid>,
    /// Storage-name bounds (`YYYYmmddHHMMSSffffff`).
    gte: Option<String>,
    lt: Option<String>,
    order_gt: Option<i64>,
    descending: bool,
    page_id: Option<String>,
    limit: usize,
}

/// A page of events, serialized with nulls.
#[derive(Debug, Serialize)]
struct Page {
    items: Vec<BashEventJson>,
    next_page_id: Option<String>,
}

/// Serializes an `Arc<BashEvent>` (serde's `rc` feature is off).
#[derive(Debug)]
struct BashEventJson(Arc<BashEvent>);

impl Serialize for BashEventJson {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl BashService {
    /// Opens (creating it if needed) the event directory and indexes the events stored there
    /// (without keeping their bodies). Commands get this process's environment
    /// ([`oh_agent::workspace::sanitized_env_with`]) with `env` on top.
    pub(crate) fn new(dir: &Path, env: Vec<(String, String)>) -> io::Result<Self> {
        Self::open(dir, env, None)
    }

    /// [`BashService::new`] for a conversation: commands run in `default_cwd` unless they
    /// name a directory, which must then be inside it.
    pub(crate) fn for_conversation(
        dir: &Path,
        env: Vec<(String, String)>,
        default_cwd: PathBuf,
    ) -> io::Result<Self> {
        Self::open(dir, env, Some(default_cwd))
    }

    fn open(
        dir: &Path,
        env: Vec<(String, String)>,
        default_cwd: Option<PathBuf>,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut index = Index::default();
        let mut last = 0;
        for item in std::fs::read_dir(dir)? {
            let item = item?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Some(stored) = parse_stored_name(&name) else {
                continue;
            };
            let order = match stored.kind {
                Kind::Command => None,
                // The order is not in the name: read it and drop the rest.
                Kind::Output => match read_order(&item.path()) {
                    Ok(order) => Some(order),
                    Err(err) => {
                        tracing::warn!(file = %name, error = %err, "skipping an unreadable bash event");
                        continue;
                    }
                },
            };
            last = last.max(stored.micros);
            let entry = Entry {
                kind: stored.kind,
                command_id: stored.command_id,
                order,
                event_id: stored.event_id,
            };
            index.insert(name.into(), entry);
        }
        tracing::debug!(count = index.entries.len(), "bash events indexed");
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                index: Mutex::new(index),
                running: Mutex::new(HashMap::new()),
                clock: AtomicI64::new(last),
                events,
                spawns: tokio::sync::Semaphore::new(SPAWNS_AT_ONCE),
                env,
                default_cwd,
            }),
        })
    }

    /// Whether nothing but this handle uses the service: no command runs (their tasks hold
    /// it) and no request is being served with it.
    pub(crate) fn is_unused(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
    }

    /// Estimated bytes the store holds in memory.
    #[cfg(test)]
    fn resident_bytes(&self) -> usize {
        lock(&self.inner.index).resident_bytes()
    }

    /// Live events (for the bash socket).
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<BashEvent>> {
        self.inner.events.subscribe()
    }

    /// Every event stored now, in storage order (for the bash socket's `resend_mode=all`).
    /// Each is read when the iterator reaches it, so a replay holds one event at a time;
    /// events deleted meanwhile are skipped.
    pub(crate) fn stored_events(&self) -> StoredEvents {
        let names: Vec<Arc<str>> = lock(&self.inner.index).entries.keys().cloned().collect();
        StoredEvents {
            inner: Arc::clone(&self.inner),
            names: names.into_iter(),
        }
    }

    /// Starts the retention loop if `retention_seconds` is set: it deletes events older than
    /// that at once, then every `max(60, n / 2)` seconds, until the returned guard is
    /// dropped.
    pub(crate) fn spawn_retention(&self, retention_seconds: Option<u64>) -> Option<RetentionTask> {
        let seconds = retention_seconds?;
        tracing::info!(retention_seconds = seconds, "bash events retention started");
        Some(self.spawn_retention_every(Duration::from_secs(seconds), retention_interval(seconds)))
    }

    /// The retention loop with its period given.
    fn spawn_retention_every(&self, retention: Duration, interval: Duration) -> RetentionTask {
        let inner = Arc::clone(&self.inner);
        let retention = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        RetentionTask(tokio::spawn(async move {
            loop {
                let cutoff = now_micros().saturating_sub(retention);
                let purger = Arc::clone(&inner);
                match tokio::task::spawn_blocking(move || purger.purge_older_than(cutoff)).await {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(count, "deleted bash events past retention"),
                    Err(err) => tracing::warn!(error = %err, "bash events retention pass failed"),
                }
                tokio::time::sleep(interval).await;
            }
        }))
    }

    /// Starts `request` in the background; the handle finishes once its last output is
    /// stored. Runs to completion even if the caller goes away halfway.
    pub(crate) async fn start(
        &self,
        request: ExecuteBashRequest,
    ) -> ApiResult<(BashCommand, JoinHandle<()>)> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(Inner::start(inner, request))
            .await
            .map_err(ApiError::internal)?
    }
}

impl Inner {
    async fn start(
        inner: Arc<Self>,
        request: ExecuteBashRequest,
    ) -> ApiResult<(BashCommand, JoinHandle<()>)> {
        let cwd = request.cwd.filter(|cwd| !cwd.is_empty()).or_else(|| {
            inner
                .default_cwd
                .as_ref()
                .map(|dir| dir.to_string_lossy().into_owned())
        });
        let micros = inner.tick();
        let command = BashCommand {
            command: request.command,
            cwd,
            timeout: request.timeout,
            id: HexUuid::new_v4(),
            timestamp: utc_timestamp(micros),
        };
        // Spawned (and registered) before the command is visible, so a stop that follows its
        // appearance always finds the process.
        let spawned = match inner.spawns.acquire().await {
            Ok(_permit) => {
                let to_spawn = command.clone();
                let spawner = Arc::clone(&inner);
                tokio::task::spawn_blocking(move || spawn(&to_spawn, &spawner.env))
                    .await
                    .unwrap_or_else(|err| Err(io::Error::other(err)))
            }
            Err(closed) => Err(io::Error::other(closed)),
        };
        let execution = spawned.map(|child| {
            let execution = exec::Execution::new(child, Some(Duration::from_secs(command.timeout)));
            let running = Running {
                pgid: execution.pgid(),
                exited: execution.exited(),
            };
            lock(&inner.running).insert(command.id.0, running);
            execution
        });
        let event = Arc::new(BashEvent::Command(command.clone()));
        let stored = Arc::clone(&inner);
        let result = tokio::task::spawn_blocking(move || stored.store(event, micros))
            .await
            .map_err(ApiError::internal)
            .and_then(|res| {
                res.map_err(|err| ApiError::internal(format!("storing the bash command: {err}")))
            });
        if let Err(err) = result {
            // Dropping the child kills the shell.
            lock(&inner.running).remove(&command.id.0);
            return Err(err);
        }

        let task = match execution {
            Ok(execution) => {
                let command = command.clone();
                tokio::spawn(async move {
                    let final_output = supervise(&inner, &command, execution).await;
                    inner.finish(command.id, final_output).await;
                })
            }
            Err(err) => {
                let reason = exec::spawn_error(&err, command.cwd.as_deref().map(Path::new));
                let command_id = command.id;
                tokio::spawn(async move {
                    let output = Output {
                        order: 0,
                        exit_code: Some(-1),
                        stdout: None,
                        stderr: Some(format!("Error executing command: {reason}")),
                    };
                    inner.finish(command_id, output).await;
                })
            }
        };
        Ok((command, task))
    }
}

/// The retention loop's period: half the window, at least [`RETENTION_MIN_INTERVAL`].
fn retention_interval(retention_seconds: u64) -> Duration {
    (Duration::from_secs(retention_seconds) / 2).max(RETENTION_MIN_INTERVAL)
}

/// What a storage name tells.
#[derive(Debug, PartialEq, Eq)]
struct StoredName {
    /// The event's time, in microseconds.
    micros: i64,
    kind: Kind,
    command_id: Option<uuid::Uuid>,
    event_id: uuid::Uuid,
}

/// Parses `YYYYmmddHHMMSSffffff_BashCommand_<hex>` / `…_BashOutput_<hex>_<hex>`.
fn parse_stored_name(name: &str) -> Option<StoredName> {
    let mut parts = name.split('_');
    let stamp = parts.next()?;
    let kind = Kind::parse(parts.next()?)?;
    let rest: Vec<&str> = parts.collect();
    if stamp.len() != 20 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (command_id, event_id) = match (kind, rest.as_slice()) {
        (Kind::Command, [id]) => (None, stored_id(id)?),
        (Kind::Output, [command, id]) => (Some(stored_id(command)?), stored_id(id)?),
        _ => return None,
    };
    // All digits (checked above), so every slice is on a character boundary.
    let part = |range: std::ops::Range<usize>| stamp.get(range).unwrap_or_default();
    let iso = format!(
        "{}-{}-{}T{}:{}:{}.{}Z",
        part(0..4),
        part(4..6),
        part(6..8),
        part(8..10),
        part(10..12),
        part(12..14),
        part(14..20)
    );
    let (micros, _) = oh_protocol::time::parse_micros(&iso)?;
    Some(StoredName {
        micros,
        kind,
        command_id,
        event_id,
    })
}

/// The `order` of a stored output (the rest of the file is skipped, not kept).
fn read_order(path: &Path) -> Result<u64, String> {
    #[derive(serde::Deserialize)]
    struct OrderOnly {
        #[serde(default)]
        order: u64,
    }
    let bytes = std::fs::read(path).map_err(|err| err.to_string())?;
    serde_json::from_slice::<OrderOnly>(&bytes)
        .map(|only| only.order)
        .map_err(|err| err.to_string())
}

/// The retention loop; dropping it stops the loop.
#[derive(Debug)]
pub(crate) struct RetentionTask(JoinHandle<()>);

impl Drop for RetentionTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Stored events read one at a time ([`BashService::stored_events`]).
#[derive(Debug)]
pub(crate) struct StoredEvents {
    inner: Arc<Inner>,
    names: std::vec::IntoIter<Arc<str>>,
}

impl Iterator for StoredEvents {
    type Item = Arc<BashEvent>;

    fn next(&mut self) -> Option<Arc<BashEvent>> {
        // Reading a file blocks: on a multi-threaded runtime, let the other tasks move to
        // another worker meanwhile.
        let multi_thread = tokio::runtime::Handle::try_current().is_ok_and(|handle| {
            handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        });
        for name in self.names.by_ref() {
            let event = if multi_thread {
                tokio::task::block_in_place(|| self.inner.load(&name))
            } else {
                self.inner.load(&name)
            };
            if event.is_some() {
                return event;
            }
        }
        None
    }
}

/// Output to record.
#[derive(Debug)]
struct Output {
    order: u64,
    exit_code: Option<i64>,
    stdout: Option<String>,
    stderr: Option<String>,
}

impl Inner {
    /// A fresh timestamp, strictly after every earlier one.
    fn tick(&self) -> i64 {
        let now = now_micros();
        let mut last = self.clock.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self
                .clock
                .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Writes an event's file, indexes it and publishes it.
    fn store(&self, event: Arc<BashEvent>, micros: i64) -> io::Result<()> {
        let (Some(name), Some(entry)) = (file_name(&event, micros), entry_of(&event)) else {
            return Ok(());
        };
        let text = serde_json::to_string_pretty(&*event).map_err(io::Error::other)?;
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.dir.join(&name), text)?;
        let name: Arc<str> = name.into();
        {
            let mut index = lock(&self.index);
            index.insert(Arc::clone(&name), entry);
            index.cache.insert(name, Arc::clone(&event));
        }
        let _ = self.events.send(event);
        Ok(())
    }

    /// Records one output of `command_id`.
    async fn record(self: &Arc<Self>, command_id: HexUuid, output: Output) {
        let inner = Arc::clone(self);
        let stored = tokio::task::spawn_blocking(move || {
            let micros = inner.tick();
            let event = Arc::new(BashEvent::Output(BashOutput {
                id: HexUuid::new_v4(),
                timestamp: utc_timestamp(micros),
                command_id,
                order: output.order,
                exit_code: output.exit_code,
                stdout: output.stdout,
                stderr: output.stderr,
            }));
            inner.store(event, micros)
        })
        .await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(%command_id, error = %err, "could not store a bash output");
            }
            Err(err) => tracing::error!(%command_id, error = %err, "storing a bash output"),
        }
    }

    /// Records the final output and forgets the process.
    async fn finish(self: &Arc<Self>, command_id: HexUuid, output: Output) {
        self.record(command_id, output).await;
        lock(&self.running).remove(&command_id.0);
    }

    /// The event stored under `name`, from the cache or from its file.
    fn load(&self, name: &str) -> Option<Arc<BashEvent>> {
        if let Some(event) = lock(&self.index).cache.get(name) {
            return Some(event);
        }
        let bytes = match std::fs::read(self.dir.join(name)) {
            Ok(bytes) => bytes,
            // Deleted meanwhile (retention, clear).
            Err(err) if err.kind() == io::ErrorKind::NotFound => return None,
            Err(err) => {
                tracing::error!(file = %name, error = %err, "could not read a bash event");
                return None;
            }
        };
        match serde_json::from_slice::<BashEvent>(&bytes) {
            Ok(event) => Some(Arc::new(event)),
            Err(err) => {
                tracing::error!(file = %name, error = %err, "unreadable bash event");
                None
            }
        }
    }

    /// The reference's search: filter names, sort, start at `page_id`, skip outputs with
    /// `order <= order_gt`, take `limit`; the next page starts at the next matching event.
    fn search(&self, search: &Search) -> Page {
        let selected: Vec<(Arc<str>, Entry)> = {
            let index = lock(&self.index);
            let keep = |name: &str, entry: &Entry| {
                search.kind.is_none_or(|kind| entry.kind == kind)
                    && search.gte.as_deref().is_none_or(|gte| name >= gte)
                    && search.lt.as_deref().is_none_or(|lt| name < lt)
            };
            let mut names: Vec<(Arc<str>, Entry)> = match search.command_id {
                Some(command_id) => index
                    .by_command
                    .get(&command_id)
                    .into_iter()
                    .flatten()
                    .filter_map(|name| index.entries.get(name).map(|entry| (name, entry)))
                    .filter(|(name, entry)| keep(name, entry))
                    .map(|(name, entry)| (Arc::clone(name), *entry))
                    .collect(),
                None => index
                    .entries
                    .iter()
                    .filter(|(name, entry)| keep(name, entry))
                    .map(|(name, entry)| (Arc::clone(name), *entry))
                    .collect(),
            };
            if search.descending {
                names.reverse();
            }
            names
        };
        let start = search
            .page_id
            .as_deref()
            .and_then(|page_id| selected.iter().position(|(name, _)| &**name == page_id))
            .unwrap_or(0);
        let mut items = Vec::new();
        let mut next_page_id = None;
        for (name, entry) in selected.iter().skip(start) {
            if let (Some(gt), Some(order)) = (search.order_gt, entry.order)
                && i128::from(order) <= i128::from(gt)
            {
                continue;
            }
            let Some(event) = self.load(name) else {
                continue;
            };
            if items.len() >= search.limit {
                next_page_id = Some(name.to_string());
                break;
            }
            items.push(BashEventJson(event));
        }
        Page {
            items,
            next_page_id,
        }
    }

    fn get(&self, event_id: &str) -> Option<Arc<BashEvent>> {
        let id = stored_id(event_id)?;
        let name = Arc::clone(lock(&self.index).by_id.get(&id)?);
        self.load(&name)
    }

    /// Whether an event with this id is stored (no file is read).
    fn knows(&self, event_id: uuid::Uuid) -> bool {
        lock(&self.index).by_id.contains_key(&event_id)
    }

    /// Deletes every file of the directory (as the reference does) and empties the index.
    fn clear(&self) -> usize {
        *lock(&self.index) = Index::default();
        let Ok(items) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut count = 0;
        for item in items.flatten() {
            count += 1;
            if let Err(err) = std::fs::remove_file(item.path()) {
                tracing::error!(file = ?item.path(), error = %err, "could not delete a bash event");
            }
        }
        count
    }

    /// Deletes the events whose timestamp (in their file name, as the reference compares)
    /// is before `cutoff` (UTC microseconds); returns how many.
    fn purge_older_than(&self, cutoff: i64) -> usize {
        let cutoff = name_stamp(cutoff);
        let old: Vec<Arc<str>> = {
            let mut index = lock(&self.index);
            let old: Vec<Arc<str>> = index
                .entries
                .range::<str, _>((Bound::Unbounded, Bound::Excluded(cutoff.as_str())))
                .map(|(name, _)| Arc::clone(name))
                .collect();
            for name in &old {
                index.remove(name);
            }
            old
        };
        let mut count = 0;
        for name in &old {
            match std::fs::remove_file(self.dir.join(&**name)) {
                Ok(()) => count += 1,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    tracing::warn!(file = %name, error = %err, "could not delete a bash event");
                }
            }
        }
        count
    }

    /// The outputs of a finished command joined into one (1.57.0's `execute_bash_command`).
    fn collect(&self, command_id: HexUuid) -> BashOutput {
        let mut outputs: Vec<BashOutput> = Vec::new();
        let names: Vec<Arc<str>> = lock(&self.index)
            .by_command
            .get(&command_id.0)
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for name in names {
            if let Some(event) = self.load(&name)
                && let BashEvent::Output(output) = &*event
            {
                outputs.push(output.clone());
            }
        }
        outputs.sort_by_key(|output| output.order);
        let stdout: String = outputs.iter().filter_map(|o| o.stdout.as_deref()).collect();
        let stderr: String = outputs.iter().filter_map(|o| o.stderr.as_deref()).collect();
        match outputs.pop() {
            Some(last) => BashOutput {
                exit_code: Some(last.exit_code.unwrap_or(-1)),
                stdout: (!stdout.is_empty()).then_some(stdout),
                stderr: (!stderr.is_empty()).then_some(stderr),
                ..last
            },
            None => BashOutput {
                id: HexUuid::new_v4(),
                timestamp: utc_timestamp(self.tick()),
                command_id,
                order: 0,
                exit_code: Some(-1),
                stdout: None,
                stderr: None,
            },
        }
    }
}

fn spawn(command: &BashCommand, env: &[(String, String)]) -> io::Result<Child> {
    exec::spawn_shell(&command.command, command.cwd.as_deref().map(Path::new), env)
}

/// Decoded output of one pipe not stored yet.
#[derive(Debug, Default)]
struct Decoded {
    text: String,
    chars: usize,
}

impl Decoded {
    fn push_str(&mut self, text: &str) {
        self.chars += text.chars().count();
        self.text.push_str(text);
    }

    /// Takes the first `MAX_CONTENT_CHARS` characters while more than that are buffered.
    fn take_chunk(&mut self) -> Option<String> {
        if self.chars <= MAX_CONTENT_CHARS {
            return None;
        }
        let split = self
            .text
            .char_indices()
            .nth(MAX_CONTENT_CHARS)
            .map_or(self.text.len(), |(at, _)| at);
        let rest = self.text.split_off(split);
        self.chars -= MAX_CONTENT_CHARS;
        Some(std::mem::replace(&mut self.text, rest))
    }

    fn take_rest(&mut self) -> Option<String> {
        self.chars = 0;
        let text = std::mem::take(&mut self.text);
        (!text.is_empty()).then_some(text)
    }
}

/// Runs a started command to its end (EOF on both pipes and exit) or its timeout, storing
/// chunks of at most `MAX_CONTENT_CHARS` characters as they fill; returns the final output.
async fn supervise(
    inner: &Arc<Inner>,
    command: &BashCommand,
    mut execution: exec::Execution,
) -> Output {
    let mut pending = Pending::default();
    while let Some(piece) = execution.next().await {
        match piece {
            exec::Piece::Stdout(text) => pending.out.push_str(&text),
            exec::Piece::Stderr(text) => pending.err.push_str(&text),
        }
        pending.store_full_chunks(inner, command.id).await;
    }
    let ended = execution
        .finish(exec::Stop::Terminate { grace: KILL_GRACE })
        .await;
    if ended.timed_out {
        tracing::warn!(command_id = %command.id, timeout = command.timeout, "bash command timed out");
    }
    pending.out.push_str(&ended.stdout);
    pending.err.push_str(&ended.stderr);
    pending.store_full_chunks(inner, command.id).await;
    Output {
        order: pending.order,
        exit_code: Some(ended.exit_code),
        stdout: pending.out.take_rest(),
        stderr: pending.err.take_rest(),
    }
}

/// A running command's output not stored yet, and the order of the next stored chunk.
#[derive(Debug, Default)]
struct Pending {
    out: Decoded,
    err: Decoded,
    order: u64,
}

impl Pending {
    /// Stores every full chunk (`MAX_CONTENT_CHARS` characters) of either pipe.
    async fn store_full_chunks(&mut self, inner: &Arc<Inner>, command_id: HexUuid) {
        while let Some(chunk) = self.out.take_chunk() {
            let output = Output {
                order: self.order,
                exit_code: None,
                stdout: Some(chunk),
                stderr: None,
            };
            inner.record(command_id, output).await;
            self.order += 1;
        }
        while let Some(chunk) = self.err.take_chunk() {
            let output = Output {
                order: self.order,
                exit_code: None,
                stdout: None,
                stderr: Some(chunk),
            };
            inner.record(command_id, output).await;
            self.order += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

pub(crate) fn router() -> Router<AppState> {
    routes("/api/bash")
}

/// The bash routes under `prefix` (`/api/bash`, or a conversation's `…/bash`).
pub(crate) fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{prefix}/start_bash_command"),
            post(start_bash_command),
        )
        .route(
            &format!("{prefix}/execute_bash_command"),
            post(execute_bash_command),
        )
        .route(
            &format!("{prefix}/bash_events/search"),
            get(search_bash_events),
        )
        .route(
            &format!("{prefix}/bash_events/"),
            get(batch_get_bash_events),
        )
        .route(
            &format!("{prefix}/bash_events/{{event_id}}"),
            get(get_bash_event),
        )
        .route(&format!("{prefix}/bash_events"), delete(clear_bash_events))
        .route(
            &format!("{prefix}/bash_commands/{{command_id}}/stop"),
            post(stop_bash_command),
        )
}

/// The bash service of the request: its conversation's (runtime-scoped routes) or the
/// server's.
struct Bash(BashService);

impl FromRequestParts<AppState> for Bash {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        Ok(Self(match parts.extensions.get::<RuntimeScope>() {
            Some(scope) => scope.bash.clone(),
            None => state.bash.clone(),
        }))
    }
}

/// 422 when a conversation's command names a directory outside its workspace.
async fn check_cwd(bash: &BashService, request: &ExecuteBashRequest) -> ApiResult<()> {
    let (Some(root), Some(cwd)) = (&bash.inner.default_cwd, &request.cwd) else {
        return Ok(());
    };
    let (root, cwd) = (root.clone(), PathBuf::from(cwd));
    let inside = tokio::task::spawn_blocking(move || resolve(&cwd).starts_with(resolve(&root)))
        .await
        .map_err(ApiError::internal)?;
    if inside {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "cwd must be inside the conversation workspace",
        ))
    }
}

async fn start_bash_command(
    State(state): State<AppState>,
    Bash(bash): Bash,
    Json(request): Json<ExecuteBashRequest>,
) -> ApiResult<Response> {
    state.activity.touch();
    check_cwd(&bash, &request).await?;
    let (command, _) = bash.start(request).await?;
    Ok(ok(&BashEvent::Command(command)))
}

async fn execute_bash_command(
    State(state): State<AppState>,
    Bash(bash): Bash,
    Json(request): Json<ExecuteBashRequest>,
) -> ApiResult<Response> {
    state.activity.touch();
    check_cwd(&bash, &request).await?;
    let (command, task) = bash.start(request).await?;
    task.await.map_err(ApiError::internal)?;
    let inner = Arc::clone(&bash.inner);
    let output = tokio::task::spawn_blocking(move || inner.collect(command.id))
        .await
        .map_err(ApiError::internal)?;
    Ok(ok(&BashEvent::Output(output)))
}

async fn search_bash_events(Bash(bash): Bash, query: Query) -> ApiResult<Response> {
    let kind = query.parse("kind__eq", "literal_error", |raw| {
        Kind::parse(raw).ok_or_else(|| "Input should be 'BashCommand' or 'BashOutput'".to_owned())
    })?;
    let command_id = query.parse("command_id__eq", "uuid_parsing", |raw| {
        parse_uuid(raw).ok_or_else(|| "Input should be a valid UUID".to_owned())
    })?;
    let gte = query.parse(
        "timestamp__gte",
        "datetime_from_date_parsing",
        parse_datetime,
    )?;
    let lt = query.parse(
        "timestamp__lt",
        "datetime_from_date_parsing",
        parse_datetime,
    )?;
    let order_gt = query.parse("order__gt", "int_parsing", |raw| {
        raw.trim().parse::<i64>().map_err(|_| {
            "Input should be a valid integer, unable to parse string as an integer".to_owned()
        })
    })?;
    let descending = query
        .parse("sort_order", "enum", |raw| match raw {
            "TIMESTAMP" => Ok(false),
            "TIMESTAMP_DESC" => Ok(true),
            _ => Err("Input should be 'TIMESTAMP' or 'TIMESTAMP_DESC'".to_owned()),
        })?
        .unwrap_or(false);
    let search = Search {
        kind,
        command_id,
        gte: gte.map(name_stamp),
        lt: lt.map(name_stamp),
        order_gt,
        descending,
        page_id: query
            .get("page_id")
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        limit: query.limit()?,
    };
    let inner = Arc::clone(&bash.inner);
    let page = tokio::task::spawn_blocking(move || inner.search(&search))
        .await
        .map_err(ApiError::internal)?;
    Ok(ok(&page))
}

async fn get_bash_event(
    State(state): State<AppState>,
    Bash(bash): Bash,
    mut parts: Parts,
) -> ApiResult<Response> {
    let event_id = path_param(&mut parts, &state, "event_id").await?;
    let inner = Arc::clone(&bash.inner);
    let event = tokio::task::spawn_blocking(move || inner.get(&event_id))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    Ok(ok(&*event))
}

async fn batch_get_bash_events(
    Bash(bash): Bash,
    Json(ids): Json<Vec<String>>,
) -> ApiResult<Response> {
    let inner = Arc::clone(&bash.inner);
    let events = tokio::task::spawn_blocking(move || {
        ids.iter()
            .map(|id| inner.get(id).map(BashEventJson))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(ok(&events))
}

async fn clear_bash_events(Bash(bash): Bash) -> ApiResult<Response> {
    let inner = Arc::clone(&bash.inner);
    let count = tokio::task::spawn_blocking(move || inner.clear())
        .await
        .map_err(ApiError::internal)?;
    Ok(ok(&json!({ "cleared_count": count })))
}

async fn stop_bash_command(
    State(state): State<AppState>,
    Bash(bash): Bash,
    mut parts: Parts,
) -> ApiResult<Response> {
    let raw = path_param(&mut parts, &state, "command_id").await?;
    let command_id = parse_uuid(&raw).ok_or_else(|| {
        ApiError::validation(
            &["path", "command_id"],
            "uuid_parsing",
            "Input should be a valid UUID",
            Value::String(raw.clone()),
        )
    })?;
    state.activity.touch();
    let running = lock(&bash.inner.running).get(&command_id).cloned();
    if let Some(running) = running {
        exec::terminate_group(running.pgid, running.exited, KILL_GRACE).await;
        return Ok(ok(&json!({ "success": true })));
    }
    // Stopping a finished command succeeds; an unknown id is 404.
    if bash.inner.knows(command_id) {
        Ok(ok(&json!({ "success": true })))
    } else {
        Err(ApiError::not_found())
    }
}

/// A query datetime (pydantic's reading) as UTC microseconds, with pydantic's message.
fn parse_datetime(raw: &str) -> Result<i64, String> {
    oh_protocol::time::parse_datetime(raw).ok_or_else(|| {
        "Input should be a valid datetime or date, invalid character in year".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_utc() {
        let base = 1_777_889_702_118_204; // 2026-05-04T10:15:02.118204Z
        assert_eq!(parse_datetime("2026-05-04T10:15:02.118204Z"), Ok(base));
        assert_eq!(parse_datetime("2026-05-04T10:15:02.118204"), Ok(base));
        assert_eq!(parse_datetime("2026-05-04 12:15:02.118204+02:00"), Ok(base));
        assert_eq!(
            parse_datetime("2026-05-04"),
            Ok(base - (10 * 3600 + 15 * 60 + 2) * 1_000_000 - 118_204)
        );
        assert_eq!(parse_datetime("2026-05-04T10:15Z"), Ok(base - 2_118_204));
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("2026-13-04").is_err());
        assert_eq!(name_stamp(base), "20260504101502118204");
        let id = "0123456789abcdef0123456789abcdef";
        let other = "fedcba9876543210fedcba9876543210";
        assert_eq!(
            parse_stored_name(&format!("20260504101502118204_BashCommand_{id}")),
            Some(StoredName {
                micros: base,
                kind: Kind::Command,
                command_id: None,
                event_id: stored_id(id).expect("id"),
            })
        );
        assert_eq!(
            parse_stored_name(&format!("20260504101502118204_BashOutput_{id}_{other}"))
                .map(|name| (name.kind, name.command_id, name.event_id)),
            Some((Kind::Output, stored_id(id), stored_id(other).expect("id")))
        );
        assert_eq!(
            parse_stored_name(&format!("20260504101502118204_BashOutput_{id}")),
            None
        );
        assert_eq!(
            parse_stored_name("20260504101502118204_BashCommand_ab"),
            None
        );
        assert_eq!(stored_id(&id.to_uppercase()), None);
    }

    /// Runs `count` commands, `parallel` at a time, each printing `bytes` bytes.
    async fn run_commands(service: &BashService, count: usize, bytes: usize) {
        let command = format!("head -c {bytes} /dev/zero | tr '\\0' x");
        for _ in 0..count / 10 {
            let mut tasks = Vec::new();
            for _ in 0..10 {
                let request = ExecuteBashRequest {
                    command: command.clone(),
                    cwd: None,
                    timeout: 60,
                };
                let (_, task) = service.start(request).await.expect("start");
                tasks.push(task);
            }
            for task in tasks {
                task.await.expect("command");
            }
        }
    }

    /// Every stored output, read through search (paging by 100).
    fn all_outputs(service: &BashService) -> Vec<BashOutput> {
        let mut outputs = Vec::new();
        let mut page_id = None;
        loop {
            let page = service.inner.search(&Search {
                kind: Some(Kind::Output),
                page_id: page_id.take(),
                limit: 100,
                ..Search::default()
            });
            for item in page.items {
                if let BashEvent::Output(output) = &*item.0 {
                    outputs.push(output.clone());
                }
            }
            match page.next_page_id {
                Some(next) => page_id = Some(next),
                None => return outputs,
            }
        }
    }

    /// 300 commands printing 60,000 bytes each: the store keeps an index and a bounded
    /// cache in memory, bodies stay on disk (also after a restart), and every body is
    /// still served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_stays_bounded_and_a_restart_loads_no_bodies() {
        const COMMANDS: usize = 300;
        const BYTES: usize = 60_000;
        let dir = tempfile::tempdir().expect("temp dir");
        let service = BashService::new(dir.path(), Vec::new()).expect("service");
        run_commands(&service, COMMANDS, BYTES).await;
        // The index: well under 1 KiB per event (two events per command).
        let budget = CACHE_BUDGET + 2 * COMMANDS * 1024;
        let resident = service.resident_bytes();
        assert!(
            resident < budget,
            "{resident} bytes held for {COMMANDS} commands of {BYTES} bytes (budget {budget})"
        );
        let outputs = all_outputs(&service);
        assert_eq!(outputs.len(), COMMANDS);
        assert!(
            outputs
                .iter()
                .all(|o| o.stdout.as_deref().map(str::len) == Some(BYTES))
        );
        drop(service);

        let restarted = BashService::new(dir.path(), Vec::new()).expect("restart");
        let resident = restarted.resident_bytes();
        assert!(
            resident < 2 * COMMANDS * 1024,
            "{resident} bytes held after a restart"
        );
        let again = all_outputs(&restarted);
        assert_eq!(again, outputs);
        let last = again.last().expect("an output");
        let got = restarted.inner.get(&last.id.to_string()).expect("get");
        assert_eq!(*got, BashEvent::Output(last.clone()));
        // The socket's replay reads them one at a time, in storage order.
        let replayed: Vec<Arc<BashEvent>> = restarted.stored_events().collect();
        assert_eq!(replayed.len(), 2 * COMMANDS);
        assert_eq!(
            replayed.last().map(|e| &**e),
            Some(&BashEvent::Output(last.clone()))
        );
        assert!(restarted.resident_bytes() < CACHE_BUDGET + 2 * COMMANDS * 1024);
    }

    fn output_at(micros: i64) -> Arc<BashEvent> {
        Arc::new(BashEvent::Output(BashOutput {
            id: HexUuid::new_v4(),
            timestamp: utc_timestamp(micros),
            command_id: HexUuid::new_v4(),
            order: 0,
            exit_code: Some(0),
            stdout: Some("x".into()),
            stderr: None,
        }))
    }

    fn event_id(event: &BashEvent) -> String {
        match event {
            BashEvent::Output(output) => output.id.to_string(),
            BashEvent::Command(command) => command.id.to_string(),
            _ => String::new(),
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|item| {
                item.expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    }

    /// "Older" is the timestamp of the event (in its file name), strictly before the cutoff.
    #[test]
    fn purge_deletes_events_before_the_cutoff() {
        let dir = tempfile::tempdir().expect("temp dir");
        let service = BashService::new(dir.path(), Vec::new()).expect("service");
        let t0 = 1_777_889_702_118_204;
        let events: Vec<_> = (0..3).map(|n| output_at(t0 + n * 1_000_000)).collect();
        for (n, event) in (0..).zip(&events) {
            service
                .inner
                .store(Arc::clone(event), t0 + n * 1_000_000)
                .expect("store");
        }
        assert_eq!(service.inner.purge_older_than(t0 + 1_000_000), 1);
        assert!(service.inner.get(&event_id(&events[0])).is_none());
        assert!(service.inner.get(&event_id(&events[1])).is_some());
        assert_eq!(files(dir.path()).len(), 2);
        let page = service.inner.search(&Search {
            limit: 100,
            ..Search::default()
        });
        assert_eq!(page.items.len(), 2);
        assert_eq!(service.inner.purge_older_than(t0 + 1_000_000), 0);
        assert_eq!(service.inner.purge_older_than(t0 + 10_000_000), 2);
        assert!(files(dir.path()).is_empty());
        assert_eq!(service.resident_bytes(), 0);
    }

    /// Waits (bounded) until `done` holds.
    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The loop purges at once, then again on every pass; new events stay; dropping its
    /// guard stops it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_retention_loop_purges_old_events_until_stopped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let service = BashService::new(dir.path(), Vec::new()).expect("service");
        let hour = 3_600_000_000;
        let now = now_micros();
        let old = output_at(now - hour);
        let new = output_at(now);
        service
            .inner
            .store(Arc::clone(&old), now - hour)
            .expect("store");
        service.inner.store(Arc::clone(&new), now).expect("store");
        let task =
            service.spawn_retention_every(Duration::from_secs(60), Duration::from_millis(20));
        wait_until("the old event is purged", || {
            service.inner.get(&event_id(&old)).is_none()
        })
        .await;
        let page = service.inner.search(&Search {
            limit: 100,
            ..Search::default()
        });
        let ids: Vec<String> = page.items.iter().map(|item| event_id(&item.0)).collect();
        assert_eq!(ids, vec![event_id(&new)]);
        assert_eq!(files(dir.path()).len(), 1);
        assert!(files(dir.path())[0].ends_with(&event_id(&new)));

        // A later pass catches what became old since.
        let older = output_at(now - 2 * hour);
        service
            .inner
            .store(Arc::clone(&older), now - 2 * hour)
            .expect("store");
        wait_until("the later old event is purged", || {
            service.inner.get(&event_id(&older)).is_none()
        })
        .await;
        assert!(service.inner.get(&event_id(&new)).is_some());

        drop(task);
        wait_until("the loop let go of the store", || {
            Arc::strong_count(&service.inner) == 1
        })
        .await;
    }

    #[test]
    fn the_retention_period_is_half_the_window_but_at_least_a_minute() {
        assert_eq!(retention_interval(1), Duration::from_secs(60));
        assert_eq!(retention_interval(121), Duration::from_millis(60_500));
        assert_eq!(retention_interval(7200), Duration::from_secs(3600));
    }

    #[test]
    fn output_is_chunked_by_characters() {
        let mut decoded = Decoded::default();
        assert_eq!(decoded.take_rest(), None);
        decoded.push_str("hé");
        decoded.push_str("llo");
        assert_eq!(decoded.take_rest().as_deref(), Some("héllo"));
        let mut big = Decoded::default();
        big.push_str(&"é".repeat(MAX_CONTENT_CHARS + 3));
        let chunk = big.take_chunk().unwrap_or_default();
        assert_eq!(chunk.chars().count(), MAX_CONTENT_CHARS);
        assert!(big.take_chunk().is_none());
        assert_eq!(big.take_rest().as_deref(), Some("ééé"));
    }
}
