//! Restart and crash recovery of the real binary: kill -9 during a run, SIGTERM during a run,
//! kill -9 during an upload.

use super::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{agent_json, create_body, send};
use hyper::Method;
use oh_agent::workspace::exec::{Signal, signal_process};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

const KEY: &str = "restart-key";

struct Process {
    child: Child,
    base: String,
}

impl Process {
    async fn start(root: &std::path::Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_openhands-agent-server"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("SESSION_API_KEY", KEY)
            .env("OH_CONVERSATIONS_PATH", root.join("conversations"))
            .env("OH_BASH_EVENTS_DIR", root.join("bash_events"))
            .env("OH_UPLOAD_JOURNAL_DIR", root.join("upload_journal"))
            .env("OPENHANDS_AGENT_SERVER_CONFIG_PATH", root.join("none.json"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn server");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Ok(response)) = tokio::time::timeout(
                Duration::from_millis(500),
                try_get(&format!("{base}/health")),
            )
            .await
                && response
            {
                break;
            }
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self { child, base }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> common::Reply {
        send(
            method,
            &format!("{}{path}", self.base),
            &[("x-session-api-key", KEY.to_owned())],
            body.map(|b| bytes::Bytes::from(b.to_string())),
        )
        .await
    }

    fn signal(&mut self, signal: Signal) {
        signal_process(self.child.id(), signal).expect("signal");
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn try_get(url: &str) -> Result<bool, ()> {
    use http_body_util::Empty;
    use hyper_util::client::legacy::Client;
    let client =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let uri: hyper::Uri = url.parse().map_err(|_| ())?;
    client
        .get(uri)
        .await
        .map(|r| r.status().is_success())
        .map_err(|_| ())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn events(server: &Process, id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let path = match &page {
            Some(p) => format!("/api/conversations/{id}/events/search?page_id={p}"),
            None => format!("/api/conversations/{id}/events/search"),
        };
        let body = server.call(Method::GET, &path, None).await.json();
        events.extend(body["items"].as_array().expect("items").iter().cloned());
        match body["next_page_id"].as_str() {
            Some(next) => page = Some(next.to_owned()),
            None => return events,
        }
    }
}

async fn wait_for(server: &Process, id: &str, what: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = events(server, id).await;
        if what(&all) {
            return all;
        }
        assert!(Instant::now() < deadline, "timed out; events: {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status(server: &Process, id: &str) -> String {
    server
        .call(Method::GET, &format!("/api/conversations/{id}"), None)
        .await
        .json()["execution_status"]
        .as_str()
        .expect("status")
        .to_owned()
}

async fn wait_status(server: &Process, id: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(server, id).await != want {
        assert!(Instant::now() < deadline, "status never became {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts a conversation with a secret whose first command (`touch started && sleep ..`)
/// hangs, and waits until it runs.
async fn start_hanging_run(server: &Process, llm: &ScriptedLlm, root: &std::path::Path) -> String {
    let mut body = create_body(agent_json(&llm.base_url()), &root.join("work"));
    body["secrets"] = json!({"MY_TOKEN": {"kind": "StaticSecret", "value": "tok-12345"}});
    let created = server
        .call(Method::POST, "/api/conversations", Some(body))
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let sent = server
        .call(
            Method::POST,
            &format!("/api/conversations/{id}/events"),
            Some(json!({"role": "user", "content": "hang", "run": true})),
        )
        .await;
    assert_eq!(sent.status, 200);
    wait_for(server, &id, |events| {
        events.iter().any(|e| e["kind"] == "ActionEvent")
    })
    .await;
    // The command touches `started` first: it runs in the shell.
    let started = root.join("work").join("started");
    common::wait_until("the command to start", || started.exists()).await;
    id
}

/// After the restart: the old events are all there and the conversation can run again,
/// with the LLM key and the secret restored from their encrypted copies.
async fn run_again(server: &Process, llm: &ScriptedLlm, id: &str) -> Vec<Value> {
    llm.push(Reply::tool(
        "terminal",
        json!({"command": "printf %s \"$MY_TOKEN\" | wc -c"}),
    ));
    llm.push(Reply::tool("finish", json!({"message": "recovered"})));
    let before = llm.requests().len();
    let sent = server
        .call(
            Method::POST,
            &format!("/api/conversations/{id}/events"),
            Some(json!({"role": "user", "content": "again", "run": true})),
        )
        .await;
    assert_eq!(sent.status, 200, "{}", sent.text());
    wait_status(server, id, "finished").await;
    let requests = llm.requests();
    assert_eq!(requests.len(), before + 2);
    assert_eq!(
        requests[before].header("authorization"),
        Some("Bearer sk-test"),
        "the LLM key survived the restart"
    );
    let all = events(server, id).await;
    let length = all
        .iter()
        .rev()
        .find(|e| e["kind"] == "ObservationEvent" && e["tool_name"] == "terminal")
        .expect("observation");
    assert_eq!(
        length["observation"]["content"][0]["text"]
            .as_str()
            .map(str::trim),
        Some("9"),
        "the secret survived the restart: {length}"
    );
    all
}

#[tokio::test]
async fn kill_9_during_a_run_then_restart() {
    let llm = ScriptedLlm::start(vec![Reply::tool(
        "terminal",
        json!({"command": "touch started && sleep 60"}),
    )])
    .await
    .expect("llm");
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let mut server = Process::start(dir.path(), port).await;
    let id = start_hanging_run(&server, &llm, dir.path()).await;
    let before = events(&server, &id).await;
    server.signal(Signal::Kill);
    drop(server);

    let server = Process::start(dir.path(), free_port()).await;
    let listed = server
        .call(Method::GET, "/api/conversations/search", None)
        .await
        .json();
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert_eq!(status(&server, &id).await, "error");
    let after = events(&server, &id).await;
    let before_ids: Vec<&Value> = before.iter().map(|e| &e["id"]).collect();
    let after_ids: Vec<&Value> = after.iter().take(before.len()).map(|e| &e["id"]).collect();
    assert_eq!(
        before_ids, after_ids,
        "every event persisted before the kill is served"
    );
    let recovery = after
        .iter()
        .find(|e| e["kind"] == "AgentErrorEvent")
        .expect("restart notice for the cut-off call");
    assert!(
        recovery["error"]
            .as_str()
            .is_some_and(|t| t.contains("restart"))
    );
    run_again(&server, &llm, &id).await;
}

#[tokio::test]
async fn sigterm_during_a_run_pauses_and_keeps_everything() {
    let llm = ScriptedLlm::start(vec![Reply::tool(
        "terminal",
        json!({"command": "touch started && sleep 3"}),
    )])
    .await
    .expect("llm");
    let dir = tempfile::tempdir().expect("dir");
    let mut server = Process::start(dir.path(), free_port()).await;
    let id = start_hanging_run(&server, &llm, dir.path()).await;
    server.signal(Signal::Terminate);
    drop(server);

    let server = Process::start(dir.path(), free_port()).await;
    let after = events(&server, &id).await;
    assert!(
        after.iter().any(|e| e["kind"] == "ObservationEvent"),
        "the step finished: {after:#?}"
    );
    assert_eq!(status(&server, &id).await, "paused");
    run_again(&server, &llm, &id).await;
}

/// The temporary upload files in `dir`.
fn temp_uploads(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".upload"))
        .collect()
}

/// kill -9 while an upload's body is still arriving leaves its temporary file behind; the
/// next start removes it, and the file being replaced still has its old content.
#[tokio::test]
async fn kill_9_during_an_upload_then_restart_leaves_no_temporary_file() {
    use futures::SinkExt as _;
    type Chunk = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>;
    let root = tempfile::tempdir().expect("temp dir");
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let target = work.join("existing.bin");
    std::fs::write(&target, "OLD").expect("write");
    let port = free_port();
    let mut server = Process::start(root.path(), port).await;

    let boundary = "oh-restart-boundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n"
    );
    let (mut tx, rx) = futures::channel::mpsc::channel::<Chunk>(4);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::StreamBody<futures::channel::mpsc::Receiver<Chunk>>>(
    );
    let path: String =
        form_urlencoded::byte_serialize(target.to_str().expect("utf-8").as_bytes()).collect();
    let request = hyper::Request::post(format!("{}/api/file/upload?path={path}", server.base))
        .header("x-session-api-key", KEY)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(http_body_util::StreamBody::new(rx))
        .expect("request");
    let response = tokio::spawn(client.request(request));
    let mut first = head.into_bytes();
    first.extend(std::iter::repeat_n(b'x', 256 * 1024));
    tx.send(Ok(hyper::body::Frame::data(bytes::Bytes::from(first))))
        .await
        .expect("first chunk");
    let deadline = Instant::now() + Duration::from_secs(20);
    while temp_uploads(&work).is_empty() {
        assert!(Instant::now() < deadline, "no temporary file appeared");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal(Signal::Kill);
    drop(tx);
    let _ = response.await;
    assert_eq!(
        temp_uploads(&work).len(),
        1,
        "the crash left its temporary file"
    );

    let _server = Process::start(root.path(), port).await;
    assert_eq!(temp_uploads(&work), Vec::<std::path::PathBuf>::new());
    assert_eq!(std::fs::read(&target).expect("read"), b"OLD");
    let journal = std::fs::read_dir(root.path().join("upload_journal")).expect("journal");
    assert_eq!(journal.count(), 0);
}
