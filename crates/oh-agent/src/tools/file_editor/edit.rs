//! The commands that change files: `create`, `str_replace`, `insert`, `undo_edit`.

use std::path::Path;

use oh_protocol::tool::{FileEditorCommand, FileEditorObservation};

use super::encoding::TextEncoding;
use super::error::EditorError;
use super::fsio::{read_text, write_text};
use super::history::History;
use super::text::{SNIPPET_CONTEXT_WINDOW, cat_n, count_lines, line_range, lines_with_endings};
use super::text_observation;
use crate::pyfmt::{py_int_list, py_strip};

/// A file the editor is about to change: where it is and how it is named in messages.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The path used for I/O.
    pub(crate) path: &'a Path,
    /// `str(Path(p))`, used in messages and as the history key.
    pub(crate) display: &'a str,
}

/// `create`: writes a new file (the parent directory must exist) and records the text as
/// history, so an immediate undo leaves the file as created.
pub(crate) fn create(
    target: Target<'_>,
    file_text: &str,
    history: &mut History,
) -> Result<FileEditorObservation, EditorError> {
    write_text(target.path, target.display, file_text, TextEncoding::Utf8)?;
    history.push(target.display, file_text.to_owned());
    let mut observation = text_observation(
        FileEditorCommand::Create,
        format!("File created successfully at: {}", target.display),
        target.display,
    );
    observation.prev_exist = false;
    observation.new_content = Some(file_text.to_owned());
    Ok(observation)
}

/// `str_replace`: replaces the single literal occurrence of `old_str`. Without a match the
/// search is retried with `old_str` stripped of surrounding whitespace (`new_str` is kept
/// as given).
pub(crate) fn str_replace(
    target: Target<'_>,
    old_str: &str,
    new_str: &str,
    history: &mut History,
) -> Result<FileEditorObservation, EditorError> {
    let loaded = read_text(target.path, target.display)?;
    let content = &loaded.text;
    let (old_str, occurrences) = match find_all(content, old_str) {
        found if !found.is_empty() => (old_str, found),
        _ => {
            let stripped = py_strip(old_str);
            let found = find_all(content, stripped);
            if found.is_empty() {
                return Err(EditorError::Tool(format!(
                    "No replacement was performed, old_str `{stripped}` did not appear verbatim \
                     in {}.",
                    target.display
                )));
            }
            (stripped, found)
        }
    };
    if let [_, _, ..] = occurrences.as_slice() {
        let mut lines: Vec<usize> = occurrences
            .iter()
            .map(|&at| line_number_at(content, at))
            .collect();
        lines.dedup();
        return Err(EditorError::Tool(format!(
            "No replacement was performed. Multiple occurrences of old_str `{old_str}` in lines \
             {}. Please ensure it is unique.",
            py_int_list(&lines)
        )));
    }
    let at = occurrences.first().copied().unwrap_or_default();
    let new_content = format!(
        "{}{new_str}{}",
        &content[..at],
        &content[at + old_str.len()..]
    );
    write_text(target.path, target.display, &new_content, loaded.encoding)?;
    history.push(target.display, content.clone());

    let line = line_number_at(content, at);
    let start = line.saturating_sub(SNIPPET_CONTEXT_WINDOW);
    let end = line + SNIPPET_CONTEXT_WINDOW + new_str.matches('\n').count();
    let written = read_text(target.path, target.display)?;
    let snippet = line_range(&written.text, start + 1, end);
    let text = format!(
        "The file {display} has been edited. {}Review the changes and make sure they are as \
         expected. Edit the file again if necessary.",
        cat_n(
            &snippet,
            &format!("a snippet of {}", target.display),
            start + 1
        ),
        display = target.display,
    );
    Ok(edited(
        FileEditorCommand::StrReplace,
        text,
        target.display,
        loaded.text,
        new_content,
    ))
}

/// Byte offsets of the non-overlapping occurrences of `needle`, left to right. An empty
/// needle matches at every character boundary, as an empty regular expression does.
fn find_all(haystack: &str, needle: &str) -> Vec<usize> {
    if needle.is_empty() {
        return haystack
            .char_indices()
            .map(|(at, _)| at)
            .chain(std::iter::once(haystack.len()))
            .collect();
    }
    haystack.match_indices(needle).map(|(at, _)| at).collect()
}

/// 1-based line of a byte offset.
fn line_number_at(content: &str, at: usize) -> usize {
    content[..at].matches('\n').count() + 1
}

/// `insert`: puts `new_str` after line `insert_line` (0 = top). Each line of `new_str` is
/// written with a newline, and the surrounding lines are kept as they are (so inserting
/// after a last line without newline joins the two, as in the reference).
pub(crate) fn insert(
    target: Target<'_>,
    insert_line: i64,
    new_str: &str,
    history: &mut History,
) -> Result<FileEditorObservation, EditorError> {
    let loaded = read_text(target.path, target.display)?;
    let num_lines = count_lines(&loaded.text);
    let at = usize::try_from(insert_line)
        .ok()
        .filter(|at| *at <= num_lines)
        .ok_or_else(|| {
            EditorError::invalid(
                "insert_line",
                insert_line.to_string(),
                format!(
                    "It should be within the range of allowed values: {}",
                    py_int_list(&[0, num_lines])
                ),
            )
        })?;
    let new_lines: Vec<&str> = new_str.split('\n').collect();
    let mut new_content = String::with_capacity(loaded.text.len() + new_str.len() + 1);
    let mut old_lines = lines_with_endings(&loaded.text);
    new_content.extend(old_lines.by_ref().take(at));
    for line in &new_lines {
        new_content.push_str(line);
        new_content.push('\n');
    }
    new_content.extend(old_lines);
    write_text(target.path, target.display, &new_content, loaded.encoding)?;

    let start = at.saturating_sub(SNIPPET_CONTEXT_WINDOW);
    let end = (num_lines + new_lines.len()).min(at + SNIPPET_CONTEXT_WINDOW + new_lines.len());
    let written = read_text(target.path, target.display)?;
    let snippet = line_range(&written.text, start + 1, end);
    history.push(target.display, loaded.text.clone());
    let text = format!(
        "The file {} has been edited. {}Review the changes and make sure they are as expected \
         (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
        target.display,
        cat_n(&snippet, "a snippet of the edited file", start + 1),
    );
    Ok(edited(
        FileEditorCommand::Insert,
        text,
        target.display,
        loaded.text,
        written.text,
    ))
}

/// `undo_edit`: writes back the newest recorded version and shows it whole.
pub(crate) fn undo_edit(
    target: Target<'_>,
    history: &mut History,
) -> Result<FileEditorObservation, EditorError> {
    let current = read_text(target.path, target.display)?;
    let previous = history.pop(target.display).ok_or_else(|| {
        EditorError::Tool(format!("No edit history found for {}.", target.display))
    })?;
    write_text(target.path, target.display, &previous, current.encoding)?;
    let text = format!(
        "Last edit to {} undone successfully. {}",
        target.display,
        cat_n(&previous, target.display, 1)
    );
    Ok(edited(
        FileEditorCommand::UndoEdit,
        text,
        target.display,
        current.text,
        previous,
    ))
}

/// A successful edit's observation, with both versions for diff views.
fn edited(
    command: FileEditorCommand,
    text: String,
    display: &str,
    old_content: String,
    new_content: String,
) -> FileEditorObservation {
    let mut observation = text_observation(command, text, display);
    observation.old_content = Some(old_content);
    observation.new_content = Some(new_content);
    observation
}
