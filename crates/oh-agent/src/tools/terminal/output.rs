//! The prompt block, output clean-up, and the text the LLM sees.

use std::path::Path;
use std::sync::LazyLock;

use oh_protocol::message::Content;
use oh_protocol::tool::{CmdOutputMetadata, TerminalObservation};
use regex::Regex;
use sha2::{Digest as _, Sha256};

pub(super) use crate::pyfmt::{float_str as python_float, repr as python_repr};
use crate::tools::truncate::{CLIPPED_NOTICE, maybe_truncate};

/// First marker of the prompt block.
const PS1_BEGIN: &str = "###PS1JSON###";
/// Last marker of the prompt block.
const PS1_END: &str = "###PS1END###";

/// The prompt bash prints after every command: a JSON object between two marker lines
/// (the reference's `CmdOutputMetadata.to_ps1_prompt()`, without its shell escaping).
pub(super) const PS1: &str = concat!(
    "\n###PS1JSON###\n",
    "{\n",
    "  \"pid\": \"$!\",\n",
    "  \"exit_code\": \"$?\",\n",
    "  \"username\": \"\\u\",\n",
    "  \"hostname\": \"\\h\",\n",
    "  \"working_dir\": \"$(pwd)\",\n",
    "  \"py_interpreter_path\": \"$(command -v python || echo \"\")\"\n",
    "}\n",
    "###PS1END###\n",
);

/// Raw command output is cut to this many characters, and so is the text for the LLM.
pub(super) const MAX_OUTPUT_CHARS: usize = 30_000;

/// Header of an error observation, as its own content block.
pub(super) const ERROR_HEADER: &str = "[An error occurred during execution.]\n";

/// A prompt block found in the screen text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PromptBlock {
    /// Start of the block, including the newline the prompt begins with.
    pub(super) start: usize,
    /// End of the block, including the newline after the end marker if it already arrived.
    pub(super) end: usize,
    /// The parsed fields.
    pub(super) metadata: CmdOutputMetadata,
}

/// Finds the first valid prompt block in `text` whose end marker starts at or after
/// `scan_from` and whose begin marker is at or after `min_start`.
pub(super) fn find_prompt(text: &str, min_start: usize, scan_from: usize) -> Option<PromptBlock> {
    // The end marker may have been cut in half at `scan_from` by an earlier read.
    let mut from = scan_from.saturating_sub(PS1_END.len()).max(min_start);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    while let Some(rel) = text[from..].find(PS1_END) {
        let end_marker = from + rel;
        if let Some(begin_rel) = text[min_start..end_marker].rfind(PS1_BEGIN) {
            let begin = min_start + begin_rel;
            let body = &text[begin + PS1_BEGIN.len()..end_marker];
            if let Some(metadata) = parse_prompt_body(body) {
                let start = if begin > min_start && text[..begin].ends_with('\n') {
                    begin - 1
                } else {
                    begin
                };
                let mut end = end_marker + PS1_END.len();
                if text[end..].starts_with('\n') {
                    end += 1;
                }
                return Some(PromptBlock {
                    start,
                    end,
                    metadata,
                });
            }
        }
        from = end_marker + PS1_END.len();
    }
    None
}

/// Parses the JSON-looking body of a prompt block line by line, so values holding quotes
/// or backslashes (a directory name, say) do not break it.
fn parse_prompt_body(body: &str) -> Option<CmdOutputMetadata> {
    let body = body.trim();
    let inner = body.strip_prefix('{')?.strip_suffix('}')?;
    let mut metadata = CmdOutputMetadata::default();
    let mut saw_exit_code = false;
    for line in inner.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let line = line.strip_suffix(',').unwrap_or(line);
        let (key, value) = line.split_once("\": \"")?;
        let key = key.strip_prefix('"')?;
        let value = value.strip_suffix('"')?;
        match key {
            "pid" => metadata.pid = parse_int(value),
            "exit_code" => {
                metadata.exit_code = parse_int(value);
                saw_exit_code = true;
            }
            "username" => metadata.username = Some(value.to_owned()),
            "hostname" => metadata.hostname = Some(value.to_owned()),
            "working_dir" => metadata.working_dir = Some(value.to_owned()),
            "py_interpreter_path" => metadata.py_interpreter_path = Some(value.to_owned()),
            _ => return None,
        }
    }
    saw_exit_code.then_some(metadata)
}

/// `int(float(value))`, or -1.
fn parse_int(value: &str) -> i64 {
    let value = value.trim();
    if let Ok(n) = value.parse::<i64>() {
        return n;
    }
    match value.parse::<f64>() {
        #[allow(clippy::cast_possible_truncation, reason = "Python's int(float(x))")]
        Ok(f) if f.is_finite() => f.trunc() as i64,
        _ => -1,
    }
}

/// Removes every prompt block from `text` (the prompts bash printed between the
/// statements of one multi-statement command).
pub(super) fn strip_prompts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(block) = find_prompt(text, pos, pos) {
        out.push_str(&text[pos..block.start]);
        out.push('\n');
        pos = block.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Collapses an echoed line for comparison with what was typed: readline may drop or
/// rewrite tabs when it echoes.
fn normalize_echo_line(line: &str) -> String {
    line.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Strips the terminal's echo of `command` from the front of `output`, if the terminal
/// echoed it (echo is normally off; a program may have turned it back on). Leading
/// whitespace is always removed, as in the reference.
pub(super) fn remove_command_echo(output: &str, command: &str) -> String {
    let stripped = output.trim_start();
    let cmd = command.trim_start();
    if cmd.is_empty() {
        return stripped.to_owned();
    }
    if let Some(rest) = stripped.strip_prefix(cmd) {
        return rest.trim_start().to_owned();
    }
    let out_lines: Vec<&str> = stripped.split('\n').collect();
    let cmd_lines: Vec<&str> = cmd.split('\n').collect();
    if cmd_lines.len() <= out_lines.len()
        && cmd_lines
            .iter()
            .zip(&out_lines)
            .all(|(c, o)| normalize_echo_line(c) == normalize_echo_line(o))
    {
        return out_lines[cmd_lines.len()..]
            .join("\n")
            .trim_start()
            .to_owned();
    }
    stripped.to_owned()
}

/// Terminal queries (cursor position, device attributes, colour queries, DECRQSS) that
/// would make a displaying terminal answer; the reference strips them from outputs.
static TERMINAL_QUERIES: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\x1b\[6n",
        r"|\x1b\]\d+(?:;[^;\x07\x1b]*)?;\?(?:\x07|\x1b\\)",
        r"|\x1b\[0?c",
        r"|\x1b\[>0?c",
        r"|\x1bP\$q[^\x1b]*\x1b\\",
    ))
    .ok()
});

/// Removes terminal query sequences.
pub(super) fn filter_terminal_queries(text: &str) -> String {
    match TERMINAL_QUERIES.as_ref() {
        Some(re) if text.contains('\x1b') => re.replace_all(text, "").into_owned(),
        _ => text.to_owned(),
    }
}

/// The cleaned output of a command: echo removed, queries filtered, right-stripped, cut to
/// [`MAX_OUTPUT_CHARS`].
pub(super) fn clean_output(raw: &str, command: &str) -> String {
    let text = remove_command_echo(raw, command);
    let text = filter_terminal_queries(&text);
    maybe_truncate(text.trim_end(), MAX_OUTPUT_CHARS, CLIPPED_NOTICE)
}

/// Number of lines as Python's `str.splitlines()` counts them.
pub(super) fn python_line_count(text: &str) -> usize {
    let mut count = 0;
    let mut chars = text.chars().peekable();
    let mut in_line = false;
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                count += 1;
                in_line = false;
            }
            '\n' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => {
                count += 1;
                in_line = false;
            }
            _ => in_line = true,
        }
    }
    count + usize::from(in_line)
}

/// The text of all text blocks of an observation.
pub(super) fn observation_text(observation: &TerminalObservation) -> String {
    observation
        .content
        .iter()
        .filter_map(Content::as_text)
        .collect()
}

/// Builds what the LLM sees for a terminal observation (see [`super::llm_content`]).
pub(super) fn llm_content(
    observation: &TerminalObservation,
    conversation_dir: Option<&Path>,
) -> Vec<Content> {
    let mut blocks = Vec::with_capacity(2);
    if observation.is_error {
        blocks.push(Content::text(ERROR_HEADER));
    }
    let metadata = &observation.metadata;
    let mut text = format!(
        "{}{}{}",
        metadata.prefix,
        observation_text(observation),
        metadata.suffix
    );
    if let Some(dir) = metadata.working_dir.as_deref().filter(|d| !d.is_empty()) {
        text.push_str(&format!("\n[Current working directory: {dir}]"));
    }
    if let Some(py) = metadata
        .py_interpreter_path
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        text.push_str(&format!("\n[Python interpreter: {py}]"));
    }
    if metadata.exit_code != -1 {
        text.push_str(&format!(
            "\n[Command finished with exit code {}]",
            metadata.exit_code
        ));
    }
    let save_dir = conversation_dir
        .map(|dir| dir.join("observations"))
        .or_else(|| {
            observation
                .full_output_save_dir
                .as_deref()
                .map(std::path::PathBuf::from)
        });
    blocks.push(Content::text(truncate_and_save(
        &text,
        MAX_OUTPUT_CHARS,
        save_dir.as_deref(),
    )));
    blocks
}

/// The reference's `maybe_truncate` with `save_dir`: when `text` is too long and a save
/// directory is given, the whole `text` is written (once) to
/// `terminal_output_<sha256 first 8 hex>.txt` there and the notice names it, with the line
/// where the cut starts.
pub(super) fn truncate_and_save(text: &str, limit: usize, save_dir: Option<&Path>) -> String {
    let total = text.chars().count();
    if total <= limit {
        return text.to_owned();
    }
    let notice_len = CLIPPED_NOTICE.chars().count();
    if notice_len >= limit {
        return CLIPPED_NOTICE.chars().take(limit).collect();
    }
    let available = limit - notice_len;
    let proposed_head = available.div_ceil(2);
    let mut notice = CLIPPED_NOTICE.to_owned();
    if let Some(dir) = save_dir
        && let Some(path) = save_full_output(text, dir)
    {
        let head: String = text.chars().take(proposed_head).collect();
        let line = python_line_count(&head) + 1;
        notice = format!(
            "<response clipped><NOTE>Due to the max output limit, only part of the full \
             response has been shown to you. The complete output has been saved to {path} - \
             you can use other tools to view the full content (truncated part starts around \
             line {line}).</NOTE>"
        );
    }
    let notice_len = notice.chars().count();
    if notice_len >= limit {
        return notice.chars().take(limit).collect();
    }
    let remaining = limit - notice_len;
    let head = proposed_head.min(remaining);
    let tail = remaining - head;
    let mut out = String::with_capacity(text.len().min(limit * 4));
    out.extend(text.chars().take(head));
    out.push_str(&notice);
    out.extend(text.chars().skip(total - tail));
    out
}

/// Writes `text` to `<dir>/terminal_output_<hash>.txt` unless that file exists; returns
/// its path, or `None` if it could not be written.
fn save_full_output(text: &str, dir: &Path) -> Option<String> {
    std::fs::create_dir_all(dir).ok()?;
    let digest = Sha256::digest(text.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("terminal_output_{hash}.txt"));
    if !path.exists() {
        std::fs::write(&path, text).ok()?;
    }
    Some(path.to_string_lossy().into_owned())
}

/// A number as Python's `f"{value:g}"` prints it.
pub(super) fn python_g(value: f64) -> String {
    if !value.is_finite() {
        return python_float(value);
    }
    if value == 0.0 {
        return "0".to_owned();
    }
    let sci = format!("{value:.5e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        return sci;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        let decimals = usize::try_from(5 - exp).unwrap_or(0);
        let fixed = format!("{value:.decimals$}");
        strip_zeros(&fixed)
    } else {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

fn strip_zeros(number: &str) -> String {
    if number.contains('.') {
        number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        number.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(exit: &str, dir: &str) -> String {
        PS1.replace("$?", exit)
            .replace("$!", "")
            .replace("\\u", "me")
            .replace("\\h", "box")
            .replace("$(pwd)", dir)
            .replace("$(command -v python || echo \"\")", "")
    }

    #[test]
    fn finds_and_parses_a_prompt() {
        let text = format!("hello{}rest", block("3", "/tmp/a \"b\""));
        let found = find_prompt(&text, 0, 0);
        let found = found.as_ref().map(|b| {
            (
                &text[..b.start],
                &text[b.end..],
                b.metadata.exit_code,
                b.metadata.working_dir.clone(),
                b.metadata.pid,
            )
        });
        assert_eq!(
            found,
            Some(("hello", "rest", 3, Some("/tmp/a \"b\"".to_owned()), -1))
        );
    }

    #[test]
    fn incomplete_prompt_is_not_found() {
        let full = block("0", "/");
        let cut = &full[..full.len() - 8];
        assert_eq!(find_prompt(cut, 0, 0), None);
        assert_eq!(strip_prompts(&format!("a{full}b{full}c")), "a\nb\nc");
    }

    #[test]
    fn echo_is_removed_only_when_present() {
        assert_eq!(remove_command_echo("echo hi\nhi", "echo hi"), "hi");
        assert_eq!(remove_command_echo("  hi", "echo hi"), "hi");
        assert_eq!(remove_command_echo("a\n\tb\nout", "a\nb"), "out");
    }

    #[test]
    fn python_formats() {
        assert_eq!(python_float(1.0), "1.0");
        assert_eq!(python_float(2.5), "2.5");
        assert_eq!(python_float(0.00001), "1e-05");
        assert_eq!(python_g(3240.0), "3240");
        assert_eq!(python_g(0.5), "0.5");
        assert_eq!(python_g(1_000_000.0), "1e+06");
        assert_eq!(python_repr("it's"), "\"it's\"");
        assert_eq!(python_repr("[{\"a\": 1}]"), "'[{\"a\": 1}]'");
        assert_eq!(python_line_count("a\nb\r\nc"), 3);
        assert_eq!(python_line_count("a\n"), 1);
        assert_eq!(python_line_count(""), 0);
    }

    #[test]
    fn terminal_queries_are_filtered() {
        assert_eq!(
            filter_terminal_queries("a\x1b[6nb\x1b]11;?\x07c\x1b[31md"),
            "abc\x1b[31md"
        );
    }
}
