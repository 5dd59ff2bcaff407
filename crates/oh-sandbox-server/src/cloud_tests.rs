//! The Cloud API over the in-memory backend: shapes, status words, user isolation, the
//! session-key rules of the settings routes, and a users file that changes underneath.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api_tests::{Harness, KEY, harness};

const ALICE: &str = "alice-key-0123456789";
const BOB: &str = "bob-key-0123456789";
const SECRET: &str = "s3cr3t-value-never-shown";
const LLM_KEY: &str = "sk-llm-never-shown";

fn users_json() -> Value {
    json!({"users": [
        {"id": "alice", "api_key": ALICE,
         "llm": {"model": "openai/scripted", "api_key": LLM_KEY, "base_url": "http://127.0.0.1:9/v1"},
         "llm_profiles": {"fast": {"model": "openai/fast", "api_key": "sk-profile"}},
         "secrets": {"DEPLOY_TOKEN": {"value": SECRET, "description": "deploys"},
                     "EMPTY": {"value": ""}},
         "mcp_config": {"sse_servers": [{"url": "http://mcp", "api_key": "m"}]}},
        {"id": "bob", "api_key": BOB}
    ]})
}

struct Cloud {
    harness: Harness,
    users: tempfile::TempDir,
}

async fn cloud() -> Cloud {
    let users = tempfile::tempdir().unwrap();
    let path = users.path().join("users.json");
    std::fs::write(&path, users_json().to_string()).unwrap();
    let harness = harness(|c| c.users_file = Some(path)).await;
    Cloud { harness, users }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl Cloud {
    async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .harness
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Answer {
            status,
            content_type,
            body,
        }
    }

    /// A call as a user: the status and the JSON body.
    async fn user(&self, key: &str, method: &str, path: &str) -> (StatusCode, Value) {
        let answer = self
            .send(method, path, &[("Authorization", &format!("Bearer {key}"))])
            .await;
        (answer.status, answer.json())
    }

    /// A sandbox of `key`'s user, waited for until it is running.
    async fn running_sandbox(&self, key: &str) -> Value {
        let (status, info) = self.user(key, "POST", "/api/v1/sandboxes").await;
        assert_eq!(status, StatusCode::OK, "{info}");
        let id = info["id"].as_str().unwrap().to_owned();
        let record = self.harness.sandboxes.by_session(&id).unwrap();
        self.harness
            .sandboxes
            .settled(&record.runtime_id, Duration::from_secs(10))
            .await
            .unwrap();
        let (_, list) = self
            .user(key, "GET", &format!("/api/v1/sandboxes?id={id}"))
            .await;
        assert_eq!(list[0]["status"], "RUNNING", "{list}");
        list[0].clone()
    }
}

#[tokio::test]
async fn user_keys_guard_the_cloud_routes_and_nothing_else() {
    let c = cloud().await;
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "Basic YWxpY2U6eA==")],
        vec![("Authorization", "Bearer ")],
        vec![("X-API-Key", KEY)],
    ] {
        let answer = c.send("GET", "/api/v1/sandboxes/search", &headers).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(answer.json()["detail"].is_string());
    }
    // A user key is not a runtime API key.
    let answer = c
        .send(
            "GET",
            "/list",
            &[("Authorization", &format!("Bearer {ALICE}"))],
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let (status, page) = c.user(ALICE, "GET", "/api/v1/sandboxes/search").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page, json!({"items": [], "next_page_id": null}));
}

#[tokio::test]
async fn a_sandbox_as_the_sdk_sees_it() {
    let c = cloud().await;
    let (status, created) = c
        .user(ALICE, "POST", "/api/v1/sandboxes?sandbox_spec_id=agent%3A2")
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert_eq!(created["created_by_user_id"], "alice");
    assert_eq!(created["sandbox_spec_id"], "agent:2");
    assert!(
        matches!(created["status"].as_str(), Some("STARTING" | "RUNNING")),
        "{created}"
    );
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let info = c.running_sandbox(ALICE).await;
    assert_eq!(info["session_api_key"].as_str().unwrap().len(), 64);
    let urls = info["exposed_urls"].as_array().unwrap();
    assert_eq!(urls.len(), 1, "only what is served: {info}");
    assert_eq!(urls[0]["name"], "AGENT_SERVER");
    assert_eq!(urls[0]["port"], 60000);
    assert!(
        urls[0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    // The default spec is the server's image; the runtime API sees Cloud sandboxes too.
    assert_eq!(info["sandbox_spec_id"], oh_workspace_docker::DEFAULT_IMAGE);
    let answer = c.send("GET", "/list", &[("X-API-Key", KEY)]).await;
    assert_eq!(answer.json()["runtimes"].as_array().unwrap().len(), 2);

    // Unknown and unusable specs are 400 with a reason, and create nothing.
    for spec in ["missing%3A1", "has%20space"] {
        let (status, body) = c
            .user(
                ALICE,
                "POST",
                &format!("/api/v1/sandboxes?sandbox_spec_id={spec}"),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{spec}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("sandbox_spec_id"));
    }
    assert_eq!(c.harness.fake.engine().workloads.len(), 2);
}

#[tokio::test]
async fn users_see_and_touch_only_their_own_sandboxes() {
    let c = cloud().await;
    let mine = c.running_sandbox(ALICE).await;
    let id = mine["id"].as_str().unwrap();
    let (status, list) = c
        .user(BOB, "GET", &format!("/api/v1/sandboxes?id={id}&id=nope"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([null, null]));
    let (_, page) = c.user(BOB, "GET", "/api/v1/sandboxes/search").await;
    assert_eq!(page["items"], json!([]));
    for (method, path) in [
        ("POST", format!("/api/v1/sandboxes/{id}/pause")),
        ("POST", format!("/api/v1/sandboxes/{id}/resume")),
        ("DELETE", format!("/api/v1/sandboxes/{id}?sandbox_id={id}")),
    ] {
        let (status, body) = c.user(BOB, method, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
    }
    // Still there and running for its owner.
    let (_, list) = c
        .user(ALICE, "GET", &format!("/api/v1/sandboxes?id={id}"))
        .await;
    assert_eq!(list[0]["status"], "RUNNING");
}

#[tokio::test]
async fn search_pages_batches_and_their_limits() {
    let c = cloud().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, info) = c.user(ALICE, "POST", "/api/v1/sandboxes").await;
        ids.push(info["id"].as_str().unwrap().to_owned());
    }
    let (_, first) = c
        .user(ALICE, "GET", "/api/v1/sandboxes/search?limit=2")
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_page_id"], "2");
    let (_, second) = c
        .user(ALICE, "GET", "/api/v1/sandboxes/search?limit=2&page_id=2")
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["next_page_id"], Value::Null);
    let mut seen: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    // Newest first.
    assert_eq!(seen.first(), ids.last());
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    for query in [
        "limit=0",
        "limit=101",
        "limit=x",
        "page_id=-1",
        "page_id=abc",
    ] {
        let (status, body) = c
            .user(ALICE, "GET", &format!("/api/v1/sandboxes/search?{query}"))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
    }
    let many: Vec<String> = (0..101).map(|i| format!("id={i}")).collect();
    let (status, _) = c
        .user(
            ALICE,
            "GET",
            &format!("/api/v1/sandboxes?{}", many.join("&")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn pause_resume_and_delete() {
    let c = cloud().await;
    let info = c.running_sandbox(ALICE).await;
    let id = info["id"].as_str().unwrap();
    // Resume is idempotent.
    let (status, body) = c
        .user(ALICE, "POST", &format!("/api/v1/sandboxes/{id}/resume"))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"success": true})));
    let (status, _) = c
        .user(ALICE, "POST", &format!("/api/v1/sandboxes/{id}/pause"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = c
        .user(ALICE, "GET", &format!("/api/v1/sandboxes?id={id}"))
        .await;
    assert_eq!(list[0]["status"], "PAUSED");
    assert_eq!(list[0]["session_api_key"], Value::Null);
    assert_eq!(list[0]["exposed_urls"], Value::Null);
    let (status, _) = c
        .user(ALICE, "POST", &format!("/api/v1/sandboxes/{id}/resume"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = c
        .user(ALICE, "GET", &format!("/api/v1/sandboxes?id={id}"))
        .await;
    assert_eq!(list[0]["status"], "RUNNING");

    // Delete: the query must agree with the path; either alone is enough.
    let (status, _) = c
        .user(
            ALICE,
            "DELETE",
            &format!("/api/v1/sandboxes/{id}?sandbox_id=other"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = c
        .user(
            ALICE,
            "DELETE",
            &format!("/api/v1/sandboxes/{id}?sandbox_id={id}"),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!(true)));
    assert!(c.harness.fake.engine().workloads.is_empty());
    let (_, list) = c
        .user(ALICE, "GET", &format!("/api/v1/sandboxes?id={id}"))
        .await;
    assert_eq!(list, json!([null]));
    let (status, _) = c
        .user(ALICE, "DELETE", &format!("/api/v1/sandboxes/{id}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_sandbox_whose_compute_vanished_is_missing_and_cannot_resume() {
    let c = cloud().await;
    let info = c.running_sandbox(ALICE).await;
    let id = info["id"].as_str().unwrap();
    c.harness.fake.engine().workloads.clear();
    c.harness.sandboxes.check().await;
    let (_, list) = c
        .user(ALICE, "GET", &format!("/api/v1/sandboxes?id={id}"))
        .await;
    assert_eq!(list[0]["status"], "MISSING", "{list}");
    assert_eq!(list[0]["session_api_key"], Value::Null);
    let (status, body) = c
        .user(ALICE, "POST", &format!("/api/v1/sandboxes/{id}/resume"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("MISSING"));
}

#[tokio::test]
async fn secrets_need_the_sandboxes_own_session_key() {
    let c = cloud().await;
    let a = c.running_sandbox(ALICE).await;
    let b = c.running_sandbox(ALICE).await;
    let (a_id, a_key) = (
        a["id"].as_str().unwrap(),
        a["session_api_key"].as_str().unwrap(),
    );
    let b_key = b["session_api_key"].as_str().unwrap();
    let names = format!("/api/v1/sandboxes/{a_id}/settings/secrets");
    let value = format!("{names}/DEPLOY_TOKEN");

    let answer = c.send("GET", &names, &[("X-Session-API-Key", a_key)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"secrets": [{"name": "DEPLOY_TOKEN", "description": "deploys"},
                           {"name": "EMPTY", "description": null}]})
    );
    let answer = c.send("GET", &value, &[("X-Session-API-Key", a_key)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.content_type.starts_with("text/plain"));
    assert_eq!(answer.body, SECRET.as_bytes());

    for (headers, expected) in [
        (vec![], StatusCode::UNAUTHORIZED),
        (
            vec![("X-Session-API-Key", "wrong")],
            StatusCode::UNAUTHORIZED,
        ),
        // The user key is not a session key.
        (
            vec![("Authorization", &*format!("Bearer {ALICE}"))],
            StatusCode::UNAUTHORIZED,
        ),
        // Another sandbox's key, even of the same user.
        (vec![("X-Session-API-Key", b_key)], StatusCode::FORBIDDEN),
    ] {
        for path in [&names, &value] {
            let answer = c.send("GET", path, &headers).await;
            assert_eq!(answer.status, expected, "{path} {headers:?}");
            let detail = answer.json()["detail"].as_str().unwrap().to_owned();
            assert!(!detail.contains(SECRET));
        }
    }
    for name in ["NOPE", "EMPTY", "..", "A-B"] {
        let answer = c
            .send(
                "GET",
                &format!("{names}/{name}"),
                &[("X-Session-API-Key", a_key)],
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{name}");
    }
    // A paused sandbox's key opens nothing.
    let (status, _) = c
        .user(ALICE, "POST", &format!("/api/v1/sandboxes/{a_id}/pause"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = c.send("GET", &value, &[("X-Session-API-Key", a_key)]).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(
        answer.json()["detail"]
            .as_str()
            .unwrap()
            .contains("not running")
    );
}

#[tokio::test]
async fn user_settings_are_masked_unless_a_sandbox_of_the_user_asks() {
    let c = cloud().await;
    let (status, me) = c.user(ALICE, "GET", "/api/v1/users/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], "alice");
    assert_eq!(me["llm_model"], "openai/scripted");
    assert_eq!(me["llm_base_url"], "http://127.0.0.1:9/v1");
    assert_eq!(me["llm_api_key"], "**********");
    assert_eq!(
        me["llm_profiles"]["profiles"]["fast"]["api_key"],
        "**********"
    );
    assert_eq!(me["mcp_config"]["sse_servers"][0]["url"], "http://mcp");
    assert!(!me.to_string().contains(LLM_KEY));

    let exposed = "/api/v1/users/me?expose_secrets=true";
    let (status, _) = c.user(ALICE, "GET", exposed).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "exposing needs a session key"
    );
    let mine = c.running_sandbox(ALICE).await;
    let theirs = c.running_sandbox(BOB).await;
    let auth = format!("Bearer {ALICE}");
    let answer = c
        .send(
            "GET",
            exposed,
            &[
                ("Authorization", &auth),
                (
                    "X-Session-API-Key",
                    theirs["session_api_key"].as_str().unwrap(),
                ),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = c
        .send(
            "GET",
            exposed,
            &[
                ("Authorization", &auth),
                (
                    "X-Session-API-Key",
                    mine["session_api_key"].as_str().unwrap(),
                ),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let me = answer.json();
    assert_eq!(me["llm_api_key"], LLM_KEY);
    assert_eq!(
        me["llm_profiles"]["profiles"]["fast"]["api_key"],
        "sk-profile"
    );
    let (_, bob) = c.user(BOB, "GET", "/api/v1/users/me").await;
    assert_eq!(bob["llm_api_key"], Value::Null);
}

#[tokio::test]
async fn an_edited_users_file_takes_effect_at_once() {
    let c = cloud().await;
    let carol = "carol-key-0123456789";
    let (status, _) = c.user(carol, "GET", "/api/v1/users/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let mut users = users_json();
    users["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "carol", "api_key": carol}));
    // Written aside and renamed over, as editors and config managers do.
    let path = c.users.path().join("users.json");
    let next = c.users.path().join("users.json.new");
    std::fs::write(&next, users.to_string()).unwrap();
    std::fs::rename(&next, &path).unwrap();
    let (status, me) = c.user(carol, "GET", "/api/v1/users/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["id"], "carol");
    // Broken edits keep the users read before.
    std::fs::write(&next, "{\"users\": [").unwrap();
    std::fs::rename(&next, &path).unwrap();
    let (status, _) = c.user(carol, "GET", "/api/v1/users/me").await;
    assert_eq!(status, StatusCode::OK);
}
