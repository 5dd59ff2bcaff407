//! A scripted fake Cloud API, in-process agent servers and a tracing capture.
#![allow(unreachable_pub, reason = "test helpers, shared by the suite")]

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// The Cloud API key the fake accepts.
pub const API_KEY: &str = "sk-cloud-api-7171";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub session_key: Option<String>,
    pub body: Vec<u8>,
}

impl Call {
    /// `METHOD path[?query]`.
    pub fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// What one `GET /api/v1/sandboxes?id=` does for a sandbox.
#[derive(Debug, Clone)]
pub enum Step {
    /// Sets the status (it stays until the next step) and answers.
    Status(&'static str),
    /// Answers this status with a `detail`, changing nothing.
    Fail(u16),
    /// Answers `[null]`, as for an unknown id.
    Null,
}

#[derive(Debug)]
struct Sandbox {
    status: String,
    url: String,
    key: String,
    script: VecDeque<Step>,
}

impl Sandbox {
    fn json(&self, id: &str) -> Value {
        let running = self.status == "RUNNING";
        json!({
            "id": id,
            "created_by_user_id": "user-1",
            "sandbox_spec_id": "spec",
            "status": self.status,
            "session_api_key": if running { Value::from(self.key.clone()) } else { Value::Null },
            "exposed_urls": if running {
                json!([
                    {"name": "VSCODE", "url": "http://127.0.0.1:1/vscode", "port": 60001},
                    {"name": "AGENT_SERVER", "url": format!("{}/", self.url), "port": 60000},
                ])
            } else {
                Value::Null
            },
            "created_at": "2026-01-01T00:00:00Z",
        })
    }
}

#[derive(Debug, Default)]
struct Fake {
    sandboxes: BTreeMap<String, Sandbox>,
    calls: Vec<Call>,
    created: u32,
    agent_url: String,
    agent_key: String,
    create_script: Vec<Step>,
    resume_to: Option<(String, String)>,
    settings: Value,
    secrets: Value,
    settings_failures: VecDeque<u16>,
}

type Shared = Arc<Mutex<Fake>>;

/// The fake Cloud API on a free loopback port; stops when dropped.
pub struct FakeCloud {
    pub url: String,
    state: Shared,
    _stop: oneshot::Sender<()>,
}

impl FakeCloud {
    /// A Cloud API whose new sandboxes serve the agent server at `url` with `key`.
    pub async fn start(url: &str, key: &str) -> Self {
        let state: Shared = Arc::new(Mutex::new(Fake {
            agent_url: url.to_owned(),
            agent_key: key.to_owned(),
            settings: json!({}),
            secrets: json!({"secrets": []}),
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

    /// The base URL without the trailing slash.
    pub fn base(&self) -> String {
        self.url.trim_end_matches('/').to_owned()
    }

    /// The status steps of the next created sandbox (it starts `STARTING`; after the steps
    /// its status stays as the last one left it).
    pub fn script(&self, steps: Vec<Step>) {
        self.state.lock().unwrap().create_script = steps;
    }

    /// A sandbox that already exists.
    pub fn seed(&self, id: &str, status: &str, steps: Vec<Step>) {
        let mut fake = self.state.lock().unwrap();
        let sandbox = Sandbox {
            status: status.to_owned(),
            url: fake.agent_url.clone(),
            key: fake.agent_key.clone(),
            script: steps.into(),
        };
        fake.sandboxes.insert(id.to_owned(), sandbox);
    }

    /// `…/resume` moves the sandbox to the agent server at `url` with a new `key`.
    pub fn resume_to(&self, url: &str, key: &str) {
        self.state.lock().unwrap().resume_to = Some((url.to_owned(), key.to_owned()));
    }

    /// What `GET /api/v1/users/me` answers.
    pub fn settings(&self, settings: Value) {
        self.state.lock().unwrap().settings = settings;
    }

    /// The next `GET /api/v1/users/me` calls answer these statuses.
    pub fn fail_settings(&self, statuses: Vec<u16>) {
        self.state.lock().unwrap().settings_failures = statuses.into();
    }

    /// What `GET …/settings/secrets` answers.
    pub fn secrets(&self, secrets: Value) {
        self.state.lock().unwrap().secrets = secrets;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// `METHOD path[?query]` of every call so far.
    pub fn lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::line).collect()
    }

    /// Whether the sandbox still exists.
    pub fn exists(&self, id: &str) -> bool {
        self.state.lock().unwrap().sandboxes.contains_key(id)
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

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), v.replace("%2F", "/").replace("%3A", ":"))
        })
        .collect()
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
    let call = Call {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        authorization: header("authorization"),
        session_key: header("x-session-api-key"),
        body: body.to_vec(),
    };
    let query = query_pairs(&call.query);
    let mut fake = state.lock().unwrap();
    fake.calls.push(call.clone());
    let path = call.path.trim_start_matches("/api/v1/sandboxes");
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let session_ok = |fake: &Fake, id: &str| {
        fake.sandboxes
            .get(id)
            .is_some_and(|s| call.session_key.as_deref() == Some(s.key.as_str()))
    };
    // Sandbox-scoped settings: the session key only.
    if call.path.starts_with("/api/v1/sandboxes/") && segments.get(1) == Some(&"settings") {
        let id = segments[0];
        if !session_ok(&fake, id) {
            return detail(401, "invalid session key");
        }
        return match segments.len() {
            3 => answer(200, fake.secrets.clone()),
            _ => (StatusCode::OK, "the-secret-value").into_response(),
        };
    }
    if call.authorization.as_deref() != Some(&format!("Bearer {API_KEY}")) {
        return detail(401, "invalid API key");
    }
    if call.path == "/api/v1/users/me" {
        let key_ok = fake
            .sandboxes
            .values()
            .any(|s| call.session_key.as_deref() == Some(s.key.as_str()));
        if !key_ok {
            return detail(401, "invalid session key");
        }
        if let Some(status) = fake.settings_failures.pop_front() {
            return detail(status, "scripted failure");
        }
        return answer(200, fake.settings.clone());
    }
    if !call.path.starts_with("/api/v1/sandboxes") {
        return detail(404, "Not Found");
    }
    match (call.method.as_str(), segments.as_slice()) {
        ("POST", []) => {
            fake.created += 1;
            let id = format!("sb-{}", fake.created);
            let sandbox = Sandbox {
                status: "STARTING".into(),
                url: fake.agent_url.clone(),
                key: fake.agent_key.clone(),
                script: std::mem::take(&mut fake.create_script).into(),
            };
            let json = sandbox.json(&id);
            fake.sandboxes.insert(id, sandbox);
            answer(200, json)
        }
        ("GET", []) => {
            let mut list = Vec::new();
            for (k, id) in &query {
                if k != "id" {
                    continue;
                }
                let Some(sandbox) = fake.sandboxes.get_mut(id) else {
                    list.push(Value::Null);
                    continue;
                };
                match sandbox.script.pop_front() {
                    Some(Step::Fail(code)) => return detail(code, "scripted failure"),
                    Some(Step::Null) => {
                        list.push(Value::Null);
                        continue;
                    }
                    Some(Step::Status(status)) => sandbox.status = status.to_owned(),
                    None => {}
                }
                list.push(sandbox.json(id));
            }
            answer(200, Value::Array(list))
        }
        ("POST", [id, "resume"]) => {
            let resume_to = fake.resume_to.clone();
            let Some(sandbox) = fake.sandboxes.get_mut(*id) else {
                return detail(404, "Sandbox not found");
            };
            sandbox.status = "RUNNING".into();
            if let Some((url, key)) = resume_to {
                sandbox.url = url;
                sandbox.key = key;
            }
            answer(200, json!({"success": true}))
        }
        ("DELETE", [id]) => {
            // The route reads the id from the query string.
            let Some((_, wanted)) = query.iter().find(|(k, _)| k == "sandbox_id") else {
                return detail(422, "sandbox_id missing");
            };
            if wanted != id || fake.sandboxes.remove(wanted).is_none() {
                return detail(404, "Sandbox not found");
            }
            answer(200, json!({"success": true}))
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
