//! `cargo xtask load`: our server under slow and idle clients (issue 12's acceptance).
//!
//! On loopback, against the release binary (started as the bench starts it, with a session
//! key): hold 1,000 idle connections, run 200 concurrent `execute_bash_command`s and one
//! slow-loris client dribbling header bytes, while `/health` is probed on a fresh connection
//! every 50 ms. Then SIGTERM the server with the idle connections and the slow-loris still
//! open, and time its exit. Prints the figures and a PASS/FAIL line: `/health` always under
//! 50 ms, every command ok, exit within the drain.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hyper::Method;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::bench::our_binary;
use crate::bench::server::{self, Kind, Launch, Scratch};
use crate::bench::stats::{Summary, ms};
use crate::cargo;

/// The whole run may not take longer than this.
const LIMIT: Duration = Duration::from_secs(60);

/// The goal for every `/health` probe.
const HEALTH_GOAL: Duration = Duration::from_millis(50);

/// `cargo xtask load [OPTIONS]`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Our server binary (default: build it).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// Use the existing release binary.
    #[arg(long)]
    no_build: bool,
    /// Idle connections (at most 5000).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u16).range(..=5000))]
    idle: u16,
    /// Concurrent commands (at most 1000).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u16).range(..=1000))]
    commands: u16,
    /// The server's shutdown drain, in seconds (at most 20).
    #[arg(long = "drain", value_name = "S", default_value_t = 5, value_parser = clap::value_parser!(u64).range(..=20))]
    drain_seconds: u64,
}

#[derive(Debug)]
struct Options {
    bin: Option<PathBuf>,
    build: bool,
    idle: usize,
    commands: usize,
    drain_seconds: u64,
}

impl From<Args> for Options {
    fn from(args: Args) -> Self {
        Self {
            bin: args.bin,
            build: !args.no_build,
            idle: usize::from(args.idle),
            commands: usize::from(args.commands),
            drain_seconds: args.drain_seconds,
        }
    }
}

/// Raises this process's soft open-files limit to the hard one; returns the new soft limit.
fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
    getrlimit(Resource::Nofile).current
}

/// `cargo xtask load ARGS...`.
pub(crate) fn main(args: Args) -> Result<ExitCode> {
    let options = Options::from(args);
    let soft = raise_fd_limit();
    let needed = options.idle as u64 + options.commands as u64 + 200;
    if soft.is_some_and(|soft| soft < needed) {
        bail!(
            "load: the open-files limit is {soft:?}, this run needs about {needed}: raise the hard limit (ulimit -Hn)"
        );
    }
    let bin = our_binary(options.bin.clone(), options.build)?;
    let launch = Launch {
        ours_bin: bin,
        pyenv: PathBuf::new(),
        pyroot: PathBuf::new(),
        key: format!("load-{}", uuid::Uuid::new_v4().simple()),
        log_dir: cargo::target_dir()?.join("load").join("logs"),
        env: vec![(
            "OH_SHUTDOWN_DRAIN_SECONDS".to_owned(),
            options.drain_seconds.to_string(),
        )],
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let scratch = Scratch::new(Kind::Ours, &launch)?;
    let result = runtime.block_on(async {
        tokio::time::timeout(LIMIT, run(&options, &launch, &scratch))
            .await
            .unwrap_or_else(|_| bail!("load: not done within {LIMIT:?}"))
    });
    scratch.remove();
    let figures = result?;
    Ok(figures.print(&options))
}

/// What was measured.
#[derive(Debug, Default)]
struct Figures {
    health_ms: Vec<f64>,
    health_failed: Vec<String>,
    commands_ok: usize,
    commands_failed: Vec<String>,
    commands_wall: Duration,
    idle_open: usize,
    idle_refused: usize,
    idle_failed: usize,
    loris_closed_by_server: u64,
    loris_open_at_sigterm: bool,
    exit_after: Option<Duration>,
    drain: Duration,
}

impl Figures {
    #[allow(clippy::print_stdout, reason = "the figures are this task's output")]
    fn print(&self, options: &Options) -> ExitCode {
        let health = Summary::of(&self.health_ms);
        println!(
            "load: {} idle connections, {} concurrent `sleep 1; echo n`, 1 slow-loris, /health on a fresh connection every 50 ms",
            options.idle, options.commands
        );
        println!(
            "  idle connections      : {} open, {} refused by the cap (503), {} failed to connect",
            self.idle_open, self.idle_refused, self.idle_failed
        );
        println!(
            "  /health               : {} probes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} failed",
            health.n,
            health.median,
            health.p99,
            health.max,
            self.health_failed.len()
        );
        for failure in self.health_failed.iter().take(5) {
            println!("      {failure}");
        }
        println!(
            "  commands              : {} ok, {} failed, all done in {:.2} s",
            self.commands_ok,
            self.commands_failed.len(),
            self.commands_wall.as_secs_f64()
        );
        for failure in self.commands_failed.iter().take(5) {
            println!("      {failure}");
        }
        println!(
            "  slow-loris            : closed by the server {} time(s), open at SIGTERM: {}",
            self.loris_closed_by_server, self.loris_open_at_sigterm
        );
        match self.exit_after {
            Some(took) => println!(
                "  SIGTERM → exit        : {:.0} ms (drain {} ms)",
                ms(took),
                ms(self.drain)
            ),
            None => println!(
                "  SIGTERM → exit        : still running after the drain + 5 s (drain {} ms)",
                ms(self.drain)
            ),
        }
        let mut problems = Vec::new();
        if health.n == 0 || health.max.is_nan() || health.max >= ms(HEALTH_GOAL) {
            problems.push(format!("/health max {:.2} ms ≥ 50 ms", health.max));
        }
        if !self.health_failed.is_empty() {
            problems.push(format!(
                "{} /health probes failed",
                self.health_failed.len()
            ));
        }
        if !self.commands_failed.is_empty() || self.commands_ok != options.commands {
            problems.push(format!("{} commands failed", self.commands_failed.len()));
        }
        if self.exit_after.is_none_or(|took| took > self.drain) {
            problems.push("no exit within the drain".to_owned());
        }
        if problems.is_empty() {
            println!("PASS");
            ExitCode::SUCCESS
        } else {
            println!("FAIL: {}", problems.join("; "));
            ExitCode::FAILURE
        }
    }
}

async fn run(options: &Options, launch: &Launch, scratch: &Scratch) -> Result<Figures> {
    let mut server = server::start(Kind::Ours, launch, scratch, "load").await?;
    let port = server.http.port();
    let mut figures = Figures {
        drain: Duration::from_secs(options.drain_seconds),
        ..Figures::default()
    };

    // The idle connections, opened 100 at a time.
    let mut idle = Vec::with_capacity(options.idle);
    for batch in (0..options.idle).collect::<Vec<_>>().chunks(100) {
        let opened = futures::future::join_all(
            batch
                .iter()
                .map(|_| TcpStream::connect(("127.0.0.1", port))),
        )
        .await;
        for stream in opened {
            match stream {
                Ok(stream) => idle.push(stream),
                Err(_) => figures.idle_failed += 1,
            }
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    let probes = tokio::spawn(probe_health(port, Arc::clone(&stop)));
    let loris_closed = Arc::new(AtomicU64::new(0));
    let (loris_tx, loris_rx) = tokio::sync::oneshot::channel::<()>();
    let loris = tokio::spawn(slow_loris(port, Arc::clone(&loris_closed), loris_rx));

    // The commands, all at once.
    let started = Instant::now();
    let results = futures::future::join_all((0..options.commands).map(|n| {
        let http = server.http.clone();
        async move {
            let body = json!({"command": format!("sleep 1; echo {n}"), "timeout": 30});
            let reply = http
                .send(
                    Method::POST,
                    "/api/bash/execute_bash_command",
                    Some("application/json"),
                    Bytes::from(body.to_string()),
                )
                .await?
                .ok("execute_bash_command")?
                .json()?;
            let want = format!("{n}\n");
            if reply["stdout"].as_str() != Some(want.as_str()) || reply["exit_code"] != json!(0) {
                bail!("command {n}: unexpected output {reply}");
            }
            Ok::<(), anyhow::Error>(())
        }
    }))
    .await;
    figures.commands_wall = started.elapsed();
    for result in results {
        match result {
            Ok(()) => figures.commands_ok += 1,
            Err(err) => figures.commands_failed.push(format!("{err:#}")),
        }
    }
    // Probe a moment longer with the server quiet again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let (latencies, failures) = probes.await?;
    figures.health_ms = latencies;
    figures.health_failed = failures;

    // Which idle connections the cap refused (a 503 is waiting in them).
    for stream in &idle {
        let mut buf = [0u8; 64];
        match stream.try_read(&mut buf) {
            Ok(n) if n > 0 && buf[..n].starts_with(b"HTTP/1.1 503") => figures.idle_refused += 1,
            Ok(0) => {}
            Ok(_) | Err(_) => figures.idle_open += 1,
        }
    }

    // SIGTERM with the idle connections and the slow-loris still open.
    let _ = loris_tx.send(());
    let loris_stream = loris.await?;
    figures.loris_open_at_sigterm = loris_stream.is_some();
    let limit = figures.drain + Duration::from_secs(5);
    figures.exit_after = tokio::task::spawn_blocking(move || (server.terminate(limit), server))
        .await?
        .0;
    figures.loris_closed_by_server = loris_closed.load(Ordering::SeqCst);
    drop((idle, loris_stream));
    Ok(figures)
}

/// Answers how long `GET /health` takes on a fresh connection, every 50 ms until `stop`.
///
/// The prober is a thread of its own with blocking sockets, so what it measures is the
/// server's answer and not this process's runtime, busy with the other clients.
async fn probe_health(port: u16, stop: Arc<AtomicBool>) -> (Vec<f64>, Vec<String>) {
    let prober = std::thread::spawn(move || {
        let mut latencies = Vec::new();
        let mut failures = Vec::new();
        let mut next = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            next += Duration::from_millis(50);
            let start = Instant::now();
            match health_once(port) {
                Ok(()) => latencies.push(ms(start.elapsed())),
                Err(err) => failures.push(format!("{err:#}")),
            }
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        (latencies, failures)
    });
    tokio::task::spawn_blocking(move || prober.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| (Vec::new(), vec!["the prober thread failed".to_owned()]))
}

fn health_once(port: u16) -> Result<()> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_nodelay(true)?;
    stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .context("no answer within 2 s")?;
    let text = String::from_utf8_lossy(&response);
    if !text.starts_with("HTTP/1.1 200") {
        bail!("/health: {}", text.lines().next().unwrap_or("(nothing)"));
    }
    Ok(())
}

/// One client sending a request head a byte every 100 ms, reconnecting whenever the server
/// closes it (counted in `closed`), until `done`; then tells whether its connection was
/// still open (and keeps it open until the returned value is dropped).
async fn slow_loris(
    port: u16,
    closed: Arc<AtomicU64>,
    mut done: tokio::sync::oneshot::Receiver<()>,
) -> Option<TcpStream> {
    let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    'connect: loop {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            return None;
        };
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            tokio::select! {
                _ = &mut done => return Some(stream),
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            if stream.write_all(&[*byte]).await.is_err() {
                closed.fetch_add(1, Ordering::SeqCst);
                continue 'connect;
            }
            let mut buf = [0u8; 256];
            if let Ok(0) = stream.try_read(&mut buf) {
                closed.fetch_add(1, Ordering::SeqCst);
                continue 'connect;
            }
        }
    }
}
