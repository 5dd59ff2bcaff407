//! `/api/bash/*`: background commands, their events, search and paging (spec §7).

use super::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::TestServer;
use hyper::Method;
use serde_json::{Value, json};

/// What `RemoteWorkspace.execute_command` returns.
#[derive(Debug, PartialEq)]
struct CommandResult {
    exit_code: i64,
    stdout: String,
    stderr: String,
    outputs: Vec<Value>,
}

/// Runs `command` exactly as the SDK's `RemoteWorkspace.execute_command` does (§7.4): start,
/// then poll `bash_events/search` every 0.1 s with `order__gt` once output was seen, failing
/// on a repeated id, until an exit code arrives.
async fn execute(
    server: &TestServer,
    command: &str,
    cwd: Option<&str>,
    timeout: u64,
) -> CommandResult {
    let mut body = json!({"command": command, "timeout": timeout});
    if let Some(cwd) = cwd {
        body["cwd"] = json!(cwd);
    }
    let started = server.post("/api/bash/start_bash_command", body).await;
    assert_eq!(started.status, 200, "{}", started.text());
    let id = started.json()["id"]
        .as_str()
        .expect("command id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(timeout + 10);
    let mut seen = HashSet::new();
    let mut last_order: Option<i64> = None;
    let mut result = CommandResult {
        exit_code: -1,
        stdout: String::new(),
        stderr: String::new(),
        outputs: Vec::new(),
    };
    loop {
        assert!(Instant::now() < deadline, "no exit code for {command:?}");
        let mut path = format!(
            "/api/bash/bash_events/search?command_id__eq={id}&sort_order=TIMESTAMP&limit=100&kind__eq=BashOutput"
        );
        if let Some(order) = last_order {
            path.push_str(&format!("&order__gt={order}"));
        }
        let page = server.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.text());
        let mut exit = None;
        for item in page.json()["items"].as_array().expect("items") {
            assert_eq!(item["kind"], "BashOutput");
            let event_id = item["id"].as_str().expect("id").to_owned();
            assert!(seen.insert(event_id), "repeated id in {item}");
            let order = item["order"].as_i64().expect("order");
            assert!(
                last_order.is_none_or(|last| order > last),
                "order went back"
            );
            last_order = Some(order);
            if let Some(text) = item["stdout"].as_str() {
                result.stdout.push_str(text);
            }
            if let Some(text) = item["stderr"].as_str() {
                result.stderr.push_str(text);
            }
            if let Some(code) = item["exit_code"].as_i64() {
                exit = Some(code);
            }
            result.outputs.push(item.clone());
        }
        if let Some(code) = exit {
            result.exit_code = code;
            return result;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn is_hex32(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn start_returns_the_command_and_output_is_split_by_stream() {
    let server = TestServer::start().await;
    let reply = server
        .post(
            "/api/bash/start_bash_command",
            json!({"command": "echo out; echo err >&2; exit 3"}),
        )
        .await;
    assert_eq!(reply.status, 200);
    let command = reply.json();
    let keys: Vec<&String> = command.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        ["command", "cwd", "timeout", "id", "timestamp", "kind"]
    );
    assert_eq!(command["kind"], "BashCommand");
    assert_eq!(command["timeout"], 300);
    assert_eq!(command["cwd"], Value::Null);
    assert!(is_hex32(&command["id"]));
    assert!(
        command["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let result = execute(&server, "echo out; echo err >&2; exit 3", None, 30).await;
    assert_eq!(result.exit_code, 3);
    assert_eq!(result.stdout, "out\n");
    assert_eq!(result.stderr, "err\n");
    assert_eq!(result.outputs.len(), 1);
    let output = &result.outputs[0];
    let keys: Vec<&String> = output.as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "timestamp",
            "command_id",
            "order",
            "exit_code",
            "stdout",
            "stderr",
            "kind"
        ]
    );
    assert_eq!(output["order"], 0);

    let quiet = execute(&server, "true", None, 30).await;
    assert_eq!(quiet.exit_code, 0);
    // Empty streams are null, not "".
    assert_eq!(quiet.outputs[0]["stdout"], Value::Null);
    assert_eq!(quiet.outputs[0]["stderr"], Value::Null);
}

#[tokio::test]
async fn commands_run_in_cwd_with_the_agent_marker() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let cwd = dir.path().canonicalize().expect("canonical");
    let cwd = cwd.to_str().expect("utf-8");
    let result = execute(&server, "pwd; echo \"$AI_AGENT\"", Some(cwd), 30).await;
    assert_eq!(result.exit_code, 0);
    let lines: Vec<&str> = result.stdout.lines().collect();
    assert_eq!(lines[0], cwd);
    assert!(!lines[1].is_empty(), "AI_AGENT is set");
}

#[tokio::test]
async fn a_bad_cwd_is_one_failed_output() {
    let server = TestServer::start().await;
    let result = execute(&server, "echo hi", Some("/definitely/not/here"), 30).await;
    assert_eq!(result.exit_code, -1);
    assert_eq!(result.outputs.len(), 1);
    assert_eq!(result.outputs[0]["order"], 0);
    assert_eq!(result.stdout, "");
    assert_eq!(
        result.stderr,
        "Error executing command: [Errno 2] No such file or directory: '/definitely/not/here'"
    );
}

#[tokio::test]
async fn a_timeout_kills_the_whole_group() {
    let server = TestServer::start().await;
    let marker = tempfile::tempdir().expect("dir");
    let late = marker.path().join("late");
    let pid_file = marker.path().join("child.pid");
    let started = Instant::now();
    let command = format!(
        "(sleep 3; touch '{}') & echo $! > '{}'; echo early; sleep 30",
        late.display(),
        pid_file.display()
    );
    let result = execute(&server, &command, None, 1).await;
    assert_eq!(result.exit_code, -1);
    assert_eq!(result.stdout, "early\n");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    // Had the background child survived, it would touch `late` before it ends.
    let child: u32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    common::wait_until("the background child to end", || {
        !common::process_alive(child)
    })
    .await;
    assert!(!late.exists(), "the background child survived the timeout");
}

#[tokio::test]
async fn large_output_is_chunked_and_polled_without_duplicates() {
    let server = TestServer::start().await;
    // 2.5 M characters on stdout: two full chunks, then the rest with the exit code.
    let result = execute(
        &server,
        "head -c 2500000 /dev/zero | tr '\\0' a; echo done >&2",
        None,
        60,
    )
    .await;
    assert_eq!(result.exit_code, 0);
    assert_eq!(result.stdout.len(), 2_500_000);
    assert!(result.stdout.bytes().all(|b| b == b'a'));
    assert_eq!(result.stderr, "done\n");
    let orders: Vec<i64> = result
        .outputs
        .iter()
        .map(|o| o["order"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(orders, [0, 1, 2]);
    assert_eq!(
        result.outputs[0]["stdout"].as_str().map(str::len),
        Some(1_048_576)
    );
    assert_eq!(result.outputs[0]["exit_code"], Value::Null);
    assert_eq!(result.outputs[1]["exit_code"], Value::Null);

    // execute_bash_command joins the chunks.
    let joined = server
        .post(
            "/api/bash/execute_bash_command",
            json!({"command": "head -c 1500000 /dev/zero | tr '\\0' b; exit 4"}),
        )
        .await;
    assert_eq!(joined.status, 200);
    let joined = joined.json();
    assert_eq!(joined["kind"], "BashOutput");
    assert_eq!(joined["exit_code"], 4);
    assert_eq!(joined["order"], 1);
    assert_eq!(joined["stdout"].as_str().map(str::len), Some(1_500_000));
    assert_eq!(joined["stderr"], Value::Null);
}

#[tokio::test]
async fn multibyte_output_counts_characters() {
    let server = TestServer::start().await;
    let result = execute(&server, "printf 'h\\303\\251llo \\377'", None, 30).await;
    assert_eq!(result.stdout, "héllo \u{FFFD}");
}

#[tokio::test]
async fn search_validates_its_parameters() {
    let server = TestServer::start().await;
    for query in [
        "kind__eq=BashError",
        "limit=0",
        "limit=101",
        "limit=x",
        "command_id__eq=nope",
        "order__gt=x",
        "sort_order=NEWEST",
        "timestamp__gte=yesterday",
    ] {
        let reply = server
            .get(&format!("/api/bash/bash_events/search?{query}"))
            .await;
        assert_eq!(reply.status, 422, "{query}: {}", reply.text());
        let detail = &reply.json()["detail"][0];
        assert_eq!(detail["loc"][0], "query", "{query}");
    }
    let bad_body = server
        .post("/api/bash/start_bash_command", json!({"cwd": "/tmp"}))
        .await;
    assert_eq!(bad_body.status, 422);
    let bad_id = server
        .call(Method::POST, "/api/bash/bash_commands/xyz/stop", None)
        .await;
    assert_eq!(bad_id.status, 422);
}

#[tokio::test]
async fn search_pages_sorts_and_filters() {
    let server = TestServer::start().await;
    let mut commands = Vec::new();
    for n in 0..5 {
        let result = execute(&server, &format!("echo {n}"), None, 30).await;
        assert_eq!(result.stdout, format!("{n}\n"));
        commands.push(result);
    }
    let all = server.get("/api/bash/bash_events/search").await.json();
    let items = all["items"].as_array().expect("items").clone();
    assert_eq!(items.len(), 10);
    assert_eq!(all["next_page_id"], Value::Null);
    // Command, then its output, in storage order.
    for pair in items.chunks(2) {
        assert_eq!(pair[0]["kind"], "BashCommand");
        assert_eq!(pair[1]["kind"], "BashOutput");
        assert_eq!(pair[1]["command_id"], pair[0]["id"]);
    }
    let stamps: Vec<&str> = items
        .iter()
        .filter_map(|i| i["timestamp"].as_str())
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_unstable();
    assert_eq!(stamps, sorted);

    // Paging with limit=3 walks the same list.
    let mut paged = Vec::new();
    let mut page_id: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = "/api/bash/bash_events/search?limit=3".to_owned();
        if let Some(id) = &page_id {
            path.push_str(&format!("&page_id={id}"));
        }
        let page = server.get(&path).await.json();
        paged.extend(page["items"].as_array().expect("items").iter().cloned());
        pages += 1;
        match page["next_page_id"].as_str() {
            Some(next) => {
                assert!(next.contains("_Bash"), "page ids are storage names: {next}");
                page_id = Some(next.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(paged, items);

    // Descending order is the reverse.
    let desc = server
        .get("/api/bash/bash_events/search?sort_order=TIMESTAMP_DESC")
        .await
        .json();
    let mut reversed = items.clone();
    reversed.reverse();
    assert_eq!(desc["items"].as_array().expect("items"), &reversed);

    // Kind filter.
    let commands_only = server
        .get("/api/bash/bash_events/search?kind__eq=BashCommand")
        .await
        .json();
    assert_eq!(commands_only["items"].as_array().map(Vec::len), Some(5));

    // Time window: from the third command on, before the fifth.
    let from = items[4]["timestamp"].as_str().expect("timestamp");
    let until = items[8]["timestamp"].as_str().expect("timestamp");
    let window = server
        .get(&format!(
            "/api/bash/bash_events/search?timestamp__gte={from}&timestamp__lt={until}"
        ))
        .await
        .json();
    assert_eq!(window["items"].as_array().expect("items"), &items[4..8]);

    // order__gt drops outputs up to that order but keeps commands.
    let later = server
        .get("/api/bash/bash_events/search?order__gt=0")
        .await
        .json();
    assert!(
        later["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["kind"] == "BashCommand")
    );
    assert_eq!(later["items"].as_array().map(Vec::len), Some(5));

    // One event by id; unknown ids are 404 JSON.
    let one_id = items[3]["id"].as_str().expect("id");
    let one = server.get(&format!("/api/bash/bash_events/{one_id}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), items[3]);
    let missing = server
        .get("/api/bash/bash_events/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), json!({"detail": "Not Found"}));

    // Batch get (a JSON array in the body of a GET).
    let batch = common::send(
        Method::GET,
        &server.url("/api/bash/bash_events/"),
        &[],
        Some(bytes::Bytes::from(json!([one_id, "nope"]).to_string())),
    )
    .await;
    assert_eq!(batch.status, 200);
    assert_eq!(batch.json(), json!([items[3], null]));

    // Clearing removes everything.
    let cleared = server
        .call(Method::DELETE, "/api/bash/bash_events", None)
        .await;
    assert_eq!(cleared.json(), json!({"cleared_count": 10}));
    let empty = server.get("/api/bash/bash_events/search").await.json();
    assert_eq!(empty, json!({"items": [], "next_page_id": null}));
}

#[tokio::test]
async fn stop_kills_a_running_command() {
    let server = TestServer::start().await;
    let started = server
        .post(
            "/api/bash/start_bash_command",
            json!({"command": "sleep 30"}),
        )
        .await
        .json();
    let id = started["id"].as_str().expect("id").to_owned();
    let begun = Instant::now();
    let stopped = server
        .call(
            Method::POST,
            &format!("/api/bash/bash_commands/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(stopped.status, 200, "{}", stopped.text());
    assert_eq!(stopped.json(), json!({"success": true}));
    assert!(begun.elapsed() < Duration::from_secs(5));
    // The final output reports the signal as Python does (-SIGTERM).
    let deadline = Instant::now() + Duration::from_secs(10);
    let output = loop {
        let page = server
            .get(&format!("/api/bash/bash_events/search?command_id__eq={id}"))
            .await
            .json();
        if let Some(output) = page["items"]
            .as_array()
            .and_then(|items| items.first())
            .cloned()
        {
            break output;
        }
        assert!(Instant::now() < deadline, "no output after stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(output["exit_code"], -15);
    // Stopping it again succeeds (known, finished); an unknown id is 404.
    let again = server
        .call(
            Method::POST,
            &format!("/api/bash/bash_commands/{id}/stop"),
            None,
        )
        .await;
    assert_eq!(again.status, 200);
    let unknown = server
        .call(
            Method::POST,
            "/api/bash/bash_commands/0123456789abcdef0123456789abcdef/stop",
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json(), json!({"detail": "Not Found"}));
}

#[tokio::test]
async fn events_are_stored_in_the_reference_layout_and_survive_a_restart() {
    let server = TestServer::start().await;
    let result = execute(&server, "echo kept", None, 30).await;
    let output = &result.outputs[0];
    let command_id = output["command_id"]
        .as_str()
        .expect("command id")
        .to_owned();
    let output_id = output["id"].as_str().expect("id").to_owned();
    let dir = server.root().join("bash_events");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("bash events dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2);
    assert!(
        names[0].ends_with(&format!("_BashCommand_{command_id}")),
        "{names:?}"
    );
    assert!(
        names[1].ends_with(&format!("_BashOutput_{command_id}_{output_id}")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| n.len() > 20 && n[..20].bytes().all(|b| b.is_ascii_digit()))
    );
    let text = std::fs::read_to_string(dir.join(&names[1])).expect("file");
    assert!(text.starts_with("{\n  \"id\": "), "pretty JSON: {text}");
    assert!(text.contains("\"exit_code\": 0"));

    let root = server.stop().await;
    let server = TestServer::start_in(root, None, |_| {}).await;
    let page = server.get("/api/bash/bash_events/search").await.json();
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[1], *output);
    // New events sort after the old ones.
    let next = execute(&server, "echo again", None, 30).await;
    let all = server.get("/api/bash/bash_events/search").await.json();
    assert_eq!(all["items"][3], next.outputs[0]);
}

#[tokio::test]
async fn starting_a_command_counts_as_activity() {
    let server = TestServer::start().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = server.get("/server_info").await.json()["idle_time"]
        .as_f64()
        .expect("idle_time");
    assert!(before >= 1.0, "idle {before}");
    execute(&server, "true", None, 30).await;
    let after = server.get("/server_info").await.json()["idle_time"]
        .as_f64()
        .expect("idle_time");
    assert!(after < 1.0, "idle {after}");
}

/// `bash_events_retention_seconds`: events older than the window are deleted (from search
/// and from disk) as soon as the server serves; new ones stay.
#[tokio::test]
async fn retention_purges_old_events_at_start() {
    let server = TestServer::start().await;
    let old = execute(&server, "echo old", None, 30).await;
    let root = server.stop().await;
    // Age the stored events by a few years: the time in the file name is what counts.
    let dir = root.path().join("bash_events");
    for item in std::fs::read_dir(&dir).expect("dir") {
        let name = item
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let aged = format!("2001{}", &name[4..]);
        std::fs::rename(dir.join(&name), dir.join(aged)).expect("rename");
    }
    let server = TestServer::start_in(root, None, |config| {
        config.bash_events_retention_seconds = Some(3600);
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = server.get("/api/bash/bash_events/search").await.json();
        if page["items"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "old events still listed: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old_id = old.outputs[0]["id"].as_str().expect("id");
    let gone = server.get(&format!("/api/bash/bash_events/{old_id}")).await;
    assert_eq!(gone.status, 404);
    let new = execute(&server, "echo new", None, 30).await;
    let page = server.get("/api/bash/bash_events/search").await.json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["items"][1], new.outputs[0]);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|name| !name.starts_with("2001")),
        "{names:?}"
    );
}
