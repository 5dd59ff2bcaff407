//! `POST /api/conversations/{id}/load_plugin`: a plugin of a marketplace registered in the
//! agent's context adds its skills to the conversation (kept across a restart, used by the
//! next turns); unknown conversations, plugins and marketplaces are 404, the rest 400.

use super::common;

use std::path::Path;

use common::{Socket, TestServer, agent_json, create_body};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A marketplace `mk` in `root` with the plugin `fmt`: a triggered skill and a command.
fn marketplace(root: &Path) {
    write(
        &root.join(".plugin/marketplace.json"),
        &json!({"name": "mk", "owner": {"name": "t"}, "plugins": [
            {"name": "fmt", "source": "./plugins/fmt"},
            {"name": "tooling", "source": "./plugins/tooling"},
        ]})
        .to_string(),
    );
    let fmt = root.join("plugins/fmt");
    write(&fmt.join(".plugin/plugin.json"), r#"{"name": "fmt"}"#);
    write(
        &fmt.join("skills/release.md"),
        "---\ntriggers:\n- release\n---\nRELEASE-RULE: notes go in CHANGES.md.\n",
    );
    write(
        &fmt.join("commands/now.md"),
        "---\ndescription: Tell the time\n---\nNOW-RULE: answer in UTC.\n",
    );
    let tooling = root.join("plugins/tooling");
    write(
        &tooling.join(".mcp.json"),
        r#"{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}"#,
    );
    write(&tooling.join("skills/x.md"), "x");
}

fn agent_with_marketplace(base_url: &str, root: &Path) -> Value {
    let mut agent = agent_json(base_url);
    agent["agent_context"] = json!({
        "skills": [],
        "registered_marketplaces": [{"name": "mk", "source": root.to_string_lossy()}],
    });
    agent
}

fn user_text(request: &Value) -> String {
    request["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

async fn say(server: &TestServer, socket: &mut Socket, id: &str, text: &str) {
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": text}], "run": true}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    assert_eq!(socket.run_ends_in().await, "finished");
}

fn skill_names(info: &Value) -> Vec<String> {
    info["agent"]["agent_context"]["skills"]
        .as_array()
        .expect("skills")
        .iter()
        .map(|s| s["name"].as_str().expect("name").to_owned())
        .collect()
}

#[tokio::test]
async fn a_loaded_plugin_s_skills_reach_the_next_turns_and_survive_a_restart() {
    let llm = ScriptedLlm::start(vec![
        Reply::tool("finish", json!({"message": "one"})),
        Reply::tool("finish", json!({"message": "two"})),
        Reply::tool("finish", json!({"message": "three"})),
    ])
    .await
    .expect("llm");
    let market = tempfile::tempdir().expect("tmp");
    marketplace(market.path());
    let server = TestServer::with_key("plugin-key").await;
    let body = create_body(
        agent_with_marketplace(&llm.base_url(), market.path()),
        &server.root().join("work"),
    );
    let created = server.post("/api/conversations", body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let mut socket = Socket::connect(&server, &id).await;
    assert_eq!(
        socket.next().await.expect("first frame")["key"],
        "full_state"
    );

    // Before the plugin, the command means nothing.
    say(&server, &mut socket, &id, "run /fmt:now please").await;
    assert!(!user_text(&llm.requests()[0].body).contains("NOW-RULE"));

    let loaded = server
        .post(
            &format!("/api/conversations/{id}/load_plugin"),
            json!({"plugin_ref": "fmt@mk"}),
        )
        .await;
    assert_eq!(loaded.status, 200, "{}", loaded.text());
    assert_eq!(loaded.json(), json!({"success": true}));
    let info = server.get(&format!("/api/conversations/{id}")).await.json();
    assert_eq!(skill_names(&info), ["release", "fmt:now"]);
    assert_eq!(
        info["agent"]["agent_context"]["registered_marketplaces"][0]["name"],
        "mk"
    );

    say(&server, &mut socket, &id, "run /fmt:now please").await;
    let second = user_text(&llm.requests()[1].body);
    assert!(second.contains("NOW-RULE: answer in UTC."), "{second}");
    assert!(!second.contains("RELEASE-RULE"), "{second}");
    drop(socket);

    // After a restart the conversation still has the plugin's skills.
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, Some("plugin-key"), |_| {}).await;
    let info = server.get(&format!("/api/conversations/{id}")).await.json();
    assert_eq!(skill_names(&info), ["release", "fmt:now"]);
    let mut socket = Socket::connect(&server, &id).await;
    assert_eq!(
        socket.next().await.expect("first frame")["key"],
        "full_state"
    );
    say(&server, &mut socket, &id, "prepare the release").await;
    let third = user_text(&llm.requests()[2].body);
    assert!(third.contains("RELEASE-RULE"), "{third}");
}

#[tokio::test]
async fn errors_are_404_for_unknown_names_and_400_for_the_rest() {
    let market = tempfile::tempdir().expect("tmp");
    marketplace(market.path());
    let server = TestServer::start().await;
    let load = |id: String, body: Value| {
        let server = &server;
        async move {
            server
                .post(&format!("/api/conversations/{id}/load_plugin"), body)
                .await
        }
    };
    let unknown = uuid::Uuid::new_v4().to_string();
    let reply = load(unknown, json!({"plugin_ref": "fmt@mk"})).await;
    assert_eq!(reply.status, 404, "{}", reply.text());

    let body = create_body(
        agent_with_marketplace("http://127.0.0.1:9/v1", market.path()),
        &server.root().join("w"),
    );
    let created = server.post("/api/conversations", body).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();

    let reply = load(id.clone(), json!({"plugin_ref": "nope@mk"})).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"detail": "Plugin 'nope' not found in marketplace 'mk'"})
    );
    let reply = load(id.clone(), json!({"plugin_ref": "fmt@elsewhere"})).await;
    assert_eq!(reply.status, 404);
    assert_eq!(
        reply.json(),
        json!({"detail": "Marketplace 'elsewhere' is not registered"})
    );
    let reply = load(id.clone(), json!({"plugin_ref": "fmt@"})).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let reply = load(id.clone(), json!({})).await;
    assert_eq!(reply.status, 422, "{}", reply.text());
    assert_eq!(
        reply.json()["detail"][0]["loc"],
        json!(["body", "plugin_ref"])
    );

    // A plugin with MCP servers is refused by name, and nothing changes.
    let reply = load(id.clone(), json!({"plugin_ref": "tooling"})).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["unsupported"], json!(["MCP servers (fetch)"]));
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("this server does not support MCP servers"),
        "{body}"
    );
    let info = server.get(&format!("/api/conversations/{id}")).await.json();
    assert_eq!(skill_names(&info), Vec::<String>::new());

    // A conversation without marketplaces, and one whose marketplace cannot be fetched.
    let created = server
        .post(
            "/api/conversations",
            create_body(
                agent_json("http://127.0.0.1:9/v1"),
                &server.root().join("w2"),
            ),
        )
        .await;
    let bare = created.json()["id"].as_str().expect("id").to_owned();
    let reply = load(bare, json!({"plugin_ref": "fmt"})).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.text().contains("No agent context available"),
        "{}",
        reply.text()
    );

    let mut agent = agent_json("http://127.0.0.1:9/v1");
    agent["agent_context"] = json!({"registered_marketplaces": [
        {"name": "gone", "source": "http://127.0.0.1:1/gone.git"}
    ]});
    let created = server
        .post(
            "/api/conversations",
            create_body(agent, &server.root().join("w3")),
        )
        .await;
    let unreachable = created.json()["id"].as_str().expect("id").to_owned();
    let reply = load(unreachable, json!({"plugin_ref": "fmt@gone"})).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("Failed to fetch plugin from http://127.0.0.1:1/gone.git"),
        "{}",
        reply.text()
    );
}
