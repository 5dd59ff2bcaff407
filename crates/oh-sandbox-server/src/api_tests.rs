//! The runtime API and the lifecycle over an in-memory backend: every bad input is a 4xx
//! with a JSON `detail`, never a 5xx, and the state machine behaves as the clients expect.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::{self, AppState};
use crate::backend::Backend;
use crate::backend::fake::FakeBackend;
use crate::config::Config;
use crate::sandboxes::Sandboxes;
use crate::store::Store;

pub(crate) const KEY: &str = "unit-test-key";

pub(crate) struct Harness {
    pub(crate) router: axum::Router,
    pub(crate) fake: FakeBackend,
    pub(crate) sandboxes: Arc<Sandboxes>,
    pub(crate) state: tempfile::TempDir,
}

/// A server answering `/health` (what sandboxes of the fake backend point at).
async fn health_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

pub(crate) async fn harness(configure: impl FnOnce(&mut Config)) -> Harness {
    let state = tempfile::tempdir().unwrap();
    let fake = FakeBackend::new(health_server().await);
    harness_on(state, fake, configure).await
}

async fn harness_on(
    state: tempfile::TempDir,
    fake: FakeBackend,
    configure: impl FnOnce(&mut Config),
) -> Harness {
    let mut config = Config::new(state.path(), KEY);
    config.start_wait = Duration::from_secs(5);
    configure(&mut config);
    let store = Store::open(state.path()).unwrap();
    let records = store.load().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(fake.clone());
    let sandboxes = Arc::new(Sandboxes::new(
        Arc::new(config.clone()),
        backend,
        store,
        records,
    ));
    sandboxes.recover().await.unwrap();
    let mut router = api::router(AppState {
        sandboxes: Arc::clone(&sandboxes),
        keys: oh_server::ApiKeys::new(&config.api_keys),
    });
    if let Some(users) = &config.users_file {
        router = router.merge(crate::cloud::router(crate::cloud::CloudState {
            sandboxes: Arc::clone(&sandboxes),
            users: crate::users::UsersHandle::open(users).unwrap(),
        }));
    }
    Harness {
        router,
        fake,
        sandboxes,
        state,
    }
}

impl Harness {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.raw(
            method,
            path,
            Some(KEY),
            body.map(|b| ("application/json", b.to_string())),
        )
        .await
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, String)>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("X-API-Key", key);
        }
        let request = match body {
            Some((content_type, body)) => request
                .header("content-type", content_type)
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("not JSON ({status}): {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }
}

fn start(session: &str) -> Value {
    json!({"image": "agent:1", "session_id": session,
           "command": "/usr/local/bin/openhands-agent-server --port 60000",
           "working_dir": "/", "environment": {"FORWARDED": "yes"},
           "run_as_user": 10001, "fs_group": 10001, "runtime_class": "sysbox-runc"})
}

#[tokio::test]
async fn keys_are_required_except_on_health() {
    let h = harness(|_| {}).await;
    let (status, body) = h.raw("GET", "/list", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "missing X-API-Key");
    let (status, _) = h.raw("GET", "/list", Some("wrong"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h
        .raw(
            "POST",
            "/start",
            Some("wrong"),
            Some(("application/json", start("s").to_string())),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        h.fake.engine().workloads.is_empty(),
        "an unauthenticated start ran"
    );
    let (status, body) = h.raw("GET", "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn bad_requests_are_4xx_with_a_detail() {
    let h = harness(|_| {}).await;
    let with = |patch: Value| {
        let mut body = start("bad");
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (with(json!({"session_id": ""})), "session_id"),
        (with(json!({"session_id": "a/b"})), "session_id"),
        (with(json!({"session_id": "x".repeat(201)})), "session_id"),
        (with(json!({"image": ""})), "image"),
        (with(json!({"image": "a b"})), "image"),
        (with(json!({"resource_factor": 3})), "resource_factor"),
        (with(json!({"run_as_user": 0})), "root"),
        (with(json!({"working_dir": "relative"})), "working_dir"),
        (
            with(json!({"environment": {"OH_SESSION_API_KEYS_0": "x"}})),
            "reserved",
        ),
        (with(json!({"environment": {"1BAD": "x"}})), "name"),
        (with(json!({"environment": {"A": "nul\u{0}"}})), "NUL"),
        (with(json!({"command": "unbalanced 'quote"})), "command"),
        (with(json!({"command": ""})), "command"),
        (with(json!({"command": "server --port 99999"})), "port"),
        (with(json!({"image": 7})), "invalid body"),
        (json!({"image": "a:1"}), "session_id"),
    ];
    for (body, word) in cases {
        let (status, answer) = h.call("POST", "/start", Some(body.clone())).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} → {answer}"
        );
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.contains(word), "{body}: {detail:?} lacks {word:?}");
    }
    let (status, _) = h
        .raw(
            "POST",
            "/start",
            Some(KEY),
            Some(("text/plain", start("s").to_string())),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, _) = h
        .raw(
            "POST",
            "/start",
            Some(KEY),
            Some(("application/json", "{not json".into())),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        h.call("GET", "/sessions/nope", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call("GET", "/runtime/nope", None).await.0,
        StatusCode::NOT_FOUND
    );
    let unknown = Some(json!({"runtime_id": "nope"}));
    for action in ["/pause", "/resume", "/stop"] {
        assert_eq!(
            h.call("POST", action, unknown.clone()).await.0,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        h.call("GET", "/no/such/route", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.call("GET", "/start", None).await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        h.call("GET", "/image_exists", None).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let many: String = (0..101).map(|i| format!("ids=s{i}&")).collect();
    assert_eq!(
        h.call("GET", &format!("/sessions/batch?{many}"), None)
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(
        h.fake.engine().workloads.is_empty(),
        "a bad request reached the engine"
    );
}

#[tokio::test]
async fn the_lifecycle_as_the_clients_see_it() {
    let h = harness(|_| {}).await;
    let (status, runtime) = h.call("POST", "/start", Some(start("s1"))).await;
    assert_eq!(status, StatusCode::OK, "{runtime}");
    assert_eq!(runtime["status"], "running");
    assert_eq!(runtime["pod_status"], "ready");
    let key = runtime["session_api_key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 64, "a 256-bit key");
    // What the engine was asked for.
    {
        let engine = h.fake.engine();
        let (spec, _) = engine.workloads.values().next().unwrap();
        assert_eq!(spec.user, "10001:10001");
        assert_eq!(spec.port, 60000);
        assert_eq!(
            spec.runtime, None,
            "sysbox-runc is not on this engine: default runtime"
        );
        assert_eq!(
            spec.entrypoint.as_deref(),
            Some(
                &[
                    "/usr/local/bin/openhands-agent-server".to_owned(),
                    "--port".into(),
                    "60000".into()
                ][..]
            )
        );
        let env: Vec<&str> = spec.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(env, ["FORWARDED", "OH_SESSION_API_KEYS_0"]);
        assert_eq!(spec.env[1].1.expose(), key);
    }
    // The same session is the same runtime.
    let (_, again) = h.call("POST", "/start", Some(start("s1"))).await;
    assert_eq!(again["runtime_id"], runtime["runtime_id"]);
    let id = json!({"runtime_id": runtime["runtime_id"]});
    let (_, paused) = h.call("POST", "/pause", Some(id.clone())).await;
    assert_eq!(
        (paused["status"].as_str(), paused["pod_status"].as_str()),
        (Some("paused"), Some("paused"))
    );
    assert_eq!(
        paused["session_api_key"],
        key.as_str(),
        "the key is kept while paused"
    );
    assert_eq!(
        h.call("POST", "/pause", Some(id.clone())).await.1["status"],
        "paused"
    );
    let (_, resumed) = h.call("POST", "/resume", Some(id.clone())).await;
    assert_eq!(resumed["status"], "running");
    assert_eq!(resumed["session_api_key"], key.as_str());
    assert_eq!(
        h.call("POST", "/resume", Some(id.clone())).await.1["status"],
        "running"
    );
    let (_, listed) = h.call("GET", "/list", None).await;
    assert_eq!(listed["runtimes"].as_array().unwrap().len(), 1);
    let (_, batch) = h
        .call("GET", "/sessions/batch?ids=s1,unknown&ids=other", None)
        .await;
    assert_eq!(batch.as_array().unwrap().len(), 1);
    let (_, stopped) = h.call("POST", "/stop", Some(id.clone())).await;
    assert_eq!(
        (stopped["status"].as_str(), stopped["pod_status"].as_str()),
        (Some("stopped"), Some("not found"))
    );
    assert!(
        h.fake.engine().workloads.is_empty(),
        "stop left the workload"
    );
    assert_eq!(
        h.call("POST", "/stop", Some(id.clone())).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.call("POST", "/resume", Some(id)).await.0,
        StatusCode::CONFLICT
    );
    assert!(
        h.call("GET", "/list", None).await.1["runtimes"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // A stopped session starts anew.
    let (_, fresh) = h.call("POST", "/start", Some(start("s1"))).await;
    assert_ne!(fresh["runtime_id"], runtime["runtime_id"]);
    assert_ne!(fresh["session_api_key"], key.as_str());
}

#[tokio::test]
async fn capacity_missing_images_and_an_absent_engine() {
    let h = harness(|c| c.max_sandboxes = 1).await;
    assert_eq!(
        h.call("POST", "/start", Some(start("a"))).await.0,
        StatusCode::OK
    );
    let (status, body) = h.call("POST", "/start", Some(start("b"))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("capacity"));
    let id = h.sandboxes.by_session("a").unwrap().runtime_id;
    h.call("POST", "/stop", Some(json!({"runtime_id": id})))
        .await;
    let mut missing = start("m");
    missing["image"] = json!("missing:1");
    let (status, body) = h.call("POST", "/start", Some(missing)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("(session m)") && detail.contains("status error"),
        "{detail}"
    );
    let (_, record) = h.call("GET", "/sessions/m", None).await;
    assert_eq!(
        (record["status"].as_str(), record["pod_status"].as_str()),
        (Some("error"), Some("failed"))
    );
    h.fake.engine().fail_create = Some("engine down".into());
    let (status, body) = h.call("POST", "/start", Some(start("u"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(h.fake.engine().workloads.is_empty());
}

#[tokio::test]
async fn records_survive_a_restart_and_the_engine_is_reconciled() {
    let h = harness(|_| {}).await;
    for s in ["kept", "gone", "paused"] {
        h.call("POST", "/start", Some(start(s))).await;
    }
    let paused = h.sandboxes.by_session("paused").unwrap().runtime_id;
    h.call("POST", "/pause", Some(json!({"runtime_id": paused})))
        .await;
    let gone = h.sandboxes.by_session("gone").unwrap().handle.unwrap();
    let (state, fake) = (h.state, h.fake);
    drop(h.router);
    drop(h.sandboxes);
    {
        let mut engine = fake.engine();
        engine.workloads.remove(&gone);
        // A workload of this server without a record.
        let (mut spec, observed) = engine.workloads.values().next().unwrap().clone();
        spec.labels
            .insert(crate::backend::RUNTIME_LABEL.into(), "unknown".into());
        engine.workloads.insert("stray".into(), (spec, observed));
    }
    let h = harness_on(state, fake, |_| {}).await;
    let status = |s: &str| {
        h.sandboxes
            .runtime(&h.sandboxes.by_session(s).unwrap())
            .status
            .to_string()
    };
    assert_eq!(status("kept"), "running");
    assert_eq!(status("paused"), "paused");
    assert_eq!(status("gone"), "stopped");
    assert!(
        !h.fake.engine().workloads.contains_key("stray"),
        "the stray was kept"
    );
    assert_eq!(h.fake.engine().workloads.len(), 2);
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the body of a start, the answer is a JSON 2xx/4xx, never a 5xx.
        #[test]
        fn any_start_body_is_answered_without_a_5xx(
            body in prop_oneof![
                any::<Vec<u8>>().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
                "\\PC{0,200}",
                (any::<String>(), any::<String>(), proptest::collection::btree_map("\\PC{0,20}", "\\PC{0,20}", 0..4))
                    .prop_map(|(image, session, env)| json!({"image": image, "session_id": session, "environment": env, "command": session}).to_string()),
            ]
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let h = harness(|c| c.start_wait = Duration::from_millis(200)).await;
                let (status, value) = h.raw("POST", "/start", Some(KEY), Some(("application/json", body.clone()))).await;
                prop_assert!(!status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE, "{body:?} → {status} {value}");
                prop_assert!(value.is_object());
                Ok(())
            })?;
        }
    }
}
