//! Deferred init (`OH_DEFERRED_INIT=true`): a dormant server answers its probes and
//! `/api/init` only, `POST /api/init` turns it into the server its body describes (keys,
//! secret key, paths, command environment), and servers started normally answer 404.

use super::common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Reply as HttpReply, Socket, TestServer, agent_json, create_body, send, send_exact};
use hyper::Method;
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

/// The dormant server's secret key: the init key.
const BOOT_SECRET: &str = "bootstrap-secret";
/// The user's session key, delivered by the init.
const USER_KEY: &str = "user-session-key";
/// The user's secret key for secrets at rest.
const USER_SECRET: &str = "user-secret-key";

async fn dormant() -> TestServer {
    dormant_with(Some(BOOT_SECRET)).await
}

async fn dormant_with(secret: Option<&str>) -> TestServer {
    TestServer::start_with(None, |config| {
        config.deferred_init = true;
        config.secret_key = secret.map(Into::into);
    })
    .await
}

async fn init(server: &TestServer, key: Option<&str>, body: &Value) -> HttpReply {
    init_raw(server, key, Some(Bytes::from(body.to_string()))).await
}

async fn init_raw(server: &TestServer, key: Option<&str>, body: Option<Bytes>) -> HttpReply {
    let headers: Vec<(&str, String)> = key
        .map(|key| ("X-Init-API-Key", key.to_owned()))
        .into_iter()
        .collect();
    send(Method::POST, &server.url("/api/init"), &headers, body).await
}

async fn status(server: &TestServer) -> Value {
    let reply = send(Method::GET, &server.url("/api/init"), &[], None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()
}

/// The init body of a user whose data lives under `<root>/user`.
fn user_body(server: &TestServer) -> Value {
    let user = server.root().join("user");
    json!({
        "session_api_keys": [USER_KEY],
        "secret_key": USER_SECRET,
        "conversations_path": user.join("conversations"),
        "bash_events_dir": user.join("bash_events"),
        "allow_cors_origins": ["https://app.example"],
        "max_concurrent_runs": 4,
        "env": {"OH_TEST_INIT_ENV": "from-init"},
        "webhooks": [],
        "telemetry": null,
    })
}

async fn get_with(server: &TestServer, path: &str, key: Option<&str>) -> HttpReply {
    let headers: Vec<(&str, String)> = key
        .map(|key| ("X-Session-API-Key", key.to_owned()))
        .into_iter()
        .collect();
    send(Method::GET, &server.url(path), &headers, None).await
}

#[tokio::test]
async fn a_dormant_server_answers_probes_and_init_only() {
    let server = dormant().await;
    for path in ["/health", "/alive", "/ready", "/server_info", "/"] {
        let reply = get_with(&server, path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    assert_eq!(
        get_with(&server, "/ready", None).await.json()["status"],
        "ready"
    );
    assert_eq!(
        status(&server).await,
        json!({"state": "dormant", "error": null})
    );
    for (method, path) in [
        (Method::GET, "/api/conversations/count"),
        (Method::POST, "/api/conversations"),
        (Method::POST, "/api/bash/execute_bash_command"),
        (Method::GET, "/api/tools/"),
        (Method::GET, "/api/anything/else"),
    ] {
        let reply = send(
            method.clone(),
            &server.url(path),
            &[],
            Some(Bytes::from_static(b"{}")),
        )
        .await;
        assert_eq!(reply.status, 503, "{method} {path}: {}", reply.text());
        assert_eq!(
            reply.json()["detail"],
            "server is in deferred-init state 'dormant'; call POST /api/init first"
        );
    }
    let id = "3f2c6a1e-8b0d-4c4e-9a57-1d2b3c4d5e6f";
    for path in [
        format!("/sockets/events/{id}"),
        "/sockets/bash-events".to_owned(),
    ] {
        let refused = common::ws_handshake(&server, &path, &[]).await;
        assert_eq!(refused, 503, "{path}");
    }
    assert_eq!(get_with(&server, "/nowhere", None).await.status, 404);
    let wrong_method = send(Method::DELETE, &server.url("/api/init"), &[], None).await;
    assert_eq!(wrong_method.status, 405);
    // Dormant costs nothing: no storage was prepared.
    assert!(!server.root().join("conversations").exists());
    assert!(!server.root().join("bash_events").exists());
}

#[tokio::test]
async fn the_init_key_is_the_boot_secret_key() {
    let server = dormant().await;
    let body = user_body(&server);
    for key in [None, Some("wrong"), Some(""), Some("bootstrap-secretx")] {
        let reply = init(&server, key, &body).await;
        assert_eq!(reply.status, 401, "{key:?}: {}", reply.text());
        assert_eq!(reply.json(), json!({"detail": "Unauthorized"}));
    }
    // The key is checked before the body is read.
    let reply = init_raw(
        &server,
        Some("wrong"),
        Some(Bytes::from_static(b"{not json")),
    )
    .await;
    assert_eq!(reply.status, 401);
    // The session key header is not the init key.
    let reply = send(
        Method::POST,
        &server.url("/api/init"),
        &[("X-Session-API-Key", BOOT_SECRET.to_owned())],
        Some(Bytes::from(body.to_string())),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert_eq!(status(&server).await["state"], "dormant");
}

#[tokio::test]
async fn bad_bodies_are_refused_and_leave_the_server_dormant() {
    let server = dormant().await;
    let key = Some(BOOT_SECRET);
    let mut unknown = user_body(&server);
    unknown["deferred_init"] = json!(false);
    let mut zero_runs = user_body(&server);
    zero_runs["max_concurrent_runs"] = json!(0);
    let mut bad_env = user_body(&server);
    bad_env["env"] = json!({"NOT-A-NAME": "x"});
    let mut env_not_text = user_body(&server);
    env_not_text["env"] = json!({"A": 1});
    for (what, body) in [
        ("unknown field", unknown),
        ("no keys", json!({"secret_key": USER_SECRET})),
        ("empty key list", json!({"session_api_keys": []})),
        ("an empty key", json!({"session_api_keys": [USER_KEY, ""]})),
        ("zero runs", zero_runs),
        ("bad env name", bad_env),
        ("env value not text", env_not_text),
        ("not an object", json!(["a list"])),
    ] {
        let reply = init(&server, key, &body).await;
        assert_eq!(reply.status, 422, "{what}: {}", reply.text());
        assert!(reply.json()["detail"].is_string() || reply.json()["detail"].is_array());
        assert!(!reply.text().contains(USER_KEY), "{what}: a key echoed");
    }
    let not_json = init_raw(&server, key, Some(Bytes::from_static(b"{\"session_api"))).await;
    assert_eq!(not_json.status, 422, "{}", not_json.text());
    assert_eq!(not_json.json()["detail"][0]["type"], "json_invalid");
    let text = send_exact(
        Method::POST,
        &server.url("/api/init"),
        &[
            ("X-Init-API-Key", BOOT_SECRET.to_owned()),
            ("content-type", "text/plain".to_owned()),
        ],
        Some(Bytes::from(user_body(&server).to_string())),
    )
    .await;
    assert_eq!(text.status, 415, "{}", text.text());
    assert_eq!(
        status(&server).await,
        json!({"state": "dormant", "error": null})
    );
}

#[tokio::test]
async fn init_makes_the_server_the_users() {
    let llm = ScriptedLlm::start(vec![]).await.expect("llm");
    let mut server = dormant().await;
    let before = get_with(&server, "/api/conversations/count", Some(USER_KEY)).await;
    assert_eq!(before.status, 503);

    let started = Instant::now();
    let reply = init(&server, Some(BOOT_SECRET), &user_body(&server)).await;
    let latency = started.elapsed();
    println!("POST /api/init took {latency:?}");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"state": "ready", "error": null}));
    assert!(
        latency < Duration::from_secs(2),
        "init took {latency:?}: it should take a few ms"
    );
    assert_eq!(
        status(&server).await,
        json!({"state": "ready", "error": null})
    );

    // Authentication is the init's: its key works, none or another does not.
    assert_eq!(
        get_with(&server, "/api/conversations/count", Some(USER_KEY))
            .await
            .json(),
        json!(0)
    );
    for key in [None, Some(BOOT_SECRET), Some("wrong")] {
        let reply = get_with(&server, "/api/conversations/count", key).await;
        assert_eq!(reply.status, 401, "{key:?}");
    }
    // The probes stay open.
    assert_eq!(get_with(&server, "/health", None).await.status, 200);

    // A second init: 400 with the current (new) secret key, 401 with the old one.
    let again = init(&server, Some(USER_SECRET), &user_body(&server)).await;
    assert_eq!(again.status, 400, "{}", again.text());
    assert_eq!(
        again.json(),
        json!({"detail": "server already in state: ready"})
    );
    let old_key = init(&server, Some(BOOT_SECRET), &user_body(&server)).await;
    assert_eq!(old_key.status, 401);

    // Conversations are stored under the init's conversations_path.
    server.key = Some(USER_KEY.to_owned());
    let id = server_conversation(&server, &llm).await;
    let stored = server
        .root()
        .join("user/conversations")
        .join(id.replace('-', ""));
    assert!(stored.join("meta.json").is_file(), "{stored:?}");
    assert!(!server.root().join("conversations").exists());

    // Commands get the init's environment: the bash routes…
    let output = server
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "printf %s \"$OH_TEST_INIT_ENV\""}),
        )
        .await;
    assert_eq!(output.status, 200, "{}", output.text());
    assert_eq!(output.json()["stdout"], "from-init");
    assert!(server.root().join("user/bash_events").is_dir());

    // …and the agent's terminal.
    llm.push(Reply::tool(
        "terminal",
        json!({"command": "printf '[%s]' \"$OH_TEST_INIT_ENV\""}),
    ));
    llm.push(Reply::tool("finish", json!({"message": "done"})));
    let observation = run_once(&server, &id).await;
    assert!(
        observation.contains("[from-init]"),
        "the terminal did not see the init env: {observation}"
    );
}

/// Creates an idle conversation on the scripted LLM.
async fn server_conversation(server: &TestServer, llm: &ScriptedLlm) -> String {
    let created = server
        .post(
            "/api/conversations",
            create_body(agent_json(&llm.base_url()), &server.root().join("work")),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()["id"].as_str().expect("id").to_owned()
}

/// Sends a message, runs the conversation to its end and returns the text of its last
/// terminal observation.
async fn run_once(server: &TestServer, id: &str) -> String {
    let mut socket = Socket::connect(server, id).await;
    let snapshot = socket.next().await.expect("initial snapshot");
    assert_eq!(snapshot["key"], "full_state");
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": "go", "run": true}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(socket.run_ends_in().await, "finished");
    let events = server.events(id, 100).await;
    events
        .iter()
        .rev()
        .find(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == "terminal")
        .map(|e| e["observation"]["content"].to_string())
        .expect("terminal observation")
}

#[tokio::test]
async fn a_server_without_deferred_init_answers_404() {
    let open = TestServer::start().await;
    let get = send(Method::GET, &open.url("/api/init"), &[], None).await;
    assert_eq!(get.status, 404, "{}", get.text());
    assert!(
        get.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("deferred_init"))
    );
    let post = init(&open, None, &json!({"session_api_keys": ["k"]})).await;
    assert_eq!(post.status, 404, "{}", post.text());

    // With a secret key, POST checks it first (as the reference does).
    let keyed = TestServer::with_key("the-key").await;
    assert_eq!(
        send(Method::GET, &keyed.url("/api/init"), &[], None)
            .await
            .status,
        404
    );
    let body = json!({"session_api_keys": ["k"]});
    assert_eq!(init(&keyed, None, &body).await.status, 401);
    assert_eq!(init(&keyed, Some("the-key"), &body).await.status, 404);
}

#[tokio::test]
async fn without_a_secret_key_the_init_is_open() {
    let server = dormant_with(None).await;
    let reply = init(&server, None, &json!({"session_api_keys": [USER_KEY]})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The secret key is then the first session key, as at boot.
    let again = init(&server, Some(USER_KEY), &json!({"session_api_keys": ["x"]})).await;
    assert_eq!(again.status, 400);
}

#[tokio::test]
async fn a_blank_boot_secret_key_refuses_every_init() {
    let server = TestServer::start_with(None, |config| {
        config.deferred_init = true;
        config.secret_key = None;
        config.secret_key_was_blank = true;
    })
    .await;
    for key in [None, Some("")] {
        let reply = init(&server, key, &json!({"session_api_keys": [USER_KEY]})).await;
        assert_eq!(reply.status, 401, "{key:?}");
    }
}

#[tokio::test]
async fn a_failed_init_is_retryable() {
    let server = dormant().await;
    // A file where the conversations directory should be: building the server fails.
    let blocker = server.root().join("blocker");
    std::fs::write(&blocker, "not a directory").expect("write");
    let mut body = user_body(&server);
    body["conversations_path"] = json!(blocker.join("conversations"));
    let failed = init(&server, Some(BOOT_SECRET), &body).await;
    assert_eq!(failed.status, 500, "{}", failed.text());
    let detail = failed.json()["detail"].as_str().expect("detail").to_owned();
    assert!(detail.contains("conversations_path"), "{detail}");
    let after = status(&server).await;
    assert_eq!(after["state"], "dormant");
    assert_eq!(after["error"], json!(detail));
    assert_eq!(
        get_with(&server, "/api/conversations/count", Some(USER_KEY))
            .await
            .status,
        503
    );

    let retried = init(&server, Some(BOOT_SECRET), &user_body(&server)).await;
    assert_eq!(retried.status, 200, "{}", retried.text());
    assert_eq!(
        status(&server).await,
        json!({"state": "ready", "error": null})
    );
}

#[tokio::test]
async fn a_kept_alive_connection_switches_at_init() {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    let server = dormant().await;
    // One pooled client: its connection is reused across the init.
    let client = Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build_http::<Full<Bytes>>();
    let count = || {
        hyper::Request::get(server.url("/api/conversations/count"))
            .header("x-session-api-key", USER_KEY)
            .body(Full::new(Bytes::new()))
            .expect("request")
    };
    let before = client.request(count()).await.expect("send");
    assert_eq!(before.status(), 503);
    let _ = HttpReply::read(before).await;
    let initialised = client
        .request(
            hyper::Request::post(server.url("/api/init"))
                .header("x-init-api-key", BOOT_SECRET)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(user_body(&server).to_string())))
                .expect("request"),
        )
        .await
        .expect("init");
    assert_eq!(initialised.status(), 200);
    let _ = HttpReply::read(initialised).await;
    let after = client.request(count()).await.expect("send");
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn shutdown_works_dormant_and_initialised() {
    for initialise in [false, true] {
        let server = dormant().await;
        if initialise {
            let reply = init(&server, Some(BOOT_SECRET), &user_body(&server)).await;
            assert_eq!(reply.status, 200);
        }
        tokio::time::timeout(Duration::from_secs(20), server.stop())
            .await
            .expect("the server stops within the drain");
    }
}

/// The warm-pool rotation: data written under an old secret key, a dormant server given a
/// new secret key plus the old one as `previous_secret_keys`. The LLM key and the
/// conversation secret still decrypt, and once saved again they are under the new key
/// only (a server without the previous key reads them).
#[tokio::test]
async fn previous_secret_keys_decrypt_and_saves_reencrypt() {
    let llm = ScriptedLlm::start(vec![]).await.expect("llm");
    let data = tempfile::tempdir().expect("tempdir");
    let conversations = data.path().join("conversations");
    let id = {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = TestServer::start_in(dir, Some("old-user-key"), |config| {
            config.secret_key = Some("old-secret".into());
            config.conversations_path = conversations.clone();
        })
        .await;
        let mut body = create_body(agent_json(&llm.base_url()), &data.path().join("work"));
        body["secrets"] = json!({"MY_TOKEN": {"kind": "StaticSecret", "value": "tok-12345"}});
        let created = old.post("/api/conversations", body).await;
        assert_eq!(created.status, 201, "{}", created.text());
        let id = created.json()["id"].as_str().expect("id").to_owned();
        old.stop().await;
        id
    };

    let mut rotated = dormant().await;
    let reply = init(
        &rotated,
        Some(BOOT_SECRET),
        &json!({
            "session_api_keys": [USER_KEY],
            "secret_key": "new-secret",
            "previous_secret_keys": ["old-secret"],
            "conversations_path": conversations,
        }),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    rotated.key = Some(USER_KEY.to_owned());
    // Saving the metadata (a title change) writes the secrets under the new key.
    let renamed = rotated
        .call(
            Method::PATCH,
            &format!("/api/conversations/{id}"),
            Some(json!({"title": "rotated"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    assert_runs_with_keys(&rotated, &llm, &id).await;
    rotated.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let new_only = TestServer::start_in(dir, Some(USER_KEY), |config| {
        config.secret_key = Some("new-secret".into());
        config.conversations_path = conversations.clone();
    })
    .await;
    assert_runs_with_keys(&new_only, &llm, &id).await;
}

/// Runs the conversation once: the LLM gets the stored key, the terminal the stored secret.
async fn assert_runs_with_keys(server: &TestServer, llm: &ScriptedLlm, id: &str) {
    llm.push(Reply::tool(
        "terminal",
        json!({"command": "printf %s \"$MY_TOKEN\" | wc -c"}),
    ));
    llm.push(Reply::tool("finish", json!({"message": "done"})));
    let before = llm.requests().len();
    let observation = run_once(server, id).await;
    let requests = llm.requests();
    assert_eq!(
        requests[before].header("authorization"),
        Some("Bearer sk-test"),
        "the LLM key decrypted"
    );
    assert!(
        observation.contains('9'),
        "the secret decrypted: {observation}"
    );
}

/// The real binary: `OH_DEFERRED_INIT=true` boots it dormant on the `--host` given, the
/// bootstrap `OH_SECRET_KEY` is the init key, and after the init bash commands see the
/// init's `env` but not the bootstrap key.
#[tokio::test]
async fn the_binary_boots_dormant_from_its_environment() {
    use std::process::{Command, Stdio};
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let root = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let _child = Kill(
        Command::new(env!("CARGO_BIN_EXE_openhands-agent-server"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("OH_DEFERRED_INIT", "true")
            .env("OH_SECRET_KEY", BOOT_SECRET)
            .env(
                "OH_CONVERSATIONS_PATH",
                root.path().join("boot-conversations"),
            )
            .env("OH_BASH_EVENTS_DIR", root.path().join("boot-bash"))
            .env(
                "OPENHANDS_AGENT_SERVER_CONFIG_PATH",
                root.path().join("none.json"),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let dormant = loop {
        let probe = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(("127.0.0.1", port)),
        )
        .await;
        if matches!(probe, Ok(Ok(_))) {
            break send(Method::GET, &format!("{base}/api/init"), &[], None).await;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(dormant.json(), json!({"state": "dormant", "error": null}));

    let body = json!({
        "session_api_keys": [USER_KEY],
        "secret_key": USER_SECRET,
        "conversations_path": root.path().join("user/conversations"),
        "bash_events_dir": root.path().join("user/bash"),
        "env": {"OH_TEST_INIT_ENV": "from-init", "OH_SECRET_KEY": "must-not-pass"},
    });
    let reply = send(
        Method::POST,
        &format!("{base}/api/init"),
        &[("X-Init-API-Key", BOOT_SECRET.to_owned())],
        Some(Bytes::from(body.to_string())),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let output = send(
        Method::POST,
        &format!("{base}/api/bash/execute_bash_command"),
        &[("X-Session-API-Key", USER_KEY.to_owned())],
        Some(Bytes::from(
            json!({"command": "env | grep -e OH_TEST_INIT_ENV -e OH_SECRET_KEY -e bootstrap; true"})
                .to_string(),
        )),
    )
    .await;
    assert_eq!(output.status, 200, "{}", output.text());
    let stdout = output.json()["stdout"].as_str().unwrap_or("").to_owned();
    assert!(stdout.contains("OH_TEST_INIT_ENV=from-init"), "{stdout}");
    assert!(!stdout.contains("OH_SECRET_KEY"), "{stdout}");
    assert!(!stdout.contains(BOOT_SECRET), "{stdout}");
    assert!(!root.path().join("boot-conversations").exists());
    assert!(root.path().join("user/conversations").is_dir());
}
