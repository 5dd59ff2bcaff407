//! The settings store: `/api/settings` (patches, `X-Expose-Secrets`), the custom secrets of
//! `/api/settings/secrets`, LLM profiles, persistence (encrypted, 0600) across a restart,
//! and secret values never in the log.

use std::sync::Arc;

use hyper::Method;
use oh_testkit::logs::Logs;
use serde_json::{Value, json};

use super::common::{Reply, TestServer, send};

const KEY: &str = "settings-test-key";

/// Fails if any of `values` was logged. The capture is the process's one global subscriber: it
/// holds what every test of this binary logged, so the values must be unique to this module.
fn assert_not_logged(values: &[&str]) {
    let text = Logs::global().text();
    assert!(!text.is_empty(), "the log capture is not working");
    for value in values {
        assert!(!text.contains(value), "{value:?} is in the log");
    }
}

async fn keyed_server() -> TestServer {
    Logs::global();
    TestServer::with_key(KEY).await
}

async fn call(server: &TestServer, method: Method, path: &str, body: Option<Value>) -> Reply {
    server.call(method, path, body).await
}

async fn get_exposed(server: &TestServer, path: &str, mode: &str) -> Reply {
    send(
        Method::GET,
        &server.url(path),
        &[
            ("x-session-api-key", KEY.to_owned()),
            ("x-expose-secrets", mode.to_owned()),
        ],
        None,
    )
    .await
}

async fn patch(server: &TestServer, body: Value) -> Reply {
    call(server, Method::PATCH, "/api/settings", Some(body)).await
}

async fn put_secret(server: &TestServer, body: Value) -> Reply {
    call(server, Method::PUT, "/api/settings/secrets", Some(body)).await
}

fn assert_detail(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(reply.json().get("detail").is_some(), "{}", reply.text());
}

#[tokio::test]
async fn defaults_then_patch_with_masking() {
    let server = keyed_server().await;
    let reply = server.get("/api/settings").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["agent_settings"]["llm"]["model"], "gpt-5.6");
    assert_eq!(body["agent_settings"]["llm"]["api_key"], Value::Null);
    assert_eq!(body["llm_api_key_is_set"], false);
    assert_eq!(body["active_profile"], Value::Null);
    assert_eq!(body["misc_settings"], json!({}));
    assert_eq!(body["conversation_settings"]["max_iterations"], 500);
    assert!(body["agent_settings"]["agent_context"]["current_datetime"].is_string());

    let llm_key = "sk-masking-llm-key";
    let reply = patch(
        &server,
        json!({"agent_settings_diff": {
            "llm": {"model": "openai/m", "api_key": llm_key, "aws_secret_access_key": "aws-masking-secret"},
            "mcp_config": {"svc": {"url": "http://mcp", "transport": "sse", "headers": {"Authorization": "Bearer mcp-masking"}},
                           "loc": {"command": "npx", "env": {"TOK": "env-masking"}}},
        }}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert!(!reply.text().contains(llm_key), "{}", reply.text());
    assert_eq!(body["llm_api_key_is_set"], true);
    assert_eq!(body["agent_settings"]["llm"]["api_key"], "**********");
    assert_eq!(body["agent_settings"]["llm"]["model"], "openai/m");
    assert_eq!(
        body["agent_settings"]["mcp_config"]["svc"],
        json!({"url": "http://mcp", "transport": "sse", "headers": {"Authorization": "**********"}, "enabled": true})
    );

    // Absent header: masked. plaintext: the values. encrypted: tokens that round-trip.
    let masked = server.get("/api/settings").await;
    for secret in [
        llm_key,
        "aws-masking-secret",
        "Bearer mcp-masking",
        "env-masking",
    ] {
        assert!(
            !masked.text().contains(secret),
            "{secret} shown without the header"
        );
    }
    assert_eq!(
        masked.json()["agent_settings"]["mcp_config"]["loc"]["env"]["TOK"],
        "**********"
    );
    let plain = get_exposed(&server, "/api/settings", "plaintext")
        .await
        .json();
    assert_eq!(plain["agent_settings"]["llm"]["api_key"], llm_key);
    assert_eq!(
        plain["agent_settings"]["mcp_config"]["svc"]["headers"]["Authorization"],
        "Bearer mcp-masking"
    );
    for mode in ["encrypted", "true", " Encrypted "] {
        let sealed = get_exposed(&server, "/api/settings", mode).await;
        assert_eq!(sealed.status, 200, "{mode}: {}", sealed.text());
        assert!(!sealed.text().contains(llm_key), "{mode} shows the key");
        let token = sealed.json()["agent_settings"]["llm"]["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(token.starts_with("gAAAAA"), "{token}");
        // A token sent back is decrypted, not stored as the key.
        assert_eq!(
            patch(
                &server,
                json!({"agent_settings_diff": {"llm": {"api_key": token}}})
            )
            .await
            .status,
            200
        );
        let plain = get_exposed(&server, "/api/settings", "plaintext")
            .await
            .json();
        assert_eq!(plain["agent_settings"]["llm"]["api_key"], llm_key);
    }
    // A redacted value sent back keeps the stored one.
    let reply = patch(
        &server,
        json!({"agent_settings_diff": {"llm": {"api_key": "**********", "temperature": 0.5}}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let plain = get_exposed(&server, "/api/settings", "plaintext")
        .await
        .json();
    assert_eq!(plain["agent_settings"]["llm"]["api_key"], llm_key);
    assert_eq!(plain["agent_settings"]["llm"]["temperature"], 0.5);
    assert_detail(&get_exposed(&server, "/api/settings", "please").await, 400);

    // A null inside a map removes that entry; misc settings deep-merge.
    let reply = patch(
        &server,
        json!({"agent_settings_diff": {"mcp_config": {"loc": null}}, "misc_settings_diff": {"ui": {"theme": "dark", "tabs": [1]}}}),
    )
    .await;
    let body = reply.json();
    assert_eq!(
        body["agent_settings"]["mcp_config"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["svc"]
    );
    let reply = patch(
        &server,
        json!({"misc_settings_diff": {"ui": {"tabs": [2]}}, "conversation_settings_diff": {"max_iterations": 7}}),
    )
    .await;
    let body = reply.json();
    assert_eq!(
        body["misc_settings"],
        json!({"ui": {"theme": "dark", "tabs": [2]}})
    );
    assert_eq!(body["conversation_settings"]["max_iterations"], 7);
    assert_not_logged(&[
        llm_key,
        "aws-masking-secret",
        "Bearer mcp-masking",
        "env-masking",
    ]);
}

#[tokio::test]
async fn bad_patches_are_4xx_json() {
    let server = keyed_server().await;
    for (body, status) in [
        (json!({}), 400),
        (json!({"unknown": 1}), 400),
        (json!({"agent_settings_diff": null}), 400),
        (json!([1]), 422),
        (json!("x"), 422),
        (json!({"agent_settings_diff": 5}), 422),
        (json!({"misc_settings_diff": []}), 422),
        (json!({"active_profile": 5}), 422),
        (json!({"agent_settings_diff": {"llm": {"model": 5}}}), 422),
        (json!({"agent_settings_diff": {"llm": 5}}), 422),
        (
            json!({"agent_settings_diff": {"tool_concurrency_limit": "x"}}),
            422,
        ),
        (
            json!({"agent_settings_diff": {"mcp_config": {"a": {"transport": "stdio"}}}}),
            422,
        ),
        (
            json!({"agent_settings_diff": {"mcp_config": {"a": {"url": "http://x", "bogus": 1}}}}),
            422,
        ),
        (
            json!({"agent_settings_diff": {"mcp_config": {"a": 7}}}),
            422,
        ),
        (
            json!({"conversation_settings_diff": {"max_iterations": "many"}}),
            422,
        ),
        (json!({"active_profile": "nope"}), 404),
        (json!({"active_agent_profile_id": "nope"}), 404),
        (json!({"active_meta_profile": "nope"}), 404),
    ] {
        let reply = patch(&server, body.clone()).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        assert_detail(&reply, status);
    }
    let raw = send(
        Method::PATCH,
        &server.url("/api/settings"),
        &[("x-session-api-key", KEY.to_owned())],
        Some(bytes::Bytes::from_static(b"{not json")),
    )
    .await;
    assert_detail(&raw, 422);
    // Nothing of the refused patches was kept; unknown keys are dropped.
    let reply = patch(
        &server,
        json!({"agent_settings_diff": {"llm": {"bogus": 1}, "bogus": 2}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["agent_settings"]["llm"]["model"], "gpt-5.6");
    assert!(body["agent_settings"].get("bogus").is_none());
    assert!(body["agent_settings"]["llm"].get("bogus").is_none());
    assert_eq!(body["agent_settings"]["mcp_config"], json!({}));
    // A null for a whole section restores its default; clearing pointers is allowed.
    let reply = patch(
        &server,
        json!({"agent_settings_diff": {"llm": null}, "active_profile": null}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn custom_secrets_crud() {
    let server = keyed_server().await;
    let value = "custom-secret-value-1";
    let reply = put_secret(
        &server,
        json!({"name": "MY_TOKEN", "value": value, "description": "d"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"name": "MY_TOKEN", "description": "d"})
    );
    let reply = put_secret(
        &server,
        json!({"name": "B", "value": "custom-secret-value-2"}),
    )
    .await;
    assert_eq!(reply.json(), json!({"name": "B", "description": null}));
    let list = server.get("/api/settings/secrets").await;
    assert_eq!(
        list.json(),
        json!({"secrets": [{"name": "MY_TOKEN", "description": "d"}, {"name": "B", "description": null}]})
    );
    assert!(!list.text().contains(value));

    let reply = server.get("/api/settings/secrets/MY_TOKEN").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), value);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        reply.headers
    );
    // An update replaces the value and keeps the order.
    put_secret(
        &server,
        json!({"name": "MY_TOKEN", "value": "custom-secret-value-3"}),
    )
    .await;
    assert_eq!(
        server.get("/api/settings/secrets/MY_TOKEN").await.text(),
        "custom-secret-value-3"
    );
    assert_eq!(
        server.get("/api/settings/secrets").await.json()["secrets"][0],
        json!({"name": "MY_TOKEN", "description": null})
    );

    assert_detail(&server.get("/api/settings/secrets/NOPE").await, 404);
    assert_detail(&server.get("/api/settings/secrets/1bad").await, 422);
    assert_detail(&server.get("/api/settings/secrets/a-b").await, 422);
    assert_detail(
        &server.get("/api/settings/secrets?agent_profile_id=x").await,
        404,
    );
    for body in [
        json!({"name": "1bad", "value": "v"}),
        json!({"name": "X".repeat(65), "value": "v"}),
        json!({"name": "X", "value": "   "}),
        json!({"name": "X", "value": "**********"}),
        json!({"name": "X"}),
        json!({"value": "v"}),
        json!({"name": "X", "value": 5}),
        json!(["X", "v"]),
    ] {
        assert_detail(&put_secret(&server, body).await, 422);
    }
    // A refusal never echoes the value.
    for body in [
        json!({"name": 5, "value": "echo-me-not"}),
        json!({"name": "X", "value": ["echo-me-not"]}),
        json!({"name": "X", "value": "echo-me-not", "description": 5}),
    ] {
        let reply = put_secret(&server, body).await;
        assert_detail(&reply, 422);
        assert!(!reply.text().contains("echo-me-not"), "{}", reply.text());
    }
    let reply = call(&server, Method::DELETE, "/api/settings/secrets/B", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"deleted": true}));
    assert_detail(
        &call(&server, Method::DELETE, "/api/settings/secrets/B", None).await,
        404,
    );
    assert_detail(
        &call(&server, Method::DELETE, "/api/settings/secrets/9", None).await,
        422,
    );
    assert_detail(&server.get("/api/settings/secrets/B").await, 404);
    assert_not_logged(&[
        value,
        "custom-secret-value-2",
        "custom-secret-value-3",
        "echo-me-not",
    ]);
}

#[tokio::test]
async fn profiles() {
    let server = keyed_server().await;
    let reply = server
        .post(
            "/api/profiles/fast",
            json!({"llm": {"model": "openai/fast", "api_key": "profile-key-1", "base_url": "http://b"}}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"name": "fast", "message": "Profile 'fast' saved"})
    );
    let reply = server
        .post(
            "/api/profiles/nokey",
            json!({"llm": {"model": "openai/nokey", "api_key": "profile-key-2"}, "include_secrets": false}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let list = server.get("/api/profiles").await.json();
    assert_eq!(
        list,
        json!({"profiles": [
            {"name": "fast", "model": "openai/fast", "base_url": "http://b", "provider_connection_id": null, "provider_connection_broken": false, "api_key_set": true},
            {"name": "nokey", "model": "openai/nokey", "base_url": null, "provider_connection_id": null, "provider_connection_broken": false, "api_key_set": false},
        ], "active_profile": null})
    );
    let detail = server.get("/api/profiles/fast").await;
    assert_eq!(detail.json()["config"]["api_key"], Value::Null);
    assert_eq!(detail.json()["api_key_set"], true);
    assert!(!detail.text().contains("profile-key-1"));
    let plain = get_exposed(&server, "/api/profiles/fast", "plaintext")
        .await
        .json();
    assert_eq!(plain["config"]["api_key"], "profile-key-1");
    assert_eq!(plain["config"]["model"], "openai/fast");
    let sealed = get_exposed(&server, "/api/profiles/fast", "encrypted")
        .await
        .json();
    assert!(
        sealed["config"]["api_key"]
            .as_str()
            .unwrap()
            .starts_with("gAAAAA")
    );

    assert_detail(&server.get("/api/profiles/nope").await, 404);
    assert_detail(&server.get("/api/profiles/bad%20name").await, 422);
    assert_detail(&server.get("/api/profiles/.hidden").await, 422);
    assert_detail(&server.post("/api/profiles/x", json!({})).await, 422);
    assert_detail(
        &server.post("/api/profiles/x", json!({"llm": 5})).await,
        422,
    );
    assert_detail(
        &server
            .post("/api/profiles/x", json!({"llm": {"model": 5}}))
            .await,
        422,
    );
    assert_detail(
        &server
            .post(
                "/api/profiles/x",
                json!({"llm": {}, "include_secrets": "no"}),
            )
            .await,
        422,
    );
    assert_detail(
        &server.post("/api/profiles/nope/activate", json!({})).await,
        404,
    );

    let reply = server.post("/api/profiles/fast/activate", json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["llm_applied"], true);
    let settings = get_exposed(&server, "/api/settings", "plaintext")
        .await
        .json();
    assert_eq!(settings["active_profile"], "fast");
    assert_eq!(settings["agent_settings"]["llm"]["model"], "openai/fast");
    assert_eq!(
        settings["agent_settings"]["llm"]["api_key"],
        "profile-key-1"
    );
    // PATCH active_profile applies that profile's LLM too.
    let reply = patch(&server, json!({"active_profile": "nokey"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["agent_settings"]["llm"]["model"],
        "openai/nokey"
    );
    assert_eq!(reply.json()["llm_api_key_is_set"], false);

    // Deleting is idempotent and clears the active pointer.
    for _ in 0..2 {
        let reply = call(&server, Method::DELETE, "/api/profiles/nokey", None).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        server.get("/api/profiles").await.json()["profiles"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        server.get("/api/settings").await.json()["active_profile"],
        Value::Null
    );
    assert_not_logged(&["profile-key-1", "profile-key-2"]);
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn persisted_encrypted_and_private_across_restart() {
    let server = keyed_server().await;
    let llm_key = "sk-persisted-llm-key";
    let secret = "persisted-custom-secret";
    assert_eq!(
        patch(
            &server,
            json!({"agent_settings_diff": {"llm": {"model": "openai/p", "api_key": llm_key}}})
        )
        .await
        .status,
        200
    );
    assert_eq!(
        put_secret(&server, json!({"name": "S", "value": secret}))
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .post(
                "/api/profiles/p",
                json!({"llm": {"model": "openai/p", "api_key": "persisted-profile-key"}})
            )
            .await
            .status,
        201
    );
    let dir = server.stop().await;
    let store = dir.path().join(".openhands");
    for file in ["settings.json", "secrets.json", "profiles/p.json"] {
        let path = store.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        for value in [llm_key, secret, "persisted-profile-key"] {
            assert!(!text.contains(value), "{file} holds {value} in the clear");
        }
        assert!(text.contains("gAAAAA"), "{file}: {text}");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    #[cfg(unix)]
    assert_eq!(mode(&store), 0o700);

    let server = TestServer::start_in(dir, Some(KEY), |_| {}).await;
    let plain = get_exposed(&server, "/api/settings", "plaintext")
        .await
        .json();
    assert_eq!(plain["agent_settings"]["llm"]["api_key"], llm_key);
    assert_eq!(plain["agent_settings"]["llm"]["model"], "openai/p");
    assert_eq!(server.get("/api/settings/secrets/S").await.text(), secret);
    let profile = get_exposed(&server, "/api/profiles/p", "plaintext")
        .await
        .json();
    assert_eq!(profile["config"]["api_key"], "persisted-profile-key");

    // Under another secret key the values are unreadable: never shown, a JSON error.
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, Some("another-key"), |_| {}).await;
    let reply = send(
        Method::GET,
        &server.url("/api/settings/secrets/S"),
        &[("x-session-api-key", "another-key".to_owned())],
        None,
    )
    .await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("OH_SECRET_KEY")
    );
    let reply = send(
        Method::GET,
        &server.url("/api/settings"),
        &[
            ("x-session-api-key", "another-key".to_owned()),
            ("x-expose-secrets", "plaintext".to_owned()),
        ],
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["llm_api_key_is_set"], false);
    assert!(!reply.text().contains("gAAAAA"));
    assert_not_logged(&[llm_key, secret, "persisted-profile-key"]);
}

#[tokio::test]
async fn without_a_secret_key_encrypted_is_503_and_auth_applies() {
    Logs::global();
    let server = TestServer::start().await;
    assert_eq!(
        patch(
            &server,
            json!({"agent_settings_diff": {"llm": {"api_key": "no-cipher-key"}}})
        )
        .await
        .status,
        200
    );
    assert_detail(
        &get_exposed(&server, "/api/settings", "encrypted").await,
        503,
    );
    let plain = get_exposed(&server, "/api/settings", "plaintext")
        .await
        .json();
    assert_eq!(plain["agent_settings"]["llm"]["api_key"], "no-cipher-key");

    let keyed = keyed_server().await;
    for path in [
        "/api/settings",
        "/api/settings/secrets",
        "/api/settings/secrets/X",
        "/api/profiles",
    ] {
        let reply = send(Method::GET, &keyed.url(path), &[], None).await;
        assert_detail(&reply, 401);
    }
}

#[tokio::test]
async fn mcp_server_routes() {
    let server = keyed_server().await;
    let path = "/api/settings/mcp/svc";
    let server_body =
        json!({"url": "http://mcp", "transport": "sse", "headers": {"A": "mcp-route-secret"}});
    let reply = server.post(path, server_body.clone()).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(
        reply.json()["agent_settings"]["mcp_config"]["svc"]["headers"]["A"],
        "**********"
    );
    assert_detail(&server.post(path, server_body).await, 409);
    assert_detail(
        &server
            .post("/api/settings/mcp/x", json!({"transport": "stdio"}))
            .await,
        422,
    );
    assert_detail(
        &server
            .post("/api/settings/mcp/x", json!({"url": "http://x", "nope": 1}))
            .await,
        422,
    );
    assert_detail(&server.post("/api/settings/mcp/x", json!([1])).await, 422);

    let reply = call(
        &server,
        Method::PATCH,
        path,
        Some(json!({"enabled": false, "headers": {"A": null, "B": "b"}})),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let plain = get_exposed(&server, "/api/settings", "plaintext")
        .await
        .json();
    assert_eq!(
        plain["agent_settings"]["mcp_config"]["svc"],
        json!({"url": "http://mcp", "transport": "sse", "headers": {"B": "b"}, "enabled": false})
    );
    assert_detail(
        &call(
            &server,
            Method::PATCH,
            "/api/settings/mcp/nope",
            Some(json!({})),
        )
        .await,
        404,
    );
    let reply = call(&server, Method::DELETE, path, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["agent_settings"]["mcp_config"], json!({}));
    assert_detail(&call(&server, Method::DELETE, path, None).await, 404);
    assert_not_logged(&["mcp-route-secret"]);
}

#[tokio::test]
async fn profile_rename() {
    let server = keyed_server().await;
    for name in ["a", "b"] {
        let body = json!({"llm": {"model": format!("openai/{name}")}});
        assert_eq!(
            server
                .post(&format!("/api/profiles/{name}"), body)
                .await
                .status,
            201
        );
    }
    assert_eq!(
        server
            .post("/api/profiles/a/activate", json!({}))
            .await
            .status,
        200
    );
    let reply = server
        .post("/api/profiles/a/rename", json!({"new_name": "c"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"name": "c", "message": "Profile 'a' renamed to 'c'"})
    );
    assert_eq!(
        server.get("/api/settings").await.json()["active_profile"],
        "c"
    );
    assert_detail(&server.get("/api/profiles/a").await, 404);
    assert_eq!(
        server.get("/api/profiles/c").await.json()["config"]["model"],
        "openai/a"
    );
    let same = server
        .post("/api/profiles/c/rename", json!({"new_name": "c"}))
        .await;
    assert_eq!(same.json()["message"], "Profile 'c' unchanged (same name)");
    assert_detail(
        &server
            .post("/api/profiles/c/rename", json!({"new_name": "b"}))
            .await,
        409,
    );
    assert_detail(
        &server
            .post("/api/profiles/z/rename", json!({"new_name": "y"}))
            .await,
        404,
    );
    assert_detail(
        &server
            .post("/api/profiles/c/rename", json!({"new_name": "x y"}))
            .await,
        422,
    );
    assert_detail(&server.post("/api/profiles/c/rename", json!({})).await, 422);
}

/// Any small JSON value.
fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!("**********")),
        Just(json!("gAAAAAnot-a-token")),
        "[a-zA-Z0-9_ .é/-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly `good`, sometimes anything.
fn mostly(
    good: impl proptest::strategy::Strategy<Value = Value> + 'static,
) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    prop_oneof![4 => good.boxed(), 1 => any_json().boxed()]
}

/// An object of the given optional fields (a field is left out when `None`).
fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
    Value::Object(
        fields
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect(),
    )
}

fn text(pattern: &'static str) -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    pattern.prop_map(Value::String)
}

fn mcp_server() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let transport = prop::sample::select(vec!["stdio", "sse", "http", "streamable-http", "ws"])
        .prop_map(Value::from);
    let map = || {
        prop::collection::btree_map("[A-Za-z-]{1,6}", mostly(text("[a-z ]{0,8}")), 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    };
    (
        prop::option::of(mostly(text("http://[a-z]{1,5}"))),
        prop::option::of(mostly(transport)),
        prop::option::of(mostly(text("[a-z]{0,5}"))),
        prop::option::of(mostly(map())),
        prop::option::of(mostly(map())),
        prop::option::of(mostly(any::<bool>().prop_map(Value::Bool))),
    )
        .prop_map(|(url, transport, command, headers, env, enabled)| {
            object(vec![
                ("url", url),
                ("transport", transport),
                ("command", command),
                ("headers", headers),
                ("env", env),
                ("enabled", enabled),
            ])
        })
}

fn llm() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    (
        prop::option::of(mostly(text("[a-z/-]{1,10}"))),
        prop::option::of(mostly(text("[a-z0-9-]{0,10}"))),
        prop::option::of(mostly(Just(json!(0.5)))),
        prop::option::of(mostly(text("http://[a-z]{1,5}"))),
    )
        .prop_map(|(model, api_key, temperature, base_url)| {
            object(vec![
                ("model", model),
                ("api_key", api_key),
                ("temperature", temperature),
                ("base_url", base_url),
            ])
        })
}

/// Bodies near what each settings route takes: the route's fields, sometimes any value.
fn near_settings_request()
-> impl proptest::strategy::Strategy<Value = (&'static str, &'static str, Value)> {
    use proptest::prelude::*;
    let name = prop::sample::select(vec!["A", "MY_TOKEN", "b_2", "1x", "", "a-b", "é"])
        .prop_map(Value::from);
    let mcp_map = prop::collection::btree_map(
        "[a-z]{1,3}",
        prop_oneof![4 => mcp_server().boxed(), 1 => Just(Value::Null).boxed()],
        0..3,
    )
    .prop_map(|m| Value::Object(m.into_iter().collect()));
    let agent = (
        prop::option::of(mostly(llm())),
        prop::option::of(mostly(mcp_map)),
    )
        .prop_map(|(llm, mcp)| object(vec![("llm", llm), ("mcp_config", mcp)]));
    let conversation = prop::option::of(mostly(any::<i32>().prop_map(Value::from)))
        .prop_map(|n| object(vec![("max_iterations", n)]));
    let settings = (
        prop::option::of(mostly(agent)),
        prop::option::of(mostly(conversation)),
        prop::option::of(any_json()),
        prop::option::of(mostly(text("[a-z]{0,3}"))),
    )
        .prop_map(|(a, c, m, p)| {
            (
                "PATCH",
                "/api/settings",
                object(vec![
                    ("agent_settings_diff", a),
                    ("conversation_settings_diff", c),
                    ("misc_settings_diff", m),
                    ("active_profile", p),
                ]),
            )
        });
    let secret = (
        prop::option::of(mostly(name)),
        prop::option::of(mostly(text("[a-z ]{0,6}"))),
        prop::option::of(mostly(text("[a-z]{0,4}"))),
    )
        .prop_map(|(n, v, d)| {
            (
                "PUT",
                "/api/settings/secrets",
                object(vec![("name", n), ("value", v), ("description", d)]),
            )
        });
    let mcp = (
        prop::sample::select(vec!["POST", "PATCH", "DELETE"]),
        mostly(mcp_server()),
    )
        .prop_map(|(method, body)| (method, "/api/settings/mcp/svc", body));
    let profile = (
        prop::option::of(mostly(llm())),
        prop::option::of(mostly(any::<bool>().prop_map(Value::Bool))),
    )
        .prop_map(|(l, i)| {
            (
                "POST",
                "/api/profiles/p",
                object(vec![("llm", l), ("include_secrets", i)]),
            )
        });
    let rename = mostly(text("[a-z.]{0,4}"))
        .prop_map(|n| ("POST", "/api/profiles/p/rename", json!({ "new_name": n })));
    let activate = Just(("POST", "/api/profiles/p/activate", json!({})));
    prop_oneof![
        3 => settings.boxed(),
        2 => secret.boxed(),
        2 => mcp.boxed(),
        1 => profile.boxed(),
        1 => rename.boxed(),
        1 => activate.boxed(),
    ]
}

/// Any body on any settings route: a 2xx or a 4xx with a JSON `detail`, never a 5xx.
#[test]
fn fuzzed_bodies_get_2xx_or_4xx_json() {
    use proptest::prelude::*;
    use tower::ServiceExt;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let router = runtime.block_on(async {
        let config = oh_server::Config::under(dir.path());
        oh_server::Server::bind(config).await.unwrap().router()
    });
    let config = proptest::test_runner::Config {
        cases: 400,
        failure_persistence: None,
        ..Default::default()
    };
    let accepted = std::cell::Cell::new(0u32);
    let mut runner = proptest::test_runner::TestRunner::new(config);
    runner
        .run(&near_settings_request(), |(method, path, body)| {
            let request = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap();
            let (status, bytes) = runtime.block_on(async {
                let response = router.clone().oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap()
                    .to_bytes();
                (status, bytes)
            });
            prop_assert!(
                status.is_success() || status.is_client_error(),
                "{method} {path} {body}: {status} {}",
                String::from_utf8_lossy(&bytes)
            );
            let reply: Value = serde_json::from_slice(&bytes).map_err(|e| {
                TestCaseError::fail(format!("{method} {path} {body}: not JSON: {e}"))
            })?;
            if status.is_client_error() {
                prop_assert!(reply.get("detail").is_some(), "{reply}");
            } else {
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    // The inputs reach the stores, not only the shape checks.
    assert!(accepted.get() >= 30, "only {} accepted", accepted.get());
    // Whatever was stored still reads back.
    let request = hyper::Request::get("/api/settings")
        .body(axum::body::Body::empty())
        .unwrap();
    let status = runtime.block_on(async { router.oneshot(request).await.unwrap().status() });
    assert_eq!(status, 200);
}

/// Concurrent upserts and patches: every acknowledged write is kept (one read-modify-write at
/// a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_are_all_kept() {
    let server = Arc::new(keyed_server().await);
    let writes = (0..40).map(|i| {
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let reply = if i % 2 == 0 {
                put_secret(
                    &server,
                    json!({"name": format!("S{i}"), "value": format!("v{i}")}),
                )
                .await
            } else {
                patch(&server, json!({"misc_settings_diff": {format!("k{i}"): i}})).await
            };
            assert_eq!(reply.status, 200, "{}", reply.text());
        })
    });
    for write in futures::future::join_all(writes).await {
        write.unwrap();
    }
    let secrets = server.get("/api/settings/secrets").await.json();
    assert_eq!(secrets["secrets"].as_array().unwrap().len(), 20);
    let misc = server.get("/api/settings").await.json()["misc_settings"].clone();
    assert_eq!(misc.as_object().unwrap().len(), 20, "{misc}");
}

/// A key rotation: values saved under the old key read under the new one when the old is a
/// previous key, and the next save writes them under the new key.
#[tokio::test]
async fn previous_secret_keys_read_old_values() {
    let server = keyed_server().await;
    assert_eq!(
        put_secret(&server, json!({"name": "OLD", "value": "rotated-value"}))
            .await
            .status,
        200
    );
    let dir = server.stop().await;
    let file = dir.path().join(".openhands/secrets.json");
    let before = std::fs::read_to_string(&file).unwrap();
    Logs::global();
    let server = TestServer::start_in(dir, Some("new-key"), |config| {
        config.previous_secret_keys = vec![KEY.into()];
    })
    .await;
    let headers = [("x-session-api-key", "new-key".to_owned())];
    let reply = send(
        Method::GET,
        &server.url("/api/settings/secrets/OLD"),
        &headers,
        None,
    )
    .await;
    assert_eq!(reply.text(), "rotated-value");
    let body = bytes::Bytes::from(json!({"name": "NEW", "value": "v"}).to_string());
    let reply = send(
        Method::PUT,
        &server.url("/api/settings/secrets"),
        &headers,
        Some(body),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let dir = server.stop().await;
    assert_ne!(std::fs::read_to_string(&file).unwrap(), before);
    // Now readable with the new key alone.
    let server = TestServer::start_in(dir, Some("new-key"), |_| {}).await;
    let reply = send(
        Method::GET,
        &server.url("/api/settings/secrets/OLD"),
        &headers,
        None,
    )
    .await;
    assert_eq!(reply.text(), "rotated-value");
}
