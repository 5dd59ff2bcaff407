//! Skills: markdown files that extend the agent's context.
//!
//! A skill is read from a file ([`Skill::load`]):
//!
//! - a third-party instruction file at a repository's root (`AGENTS.md`, `AGENT.md`,
//!   `CLAUDE.md`, `GEMINI.md`, `.cursorrules`, any case): the whole file, always active, named
//!   `agents`, `claude`, `gemini` or `cursorrules`;
//! - an AgentSkills `SKILL.md` in its own directory (named after the directory, or its
//!   frontmatter `name`, which must be lowercase words joined by single hyphens and equal the
//!   directory's name);
//! - any other `.md` file in a skills directory (named by its path below that directory
//!   without `.md`, or its frontmatter `name`).
//!
//! The frontmatter decides the trigger: `paths` (globs: a path rule), `inputs` (a task
//! skill, also triggered by `/<name>`), `triggers` (keywords), else none (a *repo* skill,
//! always in the system prompt).
//!
//! Loading follows the reference's sources and precedence: project skills
//! ([`load_project_skills`]: the working directory, then its git root), user skills
//! ([`load_user_skills`]) and programmatic ones. A file that cannot be read as a skill is
//! logged and skipped; it never stops the others.
//!
//! [`AgentContext`] is the agent's `agent_context` as this crate uses it: repo skills and the
//! list of triggered skills go into the dynamic part of the system prompt, and a user
//! message that mentions a keyword activates its skill once per conversation.

pub mod frontmatter;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oh_protocol::SkillInfo;
use serde_json::{Map, Value};

/// Root files of other agents' conventions, by lowercase file name → skill name.
pub const THIRD_PARTY_FILES: &[(&str, &str)] = &[
    (".cursorrules", "cursorrules"),
    ("agents.md", "agents"),
    ("agent.md", "agents"),
    ("claude.md", "claude"),
    ("gemini.md", "gemini"),
];

/// Longest description kept (AgentSkills); longer ones are cut with a notice.
const MAX_DESCRIPTION_CHARS: usize = 1024;

/// When a skill's content reaches the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// When a user message contains one of the keywords (whole token, any case).
    Keyword(Vec<String>),
    /// Like a keyword trigger; task skills (`/name`) that may ask for inputs.
    Task(Vec<String>),
    /// When the agent touches a file matching one of the globs.
    Path(Vec<String>),
}

/// A skill.
#[derive(Debug, Clone, PartialEq)]
pub struct Skill {
    /// Unique name.
    pub name: String,
    /// The text the model gets.
    pub content: String,
    /// `None`: always active.
    pub trigger: Option<Trigger>,
    /// The file it came from (`None`: built in code).
    pub source: Option<String>,
    /// Short description (AgentSkills).
    pub description: Option<String>,
    /// Read from a `SKILL.md`.
    pub is_agentskills_format: bool,
    /// Only its trigger activates it; not listed for the model.
    pub disable_model_invocation: bool,
}

/// A file that could not be read as a skill.
#[derive(Debug, thiserror::Error)]
pub enum SkillError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Its frontmatter is not valid.
    #[error("invalid frontmatter in {path}")]
    Frontmatter {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: frontmatter::FrontmatterError,
    },
    /// A frontmatter field has the wrong form.
    #[error("invalid skill {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl Skill {
    /// A skill built in code: always active when `trigger` is `None`.
    pub fn new(
        name: impl Into<String>,
        content: impl Into<String>,
        trigger: Option<Trigger>,
    ) -> Self {
        Self {
            name: name.into(),
            content: content.into(),
            trigger,
            source: None,
            description: None,
            is_agentskills_format: false,
            disable_model_invocation: false,
        }
    }

    /// Reads the skill in `path`; `base_dir` is the skills directory it was found in (its
    /// relative path names the skill).
    pub fn load(path: &Path, base_dir: Option<&Path>) -> Result<Self, SkillError> {
        let text = std::fs::read_to_string(path).map_err(|source| SkillError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text, base_dir)
    }

    /// [`Skill::load`] on text already read.
    pub fn parse(path: &Path, text: &str, base_dir: Option<&Path>) -> Result<Self, SkillError> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let source = Some(path.to_string_lossy().into_owned());
        if file_name == "skill.md" {
            let dir_name = path
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (meta, body) = split(path, text)?;
            let name = meta_string(&meta, "name").unwrap_or_else(|| dir_name.clone());
            if let Some(reason) = invalid_skill_name(&name, &dir_name) {
                return Err(SkillError::Invalid {
                    path: path.to_owned(),
                    reason,
                });
            }
            return from_metadata(path, name, body, &meta, source, true);
        }
        if let Some(name) = third_party_name(&file_name) {
            return Ok(Self {
                source,
                ..Self::new(name, text, None)
            });
        }
        let derived = match base_dir.and_then(|base| path.strip_prefix(base).ok()) {
            Some(relative) => relative
                .with_extension("")
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/"),
            None => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
        };
        let (meta, body) = split(path, text)?;
        let name = meta_string(&meta, "name").unwrap_or(derived);
        from_metadata(path, name, body, &meta, source, false)
    }

    /// `repo` (always active), `knowledge` (triggered) or `agentskills` (`SKILL.md`).
    pub fn kind(&self) -> &'static str {
        if self.is_agentskills_format {
            "agentskills"
        } else if self.trigger.is_none() {
            "repo"
        } else {
            "knowledge"
        }
    }

    /// The keywords of a keyword or task trigger.
    pub fn triggers(&self) -> &[String] {
        match &self.trigger {
            Some(Trigger::Keyword(words) | Trigger::Task(words)) => words,
            _ => &[],
        }
    }

    /// The first keyword that `message` contains as a whole token, ignoring case (so `git`
    /// does not fire on `github`, and `/deploy` matches as written).
    pub fn match_trigger(&self, message: &str) -> Option<&str> {
        let message = message.to_lowercase();
        self.triggers()
            .iter()
            .find(|keyword| keyword_matches(keyword, &message))
            .map(String::as_str)
    }

    /// The first of a path rule's globs that `file_path` (workspace-relative, `/`-separated)
    /// matches.
    pub fn match_path_trigger(&self, file_path: &str) -> Option<&str> {
        match &self.trigger {
            Some(Trigger::Path(globs)) => globs
                .iter()
                .find(|glob| path_matches_glob(file_path, glob))
                .map(String::as_str),
            _ => None,
        }
    }

    /// The skill's summary on the wire (`SkillInfo`).
    pub fn info(&self) -> SkillInfo {
        SkillInfo {
            name: self.name.clone(),
            kind: self.kind().to_owned(),
            content: self.content.clone(),
            triggers: self.triggers().to_vec(),
            source: self.source.clone(),
            description: self.description.clone(),
            is_agentskills_format: self.is_agentskills_format,
            disable_model_invocation: self.disable_model_invocation,
        }
    }

    /// A skill from its JSON form in an `agent_context` (the SDK's `Skill` model); `None`
    /// when it has no name.
    pub fn from_json(value: &Value) -> Option<Self> {
        let name = value.get("name")?.as_str()?.to_owned();
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let trigger =
            value
                .get("trigger")
                .and_then(|t| match t.get("type").and_then(Value::as_str)? {
                    "keyword" => Some(Trigger::Keyword(strings(t.get("keywords")))),
                    "task" => Some(Trigger::Task(strings(t.get("triggers")))),
                    "path" => Some(Trigger::Path(strings(t.get("paths")))),
                    _ => None,
                });
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let flag = |key: &str| value.get(key).and_then(Value::as_bool).unwrap_or(false);
        Some(Self {
            name,
            content: text("content").unwrap_or_default(),
            disable_model_invocation: flag("disable_model_invocation")
                || matches!(trigger, Some(Trigger::Path(_))),
            trigger,
            source: text("source"),
            description: text("description"),
            is_agentskills_format: flag("is_agentskills_format"),
        })
    }
}

fn split(path: &Path, text: &str) -> Result<(Map<String, Value>, String), SkillError> {
    frontmatter::split(text).map_err(|source| SkillError::Frontmatter {
        path: path.to_owned(),
        source,
    })
}

fn meta_string(meta: &Map<String, Value>, key: &str) -> Option<String> {
    match meta.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn third_party_name(lowercase_file_name: &str) -> Option<&'static str> {
    THIRD_PARTY_FILES
        .iter()
        .find(|(file, _)| *file == lowercase_file_name)
        .map(|(_, name)| *name)
}

/// Why `name` is not a valid AgentSkills name for a skill in `dir_name`, if it is not.
fn invalid_skill_name(name: &str, dir_name: &str) -> Option<String> {
    let well_formed = !name.is_empty()
        && name.len() <= 64
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !well_formed {
        return Some(format!(
            "name {name:?} must be at most 64 lowercase letters or digits in words joined by single hyphens"
        ));
    }
    (name != dir_name).then(|| format!("name {name:?} differs from its directory {dir_name:?}"))
}

fn from_metadata(
    path: &Path,
    name: String,
    content: String,
    meta: &Map<String, Value>,
    source: Option<String>,
    is_agentskills_format: bool,
) -> Result<Skill, SkillError> {
    let invalid = |reason: &str| SkillError::Invalid {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let mut keywords: Vec<String> = match meta.get("triggers") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(_) => return Err(invalid("triggers must be a list of strings")),
    };
    let paths: Vec<String> = match meta.get("paths") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .map(|p| p.trim().to_owned())
            .collect(),
        Some(_) => return Err(invalid("paths must be a string or a list")),
    };
    let paths: Vec<String> = paths.into_iter().filter(|p| !p.is_empty()).collect();
    let mut content = content;
    let trigger = if !paths.is_empty() {
        Some(Trigger::Path(paths))
    } else if let Some(inputs) = meta.get("inputs") {
        if !matches!(inputs, Value::Array(_) | Value::Null) {
            return Err(invalid("inputs must be a list"));
        }
        let own = format!("/{name}");
        if !keywords.contains(&own) {
            keywords.push(own);
        }
        let has_inputs = inputs.as_array().is_some_and(|a| !a.is_empty());
        if has_inputs || has_variables(&content) {
            let note = "\n\nIf the user didn't provide any of these variables, ask the user to provide them first before the agent can proceed with the task.";
            if !content.is_empty() && !content.contains(note) {
                content.push_str(note);
            }
        }
        Some(Trigger::Task(keywords))
    } else if !keywords.is_empty() {
        Some(Trigger::Keyword(keywords))
    } else {
        None
    };
    let description = meta_string(meta, "description").map(|d| {
        if d.chars().count() <= MAX_DESCRIPTION_CHARS {
            return d;
        }
        let kept: String = d.chars().take(MAX_DESCRIPTION_CHARS).collect();
        match &source {
            Some(source) => format!(
                "{kept}<response clipped><NOTE>The description was cut; the whole skill is in {source}.</NOTE>"
            ),
            None => format!("{kept}<response clipped>"),
        }
    });
    let disable = meta
        .get("disable-model-invocation")
        .or_else(|| meta.get("disable_model_invocation"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Skill {
        disable_model_invocation: disable || matches!(trigger, Some(Trigger::Path(_))),
        name,
        content,
        trigger,
        source,
        description,
        is_agentskills_format,
    })
}

/// `${name}` variables in a task skill's content.
fn has_variables(content: &str) -> bool {
    let mut rest = content;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let name_len = after
            .char_indices()
            .take_while(|(i, c)| {
                c.is_ascii_alphanumeric() && (*i > 0 || !c.is_ascii_digit()) || *c == '_'
            })
            .count();
        if name_len > 0 && after[name_len..].starts_with('}') {
            return true;
        }
        rest = after;
    }
    false
}

fn keyword_matches(keyword: &str, message_lower: &str) -> bool {
    let keyword = keyword.to_lowercase();
    if keyword.is_empty() {
        return false;
    }
    let is_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    message_lower.match_indices(&keyword).any(|(at, _)| {
        !is_word(message_lower[..at].chars().next_back())
            && !is_word(message_lower[at + keyword.len()..].chars().next())
    })
}

/// Whether `path` (`/`-separated) matches a gitignore-style `glob`: `**` crosses
/// directories (`**/` also matches none), `*` and `?` stay within one segment, and a glob
/// without `/` matches a file name at any depth. Case-sensitive.
pub fn path_matches_glob(path: &str, glob: &str) -> bool {
    if glob.is_empty() {
        return false;
    }
    let glob = if glob.contains('/') {
        glob.to_owned()
    } else {
        format!("**/{glob}")
    };
    let mut pattern = String::from("^(?s:");
    let mut rest = glob.as_str();
    while !rest.is_empty() {
        let (piece, len) = if rest.starts_with("**/") {
            ("(?:.*/)?".to_owned(), 3)
        } else if rest.starts_with("**") {
            (".*".to_owned(), 2)
        } else if rest.starts_with('*') {
            ("[^/]*".to_owned(), 1)
        } else if rest.starts_with('?') {
            ("[^/]".to_owned(), 1)
        } else {
            let end = rest.find(['*', '?']).unwrap_or(rest.len());
            (regex::escape(&rest[..end]), end)
        };
        pattern.push_str(&piece);
        rest = &rest[len..];
    }
    pattern.push_str(")$");
    regex::Regex::new(&pattern).is_ok_and(|re| re.is_match(path))
}

// ── Loading ────────────────────────────────────────────────────────────────

/// The skills in one skills directory: every `SKILL.md` one level down (AgentSkills) and
/// every other `.md` below it (except `README.md` and files inside an AgentSkills
/// directory), in path order, listed as the reference lists them: repo skills, then
/// triggered ones, then AgentSkills (a later file of the same name replaces an earlier one
/// in its group). Unreadable skills are logged and skipped.
pub fn load_skills_from_dir(dir: &Path) -> Vec<Skill> {
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut repo = Vec::new();
    let mut knowledge = Vec::new();
    let mut agentskills = Vec::new();
    let mut skill_dirs = Vec::new();
    for entry in sorted_entries(dir) {
        if entry.is_dir()
            && let Some(skill_md) = sorted_entries(&entry).into_iter().find(|p| {
                p.is_file()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().eq_ignore_ascii_case("skill.md"))
            })
        {
            skill_dirs.push(entry.clone());
            if let Some(skill) = loaded(Skill::load(&skill_md, Some(dir))) {
                agentskills = merge_later_wins([agentskills, vec![skill]]);
            }
        }
    }
    let mut files = Vec::new();
    collect_md(dir, &skill_dirs, &mut files);
    files.sort();
    for file in files {
        if let Some(skill) = loaded(Skill::load(&file, Some(dir))) {
            let group = if skill.trigger.is_none() {
                &mut repo
            } else {
                &mut knowledge
            };
            *group = merge_later_wins([std::mem::take(group), vec![skill]]);
        }
    }
    repo.into_iter()
        .chain(knowledge)
        .chain(agentskills)
        .collect()
}

fn loaded(result: Result<Skill, SkillError>) -> Option<Skill> {
    result
        .inspect_err(|e| {
            tracing::warn!(error = %e, source = ?std::error::Error::source(e), "skipping a skill");
        })
        .ok()
}

fn push_loaded(skills: &mut Vec<Skill>, loaded: Result<Skill, SkillError>) {
    match loaded {
        Ok(skill) => skills.push(skill),
        Err(e) => {
            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "skipping a skill")
        }
    }
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

fn collect_md(dir: &Path, excluded: &[PathBuf], out: &mut Vec<PathBuf>) {
    for path in sorted_entries(dir) {
        if excluded.iter().any(|e| path.starts_with(e)) {
            continue;
        }
        if path.is_dir() {
            collect_md(&path, excluded, out);
        } else if path.is_file()
            && path.extension().is_some_and(|e| e == "md")
            && let Some(name) = path.file_name().map(|n| n.to_string_lossy())
            && name != "README.md"
            && !name.eq_ignore_ascii_case("skill.md")
        {
            out.push(path);
        }
    }
}

/// Adds `loaded` to `skills`, skipping names already present (earlier wins).
fn merge_first_wins(skills: &mut Vec<Skill>, seen: &mut HashSet<String>, loaded: Vec<Skill>) {
    for skill in loaded {
        if seen.insert(skill.name.clone()) {
            skills.push(skill);
        } else {
            tracing::debug!(name = %skill.name, "skipping a skill whose name is already loaded");
        }
    }
}

/// The user's skills: those in each of `dirs` in order (earlier wins for a name). The
/// reference's directories are `~/.agents/skills`, then `skills` and `microagents` in its
/// persistence directory (`OH_PERSISTENCE_DIR`, else `~/.openhands`); see
/// [`user_skill_dirs`].
pub fn load_user_skills(dirs: &[PathBuf]) -> Vec<Skill> {
    let mut skills = Vec::new();
    let mut seen = HashSet::new();
    for dir in dirs {
        merge_first_wins(&mut skills, &mut seen, load_skills_from_dir(dir));
    }
    skills
}

/// The reference's user skill directories for a home directory and an optional
/// persistence directory (which replaces `~/.openhands`).
pub fn user_skill_dirs(home: Option<&Path>, persistence_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = home {
        dirs.push(home.join(".agents").join("skills"));
    }
    let base = persistence_dir
        .map(Path::to_path_buf)
        .or_else(|| home.map(|h| h.join(".openhands")));
    if let Some(base) = base {
        dirs.push(base.join("skills"));
        dirs.push(base.join("microagents"));
    }
    dirs
}

/// The project's skills for `work_dir`: root instruction files (`AGENTS.md`, …) of the
/// working directory and then of its git root, the same files deeper in the working tree as
/// path rules for their directory (`agents:<dir>`), then the skills directories
/// `.agents/skills`, `.openhands/skills` and `.openhands/microagents` of each root. The
/// first skill of a name wins.
pub fn load_project_skills(work_dir: &Path) -> Vec<Skill> {
    let mut skills = Vec::new();
    let mut seen = HashSet::new();
    if !work_dir.is_dir() {
        return skills;
    }
    let mut roots = vec![work_dir.to_path_buf()];
    if let Some(git_root) = work_dir
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .filter(|root| *root != work_dir)
    {
        roots.push(git_root.to_path_buf());
    }
    for root in &roots {
        let mut seen_files = HashSet::new();
        let mut seen_real = HashSet::new();
        let mut found = Vec::new();
        for path in sorted_entries(root) {
            let Some(lower) = path.file_name().map(|n| n.to_string_lossy().to_lowercase()) else {
                continue;
            };
            if !path.is_file() || third_party_name(&lower).is_none() || !seen_files.insert(lower) {
                continue;
            }
            let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen_real.insert(real) {
                push_loaded(&mut found, Skill::load(&path, None));
            }
        }
        merge_first_wins(&mut skills, &mut seen, found);
    }
    merge_first_wins(&mut skills, &mut seen, nested_instruction_files(work_dir));
    for root in &roots {
        for dir in [
            root.join(".agents").join("skills"),
            root.join(".openhands").join("skills"),
            root.join(".openhands").join("microagents"),
        ] {
            merge_first_wins(&mut skills, &mut seen, load_skills_from_dir(&dir));
        }
    }
    skills
}

/// Instruction files below the top level of `work_dir` (hidden directories and
/// `node_modules` skipped), each a path rule for its directory.
fn nested_instruction_files(work_dir: &Path) -> Vec<Skill> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>, depth: usize) {
        if depth > 32 {
            return;
        }
        for path in sorted_entries(dir) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if !name.starts_with('.') && name != "node_modules" {
                    walk(&path, base, out, depth + 1);
                }
            } else if dir != base
                && path.is_file()
                && third_party_name(&name.to_lowercase()).is_some()
                && let Ok(relative) = dir.strip_prefix(base)
            {
                out.push((
                    relative
                        .to_string_lossy()
                        .replace(std::path::MAIN_SEPARATOR, "/"),
                    path,
                ));
            }
        }
    }
    let mut found = Vec::new();
    walk(work_dir, work_dir, &mut found, 0);
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let mut seen_real = HashSet::new();
    let mut skills = Vec::new();
    for (relative_dir, path) in found {
        let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if !seen_real.insert(real) {
            continue;
        }
        let lower = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let Some(base_name) = third_party_name(&lower) else {
            continue;
        };
        match std::fs::read_to_string(&path) {
            Ok(content) => skills.push(Skill {
                source: Some(path.to_string_lossy().into_owned()),
                disable_model_invocation: true,
                ..Skill::new(
                    format!("{base_name}:{relative_dir}"),
                    content,
                    Some(Trigger::Path(vec![format!("{relative_dir}/**")])),
                )
            }),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "skipping an instruction file")
            }
        }
    }
    skills
}

/// Merges skill lists in precedence order: a later list's skill replaces an earlier one of
/// the same name (keeping the earlier position, as a Python dict does).
pub fn merge_later_wins(lists: impl IntoIterator<Item = Vec<Skill>>) -> Vec<Skill> {
    let mut merged: Vec<Skill> = Vec::new();
    for list in lists {
        for skill in list {
            match merged.iter_mut().find(|s| s.name == skill.name) {
                Some(slot) => *slot = skill,
                None => merged.push(skill),
            }
        }
    }
    merged
}

/// The skill the reference makes from a sandbox's exposed URLs: the `WORKER_*` ones as
/// hosts the agent may use. `None` when there are none.
pub fn work_hosts_skill(urls: &[(String, String, u16)]) -> Option<Skill> {
    let hosts: Vec<String> = urls
        .iter()
        .filter(|(name, _, _)| name.starts_with("WORKER_"))
        .map(|(_, url, port)| format!("* {url} (port {port})"))
        .collect();
    if hosts.is_empty() {
        return None;
    }
    Some(Skill::new(
        "work_hosts",
        format!(
            "The user has access to the following hosts for accessing a web application, each of which has a corresponding port:\n{}",
            hosts.join("\n")
        ),
        None,
    ))
}

// ── The agent's context ────────────────────────────────────────────────────

/// The parts of an agent's `agent_context` this crate acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentContext {
    /// Skills (explicit, then any loaded for `load_user_skills`).
    pub skills: Vec<Skill>,
    /// Text added at the end of the system prompt's dynamic part.
    pub system_message_suffix: Option<String>,
    /// Text added to every user message.
    pub user_message_suffix: Option<String>,
    /// Load the workspace's project skills when the conversation starts.
    pub load_project_skills: bool,
    /// Names of skills to drop, whatever their source.
    pub disabled_skills: Vec<String>,
    /// `current_datetime`: `None` when explicitly null (no date in the prompt), else the
    /// text to show (`Some(None)`: now).
    pub current_datetime: Option<Option<String>>,
}

impl AgentContext {
    /// Reads an `agent_context` JSON object. `user_skill_dirs` are searched when it asks
    /// for `load_user_skills` (explicit skills win on a name); the public skills
    /// (`load_public_skills`) cannot be fetched by this crate and contribute none, as in the
    /// reference when its fetch fails.
    pub fn from_json(value: &Value, user_skill_dirs: &[PathBuf]) -> Self {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        let flag = |key: &str| value.get(key).and_then(Value::as_bool).unwrap_or(false);
        let mut skills: Vec<Skill> = value
            .get("skills")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Skill::from_json).collect())
            .unwrap_or_default();
        if flag("load_user_skills") {
            let mut names: HashSet<String> = skills.iter().map(|s| s.name.clone()).collect();
            let user = load_user_skills(user_skill_dirs);
            merge_first_wins(&mut skills, &mut names, user);
        }
        if flag("load_public_skills") {
            tracing::warn!("public skills cannot be fetched here; none loaded");
        }
        let disabled_skills: Vec<String> = value
            .get("disabled_skills")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        skills.retain(|s| !disabled_skills.contains(&s.name));
        let current_datetime = match value.get("current_datetime") {
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Some(s.clone())),
            _ => Some(None),
        };
        Self {
            skills,
            system_message_suffix: text("system_message_suffix"),
            user_message_suffix: text("user_message_suffix"),
            load_project_skills: flag("load_project_skills"),
            disabled_skills,
            current_datetime,
        }
    }

    /// Adds the project's skills; they replace explicit skills of the same name (as the
    /// reference), and disabled names stay out.
    pub fn add_project_skills(&mut self, project: Vec<Skill>) {
        let project: Vec<Skill> = project
            .into_iter()
            .filter(|s| !self.disabled_skills.contains(&s.name))
            .collect();
        let current = std::mem::take(&mut self.skills);
        self.skills = merge_later_wins([current, project]);
    }

    /// Always-active skills for the `<REPO_CONTEXT>` section (`claude` only for Claude
    /// models and `gemini` only for Gemini models), and the skills listed for the model.
    pub fn partition(&self, model: &str) -> (Vec<&Skill>, Vec<&Skill>) {
        let model = model.to_lowercase();
        let mut repo = Vec::new();
        let mut listed = Vec::new();
        for skill in &self.skills {
            if skill.is_agentskills_format || skill.trigger.is_some() {
                if !skill.disable_model_invocation {
                    listed.push(skill);
                }
                continue;
            }
            let name = skill.name.to_lowercase();
            if name == "claude" && !(model.contains("claude") || model.contains("anthropic")) {
                continue;
            }
            if name == "gemini" && !model.contains("gemini") {
                continue;
            }
            repo.push(skill);
        }
        (repo, listed)
    }

    /// The text added to a user message (`extended_content`) and the skills it activates:
    /// the skills whose keywords `message` mentions and that are not in `already_active`,
    /// then the user message suffix. `None` when there is nothing to add.
    pub fn user_message_suffix(
        &self,
        message: &str,
        already_active: &[String],
    ) -> Option<(String, Vec<String>)> {
        let suffix = self
            .user_message_suffix
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let query = message.trim();
        if query.is_empty() {
            return suffix.map(|s| (s.to_owned(), Vec::new()));
        }
        let mut activated = Vec::new();
        let mut blocks = Vec::new();
        for skill in &self.skills {
            let Some(keyword) = skill.match_trigger(query) else {
                continue;
            };
            if already_active.contains(&skill.name) {
                continue;
            }
            blocks.push(crate::prompt::skill_knowledge(
                keyword,
                skill.source.as_deref(),
                &skill.content,
            ));
            activated.push(skill.name.clone());
        }
        if activated.is_empty() {
            return suffix.map(|s| (s.to_owned(), Vec::new()));
        }
        let mut text = blocks.join("\n\n");
        if let Some(suffix) = suffix {
            text.push('\n');
            text.push_str(suffix);
        }
        Some((text, activated))
    }

    /// The text added to a tool observation that touched `file_path` (workspace-relative)
    /// and the path rules it activates: each rule not in `already_active` whose globs match,
    /// once per conversation. `None` when none applies.
    pub fn tool_use_suffix(
        &self,
        file_path: &str,
        already_active: &[String],
    ) -> Option<(String, Vec<String>)> {
        if file_path.is_empty() {
            return None;
        }
        let mut names = Vec::new();
        let mut blocks = Vec::new();
        for skill in &self.skills {
            if already_active.contains(&skill.name) {
                continue;
            }
            if let Some(glob) = skill.match_path_trigger(file_path) {
                blocks.push(crate::prompt::path_rule(
                    glob,
                    skill.source.as_deref(),
                    &skill.content,
                ));
                names.push(skill.name.clone());
            }
        }
        (!names.is_empty()).then(|| (blocks.join("\n"), names))
    }
}

#[cfg(test)]
mod tests;
