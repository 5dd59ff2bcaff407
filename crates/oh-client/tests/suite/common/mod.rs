//! Shared helpers: an in-process agent server, a scripted agent, and a TCP proxy that can cut
//! event-socket connections.
#![allow(unreachable_pub, reason = "`pub` helpers of a private test module")]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oh_protocol::{Agent, Llm, ToolSpec};
use oh_server::{Config, Server};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Our agent server on a free loopback port, storing under a temp dir; stops on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    server: oh_server::Spawned,
}

impl TestServer {
    pub async fn start(key: Option<&str>) -> Self {
        Self::start_at(key, 0).await
    }

    /// A server on `port` (0: any free port) with a fresh directory.
    pub async fn start_at(key: Option<&str>, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::under(dir.path());
        config.port = port;
        if let Some(key) = key {
            config.session_api_keys = vec![key.into()];
            config.secret_key = Some(key.into());
        }
        // A server just stopped on `port` may hold it a moment longer: retry until it is free.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let server = loop {
            match Server::bind(config.clone()).await {
                Ok(server) => break server,
                Err(_) if port != 0 && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(err) => panic!("bind: {err}"),
            }
        };
        let server = server.spawn();
        Self {
            addr: server.local_addr(),
            dir,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn work_dir(&self) -> String {
        self.dir.path().join("work").to_string_lossy().into_owned()
    }
}

impl TestServer {
    /// Stops the server (a server started on its port waits until the port is free).
    pub async fn stop(self) {
        drop(self.server);
    }
}

/// An agent whose LLM is the scripted server at `base_url`.
pub fn agent(base_url: &str) -> Agent {
    let mut llm = Llm::new("openai/scripted-model");
    llm.base_url = Some(base_url.to_owned());
    llm.api_key = Some("scripted".into());
    Agent::new(
        llm,
        vec![ToolSpec::new("terminal"), ToolSpec::new("file_editor")],
    )
}

/// A TCP proxy in front of `upstream`. Connections whose request starts with
/// `GET /sockets/` (event sockets) are tracked so [`Proxy::cut_sockets`] can drop them.
pub struct Proxy {
    pub addr: SocketAddr,
    sockets: Arc<Mutex<Vec<AbortHandle>>>,
    pub cuts: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let sockets: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let tracked = Arc::clone(&sockets);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let tracked = Arc::clone(&tracked);
                let (tx, rx) = tokio::sync::oneshot::channel::<AbortHandle>();
                let conn = tokio::spawn(async move {
                    let Ok(handle) = rx.await else { return };
                    let _ = pipe(client, upstream, handle, tracked).await;
                });
                let _ = tx.send(conn.abort_handle());
            }
        });
        Self {
            addr,
            sockets,
            cuts: Arc::default(),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every open event-socket connection (no close frame: a network failure).
    pub fn cut_sockets(&self) -> u64 {
        let handles: Vec<AbortHandle> = std::mem::take(&mut *self.sockets.lock().unwrap());
        let mut cut = 0;
        for handle in handles {
            if !handle.is_finished() {
                handle.abort();
                cut += 1;
            }
        }
        self.cuts.fetch_add(cut, Ordering::SeqCst);
        cut
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut_sockets();
    }
}

async fn pipe(
    mut client: TcpStream,
    upstream: SocketAddr,
    handle: AbortHandle,
    tracked: Arc<Mutex<Vec<AbortHandle>>>,
) -> std::io::Result<()> {
    let mut head = [0u8; 16];
    let mut n = client.peek(&mut head).await?;
    for _ in 0..100 {
        if n >= 13 || n == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        n = client.peek(&mut head).await?;
    }
    if head[..n].starts_with(b"GET /sockets/") {
        tracked.lock().unwrap().push(handle);
    }
    let mut server = TcpStream::connect(upstream).await?;
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let result = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    let _ = server.shutdown().await;
    result.map(|_| ())
}

/// Waits until `check` holds, polling; panics after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
