//! Parsing and applying the `*** Begin Patch` format, as the reference's `apply_patch` does.
//!
//! The format (from OpenAI's GPT-5 guide): a patch starts with `*** Begin Patch` and ends
//! with `*** End Patch`; in between come file sections:
//!
//! * `*** Add File: PATH` followed by the new file's lines, each prefixed with `+`;
//! * `*** Delete File: PATH`;
//! * `*** Update File: PATH`, optionally `*** Move to: NEW_PATH`, then hunks: an optional
//!   `@@ LINE` naming a line to move past first (or a bare `@@`), then context lines
//!   (` `), removed lines (`-`) and added lines (`+`); `*** End of File` anchors a hunk at
//!   the end of the file.
//!
//! Context lines are matched exactly first, then ignoring trailing whitespace (fuzz 1), then
//! ignoring surrounding whitespace (fuzz 100); an end-of-file hunk found elsewhere adds
//! 10000. The error texts are the reference's, since the model reacts to them.
//!
//! Everything is parsed before anything is written; then the changes are applied in patch
//! order, like the reference (a failure in the middle of the writes leaves earlier ones).

use oh_protocol::tool_gpt5_planning::{Commit, FileChange, FileChangeType};

/// A patch the model can fix: the text is what it sees (the reference's `DiffError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DiffError(pub String);

/// An I/O failure while applying a patch, with the text shown to the model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch itself is wrong.
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// A file is not UTF-8 text (the reference's `UnicodeDecodeError`, a `ValueError`).
    #[error("{0}")]
    Decode(String),
    /// Reading or writing failed (an `OSError` in the reference).
    #[error("{0}")]
    Io(String),
}

fn diff<T>(message: impl Into<String>) -> Result<T, PatchError> {
    Err(PatchError::Diff(DiffError(message.into())))
}

/// File access of [`process_patch`]; paths are as written in the patch.
pub trait PatchFs {
    /// Reads a file as UTF-8 text. A missing file is `Ok(None)`.
    fn read(&mut self, path: &str) -> Result<Option<String>, PatchError>;
    /// Writes a file, creating its parent directories.
    fn write(&mut self, path: &str, content: &str) -> Result<(), PatchError>;
    /// Removes a file.
    fn remove(&mut self, path: &str) -> Result<(), PatchError>;
}

/// A replacement inside an updated file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Chunk {
    /// Index of the first line of the original file it replaces.
    orig_index: i64,
    del_lines: Vec<String>,
    ins_lines: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatchAction {
    Add(String),
    Delete,
    Update {
        chunks: Vec<Chunk>,
        /// `""` when the file is not moved (as the reference records it).
        move_path: String,
    },
}

/// Python's `str.startswith` with a tuple of prefixes.
fn starts_with_any(line: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| line.starts_with(p))
}

/// Python's `list[i:j]` bounds for possibly negative `i`, `j`.
fn py_slice<T>(items: &[T], start: i64, end: i64) -> &[T] {
    let len = items.len() as i64;
    let norm = |i: i64| -> usize {
        let i = if i < 0 { i + len } else { i };
        i.clamp(0, len) as usize
    };
    let (s, e) = (norm(start), norm(end));
    if s >= e { &[] } else { &items[s..e] }
}

const END_PATCH: &str = "*** End Patch";
const UPDATE_FILE: &str = "*** Update File: ";
const DELETE_FILE: &str = "*** Delete File: ";
const ADD_FILE: &str = "*** Add File: ";
const MOVE_TO: &str = "*** Move to: ";
const END_OF_FILE: &str = "*** End of File";

struct Parser<'a> {
    current_files: &'a [(String, String)],
    lines: Vec<&'a str>,
    index: usize,
    actions: Vec<(String, PatchAction)>,
    fuzz: i64,
}

impl<'a> Parser<'a> {
    fn current(&self, path: &str) -> Option<&'a str> {
        self.current_files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, text)| text.as_str())
    }

    fn has_action(&self, path: &str) -> bool {
        self.actions.iter().any(|(p, _)| p == path)
    }

    fn is_done(&self, prefixes: &[&str]) -> bool {
        self.index >= self.lines.len() || starts_with_any(self.lines[self.index], prefixes)
    }

    fn unexpected_end(&self) -> PatchError {
        PatchError::Diff(DiffError(format!(
            "Unexpected end of patch at index {}",
            self.index
        )))
    }

    /// The rest of the current line after `prefix` (advancing), or `""` (not advancing)
    /// when the line does not start with it. A line equal to `prefix` advances and gives
    /// `""`, as in the reference.
    fn read_str(&mut self, prefix: &str) -> Result<&'a str, PatchError> {
        let Some(line) = self.lines.get(self.index).copied() else {
            return Err(self.unexpected_end());
        };
        match line.strip_prefix(prefix) {
            Some(rest) => {
                self.index += 1;
                Ok(rest)
            }
            None => Ok(""),
        }
    }

    fn parse(&mut self) -> Result<(), PatchError> {
        while !self.is_done(&[END_PATCH]) {
            let path = self.read_str(UPDATE_FILE)?;
            if !path.is_empty() {
                if self.has_action(path) {
                    return diff(format!("Update File Error: Duplicate Path: {path}"));
                }
                let move_to = self.read_str(MOVE_TO)?;
                if !move_to.is_empty()
                    && (move_to.split('/').any(|part| part == "..") || move_to.starts_with('/'))
                {
                    return diff(format!(
                        "Update File Error: Invalid move path '{move_to}': must be a relative \
                         path without '..' components"
                    ));
                }
                let Some(text) = self.current(path) else {
                    return diff(format!("Update File Error: Missing File: {path}"));
                };
                let chunks = self.parse_update_file(text)?;
                self.actions.push((
                    path.to_owned(),
                    PatchAction::Update {
                        chunks,
                        move_path: move_to.to_owned(),
                    },
                ));
                continue;
            }
            let path = self.read_str(DELETE_FILE)?;
            if !path.is_empty() {
                if self.has_action(path) {
                    return diff(format!("Delete File Error: Duplicate Path: {path}"));
                }
                if self.current(path).is_none() {
                    return diff(format!("Delete File Error: Missing File: {path}"));
                }
                self.actions.push((path.to_owned(), PatchAction::Delete));
                continue;
            }
            let path = self.read_str(ADD_FILE)?;
            if !path.is_empty() {
                if self.has_action(path) {
                    return diff(format!("Add File Error: Duplicate Path: {path}"));
                }
                let content = self.parse_add_file()?;
                self.actions
                    .push((path.to_owned(), PatchAction::Add(content)));
                continue;
            }
            return diff(format!("Unknown Line: {}", self.lines[self.index]));
        }
        match self.lines.get(self.index) {
            None => Err(self.unexpected_end()),
            Some(line) if line.starts_with(END_PATCH) => {
                self.index += 1;
                Ok(())
            }
            Some(_) => diff("Missing End Patch"),
        }
    }

    fn parse_update_file(&mut self, text: &str) -> Result<Vec<Chunk>, PatchError> {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut chunks_out = Vec::new();
        let mut index: usize = 0;
        while !self.is_done(&[
            END_PATCH,
            "*** Update File:",
            "*** Delete File:",
            "*** Add File:",
            END_OF_FILE,
        ]) {
            let def_str = self.read_str("@@ ")?;
            let mut section = false;
            if def_str.is_empty() && self.lines.get(self.index) == Some(&"@@") {
                section = true;
                self.index += 1;
            }
            if !(!def_str.is_empty() || section || index == 0) {
                let line = self.lines.get(self.index).copied().unwrap_or_default();
                return diff(format!("Invalid Line:\n{line}"));
            }
            if !def_str.trim().is_empty() {
                let mut found = false;
                let index_now = index.min(lines.len());
                if !lines[..index_now].contains(&def_str)
                    && let Some(i) = lines[index_now..].iter().position(|s| *s == def_str)
                {
                    index += i + 1;
                    found = true;
                }
                let wanted = def_str.trim();
                let index_now = index.min(lines.len());
                if !found
                    && !lines[..index_now].iter().any(|s| s.trim() == wanted)
                    && let Some(i) = lines[index_now..].iter().position(|s| s.trim() == wanted)
                {
                    index += i + 1;
                    self.fuzz += 1;
                }
            }
            let section = peek_next_section(&self.lines, self.index)?;
            let (new_index, fuzz) = find_context(&lines, &section.context, index, section.eof);
            if new_index < 0 {
                let text = section.context.join("\n");
                return diff(if section.eof {
                    format!("Invalid EOF Context {index}:\n{text}")
                } else {
                    format!("Invalid Context {index}:\n{text}")
                });
            }
            self.fuzz += fuzz;
            for mut chunk in section.chunks {
                chunk.orig_index += new_index;
                chunks_out.push(chunk);
            }
            index = new_index as usize + section.context.len();
            self.index = section.end_index;
        }
        Ok(chunks_out)
    }

    fn parse_add_file(&mut self) -> Result<String, PatchError> {
        let mut out: Vec<&str> = Vec::new();
        while !self.is_done(&[
            END_PATCH,
            "*** Update File:",
            "*** Delete File:",
            "*** Add File:",
        ]) {
            let line = self.read_str("")?;
            let Some(rest) = line.strip_prefix('+') else {
                return diff(format!("Invalid Add File Line: {line}"));
            };
            out.push(rest);
        }
        Ok(out.join("\n"))
    }
}

fn find_context_core(lines: &[&str], context: &[String], start: i64) -> (i64, i64) {
    if context.is_empty() {
        return (start, 0);
    }
    let n = context.len() as i64;
    let end = lines.len() as i64;
    type Norm = fn(&str) -> &str;
    let passes: [(Norm, i64); 3] = [(|s| s, 0), (str::trim_end, 1), (str::trim, 100)];
    for (norm, fuzz) in passes {
        for i in start..end {
            let window = py_slice(lines, i, i + n);
            if window.len() == context.len()
                && window
                    .iter()
                    .zip(context)
                    .all(|(a, b)| norm(a) == norm(b.as_str()))
            {
                return (i, fuzz);
            }
        }
    }
    (-1, 0)
}

fn find_context(lines: &[&str], context: &[String], start: usize, eof: bool) -> (i64, i64) {
    if eof {
        let from_end = lines.len() as i64 - context.len() as i64;
        let (index, fuzz) = find_context_core(lines, context, from_end);
        if index != -1 {
            return (index, fuzz);
        }
        let (index, fuzz) = find_context_core(lines, context, start as i64);
        return (index, fuzz + 10000);
    }
    find_context_core(lines, context, start as i64)
}

struct Section {
    /// The original lines the hunk expects (context and removed lines).
    context: Vec<String>,
    chunks: Vec<Chunk>,
    end_index: usize,
    eof: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Keep,
    Add,
    Delete,
}

fn peek_next_section(lines: &[&str], mut index: usize) -> Result<Section, PatchError> {
    let mut old: Vec<String> = Vec::new();
    let mut del_lines: Vec<String> = Vec::new();
    let mut ins_lines: Vec<String> = Vec::new();
    let mut chunks = Vec::new();
    let mut mode = Mode::Keep;
    let start = index;
    while index < lines.len() {
        let line = lines[index];
        if starts_with_any(
            line,
            &[
                "@@",
                END_PATCH,
                "*** Update File:",
                "*** Delete File:",
                "*** Add File:",
                END_OF_FILE,
            ],
        ) || line == "***"
        {
            break;
        }
        if line.starts_with("***") {
            return diff(format!("Invalid Line: {line}"));
        }
        index += 1;
        let last_mode = mode;
        let line = if line.is_empty() { " " } else { line };
        let mut chars = line.chars();
        mode = match chars.next() {
            Some('+') => Mode::Add,
            Some('-') => Mode::Delete,
            Some(' ') => Mode::Keep,
            _ => return diff(format!("Invalid Line: {line}")),
        };
        let text = chars.as_str().to_owned();
        if mode == Mode::Keep
            && last_mode != mode
            && !(ins_lines.is_empty() && del_lines.is_empty())
        {
            chunks.push(Chunk {
                orig_index: (old.len() - del_lines.len()) as i64,
                del_lines: std::mem::take(&mut del_lines),
                ins_lines: std::mem::take(&mut ins_lines),
            });
        }
        match mode {
            Mode::Delete => {
                del_lines.push(text.clone());
                old.push(text);
            }
            Mode::Add => ins_lines.push(text),
            Mode::Keep => old.push(text),
        }
    }
    if !(ins_lines.is_empty() && del_lines.is_empty()) {
        chunks.push(Chunk {
            orig_index: (old.len() - del_lines.len()) as i64,
            del_lines,
            ins_lines,
        });
    }
    if lines.get(index) == Some(&END_OF_FILE) {
        return Ok(Section {
            context: old,
            chunks,
            end_index: index + 1,
            eof: true,
        });
    }
    if index == start {
        let line = lines.get(index).copied().unwrap_or_default();
        return diff(format!("Nothing in this section - index={index} {line}"));
    }
    Ok(Section {
        context: old,
        chunks,
        end_index: index,
        eof: false,
    })
}

/// The paths an update or delete needs to read, in patch order, without repeats.
fn files_needed(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.trim().split('\n') {
        let path = line
            .strip_prefix(UPDATE_FILE)
            .or_else(|| line.strip_prefix(DELETE_FILE));
        if let Some(path) = path
            && !out.iter().any(|p| p == path)
        {
            out.push(path.to_owned());
        }
    }
    out
}

fn updated_file(text: &str, chunks: &[Chunk], path: &str) -> Result<String, PatchError> {
    let orig: Vec<&str> = text.split('\n').collect();
    let len = orig.len() as i64;
    let mut dest: Vec<&str> = Vec::new();
    let mut orig_index: i64 = 0;
    let mut dest_index: i64 = 0;
    for chunk in chunks {
        if chunk.orig_index > len {
            return diff(format!(
                "_get_updated_file: {path}: chunk.orig_index {} > len(lines) {len}",
                chunk.orig_index
            ));
        }
        if orig_index > chunk.orig_index {
            return diff(format!(
                "_get_updated_file: {path}: orig_index {orig_index} > chunk.orig_index {}",
                chunk.orig_index
            ));
        }
        dest.extend_from_slice(py_slice(&orig, orig_index, chunk.orig_index));
        let delta = chunk.orig_index - orig_index;
        orig_index += delta;
        dest_index += delta;
        dest.extend(chunk.ins_lines.iter().map(String::as_str));
        dest_index += chunk.ins_lines.len() as i64;
        orig_index += chunk.del_lines.len() as i64;
    }
    dest.extend_from_slice(py_slice(&orig, orig_index, len));
    let delta = len - orig_index;
    dest_index += delta;
    if dest_index != dest.len() as i64 {
        return diff(format!(
            "_get_updated_file: {path}: dest line count mismatch (dest_index={dest_index}, len={})",
            dest.len()
        ));
    }
    Ok(dest.join("\n"))
}

/// What [`process_patch`] did: the reference's `(message, fuzz, commit)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// `Done!`.
    pub message: String,
    /// Total fuzz of the context matches.
    pub fuzz: i64,
    /// The changes, by path as written in the patch.
    pub commit: Commit,
}

/// Parses `text` against the files it names, then applies it through `fs`.
pub fn process_patch(text: &str, fs: &mut dyn PatchFs) -> Result<Applied, PatchError> {
    if !text.starts_with("*** Begin Patch") {
        return diff("Invalid patch: must start with '*** Begin Patch'");
    }
    let mut originals: Vec<(String, String)> = Vec::new();
    for path in files_needed(text) {
        match fs.read(&path)? {
            Some(content) => originals.push((path, content)),
            None => return diff(format!("Delete File Error: Missing File: {path}")),
        }
    }
    let lines: Vec<&str> = text.trim().split('\n').collect();
    if lines.len() < 2
        || !lines[0].starts_with("*** Begin Patch")
        || lines[lines.len() - 1] != END_PATCH
    {
        return diff("Invalid patch text");
    }
    let mut parser = Parser {
        current_files: &originals,
        lines,
        index: 1,
        actions: Vec::new(),
        fuzz: 0,
    };
    parser.parse()?;
    let original = |path: &str| {
        originals
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, text)| text.clone())
            .unwrap_or_default()
    };
    // The changes in patch order (the commit's map is sorted by path).
    let mut changes: Vec<(String, FileChange)> = Vec::new();
    for (path, action) in &parser.actions {
        let change = match action {
            PatchAction::Delete => FileChange {
                change_type: FileChangeType::Delete,
                old_content: Some(original(path)),
                new_content: None,
                move_path: None,
            },
            PatchAction::Add(content) => FileChange {
                change_type: FileChangeType::Add,
                old_content: None,
                new_content: Some(content.clone()),
                move_path: None,
            },
            PatchAction::Update { chunks, move_path } => {
                let old = original(path);
                let new = updated_file(&old, chunks, path)?;
                FileChange {
                    change_type: FileChangeType::Update,
                    old_content: Some(old),
                    new_content: Some(new),
                    move_path: Some(move_path.clone()),
                }
            }
        };
        changes.push((path.clone(), change));
    }
    for (path, change) in &changes {
        let content = change.new_content.as_deref().unwrap_or_default();
        match change.change_type {
            FileChangeType::Delete => fs.remove(path)?,
            FileChangeType::Add => fs.write(path, content)?,
            FileChangeType::Update => match change.move_path.as_deref() {
                Some(to) if !to.is_empty() => {
                    fs.write(to, content)?;
                    fs.remove(path)?;
                }
                _ => fs.write(path, content)?,
            },
        }
    }
    Ok(Applied {
        message: "Done!".to_owned(),
        fuzz: parser.fuzz,
        commit: Commit {
            changes: changes.into_iter().collect(),
        },
    })
}
