//! `read_file`: numbered lines of a text file, a window of at most 1000 lines per call.
//!
//! The file is streamed line by line, so a huge file costs the lines shown, not its size.
//! Lines split like Python's universal newlines (`\n`, `\r\n` or a lone `\r`), and bytes
//! that are not UTF-8 become U+FFFD, as the reference's `errors="replace"` reading does.
//! Unlike the reference, paths that are not regular files (devices, FIFOs) are refused
//! rather than read without end.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use oh_protocol::Content;
use oh_protocol::tool::{ReadFileAction, ReadFileObservation};

use super::{io_failure, resolve};

/// Lines shown when the call gives no `limit`.
pub const MAX_LINES_PER_READ: u64 = 1000;

fn failure(path: &Path, text: String) -> ReadFileObservation {
    ReadFileObservation {
        content: vec![Content::text(text)],
        is_error: true,
        file_path: path.to_string_lossy().into_owned(),
        file_content: String::new(),
        is_truncated: false,
        lines_shown: None,
        total_lines: None,
    }
}

/// Runs the action with relative paths taken from `working_dir`.
pub fn run(working_dir: &Path, action: &ReadFileAction) -> ReadFileObservation {
    let path = resolve(working_dir, &action.file_path);
    if !path.exists() {
        return failure(&path, format!("Error: File not found: {}", path.display()));
    }
    if path.is_dir() {
        return failure(
            &path,
            format!("Error: Path is a directory, not a file: {}", path.display()),
        );
    }
    // Our guard, not the reference's: a FIFO or device would block the call or never end.
    if !path.is_file() {
        return failure(
            &path,
            format!("Error: Path is not a regular file: {}", path.display()),
        );
    }
    let start = action.offset.unwrap_or(0);
    let end = start.saturating_add(action.limit.unwrap_or(MAX_LINES_PER_READ));
    let (shown, total) = match read_window(&path, start, end) {
        Ok(found) => found,
        Err(err) => return failure(&path, io_failure(&err, "reading file", &path)),
    };
    if start >= total {
        return failure(
            &path,
            format!("Error: Offset {start} is beyond file length ({total} lines)"),
        );
    }
    let end = end.min(total);
    let mut numbered = String::new();
    for (number, line) in (start + 1..).zip(&shown) {
        numbered.push_str(&format!("{number:6}  {line}"));
    }
    let is_truncated = end < total;
    let mut header = format!("Read file: {}", path.display());
    if is_truncated {
        header.push_str(&format!(
            " (showing lines {}-{end} of {total}) To read more, use: \
             read_file(file_path='{}', offset={end}, limit={})",
            start + 1,
            action.file_path,
            action.limit.unwrap_or(MAX_LINES_PER_READ)
        ));
    }
    ReadFileObservation {
        content: vec![Content::text(format!("{header}\n\n{numbered}"))],
        is_error: false,
        file_path: path.to_string_lossy().into_owned(),
        file_content: numbered,
        is_truncated,
        lines_shown: is_truncated.then_some((start + 1, end)),
        total_lines: Some(total),
    }
}

/// The lines `start..end` (0-based, with their endings as `\n`) and the file's line count.
fn read_window(path: &Path, start: u64, end: u64) -> std::io::Result<(Vec<String>, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut shown = Vec::new();
    let mut total: u64 = 0;
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        if reader.read_until(b'\n', &mut chunk)? == 0 {
            break;
        }
        // A chunk ends at `\n` (or the end of the file); lone `\r`s inside it end lines too.
        // Neither byte occurs inside a UTF-8 sequence, so splitting before decoding is safe.
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let cut = rest.iter().position(|b| *b == b'\r' || *b == b'\n');
            let (body, ending_len) = match cut {
                Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => (&rest[..i], 2),
                Some(i) => (&rest[..i], 1),
                None => (rest, 0),
            };
            if (start..end).contains(&total) {
                let mut line = String::from_utf8_lossy(body).into_owned();
                if ending_len > 0 {
                    line.push('\n');
                }
                shown.push(line);
            }
            total += 1;
            rest = &rest[body.len() + ending_len..];
        }
    }
    Ok((shown, total))
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    fn read(
        dir: &Path,
        path: &str,
        offset: Option<u64>,
        limit: Option<u64>,
    ) -> ReadFileObservation {
        run(
            dir,
            &ReadFileAction {
                file_path: path.to_owned(),
                offset,
                limit,
            },
        )
    }

    fn text(obs: &ReadFileObservation) -> String {
        obs.content
            .iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(t.text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn whole_small_file_is_numbered() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\ntwo\r\nthree\rfour").unwrap();
        let obs = read(dir.path(), "a.txt", None, None);
        assert!(!obs.is_error);
        let path = dir.path().join("a.txt");
        assert_eq!(obs.file_path, path.to_string_lossy());
        assert_eq!(
            obs.file_content,
            "     1  one\n     2  two\n     3  three\n     4  four"
        );
        assert_eq!(
            text(&obs),
            format!("Read file: {}\n\n{}", path.display(), obs.file_content)
        );
        assert_eq!(obs.total_lines, Some(4));
        assert!(!obs.is_truncated);
        assert_eq!(obs.lines_shown, None);
    }

    #[test]
    fn window_and_pagination_hint() {
        let dir = tempfile::tempdir().unwrap();
        let mut body = String::new();
        for i in 1..=10 {
            writeln!(body, "line {i}").unwrap();
        }
        std::fs::write(dir.path().join("b.txt"), body).unwrap();
        let obs = read(dir.path(), "b.txt", Some(2), Some(3));
        assert_eq!(
            obs.file_content,
            "     3  line 3\n     4  line 4\n     5  line 5\n"
        );
        assert!(obs.is_truncated);
        assert_eq!(obs.lines_shown, Some((3, 5)));
        assert!(
            text(&obs).contains(
                "(showing lines 3-5 of 10) To read more, use: read_file(file_path='b.txt', offset=5, limit=3)"
            ),
            "{}",
            text(&obs)
        );
        // The last window is not truncated.
        let obs = read(dir.path(), "b.txt", Some(8), Some(5));
        assert!(!obs.is_truncated);
        assert_eq!(obs.file_content, "     9  line 9\n    10  line 10\n");
    }

    #[test]
    fn huge_file_is_capped_at_1000_lines() {
        let dir = tempfile::tempdir().unwrap();
        let body = "x\n".repeat(2500);
        std::fs::write(dir.path().join("big.txt"), body).unwrap();
        let obs = read(dir.path(), "big.txt", None, None);
        assert_eq!(obs.total_lines, Some(2500));
        assert_eq!(obs.lines_shown, Some((1, 1000)));
        assert_eq!(obs.file_content.lines().count(), 1000);
        assert!(text(&obs).contains("offset=1000, limit=1000"));
    }

    #[test]
    fn errors_the_model_can_act_on() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read(dir.path(), "nope.txt", None, None);
        assert!(missing.is_error);
        assert_eq!(
            text(&missing),
            format!(
                "Error: File not found: {}",
                dir.path().join("nope.txt").display()
            )
        );
        let folder = read(dir.path(), ".", None, None);
        assert_eq!(
            text(&folder),
            format!(
                "Error: Path is a directory, not a file: {}",
                dir.path().display()
            )
        );
        std::fs::write(dir.path().join("c.txt"), "a\nb\n").unwrap();
        let beyond = read(dir.path(), "c.txt", Some(2), None);
        assert!(beyond.is_error);
        assert_eq!(
            text(&beyond),
            "Error: Offset 2 is beyond file length (2 lines)"
        );
        std::fs::write(dir.path().join("empty.txt"), "").unwrap();
        let empty = read(dir.path(), "empty.txt", None, None);
        assert_eq!(
            text(&empty),
            "Error: Offset 0 is beyond file length (0 lines)"
        );
    }

    #[test]
    fn devices_are_refused_not_read_forever() {
        let dir = tempfile::tempdir().unwrap();
        let obs = read(dir.path(), "/dev/zero", None, None);
        assert!(obs.is_error);
        assert_eq!(text(&obs), "Error: Path is not a regular file: /dev/zero");
    }

    #[test]
    fn binary_bytes_are_replaced_not_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bin"), b"ok\xff\xfe\x00end\n").unwrap();
        let obs = read(dir.path(), "bin", None, None);
        assert!(!obs.is_error);
        assert_eq!(obs.file_content, "     1  ok\u{fffd}\u{fffd}\u{0}end\n");
    }

    #[test]
    fn absolute_paths_outside_the_workspace_are_read() {
        let workspace = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let file = elsewhere.path().join("outside.txt");
        std::fs::write(&file, "far away\n").unwrap();
        let obs = read(workspace.path(), &file.to_string_lossy(), None, None);
        assert!(!obs.is_error, "{}", text(&obs));
        assert_eq!(obs.file_content, "     1  far away\n");
    }
}
