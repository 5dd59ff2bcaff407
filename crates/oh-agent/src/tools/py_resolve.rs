//! Python's `Path.resolve()` (non-strict), which the tools of the gpt5 and planning presets
//! apply to the paths they are given: made absolute against the current directory, `..`
//! applied after the symlinks before it are followed, and a missing tail kept as written.

use std::path::{Component, Path, PathBuf};

/// `Path(path).resolve()`.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::from("/");
    for component in absolute.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                let is_link = std::fs::symlink_metadata(&out)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false);
                if is_link && let Ok(target) = std::fs::canonicalize(&out) {
                    out = target;
                }
            }
        }
    }
    out
}

/// `(root / path).resolve()`, or `Path(path).resolve()` for an absolute `path`.
pub(crate) fn resolve_in(root: &Path, path: &str) -> PathBuf {
    if path.starts_with('/') {
        resolve(Path::new(path))
    } else {
        resolve(&root.join(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_and_missing_tails() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        assert_eq!(resolve_in(&root, "a/../b/c"), root.join("b/c"));
        assert_eq!(resolve_in(&root, "./a/./x"), root.join("a/x"));
        assert_eq!(resolve(Path::new("/../..")), PathBuf::from("/"));
        std::os::unix::fs::symlink(root.join("a"), root.join("link")).unwrap();
        assert_eq!(resolve_in(&root, "link/f"), root.join("a/f"));
    }
}
