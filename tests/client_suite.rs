//! The Rust client conformance suite: `oh-client`'s `RemoteWorkspace` and
//! `RemoteConversation` against one running agent server (ours or the Python reference),
//! with a scripted LLM in process. `cargo xtask conformance` starts each server and runs
//! this test binary against it; by hand:
//!
//! ```text
//! OH_SUITE_URL=http://127.0.0.1:8000 OH_SUITE_KEY=key OH_SUITE_ROOT=/tmp/scratch \
//!   cargo test -p openhands-e2e --test client_suite -- --ignored --test-threads 1 --nocapture
//! ```
//!
//! `OH_SUITE_URL` is the server, `OH_SUITE_KEY` its session API key, `OH_SUITE_ROOT` an
//! existing scratch directory as the server sees it (the Python server runs in a chroot) and
//! `OH_SUITE_LABEL` (optional) names the server in the output. The tests are ignored by
//! default (they need a server) and fail when a variable is missing.
//!
//! One test per group of checks. Every group declares its checks up front; a check a group
//! never reached (because an earlier step failed) counts as failed, so the totals are the
//! same for every server. Each test prints one line per check and the line
//! `client suite group GROUP: N checks, F failed`, which xtask sums.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use oh_client::{Backoff, Error as ClientError, RemoteConversation, RemoteWorkspace};
use oh_protocol::{
    Agent, AlwaysConfirm, ConfirmationPolicy, Event, ExecutionStatus, GitChangeStatus, Llm,
    NeverConfirm, ToolSpec,
};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::json;

/// Where the suite finds the server.
#[derive(Debug, Clone)]
struct Target {
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// The server's session API key.
    key: String,
    /// A scratch directory as the server sees it (the Python server runs in a chroot).
    root: String,
    /// The server's name in the output.
    label: String,
}

impl Target {
    /// The target from `OH_SUITE_URL`, `OH_SUITE_KEY`, `OH_SUITE_ROOT` and `OH_SUITE_LABEL`.
    fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: this suite runs against a server (see the crate docs)")
            })
        };
        Ok(Self {
            url: var("OH_SUITE_URL")?,
            key: var("OH_SUITE_KEY")?,
            root: var("OH_SUITE_ROOT")?,
            label: std::env::var("OH_SUITE_LABEL").unwrap_or_else(|_| "this".to_owned()),
        })
    }
}

/// Outcome of one check.
#[derive(Debug, Clone)]
struct Outcome {
    group: &'static str,
    name: &'static str,
    passed: bool,
    detail: String,
}

/// The checks of one group, declared up front.
struct Group {
    name: &'static str,
    expected: &'static [&'static str],
    done: Vec<Outcome>,
}

impl Group {
    fn check(&mut self, name: &'static str, passed: bool, detail: impl Into<String>) {
        debug_assert!(self.expected.contains(&name), "undeclared check {name}");
        self.done.push(Outcome {
            group: self.name,
            name,
            passed,
            detail: detail.into(),
        });
    }

    fn ok(&mut self, name: &'static str) {
        self.check(name, true, "");
    }

    /// Checks `left == right`, describing both on failure.
    fn equal<T: PartialEq + std::fmt::Debug>(&mut self, name: &'static str, left: T, right: T) {
        let passed = left == right;
        let detail = if passed {
            String::new()
        } else {
            format!("{left:?} != {right:?}")
        };
        self.check(name, passed, detail);
    }

    /// The outcomes, with every declared check not reached counted as failed.
    fn finish(mut self, error: Option<anyhow::Error>) -> Vec<Outcome> {
        let reached: HashSet<&str> = self.done.iter().map(|o| o.name).collect();
        let why = match &error {
            Some(e) => format!("not reached: {e:#}"),
            None => "not reached".to_owned(),
        };
        for name in self.expected {
            if !reached.contains(name) {
                self.done.push(Outcome {
                    group: self.name,
                    name,
                    passed: false,
                    detail: why.clone(),
                });
            }
        }
        self.done
    }
}

/// The groups, in run order, with their checks.
const GROUPS: &[(&str, &[&str])] = &[
    (
        "workspace",
        &[
            "alive",
            "server_info",
            "echo",
            "exit_code",
            "stderr",
            "cwd",
            "key_hidden",
            "unicode",
            "large_output",
            "timeout",
        ],
    ),
    (
        "files",
        &[
            "upload_text",
            "download_text",
            "binary_round_trip",
            "unicode_name",
            "relative_destination",
            "parents_created",
            "missing_is_404",
            "directory_refused",
            "local_parents_created",
        ],
    ),
    (
        "git",
        &[
            "added",
            "updated",
            "diff_original",
            "diff_modified",
            "not_a_repo",
        ],
    ),
    (
        "conversation",
        &[
            "create",
            "run_finished",
            "tool_output",
            "callbacks",
            "ids_unique",
            "status",
            "stats",
            "second_turn",
            "llm_saw_output",
            "set_title",
            "attach",
            "close_deletes",
        ],
    ),
    ("pause", &["paused", "status_paused", "resumed"]),
    (
        "confirmation",
        &[
            "waiting",
            "not_executed",
            "rejected",
            "idle_after_reject",
            "accepted",
            "finished",
        ],
    ),
    ("secrets", &["run", "masked", "not_in_llm", "not_in_info"]),
    (
        "errors",
        &[
            "bad_key_command",
            "bad_key_upload",
            "bad_key_create",
            "unknown_attach",
            "llm_failure",
            "run_after_delete",
        ],
    ),
];

/// Runs group `name` against the server of the environment; prints one line per check
/// and the group's count, and fails if a check failed.
fn run_group(name: &'static str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no runtime: {e}"));
    let outcomes = runtime.block_on(async {
        let target = Target::from_env()?;
        wait_healthy(&target).await?;
        Ok::<_, anyhow::Error>((run(&target, name).await, target.label))
    });
    let (outcomes, label) = outcomes.unwrap_or_else(|e| panic!("{e:#}"));
    let failed = report(&label, name, &outcomes);
    assert_eq!(failed, 0, "{failed} check(s) of group {name} failed");
}

/// Runs group `name` and returns its outcomes, every declared check included.
async fn run(target: &Target, name: &'static str) -> Vec<Outcome> {
    let Some((_, expected)) = GROUPS.iter().find(|(group, _)| *group == name) else {
        panic!("no group {name} in GROUPS");
    };
    let mut group = Group {
        name,
        expected,
        done: Vec::new(),
    };
    let result = tokio::time::timeout(Duration::from_secs(180), async {
        match name {
            "workspace" => workspace(target, &mut group).await,
            "files" => files(target, &mut group).await,
            "git" => git(target, &mut group).await,
            "conversation" => conversation(target, &mut group).await,
            "pause" => pause(target, &mut group).await,
            "confirmation" => confirmation(target, &mut group).await,
            "secrets" => secrets(target, &mut group).await,
            "errors" => errors(target, &mut group).await,
            other => Err(anyhow!("unknown group {other}")),
        }
    })
    .await
    .unwrap_or_else(|_| Err(anyhow!("the group timed out")));
    group.finish(result.err())
}

// One test per group, in the order of `GROUPS` (run them with `--test-threads 1`).

#[test]
#[ignore = "needs a running agent server: OH_SUITE_URL, OH_SUITE_KEY, OH_SUITE_ROOT"]
fn workspace_group() {
    run_group("workspace");
}

#[test]
#[ignore = "needs a running agent server: OH_SUITE_URL, OH_SUITE_KEY, OH_SUITE_ROOT"]
fn files_group() {
    run_group("files");
}

#[test]
#[ignore = "needs a running agent server: OH_SUITE_URL, OH_SUITE_KEY, OH_SUITE_ROOT"]
fn git_group() {
    run_group("git");
}

#[test]
#[ignore = "needs a running agent server: OH_SUITE_URL, OH_SUITE_KEY, OH_SUITE_ROOT"]
fn conversation_group() {
    run_group("conversation");
}

#[test]
#[ignore = "needs a running agent server: OH_SUITE_URL, OH_SUITE_KEY, OH_SUITE_ROOT"]
fn pause_group() {
    run_group("pause");
}

#[test]
#[ignore = "needs a running agent server: OH_SUITE_URL, OH_SUITE_KEY, OH_SUITE_ROOT"]
fn confirmation_group() {
    run_group("confirmation");
}

#[test]
#[ignore = "needs a running agent server: OH_SUITE_URL, OH_SUITE_KEY, OH_SUITE_ROOT"]
fn secrets_group() {
    run_group("secrets");
}

#[test]
#[ignore = "needs a running agent server: OH_SUITE_URL, OH_SUITE_KEY, OH_SUITE_ROOT"]
fn errors_group() {
    run_group("errors");
}

/// Every group of `GROUPS` has its test above (xtask selects groups by test name).
#[test]
fn every_group_has_a_test() {
    let source = include_str!("client_suite.rs");
    for (name, _) in GROUPS {
        assert!(
            source.contains(&format!("fn {name}_group() {{\n    run_group(\"{name}\");")),
            "group {name} has no test `{name}_group`"
        );
    }
}

fn workspace_for(target: &Target, dir: &str) -> Result<RemoteWorkspace> {
    Ok(RemoteWorkspace::builder(&target.url)
        .api_key(&target.key)
        .working_dir(format!("{}/{dir}", target.root))
        .build()?)
}

fn agent(llm: &ScriptedLlm) -> Agent {
    let mut config = Llm::new("openai/scripted-model");
    config.base_url = Some(llm.base_url());
    config.api_key = Some("scripted-key".into());
    Agent::new(
        config,
        vec![ToolSpec::new("terminal"), ToolSpec::new("file_editor")],
    )
}

fn json_of(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

/// Events the callbacks saw, shared with the callback.
type Seen = Arc<Mutex<Vec<Event>>>;

fn recorder() -> (Seen, impl Fn(&Event) + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let sink = Arc::clone(&seen);
    (seen, move |event: &Event| {
        if let Ok(mut events) = sink.lock() {
            events.push(event.clone());
        }
    })
}

async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn builder_create(
    ws: &RemoteWorkspace,
    agent: Agent,
    tweak: impl FnOnce(oh_client::RemoteConversationBuilder) -> oh_client::RemoteConversationBuilder,
) -> oh_client::Result<RemoteConversation> {
    let builder = RemoteConversation::builder(ws)
        .agent(agent)
        .autotitle(false)
        .reconnect_backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(1),
        });
    tweak(builder).create().await
}

async fn with_timeout<T>(what: &str, future: impl Future<Output = T>) -> Result<T> {
    tokio::time::timeout(Duration::from_secs(60), future)
        .await
        .map_err(|_| anyhow!("{what} took over 60 s"))
}

async fn workspace(target: &Target, g: &mut Group) -> Result<()> {
    let ws = workspace_for(target, "ws")?;
    let t = Duration::from_secs(20);
    g.check("alive", ws.alive().await, "GET /health failed");
    let info = ws.server_info().await;
    g.check(
        "server_info",
        info.as_ref().is_ok_and(|i| !i.version.is_empty()),
        format!("{info:?}"),
    );
    ws.execute_command(&format!("mkdir -p {}", ws.working_dir()), None, t)
        .await?;
    let echo = ws.execute_command("echo hello", None, t).await?;
    g.equal(
        "echo",
        (echo.stdout.as_str(), echo.exit_code),
        ("hello\n", 0),
    );
    let exit = ws.execute_command("exit 3", None, t).await?;
    g.equal("exit_code", exit.exit_code, 3);
    let err = ws
        .execute_command("echo out; echo err 1>&2", None, t)
        .await?;
    g.equal(
        "stderr",
        (err.stdout.as_str(), err.stderr.as_str()),
        ("out\n", "err\n"),
    );
    let pwd = ws.execute_command("pwd", Some(ws.working_dir()), t).await?;
    g.equal("cwd", pwd.stdout.trim(), ws.working_dir());
    let key = ws
        .execute_command("printenv SESSION_API_KEY || true", None, t)
        .await?;
    g.check(
        "key_hidden",
        !key.stdout.contains(&target.key),
        "the session key is visible to commands",
    );
    let unicode = ws.execute_command("echo 'héllo ✓ 世界'", None, t).await?;
    g.equal("unicode", unicode.stdout.as_str(), "héllo ✓ 世界\n");
    let large = ws
        .execute_command("head -c 1000000 /dev/zero | tr '\\0' a", None, t)
        .await?;
    g.equal("large_output", large.stdout.len(), 1_000_000);
    let started = Instant::now();
    let slow = ws
        .execute_command("sleep 30", None, Duration::from_secs(2))
        .await?;
    let elapsed = started.elapsed();
    g.check(
        "timeout",
        slow.timeout_occurred && slow.exit_code == -1 && elapsed < Duration::from_secs(10),
        format!(
            "timeout_occurred={} exit={} after {elapsed:?}",
            slow.timeout_occurred, slow.exit_code
        ),
    );
    Ok(())
}

async fn files(target: &Target, g: &mut Group) -> Result<()> {
    let ws = workspace_for(target, "files")?;
    let local = tempfile::tempdir()?;
    let remote = |name: &str| format!("{}/{name}", ws.working_dir());
    let text = local.path().join("notes.txt");
    std::fs::write(&text, "line one\nline two\n")?;
    let up = ws.file_upload(&text, &remote("notes.txt")).await?;
    g.check(
        "upload_text",
        up.success && up.file_size == Some(18),
        format!("{up:?}"),
    );
    let back = local.path().join("back.txt");
    ws.file_download(&remote("notes.txt"), &back).await?;
    g.equal(
        "download_text",
        std::fs::read_to_string(&back)?,
        "line one\nline two\n".to_owned(),
    );
    let binary: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let bin = local.path().join("blob.bin");
    std::fs::write(&bin, &binary)?;
    ws.file_upload(&bin, &remote("blob.bin")).await?;
    let bin_back = local.path().join("blob-back.bin");
    ws.file_download(&remote("blob.bin"), &bin_back).await?;
    g.check(
        "binary_round_trip",
        std::fs::read(&bin_back)? == binary,
        "the downloaded bytes differ",
    );
    ws.file_upload_bytes("ünï", &remote("dïr ✓/ñame €.txt"))
        .await?;
    let uni_back = local.path().join("uni.txt");
    ws.file_download(&remote("dïr ✓/ñame €.txt"), &uni_back)
        .await?;
    g.equal(
        "unicode_name",
        std::fs::read_to_string(&uni_back)?,
        "ünï".to_owned(),
    );
    ws.file_upload_bytes("relative", "rel/one.txt").await?;
    let cat = ws
        .execute_command(
            &format!("cat {}", remote("rel/one.txt")),
            None,
            Duration::from_secs(20),
        )
        .await?;
    g.equal("relative_destination", cat.stdout.as_str(), "relative");
    ws.file_upload_bytes("deep", &remote("a/b/c/d.txt")).await?;
    let deep = ws
        .execute_command(
            &format!("cat {}", remote("a/b/c/d.txt")),
            None,
            Duration::from_secs(20),
        )
        .await?;
    g.equal("parents_created", deep.stdout.as_str(), "deep");
    let missing = ws
        .file_download(&remote("no-such-file"), local.path().join("x"))
        .await;
    g.check(
        "missing_is_404",
        missing.as_ref().err().and_then(ClientError::status) == Some(404)
            && !local.path().join("x").exists(),
        format!("{missing:?}"),
    );
    let dir = ws
        .file_download(ws.working_dir(), local.path().join("y"))
        .await;
    g.check(
        "directory_refused",
        dir.as_ref()
            .err()
            .and_then(ClientError::status)
            .is_some_and(|s| (400..500).contains(&s)),
        format!("{dir:?}"),
    );
    let nested = local.path().join("n1/n2/n3.txt");
    ws.file_download(&remote("notes.txt"), &nested).await?;
    g.check("local_parents_created", nested.is_file(), "not written");
    Ok(())
}

async fn git(target: &Target, g: &mut Group) -> Result<()> {
    let ws = workspace_for(target, "git")?;
    let t = Duration::from_secs(30);
    let repo = format!("{}/repo", ws.working_dir());
    let setup = format!(
        "mkdir -p {repo} && cd {repo} && git init -q && git config user.email t@example.com \
         && git config user.name T && printf 'one\\n' > tracked.txt && git add tracked.txt \
         && git commit -qm init && printf 'two\\n' > tracked.txt && printf 'new\\n' > new.txt \
         && mkdir -p {}/plain",
        ws.working_dir()
    );
    let done = ws.execute_command(&setup, None, t).await?;
    if done.exit_code != 0 {
        return Err(anyhow!("git setup failed: {}", done.stderr));
    }
    let changes = ws.git_changes("repo").await?;
    let has = |path: &str, status: GitChangeStatus| {
        changes
            .iter()
            .any(|c| c.path.ends_with(path) && c.status == status)
    };
    g.check(
        "added",
        has("new.txt", GitChangeStatus::Added),
        format!("{changes:?}"),
    );
    g.check(
        "updated",
        has("tracked.txt", GitChangeStatus::Updated),
        format!("{changes:?}"),
    );
    let diff = ws.git_diff("repo/tracked.txt").await?;
    // Both servers drop the final newline.
    g.equal("diff_original", diff.original.as_deref(), Some("one"));
    g.equal("diff_modified", diff.modified.as_deref(), Some("two"));
    let plain = ws.git_changes("plain").await?;
    g.check("not_a_repo", plain.is_empty(), format!("{plain:?}"));
    Ok(())
}

async fn conversation(target: &Target, g: &mut Group) -> Result<()> {
    let ws = workspace_for(target, "conversation")?;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo conformance-ok"})),
        Reply::tool("finish", json!({"message": "done"})),
        Reply::tool("finish", json!({"message": "second"})),
    ])
    .await?;
    let (seen, callback) = recorder();
    let conv = builder_create(&ws, agent(&llm), |b| b.callback(callback)).await?;
    g.ok("create");
    conv.send_text("Say it.").await?;
    let status = with_timeout("run", conv.run()).await??;
    g.equal("run_finished", status, ExecutionStatus::Finished);
    let events = conv.events();
    g.check(
        "tool_output",
        events
            .iter()
            .any(|e| matches!(e, Event::Observation(_)) && json_of(e).contains("conformance-ok")),
        "no observation with the command's output",
    );
    let kinds: HashSet<String> = seen
        .lock()
        .map_err(|_| anyhow!("poisoned"))?
        .iter()
        .map(|e| e.kind().to_owned())
        .collect();
    g.check(
        "callbacks",
        ["MessageEvent", "ActionEvent", "ObservationEvent"]
            .iter()
            .all(|k| kinds.contains(*k)),
        format!("callbacks saw {kinds:?}"),
    );
    let ids: Vec<&str> = events.iter().filter_map(Event::id).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    g.equal("ids_unique", ids.len(), unique.len());
    g.equal("status", conv.status().await?, ExecutionStatus::Finished);
    let stats = conv.stats().await?;
    let prompt_tokens = stats.prompt_tokens();
    g.check(
        "stats",
        prompt_tokens >= 2 * oh_testkit::PROMPT_TOKENS && stats.accumulated_cost() >= 0.0,
        format!(
            "prompt tokens {prompt_tokens}, cost {}",
            stats.accumulated_cost()
        ),
    );
    conv.send_text("Again.").await?;
    let second = with_timeout("second run", conv.run()).await??;
    g.equal("second_turn", second, ExecutionStatus::Finished);
    let requests = llm.requests();
    g.check(
        "llm_saw_output",
        requests.len() == 3 && requests[1].body.to_string().contains("conformance-ok"),
        format!("{} LLM requests", requests.len()),
    );
    conv.set_title("Conformance title").await?;
    g.equal(
        "set_title",
        conv.info().await?.title.as_deref(),
        Some("Conformance title"),
    );
    let other = RemoteConversation::builder(&ws)
        .delete_on_close(false)
        .attach(conv.id())
        .await?;
    let mine: Vec<String> = conv
        .events()
        .iter()
        .filter_map(|e| e.id().map(str::to_owned))
        .collect();
    let theirs: Vec<String> = other
        .events()
        .iter()
        .filter_map(|e| e.id().map(str::to_owned))
        .collect();
    g.check(
        "attach",
        !theirs.is_empty()
            && theirs.iter().collect::<HashSet<_>>() == mine.iter().collect::<HashSet<_>>(),
        format!("{} vs {} events", theirs.len(), mine.len()),
    );
    other.close().await;
    let id = conv.id();
    let closing = RemoteConversation::builder(&ws)
        .delete_on_close(true)
        .attach(id)
        .await?;
    conv.close().await;
    closing.close().await;
    let gone = RemoteConversation::builder(&ws).attach(id).await;
    g.check(
        "close_deletes",
        gone.as_ref().err().is_some_and(ClientError::is_not_found),
        format!("{:?}", gone.map(|c| c.id())),
    );
    Ok(())
}

async fn pause(target: &Target, g: &mut Group) -> Result<()> {
    let ws = workspace_for(target, "pause")?;
    let llm = ScriptedLlm::start(vec![
        Reply::delay(
            1500,
            Reply::tool("terminal", json!({"command": "echo paused-step"})),
        ),
        Reply::tool("finish", json!({"message": "resumed"})),
    ])
    .await?;
    let (seen, callback) = recorder();
    let conv = Arc::new(builder_create(&ws, agent(&llm), |b| b.callback(callback)).await?);
    conv.send_text("Take your time.").await?;
    let runner = {
        let conv = Arc::clone(&conv);
        tokio::spawn(async move { conv.run().await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    conv.pause().await?;
    let status = with_timeout("paused run", runner).await??;
    g.check(
        "paused",
        matches!(status, Ok(ExecutionStatus::Paused)),
        format!("{status:?}"),
    );
    g.equal(
        "status_paused",
        conv.status().await?,
        ExecutionStatus::Paused,
    );
    // The step that was in flight when the pause came still completes on the server (both
    // servers pause between steps); a run started before that would only join it.
    let step_done = eventually(Duration::from_secs(20), || {
        seen.lock()
            .map(|s| s.iter().any(|e| matches!(e, Event::Observation(_))))
            .unwrap_or(false)
    })
    .await;
    if !step_done {
        return Err(anyhow!("the in-flight step never completed"));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mark = seen.lock().map(|s| s.len()).unwrap_or(0);
    let resumed = with_timeout("resumed run", conv.run()).await??;
    let trail: Vec<String> = seen
        .lock()
        .map(|s| {
            s[mark..]
                .iter()
                .map(|e| match e {
                    Event::ConversationStateUpdate(u) => format!(
                        "{}={}",
                        u.key,
                        if u.key == "full_state" {
                            u.value["execution_status"].to_string()
                        } else {
                            u.value.to_string()
                        }
                    ),
                    other => other.kind().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    g.check(
        "resumed",
        resumed == ExecutionStatus::Finished,
        format!("{resumed:?} after {trail:?}"),
    );
    conv.close().await;
    Ok(())
}

async fn confirmation(target: &Target, g: &mut Group) -> Result<()> {
    let ws = workspace_for(target, "confirmation")?;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo should-not-run"})),
        Reply::tool("terminal", json!({"command": "echo accepted-ran"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await?;
    let (seen, callback) = recorder();
    let conv = builder_create(&ws, agent(&llm), |b| {
        b.callback(callback)
            .confirmation_policy(ConfirmationPolicy::AlwaysConfirm(AlwaysConfirm {}))
    })
    .await?;
    conv.send_text("Run something.").await?;
    let status = with_timeout("run", conv.run()).await??;
    g.equal("waiting", status, ExecutionStatus::WaitingForConfirmation);
    g.check(
        "not_executed",
        !conv
            .events()
            .iter()
            .any(|e| matches!(e, Event::Observation(_)) && json_of(e).contains("should-not-run")),
        "the action ran before it was confirmed",
    );
    conv.reject_pending_actions("not today").await?;
    let rejected = eventually(Duration::from_secs(10), || {
        seen.lock()
            .map(|events| {
                events
                    .iter()
                    .any(|e| matches!(e, Event::UserRejectObservation(_)))
            })
            .unwrap_or(false)
    })
    .await;
    g.check("rejected", rejected, "no UserRejectObservation arrived");
    let idle = eventually(Duration::from_secs(10), || {
        conv.cached_state("execution_status") == Some(json!("idle"))
    })
    .await;
    g.check(
        "idle_after_reject",
        idle || conv.status().await? == ExecutionStatus::Idle,
        format!("{:?}", conv.cached_state("execution_status")),
    );
    conv.send_text("Try another.").await?;
    let again = with_timeout("run", conv.run()).await??;
    if again != ExecutionStatus::WaitingForConfirmation {
        return Err(anyhow!("expected a second confirmation, got {again:?}"));
    }
    conv.set_confirmation_policy(ConfirmationPolicy::NeverConfirm(NeverConfirm {}))
        .await?;
    let finished = with_timeout("accepted run", conv.run()).await??;
    g.check(
        "accepted",
        conv.events()
            .iter()
            .any(|e| matches!(e, Event::Observation(_)) && json_of(e).contains("accepted-ran")),
        "the accepted action did not run",
    );
    g.equal("finished", finished, ExecutionStatus::Finished);
    conv.close().await;
    Ok(())
}

async fn secrets(target: &Target, g: &mut Group) -> Result<()> {
    const VALUE: &str = "s3cr3t-conformance-4217";
    let ws = workspace_for(target, "secrets")?;
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo token=$CONF_TOKEN"})),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await?;
    let conv = builder_create(&ws, agent(&llm), |b| b.secret("CONF_TOKEN", VALUE)).await?;
    conv.send_text("Use $CONF_TOKEN.").await?;
    let status = with_timeout("run", conv.run()).await??;
    g.equal("run", status, ExecutionStatus::Finished);
    let observed: Vec<String> = conv
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Observation(_)))
        .map(json_of)
        .collect();
    g.check(
        "masked",
        observed.iter().any(|o| o.contains("token="))
            && !observed.iter().any(|o| o.contains(VALUE)),
        format!("{observed:?}"),
    );
    g.check(
        "not_in_llm",
        !llm.requests()
            .iter()
            .any(|r| r.body.to_string().contains(VALUE)),
        "the secret reached the LLM",
    );
    let info = serde_json::to_string(&conv.info().await?)?;
    g.check(
        "not_in_info",
        !info.contains(VALUE),
        "the secret is in the REST answer",
    );
    conv.close().await;
    Ok(())
}

async fn errors(target: &Target, g: &mut Group) -> Result<()> {
    let bad = RemoteWorkspace::builder(&target.url)
        .api_key("wrong-key")
        .working_dir(format!("{}/errors", target.root))
        .build()?;
    let command = bad
        .execute_command("true", None, Duration::from_secs(10))
        .await;
    g.check(
        "bad_key_command",
        command.as_ref().err().and_then(ClientError::status) == Some(401),
        format!("{command:?}"),
    );
    let upload = bad.file_upload_bytes("x", "x.txt").await;
    g.check(
        "bad_key_upload",
        upload.as_ref().err().and_then(ClientError::status) == Some(401),
        format!("{upload:?}"),
    );
    let llm = ScriptedLlm::start(vec![Reply::status(
        400,
        json!({"error": {"message": "scripted bad request", "type": "invalid_request_error"}}),
    )])
    .await?;
    let created = builder_create(&bad, agent(&llm), |b| b).await;
    g.check(
        "bad_key_create",
        created.as_ref().err().and_then(ClientError::status) == Some(401),
        format!("{:?}", created.map(|c| c.id())),
    );
    let ws = workspace_for(target, "errors")?;
    let unknown = RemoteConversation::builder(&ws)
        .attach(uuid::Uuid::new_v4())
        .await;
    g.check(
        "unknown_attach",
        unknown
            .as_ref()
            .err()
            .is_some_and(ClientError::is_not_found),
        format!("{:?}", unknown.map(|c| c.id())),
    );
    let conv = builder_create(&ws, agent(&llm), |b| b.max_iterations(5)).await?;
    conv.send_text("Fail.").await?;
    let failed = with_timeout("failing run", conv.run()).await?;
    g.check(
        "llm_failure",
        matches!(
            &failed,
            Err(ClientError::Run(oh_protocol::RunFailure {
                status: ExecutionStatus::Error,
                code: Some(_),
                ..
            }))
        ),
        format!("{failed:?}"),
    );
    let other = RemoteConversation::builder(&ws).attach(conv.id()).await?;
    other.delete().await?;
    let after = with_timeout("run after delete", conv.run()).await?;
    g.check(
        "run_after_delete",
        after.as_ref().err().is_some_and(ClientError::is_not_found),
        format!("{after:?}"),
    );
    conv.close().await;
    Ok(())
}

/// Prints one line per check and the group's count; returns the number that failed.
#[allow(clippy::print_stdout, reason = "the suite's report, read by xtask")]
fn report(label: &str, group: &str, outcomes: &[Outcome]) -> usize {
    for o in outcomes {
        let mark = if o.passed { "PASS" } else { "FAIL" };
        if o.passed {
            println!("{mark} [{label}] {}/{}", o.group, o.name);
        } else {
            println!("{mark} [{label}] {}/{}: {}", o.group, o.name, o.detail);
        }
    }
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    println!(
        "client suite group {group}: {} checks, {failed} failed",
        outcomes.len()
    );
    failed
}

/// Checks a server is reachable before the suite starts.
async fn wait_healthy(target: &Target) -> Result<()> {
    let ws = RemoteWorkspace::builder(&target.url).build()?;
    ws.wait_until_healthy(Duration::from_secs(120))
        .await
        .context("the server never became healthy")
}
