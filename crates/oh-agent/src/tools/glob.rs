//! `glob` (the SDK's planning preset): lists files whose path matches a glob pattern.
//!
//! Behaves as the reference does without ripgrep (the agent-server images have none), which
//! is Python's `glob.glob(pattern, recursive=True)` run from the search directory:
//!
//! * a pattern without `**` is searched recursively (`*.py` means `**/*.py`);
//! * `**` as a whole component matches any number of directories, `*`, `?` and `[...]`
//!   match within one name (no `{a,b}` alternatives); matching is case-sensitive;
//! * names starting with `.` are matched only by a pattern component starting with `.`,
//!   and `**` never enters them;
//! * only regular files (after following symlinks) are listed, absolute, newest first, at
//!   most 100;
//! * without `path`, an absolute pattern is split into its literal directory prefix (the
//!   search directory) and the rest (`~` is expanded first).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures::future::BoxFuture;
use oh_protocol::tool::ToolDefinition;
use oh_protocol::tool_gpt5_planning::{GlobAction, GlobObservation};
use oh_protocol::{Action, Content, Observation};
use serde_json::{Map, Value, json};

use super::py_resolve::resolve;
use super::{Tool, ToolContext, ToolError, strict_parse_schema};
use crate::llm::ToolSchema;

/// Wire name.
pub const NAME: &str = "glob";

/// At most this many files are returned.
pub const MAX_FILES: usize = 100;

const DESCRIPTION: &str = "\
Finds files by name with a glob pattern, such as `**/*.rs` or `src/**/test_*.py`.
* `**` stands for any number of directories; `*` and `?` match within one name. A pattern without `**` is searched in every subdirectory.
* Hidden files and directories (names starting with `.`) are skipped unless the pattern names them.
* The result lists absolute paths, most recently modified first, and stops at 100 files: narrow the pattern or give `path` when you need fewer.";

/// The action's parameter schema, without the injected fields.
pub fn action_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "pattern": {
                "type": "string",
                "description": "Glob pattern to match, relative to the search directory, for \
                    example `**/*.ts`; an absolute pattern also names the directory.",
            },
            "path": {
                "type": "string",
                "description": "Absolute path of the directory to search; the working \
                    directory when left out.",
            },
        },
        "required": ["pattern"],
    })
}

// ------------------------------------------------------------------------ fnmatch

/// Whether a pattern component has glob magic (`*`, `?` or `[`), as `glob.has_magic`.
pub(crate) fn has_magic(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Python's `fnmatch.translate` as a compiled, anchored, case-sensitive regex: `*` any
/// text, `?` one character, `[seq]` / `[!seq]` a set; an unclosed `[` is literal.
pub(crate) fn fnmatch_regex(pattern: &str) -> Option<regex::Regex> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::from("(?s)^(?:");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                while chars.get(i) == Some(&'*') {
                    i += 1;
                }
                out.push_str(".*");
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if chars.get(j) == Some(&'!') {
                    j += 1;
                }
                if chars.get(j) == Some(&']') {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    out.push_str("\\[");
                    continue;
                }
                let mut set: String = chars[i..j].iter().collect();
                i = j + 1;
                let negate = set.starts_with('!');
                if negate {
                    set.remove(0);
                }
                let mut class = String::from("[");
                if negate {
                    class.push('^');
                }
                for ch in set.chars() {
                    match ch {
                        '\\' | '[' | ']' | '^' | '&' | '~' => {
                            class.push('\\');
                            class.push(ch);
                        }
                        _ => class.push(ch),
                    }
                }
                class.push(']');
                if set.is_empty() {
                    // `[]` / `[!]` never match in fnmatch.
                    out.push_str(if negate { "." } else { "(?!)" });
                    continue;
                }
                out.push_str(&class);
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out.push_str(")$");
    regex::Regex::new(&out).ok()
}

/// `fnmatch.fnmatchcase(name, pattern)`.
pub(crate) fn fnmatch(name: &str, pattern: &str) -> bool {
    fnmatch_regex(pattern).is_some_and(|re| re.is_match(name))
}

// ------------------------------------------------------------------------ glob

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Entries of `dir` sorted by name: `(name, is_dir)` (following symlinks).
fn entries(dir: &Path) -> Vec<(String, bool)> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, bool)> = read
        .filter_map(Result::ok)
        .map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.path().is_dir();
            (name, is_dir)
        })
        .collect();
    out.sort();
    out
}

fn join_rel(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else if rel.ends_with('/') {
        format!("{rel}{name}")
    } else {
        format!("{rel}/{name}")
    }
}

/// Every non-hidden directory under `dir` (relative to `base_rel`), depth first, not
/// entering symlinked directories (which could loop).
fn subdirs(dir: &Path, rel: &str, out: &mut Vec<(PathBuf, String)>) {
    for (name, is_dir) in entries(dir) {
        if !is_dir || is_hidden(&name) {
            continue;
        }
        let path = dir.join(&name);
        let rel = join_rel(rel, &name);
        out.push((path.clone(), rel.clone()));
        let link = std::fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false);
        if !link {
            subdirs(&path, &rel, out);
        }
    }
}

/// Matches `components` under `dir` (whose path relative to the search start is `rel`),
/// pushing matched relative paths.
fn walk(dir: &Path, rel: &str, components: &[&str], out: &mut Vec<String>) {
    let Some((first, rest)) = components.split_first() else {
        return;
    };
    let last = rest.is_empty();
    if *first == "**" {
        let mut dirs = vec![(dir.to_path_buf(), rel.to_owned())];
        subdirs(dir, rel, &mut dirs);
        if last {
            for (path, sub) in dirs {
                for (name, _) in entries(&path) {
                    if !is_hidden(&name) {
                        out.push(join_rel(&sub, &name));
                    }
                }
            }
        } else {
            for (path, sub) in dirs {
                walk(&path, &sub, rest, out);
            }
        }
    } else if has_magic(first) {
        let Some(re) = fnmatch_regex(first) else {
            return;
        };
        let hidden_ok = is_hidden(first);
        for (name, is_dir) in entries(dir) {
            if (!hidden_ok && is_hidden(&name)) || !re.is_match(&name) {
                continue;
            }
            if last {
                out.push(join_rel(rel, &name));
            } else if is_dir {
                walk(&dir.join(&name), &join_rel(rel, &name), rest, out);
            }
        }
    } else if first.is_empty() || *first == "." {
        // `a//b` and `./b` name the same directory.
        if last {
            return;
        }
        walk(dir, rel, rest, out);
    } else {
        let path = dir.join(first);
        if last {
            if std::fs::symlink_metadata(&path).is_ok() {
                out.push(join_rel(rel, first));
            }
        } else if path.is_dir() {
            walk(&path, &join_rel(rel, first), rest, out);
        }
    }
}

/// Files matching `pattern` under `search_path`: absolute, newest first, at most
/// [`MAX_FILES`], and whether more matched.
pub fn glob_files(pattern: &str, search_path: &Path) -> (Vec<String>, bool) {
    let pattern = if pattern.contains("**") {
        pattern.to_owned()
    } else {
        format!("**/{pattern}")
    };
    let mut matches = Vec::new();
    match pattern.strip_prefix('/') {
        Some(absolute) => {
            let components: Vec<&str> = absolute.split('/').collect();
            walk(Path::new("/"), "/", &components, &mut matches);
        }
        None => {
            let components: Vec<&str> = pattern.split('/').collect();
            walk(search_path, "", &components, &mut matches);
        }
    }
    let mut files: Vec<(String, SystemTime)> = matches
        .into_iter()
        .filter_map(|rel| {
            let path = search_path.join(&rel);
            let meta = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
            let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            Some((path.to_string_lossy().into_owned(), mtime))
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    let truncated = files.len() > MAX_FILES;
    files.truncate(MAX_FILES);
    (files.into_iter().map(|(path, _)| path).collect(), truncated)
}

/// Splits an absolute pattern into the directory before its first magic component and the
/// rest (`None` for a relative pattern), after expanding `~`.
fn split_absolute(pattern: &str) -> (Option<PathBuf>, String) {
    if pattern.is_empty() {
        return (None, "**/*".to_owned());
    }
    let expanded = expand_user(pattern);
    if !expanded.starts_with('/') {
        return (None, expanded);
    }
    let parts: Vec<&str> = expanded
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    let literal = parts.iter().take_while(|part| !has_magic(part)).count();
    let mut dir = PathBuf::from("/");
    dir.extend(&parts[..literal]);
    let rest = parts[literal..].join("/");
    let rest = if rest.is_empty() {
        "**/*".to_owned()
    } else {
        rest
    };
    (Some(resolve(&dir)), rest)
}

/// `os.path.expanduser` for `~` and `~/…`.
fn expand_user(pattern: &str) -> String {
    let home = std::env::var("HOME").unwrap_or_default();
    if pattern == "~" && !home.is_empty() {
        return home;
    }
    match pattern.strip_prefix("~/") {
        Some(rest) if !home.is_empty() => format!("{}/{rest}", home.trim_end_matches('/')),
        _ => pattern.to_owned(),
    }
}

/// `glob`, searching from the workspace directory by default.
#[derive(Debug)]
pub struct GlobTool {
    working_dir: PathBuf,
}

impl GlobTool {
    /// The tool for a conversation working in `ctx.working_dir`, which must be a directory.
    pub fn new(ctx: &ToolContext) -> Result<Self, ToolError> {
        if !ctx.working_dir.is_dir() {
            return Err(ToolError::Invalid(format!(
                "working_dir '{}' is not a valid directory",
                ctx.working_dir.display()
            )));
        }
        Ok(Self {
            working_dir: resolve(&ctx.working_dir),
        })
    }

    fn description(&self) -> String {
        format!(
            "{DESCRIPTION}\n\nThe working directory is {}; relative patterns are matched \
             from there.",
            self.working_dir.display()
        )
    }

    /// Runs one search.
    pub fn run(&self, action: &GlobAction) -> GlobObservation {
        let (search_path, pattern) = match &action.path {
            Some(path) if !path.is_empty() => (resolve(Path::new(path)), action.pattern.clone()),
            _ => {
                let (dir, pattern) = split_absolute(&action.pattern);
                (dir.unwrap_or_else(|| self.working_dir.clone()), pattern)
            }
        };
        let shown = search_path.to_string_lossy().into_owned();
        if !search_path.is_dir() {
            return GlobObservation {
                content: vec![Content::text(format!(
                    "Search path '{shown}' is not a valid directory"
                ))],
                is_error: true,
                files: Vec::new(),
                pattern: action.pattern.clone(),
                search_path: shown,
                truncated: false,
            };
        }
        let (files, truncated) = glob_files(&pattern, &search_path);
        let text = if files.is_empty() {
            format!(
                "No files found matching pattern '{}' in directory '{shown}'",
                action.pattern
            )
        } else {
            let mut text = format!(
                "Found {} file(s) matching pattern '{}' in '{shown}':\n{}",
                files.len(),
                action.pattern,
                files.join("\n")
            );
            if truncated {
                text.push_str(
                    "\n\n[Results truncated to first 100 files. Consider using a more specific \
                     pattern.]",
                );
            }
            text
        };
        GlobObservation {
            content: vec![Content::text(text)],
            is_error: false,
            files,
            pattern: action.pattern.clone(),
            search_path: shown,
            truncated,
        }
    }
}

impl Tool for GlobTool {
    fn name(&self) -> &str {
        NAME
    }
    fn schema(&self) -> ToolSchema {
        ToolSchema {
            name: NAME.to_owned(),
            description: self.description(),
            parameters: super::spec::with_injected_fields(action_parameters(), true),
        }
    }
    fn definition(&self) -> ToolDefinition {
        super::spec::definition(
            NAME,
            "GlobTool",
            "GlobAction",
            "GlobObservation",
            self.description(),
            super::spec::annotations(NAME, true, false, true),
        )
    }
    fn read_only(&self) -> bool {
        true
    }
    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        strict_parse_schema::<GlobAction>(&action_parameters(), arguments).map(Action::Glob)
    }
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let Action::Glob(action) = action else {
                return Err(ToolError::Internal("glob got another tool's action".into()));
            };
            let tool = GlobTool {
                working_dir: self.working_dir.clone(),
            };
            let action = action.clone();
            tokio::task::spawn_blocking(move || tool.run(&action))
                .await
                .map(Observation::Glob)
                .map_err(|e| ToolError::Internal(format!("glob stopped: {e}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("a.py", "*.py"));
        assert!(fnmatch(".a.py", "*.py"));
        assert!(!fnmatch("a.PY", "*.py"));
        assert!(fnmatch("a1", "a[0-9]"));
        assert!(!fnmatch("ab", "a[!b]"));
        assert!(fnmatch("a[", "a["));
        assert!(fnmatch("x.ts", "x.?s"));
        assert!(!fnmatch("x.ts", "*.{ts,tsx}"));
        assert!(fnmatch("a+b", "a+b"));
    }

    #[test]
    fn absolute_patterns_split_at_the_first_magic_component() {
        let (dir, rest) = split_absolute("/usr/lib/**/*.so");
        assert_eq!(dir, Some(resolve(Path::new("/usr/lib"))));
        assert_eq!(rest, "**/*.so");
        assert_eq!(
            split_absolute("/usr"),
            (Some(resolve(Path::new("/usr"))), "**/*".into())
        );
        assert_eq!(split_absolute("src/*.rs"), (None, "src/*.rs".into()));
        assert_eq!(split_absolute(""), (None, "**/*".into()));
    }
}
