//! `write_file`: replaces a file's whole content, creating the file and its parent
//! directories when needed. The observation carries the old and new content (for diffs).

use std::path::Path;

use oh_protocol::Content;
use oh_protocol::tool::{WriteFileAction, WriteFileObservation};

use super::{decode_text, io_failure, resolve};

fn failure(text: String) -> WriteFileObservation {
    WriteFileObservation {
        content: vec![Content::text(text)],
        is_error: true,
        ..WriteFileObservation::default()
    }
}

/// Runs the action with relative paths taken from `working_dir`.
pub fn run(working_dir: &Path, action: &WriteFileAction) -> WriteFileObservation {
    let path = resolve(working_dir, &action.file_path);
    if path.is_dir() {
        return failure(format!(
            "Error: Path is a directory, not a file: {}",
            path.display()
        ));
    }
    let is_new_file = !path.exists();
    // An unreadable old content is left out, not an error (the write may still work).
    // Only a regular file's old content is read (a device could be endless).
    let old_content = if is_new_file || !path.is_file() {
        None
    } else {
        std::fs::read(&path).ok().map(|bytes| decode_text(&bytes))
    };
    if let Some(parent) = path.parent()
        && let Err(err) = std::fs::create_dir_all(parent)
    {
        return failure(io_failure(&err, "writing file", parent));
    }
    if let Err(err) = std::fs::write(&path, action.content.as_bytes()) {
        return failure(io_failure(&err, "writing file", &path));
    }
    let verb = if is_new_file { "Created" } else { "Updated" };
    WriteFileObservation {
        content: vec![Content::text(format!("{verb} file: {}", path.display()))],
        is_error: false,
        file_path: Some(path.to_string_lossy().into_owned()),
        is_new_file,
        old_content,
        new_content: Some(action.content.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, path: &str, content: &str) -> WriteFileObservation {
        run(
            dir,
            &WriteFileAction {
                file_path: path.to_owned(),
                content: content.to_owned(),
            },
        )
    }

    fn text(obs: &WriteFileObservation) -> String {
        obs.content
            .iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(t.text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn creates_with_parents_then_updates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/er/new.txt");
        let obs = write(dir.path(), "deep/er/new.txt", "hello\n");
        assert!(!obs.is_error);
        assert!(obs.is_new_file);
        assert_eq!(text(&obs), format!("Created file: {}", path.display()));
        assert_eq!(obs.old_content, None);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");

        std::fs::write(&path, "crlf\r\nold\n").unwrap();
        let obs = write(dir.path(), &path.to_string_lossy(), "new");
        assert!(!obs.is_new_file);
        assert_eq!(text(&obs), format!("Updated file: {}", path.display()));
        assert_eq!(obs.old_content.as_deref(), Some("crlf\nold\n"));
        assert_eq!(obs.new_content.as_deref(), Some("new"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    }

    #[test]
    fn directory_and_blocked_parent_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let obs = write(dir.path(), ".", "x");
        assert!(obs.is_error);
        assert_eq!(obs.file_path, None);
        assert_eq!(
            text(&obs),
            format!(
                "Error: Path is a directory, not a file: {}",
                dir.path().display()
            )
        );
        std::fs::write(dir.path().join("plain"), "f").unwrap();
        let obs = write(dir.path(), "plain/child.txt", "x");
        assert!(obs.is_error);
        assert!(
            text(&obs).starts_with("Error writing file: [Errno"),
            "{}",
            text(&obs)
        );
    }

    #[test]
    fn binary_old_content_is_decoded_lossily() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.bin"), b"\xff\x00a").unwrap();
        let obs = write(dir.path(), "b.bin", "text");
        assert_eq!(obs.old_content.as_deref(), Some("\u{fffd}\u{0}a"));
    }
}
