//! The measurements that run against a started server. Each returns named
//! values (see `report::ROWS`) plus details for the JSON file, or an error
//! that the report shows as `n/a (<reason>)`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use super::client::{EventSocket, Http};
use super::server::Scratch;
use super::stats::{Summary, ms};

/// Settings shared by the measurements.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Timed repetitions of the echo round trip.
    pub(crate) echo_runs: usize,
    /// Pause between two polls of the bash events (zero: poll at once).
    pub(crate) poll_pause: Duration,
    /// Timed conversation creations.
    pub(crate) create_runs: usize,
    /// Timed scripted runs.
    pub(crate) run_runs: usize,
    /// Upload/download repetitions.
    pub(crate) transfer_runs: usize,
    /// Bytes uploaded and downloaded.
    pub(crate) transfer_bytes: usize,
    /// WebSocket subscribers in all, and the conversations they spread over.
    pub(crate) ws_subscribers: usize,
    /// Conversations the subscribers spread over.
    pub(crate) ws_conversations: usize,
    /// How long messages are posted in the WebSocket measurement.
    pub(crate) ws_seconds: f64,
    /// The scripted LLM's base URL.
    pub(crate) llm_base_url: String,
}

/// Named values and details of one measurement.
#[derive(Debug, Default)]
pub(crate) struct Measured {
    pub(crate) values: Vec<(&'static str, f64)>,
    pub(crate) details: Value,
}

// ------------------------------------------------------------------ echo

/// `echo hi` as `RemoteWorkspace.execute_command` runs it: start, then poll the
/// command's BashOutput events until one carries an exit code.
pub(crate) async fn echo(http: &Http, settings: &Settings) -> Result<Measured> {
    for _ in 0..3 {
        echo_once(http, settings.poll_pause).await?;
    }
    let mut times = Vec::with_capacity(settings.echo_runs);
    let mut polls = 0;
    for _ in 0..settings.echo_runs {
        let (elapsed, n) = echo_once(http, settings.poll_pause).await?;
        times.push(elapsed);
        polls += n;
    }
    let summary = Summary::of(&times);
    Ok(Measured {
        values: vec![
            ("echo_median_ms", summary.median),
            ("echo_p99_ms", summary.p99),
        ],
        details: json!({
            "summary_ms": summary.json(),
            "mean_polls_per_command": polls as f64 / settings.echo_runs.max(1) as f64,
            "poll_pause_ms": ms(settings.poll_pause),
        }),
    })
}

async fn echo_once(http: &Http, pause: Duration) -> Result<(f64, usize)> {
    let start = Instant::now();
    let command = http
        .post_json(
            "/api/bash/start_bash_command",
            &json!({"command": "echo hi", "timeout": 30}),
        )
        .await?;
    let id = command
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("start_bash_command answered without an id: {command}"))?;
    let path = format!(
        "/api/bash/bash_events/search?command_id__eq={id}&kind__eq=BashOutput&sort_order=TIMESTAMP&limit=100"
    );
    let mut polls = 0;
    let mut stdout = String::new();
    loop {
        polls += 1;
        let page = http.get_json(&path).await?;
        let items = page
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("bash_events/search without items: {page}"))?;
        let mut done = false;
        for item in items {
            if let Some(out) = item.get("stdout").and_then(Value::as_str) {
                stdout.push_str(out);
            }
            done |= item.get("exit_code").is_some_and(|code| !code.is_null());
        }
        if done {
            break;
        }
        stdout.clear();
        if start.elapsed() > Duration::from_secs(30) {
            bail!("no exit code for `echo hi` after 30 s");
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    let elapsed = ms(start.elapsed());
    if stdout != "hi\n" {
        bail!("`echo hi` printed {stdout:?}");
    }
    Ok((elapsed, polls))
}

// ------------------------------------------------------------------ files

/// Uploads `settings.transfer_bytes` of incompressible data as multipart field
/// `file`, then downloads it back, each `transfer_runs` times.
pub(crate) async fn transfer(
    http: &Http,
    scratch: &Scratch,
    settings: &Settings,
) -> (Result<Measured>, Result<Measured>) {
    let size = settings.transfer_bytes;
    let target = scratch.server("files/upload.bin");
    let upload = upload(http, scratch, settings, &target).await;
    let download = match &upload {
        // Without a successful upload the file is not there: put it there directly.
        Err(_) => match std::fs::create_dir_all(scratch.host("files"))
            .and_then(|()| std::fs::write(scratch.host("files/upload.bin"), noise(size)))
        {
            Ok(()) => download(http, settings, &target).await,
            Err(err) => Err(anyhow!("writing the file to download: {err}")),
        },
        Ok(_) => download(http, settings, &target).await,
    };
    (upload, download)
}

async fn upload(
    http: &Http,
    scratch: &Scratch,
    settings: &Settings,
    target: &str,
) -> Result<Measured> {
    let size = settings.transfer_bytes;
    let boundary = "----oh-bench-boundary-7d1f3c";
    let mut body = Vec::with_capacity(size + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&noise(size));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let body = Bytes::from(body);
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let path = format!("/api/file/upload?path={}", query_escape(target));
    let mut rates = Vec::new();
    for _ in 0..settings.transfer_runs {
        let start = Instant::now();
        let sent = http
            .send(Method::POST, &path, Some(&content_type), body.clone())
            .await;
        let elapsed = start.elapsed();
        let reply = match sent {
            Ok(reply) => reply,
            // A server that answers before reading the body (a missing route, a
            // refusal) breaks the pipe; a small upload shows what it said.
            Err(err) => {
                let small = Bytes::from(format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"probe.bin\"\r\n\r\nprobe\r\n--{boundary}--\r\n"
                ));
                match http
                    .send(Method::POST, &path, Some(&content_type), small)
                    .await
                {
                    Ok(probe) if !probe.status.is_success() => probe,
                    _ => return Err(err),
                }
            }
        };
        reply.ok("POST /api/file/upload")?;
        let written = std::fs::metadata(scratch.host("files/upload.bin"))
            .context("the uploaded file is missing")?
            .len();
        if written != size as u64 {
            bail!("uploaded {size} bytes, the file has {written}");
        }
        rates.push(mib(size) / elapsed.as_secs_f64());
    }
    let summary = Summary::of(&rates);
    Ok(Measured {
        values: vec![("upload_mib_s", summary.median)],
        details: json!({"upload_mib_per_s": summary.json(), "bytes": size}),
    })
}

async fn download(http: &Http, settings: &Settings, target: &str) -> Result<Measured> {
    let size = settings.transfer_bytes;
    let path = format!("/api/file/download?path={}", query_escape(target));
    let mut rates = Vec::new();
    for _ in 0..settings.transfer_runs {
        let start = Instant::now();
        let got = http.download(&path).await?;
        let elapsed = start.elapsed();
        if got != size as u64 {
            bail!("downloaded {got} bytes, expected {size}");
        }
        rates.push(mib(size) / elapsed.as_secs_f64());
    }
    let summary = Summary::of(&rates);
    Ok(Measured {
        values: vec![("download_mib_s", summary.median)],
        details: json!({"download_mib_per_s": summary.json(), "bytes": size}),
    })
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Deterministic incompressible bytes (xorshift64).
fn noise(size: usize) -> Vec<u8> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Percent-encodes a query value (everything but unreserved characters and `/`).
fn query_escape(value: &str) -> String {
    let mut out = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// ------------------------------------------------------------------ conversations

/// The body of `POST /api/conversations`: the SDK's default tools, an LLM
/// pointing at the scripted server, no auto-title (it would call the LLM).
pub(crate) fn create_body(settings: &Settings, working_dir: &str) -> Value {
    json!({
        "agent": {
            "kind": "Agent",
            "llm": {
                "model": "openai/bench-model",
                "base_url": settings.llm_base_url,
                "api_key": "sk-bench",
                "usage_id": "agent",
                "num_retries": 0,
            },
            "tools": [{"name": "terminal"}, {"name": "file_editor"}, {"name": "task_tracker"}],
        },
        "workspace": {"kind": "LocalWorkspace", "working_dir": working_dir},
        "max_iterations": 20,
        "stuck_detection": true,
        "autotitle": false,
        "tool_module_qualnames": {
            "terminal": "openhands.tools.terminal.definition",
            "file_editor": "openhands.tools.file_editor.definition",
            "task_tracker": "openhands.tools.task_tracker.definition",
        },
        "tags": {},
    })
}

/// Creates a conversation; returns its id (dashed).
pub(crate) async fn create_conversation(http: &Http, body: &Value) -> Result<String> {
    let info = http.post_json("/api/conversations", body).await?;
    info.get("id")
        .or_else(|| info.get("conversation_id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("created conversation without an id: {info}"))
}

/// Median latency of `POST /api/conversations`.
pub(crate) async fn create(
    http: &Http,
    scratch: &Scratch,
    settings: &Settings,
) -> Result<Measured> {
    let body = create_body(settings, &scratch.server("workspace"));
    for _ in 0..2 {
        create_conversation(http, &body).await?;
    }
    let mut times = Vec::new();
    for _ in 0..settings.create_runs {
        let start = Instant::now();
        create_conversation(http, &body).await?;
        times.push(ms(start.elapsed()));
    }
    let summary = Summary::of(&times);
    Ok(Measured {
        values: vec![("create_median_ms", summary.median)],
        details: json!({"summary_ms": summary.json()}),
    })
}

/// A user message.
fn message(text: &str, run: bool) -> Value {
    json!({"role": "user", "content": [{"type": "text", "text": text}], "run": run})
}

/// Whether a socket frame says the run finished; an error for a failed run.
fn finished(frame: &Value) -> Result<bool> {
    let kind = frame.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "ConversationErrorEvent" {
        bail!("the run failed: {frame}");
    }
    if kind != "ConversationStateUpdateEvent" {
        return Ok(false);
    }
    let status = match frame.get("key").and_then(Value::as_str) {
        Some("execution_status") => frame.get("value"),
        Some("full_state") => frame.get("value").and_then(|v| v.get("execution_status")),
        _ => None,
    };
    match status.and_then(Value::as_str) {
        Some("finished") => Ok(true),
        Some(bad @ ("error" | "stuck")) => bail!("the run ended `{bad}`"),
        _ => Ok(false),
    }
}

/// One scripted run: create, subscribe, send `go` with run=true, wait for
/// `finished`. Returns (create→finished, message→finished) in ms and the id.
async fn run_once(http: &Http, body: &Value) -> Result<(f64, f64, String)> {
    let start = Instant::now();
    let id = create_conversation(http, body).await?;
    let mut socket = http.events_socket(&id).await?;
    let sent = Instant::now();
    http.post_json(
        &format!("/api/conversations/{id}/events"),
        &message("go", true),
    )
    .await?;
    let wait = async {
        loop {
            if finished(&socket.next_json().await?)? {
                return Ok::<_, anyhow::Error>(());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .map_err(|_| anyhow!("not finished after 60 s"))??;
    let end = Instant::now();
    socket.close().await;
    Ok((ms(end - start), ms(end - sent), id))
}

/// The scripted two-step run (terminal `echo hi`, then finish), end to end.
/// Also returns the id of the last run's conversation (a template for the
/// saved-conversations measurement).
pub(crate) async fn run(
    http: &Http,
    scratch: &Scratch,
    settings: &Settings,
) -> Result<(Measured, String)> {
    let body = create_body(settings, &scratch.server("workspace"));
    let _ = run_once(http, &body).await.context("warm-up run")?;
    let mut e2e = Vec::new();
    let mut from_message = Vec::new();
    let mut last = String::new();
    for _ in 0..settings.run_runs {
        let (total, after_message, id) = run_once(http, &body).await?;
        e2e.push(total);
        from_message.push(after_message);
        last = id;
    }
    let e2e = Summary::of(&e2e);
    let from_message = Summary::of(&from_message);
    Ok((
        Measured {
            values: vec![
                ("run_median_ms", e2e.median),
                ("run_message_median_ms", from_message.median),
            ],
            details: json!({
                "create_to_finished_ms": e2e.json(),
                "message_to_finished_ms": from_message.json(),
                "detected_by": "WebSocket ConversationStateUpdateEvent execution_status/full_state = finished",
            }),
        },
        last,
    ))
}

// ------------------------------------------------------------------ WebSocket fan-out

/// Events per second delivered to `ws_subscribers` sockets spread over
/// `ws_conversations` conversations, while messages (run=false) are posted
/// to every conversation back to back for `ws_seconds`.
pub(crate) async fn websocket(
    http: &Http,
    scratch: &Scratch,
    settings: &Settings,
) -> Result<Measured> {
    let body = create_body(settings, &scratch.server("workspace"));
    let conversations = settings.ws_conversations.max(1);
    let mut ids = Vec::new();
    for _ in 0..conversations {
        let id = create_conversation(http, &body).await?;
        // The first message initialises the agent (system prompt): not measured.
        http.post_json(
            &format!("/api/conversations/{id}/events"),
            &message("warm-up", false),
        )
        .await?;
        ids.push(id);
    }
    let mut sockets: Vec<EventSocket> = Vec::new();
    let mut connects = Vec::new();
    for i in 0..settings.ws_subscribers {
        let http = http.clone();
        let id = ids[i % conversations].clone();
        connects.push(tokio::spawn(async move { http.events_socket(&id).await }));
    }
    for connect in connects {
        sockets.push(connect.await??);
    }
    // Let the warm-up's trailing frames (if any) pass before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let frames = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for socket in sockets {
        let frames = Arc::clone(&frames);
        let stop = stop_rx.clone();
        readers.push(tokio::spawn(socket.count_frames(frames, stop)));
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(settings.ws_seconds);
    let mut posters = Vec::new();
    for id in &ids {
        let http = http.clone();
        let path = format!("/api/conversations/{id}/events");
        posters.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < deadline {
                http.post_json(&path, &message("ping", false)).await?;
                sent += 1;
            }
            Ok::<_, anyhow::Error>(sent)
        }));
    }
    let mut messages = 0;
    for poster in posters {
        messages += poster.await??;
    }
    let posted_for = start.elapsed();
    // Wait until the frames stop coming (500 ms without one), at most 30 s.
    let mut seen = frames.load(Ordering::Relaxed);
    let quiet_deadline = Instant::now() + Duration::from_secs(30);
    let mut quiet_since = Instant::now();
    while Instant::now() < quiet_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = frames.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_millis(500) {
            break;
        }
    }
    let _ = stop_tx.send(true);
    let mut last_frame = None;
    for reader in readers {
        let last = reader.await?;
        last_frame = last_frame.max(last);
    }
    let total = frames.load(Ordering::Relaxed);
    let last_frame = last_frame.ok_or_else(|| anyhow!("no frame arrived on any socket"))?;
    let span = (last_frame - start).as_secs_f64();
    let rate = total as f64 / span;
    let subscribers = settings.ws_subscribers as f64;
    Ok(Measured {
        values: vec![("ws_events_per_s", rate)],
        details: json!({
            "subscribers": settings.ws_subscribers,
            "conversations": conversations,
            "messages_posted": messages,
            "posting_seconds": posted_for.as_secs_f64(),
            "messages_per_s": messages as f64 / posted_for.as_secs_f64(),
            "frames_received": total,
            "frames_per_message_per_subscriber": total as f64 / (messages as f64 * subscribers / conversations as f64).max(1.0),
            "span_seconds": span,
        }),
    })
}
