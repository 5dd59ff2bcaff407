//! `/api/file/upload` and `/api/file/download` (spec §8).

use super::common;

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// `POST /api/bash/execute_bash_command` with a trivial command answers 200 in time.
async fn bash_still_works(server: &TestServer) {
    let reply = tokio::time::timeout(
        Duration::from_secs(20),
        server.post(
            "/api/bash/execute_bash_command",
            json!({"command": "echo still-here"}),
        ),
    )
    .await
    .expect("bash answers");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["stdout"], "still-here\n");
}

/// Feeds the readers blocked in `open()` on a FIFO when dropped, so that a regression fails
/// its test instead of hanging the runtime's shutdown on the stuck blocking threads.
struct Unstick(PathBuf);

impl Drop for Unstick {
    fn drop(&mut self) {
        let nonblock = i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).expect("flag");
        let mut idle = 0;
        for _ in 0..2000 {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nonblock)
                .open(&self.0)
            {
                Ok(writer) => {
                    drop(writer);
                    idle = 0;
                }
                // ENXIO: no reader waits right now.
                Err(_) => idle += 1,
            }
            if idle > 100 {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A FIFO in a repository: `git/diff` on it answers 400 at once instead of blocking a thread
/// forever in `open()`, and far more such requests than any cap of blocking work leave bash,
/// upload and download working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_is_refused_and_cannot_stall_the_server() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let repo = std::fs::canonicalize(work.path()).expect("real path");
    let status = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(&repo)
        .status()
        .expect("git");
    assert!(status.success());
    let fifo = repo.join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let _unstick = Unstick(fifo.clone());
    let diff_url = format!("/api/git/diff?path={}", query_path(&fifo));
    let refused = json!({"detail": format!("Path is not a regular file: {}", fifo.display())});

    let first = tokio::time::timeout(Duration::from_secs(10), server.get(&diff_url))
        .await
        .expect("git/diff on a FIFO blocks");
    assert_eq!(first.status, 400);
    assert_eq!(first.json(), refused);

    let fetched = tokio::time::timeout(Duration::from_secs(10), download(&server, &fifo))
        .await
        .expect("download of a FIFO blocks");
    assert_eq!(fetched.status, 400);
    assert_eq!(fetched.json(), json!({"detail": "Path is not a file"}));

    // 600 requests (the blocking pool has 512 threads), 100 at a time.
    for _ in 0..6 {
        let batch = (0..100).map(|_| server.get(&diff_url));
        let replies =
            tokio::time::timeout(Duration::from_secs(60), futures::future::join_all(batch))
                .await
                .expect("git/diff on a FIFO blocks");
        for reply in replies {
            assert_eq!(reply.status, 400);
            assert_eq!(reply.json(), refused);
        }
    }

    bash_still_works(&server).await;
    let target = work.path().join("after.txt");
    let uploaded = tokio::time::timeout(Duration::from_secs(20), upload(&server, &target, b"ok"))
        .await
        .expect("upload answers");
    assert_eq!(uploaded.status, 200, "{}", uploaded.text());
    let downloaded = tokio::time::timeout(Duration::from_secs(20), download(&server, &target))
        .await
        .expect("download answers");
    assert_eq!(downloaded.status, 200);
    assert_eq!(&downloaded.body[..], b"ok");
}

/// The names in `dir` that look like temporary upload files.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".upload"))
        .collect()
}

/// Uploads `content` to `target` in two chunks; between them, while the body is still
/// streaming, returns control to `inspect`.
async fn upload_in_two_chunks(
    server: &TestServer,
    target: &Path,
    content: &[u8],
    inspect: impl AsyncFnOnce(),
) -> Reply {
    use futures::SinkExt as _;
    type Chunk = Result<hyper::body::Frame<Bytes>, std::convert::Infallible>;
    let body = multipart(&[("file", Some("local.bin"), content)]);
    // The first chunk ends inside the file's content.
    let split = body.len() - content.len() / 2 - BOUNDARY.len() - 8;
    let (mut tx, rx) = futures::channel::mpsc::channel::<Chunk>(4);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::StreamBody<futures::channel::mpsc::Receiver<Chunk>>>(
    );
    let request =
        hyper::Request::post(server.url(&format!("/api/file/upload?path={}", query_path(target))))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(http_body_util::StreamBody::new(rx))
            .expect("request");
    let response = tokio::spawn(client.request(request));
    tx.send(Ok(hyper::body::Frame::data(body.slice(..split))))
        .await
        .expect("first chunk");
    inspect().await;
    tx.send(Ok(hyper::body::Frame::data(body.slice(split..))))
        .await
        .expect("second chunk");
    drop(tx);
    let response = tokio::time::timeout(Duration::from_secs(20), response)
        .await
        .expect("the upload answers")
        .expect("task")
        .expect("response");
    Reply::read(response).await
}

/// While an upload streams, its temporary file is private (0600) and journaled; the
/// destination then gets the replaced file's mode, or a new file's usual mode.
#[tokio::test]
async fn an_upload_in_progress_is_private_and_journaled() {
    let server = TestServer::start().await;
    let journal = server.root().join("upload_journal");
    let work = tempfile::tempdir().expect("dir");
    let content: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();

    let key = work.path().join("key");
    std::fs::write(&key, "old secret").expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let new = work.path().join("new.bin");
    let usual = work.path().join("usual");
    std::fs::write(&usual, "").expect("write");
    let usual_mode = std::fs::metadata(&usual)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;

    for (target, final_mode) in [(&key, 0o600), (&new, usual_mode)] {
        let reply = upload_in_two_chunks(&server, target, &content, async || {
            common::wait_until("the temporary file appears", || {
                !temp_files(work.path()).is_empty()
            })
            .await;
            let temps = temp_files(work.path());
            assert_eq!(temps.len(), 1, "{temps:?}");
            let mode = std::fs::metadata(&temps[0])
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", temps[0].display());
            let name = temps[0].file_name().expect("name").len();
            assert_eq!(name, ".".len() + 32 + ".upload".len());
            let entries: Vec<_> = std::fs::read_dir(&journal)
                .expect("journal")
                .map(|e| std::fs::read(e.expect("entry").path()).expect("read"))
                .collect();
            assert_eq!(entries, vec![temps[0].as_os_str().as_bytes().to_vec()]);
        })
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(std::fs::read(target).expect("read"), content);
        let mode = std::fs::metadata(target)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, final_mode, "{}", target.display());
        assert!(temp_files(work.path()).is_empty());
        assert_eq!(std::fs::read_dir(&journal).expect("journal").count(), 0);
    }
}

/// A server started over a journal left by a crash removes the temporary files it lists;
/// it never deletes a file whose name is not a temporary one, nor the file of a live upload
/// (a locked entry).
#[tokio::test]
async fn a_restart_removes_the_temporary_files_of_interrupted_uploads() {
    let state = tempfile::tempdir().expect("dir");
    let work = tempfile::tempdir().expect("dir");
    let journal = state.path().join("upload_journal");
    std::fs::create_dir_all(&journal).expect("mkdir");
    let entry = |id: &str, path: &Path| {
        std::fs::write(journal.join(id), path.as_os_str().as_bytes()).expect("entry");
    };
    let leftover = work.path().join(".0123456789abcdef0123456789abcdef.upload");
    std::fs::write(&leftover, vec![7u8; 100_000]).expect("write");
    entry("0123456789abcdef0123456789abcdef", &leftover);
    let precious = work.path().join("precious.txt");
    std::fs::write(&precious, "keep me").expect("write");
    entry("11111111111111111111111111111111", &precious);
    let live = work.path().join(".22222222222222222222222222222222.upload");
    std::fs::write(&live, "in progress").expect("write");
    entry("22222222222222222222222222222222", &live);
    let lock = std::fs::File::open(journal.join("22222222222222222222222222222222")).expect("open");
    lock.try_lock().expect("lock");

    let server = TestServer::start_in(state, None, |_| {}).await;
    assert!(!leftover.exists(), "the interrupted upload is still there");
    assert_eq!(std::fs::read_to_string(&precious).expect("kept"), "keep me");
    assert!(live.exists());
    let mut left: Vec<String> = std::fs::read_dir(&journal)
        .expect("journal")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["22222222222222222222222222222222"]);
    drop(server);
}

async fn mkdir(server: &TestServer, path: &Path) -> Reply {
    server
        .call(
            Method::POST,
            &format!("/api/file/create_directory?path={}", query_path(path)),
            None,
        )
        .await
}

/// Valid names up to NAME_MAX (255 bytes) upload: the temporary name is short whatever the
/// destination's (the reference succeeds too).
#[tokio::test]
async fn names_up_to_name_max_upload() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    for len in [215, 240, 255] {
        let target = work.path().join("b".repeat(len));
        let reply = upload(&server, &target, b"long").await;
        assert_eq!(reply.status, 200, "{len}: {}", reply.text());
        assert_eq!(reply.json(), json!({"success": true, "file_size": 4}));
        assert_eq!(std::fs::read(&target).expect("read"), b"long");
    }
    assert!(leftovers(work.path()).is_empty());
}

/// A NUL byte in the path: 404 "File not found" on download (as the reference); 400 on the
/// routes that create (the reference fails with 500).
#[tokio::test]
async fn a_nul_byte_in_a_path_is_a_client_error() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let root = work.path().to_str().expect("utf-8").to_owned();
    let nul = format!("?path={root}/a%00b");
    let reply = server.get(&format!("/api/file/download{nul}")).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json(), json!({"detail": "File not found"}));
    let invalid = json!({"detail": "Invalid path: it contains a NUL byte"});
    let reply = upload_raw(&server, &nul, multipart(&[("file", Some("x"), b"x")])).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json(), invalid);
    let reply = server
        .call(
            Method::POST,
            &format!("/api/file/create_directory{nul}"),
            None,
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json(), invalid);
}

/// A symlink loop: 404 on download and the reference's 400s where it has them; 400 with the
/// OS error where the reference fails with 500.
#[tokio::test]
async fn a_symlink_loop_is_a_client_error() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let root = work.path().to_str().expect("utf-8").to_owned();
    std::os::unix::fs::symlink("lb", work.path().join("la")).expect("symlink");
    std::os::unix::fs::symlink("la", work.path().join("lb")).expect("symlink");
    let la = work.path().join("la");
    let reply = download(&server, &la).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json(), json!({"detail": "File not found"}));
    let reply = upload(&server, &la, b"x").await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"detail": format!(
            "Failed to upload file: [Errno 40] Too many levels of symbolic links: '{root}/la'"
        )})
    );
    let reply = upload(&server, &la.join("x"), b"x").await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"detail": "A parent of the path is not a directory"})
    );
    let reply = mkdir(&server, &la).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"detail": "Path exists and is not a directory"})
    );
    let reply = mkdir(&server, &la.join("x")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"detail": format!(
            "Failed to create directory: [Errno 40] Too many levels of symbolic links: \
             '{root}/la/x'"
        )})
    );
}

/// A component over NAME_MAX and other OS errors the client's path causes are 400 with the
/// OS error (the reference fails with 500).
#[tokio::test]
async fn over_long_names_and_unwritable_places_are_client_errors() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().expect("dir");
    let long = work.path().join("c".repeat(300));
    let too_long = |action: &str| {
        json!({"detail": format!(
            "Failed to {action}: [Errno 36] File name too long: '{}'",
            long.display()
        )})
    };
    let reply = download(&server, &long).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json(), too_long("download file"));
    let reply = upload(&server, &long, b"x").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json(), too_long("upload file"));
    let reply = mkdir(&server, &long).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json(), too_long("create directory"));

    // A directory that takes no new files.
    let reply = upload(&server, Path::new("/proc/self/foo"), b"x").await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"detail": "Failed to upload file: [Errno 2] No such file or directory: '/proc/self/foo'"})
    );
    assert!(leftovers(work.path()).is_empty());
}
