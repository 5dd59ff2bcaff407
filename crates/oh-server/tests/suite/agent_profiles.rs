//! Conversations created from `agent_settings` or a stored agent profile (`agent_profile_id`),
//! and the `/api/agent-profiles` routes.

use super::common;

use common::{Socket, TestServer};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

const KEY: &str = "agent-profiles-key";

fn workspace(server: &TestServer) -> Value {
    json!({"kind": "LocalWorkspace", "working_dir": server.root().join("work")})
}

#[tokio::test]
async fn a_conversation_from_agent_settings_runs_with_the_settings_llm() {
    let llm = ScriptedLlm::start(vec![Reply::tool(
        "finish",
        json!({"message": "done from settings"}),
    )])
    .await
    .expect("llm");
    let server = TestServer::with_key(KEY).await;
    let created = server
        .post(
            "/api/conversations",
            json!({
                "workspace": workspace(&server),
                "autotitle": false,
                "agent_settings": {
                    "llm": {"model": "openai/scripted", "api_key": "sk-settings",
                            "base_url": llm.base_url(), "num_retries": 0},
                    "condenser": {"max_size": 50, "keep_first": 3},
                },
            }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let info = created.json();
    let agent = &info["agent"];
    let tools: Vec<&str> = agent["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(tools, ["terminal", "file_editor", "task_tracker"]);
    assert_eq!(
        agent["include_default_tools"],
        json!(["FinishTool", "ThinkTool"])
    );
    assert_eq!(agent["condenser"]["kind"], "LLMSummarizingCondenser");
    assert_eq!(agent["condenser"]["max_size"], 50);
    assert_eq!(agent["condenser"]["keep_first"], 3);
    assert_eq!(agent["condenser"]["llm"]["usage_id"], "condenser");
    assert_eq!(agent["llm"]["model"], "openai/scripted");
    assert!(!created.text().contains("sk-settings"), "the key leaked");
    assert_eq!(info["launched_agent_profile"], Value::Null);

    let id = info["id"].as_str().expect("id").to_owned();
    let mut socket = Socket::connect(&server, &id).await;
    assert_eq!(
        socket.next().await.expect("first frame")["key"],
        "full_state"
    );
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "go"}], "run": true}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let status = socket.run_ends_in().await;
    let events = server.events(&id, 100).await;
    assert_eq!(status, "finished", "{:?}", events.last());
    let request = llm.requests().last().expect("a request").clone();
    assert_eq!(request.header("authorization"), Some("Bearer sk-settings"));
}

#[tokio::test]
async fn invalid_agent_settings_and_sources_are_422() {
    let server = TestServer::with_key(KEY).await;
    for (body, what) in [
        (json!({"condenser": {"max_size": 5}}), "max_size below 20"),
        (json!({"agent_kind": "bogus"}), "unknown kind"),
        (json!({"agent_kind": "acp"}), "ACP"),
        (json!({"tools": 5}), "tools not a list"),
        (json!({"tool_concurrency_limit": 0}), "concurrency below 1"),
        (json!({"llm": {"model": 5}}), "model not a string"),
    ] {
        let reply = server
            .post(
                "/api/conversations",
                json!({"workspace": workspace(&server), "agent_settings": body}),
            )
            .await;
        assert_eq!(reply.status, 422, "{what}: {}", reply.text());
        assert!(
            reply.json()["detail"].is_array(),
            "{what}: {}",
            reply.text()
        );
    }
    let both = server
        .post(
            "/api/conversations",
            json!({"workspace": workspace(&server), "agent_settings": {},
                   "agent_profile_id": uuid::Uuid::new_v4()}),
        )
        .await;
    assert_eq!(both.status, 422, "{}", both.text());
    assert!(
        both.text().contains("mutually exclusive"),
        "{}",
        both.text()
    );
    let not_a_uuid = server
        .post(
            "/api/conversations",
            json!({"workspace": workspace(&server), "agent_profile_id": "nope"}),
        )
        .await;
    assert_eq!(not_a_uuid.status, 422, "{}", not_a_uuid.text());
    let unknown = uuid::Uuid::new_v4();
    let missing = server
        .post(
            "/api/conversations",
            json!({"workspace": workspace(&server), "agent_profile_id": unknown}),
        )
        .await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert_eq!(
        missing.json()["detail"],
        format!("Agent profile with id '{unknown}' not found")
    );
}

#[tokio::test]
async fn agent_profiles_crud_and_a_conversation_from_one() {
    let llm = ScriptedLlm::start(vec![Reply::tool(
        "finish",
        json!({"message": "done from a profile"}),
    )])
    .await
    .expect("llm");
    let server = TestServer::with_key(KEY).await;

    // A fresh server seeds and activates `default`.
    let listed = server.get("/api/agent-profiles").await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let list = listed.json();
    assert_eq!(list["profiles"][0]["name"], "default");
    assert_eq!(list["active_agent_profile_id"], list["profiles"][0]["id"]);

    // A profile names an LLM profile; that one holds the key (encrypted at rest).
    let saved = server
        .post(
            "/api/profiles/fast",
            json!({"llm": {"model": "openai/scripted", "api_key": "sk-profile",
                            "base_url": llm.base_url(), "num_retries": 0}}),
        )
        .await;
    assert_eq!(saved.status, 201, "{}", saved.text());
    let saved = server
        .post(
            "/api/agent-profiles/coder",
            json!({"llm_profile_ref": "fast", "tools": [{"name": "terminal"}],
                   "secret_refs": ["ALLOWED"], "id": "ignored"}),
        )
        .await;
    assert_eq!(saved.status, 201, "{}", saved.text());
    assert_eq!(saved.json()["message"], "Agent profile 'coder' saved");
    let got = server.get("/api/agent-profiles/coder").await;
    assert_eq!(got.status, 200, "{}", got.text());
    let profile = got.json()["profile"].clone();
    let id = profile["id"].as_str().expect("id").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(profile["revision"], 0);
    assert_eq!(profile["condenser"]["max_size"], 240);
    // Saving again keeps the id and bumps the revision.
    let again = server
        .post(
            "/api/agent-profiles/coder",
            json!({"llm_profile_ref": "fast", "tools": [{"name": "terminal"}],
                   "secret_refs": ["ALLOWED"]}),
        )
        .await;
    assert_eq!(again.status, 201);
    let profile = server.get("/api/agent-profiles/coder").await.json()["profile"].clone();
    assert_eq!(profile["id"], id.as_str());
    assert_eq!(profile["revision"], 1);

    // A conversation from the profile: the LLM profile's model and key, the profile's tools,
    // only the secrets it allows, and the launch recorded.
    let created = server
        .post(
            "/api/conversations",
            json!({"workspace": workspace(&server), "agent_profile_id": id,
                   "secrets": {"ALLOWED": "yes", "OTHER": "no"}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let info = created.json();
    assert_eq!(
        info["launched_agent_profile"]["agent_profile_id"],
        id.as_str()
    );
    assert_eq!(info["launched_agent_profile"]["revision"], 1);
    assert_eq!(info["agent"]["llm"]["model"], "openai/scripted");
    let tools: Vec<&str> = info["agent"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(tools, ["terminal"]);
    let secrets = &info["secret_registry"]["secret_sources"];
    assert!(secrets.get("ALLOWED").is_some(), "{secrets}");
    assert!(secrets.get("OTHER").is_none(), "{secrets}");
    let conversation = info["id"].as_str().expect("id").to_owned();
    let got = server
        .get(&format!("/api/conversations/{conversation}"))
        .await;
    assert_eq!(
        got.json()["launched_agent_profile"]["agent_profile_id"],
        id.as_str()
    );

    // A profile whose LLM profile is missing does not launch.
    let dangling = server
        .post(
            "/api/agent-profiles/dangling",
            json!({"llm_profile_ref": "nowhere"}),
        )
        .await;
    assert_eq!(dangling.status, 201);
    let dangling_id = server.get("/api/agent-profiles/dangling").await.json()["profile"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let refused = server
        .post(
            "/api/conversations",
            json!({"workspace": workspace(&server), "agent_profile_id": dangling_id}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert_eq!(
        refused.json()["detail"]["code"],
        "unresolved_profile_references"
    );
    assert_eq!(
        refused.json()["detail"]["dangling_llm_profile_ref"],
        "nowhere"
    );

    // Activate, rename (the id stays), delete.
    let activated = server
        .post(&format!("/api/agent-profiles/{id}/activate"), json!({}))
        .await;
    assert_eq!(activated.status, 200, "{}", activated.text());
    assert_eq!(activated.json()["agent_settings_applied"], false);
    let settings = server.get("/api/settings").await.json();
    assert_eq!(settings["active_agent_profile_id"], id.as_str());
    let renamed = server
        .post(
            "/api/agent-profiles/coder/rename",
            json!({"new_name": "coder2"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text());
    let moved = server.get("/api/agent-profiles/coder2").await.json();
    assert_eq!(moved["profile"]["id"], id.as_str());
    assert_eq!(moved["profile"]["name"], "coder2");
    assert_eq!(server.get("/api/agent-profiles/coder").await.status, 404);
    let deleted = server
        .call(hyper::Method::DELETE, "/api/agent-profiles/coder2", None)
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let again = server
        .call(hyper::Method::DELETE, "/api/agent-profiles/coder2", None)
        .await;
    assert_eq!(again.status, 200, "deleting is idempotent");
    // The active one was deleted: `default` is active again.
    let list = server.get("/api/agent-profiles").await.json();
    let default_id = list["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .find(|p| p["name"] == "default")
        .expect("default")["id"]
        .clone();
    assert_eq!(list["active_agent_profile_id"], default_id);
}

#[tokio::test]
async fn agent_profile_routes_reject_bad_input() {
    let server = TestServer::with_key(KEY).await;
    for (path, body, status) in [
        ("/api/agent-profiles/bad", json!({"tools": 5}), 422),
        (
            "/api/agent-profiles/bad",
            json!({"llm_profile_ref": "x", "zzz": 1}),
            422,
        ),
        (
            "/api/agent-profiles/bad",
            json!({"llm_profile_ref": ""}),
            422,
        ),
        ("/api/agent-profiles/bad", json!([1, 2]), 422),
        (
            "/api/agent-profiles/.bad",
            json!({"llm_profile_ref": "x"}),
            422,
        ),
        (
            "/api/agent-profiles/bad",
            json!({"llm_profile_ref": "x", "agent_kind": "acp"}),
            422,
        ),
        (
            "/api/agent-profiles/missing/rename",
            json!({"new_name": "m2"}),
            404,
        ),
        (
            "/api/agent-profiles/missing/rename",
            json!({"new_name": ".m2"}),
            422,
        ),
        ("/api/agent-profiles/missing/rename", json!({}), 422),
        ("/api/agent-profiles/no-such-id/activate", json!({}), 404),
    ] {
        let reply = server.post(path, body.clone()).await;
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.text());
        assert!(reply.json().get("detail").is_some(), "{}", reply.text());
    }
    let missing = server.get("/api/agent-profiles/missing").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json()["detail"],
        "Agent profile 'missing' not found"
    );
    // Renaming onto an existing profile is a conflict.
    for name in ["one", "two"] {
        let saved = server
            .post(
                &format!("/api/agent-profiles/{name}"),
                json!({"llm_profile_ref": "x"}),
            )
            .await;
        assert_eq!(saved.status, 201, "{}", saved.text());
    }
    let conflict = server
        .post("/api/agent-profiles/one/rename", json!({"new_name": "two"}))
        .await;
    assert_eq!(conflict.status, 409, "{}", conflict.text());
    assert_eq!(
        conflict.json()["detail"],
        "Agent profile 'two' already exists"
    );
    // The settings pointer takes only a stored profile's id.
    let patched = server
        .call(
            hyper::Method::PATCH,
            "/api/settings",
            Some(json!({"active_agent_profile_id": uuid::Uuid::new_v4()})),
        )
        .await;
    assert_eq!(patched.status, 404, "{}", patched.text());
}
