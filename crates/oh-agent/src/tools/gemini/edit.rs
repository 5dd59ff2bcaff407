//! `edit`: replaces every occurrence of an exact string, provided the number of occurrences
//! is the one the model expected; an empty `old_string` creates a new file instead.
//!
//! The path is resolved like the reference's `Path.resolve()`: joined to the working
//! directory, symbolic links followed, `..` applied, the file itself not required to exist.

use std::path::{Component, Path, PathBuf};

use oh_protocol::Content;
use oh_protocol::tool::{EditAction, EditObservation};

use super::{decode_text, io_failure};

fn failure(text: String, file_path: Option<&Path>) -> EditObservation {
    EditObservation {
        content: vec![Content::text(text)],
        is_error: true,
        file_path: file_path.map(|p| p.to_string_lossy().into_owned()),
        ..EditObservation::default()
    }
}

/// `Path(working_dir, path).resolve()` without requiring the path to exist: the longest
/// existing prefix is canonicalised, the rest appended with `.` dropped and `..` applied.
pub(crate) fn resolve_lenient(working_dir: &Path, path: &str) -> PathBuf {
    let joined = working_dir.join(path);
    let mut existing = PathBuf::new();
    let mut rest: Vec<Component<'_>> = Vec::new();
    for component in joined.components() {
        if rest.is_empty() {
            let candidate = existing.join(component);
            if std::fs::symlink_metadata(&candidate).is_ok() || candidate == Path::new("/") {
                existing = candidate;
                continue;
            }
        }
        rest.push(component);
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    for component in rest {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Runs the action with relative paths taken from `working_dir`.
pub fn run(working_dir: &Path, action: &EditAction) -> EditObservation {
    let path = resolve_lenient(working_dir, &action.file_path);
    let shown = path.display();
    if action.old_string.is_empty() {
        if path.exists() {
            return failure(
                format!(
                    "Error: Cannot create file that already exists: {shown}. Use write_file \
                     to overwrite or provide non-empty old_string."
                ),
                None,
            );
        }
        if let Some(parent) = path.parent()
            && let Err(err) = std::fs::create_dir_all(parent)
        {
            return failure(io_failure(&err, "creating file", parent), None);
        }
        if let Err(err) = std::fs::write(&path, action.new_string.as_bytes()) {
            return failure(io_failure(&err, "creating file", &path), None);
        }
        return EditObservation {
            content: vec![Content::text(format!("Created new file: {shown}"))],
            is_error: false,
            file_path: Some(path.to_string_lossy().into_owned()),
            is_new_file: true,
            replacements_made: 1,
            old_content: None,
            new_content: Some(action.new_string.clone()),
        };
    }
    if !path.exists() {
        return failure(
            format!("Error: File not found: {shown}. To create a new file, use old_string=''."),
            None,
        );
    }
    if path.is_dir() {
        return failure(
            format!("Error: Path is a directory, not a file: {shown}"),
            None,
        );
    }
    // Our guard, not the reference's: a FIFO or device would block or never end.
    if !path.is_file() {
        return failure(format!("Error: Path is not a regular file: {shown}"), None);
    }
    let old_content = match std::fs::read(&path) {
        Ok(bytes) => decode_text(&bytes),
        Err(err) => return failure(io_failure(&err, "editing file", &path), None),
    };
    if action.old_string == action.new_string {
        return failure(
            "Error: No changes to apply. old_string and new_string are identical.".to_owned(),
            None,
        );
    }
    let occurrences = old_content.matches(action.old_string.as_str()).count() as u64;
    if occurrences == 0 {
        return failure(
            format!(
                "Error: Could not find the string to replace. 0 occurrences found in {shown}. \
                 Use read_file to verify the exact text."
            ),
            Some(&path),
        );
    }
    if occurrences != action.expected_replacements {
        let word = if action.expected_replacements == 1 {
            "occurrence"
        } else {
            "occurrences"
        };
        return failure(
            format!(
                "Error: Expected {} {word} but found {occurrences} in {shown}.",
                action.expected_replacements
            ),
            Some(&path),
        );
    }
    let new_content = old_content.replace(action.old_string.as_str(), &action.new_string);
    if new_content == old_content {
        return failure(
            "Error: No changes made. The new content is identical to the current content."
                .to_owned(),
            Some(&path),
        );
    }
    if let Err(err) = std::fs::write(&path, new_content.as_bytes()) {
        return failure(io_failure(&err, "editing file", &path), None);
    }
    EditObservation {
        content: vec![Content::text(format!(
            "Successfully edited {shown} ({occurrences} replacement(s))"
        ))],
        is_error: false,
        file_path: Some(path.to_string_lossy().into_owned()),
        is_new_file: false,
        replacements_made: occurrences,
        old_content: Some(old_content),
        new_content: Some(new_content),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(dir: &Path, path: &str, old: &str, new: &str, expected: u64) -> EditObservation {
        run(
            dir,
            &EditAction {
                file_path: path.to_owned(),
                old_string: old.to_owned(),
                new_string: new.to_owned(),
                expected_replacements: expected,
            },
        )
    }

    fn text(obs: &EditObservation) -> String {
        obs.content
            .iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(t.text.clone()),
                _ => None,
            })
            .collect()
    }

    fn root(dir: &tempfile::TempDir) -> PathBuf {
        std::fs::canonicalize(dir.path()).unwrap()
    }

    #[test]
    fn single_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let file = root(&dir).join("f.py");
        std::fs::write(&file, "x = 1\ny = 2\n").unwrap();
        let obs = edit(dir.path(), "f.py", "y = 2", "y = 3", 1);
        assert!(!obs.is_error, "{}", text(&obs));
        assert_eq!(
            text(&obs),
            format!("Successfully edited {} (1 replacement(s))", file.display())
        );
        assert_eq!(obs.replacements_made, 1);
        assert_eq!(obs.old_content.as_deref(), Some("x = 1\ny = 2\n"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "x = 1\ny = 3\n");
    }

    #[test]
    fn replacement_count_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let file = root(&dir).join("g.txt");
        std::fs::write(&file, "a a a").unwrap();
        let obs = edit(dir.path(), "g.txt", "a", "b", 1);
        assert!(obs.is_error);
        assert_eq!(
            text(&obs),
            format!(
                "Error: Expected 1 occurrence but found 3 in {}.",
                file.display()
            )
        );
        assert_eq!(obs.file_path.as_deref(), Some(file.to_str().unwrap()));
        let obs = edit(dir.path(), "g.txt", "a", "b", 2);
        assert!(text(&obs).starts_with("Error: Expected 2 occurrences but found 3"));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "a a a");
        let obs = edit(dir.path(), "g.txt", "a", "b", 3);
        assert!(!obs.is_error);
        assert_eq!(obs.replacements_made, 3);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "b b b");
        // Occurrences do not overlap, as Python's str.count.
        std::fs::write(&file, "aaaa").unwrap();
        assert_eq!(edit(dir.path(), "g.txt", "aa", "b", 2).replacements_made, 2);
    }

    #[test]
    fn errors_the_model_can_act_on() {
        let dir = tempfile::tempdir().unwrap();
        let base = root(&dir);
        std::fs::write(base.join("h.txt"), "hello").unwrap();
        let missing = edit(dir.path(), "none.txt", "a", "b", 1);
        assert_eq!(
            text(&missing),
            format!(
                "Error: File not found: {}. To create a new file, use old_string=''.",
                base.join("none.txt").display()
            )
        );
        let same = edit(dir.path(), "h.txt", "hello", "hello", 1);
        assert_eq!(
            text(&same),
            "Error: No changes to apply. old_string and new_string are identical."
        );
        let absent = edit(dir.path(), "h.txt", "bye", "hi", 1);
        assert!(
            text(&absent).starts_with(
                "Error: Could not find the string to replace. 0 occurrences found in "
            )
        );
        let exists = edit(dir.path(), "h.txt", "", "new", 1);
        assert!(text(&exists).starts_with("Error: Cannot create file that already exists: "));
        let folder = edit(dir.path(), ".", "a", "b", 1);
        assert_eq!(
            text(&folder),
            format!("Error: Path is a directory, not a file: {}", base.display())
        );
        assert_eq!(
            std::fs::read_to_string(base.join("h.txt")).unwrap(),
            "hello"
        );
    }

    #[test]
    fn devices_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let obs = edit(dir.path(), "/dev/zero", "a", "b", 1);
        assert_eq!(text(&obs), "Error: Path is not a regular file: /dev/zero");
    }

    #[test]
    fn empty_old_string_creates_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let obs = edit(dir.path(), "sub/../new/n.txt", "", "content", 1);
        let file = root(&dir).join("new/n.txt");
        assert!(!obs.is_error, "{}", text(&obs));
        assert!(obs.is_new_file);
        assert_eq!(obs.replacements_made, 1);
        assert_eq!(text(&obs), format!("Created new file: {}", file.display()));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "content");
    }

    #[test]
    fn symlinks_resolve_to_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let base = root(&dir);
        std::fs::write(base.join("real.txt"), "one").unwrap();
        std::os::unix::fs::symlink(base.join("real.txt"), base.join("link.txt")).unwrap();
        let obs = edit(dir.path(), "link.txt", "one", "two", 1);
        assert_eq!(
            obs.file_path.as_deref(),
            Some(base.join("real.txt").to_str().unwrap())
        );
        assert_eq!(
            std::fs::read_to_string(base.join("real.txt")).unwrap(),
            "two"
        );
    }
}
