//! `/api/file/upload` and `/api/file/download` (spec §8).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use bytes::Bytes;
use common::{Reply, TestServer};
use hyper::Method;
use serde_json::json;

const BOUNDARY: &str = "----oh-test-boundary-7MA4YWxkTrZu0gW";

/// A multipart body with the given parts `(field name, file name, content)`.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Bytes {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match filename {
            Some(filename) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Bytes::from(body)
}

fn query_path(path: &Path) -> String {
    form_urlencoded::byte_serialize(path.to_str().expect("utf-8").as_bytes()).collect()
}

async fn upload_raw(server: &TestServer, query: &str, body: Bytes) -> Reply {
    common::send(
        Method::POST,
        &server.url(&format!("/api/file/upload{query}")),
        &[(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )],
        Some(body),
    )
    .await
}

async fn upload(server: &TestServer, path: &Path, content: &[u8]) -> Reply {
    upload_raw(
        server,
        &format!("?path={}", query_path(path)),
        multipart(&[("file", Some("local.bin"), content)]),
    )
    .await
}

async fn download(server: &TestServer, path: &Path) -> Reply {
    server
        .get(&format!("/api/file/download?path={}", query_path(path)))
        .await
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".upload"))
        .collect()
}

#[tokio::test]
async fn every_byte_value_round_trips() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let target = work.path().join("new/sub dir/bytes.bin");
    let content: Vec<u8> = (0..=255u8).collect();
    let reply = upload(&server, &target, &content).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json(), json!({"success": true, "file_size": 256}));
    assert_eq!(std::fs::read(&target).expect("written"), content);

    let reply = download(&server, &target).await;
    assert_eq!(reply.status, 200);
    assert_eq!(&reply.body[..], &content[..]);
    assert_eq!(reply.headers["content-type"], "application/octet-stream");
    assert_eq!(reply.headers["content-length"], "256");
    assert_eq!(
        reply.headers["content-disposition"],
        "attachment; filename=\"bytes.bin\""
    );
    assert_eq!(reply.headers["accept-ranges"], "bytes");
    assert!(reply.headers.contains_key("etag"));
    assert!(
        reply.headers["last-modified"]
            .to_str()
            .expect("ascii")
            .ends_with(" GMT")
    );
    assert!(leftovers(target.parent().expect("parent")).is_empty());
}

#[tokio::test]
async fn a_64_mib_file_round_trips() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let target = work.path().join("big.bin");
    // Incompressible-ish pseudo-random bytes (xorshift).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let content: Vec<u8> = (0..64 * 1024 * 1024 / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    let reply = upload(&server, &target, &content).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"success": true, "file_size": 64 * 1024 * 1024})
    );
    let reply = download(&server, &target).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-length"], "67108864");
    assert!(reply.body.len() == content.len() && reply.body[..] == content[..]);
}

#[tokio::test]
async fn an_upload_replaces_a_file_and_keeps_its_mode() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let target = work.path().join("run.sh");
    std::fs::write(&target, "old").expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o750)).expect("chmod");
    let reply = upload(&server, &target, b"#!/bin/sh\necho new\n").await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "#!/bin/sh\necho new\n"
    );
    let mode = std::fs::metadata(&target)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o750);

    // The last `file` part wins; other fields are ignored.
    let body = multipart(&[
        ("note", None, b"ignored"),
        ("file", Some("a"), b"first"),
        ("file", Some("b"), b"second"),
    ]);
    let reply = upload_raw(&server, &format!("?path={}", query_path(&target)), body).await;
    assert_eq!(reply.json(), json!({"success": true, "file_size": 6}));
    assert_eq!(std::fs::read(&target).expect("read"), b"second");
    assert!(leftovers(work.path()).is_empty());

    // An empty file is fine.
    let reply = upload(&server, &target, b"").await;
    assert_eq!(reply.json(), json!({"success": true, "file_size": 0}));
    assert_eq!(std::fs::read(&target).expect("read"), b"");
}

#[tokio::test]
async fn upload_mistakes_are_client_errors() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let file = work.path().join("plain.txt");
    std::fs::write(&file, "x").expect("write");

    let relative = upload_raw(
        &server,
        "?path=relative/x.txt",
        multipart(&[("file", Some("x"), b"x")]),
    )
    .await;
    assert_eq!(relative.status, 400);
    assert_eq!(relative.json(), json!({"detail": "Path must be absolute"}));

    let no_path = upload_raw(&server, "", multipart(&[("file", Some("x"), b"x")])).await;
    assert_eq!(no_path.status, 422);
    assert_eq!(no_path.json()["detail"][0]["loc"], json!(["query", "path"]));

    let target = work.path().join("out.txt");
    let no_file = upload_raw(
        &server,
        &format!("?path={}", query_path(&target)),
        multipart(&[("other", None, b"x")]),
    )
    .await;
    assert_eq!(no_file.status, 422);
    assert_eq!(no_file.json()["detail"][0]["loc"], json!(["body", "file"]));
    assert!(!target.exists());

    let not_multipart = server
        .post(
            &format!("/api/file/upload?path={}", query_path(&target)),
            json!({"file": "x"}),
        )
        .await;
    assert_eq!(not_multipart.status, 422);

    let directory = upload(&server, work.path(), b"x").await;
    assert_eq!(directory.status, 400);
    assert_eq!(directory.json(), json!({"detail": "Path is a directory"}));

    for under_file in [file.join("x.txt"), file.join("deeper/x.txt")] {
        let reply = upload(&server, &under_file, b"x").await;
        assert_eq!(reply.status, 400, "{}", under_file.display());
        assert_eq!(
            reply.json(),
            json!({"detail": "A parent of the path is not a directory"})
        );
    }

    let truncated = upload_raw(
        &server,
        &format!("?path={}", query_path(&target)),
        Bytes::from(format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\nabc"
        )),
    )
    .await;
    assert_eq!(truncated.status, 400, "{}", truncated.text());
    assert!(!target.exists());
    assert!(leftovers(work.path()).is_empty());
}

#[tokio::test]
async fn download_mistakes_are_client_errors() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let missing = download(&server, &work.path().join("nope.txt")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), json!({"detail": "File not found"}));

    let directory = download(&server, work.path()).await;
    assert_eq!(directory.status, 400);
    assert_eq!(directory.json(), json!({"detail": "Path is not a file"}));

    let relative = server.get("/api/file/download?path=a/b.txt").await;
    assert_eq!(relative.status, 400);
    assert_eq!(relative.json(), json!({"detail": "Path must be absolute"}));

    let no_path = server.get("/api/file/download").await;
    assert_eq!(no_path.status, 422);
}

#[tokio::test]
async fn downloads_honour_a_byte_range_and_quote_odd_names() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let target = work.path().join("data é.txt");
    let content: Vec<u8> = (0..100u8).collect();
    std::fs::write(&target, &content).expect("write");
    let url = server.url(&format!("/api/file/download?path={}", query_path(&target)));

    let whole = common::send(Method::GET, &url, &[], None).await;
    assert_eq!(
        whole.headers["content-disposition"],
        "attachment; filename*=utf-8''data%20%C3%A9.txt"
    );

    let part = common::send(Method::GET, &url, &[("range", "bytes=10-19".into())], None).await;
    assert_eq!(part.status, 206);
    assert_eq!(&part.body[..], &content[10..20]);
    assert_eq!(part.headers["content-range"], "bytes 10-19/100");
    assert_eq!(part.headers["content-length"], "10");

    let tail = common::send(Method::GET, &url, &[("range", "bytes=-5".into())], None).await;
    assert_eq!(&tail.body[..], &content[95..]);

    let beyond = common::send(Method::GET, &url, &[("range", "bytes=200-".into())], None).await;
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.headers["content-range"], "bytes */100");

    let malformed = common::send(Method::GET, &url, &[("range", "lines=1-2".into())], None).await;
    assert_eq!(malformed.status, 400);
    assert_eq!(
        malformed.json(),
        json!({"detail": "Only support bytes range"})
    );
}

#[tokio::test]
async fn create_directory_makes_parents() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let deep = work.path().join("a/b/c");
    let reply = server
        .call(
            Method::POST,
            &format!("/api/file/create_directory?path={}", query_path(&deep)),
            None,
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"success": true}));
    assert!(deep.is_dir());
    let file = work.path().join("f");
    std::fs::write(&file, "x").expect("write");
    let reply = server
        .call(
            Method::POST,
            &format!("/api/file/create_directory?path={}", query_path(&file)),
            None,
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"detail": "Path exists and is not a directory"})
    );
}
