//! Keys stay secret: the real binary never passes them to `/api/bash` commands, whatever
//! form they were configured in (`OH_SESSION_API_KEYS` as a JSON list,
//! `OH_SESSION_API_KEYS_<n>`, `SESSION_API_KEY`, `OH_SECRET_KEY`), and `Debug` of a
//! `Config` or `Server` never shows them.

use super::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::send;
use hyper::Method;
use oh_server::{Config, Server};
use serde_json::json;

/// The key the server accepts (from the JSON-list form).
const KEY: &str = "jsonkey1";

/// Variables holding keys, and the value of each that must not show up.
const KEYS: &[(&str, &str, &str)] = &[
    ("OH_SESSION_API_KEYS", r#"["jsonkey1"]"#, "jsonkey1"),
    ("OH_SESSION_API_KEYS_0", "indexkey0", "indexkey0"),
    ("SESSION_API_KEY", "legacykey1", "legacykey1"),
    ("OH_SECRET_KEY", "secretkey1", "secretkey1"),
];

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn bash_commands_do_not_see_the_server_keys() {
    let root = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut command = Command::new(env!("CARGO_BIN_EXE_openhands-agent-server"));
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env("OH_CONVERSATIONS_PATH", root.path().join("conversations"))
        .env("OH_BASH_EVENTS_DIR", root.path().join("bash_events"))
        .env("OH_WORKSPACE_PATH", root.path())
        .env(
            "OPENHANDS_AGENT_SERVER_CONFIG_PATH",
            root.path().join("none.json"),
        )
        .env("OH_TEST_VISIBLE", "visible")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (name, value, _) in KEYS {
        command.env(name, value);
    }
    let _server = ServerProcess(command.spawn().expect("spawn server"));

    let base = format!("http://127.0.0.1:{port}");
    let headers = [("x-session-api-key", KEY.to_owned())];
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        // Also proves the JSON-list key is the one the server accepts.
        let attempt = tokio::time::timeout(
            Duration::from_secs(20),
            try_send(
                &format!("{base}/api/bash/execute_bash_command"),
                &headers,
                // Only these lines: the values of all keys contain "key".
                json!({"command": "env | grep -i -e key -e OH_TEST", "timeout": 10}),
            ),
        )
        .await;
        if let Ok(Some(reply)) = attempt {
            break reply;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    let stdout = body["stdout"].as_str().unwrap_or_default();
    assert!(
        stdout.contains("OH_TEST_VISIBLE=visible"),
        "`env` printed nothing useful: {body}"
    );
    for (name, _, value) in KEYS {
        assert!(
            !stdout.contains(value) && !stdout.contains(&format!("{name}=")),
            "{name} reached the command:\n{stdout}"
        );
    }
}

/// Sends once; `None` while the server is not listening yet.
async fn try_send(
    url: &str,
    headers: &[(&str, String)],
    body: serde_json::Value,
) -> Option<common::Reply> {
    let port_open = {
        let authority = url.trim_start_matches("http://");
        let addr = authority.split('/').next().unwrap_or_default();
        tokio::net::TcpStream::connect(addr).await.is_ok()
    };
    if !port_open {
        return None;
    }
    Some(
        send(
            Method::POST,
            url,
            headers,
            Some(bytes::Bytes::from(body.to_string())),
        )
        .await,
    )
}

#[tokio::test]
async fn debug_of_config_and_server_never_shows_a_key() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut config = Config::under(root.path());
    config.session_api_keys = vec!["session-key-4242".into(), "second-key-4242".into()];
    config.secret_key = Some("secret-key-4242".into());
    let shown_config = [format!("{config:?}"), format!("{config:#?}")];
    let server = Server::bind(config).await.expect("bind");
    for shown in shown_config
        .into_iter()
        .chain([format!("{server:?}"), format!("{server:#?}")])
    {
        for key in ["session-key-4242", "second-key-4242", "secret-key-4242"] {
            assert!(!shown.contains(key), "{key} in {shown}");
        }
        assert!(shown.contains("workspace_path"), "{shown}");
    }
}
