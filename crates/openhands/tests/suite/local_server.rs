//! `LocalServer`: addresses, keys, directories and stopping.

use std::time::Duration;

use openhands::prelude::*;
use pretty_assertions::assert_eq;

#[tokio::test(flavor = "multi_thread")]
async fn serves_on_loopback_and_owns_a_temporary_root() {
    let server = LocalServer::start().await.unwrap();
    assert!(
        server.url().starts_with("http://127.0.0.1:"),
        "{}",
        server.url()
    );
    assert_ne!(server.addr().port(), 0);
    assert_eq!(server.api_key(), None);
    assert_eq!(server.working_dir(), server.root().join("project"));
    assert!(server.working_dir().is_dir());
    let workspace = server.workspace().unwrap();
    assert_eq!(workspace.host(), server.url());
    assert!(workspace.alive().await);
    let info = workspace.server_info().await.unwrap();
    assert!(!info.version.is_empty());

    let root = server.root().to_path_buf();
    server.shutdown().await.unwrap();
    assert!(!root.exists(), "the temporary root is removed");
    assert!(!workspace.alive().await, "the server stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn requires_its_key() {
    let server = LocalServer::builder()
        .api_key("s3cret")
        .start()
        .await
        .unwrap();
    assert_eq!(server.api_key(), Some("s3cret"));
    let with_key = server.workspace().unwrap();
    assert_eq!(with_key.api_key(), Some("s3cret"));
    with_key
        .execute_command("true", None, Duration::from_secs(10))
        .await
        .unwrap();

    let without_key = Workspace::remote(server.url(), "/").unwrap();
    let denied = without_key
        .execute_command("true")
        .timeout(Duration::from_secs(10))
        .await
        .expect_err("no key");
    let openhands::Error::Client(client) = &denied else {
        panic!("{denied:?}")
    };
    assert_eq!(client.status(), Some(401), "{client}");
    assert!(
        client.to_string().contains("no API key was sent"),
        "a missing key is named: {client}"
    );

    let wrong_key = RemoteWorkspace::builder(server.url())
        .api_key("not-the-key")
        .working_dir("/")
        .build()
        .unwrap();
    let refused = wrong_key
        .execute_command("true", None, Duration::from_secs(10))
        .await
        .expect_err("wrong key");
    assert_eq!(refused.status(), Some(401), "{refused}");
    assert!(
        refused.to_string().contains("refused the API key"),
        "a wrong key is named: {refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn keeps_a_given_root_and_working_dir() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("server");
    let working_dir = dir.path().join("elsewhere/work");
    let server = LocalServer::builder()
        .root_dir(&root)
        .working_dir(&working_dir)
        .start()
        .await
        .unwrap();
    assert_eq!(server.root(), root);
    assert_eq!(server.working_dir(), working_dir);
    assert!(working_dir.is_dir());
    assert_eq!(
        server.workspace().unwrap().working_dir(),
        working_dir.to_string_lossy()
    );
    server.shutdown().await.unwrap();
    assert!(root.join("conversations").is_dir(), "a given root is kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_stops_the_server_and_removes_the_root() {
    let server = LocalServer::start().await.unwrap();
    let workspace = server.workspace().unwrap();
    let root = server.root().to_path_buf();
    assert!(workspace.alive().await);
    drop(server);
    let mut waited = Duration::ZERO;
    while (root.exists() || workspace.alive().await) && waited < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    }
    assert!(!root.exists(), "the temporary root is removed");
    assert!(!workspace.alive().await, "the server stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_port_is_a_typed_error() {
    let first = LocalServer::start().await.unwrap();
    let second = LocalServer::builder()
        .port(first.addr().port())
        .start()
        .await
        .expect_err("the port is taken");
    assert!(matches!(second, openhands::Error::Server(_)), "{second:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn debug_never_shows_the_key() {
    let builder = LocalServer::builder().api_key("sk-local-4242");
    let server = builder.clone().start().await.unwrap();
    let remote = server.workspace().unwrap();
    let workspace = Workspace::from(&remote);
    for shown in [
        format!("{builder:?}"),
        format!("{builder:#?}"),
        format!("{server:?}"),
        format!("{server:#?}"),
        format!("{remote:?}"),
        format!("{workspace:?}"),
        format!("{workspace:#?}"),
    ] {
        assert!(!shown.contains("sk-local-4242"), "{shown}");
    }
    assert_eq!(server.api_key(), Some("sk-local-4242"));
    assert_eq!(remote.api_key(), Some("sk-local-4242"));
    server.shutdown().await.unwrap();
}
