//! Starting, watching and stopping the two servers: ours (the release binary)
//! and the Python reference (through `xtask/pyenv.sh server`, in its chroot).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

use super::client::Http;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Our Rust server.
    Ours,
    /// The Python reference server.
    Python,
}

impl Kind {
    /// `ours` / `python`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Python => "python",
        }
    }
}

/// How to start either server.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Our server binary.
    pub(crate) ours_bin: PathBuf,
    /// `xtask/pyenv.sh`.
    pub(crate) pyenv: PathBuf,
    /// The chroot of the Python environment.
    pub(crate) pyroot: PathBuf,
    /// The session API key both servers get.
    pub(crate) key: String,
    /// Where server logs go.
    pub(crate) log_dir: PathBuf,
    /// Extra environment for the server.
    pub(crate) env: Vec<(String, String)>,
}

/// The secret key both servers get (`OH_SECRET_KEY`). Fixed, not the random session key:
/// the reference (1.58.2 with cryptography 51) derives its Fernet key as the standard base64
/// of the key's SHA-256 and Fernet refuses a `+` or `/` in it, so about three random keys in
/// four made every conversation it saves (with an LLM key to encrypt) answer 500. This
/// key's derived key has neither (a test checks it).
pub(crate) const SECRET_KEY: &str = "xtask-secret-key-0";

/// A scratch directory, as the bench (host) and as the server see it: the
/// Python server runs in a chroot, so its paths differ from the host's.
#[derive(Debug, Clone)]
pub(crate) struct Scratch {
    host: PathBuf,
    server: PathBuf,
}

impl Scratch {
    /// The scratch directory of `kind` for this bench run (created empty).
    pub(crate) fn new(kind: Kind, launch: &Launch) -> Result<Self> {
        let name = format!("oh-bench-{}-{}", std::process::id(), kind.name());
        let (host, server) = match kind {
            Kind::Ours => {
                let dir = std::env::temp_dir().join(name);
                (dir.clone(), dir)
            }
            Kind::Python => {
                let server = Path::new("/tmp").join(name);
                let host = launch
                    .pyroot
                    .join(server.strip_prefix("/").unwrap_or(&server));
                (host, server)
            }
        };
        if host.exists() {
            fs::remove_dir_all(&host)?;
        }
        fs::create_dir_all(&host).with_context(|| format!("creating {}", host.display()))?;
        scratch_dirs(|dirs| dirs.push(host.clone()));
        Ok(Self { host, server })
    }

    /// `rel` as seen by the bench.
    pub(crate) fn host(&self, rel: &str) -> PathBuf {
        self.host.join(rel)
    }

    /// `rel` as seen by the server.
    pub(crate) fn server(&self, rel: &str) -> String {
        self.server.join(rel).to_string_lossy().into_owned()
    }

    /// Empties `rel` (host side) and creates it again.
    pub(crate) fn reset(&self, rel: &str) -> Result<()> {
        let dir = self.host(rel);
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(())
    }

    /// Removes the whole scratch directory.
    pub(crate) fn remove(&self) {
        let _ = fs::remove_dir_all(&self.host);
        scratch_dirs(|dirs| dirs.retain(|dir| *dir != self.host));
    }
}

/// A started server.
#[derive(Debug)]
pub(crate) struct Running {
    child: Child,
    /// The pid of the server process itself (the python process for Python).
    pub(crate) pid: u32,
    pub(crate) http: Http,
    /// From spawn until `/ready` answered 200.
    pub(crate) ready_after: Duration,
    log: PathBuf,
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Starts `kind` with conversations in `scratch`'s `conversations`, and waits
/// until `/ready` answers 200 (polling every millisecond).
pub(crate) async fn start(
    kind: Kind,
    launch: &Launch,
    scratch: &Scratch,
    tag: &str,
) -> Result<Running> {
    let port = free_port()?;
    fs::create_dir_all(&launch.log_dir)?;
    let log = launch.log_dir.join(format!("{}-{tag}.log", kind.name()));
    let out = fs::File::create(&log)?;
    let err = out.try_clone()?;
    let mut cmd = match kind {
        Kind::Ours => {
            let mut cmd = Command::new(&launch.ours_bin);
            cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .current_dir(scratch.host(""));
            cmd
        }
        Kind::Python => {
            // pyenv.sh re-executes itself in a private mount namespace after an
            // (untimed, done once beforehand) `setup`; do that step directly.
            let mut cmd = Command::new("unshare");
            cmd.args(["--mount", "--propagation", "private", "--", "bash"])
                .arg(&launch.pyenv)
                .args(["server", &port.to_string(), &launch.key])
                .env("PYREF_PRIVATE_NS", "1");
            cmd
        }
    };
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("OH_") || name.starts_with("SESSION_API_KEY") {
            cmd.env_remove(name.as_ref());
        }
    }
    cmd.env("SESSION_API_KEY", &launch.key)
        .env("OH_SECRET_KEY", SECRET_KEY)
        .env("OH_CONVERSATIONS_PATH", scratch.server("conversations"))
        .env("OH_BASH_EVENTS_DIR", scratch.server("bash_events"))
        .env("OH_PERSISTENCE_DIR", scratch.server("persistence"))
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let spawned = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", cmd.get_program().to_string_lossy()))?;
    live(|groups| groups.push(child.id()));
    let http = Http::new(port, &launch.key);
    let pid = child.id();
    let mut running = Running {
        child,
        pid,
        http,
        ready_after: Duration::ZERO,
        log,
    };
    let limit = match kind {
        Kind::Ours => Duration::from_secs(20),
        Kind::Python => Duration::from_secs(120),
    };
    let ready = {
        let child = &mut running.child;
        let log = &running.log;
        running
            .http
            .wait_ready(limit, Duration::from_millis(1), || match child.try_wait() {
                Ok(Some(status)) => Err(anyhow!(
                    "exited ({status}) before it was ready; log {}:\n{}",
                    log.display(),
                    tail(log)
                )),
                _ => Ok(()),
            })
            .await
    };
    match ready {
        Ok(at) => running.ready_after = at - spawned,
        Err(err) => {
            running.stop();
            return Err(err);
        }
    }
    if kind == Kind::Python {
        running.pid = find_python(running.pid)
            .ok_or_else(|| anyhow!("no python process under pid {}", running.pid))?;
    }
    Ok(running)
}

/// The last lines of a log file.
pub(crate) fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Running {
    /// The server's resident set size in MiB (`VmRSS`).
    pub(crate) fn rss_mib(&self) -> Result<f64> {
        rss_kib(self.pid).map(|kib| kib as f64 / 1024.0)
    }

    /// Stops the server: SIGTERM to its process group, SIGKILL after 10 s,
    /// then SIGKILL to any of its descendants that left the group.
    pub(crate) fn stop(&mut self) {
        let root = self.child.id();
        let tree = descendants(root);
        signal(&format!("-{root}"), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal(&format!("-{root}"), "KILL");
        let _ = self.child.wait();
        live(|groups| groups.retain(|g| *g != root));
        for pid in tree {
            if Path::new(&format!("/proc/{pid}")).exists() {
                signal(&pid.to_string(), "KILL");
            }
        }
    }
}

impl Running {
    /// SIGTERM to the server process alone (not its group: its children are its business),
    /// then how long until it exited; `None` if it still runs after `limit` (it is then
    /// stopped as by [`Running::stop`]).
    pub(crate) fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        signal(&self.child.id().to_string(), "TERM");
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                let took = start.elapsed();
                self.stop();
                return Some(took);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        self.stop();
        None
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Process groups of the servers running now, for [`kill_all`].
static LIVE: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

pub(crate) fn live<T>(f: impl FnOnce(&mut Vec<u32>) -> T) -> T {
    f(&mut LIVE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Set once [`kill_all`] started: the results are incomplete, nothing is reported.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the bench was interrupted.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Scratch directories not removed yet, for [`kill_all`].
static SCRATCH: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

pub(crate) fn scratch_dirs<T>(f: impl FnOnce(&mut Vec<PathBuf>) -> T) -> T {
    f(&mut SCRATCH
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// Stops every server still running and removes the scratch directories (the
/// bench is interrupted): the servers run in process groups of their own, so a
/// Ctrl-C does not reach them.
pub(crate) fn kill_all() {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    let groups = live(std::mem::take);
    for group in &groups {
        signal(&format!("-{group}"), "TERM");
    }
    if !groups.is_empty() {
        std::thread::sleep(Duration::from_secs(1));
    }
    for group in &groups {
        signal(&format!("-{group}"), "KILL");
    }
    for dir in scratch_dirs(std::mem::take) {
        let _ = fs::remove_dir_all(dir);
    }
}

/// `kill -SIG -- target` (a pid, or `-pgid` for a process group).
pub(crate) fn signal(target: &str, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), "--", target])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `VmRSS` of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in /proc/{pid}/status"))
}

/// The parent pid of a process.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `root` and all its descendants, parents first.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut all: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok())
                && let Some(ppid) = parent_of(pid)
            {
                all.push((pid, ppid));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(all.iter().filter(|(_, p)| *p == parent).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// The python process running the agent server, in `root`'s tree.
fn find_python(root: u32) -> Option<u32> {
    descendants(root).into_iter().find(|pid| {
        fs::read(format!("/proc/{pid}/cmdline"))
            .map(|cmdline| {
                let text = String::from_utf8_lossy(&cmdline);
                text.contains("python") && text.contains("openhands.agent_server")
            })
            .unwrap_or(false)
    })
}

/// Median time of `unshare --mount … chroot ROOT /bin/true`: the part of the
/// Python server's start that is this environment's, not the server's.
pub(crate) fn chroot_overhead(pyroot: &Path) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let status = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "chroot"])
            .arg(pyroot)
            .arg("/bin/true")
            .status()?;
        if !status.success() {
            bail!("unshare + chroot failed ({status})");
        }
        times.push(start.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use sha2::Digest as _;

    #[test]
    fn the_secret_key_derives_a_url_safe_fernet_key() {
        let derived = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(super::SECRET_KEY.as_bytes()));
        assert!(
            !derived.contains(['+', '/']),
            "{derived}: the reference's Fernet would refuse it"
        );
    }
}
