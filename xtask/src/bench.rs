//! `cargo xtask bench`: our server against the Python reference, side by side.
//!
//! Both servers are started by the bench (ours from the release build, the
//! reference through `xtask/pyenv.sh server` in its chroot) with the same
//! session API key, an empty scratch directory each, and oh-testkit's
//! `scripted-llm` binary run `--by-step` (every run: terminal `echo hi`, then finish, for
//! any number of conversations at once). Every measurement runs against both; one that fails on a
//! server (a route not written yet, a timeout) is reported as `n/a (<reason>)`
//! and the bench goes on. The table goes to stdout, everything measured (with
//! min/median/p99/max of each sample) to `<target>/bench/results.json`.
//!
//! The `sandbox` group is ours alone (the reference's runtime API is a hosted service): our
//! sandbox server driven by `ApiRemoteWorkspace` (in the e2e package's `e2e-driver`, see
//! [`crate::driver`]), printed beside third-party figures.

pub(crate) mod client;
pub(crate) mod docker;
mod measure;
mod report;
pub(crate) mod sandbox;
mod saved;
pub(crate) mod server;
pub(crate) mod stats;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use self::measure::{Measured, Settings};
use self::report::Results;
use self::server::{Kind, Launch, Running, Scratch};
use self::stats::{Summary, ms};
use super::scripted_llm::{Mode, ScriptedLlm};
use super::{cargo, pyenv_command, workspace_root};

/// The measurements, by the name `--only` takes, with the values each gives.
const MEASUREMENTS: &[(&str, &[&str])] = &[
    ("startup", &["startup_ms", "idle_rss_mib"]),
    ("echo", &["echo_median_ms", "echo_p99_ms"]),
    ("files", &["upload_mib_s", "download_mib_s"]),
    ("create", &["create_median_ms"]),
    ("run", &["run_median_ms", "run_message_median_ms"]),
    ("saved", &["saved_rss_mib", "saved_ready_ms"]),
    ("ws", &["ws_events_per_s"]),
    ("docker", &["image_mib", "docker_ready_ms"]),
    ("sandbox", sandbox::KEYS),
];

/// Measurements of our side alone (no Python counterpart runs).
const OURS_ONLY: &[&str] = &["sandbox"];

/// Saved conversations for the `saved` measurement.
const SAVED_CONVERSATIONS: usize = 1000;

/// No single measurement may take longer than this.
const MEASUREMENT_LIMIT: Duration = Duration::from_secs(300);

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    only: Vec<String>,
    ours: bool,
    python: bool,
    starts: usize,
    bin: Option<PathBuf>,
    build: bool,
    json: Option<PathBuf>,
    keep: bool,
    settings: Settings,
    sandbox: sandbox::SandboxSettings,
}

/// `cargo xtask bench [OPTIONS]`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Measurements, comma-separated: startup, echo, files, create, run, saved, ws, docker,
    /// sandbox (default: all; docker and sandbox need the image of `cargo xtask image`).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    only: Vec<String>,
    /// Skip the Python server.
    #[arg(long, conflicts_with = "python_only")]
    ours_only: bool,
    /// Skip our server.
    #[arg(long)]
    python_only: bool,
    /// Echo round trips [default: 50].
    #[arg(long, value_name = "N")]
    runs: Option<usize>,
    /// Cold starts per server [default: 5].
    #[arg(long, value_name = "N")]
    starts: Option<usize>,
    /// Fewer repetitions, for iterating (the options above still win).
    #[arg(long)]
    quick: bool,
    /// Pause between bash-event polls, in ms.
    #[arg(long, value_name = "N", default_value_t = 1.0)]
    poll_ms: f64,
    /// WebSocket fan-out: subscribers.
    #[arg(long, value_name = "N", default_value_t = 100)]
    ws_subscribers: usize,
    /// WebSocket fan-out: conversations the subscribers spread over.
    #[arg(long, value_name = "N", default_value_t = 4)]
    ws_conversations: usize,
    /// Sandbox create → echo runs, cold and warm each [default: 20].
    #[arg(long, value_name = "N")]
    sandbox_runs: Option<usize>,
    /// Our server binary (default: build it).
    #[arg(long, value_name = "PATH")]
    bin: Option<PathBuf>,
    /// Use the existing release binaries.
    #[arg(long)]
    no_build: bool,
    /// Where to write the JSON results (default: `<target>/bench/results.json`).
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Keep the scratch directories.
    #[arg(long)]
    keep: bool,
}

impl Options {
    fn new(args: Args) -> Result<Self> {
        for name in &args.only {
            if !MEASUREMENTS.iter().any(|(m, _)| m == name) {
                bail!("unknown measurement `{name}`");
            }
        }
        let quick = args.quick;
        let pick = |given: Option<usize>, normal: usize, fewer: usize| {
            given.unwrap_or(if quick { fewer } else { normal })
        };
        Ok(Options {
            only: args.only.clone(),
            ours: !args.python_only,
            python: !args.ours_only,
            starts: pick(args.starts, 5, 2),
            bin: args.bin,
            build: !args.no_build,
            json: args.json,
            keep: args.keep,
            settings: Settings {
                echo_runs: pick(args.runs, 50, 10),
                poll_pause: Duration::from_secs_f64(args.poll_ms / 1000.0),
                create_runs: if quick { 5 } else { 20 },
                run_runs: if quick { 3 } else { 10 },
                transfer_runs: if quick { 1 } else { 3 },
                transfer_bytes: 64 << 20,
                ws_subscribers: args.ws_subscribers,
                ws_conversations: args.ws_conversations,
                ws_seconds: if quick { 1.0 } else { 3.0 },
                llm_base_url: String::new(),
            },
            sandbox: sandbox::SandboxSettings {
                runs: pick(args.sandbox_runs, 20, 5),
                bursts: if quick { 1 } else { 3 },
            },
        })
    }

    fn selected(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }

    /// Whether a measurement that runs against both agent servers is selected.
    fn any_shared(&self) -> bool {
        MEASUREMENTS
            .iter()
            .any(|(name, _)| !OURS_ONLY.contains(name) && self.selected(name))
    }
}

/// Our server binary: `bin` if given, else the release build (built first if `build`).
pub(crate) fn our_binary(bin: Option<PathBuf>, build: bool) -> Result<PathBuf> {
    if let Some(bin) = bin {
        return Ok(bin);
    }
    release_binary("oh-server", "openhands-agent-server", build)
}

/// The release build of `package`'s binary `bin` (built first if `build`).
fn release_binary(package: &str, bin: &str, build: bool) -> Result<PathBuf> {
    if build {
        cargo::build_binary(package, bin, cargo::Profile::Release)
    } else {
        cargo::binary_path(bin, cargo::Profile::Release)
    }
}

/// `cargo xtask bench ARGS...`.
pub(crate) fn main(args: Args) -> Result<ExitCode> {
    let options = Options::new(args)?;
    let bench_dir = cargo::target_dir()?.join("bench");
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("creating {}", bench_dir.display()))?;
    let ours_bin = if options.ours && options.any_shared() {
        our_binary(options.bin.clone(), options.build)?
    } else {
        cargo::binary_path("openhands-agent-server", cargo::Profile::Release)?
    };
    let sandbox_bin = if options.ours && options.selected("sandbox") {
        release_binary(
            "oh-sandbox-server",
            "openhands-sandbox-server",
            options.build,
        )?
    } else {
        cargo::binary_path("openhands-sandbox-server", cargo::Profile::Release)?
    };
    let pyroot = PathBuf::from(String::from_utf8(pyenv_command(["root"]).output()?.stdout)?.trim());
    let launch = Launch {
        ours_bin,
        pyenv: workspace_root().join("xtask").join("pyenv.sh"),
        pyroot,
        key: format!("bench-{}", uuid::Uuid::new_v4().simple()),
        log_dir: bench_dir.join("logs"),
        env: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(run_all(&options, &launch, &sandbox_bin, &bench_dir));
    while server::interrupted() {
        // The Ctrl-C handler is stopping the servers and will exit the process.
        std::thread::sleep(Duration::from_millis(100));
    }
    let results = results?;
    let json_path = options
        .json
        .clone()
        .unwrap_or_else(|| bench_dir.join("results.json"));
    report::print(&results);
    if let Some(parent) = json_path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report::json(&results))? + "\n",
    )?;
    eprintln!("bench: results written to {}", json_path.display());
    if !results.failed_checks.is_empty() {
        for check in &results.failed_checks {
            eprintln!("bench: FAILED: {check}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_all(
    options: &Options,
    launch: &Launch,
    sandbox_bin: &std::path::Path,
    bench_dir: &std::path::Path,
) -> Result<Results> {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("bench: interrupted, stopping the servers…");
            server::kill_all();
            // A stopped sandbox server leaves its sandboxes running: remove them.
            sandbox::sweep_all();
            // The driver's DockerWorkspace containers: the Ctrl-C ended the driver too, so
            // they are the ones whose owner is gone.
            if let Some(mut sweep) = crate::driver::built() {
                let _ = sweep
                    .arg("docker-sweep")
                    .stdout(std::process::Stdio::null())
                    .status();
            }
            #[allow(clippy::exit, reason = "interrupted: nothing else is left to do")]
            std::process::exit(130);
        }
    });
    // Stateless for the agent (`--by-step`): every run is terminal `echo hi`, then finish,
    // however many conversations run at once.
    let llm = ScriptedLlm::start(
        &json!([
            {"kind": "tool_calls", "calls": [{"name": "terminal", "arguments": {"command": "echo hi"}}]},
            {"kind": "tool_calls", "calls": [{"name": "finish", "arguments": {"message": "done"}}]},
        ]),
        &bench_dir.join("llm-script.json"),
        Mode::ByStep,
    )?;
    let mut settings = options.settings.clone();
    settings.llm_base_url = llm.base_url().to_owned();
    let template = bench_dir.join("conversation-template");
    let mut results = Results::new(&settings);
    let load_before = load_average();
    let commit = Command::new("git")
        .current_dir(workspace_root())
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    results
        .meta
        .insert("workspace_commit".into(), json!(commit));
    results.meta.insert(
        "ours_binary".into(),
        json!(launch.ours_bin.display().to_string()),
    );
    results.meta.insert(
        "ours_built_by_bench".into(),
        json!(options.build && options.bin.is_none()),
    );
    if options.selected("echo") {
        results.notes.push(format!(
            "echo: POST /api/bash/start_bash_command, then GET bash_events/search at once and every {} ms until an exit code; {} timed runs after 3 warm-ups, same client for both servers",
            ms(settings.poll_pause),
            settings.echo_runs
        ));
    }
    if options.selected("startup") {
        results.notes.push(format!(
            "start → ready: spawn until GET /ready answers 200 (polled every 1 ms), median of {} cold starts; idle RSS = VmRSS of the server process 1 s after ready (python: the python process under pyenv.sh)",
            options.starts.max(1)
        ));
    }
    if options.selected("run") {
        results.notes.push(format!(
            "run: create + WebSocket subscribe + POST events(run=true) until execution_status finished (socket frame); scripted LLM (oh-testkit's `scripted-llm --by-step`: terminal `echo hi`, then finish); {} runs after 1 warm-up",
            settings.run_runs
        ));
    }
    if options.selected("ws") {
        results.notes.push(format!(
            "ws: {} subscribers over {} conversations (the reference caps a conversation at 50 subscribers), messages (run=false) posted back to back to each conversation for {} s; frames counted on every socket",
            settings.ws_subscribers, settings.ws_conversations, settings.ws_seconds
        ));
    }
    if options.selected("docker") {
        results.notes.push(format!(
            "docker: image size from `docker image inspect`; DockerWorkspace enter → ready = create + start the container until GET /health answers, median of {} starts. Ours: {} (`cargo xtask image`). Python: no registry here, so the published image is replaced by {} imported once from the pinned reference environment (Debian trixie + the pinned reference wheels)",
            options.starts.max(1),
            docker::OURS_IMAGE,
            docker::PYTHON_IMAGE
        ));
    }
    if options.ours && options.selected("sandbox") {
        results.notes.push(format!(
            "sandbox: our sandbox server (release `openhands-sandbox-server`, Docker backend, image {}, state in a temporary directory) and our `ApiRemoteWorkspace` (pull policy Never) in the `e2e-driver` process, which times the runs. create → first echo = from `start()` until the first `execute_command(\"echo ok\")` returned, cleanup untimed; {} timed runs after 1 warm-up, cold on a server without a pool, warm on one with a pool of 1 (before each run `GET /health` must report `warm_ready` = 1, and each run is checked to be served by a pool container, each cold run by a fresh one). {} concurrent cold creates until all echoed, median of {} burst(s). Containers counted by the servers' instance labels after they stopped. No Python counterpart: the reference's runtime API is hosted. Third-party figures (create → first command, median) as given in the issue, not measured here",
            docker::OURS_IMAGE,
            options.sandbox.runs,
            sandbox::CONCURRENT,
            options.sandbox.bursts.max(1)
        ));
    }
    if options.selected("saved") {
        results.notes.push(format!(
            "saved: {SAVED_CONVERSATIONS} copies of a conversation the Python server wrote (its on-disk layout), server started on them, RSS read after ready + GET /api/conversations/count + 1 s"
        ));
    }

    if options.python && options.any_shared() {
        match prepare_python(launch) {
            Ok(overhead) => {
                results.notes.push(format!(
                    "python start includes its environment: unshare + bash (pyenv.sh) + tmpfs mount + chroot; unshare+chroot alone takes {:.1} ms (pyenv.sh setup ran beforehand, untimed)",
                    ms(overhead)
                ));
                session(
                    Kind::Python,
                    options,
                    launch,
                    &settings,
                    &template,
                    &mut results,
                )
                .await;
            }
            Err(err) => results.fail_all(
                Kind::Python,
                options,
                &format!("reference environment: {err:#}"),
            ),
        }
    }
    if options.ours && options.any_shared() {
        if launch.ours_bin.is_file() {
            session(
                Kind::Ours,
                options,
                launch,
                &settings,
                &template,
                &mut results,
            )
            .await;
        } else {
            results.fail_all(
                Kind::Ours,
                options,
                &format!("no binary at {}", launch.ours_bin.display()),
            );
        }
    }
    if options.ours && options.selected("sandbox") {
        let outcome = sandbox::measure(
            sandbox_bin,
            &bench_dir.join("logs"),
            options.sandbox,
            MEASUREMENT_LIMIT,
        )
        .await;
        for (keys, part) in outcome.parts {
            results.record_values(Kind::Ours, "sandbox", keys, part);
        }
        results.failed_checks.extend(outcome.failed_checks);
    }
    results.notes.push(format!(
        "scripted LLM answered {} completion requests",
        llm.requests().await.map_or(0, |requests| requests.len())
    ));
    results.notes.push(format!(
        "{} CPUs; load average (1 min) {load_before} at the start, {} at the end: other work on the machine skews the figures",
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    ));
    Ok(results)
}

/// The 1-minute load average, as `/proc/loadavg` gives it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// `pyenv.sh setup` (untimed) and the chroot's own start-up cost.
fn prepare_python(launch: &Launch) -> Result<Duration> {
    eprintln!("bench: checking the reference environment (pyenv.sh setup)…");
    let output = pyenv_command(["setup"]).output()?;
    if !output.status.success() {
        bail!(
            "`pyenv.sh setup` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    server::chroot_overhead(&launch.pyroot)
}

/// All measurements against one server.
async fn session(
    kind: Kind,
    options: &Options,
    launch: &Launch,
    settings: &Settings,
    template: &std::path::Path,
    results: &mut Results,
) {
    let scratch = match Scratch::new(kind, launch) {
        Ok(scratch) => scratch,
        Err(err) => {
            results.fail_all(kind, options, &format!("scratch directory: {err:#}"));
            return;
        }
    };
    let live = ["startup", "echo", "files", "create", "run", "ws"];
    if live.iter().any(|m| options.selected(m)) {
        live_session(kind, options, launch, settings, &scratch, template, results).await;
    }
    if options.selected("docker") {
        eprintln!("bench: {}: image and DockerWorkspace start…", kind.name());
        let outcome = docker::measure(kind, launch, options.starts).await;
        results.record(kind, "docker", outcome);
    }
    if options.selected("saved") {
        eprintln!(
            "bench: {}: {SAVED_CONVERSATIONS} saved conversations…",
            kind.name()
        );
        let outcome = saved_session(kind, launch, &scratch, template).await;
        results.record(kind, "saved", outcome);
    }
    if !options.keep {
        scratch.remove();
    }
}

/// Cold starts, then every measurement on the last started server.
async fn live_session(
    kind: Kind,
    options: &Options,
    launch: &Launch,
    settings: &Settings,
    scratch: &Scratch,
    template: &std::path::Path,
    results: &mut Results,
) {
    let name = kind.name();
    let starts = if options.selected("startup") {
        options.starts.max(1)
    } else {
        1
    };
    eprintln!("bench: {name}: {starts} cold start(s)…");
    let mut times = Vec::new();
    let mut server: Option<Running> = None;
    for i in 0..starts {
        if let Some(mut previous) = server.take() {
            previous.stop();
        }
        let fresh = ["conversations", "bash_events", "persistence", "workspace"]
            .iter()
            .try_for_each(|dir| scratch.reset(dir));
        if let Err(err) = fresh {
            results.fail_live(kind, options, &format!("scratch: {err:#}"));
            return;
        }
        match server::start(kind, launch, scratch, &format!("start{i}")).await {
            Ok(started) => {
                times.push(ms(started.ready_after));
                server = Some(started);
            }
            Err(err) => {
                results.fail_live(kind, options, &format!("start: {err:#}"));
                return;
            }
        }
    }
    let Some(mut server) = server else {
        return;
    };
    if options.selected("startup") {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let summary = Summary::of(&times);
        let outcome = server.rss_mib().map(|rss| Measured {
            values: vec![("startup_ms", summary.median), ("idle_rss_mib", rss)],
            details: json!({"ready_ms": summary.json(), "all_ms": times, "pid": server.pid}),
        });
        results.record(kind, "startup", outcome);
    }
    let http = server.http.clone();
    if let Ok(info) = http.get_json("/server_info").await {
        let version = info.get("version").cloned().unwrap_or(Value::Null);
        results
            .side_mut(kind)
            .details
            .insert("server_version".into(), version);
    }
    if options.selected("echo") {
        eprintln!("bench: {name}: echo round trips…");
        let outcome = limited(measure::echo(&http, settings)).await;
        results.record(kind, "echo", outcome);
    }
    if options.selected("files") {
        eprintln!("bench: {name}: upload/download…");
        let (upload, download) = match tokio::time::timeout(
            MEASUREMENT_LIMIT,
            measure::transfer(&http, scratch, settings),
        )
        .await
        {
            Ok(pair) => pair,
            Err(_) => (
                Err(anyhow::anyhow!("timed out")),
                Err(anyhow::anyhow!("timed out")),
            ),
        };
        results.record_values(kind, "files", &["upload_mib_s"], upload);
        results.record_values(kind, "files", &["download_mib_s"], download);
        let _ = std::fs::remove_dir_all(scratch.host("files"));
    }
    if options.selected("create") {
        eprintln!("bench: {name}: conversation create…");
        let outcome = limited(measure::create(&http, scratch, settings)).await;
        results.record(kind, "create", outcome);
    }
    let mut template_source = None;
    if options.selected("run") {
        eprintln!("bench: {name}: scripted runs…");
        let outcome = limited(measure::run(&http, scratch, settings)).await;
        let outcome = outcome.map(|(measured, id)| {
            template_source = Some(id);
            measured
        });
        results.record(kind, "run", outcome);
    }
    if options.selected("ws") {
        eprintln!("bench: {name}: WebSocket fan-out…");
        let outcome = limited(measure::websocket(&http, scratch, settings)).await;
        results.record(kind, "ws", outcome);
    }
    results.set_pid(kind, server.pid);
    server.stop();
    if kind == Kind::Python
        && let Some(id) = template_source
    {
        match saved::capture(
            &scratch.host("conversations"),
            &id,
            &scratch.server("conversations"),
            &scratch.server("workspace"),
            template,
        ) {
            Ok(files) => eprintln!(
                "bench: kept conversation {id} ({files} files) as the saved-conversation template"
            ),
            Err(err) => eprintln!("bench: could not keep a conversation template: {err:#}"),
        }
    }
}

/// RSS and start time with 1,000 saved conversations.
async fn saved_session(
    kind: Kind,
    launch: &Launch,
    scratch: &Scratch,
    template: &std::path::Path,
) -> Result<Measured> {
    for dir in ["conversations", "bash_events", "persistence", "workspace"] {
        scratch.reset(dir)?;
    }
    saved::generate(
        template,
        &scratch.host("conversations"),
        SAVED_CONVERSATIONS,
        &scratch.server("conversations"),
        &scratch.server("workspace"),
    )?;
    let mut server = server::start(kind, launch, scratch, "saved").await?;
    let outcome = async {
        let count = server.http.get_json("/api/conversations/count").await?;
        if count.as_u64() != Some(SAVED_CONVERSATIONS as u64) {
            bail!("GET /api/conversations/count answered {count}, expected {SAVED_CONVERSATIONS}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss = server.rss_mib()?;
        Ok(Measured {
            values: vec![
                ("saved_rss_mib", rss),
                ("saved_ready_ms", ms(server.ready_after)),
            ],
            details: json!({"conversations": SAVED_CONVERSATIONS}),
        })
    };
    let outcome = tokio::time::timeout(MEASUREMENT_LIMIT, outcome)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out")));
    server.stop();
    outcome
}

/// A measurement under [`MEASUREMENT_LIMIT`].
async fn limited<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(MEASUREMENT_LIMIT, future)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {MEASUREMENT_LIMIT:?}")))
}

/// The keys of a measurement.
fn keys_of(measurement: &str) -> &'static [&'static str] {
    MEASUREMENTS
        .iter()
        .find(|(name, _)| *name == measurement)
        .map_or(&[], |(_, keys)| *keys)
}

impl Results {
    fn record(&mut self, kind: Kind, measurement: &str, outcome: Result<Measured>) {
        self.record_values(kind, measurement, keys_of(measurement), outcome);
    }

    fn record_values(
        &mut self,
        kind: Kind,
        measurement: &str,
        keys: &[&'static str],
        outcome: Result<Measured>,
    ) {
        let side = self.side_mut(kind);
        match outcome {
            Ok(measured) => {
                for (key, value) in measured.values {
                    side.values.insert(key, Ok(value));
                }
                merge(
                    side.details
                        .entry(measurement.to_owned())
                        .or_insert(Value::Null),
                    measured.details,
                );
            }
            Err(err) => {
                let reason = format!("{err:#}");
                eprintln!("bench: {}: {measurement}: n/a ({reason})", kind.name());
                for key in keys {
                    side.values.insert(key, Err(reason.clone()));
                }
            }
        }
    }

    /// Every measurement that needs a live server fails with `reason`.
    fn fail_live(&mut self, kind: Kind, options: &Options, reason: &str) {
        for (name, _) in MEASUREMENTS {
            if *name != "saved" && !OURS_ONLY.contains(name) && options.selected(name) {
                self.record(kind, name, Err(anyhow::anyhow!("{reason}")));
            }
        }
    }

    /// Every selected measurement fails with `reason`.
    fn fail_all(&mut self, kind: Kind, options: &Options, reason: &str) {
        for (name, _) in MEASUREMENTS {
            if !OURS_ONLY.contains(name) && options.selected(name) {
                self.record(kind, name, Err(anyhow::anyhow!("{reason}")));
            }
        }
    }
}

/// Merges object `extra` into `into`.
fn merge(into: &mut Value, extra: Value) {
    match (into, extra) {
        (Value::Object(into), Value::Object(extra)) => into.extend(extra),
        (into, extra) => *into = extra,
    }
}
