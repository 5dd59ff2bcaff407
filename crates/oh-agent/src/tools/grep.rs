//! `grep` (the SDK's planning preset): lists the files whose content matches a regular
//! expression.
//!
//! Behaves as the reference does without ripgrep (`grep -R -I -l -i` over the search
//! directory, then its filters):
//!
//! * the pattern is a regular expression matched case-insensitively, line by line (`^` and
//!   `$` at line ends); an invalid one is an error observation;
//! * binary files (with a NUL byte) are skipped, symlinks are followed;
//! * files inside hidden directories are skipped; hidden files are skipped unless `include`
//!   is given, which then filters by file name (`fnmatch`: `*`, `?`, `[...]`, no `{a,b}`);
//! * matches are absolute with symlinks resolved, newest first, at most 100.
//!
//! The reference's system-grep backend reads the pattern as a POSIX basic expression; we
//! read it with the syntax its tool description promises (and its ripgrep and Python
//! backends use), so `a|b` and `\s+` work here.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use futures::future::BoxFuture;
use oh_protocol::tool::ToolDefinition;
use oh_protocol::tool_gpt5_planning::{GrepAction, GrepObservation};
use oh_protocol::{Action, Content, Observation};
use serde_json::{Map, Value, json};

use super::glob::fnmatch;
use super::py_resolve::resolve;
use super::{Tool, ToolContext, ToolError, strict_parse_schema};
use crate::llm::ToolSchema;

/// Wire name.
pub const NAME: &str = "grep";

/// At most this many files are returned.
pub const MAX_MATCHES: usize = 100;

/// Files larger than this are not searched.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

const DESCRIPTION: &str = "\
Searches file contents with a regular expression and lists the files that match.
* The expression is matched case-insensitively, line by line, with the usual regex syntax (`fn\\s+main`, `TODO|FIXME`).
* `include` keeps only files whose name matches a pattern such as `*.py`.
* Hidden directories and binary files are skipped.
* The result lists absolute paths, most recently modified first, and stops at 100 files: make the expression stricter or give `path` when you need fewer.";

/// The action's parameter schema, without the injected fields.
pub fn action_parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "pattern": {
                "type": "string",
                "description": "Regular expression to look for in file contents.",
            },
            "path": {
                "type": "string",
                "description": "Absolute path of the directory to search; the working \
                    directory when left out.",
            },
            "include": {
                "type": "string",
                "description": "File-name pattern restricting the search, for example \
                    `*.rs`.",
            },
        },
        "required": ["pattern"],
    })
}

/// Whether a file found under `search_path` passes the reference's filters.
fn passes_filters(path: &Path, search_path: &Path, include: Option<&str>) -> bool {
    let parts: Vec<String> = match path.strip_prefix(search_path) {
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ],
    };
    let Some((name, dirs)) = parts.split_last() else {
        return false;
    };
    if dirs.iter().any(|d| d.starts_with('.')) {
        return false;
    }
    match include {
        Some(pattern) if !pattern.is_empty() => fnmatch(name, pattern),
        _ => !name.starts_with('.'),
    }
}

/// Whether the file's content matches; binary files (a NUL byte) never do.
fn file_matches(path: &Path, re: &regex::Regex) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut bytes = Vec::new();
    if file.take(MAX_FILE_BYTES).read_to_end(&mut bytes).is_err() || bytes.contains(&0) {
        return false;
    }
    re.is_match(&String::from_utf8_lossy(&bytes))
}

/// Every regular file under `dir` (following symlinks; a directory is entered once).
fn files_under(dir: &Path, seen: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) {
    let Ok(canonical) = std::fs::canonicalize(dir) else {
        return;
    };
    if !seen.insert(canonical) {
        return;
    }
    let Ok(read) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = read.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => files_under(&path, seen, out),
            Ok(meta) if meta.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// Files under `search_path` whose content matches `re`, filtered as the reference does:
/// absolute, newest first, at most [`MAX_MATCHES`], and whether more matched.
pub fn grep_files(
    re: &regex::Regex,
    search_path: &Path,
    include: Option<&str>,
) -> (Vec<String>, bool) {
    let mut files = Vec::new();
    files_under(search_path, &mut HashSet::new(), &mut files);
    let search_resolved = resolve(search_path);
    let mut found: Vec<(String, SystemTime)> = Vec::new();
    let mut seen = HashSet::new();
    for file in files {
        let resolved = resolve(&file);
        if !passes_filters(&resolved, &search_resolved, include) || !file_matches(&file, re) {
            continue;
        }
        let shown = resolved.to_string_lossy().into_owned();
        if seen.insert(shown.clone()) {
            let mtime = std::fs::metadata(&resolved)
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            found.push((shown, mtime));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.1));
    let truncated = found.len() > MAX_MATCHES;
    found.truncate(MAX_MATCHES);
    (found.into_iter().map(|(path, _)| path).collect(), truncated)
}

/// `grep`, searching the workspace directory by default.
#[derive(Debug)]
pub struct GrepTool {
    working_dir: PathBuf,
}

impl GrepTool {
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
            "{DESCRIPTION}\n\nThe working directory is {}; searches start there unless \
             `path` says otherwise.",
            self.working_dir.display()
        )
    }

    /// Runs one search.
    pub fn run(&self, action: &GrepAction) -> GrepObservation {
        let error = |text: String, search_path: String| GrepObservation {
            content: vec![Content::text(text)],
            is_error: true,
            matches: Vec::new(),
            pattern: action.pattern.clone(),
            search_path,
            include_pattern: action.include.clone(),
            truncated: false,
        };
        let search_path = match &action.path {
            Some(path) if !path.is_empty() => {
                let resolved = resolve(Path::new(path));
                if !resolved.is_dir() {
                    return error(
                        format!("Search path '{path}' is not a valid directory"),
                        resolved.to_string_lossy().into_owned(),
                    );
                }
                resolved
            }
            _ => self.working_dir.clone(),
        };
        let shown = search_path.to_string_lossy().into_owned();
        let re = match regex::RegexBuilder::new(&action.pattern)
            .case_insensitive(true)
            .multi_line(true)
            .build()
        {
            Ok(re) => re,
            Err(e) => {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim();
                let reason = reason.strip_prefix("error: ").unwrap_or(reason);
                return error(format!("Invalid regex pattern: {reason}"), shown);
            }
        };
        let include = action.include.as_deref().filter(|i| !i.is_empty());
        let (matches, truncated) = grep_files(&re, &search_path, include);
        let include_info = include
            .map(|i| format!(" (filtered by '{i}')"))
            .unwrap_or_default();
        let text = if matches.is_empty() {
            format!(
                "No files found containing pattern '{}' in directory '{shown}'{include_info}",
                action.pattern
            )
        } else {
            let mut text = format!(
                "Found {} file(s) containing pattern '{}' in '{shown}'{include_info}:\n{}",
                matches.len(),
                action.pattern,
                matches.join("\n")
            );
            if truncated {
                text.push_str(
                    "\n\n[Results truncated to first 100 files. Consider using a more specific \
                     pattern.]",
                );
            }
            text
        };
        GrepObservation {
            content: vec![Content::text(text)],
            is_error: false,
            matches,
            pattern: action.pattern.clone(),
            search_path: shown,
            include_pattern: action.include.clone(),
            truncated,
        }
    }
}

impl Tool for GrepTool {
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
            "GrepTool",
            "GrepAction",
            "GrepObservation",
            self.description(),
            super::spec::annotations(NAME, true, false, true),
        )
    }
    fn read_only(&self) -> bool {
        true
    }
    fn parse_action(&self, arguments: Map<String, Value>) -> Result<Action, String> {
        strict_parse_schema::<GrepAction>(&action_parameters(), arguments).map(Action::Grep)
    }
    fn execute<'a>(&'a self, action: &'a Action) -> BoxFuture<'a, Result<Observation, ToolError>> {
        Box::pin(async move {
            let Action::Grep(action) = action else {
                return Err(ToolError::Internal("grep got another tool's action".into()));
            };
            let tool = GrepTool {
                working_dir: self.working_dir.clone(),
            };
            let action = action.clone();
            tokio::task::spawn_blocking(move || tool.run(&action))
                .await
                .map(Observation::Grep)
                .map_err(|e| ToolError::Internal(format!("grep stopped: {e}")))
        })
    }
}
