//! Git changes and diffs through the `git` command line: the one implementation behind the
//! agent server's `/api/git/*` routes (spec §3.18) and [`LocalWorkspace`]'s `git_changes` /
//! `git_diff`.
//!
//! The base a working tree is compared with is picked as the reference's display policy
//! does: the current branch's upstream (unless it is HEAD with a clean tree), else the fork
//! point with `origin`'s default branch, else that branch's tip, else (no remote) the fork
//! point with a local `main`/`master` that HEAD descends from, else HEAD, else — without
//! commits — the empty tree. Untracked files are additions; a rename is a deletion plus an
//! addition, as in the reference. Paths are read with `-z`, so names with spaces or non-ASCII
//! characters come out verbatim (the reference splits on whitespace and would fail on them).
//! Relative paths are resolved against the process's current directory, as the reference
//! does; [`LocalWorkspace`] passes absolute ones.
//!
//! Nothing here can pin its caller: filesystem work (path resolution, reading the file to
//! diff) runs through a [`Blocking`] runner (the server bounds it; [`SpawnBlocking`] is
//! tokio's blocking pool), the file to diff is only read if it is a regular file (a FIFO is
//! refused; the reference blocks forever on it), and git processes run at most
//! `processes` at once per [`Git`], each killed after its timeout (waiting included).
//!
//! [`LocalWorkspace`]: super::LocalWorkspace

use std::future::Future;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use oh_protocol::{GitChange, GitChangeStatus, GitDiff};
use serde::Serialize;
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::regular_file::{self, OpenError};

/// The hash of git's empty tree.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// Files larger than this are not diffed.
pub const MAX_DIFF_FILE_SIZE: u64 = 1024 * 1024;

/// How long one git command may take by default, waiting for its turn included.
pub const DEFAULT_GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Git processes running at once per [`Git`] by default.
pub const DEFAULT_GIT_PROCESSES: usize = 16;

/// A failure of the git helpers, as the reference classifies them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// The path is not in a git repository (the server's routes answer with an empty
    /// result).
    #[error("Not a git repository")]
    NotARepository,
    /// A git command failed, timed out or could not be started, or the path cannot be
    /// diffed; `message` is the reference's text (the server answers 400 with it).
    #[error("{message}")]
    Failed {
        /// The reference's text.
        message: String,
        /// The cause, when a process could not be run.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The [`Blocking`] runner refused or gave up on filesystem work.
    #[error(transparent)]
    Blocking(BlockingError),
}

impl GitError {
    fn failed(message: impl Into<String>) -> Self {
        Self::Failed {
            message: message.into(),
            source: None,
        }
    }
}

/// Why a [`Blocking`] runner did not return a value; the runner's own error inside.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BlockingError(pub Box<dyn std::error::Error + Send + Sync + 'static>);

impl BlockingError {
    /// The runner's error, to downcast to the type the runner put in.
    pub fn into_inner(self) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self.0
    }
}

/// Result of the git helpers.
pub type GitResult<T> = Result<T, GitError>;

/// Runs blocking filesystem work off the async threads.
pub trait Blocking: Send + Sync {
    /// Runs `op` on a thread where it may block, and returns its value.
    fn run<T, F>(&self, op: F) -> impl Future<Output = Result<T, BlockingError>> + Send
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static;
}

/// [`Blocking`] on tokio's blocking pool, unbounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpawnBlocking;

impl Blocking for SpawnBlocking {
    async fn run<T, F>(&self, op: F) -> Result<T, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        tokio::task::spawn_blocking(op)
            .await
            .map_err(|err| BlockingError(Box::new(err)))
    }
}

/// One commit of a log, with the fields of the reference's `GitCommit` in its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitCommit {
    /// Full hash.
    pub sha: String,
    /// Abbreviated hash.
    pub short_sha: String,
    /// First line of the message.
    pub subject: String,
    /// Author name.
    pub author: String,
    /// Author date, ISO 8601.
    pub timestamp: String,
}

/// A page of a log: at most the asked number of commits, and whether there are more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitLog {
    /// Newest first.
    pub commits: Vec<GitCommit>,
    /// True when older commits were left off.
    pub has_more: bool,
}

/// The git helpers, with their bounds: a [`Blocking`] runner for filesystem work, the
/// number of git processes run at once and the time one may take.
#[derive(Debug)]
pub struct Git<B = SpawnBlocking> {
    blocking: B,
    slots: Semaphore,
    timeout: Duration,
}

impl Default for Git<SpawnBlocking> {
    fn default() -> Self {
        Self::new(SpawnBlocking, DEFAULT_GIT_PROCESSES, DEFAULT_GIT_TIMEOUT)
    }
}

impl<B> Git<B> {
    /// Helpers running filesystem work through `blocking`, at most `processes` git
    /// processes at once, each killed after `timeout` (waiting for its turn included).
    pub const fn new(blocking: B, processes: usize, timeout: Duration) -> Self {
        Self {
            blocking,
            slots: Semaphore::const_new(processes),
            timeout,
        }
    }
}

impl<B: Blocking> Git<B> {
    /// The reference's `get_git_changes` for `dir` against `reference` (or the display
    /// policy's base): the directory's own changes, plus those of the repositories directly
    /// below it, sorted by path. [`GitError::NotARepository`] when there is no repository.
    pub async fn changes(&self, dir: &str, reference: Option<&str>) -> GitResult<Vec<GitChange>> {
        self.git_changes(dir, reference).await
    }

    /// Current content and content at the base (`reference`, or the display policy's) of
    /// one file (`get_git_diff`).
    pub async fn diff(&self, path: &str, reference: Option<&str>) -> GitResult<GitDiff> {
        self.file_diff(path, reference).await
    }

    /// One file as changed by one commit (`get_commit_file_diff`).
    pub async fn commit_diff(&self, path: &str, commit: &str) -> GitResult<GitDiff> {
        self.commit_file_diff(path, commit).await
    }

    /// The files changed by `commit` in the repository at `dir`, against its first parent
    /// (the empty tree for a root commit).
    pub async fn commit_changes(&self, dir: &str, commit: &str) -> GitResult<Vec<GitChange>> {
        // As the reference: any failure to validate the repository reads as none.
        let repo = self
            .validate_repository(dir)
            .await
            .map_err(|_| GitError::NotARepository)?;
        let sha = self.resolve_commit(&repo, commit).await?;
        let parent = self
            .rev_parse(&repo, &format!("{sha}^"))
            .await
            .unwrap_or_else(|| EMPTY_TREE.to_owned());
        let output = self
            .git_raw(
                &["--no-pager", "diff", "--name-status", "-z", &parent, &sha],
                &repo,
            )
            .await?;
        parse_name_status(&output)
    }

    /// At most `limit` commits reachable from HEAD of the repository at `dir`, newest first;
    /// an empty log when HEAD has no commit. [`GitError::NotARepository`] when there is no
    /// repository.
    pub async fn log(&self, dir: &str, limit: usize) -> GitResult<GitLog> {
        let empty = GitLog {
            commits: Vec::new(),
            has_more: false,
        };
        // As the reference: any failure to validate the repository reads as none.
        let repo = self
            .validate_repository(dir)
            .await
            .map_err(|_| GitError::NotARepository)?;
        let Some(head) = self.rev_parse(&repo, "HEAD").await else {
            return Ok(empty);
        };
        let count = limit.saturating_add(1).to_string();
        let log = self
            .git(
                &[
                    "--no-pager",
                    "log",
                    "--no-show-signature",
                    "--format=%H%x1f%h%x1f%an%x1f%aI%x1f%s",
                    "-n",
                    &count,
                    &head,
                ],
                &repo,
            )
            .await?;
        let mut commits: Vec<GitCommit> = log
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split('\u{1f}').collect();
                match fields.as_slice() {
                    [sha, short_sha, author, timestamp, subject] => Some(GitCommit {
                        sha: (*sha).to_owned(),
                        short_sha: (*short_sha).to_owned(),
                        subject: (*subject).to_owned(),
                        author: (*author).to_owned(),
                        timestamp: (*timestamp).to_owned(),
                    }),
                    _ => None,
                }
            })
            .collect();
        let has_more = commits.len() > limit;
        commits.truncate(limit);
        Ok(GitLog { commits, has_more })
    }

    /// Runs filesystem work through the runner.
    async fn fs_work<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> T + Send + 'static,
    ) -> GitResult<T> {
        self.blocking.run(op).await.map_err(GitError::Blocking)
    }

    /// Runs `git <args>` in `cwd`, returning its raw standard output.
    async fn git_raw(&self, args: &[&str], cwd: &Path) -> GitResult<Vec<u8>> {
        let shown = std::iter::once("git")
            .chain(args.iter().copied())
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ");
        let mut command = Command::new("git");
        command
            .args(args)
            .current_dir(cwd)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A timed-out command's future is dropped, and the process killed with it.
            .kill_on_drop(true);
        let run = async {
            let _slot = self.slots.acquire().await;
            Ok(command.spawn()?.wait_with_output().await)
        };
        let outcome: Result<std::io::Result<std::io::Result<std::process::Output>>, _> =
            tokio::time::timeout(self.timeout, run).await;
        match outcome {
            Err(_) => Err(GitError::failed(format!("Git command timed out: {shown}"))),
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::NotFound && cwd.is_dir() => {
                Err(GitError::Failed {
                    message: "Git command not found. Is git installed?".to_owned(),
                    source: Some(err),
                })
            }
            Ok(Err(err) | Ok(Err(err))) => Err(GitError::Failed {
                message: format!("Git command failed: {shown}"),
                source: Some(err),
            }),
            Ok(Ok(Ok(output))) if !output.status.success() => {
                tracing::debug!(
                    command = %shown,
                    stderr = %String::from_utf8_lossy(&output.stderr).trim(),
                    "git command failed"
                );
                Err(GitError::failed(format!("Git command failed: {shown}")))
            }
            Ok(Ok(Ok(output))) => Ok(output.stdout),
        }
    }

    /// `git <args>` as text, stripped (the reference's `run_git_command`).
    async fn git(&self, args: &[&str], cwd: &Path) -> GitResult<String> {
        Ok(text(&self.git_raw(args, cwd).await?).trim().to_owned())
    }

    /// `git rev-parse --verify <rev>`, or `None`.
    async fn rev_parse(&self, repo: &Path, rev: &str) -> Option<String> {
        self.git(&["--no-pager", "rev-parse", "--verify", rev], repo)
            .await
            .ok()
            .filter(|sha| !sha.is_empty())
    }

    /// The reference's `validate_git_repository`: a resolved directory where git works.
    async fn validate_repository(&self, dir: &str) -> GitResult<PathBuf> {
        let dir = dir.to_owned();
        let repo = self
            .fs_work(move || {
                let repo = resolve(&dir);
                repo.is_dir().then_some(repo)
            })
            .await?
            .ok_or(GitError::NotARepository)?;
        self.git(&["rev-parse", "--git-dir"], &repo)
            .await
            .map_err(|_| GitError::NotARepository)?;
        Ok(repo)
    }

    /// The base to compare with: `ref` (HEAD without commits is the empty tree), else the
    /// display policy described in the module docs.
    async fn base_ref(&self, repo: &Path, override_ref: Option<&str>) -> GitResult<String> {
        if let Some(reference) = override_ref {
            let spec = format!("{reference}^{{commit}}");
            return match self
                .git(&["--no-pager", "rev-parse", "--verify", &spec], repo)
                .await
            {
                Ok(sha) => Ok(sha),
                Err(_) if reference == "HEAD" => Ok(EMPTY_TREE.to_owned()),
                Err(err) => Err(err),
            };
        }
        let count = self
            .git(&["--no-pager", "rev-list", "--count", "--all"], repo)
            .await;
        if count.as_deref().is_ok_and(|count| count.trim() == "0") || count.is_err() {
            return Ok(EMPTY_TREE.to_owned());
        }
        let head = self.rev_parse(repo, "HEAD").await;
        let branch = self
            .git(&["--no-pager", "rev-parse", "--abbrev-ref", "HEAD"], repo)
            .await
            .ok()
            .filter(|branch| !branch.is_empty() && branch != "HEAD");
        if let Some(branch) = &branch
            && let Some(upstream) = self.rev_parse(repo, &format!("origin/{branch}")).await
        {
            let clean = upstream.as_str() == head.as_deref().unwrap_or_default()
                && self
                    .git(
                        &[
                            "--no-pager",
                            "status",
                            "--porcelain",
                            "--untracked-files=no",
                        ],
                        repo,
                    )
                    .await
                    .is_ok_and(|status| status.trim().is_empty());
            if !clean {
                return Ok(upstream);
            }
        }
        match self.remote_default_branch(repo).await {
            Some(default) => {
                let remote = format!("origin/{default}");
                if let Ok(base) = self
                    .git(&["--no-pager", "merge-base", "HEAD", &remote], repo)
                    .await
                    && !base.is_empty()
                {
                    return Ok(base);
                }
                if let Some(tip) = self.rev_parse(repo, &remote).await {
                    return Ok(tip);
                }
            }
            None => {
                for local in ["main", "master"] {
                    if let Some(local_sha) = self.rev_parse(repo, local).await {
                        if branch.as_deref() != Some(local)
                            && let Ok(base) = self
                                .git(&["--no-pager", "merge-base", "HEAD", local], repo)
                                .await
                            && base == local_sha
                        {
                            return Ok(base);
                        }
                        break;
                    }
                }
            }
        }
        Ok(head.unwrap_or_else(|| EMPTY_TREE.to_owned()))
    }

    /// `origin`'s default branch: from `origin/HEAD`, else from `git remote show origin`.
    async fn remote_default_branch(&self, repo: &Path) -> Option<String> {
        if let Ok(symref) = self
            .git(
                &["--no-pager", "rev-parse", "--abbrev-ref", "origin/HEAD"],
                repo,
            )
            .await
            && let Some(name) = symref.strip_prefix("origin/")
            && !name.is_empty()
        {
            return Some(name.to_owned());
        }
        let info = self
            .git(&["--no-pager", "remote", "show", "origin"], repo)
            .await
            .ok()?;
        let line = info.lines().find(|line| line.contains("HEAD branch:"))?;
        let name = line.rsplit(':').next()?.trim();
        (!name.is_empty() && name != "(unknown)").then(|| name.to_owned())
    }

    /// Changes under `dir` (a repository or a directory inside one), relative to it.
    async fn changes_in_repo(
        &self,
        dir: &str,
        reference: Option<&str>,
    ) -> GitResult<Vec<GitChange>> {
        let repo = self.validate_repository(dir).await?;
        let base = self.base_ref(&repo, reference).await?;
        let diff = self
            .git_raw(
                &[
                    "--no-pager",
                    "diff",
                    "--name-status",
                    "--relative",
                    "-z",
                    &base,
                ],
                &repo,
            )
            .await?;
        let mut changes = parse_name_status(&diff)?;
        match self
            .git_raw(
                &[
                    "--no-pager",
                    "ls-files",
                    "--others",
                    "--exclude-standard",
                    "-z",
                ],
                &repo,
            )
            .await
        {
            Ok(untracked) => {
                for path in untracked.split(|b| *b == 0).filter(|p| !p.is_empty()) {
                    changes.push(GitChange {
                        status: GitChangeStatus::Added,
                        path: posix(&String::from_utf8_lossy(path)),
                    });
                }
            }
            Err(_) => tracing::debug!(repo = %repo.display(), "could not list untracked files"),
        }
        Ok(changes)
    }

    /// The reference's `get_git_changes`: the directory's own changes, plus those of the
    /// repositories directly below it (`<dir>/<name>/.git`), prefixed with their directory.
    async fn git_changes(&self, dir: &str, reference: Option<&str>) -> GitResult<Vec<GitChange>> {
        let owned = dir.to_owned();
        let (root, nested) = self
            .fs_work(move || {
                let root = resolve(&owned);
                let mut nested: Vec<String> = Vec::new();
                if let Ok(entries) = std::fs::read_dir(&root) {
                    for entry in entries.flatten() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if !name.starts_with('.')
                            && entry.path().join(".git").symlink_metadata().is_ok()
                        {
                            nested.push(name);
                        }
                    }
                }
                (root, nested)
            })
            .await?;
        let (mut changes, base_missing) = match self.changes_in_repo(dir, reference).await {
            Ok(changes) => (changes, false),
            Err(GitError::NotARepository) if !nested.is_empty() => (Vec::new(), true),
            Err(err) => return Err(err),
        };
        changes.retain(|change| {
            !nested
                .iter()
                .any(|n| Path::new(&change.path).starts_with(n))
        });
        let mut found_nested = false;
        for name in &nested {
            let sub = root.join(name);
            let Ok(sub_changes) = self
                .changes_in_repo(&sub.to_string_lossy(), reference)
                .await
            else {
                tracing::warn!(dir = %name, "skipping a nested directory that is not a valid repository");
                continue;
            };
            found_nested = true;
            changes.extend(sub_changes.into_iter().map(|change| GitChange {
                status: change.status,
                path: format!("{name}/{}", change.path),
            }));
        }
        if base_missing && !found_nested {
            return Err(GitError::NotARepository);
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// Current content and content at the base of one file (`get_git_diff`).
    async fn file_diff(&self, path: &str, reference: Option<&str>) -> GitResult<GitDiff> {
        let owned = path.to_owned();
        let (file, repo_dir, deleted) = self.fs_work(move || locate_diffed_file(&owned)).await??;
        let repo = self
            .validate_repository(&repo_dir.to_string_lossy())
            .await?;
        let base = self.base_ref(&repo, reference).await?;
        let relative = file.strip_prefix(&repo).map_err(|_| {
            GitError::failed(format!(
                "File is not within git repository: {}",
                file.display()
            ))
        })?;
        let spec = format!("{base}:{}", py_relative(relative));
        if deleted {
            // Gone from disk: diffable only if the base has it, as a blob of bounded size.
            let missing = || GitError::failed(format!("File does not exist: {}", file.display()));
            match self.git(&["cat-file", "-t", &spec], &repo).await {
                Ok(kind) if kind == "blob" => {}
                _ => return Err(missing()),
            }
            let size = self
                .git(&["cat-file", "-s", &spec], &repo)
                .await
                .ok()
                .and_then(|size| size.parse::<u64>().ok())
                .ok_or_else(missing)?;
            if size > MAX_DIFF_FILE_SIZE {
                return Err(GitError::failed(format!(
                    "File too large for git diff: {size} bytes (max: {MAX_DIFF_FILE_SIZE} bytes)"
                )));
            }
        }
        let original = match self.git_raw(&["show", &spec], &repo).await {
            Ok(bytes) => normalize_lines(&text(&bytes)),
            Err(_) => String::new(),
        };
        let modified = if deleted {
            String::new()
        } else {
            self.fs_work(move || read_diffed_file(&file)).await??
        };
        Ok(GitDiff {
            modified: Some(modified),
            original: Some(original),
        })
    }

    /// `<commit>^{commit}` resolved to a full hash (400 when it does not name a commit).
    async fn resolve_commit(&self, repo: &Path, commit: &str) -> GitResult<String> {
        let spec = format!("{commit}^{{commit}}");
        self.git(&["--no-pager", "rev-parse", "--verify", &spec], repo)
            .await
    }

    /// A file at `rev` (stripped, as the reference reads it), or `""` when absent there.
    async fn file_at(&self, repo: &Path, rev: &str, relative: &Path) -> GitResult<String> {
        let spec = format!("{rev}:{}", py_relative(relative));
        let Ok(size) = self
            .git(&["--no-pager", "cat-file", "-s", &spec], repo)
            .await
        else {
            return Ok(String::new());
        };
        let size = size.parse::<u64>().unwrap_or(0);
        if size > MAX_DIFF_FILE_SIZE {
            return Err(GitError::failed(format!(
                "File too large for git diff: {size} bytes (max: {MAX_DIFF_FILE_SIZE} bytes)"
            )));
        }
        Ok(self
            .git(&["--no-pager", "show", &spec], repo)
            .await
            .unwrap_or_default())
    }

    /// One file as changed by one commit (`get_commit_file_diff`).
    async fn commit_file_diff(&self, path: &str, commit: &str) -> GitResult<GitDiff> {
        let owned = path.to_owned();
        let (file, repo_dir) = self
            .fs_work(move || {
                let file = resolve(&owned);
                let repo_dir = closest_repository(&file);
                (file, repo_dir)
            })
            .await?;
        let repo_dir = repo_dir.ok_or(GitError::NotARepository)?;
        let repo = self
            .validate_repository(&repo_dir.to_string_lossy())
            .await?;
        let sha = self.resolve_commit(&repo, commit).await?;
        let parent = self
            .rev_parse(&repo, &format!("{sha}^"))
            .await
            .unwrap_or_else(|| EMPTY_TREE.to_owned());
        let relative = file.strip_prefix(&repo).map_err(|_| {
            GitError::failed(format!(
                "File is not within git repository: {}",
                file.display()
            ))
        })?;
        let original = self.file_at(&repo, &parent, relative).await?;
        let modified = self.file_at(&repo, &sha, relative).await?;
        Ok(GitDiff {
            modified: Some(modified),
            original: Some(original),
        })
    }
}

/// Python's `shlex.quote`.
fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if safe {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\"'\"'"))
    }
}

/// Python's text mode: lossy UTF-8 with universal newlines (`\r\n` and `\r` become `\n`).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace("\r\n", "\n")
        .replace('\r', "\n")
}

/// Python's `str.splitlines()` joined with `\n`: line breaks normalized, a final one dropped.
fn normalize_lines(content: &str) -> String {
    let mut lines: Vec<&str> = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        match rest.char_indices().find(|(_, c)| {
            matches!(
                c,
                '\n' | '\r'
                    | '\u{0b}'
                    | '\u{0c}'
                    | '\u{1c}'
                    | '\u{1d}'
                    | '\u{1e}'
                    | '\u{85}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
        }) {
            Some((at, c)) => {
                lines.push(&rest[..at]);
                let mut next = at + c.len_utf8();
                if c == '\r' && rest[next..].starts_with('\n') {
                    next += 1;
                }
                rest = &rest[next..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines.join("\n")
}

/// `Path(os.getcwd(), path).resolve()`: absolute, symlinks resolved where the path exists,
/// `.`/`..` folded lexically beyond that.
fn resolve(path: &str) -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let joined = cwd.join(path);
    if let Ok(real) = std::fs::canonicalize(&joined) {
        return real;
    }
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    // Resolve the longest existing ancestor.
    let mut existing = out.clone();
    let mut tail = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(ToOwned::to_owned),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                tail.push(name);
                existing = parent.to_owned();
            }
            _ => return out,
        }
    }
    let mut real = std::fs::canonicalize(&existing).unwrap_or(existing);
    for name in tail.iter().rev() {
        real.push(name);
    }
    real
}

/// A POSIX path as Python's `Path` prints it (no `.` components or trailing slash).
fn posix(path: &str) -> String {
    let parts: Vec<String> = Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect();
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

/// Parses `git diff --name-status -z`: renames are a deletion and an addition, copies an
/// addition of the new path.
fn parse_name_status(output: &[u8]) -> GitResult<Vec<GitChange>> {
    let mut tokens = output
        .split(|b| *b == 0)
        .map(|token| String::from_utf8_lossy(token).into_owned());
    let mut changes = Vec::new();
    let change = |status, path: &str| GitChange {
        status,
        path: posix(path),
    };
    while let Some(status) = tokens.next() {
        if status.is_empty() {
            continue;
        }
        let mut path = || {
            tokens
                .next()
                .filter(|path| !path.is_empty())
                .ok_or_else(|| {
                    GitError::failed(format!("Unexpected git diff output format: {status}"))
                })
        };
        match status.chars().next() {
            Some('R') => {
                let old = path()?;
                let new = path()?;
                changes.push(change(GitChangeStatus::Deleted, &old));
                changes.push(change(GitChangeStatus::Added, &new));
            }
            Some('C') => {
                let _old = path()?;
                changes.push(change(GitChangeStatus::Added, &path()?));
            }
            _ => {
                let file = path()?;
                let kind = match status.as_str() {
                    "M" | "U" | "T" => GitChangeStatus::Updated,
                    "A" => GitChangeStatus::Added,
                    "D" => GitChangeStatus::Deleted,
                    other => {
                        return Err(GitError::failed(format!("Unexpected git status: {other}")));
                    }
                };
                changes.push(change(kind, &file));
            }
        }
    }
    Ok(changes)
}

/// A relative path as Python prints it (`.` when empty).
fn py_relative(relative: &Path) -> String {
    if relative.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        relative.to_string_lossy().into_owned()
    }
}

/// The closest directory at or above `path` holding `.git`.
fn closest_repository(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_owned)
}

/// The file to diff, resolved, the closest repository above it and whether the file is gone
/// from disk (a working-tree deletion, diffed against its base text if it has one); the
/// reference's checks, in its order. FIFOs, sockets and devices are refused (the reference
/// blocks on them).
fn locate_diffed_file(path: &str) -> GitResult<(PathBuf, PathBuf, bool)> {
    let file = resolve(path);
    let missing = || GitError::failed(format!("File does not exist: {}", file.display()));
    let meta = match std::fs::metadata(&file) {
        Ok(meta) => Some(meta),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) || err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) =>
        {
            None
        }
        Err(_) => {
            return Err(GitError::failed(format!(
                "Cannot access file: {}",
                file.display()
            )));
        }
    };
    if let Some(meta) = &meta
        && meta.len() > MAX_DIFF_FILE_SIZE
    {
        return Err(GitError::failed(format!(
            "File too large for git diff: {} bytes (max: {MAX_DIFF_FILE_SIZE} bytes)",
            meta.len()
        )));
    }
    let Some(repo_dir) = closest_repository(&file) else {
        return Err(if meta.is_none() {
            missing()
        } else {
            GitError::NotARepository
        });
    };
    if let Some(meta) = &meta
        && !meta.is_file()
        && !meta.is_dir()
    {
        return Err(not_regular(&file));
    }
    Ok((file, repo_dir, meta.is_none()))
}

fn not_regular(file: &Path) -> GitError {
    GitError::failed(format!("Path is not a regular file: {}", file.display()))
}

/// The current content of a diffed file: `""` when it cannot be read or is not UTF-8, as
/// in the reference (a directory reads as `""` too); only a regular file is opened.
fn read_diffed_file(file: &Path) -> GitResult<String> {
    match regular_file::read(file) {
        Ok(bytes) => Ok(String::from_utf8(bytes)
            .map(|content| normalize_lines(&content))
            .unwrap_or_default()),
        Err(OpenError::NotRegular) if !file.is_dir() => Err(not_regular(file)),
        Err(_) => Ok(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_lines_match_python() {
        assert_eq!(shell_quote("HEAD"), "HEAD");
        assert_eq!(shell_quote("x^{commit}"), "'x^{commit}'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(normalize_lines("a\r\nb\rc\n\nd\n"), "a\nb\nc\n\nd");
        assert_eq!(normalize_lines("x\u{2028}y\u{0c}"), "x\ny");
        assert_eq!(normalize_lines(""), "");
        assert_eq!(posix("a/./b/"), "a/b");
    }

    #[test]
    fn name_status_parses_renames_and_copies() {
        let out = b"M\0a b.txt\0R087\0old.txt\0new.txt\0C100\0x\0y\0D\0gone\0";
        let changes = parse_name_status(out).map_err(|e| format!("{e:?}"));
        let expected = vec![
            GitChange {
                status: GitChangeStatus::Updated,
                path: "a b.txt".into(),
            },
            GitChange {
                status: GitChangeStatus::Deleted,
                path: "old.txt".into(),
            },
            GitChange {
                status: GitChangeStatus::Added,
                path: "new.txt".into(),
            },
            GitChange {
                status: GitChangeStatus::Added,
                path: "y".into(),
            },
            GitChange {
                status: GitChangeStatus::Deleted,
                path: "gone".into(),
            },
        ];
        assert_eq!(changes, Ok(expected));
        assert!(parse_name_status(b"X\0f\0").is_err());
    }
}
