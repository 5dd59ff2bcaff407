//! Python-compatible renderings of paths, OS errors and small values.
//!
//! The reference builds its messages with `str(pathlib.Path(p))`, `str(OSError)`, `repr()` and
//! `str(list)`. The model sees those strings, so the port renders them the same way.

use std::io;

pub(crate) use crate::pyfmt::repr as py_repr;
use std::path::Path;

/// `str(pathlib.PurePosixPath(p))`: collapses repeated slashes, drops `.` components and a
/// trailing slash, keeps `..`. Exactly two leading slashes are kept (POSIX allows them to
/// mean something else); three or more become one. The empty path is `.`.
pub(crate) fn py_path(raw: &str) -> String {
    let leading = raw.chars().take_while(|c| *c == '/').count();
    let root = match leading {
        0 => "",
        2 => "//",
        _ => "/",
    };
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    let joined = parts.join("/");
    match (root.is_empty(), joined.is_empty()) {
        (true, true) => ".".to_owned(),
        (false, true) => root.to_owned(),
        _ => format!("{root}{joined}"),
    }
}

/// `str(Path(base) / rel)` for a relative `rel`.
pub(crate) fn py_join(base: &str, rel: &str) -> String {
    if rel.starts_with('/') {
        return py_path(rel);
    }
    py_path(&format!("{base}/{rel}"))
}

/// `str(OSError)` as Python prints it: `[Errno 2] No such file or directory: '<path>'`.
/// Errors without an OS error number are printed as Rust describes them.
pub(crate) fn os_error(err: &io::Error, filename: &Path) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    let full = err.to_string();
    let suffix = format!(" (os error {code})");
    let description = full.strip_suffix(&suffix).unwrap_or(&full);
    format!(
        "[Errno {code}] {description}: {}",
        py_repr(&filename.to_string_lossy())
    )
}

/// `str(list_of_ints)`: `[1, 2, 3]`.
pub(crate) fn py_int_list<T: std::fmt::Display>(items: &[T]) -> String {
    let inner: Vec<String> = items.iter().map(ToString::to_string).collect();
    format!("[{}]", inner.join(", "))
}

/// Python's `str.isspace` for one character: Unicode whitespace plus the ASCII
/// information separators U+001C..U+001F, which Python also strips.
pub(crate) fn is_py_space(ch: char) -> bool {
    ch.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&ch)
}

/// Python's `str.strip()` without arguments.
pub(crate) fn py_strip(text: &str) -> &str {
    text.trim_matches(is_py_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalise_like_pathlib() {
        assert_eq!(py_path("/a//b/./c/"), "/a/b/c");
        assert_eq!(py_path("//a"), "//a");
        assert_eq!(py_path("///a"), "/a");
        assert_eq!(py_path(""), ".");
        assert_eq!(py_path("./x/../y"), "x/../y");
        assert_eq!(py_path("/"), "/");
        assert_eq!(py_join("/w", "."), "/w");
        assert_eq!(py_join("/w", "a/b"), "/w/a/b");
    }

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(py_repr("a"), "'a'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\\b\n"), "'a\\\\b\\n'");
    }

    #[test]
    fn os_errors_render_like_python() {
        let err = io::Error::from_raw_os_error(2);
        assert_eq!(
            os_error(&err, Path::new("/x/y")),
            "[Errno 2] No such file or directory: '/x/y'"
        );
    }

    #[test]
    fn lists_and_strip() {
        assert_eq!(py_int_list(&[1, 5]), "[1, 5]");
        assert_eq!(py_int_list::<i64>(&[]), "[]");
        assert_eq!(py_strip("\u{1f} a \n"), "a");
    }
}
