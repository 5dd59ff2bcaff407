//! A scripted fake runtime API, in-process agent servers and a tracing capture.
#![allow(unreachable_pub, reason = "test helpers, shared by the suite")]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The runtime API key the fake accepts.
pub const API_KEY: &str = "sk-runtime-api-4242";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub api_key: Option<String>,
    pub session_key: Option<String>,
    pub body: Value,
}

impl Call {
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// What one `GET /sessions/{id}` does.
#[derive(Debug, Clone)]
pub enum Step {
    /// Sets the pod status (it stays until the next step) and answers.
    Pod(&'static str),
    /// Sets a fatal pod status with logs and restart reasons, and answers.
    Fatal {
        pod: &'static str,
        logs: &'static str,
        reasons: Vec<&'static str>,
    },
    /// Answers this status with a `detail`, changing nothing.
    Fail(u16),
}

#[derive(Debug)]
struct Session {
    runtime_id: String,
    status: String,
    pod_status: String,
    url: String,
    key: String,
    script: VecDeque<Step>,
    pod_logs: Option<String>,
    restart_reasons: Vec<String>,
}

impl Session {
    fn json(&self, session_id: &str) -> Value {
        json!({
            "runtime_id": self.runtime_id,
            "session_id": session_id,
            "url": self.url,
            "session_api_key": self.key,
            "status": self.status,
            "pod_status": self.pod_status,
            "restart_count": self.restart_reasons.len(),
            "restart_reasons": self.restart_reasons,
            "pod_logs": self.pod_logs,
        })
    }
}

#[derive(Debug, Default)]
struct Fake {
    sessions: BTreeMap<String, Session>,
    calls: Vec<Call>,
    started: u32,
    start_url: String,
    start_key: String,
    start_script: Vec<Step>,
    resume_to: Option<(String, String)>,
    resume_fails: bool,
    /// The number of calls so far, for tests that wait for one.
    count: Option<tokio::sync::watch::Sender<usize>>,
}

type Shared = Arc<Mutex<Fake>>;

/// The fake runtime API on a free loopback port; stops when dropped.
pub struct FakeApi {
    pub url: String,
    state: Shared,
    _stop: oneshot::Sender<()>,
}

impl FakeApi {
    /// A runtime API whose `/start` hands out the agent server at `url` with `key`.
    pub async fn start(url: &str, key: &str) -> Self {
        let state: Shared = Arc::new(Mutex::new(Fake {
            start_url: url.to_owned(),
            start_key: key.to_owned(),
            count: Some(tokio::sync::watch::channel(0).0),
            ..Fake::default()
        }));
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            // A trailing slash, as users write it.
            url: format!("http://{addr}/"),
            state,
            _stop: stop,
        }
    }

    /// The `GET /sessions/{id}` steps of the next started runtime (after them, its pod
    /// status stays as the last step left it; `ready` without steps).
    pub fn script(&self, steps: Vec<Step>) {
        self.state.lock().unwrap().start_script = steps;
    }

    /// A runtime that already exists for `session_id`.
    pub fn seed(&self, session_id: &str, runtime_id: &str, status: &str, url: &str, key: &str) {
        self.state.lock().unwrap().sessions.insert(
            session_id.to_owned(),
            Session {
                runtime_id: runtime_id.to_owned(),
                status: status.to_owned(),
                pod_status: if status == "running" {
                    "ready"
                } else {
                    "not found"
                }
                .to_owned(),
                url: url.to_owned(),
                key: key.to_owned(),
                script: VecDeque::new(),
                pod_logs: None,
                restart_reasons: Vec::new(),
            },
        );
    }

    /// `/resume` moves the runtime to the agent server at `url` with a new `key`.
    pub fn resume_to(&self, url: &str, key: &str) {
        self.state.lock().unwrap().resume_to = Some((url.to_owned(), key.to_owned()));
    }

    /// `/resume` answers 500.
    pub fn fail_resume(&self) {
        self.state.lock().unwrap().resume_fails = true;
    }

    /// Resolves once the fake has received `n` calls.
    pub async fn calls_reach(&self, n: usize) {
        let mut count = {
            let state = self.state.lock().unwrap();
            state.count.as_ref().unwrap().subscribe()
        };
        let _ = count.wait_for(|c| *c >= n).await;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// `METHOD path` of every call so far.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::line).collect()
    }

    /// The runtime status of a session.
    pub fn status(&self, session_id: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        state.sessions.get(session_id).map(|s| s.status.clone())
    }
}

fn answer(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn detail(status: u16, text: &str) -> Response {
    answer(status, json!({ "detail": text }))
}

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    };
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let call = Call {
        method: method.to_string(),
        path: uri.path().to_owned(),
        api_key: header("x-api-key"),
        session_key: header("x-session-api-key"),
        body: body.clone(),
    };
    let mut fake = state.lock().unwrap();
    fake.calls.push(call.clone());
    let count = fake.calls.len();
    if let Some(sender) = &fake.count {
        sender.send_replace(count);
    }
    if call.api_key.as_deref() != Some(API_KEY) {
        return detail(401, "invalid API key");
    }
    let runtime_id = body["runtime_id"].as_str().unwrap_or_default().to_owned();
    let by_runtime = |fake: &mut Fake| {
        fake.sessions
            .iter()
            .find(|(_, s)| s.runtime_id == runtime_id)
            .map(|(id, _)| id.clone())
    };
    match (call.method.as_str(), call.path.as_str()) {
        ("GET", path) if path.starts_with("/sessions/") => {
            let session_id = path.trim_start_matches("/sessions/");
            let Some(session) = fake.sessions.get_mut(session_id) else {
                return detail(404, "Session not found");
            };
            match session.script.pop_front() {
                Some(Step::Fail(code)) => return detail(code, "scripted failure"),
                Some(Step::Pod(pod)) => session.pod_status = pod.to_owned(),
                Some(Step::Fatal { pod, logs, reasons }) => {
                    session.pod_status = pod.to_owned();
                    session.pod_logs = Some(logs.to_owned());
                    session.restart_reasons = reasons.into_iter().map(String::from).collect();
                }
                None => {}
            }
            answer(200, session.json(session_id))
        }
        ("POST", "/start") => {
            let session_id = body["session_id"].as_str().unwrap_or_default().to_owned();
            fake.started += 1;
            let session = Session {
                runtime_id: format!("rt-{}", fake.started),
                status: "running".into(),
                pod_status: "ready".into(),
                url: fake.start_url.clone(),
                key: fake.start_key.clone(),
                script: std::mem::take(&mut fake.start_script).into(),
                pod_logs: None,
                restart_reasons: Vec::new(),
            };
            let json = session.json(&session_id);
            fake.sessions.insert(session_id, session);
            answer(201, json)
        }
        ("POST", "/resume") => {
            if fake.resume_fails {
                return detail(500, "resume failed");
            }
            let Some(id) = by_runtime(&mut fake) else {
                return detail(404, "Runtime not found");
            };
            let resume_to = fake.resume_to.clone();
            let session = fake.sessions.get_mut(&id).unwrap();
            session.status = "running".into();
            session.pod_status = "ready".into();
            if let Some((url, key)) = resume_to {
                session.url = url;
                session.key = key;
            }
            answer(200, json!({ "runtime_id": runtime_id }))
        }
        ("POST", action @ ("/pause" | "/stop")) => {
            let Some(id) = by_runtime(&mut fake) else {
                return detail(404, "Runtime not found");
            };
            let session = fake.sessions.get_mut(&id).unwrap();
            session.status = if action == "/pause" {
                "paused"
            } else {
                "stopped"
            }
            .into();
            // An empty body, which the client must accept.
            StatusCode::OK.into_response()
        }
        _ => detail(404, "Not Found"),
    }
}

/// An agent server in this process requiring `key`; stops when dropped.
pub struct AgentServer {
    pub url: String,
    pub key: String,
    _dir: tempfile::TempDir,
    _server: oh_server::Spawned,
}

impl AgentServer {
    pub async fn start(key: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = oh_server::Config::under(dir.path());
        config.port = 0;
        config.session_api_keys = vec![key.into()];
        config.secret_key = Some(key.into());
        let server = oh_server::Server::bind(config).await.unwrap().spawn();
        Self {
            url: server.url(),
            key: key.to_owned(),
            _dir: dir,
            _server: server,
        }
    }
}

pub use oh_testkit::logs::Logs;
