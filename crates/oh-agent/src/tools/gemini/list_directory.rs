//! `list_directory`: a directory's entries (hidden ones included, nothing ignored), sorted by
//! name, directories first at each level of a recursive listing, 500 at most.
//!
//! As in the reference, the model's text only counts the entries; the entries themselves
//! (name, path, kind, size, modification time) are in the observation for clients.
//! Entries whose metadata cannot be read (broken links) are skipped; a recursive listing
//! lists the directory and its subdirectories (two levels), does not follow links to
//! directories, and skips subdirectories it cannot read.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use oh_protocol::Content;
use oh_protocol::tool::{FileEntry, ListDirectoryAction, ListDirectoryObservation};

use super::{io_failure, resolve};

/// Most entries returned.
pub const MAX_ENTRIES: usize = 500;

fn failure(text: String) -> ListDirectoryObservation {
    ListDirectoryObservation {
        content: vec![Content::text(text)],
        is_error: true,
        ..ListDirectoryObservation::default()
    }
}

/// The entry for `path`, following links; `None` when its metadata cannot be read.
fn entry(path: &Path, name: String) -> Option<FileEntry> {
    let meta = std::fs::metadata(path).ok()?;
    let micros = meta
        .modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Some(FileEntry {
        name,
        path: path.to_string_lossy().into_owned(),
        is_directory: meta.is_dir(),
        size: if meta.is_dir() { 0 } else { meta.len() },
        modified_time: oh_protocol::time::naive_timestamp(micros, 0),
    })
}

/// The names in `dir`, sorted.
fn sorted_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for item in std::fs::read_dir(dir)? {
        names.push(item?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Runs the action with relative paths taken from `working_dir`.
pub fn run(working_dir: &Path, action: &ListDirectoryAction) -> ListDirectoryObservation {
    let path = resolve(working_dir, &action.dir_path);
    if !path.exists() {
        return failure(format!("Error: Directory not found: {}", path.display()));
    }
    if !path.is_dir() {
        return failure(format!(
            "Error: Path is not a directory: {}",
            path.display()
        ));
    }
    let entries = if action.recursive {
        recursive(&path)
    } else {
        match sorted_names(&path) {
            Ok(names) => names
                .into_iter()
                .filter_map(|name| entry(&path.join(&name), name))
                .take(MAX_ENTRIES)
                .collect(),
            Err(err) => return failure(io_failure(&err, "listing directory", &path)),
        }
    };
    let total_count = entries.len();
    let is_truncated = total_count >= MAX_ENTRIES;
    let mut text = format!(
        "Listed directory: {} ({total_count} entries",
        path.display()
    );
    if is_truncated {
        text.push_str(&format!(", truncated to {MAX_ENTRIES}"));
    }
    text.push(')');
    ListDirectoryObservation {
        content: vec![Content::text(text)],
        is_error: false,
        dir_path: Some(path.to_string_lossy().into_owned()),
        entries: entries.into_iter().take(MAX_ENTRIES).collect(),
        total_count: total_count as u64,
        is_truncated,
    }
}

/// `top` and its subdirectories, each directory's subdirectories then files, in name order;
/// stops after the directory during which the cap was reached (so the count may pass it).
fn recursive(top: &Path) -> Vec<FileEntry> {
    let mut entries = Vec::new();
    // (directory, depth below top), visited depth-first in name order.
    let mut pending: Vec<(PathBuf, usize)> = vec![(top.to_path_buf(), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(names) = sorted_names(&dir) else {
            continue;
        };
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for name in names {
            let path = dir.join(&name);
            // Links to directories count as directories but are not entered.
            let is_dir = std::fs::metadata(&path).is_ok_and(|m| m.is_dir());
            let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_symlink());
            if is_dir {
                dirs.push((path, name, is_link));
            } else {
                files.push((path, name));
            }
        }
        for (path, name, _) in &dirs {
            entries.extend(entry(path, name.clone()));
        }
        for (path, name) in files {
            entries.extend(entry(&path, name));
        }
        if entries.len() >= MAX_ENTRIES {
            break;
        }
        if depth + 1 < 2 {
            for (path, _, is_link) in dirs.into_iter().rev() {
                if !is_link {
                    pending.push((path, depth + 1));
                }
            }
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(dir: &Path, path: &str, recursive: bool) -> ListDirectoryObservation {
        run(
            dir,
            &ListDirectoryAction {
                dir_path: path.to_owned(),
                recursive,
            },
        )
    }

    fn text(obs: &ListDirectoryObservation) -> String {
        obs.content
            .iter()
            .filter_map(|c| match c {
                Content::Text(t) => Some(t.text.clone()),
                _ => None,
            })
            .collect()
    }

    fn names(obs: &ListDirectoryObservation) -> Vec<&str> {
        obs.entries.iter().map(|e| e.name.as_str()).collect()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("src/deep/deeper")).unwrap();
        std::fs::create_dir_all(p.join(".git")).unwrap();
        std::fs::create_dir_all(p.join("node_modules")).unwrap();
        std::fs::write(p.join("b.txt"), "12345").unwrap();
        std::fs::write(p.join(".hidden"), "").unwrap();
        std::fs::write(p.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(p.join("src/deep/x.txt"), "x").unwrap();
        std::fs::write(p.join("src/deep/deeper/y.txt"), "y").unwrap();
        dir
    }

    #[test]
    fn flat_listing_includes_hidden_and_ignores_nothing() {
        let dir = tree();
        let obs = list(dir.path(), ".", false);
        assert!(!obs.is_error);
        assert_eq!(
            names(&obs),
            [".git", ".hidden", "b.txt", "node_modules", "src"]
        );
        assert_eq!(
            text(&obs),
            format!("Listed directory: {} (5 entries)", dir.path().display())
        );
        let b = &obs.entries[2];
        assert_eq!((b.size, b.is_directory), (5, false));
        assert_eq!(b.path, dir.path().join("b.txt").to_string_lossy());
        assert!(obs.entries[4].is_directory);
        assert_eq!(obs.entries[4].size, 0);
        assert_eq!(obs.dir_path.as_deref(), dir.path().to_str());
    }

    #[test]
    fn recursive_listing_stops_two_levels_down() {
        let dir = tree();
        let obs = list(dir.path(), ".", true);
        assert_eq!(
            names(&obs),
            [
                ".git",
                "node_modules",
                "src",
                ".hidden",
                "b.txt", // top
                "deep",
                "main.rs", // src
            ]
        );
        assert_eq!(obs.total_count, 7);
        // `src/deep` is listed as an entry but not entered.
        let obs = list(dir.path(), "src", true);
        assert_eq!(names(&obs), ["deep", "main.rs", "deeper", "x.txt"]);
    }

    #[test]
    fn the_cap_is_500_entries() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..520 {
            std::fs::write(dir.path().join(format!("f{i:04}")), "").unwrap();
        }
        let obs = list(dir.path(), ".", false);
        assert_eq!(obs.entries.len(), 500);
        assert!(obs.is_truncated);
        assert!(text(&obs).ends_with("(500 entries, truncated to 500)"));
        let obs = list(dir.path(), ".", true);
        assert_eq!(obs.total_count, 520);
        assert_eq!(obs.entries.len(), 500);
    }

    #[test]
    fn errors_and_broken_links() {
        let dir = tree();
        let missing = list(dir.path(), "nope", false);
        assert!(missing.is_error);
        assert_eq!(
            text(&missing),
            format!(
                "Error: Directory not found: {}",
                dir.path().join("nope").display()
            )
        );
        let file = list(dir.path(), "b.txt", false);
        assert_eq!(
            text(&file),
            format!(
                "Error: Path is not a directory: {}",
                dir.path().join("b.txt").display()
            )
        );
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("broken")).unwrap();
        let obs = list(dir.path(), ".", false);
        assert!(!names(&obs).contains(&"broken"));
    }

    #[test]
    fn absolute_paths_outside_the_workspace_are_listed() {
        let workspace = tempfile::tempdir().unwrap();
        let other = tree();
        let obs = list(workspace.path(), &other.path().to_string_lossy(), false);
        assert!(!obs.is_error);
        assert_eq!(obs.total_count, 5);
    }
}
