//! The `sandbox` measurement: our sandbox server (`openhands-sandbox-server`, the release
//! build, runtime API over the local Docker Engine) driven by our `ApiRemoteWorkspace`.
//!
//! * create → first `echo`: from `ApiRemoteWorkspace::builder(..).start()` until the first
//!   `execute_command("echo ok")` returned (the cleanup after it is not timed), on a server
//!   without a warm pool (cold) and on one with a pool of one (warm; before each run the
//!   bench waits until the server's `GET /health` reports the pool refilled). Each run is
//!   checked against the engine: the container behind the sandbox's URL must be a pool
//!   member (`ohsb-pool-…`, pool label) for a warm run and must not be one for a cold run.
//! * concurrency: `CONCURRENT` sandboxes started at once on the cold server, until every
//!   `start()` returned and each answered one `echo`.
//! * containers left behind: after both servers stopped, the containers still carrying
//!   either server's instance label; any is removed and reported as a failure.
//!
//! There is no Python runtime-API server to compare with (the reference's is the hosted
//! one); the table shows third-party figures for the same measure instead.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde_json::{Value, json};

use super::client::Http;
use super::docker::OURS_IMAGE;
use super::measure::Measured;
use super::server::{free_port, interrupted, live, scratch_dirs, signal, tail};
use super::stats::{Summary, percentile};

/// Sandboxes started at once in the concurrency measurement.
pub(crate) const CONCURRENT: usize = 10;

/// Warm-pool size of the warm server.
const WARM: usize = 1;

/// How long the pool may take to refill before a warm run.
const REFILL_LIMIT: Duration = Duration::from_secs(120);

/// The label the sandbox server puts on each of its containers, valued with its instance id,
/// and the label of its warm-pool members: `oh_sandbox_server::{SERVER_LABEL, POOL_LABEL}`
/// (xtask links no product crate; a tidy test keeps them equal).
pub(crate) const SERVER_LABEL: &str = "org.openhands-rs.sandbox-server";
/// See [`SERVER_LABEL`].
pub(crate) const POOL_LABEL: &str = "org.openhands-rs.sandbox.pool";

/// Name prefix of warm-pool containers.
const POOL_PREFIX: &str = "ohsb-pool-";

/// The keys the measurement gives, in table order.
pub(crate) const KEYS: &[&str] = &[
    "sandbox_cold_median_ms",
    "sandbox_cold_p95_ms",
    "sandbox_warm_median_ms",
    "sandbox_warm_p95_ms",
    "sandbox_concurrent_ms",
    "sandbox_left_containers",
];

/// Repetitions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SandboxSettings {
    /// Timed create → first echo runs, cold and warm each (after one untimed warm-up).
    pub(crate) runs: usize,
    /// Bursts of [`CONCURRENT`] concurrent creates.
    pub(crate) bursts: usize,
}

/// What the group gave: a result per part, and the checks that failed (the bench then
/// exits non-zero).
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `(keys, result)` per part.
    pub(crate) parts: Vec<(&'static [&'static str], Result<Measured>)>,
    /// Broken promises: a warm run served cold, containers left behind.
    pub(crate) failed_checks: Vec<String>,
}

/// Instance ids of the sandbox servers running now, for [`sweep_all`].
static INSTANCES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn instances<T>(f: impl FnOnce(&mut Vec<String>) -> T) -> T {
    f(&mut INSTANCES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Removes the containers of every sandbox server of this run (the bench is interrupted:
/// a stopped sandbox server leaves its sandboxes running by design).
pub(crate) fn sweep_all() {
    for instance in instances(std::mem::take) {
        if let Ok(ids) = containers(&instance) {
            remove(&ids);
        }
    }
}

/// The containers carrying `instance`'s label, in any state.
fn containers(instance: &str) -> Result<Vec<String>> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--no-trunc", "--filter"])
        .arg(format!("label={SERVER_LABEL}={instance}"))
        .stderr(Stdio::piped())
        .output()
        .context("running docker ps")?;
    ensure!(
        out.status.success(),
        "docker ps failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

fn remove(ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let _ = Command::new("docker")
        .args(["rm", "-f"])
        .args(ids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The container of `instance` publishing host port `port`: its name and whether it is a
/// warm-pool member. One `docker ps`, so containers coming and going meanwhile do not matter.
fn serving_container(instance: &str, port: u16) -> Result<(String, bool)> {
    let out = Command::new("docker")
        .args(["ps", "--filter"])
        .arg(format!("label={SERVER_LABEL}={instance}"))
        .arg("--format")
        .arg(format!(
            "{{{{.Names}}}}\t{{{{.Label \"{POOL_LABEL}\"}}}}\t{{{{.Ports}}}}"
        ))
        .stderr(Stdio::piped())
        .output()
        .context("running docker ps")?;
    ensure!(
        out.status.success(),
        "docker ps failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(name), Some(pool), Some(ports)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if publishes(ports, port) {
            let member = pool == "1" && name.starts_with(POOL_PREFIX);
            return Ok((name.to_owned(), member));
        }
    }
    bail!("no running container of this server publishes port {port}")
}

/// Whether `docker ps`'s ports column (`127.0.0.1:32768->8000/tcp, …`) publishes host port
/// `port`.
fn publishes(ports: &str, port: u16) -> bool {
    ports.split(", ").any(|binding| {
        binding
            .split_once("->")
            .and_then(|(host, _)| host.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())
            == Some(port)
    })
}

/// The port of a URL like `http://127.0.0.1:32768`.
fn url_port(url: &str) -> Result<u16> {
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or("");
    authority
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in the sandbox URL {url}"))
}

/// A running `openhands-sandbox-server`.
#[derive(Debug)]
struct SandboxServer {
    child: Child,
    url: String,
    key: String,
    instance: String,
    state: PathBuf,
    log: PathBuf,
    http: Http,
}

impl SandboxServer {
    /// Starts the binary with state in a fresh temporary directory and waits for `/health`.
    async fn start(bin: &Path, log_dir: &Path, tag: &str, warm: usize) -> Result<Self> {
        let port = free_port()?;
        let key = format!("bench-{}", uuid::Uuid::new_v4().simple());
        let state =
            std::env::temp_dir().join(format!("oh-bench-{}-sandbox-{tag}", std::process::id()));
        if state.exists() {
            std::fs::remove_dir_all(&state)?;
        }
        std::fs::create_dir_all(&state)?;
        scratch_dirs(|dirs| dirs.push(state.clone()));
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("sandbox-{tag}.log"));
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg("--state-dir")
            .arg(&state)
            .args(["--image", OURS_IMAGE])
            .args(["--warm", &warm.to_string()])
            .args(["--max-sandboxes", &(CONCURRENT + 2 * WARM).to_string()]);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("OH_") || name == "DOCKER_DEFAULT_PLATFORM" {
                cmd.env_remove(name.as_ref());
            }
        }
        cmd.env("OH_RUNTIME_API_KEY", &key)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", bin.display()))?;
        live(|groups| groups.push(child.id()));
        let interrupted = interrupted();
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            key,
            instance: String::new(),
            state,
            log,
            http: Http::new(port, ""),
        };
        if interrupted {
            // Registered after the Ctrl-C handler took the list: it would outlive the bench.
            server.stop();
            bail!("interrupted");
        }
        let started = Instant::now();
        loop {
            if let Ok(Ok(reply)) =
                tokio::time::timeout(Duration::from_secs(2), server.http.get("/health")).await
                && reply.status.is_success()
            {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let why = anyhow!(
                    "the sandbox server exited ({status}) before it was healthy; log {}:\n{}",
                    server.log.display(),
                    tail(&server.log)
                );
                server.stop();
                return Err(why);
            }
            if started.elapsed() > Duration::from_secs(30) {
                server.stop();
                bail!("the sandbox server was not healthy within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.instance = std::fs::read_to_string(server.state.join("instance"))
            .context("reading the server's instance id")?
            .trim()
            .to_owned();
        instances(|all| all.push(server.instance.clone()));
        Ok(server)
    }

    /// The driver's arguments for this server's runtime API and our image.
    fn api_args(&self) -> [String; 6] {
        [
            "--url".to_owned(),
            self.url.clone(),
            "--key".to_owned(),
            self.key.clone(),
            "--image".to_owned(),
            OURS_IMAGE.to_owned(),
        ]
    }

    /// Waits until `GET /health` reports `size` dormant pool members.
    async fn wait_pool(&self, size: usize) -> Result<()> {
        let started = Instant::now();
        loop {
            let health = self.http.get_json("/health").await?;
            let ready = health
                .get("warm_ready")
                .and_then(Value::as_u64)
                .context("GET /health has no `warm_ready`: the binary predates it")?;
            if ready >= size as u64 {
                return Ok(());
            }
            if started.elapsed() > REFILL_LIMIT {
                bail!(
                    "the warm pool did not refill to {size} within {REFILL_LIMIT:?} (log {}:\n{})",
                    self.log.display(),
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM (the server removes its pool members), SIGKILL after 30 s; then the state
    /// directory goes.
    fn stop(&mut self) {
        let pid = self.child.id();
        signal(&pid.to_string(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(&format!("-{pid}"), "KILL");
        let _ = self.child.wait();
        live(|groups| groups.retain(|g| *g != pid));
        let _ = std::fs::remove_dir_all(&self.state);
        scratch_dirs(|dirs| dirs.retain(|dir| *dir != self.state));
    }
}

impl Drop for SandboxServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// How a run must have been served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    Cold,
    Warm,
}

/// A run that broke the cold/warm promise (as opposed to one that failed).
#[derive(Debug)]
struct WrongPath(String);

impl std::fmt::Display for WrongPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WrongPath {}

/// One create → first echo, in ms (timed by the driver, `e2e-driver api-create-echo`: from
/// `ApiRemoteWorkspace::builder(..).start()` until `execute_command("echo ok")` returned);
/// checked to be served `served` while the driver holds the sandbox, then cleaned up.
async fn create_echo(server: &SandboxServer, served: Served) -> Result<f64> {
    let mut cmd = crate::driver::command()?;
    cmd.arg("api-create-echo").args(server.api_args());
    let instance = server.instance.clone();
    tokio::task::spawn_blocking(move || create_echo_blocking(cmd, &instance, served)).await?
}

fn create_echo_blocking(
    mut cmd: std::process::Command,
    instance: &str,
    served: Served,
) -> Result<f64> {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting e2e-driver api-create-echo")?;
    let mut first = String::new();
    if let Some(out) = child.stdout.as_mut() {
        BufReader::new(out).read_line(&mut first)?;
    }
    let checked = match serde_json::from_str::<Value>(&first) {
        Ok(run) => {
            let took = run["ms"].as_f64().context("the driver gave no time")?;
            let url = run["url"].as_str().unwrap_or_default();
            let runtime_id = run["runtime_id"].as_str().unwrap_or_default().to_owned();
            url_port(url)
                .and_then(|port| serving_container(instance, port))
                .and_then(|(name, member)| match (served, member) {
                    (Served::Warm, false) => Err(WrongPath(format!(
                        "a warm run was served cold: runtime {runtime_id} is container {name}, not a pool member"
                    ))
                    .into()),
                    (Served::Cold, true) => Err(WrongPath(format!(
                        "a cold run was served by pool member {name}"
                    ))
                    .into()),
                    _ => Ok(took),
                })
        }
        Err(_) => Err(anyhow!("the driver's run failed (see its error above)")),
    };
    // Let the driver clean up, and wait for it.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = writeln!(stdin, "cleanup");
    }
    let status = child.wait()?;
    let took = checked?;
    ensure!(
        status.success(),
        "e2e-driver api-create-echo failed ({status})"
    );
    Ok(took)
}

/// One untimed warm-up, then `runs` timed create → first echo runs.
async fn series(server: &SandboxServer, served: Served, runs: usize) -> Result<Vec<f64>> {
    let mut samples = Vec::new();
    for i in 0..=runs {
        if served == Served::Warm {
            server.wait_pool(WARM).await?;
        }
        let took = create_echo(server, served)
            .await
            .with_context(|| format!("run {i}"))?;
        if i > 0 {
            samples.push(took);
        }
    }
    Ok(samples)
}

/// Median and p95 of a series; details under `name`.
fn series_measured(
    name: &str,
    samples: &[f64],
    median_key: &'static str,
    p95_key: &'static str,
) -> Measured {
    let summary = Summary::of(samples);
    let p95 = percentile(samples, 0.95);
    let mut details = summary.json();
    if let Value::Object(map) = &mut details {
        map.insert("p95".into(), json!(p95));
        map.insert("all_ms".into(), json!(samples));
    }
    Measured {
        values: vec![(median_key, summary.median), (p95_key, p95)],
        details: json!({ name: details }),
    }
}

/// [`CONCURRENT`] creates at once until every one answered an echo, in ms (and each
/// sandbox's own time); all cleaned up. Run by the driver (`e2e-driver api-burst`).
async fn burst(server: &SandboxServer) -> Result<(f64, Vec<f64>)> {
    let mut cmd = crate::driver::command()?;
    cmd.arg("api-burst")
        .args(server.api_args())
        .args(["--count", &CONCURRENT.to_string()]);
    let lines = tokio::task::spawn_blocking(move || crate::driver::json_lines(&mut cmd)).await??;
    let result = lines.first().context("the driver printed nothing")?;
    let wall = result["wall_ms"].as_f64().context("no wall_ms")?;
    let each = result["each_ms"]
        .as_array()
        .context("no each_ms")?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    Ok((wall, each))
}

/// Whether `err` is a broken cold/warm promise.
fn wrong_path(err: &anyhow::Error) -> Option<String> {
    err.chain()
        .find_map(|e| e.downcast_ref::<WrongPath>())
        .map(|w| w.0.clone())
}

/// Every part of the measurement, each under `limit`.
pub(crate) async fn measure(
    bin: &Path,
    log_dir: &Path,
    settings: SandboxSettings,
    limit: Duration,
) -> Outcome {
    let mut outcome = Outcome {
        parts: Vec::new(),
        failed_checks: Vec::new(),
    };
    let cold_keys: &[&str] = &KEYS[0..2];
    let warm_keys: &[&str] = &KEYS[2..4];
    let burst_keys: &[&str] = &KEYS[4..5];
    let left_keys: &[&str] = &KEYS[5..6];
    let fail_all = |outcome: &mut Outcome, why: &str| {
        for keys in [cold_keys, warm_keys, burst_keys, left_keys] {
            outcome.parts.push((keys, Err(anyhow!("{why}"))));
        }
    };
    if !bin.is_file() {
        fail_all(&mut outcome, &format!("no binary at {}", bin.display()));
        return outcome;
    }
    let image = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", OURS_IMAGE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !image.is_ok_and(|s| s.success()) {
        fail_all(
            &mut outcome,
            &format!("image {OURS_IMAGE} is not there: build it with `cargo xtask image`"),
        );
        return outcome;
    }
    let within = |what: &'static str| {
        move |timed: Result<Result<Measured>, tokio::time::error::Elapsed>| {
            timed.unwrap_or_else(|_| Err(anyhow!("{what}: timed out after {limit:?}")))
        }
    };
    let mut seen = Vec::new();

    // Cold: create → echo, then bursts, on a server without a pool.
    eprintln!(
        "bench: sandbox: {} cold create → echo runs (+1 warm-up), {} burst(s) of {CONCURRENT}…",
        settings.runs, settings.bursts
    );
    match SandboxServer::start(bin, log_dir, "cold", 0).await {
        Ok(mut server) => {
            seen.push(server.instance.clone());
            let cold = tokio::time::timeout(limit, async {
                let samples = series(&server, Served::Cold, settings.runs).await?;
                Ok(series_measured(
                    "cold",
                    &samples,
                    "sandbox_cold_median_ms",
                    "sandbox_cold_p95_ms",
                ))
            })
            .await;
            let cold = within("cold runs")(cold);
            if let Err(e) = &cold
                && let Some(why) = wrong_path(e)
            {
                outcome.failed_checks.push(why);
            }
            outcome.parts.push((cold_keys, cold));
            let bursts = tokio::time::timeout(limit, async {
                let mut walls = Vec::new();
                let mut each = Vec::new();
                for _ in 0..settings.bursts.max(1) {
                    let (wall, times) = burst(&server).await?;
                    walls.push(wall);
                    each.push(times);
                }
                let summary = Summary::of(&walls);
                Ok(Measured {
                    values: vec![("sandbox_concurrent_ms", summary.median)],
                    details: json!({ "concurrent": {
                        "sandboxes": CONCURRENT,
                        "all_ready_ms": summary.json(),
                        "all_ms": walls,
                        "each_ready_ms": each,
                    }}),
                })
            })
            .await;
            outcome.parts.push((burst_keys, within("bursts")(bursts)));
            server.stop();
        }
        Err(e) => {
            let why = format!("cold server: {e:#}");
            outcome.parts.push((cold_keys, Err(anyhow!("{why}"))));
            outcome.parts.push((burst_keys, Err(anyhow!("{why}"))));
        }
    }

    // Warm: create → echo, each served from a refilled pool.
    eprintln!(
        "bench: sandbox: {} warm create → echo runs (+1 warm-up), pool of {WARM}…",
        settings.runs
    );
    match SandboxServer::start(bin, log_dir, "warm", WARM).await {
        Ok(mut server) => {
            seen.push(server.instance.clone());
            let warm = tokio::time::timeout(limit, async {
                let samples = series(&server, Served::Warm, settings.runs).await?;
                let mut measured = series_measured(
                    "warm",
                    &samples,
                    "sandbox_warm_median_ms",
                    "sandbox_warm_p95_ms",
                );
                if let Some(Value::Object(map)) = measured.details.get_mut("warm") {
                    map.insert("pool".into(), json!(WARM));
                }
                Ok(measured)
            })
            .await;
            // Let the refill after the last claim finish before stopping: the server
            // removes its pool at shutdown, but a member whose container is being created
            // when the shutdown comes is not yet known to the pool and is left running.
            if let Err(e) = server.wait_pool(WARM).await {
                eprintln!("bench: sandbox: {e:#}");
            }
            let warm = within("warm runs")(warm);
            if let Err(e) = &warm
                && let Some(why) = wrong_path(e)
            {
                outcome.failed_checks.push(why);
            }
            outcome.parts.push((warm_keys, warm));
            server.stop();
        }
        Err(e) => {
            outcome
                .parts
                .push((warm_keys, Err(anyhow!("warm server: {e:#}"))));
        }
    }

    // Nothing may be left: count by instance label, then remove what is.
    let mut left = 0usize;
    let mut counted = Ok(());
    for instance in &seen {
        match containers(instance) {
            Ok(ids) => {
                left += ids.len();
                remove(&ids);
            }
            Err(e) => counted = Err(e),
        }
    }
    instances(|all| all.retain(|i| !seen.contains(i)));
    eprintln!("bench: sandbox: {left} container(s) left behind by the sandbox servers");
    if left > 0 {
        outcome.failed_checks.push(format!(
            "{left} container(s) of the sandbox servers were left behind (removed by the bench)"
        ));
    }
    outcome.parts.push((
        left_keys,
        counted.map(|()| Measured {
            values: vec![("sandbox_left_containers", left as f64)],
            details: json!({ "left_behind": { "instances": seen } }),
        }),
    ));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_sandbox_urls() {
        assert_eq!(url_port("http://127.0.0.1:32768").unwrap(), 32768);
        assert_eq!(url_port("http://[::1]:8000/").unwrap(), 8000);
        assert!(url_port("http://localhost").is_err());
    }

    #[test]
    fn published_host_ports() {
        let ports = "127.0.0.1:32768->8000/tcp, [::1]:32769->8001/tcp";
        assert!(publishes(ports, 32768));
        assert!(publishes(ports, 32769));
        assert!(!publishes(ports, 8000));
        assert!(!publishes("8000/tcp", 8000));
    }

    #[test]
    fn a_wrong_path_is_found_under_context() {
        let err = anyhow::Error::from(WrongPath("served cold".into())).context("run 3");
        assert_eq!(wrong_path(&err).as_deref(), Some("served cold"));
        assert_eq!(wrong_path(&anyhow!("timed out")), None);
    }
}
