//! Runtime-scoped routes (`/api/conversations/{id}/bash|file|git|vscode/…`) and the 1.58.2
//! behaviour of core routes they came with (deleted files in git diffs, credentials kept
//! from commands).

use super::common;

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use common::{Reply, TestServer, send};
use hyper::Method;
use serde_json::{Value, json};

const BOUNDARY: &str = "runtime-boundary";

fn q(path: &Path) -> String {
    form_urlencoded::byte_serialize(path.to_str().expect("utf-8").as_bytes()).collect()
}

fn expect(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text());
    reply.json()
}

fn git(dir: &Path, args: &[&str]) {
    let output = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    assert!(output.status.success(), "git {args:?}");
}

/// A repository with `kept.txt` and `gone.txt` committed, then `gone.txt` deleted and
/// `kept.txt` changed.
fn repo_with_changes(repo: &Path) {
    std::fs::create_dir_all(repo).unwrap();
    git(repo, &["init", "-q"]);
    std::fs::write(repo.join("kept.txt"), "one\n").unwrap();
    std::fs::write(repo.join("gone.txt"), "bye\nnow\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "init"]);
    std::fs::write(repo.join("kept.txt"), "one\ntwo\n").unwrap();
    std::fs::remove_file(repo.join("gone.txt")).unwrap();
}

async fn upload(server: &TestServer, prefix: &str, path: &Path, content: &[u8]) -> Reply {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    send(
        Method::POST,
        &server.url(&format!("{prefix}/file/upload?path={}", q(path))),
        &[(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )],
        Some(Bytes::from(body)),
    )
    .await
}

/// A server with one idle conversation working in `<root>/w`: (server, prefix, working dir).
async fn scoped() -> (TestServer, String, std::path::PathBuf) {
    let server = TestServer::start().await;
    let id = server.idle_conversation().await;
    let working_dir = server.root().join("w");
    std::fs::create_dir_all(&working_dir).unwrap();
    (server, format!("/api/conversations/{id}"), working_dir)
}

#[tokio::test]
async fn commands_run_in_the_conversation_workspace_with_their_own_events() {
    let (server, prefix, wd) = scoped().await;
    let output = expect(
        &server
            .post(
                &format!("{prefix}/bash/execute_bash_command"),
                json!({"command": "pwd"}),
            )
            .await,
        200,
    );
    assert_eq!(output["exit_code"], 0);
    assert_eq!(
        output["stdout"].as_str().unwrap().trim(),
        wd.canonicalize().unwrap().to_str().unwrap()
    );

    // A directory inside the workspace is accepted; one outside is 422.
    std::fs::create_dir_all(wd.join("sub")).unwrap();
    let inside = server
        .post(
            &format!("{prefix}/bash/execute_bash_command"),
            json!({"command": "pwd", "cwd": wd.join("sub")}),
        )
        .await;
    assert!(
        expect(&inside, 200)["stdout"]
            .as_str()
            .unwrap()
            .ends_with("sub\n")
    );
    for cwd in [
        server.root().to_str().unwrap().to_owned(),
        format!("{}/../", wd.display()),
    ] {
        for route in ["start_bash_command", "execute_bash_command"] {
            let reply = server
                .post(
                    &format!("{prefix}/bash/{route}"),
                    json!({"command": "true", "cwd": cwd}),
                )
                .await;
            assert_eq!(
                expect(&reply, 422),
                json!({"detail": "cwd must be inside the conversation workspace"})
            );
        }
    }

    // The conversation's events are its own: searchable there, not at the top level, and
    // stored in its directory.
    let search = expect(
        &server
            .get(&format!(
                "{prefix}/bash/bash_events/search?kind__eq=BashCommand"
            ))
            .await,
        200,
    );
    let items = search["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["cwd"], wd.to_str().unwrap());
    let top = expect(&server.get("/api/bash/bash_events/search").await, 200);
    assert_eq!(top["items"], json!([]));
    let command_id = items[0]["id"].as_str().unwrap();
    expect(
        &server
            .get(&format!("{prefix}/bash/bash_events/{command_id}"))
            .await,
        200,
    );
    expect(
        &server
            .get(&format!("/api/bash/bash_events/{command_id}"))
            .await,
        404,
    );
    let stop = server
        .post(
            &format!("{prefix}/bash/bash_commands/{command_id}/stop"),
            json!(null),
        )
        .await;
    assert_eq!(expect(&stop, 200), json!({"success": true}));
    let conversation_dir = std::fs::read_dir(server.root().join("conversations"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(conversation_dir.join("bash_events").is_dir());
    let cleared = server
        .call(Method::DELETE, &format!("{prefix}/bash/bash_events"), None)
        .await;
    assert_eq!(expect(&cleared, 200), json!({"cleared_count": 4}));
}

#[tokio::test]
async fn files_must_be_inside_the_conversation_workspace() {
    let (server, prefix, wd) = scoped().await;
    let target = wd.join("dir/up.txt");
    let reply = upload(&server, &prefix, &target, b"hello").await;
    assert_eq!(expect(&reply, 200)["success"], true);
    assert_eq!(std::fs::read(&target).unwrap(), b"hello");
    let download = server
        .get(&format!("{prefix}/file/download?path={}", q(&target)))
        .await;
    assert_eq!(download.status, 200);
    assert_eq!(&download.body[..], b"hello");
    let created = server
        .post(
            &format!(
                "{prefix}/file/create_directory?path={}",
                q(&wd.join("made"))
            ),
            json!(null),
        )
        .await;
    expect(&created, 200);
    assert!(wd.join("made").is_dir());

    let outside = server.root().join("outside.txt");
    std::fs::write(&outside, "secret").unwrap();
    let escaping = wd.join("../outside.txt");
    for path in [&outside, &escaping, Path::new("up.txt")] {
        let reply = server
            .get(&format!("{prefix}/file/download?path={}", q(path)))
            .await;
        assert_eq!(
            expect(&reply, 422),
            json!({"detail": "path must be inside the conversation workspace"}),
            "{}",
            path.display()
        );
    }
    let reply = upload(&server, &prefix, &outside, b"overwritten").await;
    expect(&reply, 422);
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "secret");
    // A symbolic link inside the workspace that leads out of it is outside too.
    std::os::unix::fs::symlink(server.root(), wd.join("link")).unwrap();
    let reply = server
        .get(&format!(
            "{prefix}/file/download?path={}",
            q(&wd.join("link/outside.txt"))
        ))
        .await;
    expect(&reply, 422);
}

#[tokio::test]
async fn git_routes_are_scoped_too() {
    let (server, prefix, wd) = scoped().await;
    let repo = wd.join("repo");
    repo_with_changes(&repo);
    let changes = expect(
        &server
            .get(&format!("{prefix}/git/changes?path={}", q(&repo)))
            .await,
        200,
    );
    assert_eq!(
        changes,
        json!([
            {"path": "gone.txt", "status": "DELETED"},
            {"path": "kept.txt", "status": "UPDATED"},
        ])
    );
    let diff = expect(
        &server
            .get(&format!(
                "{prefix}/git/diff?path={}",
                q(&repo.join("kept.txt"))
            ))
            .await,
        200,
    );
    assert_eq!(diff, json!({"modified": "one\ntwo", "original": "one"}));
    let commits = expect(
        &server
            .get(&format!("{prefix}/git/commits?path={}", q(&repo)))
            .await,
        200,
    );
    assert_eq!(commits["commits"].as_array().map(Vec::len), Some(1));
    let sha = commits["commits"][0]["sha"].as_str().unwrap();
    expect(
        &server
            .get(&format!(
                "{prefix}/git/commits/{sha}/changes?path={}",
                q(&repo)
            ))
            .await,
        200,
    );
    let outside = server
        .get(&format!("{prefix}/git/changes?path={}", q(&server.root())))
        .await;
    assert_eq!(
        expect(&outside, 422),
        json!({"detail": "path must be inside the conversation workspace"})
    );
}

#[tokio::test]
async fn unknown_or_mismatched_conversations_are_refused() {
    let (server, prefix, wd) = scoped().await;
    let unknown_id = "6f1b0a62-0c5f-4d43-9d1a-4b7b1f0c2b11";
    let unknown = format!("/api/conversations/{}", unknown_id.to_uppercase());
    for (method, route) in [
        (Method::POST, "bash/execute_bash_command"),
        (Method::GET, "bash/bash_events/search"),
        (Method::GET, "file/download?path=/tmp/x"),
        (Method::GET, "git/changes?path=/tmp"),
        (Method::GET, "vscode/url"),
    ] {
        let reply = server
            .call(
                method,
                &format!("{unknown}/{route}"),
                Some(json!({"command": "true"})),
            )
            .await;
        assert_eq!(
            expect(&reply, 404),
            json!({"detail": format!("Conversation not found: {unknown_id}")}),
            "{route}"
        );
    }
    let bad = server
        .get("/api/conversations/not-a-uuid/bash/bash_events/search")
        .await;
    assert_eq!(
        expect(&bad, 422)["detail"][0]["loc"],
        json!(["path", "conversation_id"])
    );

    // The trajectory of another conversation is refused before the (unimplemented) route.
    let id = prefix.rsplit('/').next().unwrap();
    let other = server
        .get(&format!(
            "{prefix}/file/download-trajectory/6f1b0a62-0c5f-4d43-9d1a-4b7b1f0c2b11"
        ))
        .await;
    assert_eq!(
        expect(&other, 422),
        json!({"detail": "Trajectory must belong to the selected conversation"})
    );
    let invalid = server
        .get(&format!("{prefix}/file/download-trajectory/nope"))
        .await;
    assert_eq!(
        expect(&invalid, 422),
        json!({"detail": "Invalid trajectory conversation id"})
    );
    expect(
        &server
            .get(&format!("{prefix}/file/download-trajectory/{id}"))
            .await,
        501,
    );
    expect(&server.get(&format!("{prefix}/vscode/url")).await, 501);
    let archive = server
        .get(&format!("{prefix}/file/archive?path={}", q(&server.root())))
        .await;
    expect(&archive, 422);

    // A deleted conversation's routes are gone with it.
    let deleted = server.call(Method::DELETE, &prefix, None).await;
    expect(&deleted, 200);
    let reply = server
        .get(&format!("{prefix}/file/download?path={}", q(&wd.join("x"))))
        .await;
    expect(&reply, 404);
}

#[tokio::test]
async fn a_deleted_tracked_file_diffs_against_its_base_text() {
    let server = TestServer::start().await;
    let repo = server.root().join("repo");
    repo_with_changes(&repo);
    let reply = server
        .get(&format!("/api/git/diff?path={}", q(&repo.join("gone.txt"))))
        .await;
    assert_eq!(
        expect(&reply, 200),
        json!({"modified": "", "original": "bye\nnow"})
    );
    // Never tracked and not on disk: still 400.
    let never = repo.join("never.txt");
    let reply = server
        .get(&format!("/api/git/diff?path={}", q(&never)))
        .await;
    assert_eq!(
        expect(&reply, 400),
        json!({"detail": format!("File does not exist: {}", never.display())})
    );
}

#[tokio::test]
async fn observability_credentials_never_reach_commands() {
    let server = TestServer::start_with(None, |config| {
        for name in [
            "OTEL_HEADERS",
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "LMNR_PROJECT_API_KEY",
            "KEPT_VARIABLE",
        ] {
            config.command_env.insert(name.into(), "value-1234".into());
        }
    })
    .await;
    let output = expect(
        &server
            .post("/api/bash/execute_bash_command", json!({"command": "env"}))
            .await,
        200,
    );
    let env = output["stdout"].as_str().unwrap();
    assert!(env.contains("KEPT_VARIABLE=value-1234"), "{env}");
    for name in ["OTEL_", "LMNR_PROJECT_API_KEY"] {
        assert!(!env.contains(name), "{name} reached the command: {env}");
    }
}

#[tokio::test]
async fn events_of_a_closed_conversation_service_are_found_again() {
    let (server, first, _) = scoped().await;
    let output = expect(
        &server
            .post(
                &format!("{first}/bash/execute_bash_command"),
                json!({"command": "echo first"}),
            )
            .await,
        200,
    );
    assert_eq!(output["stdout"], "first\n");
    // More conversations than services kept open: the first one's is closed on the way.
    for _ in 0..40 {
        let id = server.idle_conversation().await;
        let search = server
            .get(&format!("/api/conversations/{id}/bash/bash_events/search"))
            .await;
        assert_eq!(expect(&search, 200)["items"], json!([]));
    }
    let search = expect(
        &server
            .get(&format!(
                "{first}/bash/bash_events/search?kind__eq=BashOutput"
            ))
            .await,
        200,
    );
    assert_eq!(search["items"][0]["stdout"], "first\n");
}
