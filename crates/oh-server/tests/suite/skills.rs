//! `POST /api/skills`: the merged skills of the sandbox, user, organization and project
//! sources with the reference's precedence and counts; bad bodies as 4xx JSON; and a
//! conversation whose agent context asks for the user's skills gets them in its prompt.

use super::common;

use std::path::Path;

use common::{Socket, TestServer, agent_json, create_body, send};
use hyper::Method;
use serde_json::{Value, json};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn names(body: &Value) -> Vec<String> {
    body["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn merges_the_sources_with_the_reference_precedence() {
    let user = tempfile::tempdir().unwrap();
    write(&user.path().join("skills/dup.md"), "from the user");
    write(
        &user.path().join("skills/mine.md"),
        "---\ntriggers: [mine]\n---\nuser only",
    );
    let project = tempfile::tempdir().unwrap();
    write(&project.path().join("AGENTS.md"), "agents file");
    write(
        &project.path().join(".openhands/skills/dup.md"),
        "from the project",
    );
    let dirs = vec![user.path().join("skills")];
    let server = TestServer::start_with(None, |c| c.user_skill_dirs = dirs).await;

    let reply = server
        .post(
            "/api/skills",
            json!({
                "load_public": true,
                "project_dir": project.path(),
                "sandbox_config": {"exposed_urls": [
                    {"name": "WORKER_1", "url": "http://localhost:8011", "port": 8011},
                    {"name": "VSCODE", "url": "http://localhost:1", "port": 1}
                ]}
            }),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    // Sandbox first; the project's `dup` replaces the user's in the user's place.
    assert_eq!(names(&body), ["work_hosts", "dup", "mine", "agents"]);
    assert_eq!(body["skills"][1]["content"], "from the project");
    assert_eq!(
        body["sources"],
        json!({"sandbox": 1, "registered_marketplaces": 0, "sdk_base": 2, "org": 0, "project": 2})
    );
    assert_eq!(
        body["skills"][2],
        json!({"name": "mine", "type": "knowledge", "content": "user only", "triggers": ["mine"],
               "source": user.path().join("skills/mine.md"), "description": null,
               "is_agentskills_format": false, "disable_model_invocation": false})
    );
    assert_eq!(body["skills"][0]["source"], Value::Null);

    // Each source can be left out.
    let reply = server
        .post(
            "/api/skills",
            json!({"load_user": false, "load_project": false, "load_public": false,
                   "project_dir": project.path()}),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(names(&reply.json()).is_empty());
    // Defaults: everything, but no project directory means no project skills.
    let reply = server.post("/api/skills", json!({})).await;
    assert_eq!(names(&reply.json()), ["dup", "mine"]);
}

#[tokio::test]
async fn organization_skills_come_from_a_clone() {
    let org = tempfile::tempdir().unwrap();
    write(&org.path().join("skills/org-rule.md"), "organization rule");
    write(&org.path().join("microagents/org-rule.md"), "shadowed");
    write(&org.path().join("microagents/old.md"), "legacy org skill");
    let git = |args: &[&str]| {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(org.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git");
        assert!(status.status.success(), "{status:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "skills"]);
    let server = TestServer::start().await;
    let url = format!("file://{}", org.path().display());
    let reply = server
        .post(
            "/api/skills",
            json!({"load_user": false, "org_configs": [
                {"repository": "o/r", "provider": "github", "org_repo_url": url, "org_name": "o"},
                {"repository": "o/x", "provider": "github", "org_repo_url": "file:///nonexistent/repo", "org_name": "x"}
            ]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(names(&body), ["org-rule", "old"]);
    assert_eq!(body["skills"][0]["content"], "organization rule");
    assert_eq!(body["sources"]["org"], 2);
    // Not asked for: not cloned.
    let reply = server
        .post(
            "/api/skills",
            json!({"load_org": false, "load_user": false, "org_configs": [
                {"repository": "o/r", "provider": "github", "org_repo_url": url, "org_name": "o"}]}),
        )
        .await;
    assert!(names(&reply.json()).is_empty());
}

#[tokio::test]
async fn bad_requests_are_json_errors() {
    let server = TestServer::with_key("skills-key").await;
    for body in [
        json!({"load_user": [1]}),
        json!({"project_dir": 5}),
        json!({"sandbox_config": {"exposed_urls": [{"name": "x"}]}}),
        json!({"org_configs": [{"repository": "o/r"}]}),
        json!([]),
    ] {
        let reply = server.post("/api/skills", body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.text());
        assert!(
            reply.json()["detail"].is_array(),
            "{body}: {}",
            reply.text()
        );
    }
    let reply = send(
        Method::POST,
        &server.url("/api/skills"),
        &[
            ("x-session-api-key", "skills-key".into()),
            ("content-type", "text/plain".into()),
        ],
        Some("{}".into()),
    )
    .await;
    assert_eq!(reply.status, 415, "{}", reply.text());
    assert!(reply.json()["detail"].is_string());
    let reply = send(
        Method::POST,
        &server.url("/api/skills"),
        &[],
        Some("{}".into()),
    )
    .await;
    assert_eq!(reply.status, 401);
    // The marketplace routes stay unimplemented.
    let reply = server.get("/api/skills/installed").await;
    assert_eq!(reply.status, 501);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_gets_the_user_skills_its_context_asks_for() {
    let user = tempfile::tempdir().unwrap();
    write(&user.path().join("skills/house.md"), "HOUSE-RULE-9");
    let llm = oh_testkit::ScriptedLlm::start(vec![oh_testkit::Reply::tool(
        "finish",
        json!({"message": "ok"}),
    )])
    .await
    .unwrap();
    let dirs = vec![user.path().join("skills")];
    let server = TestServer::start_with(None, |c| c.user_skill_dirs = dirs).await;
    let mut agent = agent_json(&llm.base_url());
    agent["agent_context"] = json!({"load_user_skills": true, "skills": []});
    let work = server.root().join("work");
    let reply = server
        .post("/api/conversations", create_body(agent, &work))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let id = reply.json()["id"].as_str().unwrap().to_owned();
    let mut socket = Socket::connect(&server, &id).await;
    let first = socket.next().await.expect("initial frame");
    assert_eq!(first["key"], "full_state");
    let sent = server
        .post(
            &format!("/api/conversations/{id}/events"),
            json!({"role": "user", "content": [{"type": "text", "text": "hi"}], "run": false}),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    let run = server
        .post(&format!("/api/conversations/{id}/run"), json!(null))
        .await;
    assert_eq!(run.status, 200, "{}", run.text());
    assert_eq!(socket.run_ends_in().await, "finished");
    let request = &llm.requests()[0].body;
    let system = request["messages"][0].to_string();
    assert!(system.contains("[BEGIN context from [house]]"), "{system}");
    assert!(system.contains("HOUSE-RULE-9"), "{system}");
}
