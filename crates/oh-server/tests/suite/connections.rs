//! Slow and idle clients: header-read and idle timeouts, the body rate, the connection cap,
//! and a shutdown bounded by its drain whatever clients (or blocking threads) hang.

use super::common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Socket, TestServer};
use futures::SinkExt;
use hyper::Method;
use oh_agent::workspace::exec::{Signal, signal_process};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Waits until the server closes `stream` (EOF or reset); `None` if it is still open after
/// `limit`. Returns how long it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut sink = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

/// Reads one response (head and a `content-length` body) within `limit`.
async fn read_response(stream: &mut TcpStream, limit: Duration) -> (u16, String) {
    tokio::time::timeout(limit, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(
                n > 0,
                "closed before a response: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let length: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .expect("content-length");
        while buf.len() < head_end + length {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed in the body");
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
        (status, body)
    })
    .await
    .expect("no response in time")
}

/// `GET /health` on `stream` (kept alive), and its status.
async fn health(stream: &mut TcpStream) -> u16 {
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    read_response(stream, Duration::from_secs(10)).await.0
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.expect("connect")
}

#[tokio::test]
async fn a_partial_request_head_is_closed_after_the_header_read_timeout() {
    let server = TestServer::start_with(None, |c| {
        c.header_read_timeout_seconds = 1.0;
        c.idle_timeout_seconds = 60.0;
    })
    .await;
    // Half a head, then nothing.
    let mut partial = connect(&server).await;
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    // One header byte every 200 ms: still a head that never completes.
    let mut dribbling = connect(&server).await;
    let (mut read_half, mut write_half) = dribbling.split();
    let dribble = async {
        for byte in b"GET /health HTTP/1.1\r\nX-Slow: ".iter().cycle() {
            if write_half.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let closed = async {
        let mut sink = [0u8; 64];
        let start = Instant::now();
        loop {
            match read_half.read(&mut sink).await {
                Ok(0) | Err(_) => return start.elapsed(),
                Ok(_) => {}
            }
        }
    };
    let dribbler_closed = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            () = dribble => None,
            took = closed => Some(took),
        }
    });
    let (took, dribbler_closed) = tokio::join!(
        closed_within(&mut partial, Duration::from_secs(10)),
        dribbler_closed
    );
    let took = took.expect("a partial head is still open after 10 s");
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
    let dribbler = dribbler_closed
        .ok()
        .flatten()
        .expect("a dribbling head is still open after 10 s");
    assert!(dribbler < Duration::from_secs(5), "{dribbler:?}");
    // A complete request on a fresh connection is served.
    assert_eq!(health(&mut connect(&server).await).await, 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start_with(None, |c| {
        c.header_read_timeout_seconds = 30.0;
        c.idle_timeout_seconds = 1.0;
    })
    .await;
    let mut silent = connect(&server).await;
    let mut kept = connect(&server).await;
    assert_eq!(health(&mut kept).await, 200);
    // Still kept alive between requests shorter than the timeout.
    assert_eq!(health(&mut kept).await, 200);
    let took = closed_within(&mut kept, Duration::from_secs(10))
        .await
        .expect("an idle keep-alive connection is still open after 10 s");
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
    closed_within(&mut silent, Duration::from_secs(10))
        .await
        .expect("a silent connection is still open after 10 s");
}

#[tokio::test]
async fn connections_past_the_cap_get_a_503_with_a_json_body() {
    let server = TestServer::start_with(None, |c| c.max_connections = Some(3)).await;
    let mut inside = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&server).await;
        assert_eq!(health(&mut stream).await, 200);
        inside.push(stream);
    }
    let mut outside = connect(&server).await;
    outside
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let (status, body) = read_response(&mut outside, Duration::from_secs(10)).await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON body");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("connection")),
        "{body}"
    );
    closed_within(&mut outside, Duration::from_secs(5))
        .await
        .expect("a refused connection is closed");
    // The connections inside the cap still answer.
    for stream in &mut inside {
        assert_eq!(health(stream).await, 200);
    }
    // Once one closes, a new connection gets in (the server sees the close asynchronously).
    drop(inside.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut fresh = connect(&server).await;
        if health(&mut fresh).await == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no room after a connection closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_long_request_and_a_websocket_outlive_the_idle_and_header_timeouts() {
    let server = TestServer::start_with(None, |c| {
        c.header_read_timeout_seconds = 1.0;
        c.idle_timeout_seconds = 1.0;
    })
    .await;
    let url = format!("ws://{}/sockets/bash-events", server.addr);
    let (mut stream, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    stream
        .send(Message::Text(
            json!({"type": "auth", "session_api_key": ""})
                .to_string()
                .into(),
        ))
        .await
        .expect("auth");
    let mut socket = Socket { stream };

    let mut long = connect(&server).await;
    let body = json!({"command": "sleep 3; echo done", "timeout": 30}).to_string();
    long.write_all(
        format!(
            "POST /api/bash/execute_bash_command HTTP/1.1\r\nHost: localhost\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let (status, reply) = read_response(&mut long, Duration::from_secs(30)).await;
    assert_eq!(status, 200, "{reply}");
    let reply: Value = serde_json::from_str(&reply).expect("JSON");
    assert_eq!(reply["stdout"], "done\n", "{reply}");

    // The socket, quiet for longer than both timeouts, still works.
    socket
        .stream
        .send(Message::Text(
            json!({"command": "echo still-here"}).to_string().into(),
        ))
        .await
        .expect("send");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let event = socket.next().await.expect("event");
        if event["kind"] == "BashOutput" && event["stdout"] == "still-here\n" {
            break;
        }
        assert!(Instant::now() < deadline, "no output on the socket");
    }
}

#[tokio::test]
async fn a_request_body_that_stalls_is_cut_and_a_fast_large_one_is_not() {
    let server = TestServer::start_with(None, |c| {
        c.header_read_timeout_seconds = 30.0;
        c.idle_timeout_seconds = 60.0;
        c.body_read_timeout_seconds = 1.0;
        c.body_min_rate_bytes_per_second = 100;
    })
    .await;
    let mut slow = connect(&server).await;
    slow.write_all(
        b"POST /api/bash/execute_bash_command HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"command\": ",
    )
    .await
    .expect("write");
    let (status, body) = read_response(&mut slow, Duration::from_secs(10)).await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON body");
    assert!(body["detail"].is_string(), "{body}");

    // 16 MiB at loopback speed, with a minimum rate of 1 MiB/s: accepted.
    let target = server.root().join("big.bin");
    let content = vec![7u8; 16 << 20];
    let boundary = "connections-test-boundary";
    let mut multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(&content);
    multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let fast = TestServer::start_with(None, |c| {
        c.body_read_timeout_seconds = 1.0;
        c.body_min_rate_bytes_per_second = 1 << 20;
    })
    .await;
    let path: String =
        form_urlencoded::byte_serialize(target.to_str().expect("utf-8").as_bytes()).collect();
    let reply = common::send(
        Method::POST,
        &fast.url(&format!("/api/file/upload?path={path}")),
        &[(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )],
        Some(Bytes::from(multipart)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        std::fs::metadata(&target).expect("uploaded").len(),
        16 << 20
    );
}

/// The real binary, with the given extra environment.
struct Process {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl Process {
    async fn start(env: &[(&str, &str)]) -> Self {
        let root = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let mut command = Command::new(env!("CARGO_BIN_EXE_openhands-agent-server"));
        command
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("OH_CONVERSATIONS_PATH", root.path().join("conversations"))
            .env("OH_BASH_EVENTS_DIR", root.path().join("bash_events"))
            .env(
                "OPENHANDS_AGENT_SERVER_CONFIG_PATH",
                root.path().join("none.json"),
            )
            .env_remove("SESSION_API_KEY")
            .env_remove("OH_SESSION_API_KEYS")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let child = command.spawn().expect("spawn server");
        let mut process = Self {
            child,
            port,
            _root: root,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await {
                stream
                    .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .await
                    .expect("write");
                assert_eq!(
                    read_response(&mut stream, Duration::from_secs(10)).await.0,
                    200
                );
                break;
            }
            assert!(
                process.child.try_wait().expect("try_wait").is_none(),
                "server exited"
            );
            assert!(Instant::now() < deadline, "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("connect")
    }

    /// SIGTERM, then how long until the process exited (`None`: still running after `limit`).
    async fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        signal_process(self.child.id(), Signal::Terminate).expect("SIGTERM");
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.child.try_wait().expect("try_wait").is_some() {
                return Some(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a test allows beyond the drain for the process to exit.
const EXIT_MARGIN: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn sigterm_exits_within_the_drain_despite_slow_idle_and_busy_clients() {
    let mut server = Process::start(&[
        ("OH_SHUTDOWN_DRAIN_SECONDS", "2"),
        ("OH_HEADER_READ_TIMEOUT_SECONDS", "60"),
        ("OH_IDLE_TIMEOUT_SECONDS", "60"),
    ])
    .await;
    let mut partial = server.connect().await;
    partial
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .expect("write");
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(server.connect().await);
    }
    let mut kept = server.connect().await;
    assert_eq!(health(&mut kept).await, 200);
    // A command that outlives the drain: it is in flight when the drain ends.
    let mut busy = server.connect().await;
    let body = json!({"command": "sleep 60", "timeout": 120}).to_string();
    busy.write_all(
        format!(
            "POST /api/bash/execute_bash_command HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    // The partial head is being read by the server once /health answers on a later
    // connection; the command has started once its event is stored.
    wait_for_running_command(&server).await;
    let took = server
        .terminate(Duration::from_secs(2) + EXIT_MARGIN)
        .await
        .expect("still running after the drain (2 s) + margin");
    assert!(
        took >= Duration::from_millis(1500),
        "exited before the drain: {took:?}"
    );
    drop((partial, idle, kept, busy));
}

/// Waits until a bash command is stored (started).
async fn wait_for_running_command(server: &Process) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut stream = server.connect().await;
        stream
            .write_all(b"GET /api/bash/bash_events/search HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .expect("write");
        let (status, body) = read_response(&mut stream, Duration::from_secs(10)).await;
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).expect("JSON");
        if page["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty())
        {
            return;
        }
        assert!(Instant::now() < deadline, "the command never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Blocking-pool threads stuck in `open()` of a FIFO (`GET /api/git/diff` of one, finding
/// F2) used to keep the process alive after SIGTERM: dropping the runtime waits for them.
/// (Once that route refuses FIFOs, no thread is stuck here and this checks less.)
#[tokio::test]
async fn sigterm_exits_within_the_drain_with_blocking_threads_stuck() {
    let repo = tempfile::tempdir().expect("temp dir");
    let ok = |status: std::process::ExitStatus| assert!(status.success());
    ok(Command::new("git")
        .args(["init", "-q"])
        .current_dir(repo.path())
        .status()
        .expect("git init"));
    let fifo = repo.path().join("pipe");
    ok(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo"));
    let mut server = Process::start(&[("OH_SHUTDOWN_DRAIN_SECONDS", "2")]).await;
    let path: String =
        form_urlencoded::byte_serialize(fifo.to_str().expect("utf-8").as_bytes()).collect();
    let mut stuck = Vec::new();
    for _ in 0..8 {
        let mut stream = server.connect().await;
        stream
            .write_all(
                format!("GET /api/git/diff?path={path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .expect("write");
        stuck.push(stream);
    }
    // The requests are being served once a later request on the same server is answered.
    assert_eq!(health(&mut server.connect().await).await, 200);
    let took = server.terminate(Duration::from_secs(2) + EXIT_MARGIN).await;
    took.expect("still running after the drain (2 s) + margin");
    drop(stuck);
}

/// A request answered before its body was read (here a 401 on an upload) says
/// `Connection: close`, so clients do not reuse a connection the server is about to close
/// (the Python client then failed its next request: "Server disconnected without sending a
/// response"). A request whose body was read, or that had none, keeps the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_before_the_body_was_read_closes_the_connection_and_says_so() {
    let server = TestServer::with_key("right-key").await;
    let head = |path: &str, key: &str, length: usize| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Session-API-Key: {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
        )
    };
    let read_head = |mut stream: TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer")
            .expect("read");
        String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
    };
    // Wrong key, a body announced and only partly sent: refused before reading it.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let body = "x".repeat(1000);
    stream
        .write_all(
            format!(
                "{}{}",
                head("/api/file/upload?path=/tmp/x", "wrong", 100_000),
                body
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_head(stream).await;
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    // The right key and a body that is read: the connection stays open.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let json = r#"{"command":"true"}"#;
    stream
        .write_all(
            format!(
                "{}{json}",
                head("/api/bash/start_bash_command", "right-key", json.len())
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_head(stream).await;
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(!answer.contains("connection: close"), "{answer}");
}
