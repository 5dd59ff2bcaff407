//! Line handling and the `cat -n` rendering the model sees.
//!
//! Lines are what Python's text-mode file iteration yields: the file is read with universal
//! newlines (`\r\n` and a lone `\r` become `\n`) and split after each `\n` only.

use crate::tools::truncate::maybe_truncate;

/// Longest text the editor returns before clipping the middle.
pub(crate) const MAX_RESPONSE_LEN_CHAR: usize = 16_000;

/// How many lines of context a snippet shows around an edit.
pub(crate) const SNIPPET_CONTEXT_WINDOW: usize = 4;

/// Notice put into clipped file views (the reference's text).
pub(crate) const TEXT_FILE_CONTENT_TRUNCATED_NOTICE: &str = "<response clipped><NOTE>Due to the max output limit, only part of this file has been shown to you. You should retry this tool after you have searched inside the file with `grep -n` in order to find the line numbers of what you are looking for.</NOTE>";

/// Notice put into clipped directory listings (the reference's text).
pub(crate) const DIRECTORY_CONTENT_TRUNCATED_NOTICE: &str = "<response clipped><NOTE>Due to the max output limit, only part of this directory has been shown to you. You should use `ls -la` instead to view large directories incrementally.</NOTE>";

/// Python's universal-newline translation on read.
pub(crate) fn normalize_newlines(text: &str) -> String {
    if !text.contains('\r') {
        return text.to_owned();
    }
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Number of lines, counting a last line without `\n`.
pub(crate) fn count_lines(text: &str) -> usize {
    let newlines = text.matches('\n').count();
    if text.is_empty() || text.ends_with('\n') {
        newlines
    } else {
        newlines + 1
    }
}

/// The lines, each with its `\n` (the last one may lack it).
pub(crate) fn lines_with_endings(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
}

/// Lines `start..=end` (1-based), joined, each keeping its `\n`.
pub(crate) fn line_range(text: &str, start: usize, end: usize) -> String {
    lines_with_endings(text)
        .enumerate()
        .filter(|(index, _)| (start..=end).contains(&(index + 1)))
        .map(|(_, line)| line)
        .collect()
}

/// `Here's the result of running `cat -n` on <description>:` followed by the content
/// numbered from `start_line` as `%6d\t<line>`, one per line, after clipping the content to
/// [`MAX_RESPONSE_LEN_CHAR`]. A final `\n` ends the last line rather than opening an empty
/// one (1.57.0); empty content gives the header alone.
pub(crate) fn cat_n(content: &str, description: &str, start_line: usize) -> String {
    let clipped = maybe_truncate(
        content,
        MAX_RESPONSE_LEN_CHAR,
        TEXT_FILE_CONTENT_TRUNCATED_NOTICE,
    );
    let mut lines: Vec<&str> = clipped.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut out = format!("Here's the result of running `cat -n` on {description}:\n");
    for (index, line) in lines.iter().enumerate() {
        out.push_str(&format!("{:6}\t{line}\n", index + start_line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_like_python_iteration() {
        assert_eq!(count_lines(""), 0);
        assert_eq!(count_lines("a"), 1);
        assert_eq!(count_lines("a\n"), 1);
        assert_eq!(count_lines("a\nb"), 2);
        assert_eq!(count_lines("\n\n"), 2);
        assert_eq!(count_lines("a\x0cb\n"), 1);
    }

    #[test]
    fn ranges_keep_line_endings() {
        assert_eq!(line_range("a\nb\nc", 2, 3), "b\nc");
        assert_eq!(line_range("a\nb\nc\n", 1, 1), "a\n");
        assert_eq!(line_range("a\n", 3, 9), "");
    }

    #[test]
    fn cat_n_numbers_lines() {
        assert_eq!(
            cat_n("a\nb\n", "/f", 1),
            "Here's the result of running `cat -n` on /f:\n     1\ta\n     2\tb\n"
        );
        assert_eq!(
            cat_n("x", "/f", 7),
            "Here's the result of running `cat -n` on /f:\n     7\tx\n"
        );
        assert_eq!(
            cat_n("", "/f", 1),
            "Here's the result of running `cat -n` on /f:\n"
        );
        assert_eq!(
            cat_n("\n", "/f", 1),
            "Here's the result of running `cat -n` on /f:\n     1\t\n"
        );
    }

    #[test]
    fn newlines_are_normalised() {
        assert_eq!(normalize_newlines("a\r\nb\rc\n"), "a\nb\nc\n");
    }
}
