//! Bringing a plugin or marketplace source onto this machine: a local directory is used in
//! place, a git repository is cloned into the cache (one directory per commit, so a cached
//! checkout never changes under a reader).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::PluginError;

/// How long one git command may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Where a source lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// A directory on this machine (`~` expanded later).
    Local(String),
    /// A git URL to clone; `subpath` from a `github:owner/repo/sub` shorthand.
    Git {
        url: String,
        subpath: Option<String>,
    },
}

fn parse_error(source: &str) -> PluginError {
    PluginError::Fetch(format!(
        "Unable to parse plugin source: {source}. Expected formats: 'github:owner/repo', git URL, or local path"
    ))
}

/// Classifies `source` as the reference does: the `github:` shorthand, a git URL (by its
/// scheme, or `user@host:`), else a local path.
pub(crate) fn parse_source(source: &str) -> Result<Source, PluginError> {
    let source = source.trim();
    if let Some(rest) = source.strip_prefix("github:") {
        let (owner, rest) = rest.split_once('/').unwrap_or((rest, ""));
        let (repo, sub) = rest.split_once('/').unwrap_or((rest, ""));
        if owner.is_empty() || repo.is_empty() {
            return Err(PluginError::Fetch(format!(
                "Invalid GitHub shorthand format: {source}. Expected format: github:owner/repo[/path]"
            )));
        }
        let sub = sub.trim_matches('/');
        return Ok(Source::Git {
            url: format!("https://github.com/{owner}/{repo}.git"),
            subpath: (!sub.is_empty()).then(|| sub.to_owned()),
        });
    }
    if is_git_url(source) {
        let url = if source.starts_with("https://") || source.starts_with("http://") {
            let trimmed = source.trim_end_matches('/');
            if trimmed.ends_with(".git") || trimmed.contains("/_git/") {
                trimmed.to_owned()
            } else {
                format!("{trimmed}.git")
            }
        } else {
            source.to_owned()
        };
        return Ok(Source::Git { url, subpath: None });
    }
    if source.is_empty() {
        return Err(parse_error(source));
    }
    if source.starts_with(['~', '.', '/']) || (source.contains('/') && !source.contains("://")) {
        return Ok(Source::Local(source.to_owned()));
    }
    Err(parse_error(source))
}

fn is_git_url(source: &str) -> bool {
    if ["https://", "http://", "git://", "file://"]
        .iter()
        .any(|p| source.starts_with(p))
    {
        return true;
    }
    // `user@host:path`
    let Some((user, rest)) = source.split_once('@') else {
        return false;
    };
    let Some((host, _)) = rest.split_once(':') else {
        return false;
    };
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
    };
    word(user) && word(host)
}

/// `url` with any `user:password@` replaced by `****@`, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}****{}", &url[..scheme_end + 3], &rest[at..]),
        None => url.to_owned(),
    }
}

/// A fetched source: its directory and, for git, the commit checked out.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) path: PathBuf,
    pub(crate) resolved_ref: Option<String>,
}

/// Fetches `source` (at `git_ref` for git), then descends into `repo_path`.
pub(crate) async fn fetch(
    source: &str,
    git_ref: Option<&str>,
    repo_path: Option<&str>,
    cache_dir: &Path,
) -> Result<Fetched, PluginError> {
    match parse_source(source)? {
        Source::Local(path) => {
            let expanded = match path.strip_prefix('~') {
                Some(rest) => match std::env::var_os("HOME") {
                    Some(home) => PathBuf::from(home).join(rest.trim_start_matches('/')),
                    None => PathBuf::from(&path),
                },
                None => PathBuf::from(&path),
            };
            let resolved = std::fs::canonicalize(&expanded).map_err(|_| {
                PluginError::Fetch(format!(
                    "Local plugin path does not exist: {}",
                    expanded.display()
                ))
            })?;
            let path = apply_subpath(&resolved, repo_path, &format!("local source '{source}'"))?;
            Ok(Fetched {
                path,
                resolved_ref: None,
            })
        }
        Source::Git { url, subpath } => {
            let repo_path = match (subpath, repo_path) {
                (Some(_), Some(_)) => {
                    return Err(PluginError::Fetch(format!(
                        "GitHub shorthand {source} already names a subdirectory; do not also pass repo_path"
                    )));
                }
                (Some(sub), None) => Some(sub),
                (None, given) => given.map(str::to_owned),
            };
            let (root, commit) = clone(&url, git_ref, cache_dir).await.map_err(|reason| {
                tracing::info!(source = %redact(source), %reason, "plugin fetch failed");
                PluginError::Fetch(format!(
                    "Failed to fetch plugin from {}: {reason}",
                    redact(source)
                ))
            })?;
            let path = apply_subpath(&root, repo_path.as_deref(), "plugin repository")?;
            Ok(Fetched {
                path,
                resolved_ref: Some(commit),
            })
        }
    }
}

fn apply_subpath(
    base: &Path,
    subpath: Option<&str>,
    context: &str,
) -> Result<PathBuf, PluginError> {
    let Some(subpath) = subpath else {
        return Ok(base.to_owned());
    };
    let candidate = base.join(subpath.trim_matches('/'));
    let Ok(resolved) = std::fs::canonicalize(&candidate) else {
        return Err(PluginError::Fetch(format!(
            "Subdirectory '{subpath}' not found in {context}"
        )));
    };
    let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
    if !resolved.starts_with(&base) {
        return Err(PluginError::Fetch(format!(
            "Subdirectory '{subpath}' escapes {context}"
        )));
    }
    Ok(resolved)
}

/// The cache entry name of a URL: a readable name and a hash of the URL.
fn cache_name(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("repo")
        .trim_end_matches(".git");
    let readable: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(32)
        .collect();
    let hash = Sha256::digest(url.as_bytes());
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{hex}",
        if readable.is_empty() {
            "repo"
        } else {
            &readable
        }
    )
}

/// Clones `url` (at `git_ref`) into a fresh directory of the cache and moves it to a name
/// that includes the commit; returns that directory and the commit.
async fn clone(
    url: &str,
    git_ref: Option<&str>,
    cache_dir: &Path,
) -> Result<(PathBuf, String), String> {
    tokio::fs::create_dir_all(cache_dir).await.map_err(|e| {
        format!(
            "cannot create the plugin cache {}: {e}",
            cache_dir.display()
        )
    })?;
    let base = cache_name(url);
    let tmp = cache_dir.join(format!(".tmp-{base}-{}", uuid::Uuid::new_v4().simple()));
    let result = clone_into(url, git_ref, &tmp).await;
    let commit = match result {
        Ok(commit) => commit,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(e);
        }
    };
    let target = cache_dir.join(format!("{base}-{}", &commit[..commit.len().min(12)]));
    if tokio::fs::rename(&tmp, &target).await.is_err() {
        // Another fetch of the same commit got there first: its copy is identical.
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        if !target.is_dir() {
            return Err(format!("cannot store the checkout in {}", target.display()));
        }
    }
    Ok((target, commit))
}

async fn clone_into(url: &str, git_ref: Option<&str>, dir: &Path) -> Result<String, String> {
    let dir_str = dir.to_string_lossy().into_owned();
    git(
        None,
        &["clone", "--quiet", "--no-checkout", "--", url, &dir_str],
    )
    .await?;
    let target = match git_ref {
        Some(r) => {
            // A branch or tag of the remote, else a commit (or anything `rev-parse` knows).
            let remote = format!("origin/{r}");
            if git(
                Some(dir),
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{remote}^{{commit}}"),
                ],
            )
            .await
            .is_ok()
            {
                remote
            } else {
                r.to_owned()
            }
        }
        None => "HEAD".to_owned(),
    };
    let commit = git(
        Some(dir),
        &["rev-parse", "--verify", &format!("{target}^{{commit}}")],
    )
    .await
    .map_err(|_| format!("ref '{}' not found", git_ref.unwrap_or("HEAD")))?;
    git(Some(dir), &["checkout", "--quiet", "--detach", &commit]).await?;
    Ok(commit)
}

/// Runs git without prompts; its trimmed stdout, or why it failed.
async fn git(dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new("git");
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("git {} timed out", args[0]))?
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("git failed");
        Err(redact_all(line))
    }
}

/// Credentials in any URL of a message removed.
fn redact_all(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.contains("://") {
                redact(word)
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_classified_as_the_reference_does() {
        assert_eq!(
            parse_source("github:owner/repo").unwrap(),
            Source::Git {
                url: "https://github.com/owner/repo.git".into(),
                subpath: None
            }
        );
        assert_eq!(
            parse_source("github:owner/repo/plugins/x/").unwrap(),
            Source::Git {
                url: "https://github.com/owner/repo.git".into(),
                subpath: Some("plugins/x".into())
            }
        );
        assert!(parse_source("github:owner").is_err());
        assert_eq!(
            parse_source("https://example.com/a/b").unwrap(),
            Source::Git {
                url: "https://example.com/a/b.git".into(),
                subpath: None
            }
        );
        assert!(matches!(
            parse_source("git@host:team/repo.git").unwrap(),
            Source::Git { .. }
        ));
        assert!(matches!(
            parse_source("file:///srv/repo").unwrap(),
            Source::Git { .. }
        ));
        assert_eq!(
            parse_source("/srv/m").unwrap(),
            Source::Local("/srv/m".into())
        );
        assert_eq!(parse_source("./m").unwrap(), Source::Local("./m".into()));
        assert_eq!(parse_source("a/b").unwrap(), Source::Local("a/b".into()));
        assert!(parse_source("plain").is_err());
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact("https://oauth2:tok@example.com/r.git"),
            "https://****@example.com/r.git"
        );
        assert_eq!(
            redact("https://example.com/r.git"),
            "https://example.com/r.git"
        );
        assert_eq!(redact("/local/path"), "/local/path");
        assert_eq!(
            redact_all("fatal: could not read https://u:p@h/x"),
            "fatal: could not read https://****@h/x"
        );
    }

    #[test]
    fn cache_names_are_readable_and_distinct() {
        let a = cache_name("https://github.com/o/repo.git");
        let b = cache_name("https://gitlab.com/o/repo.git");
        assert!(a.starts_with("repo-"));
        assert_ne!(a, b);
    }
}
