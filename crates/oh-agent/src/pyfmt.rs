//! Text as Python writes it: the one place for it in the workspace.
//!
//! The model and the reference's clients see strings built with `json.dumps`, `repr()`,
//! `str(float)`, `str(pathlib.Path(p))` and `str(OSError)`; where those strings are part of
//! the behaviour (stored tool-call arguments, tool and workspace error messages, timeout
//! notes, the agent server's bash and file errors) we produce the same bytes.

use std::io;
use std::path::Path;

use serde_json::Value;

/// `value` formatted like Python's `json.dumps(value)`.
pub(crate) fn json_dumps(value: &Value) -> String {
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn write(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (None, None, Some(f)) if f.is_finite() => out.push_str(&float_str(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(key, out);
                out.push_str(": ");
                write(item, out);
            }
            out.push('}');
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `str(float)` prints it (`1.0`, `2.5`, `1e-05`, `inf`).
pub(crate) fn float_str(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let abs = value.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        return exponent(&format!("{value:e}"));
    }
    if value.fract() == 0.0 {
        format!("{value:.1}")
    } else {
        format!("{value}")
    }
}

/// Rewrites Rust's `1e-5` exponent form as Python's `1e-05`.
fn exponent(rust: &str) -> String {
    match rust.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => rust.to_owned(),
    }
}

/// `repr(str)`: single quotes unless the text holds a single quote and no double quote;
/// backslashes, the quote, and control characters escaped.
pub fn repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `str(pathlib.PurePosixPath(p))`: collapses repeated slashes, drops `.` components and a
/// trailing slash, keeps `..`. Exactly two leading slashes are kept (POSIX allows them to
/// mean something else); three or more become one. The empty path is `.`.
pub fn py_path(raw: &str) -> String {
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
pub fn os_error(err: &io::Error, filename: &Path) -> String {
    let Some(code) = err.raw_os_error() else {
        return err.to_string();
    };
    let full = err.to_string();
    let suffix = format!(" (os error {code})");
    let description = full.strip_suffix(&suffix).unwrap_or(&full);
    format!(
        "[Errno {code}] {description}: {}",
        repr(&filename.to_string_lossy())
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
    fn floats_and_reprs() {
        assert_eq!(float_str(1.0), "1.0");
        assert_eq!(float_str(2.5), "2.5");
        assert_eq!(float_str(0.00001), "1e-05");
        assert_eq!(float_str(1e20), "1e+20");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("a\\b\n"), "'a\\\\b\\n'");
        let v: Value = serde_json::from_str("[1.0, 1e20, 0.5]").unwrap_or(Value::Null);
        assert_eq!(json_dumps(&v), "[1.0, 1e+20, 0.5]");
    }

    #[test]
    fn matches_python_defaults() {
        let v: Value =
            serde_json::from_str(r#"{"command":"ls -a","n":[1,2.5],"s":"é\n😀","b":true}"#)
                .unwrap_or(Value::Null);
        assert_eq!(
            json_dumps(&v),
            r#"{"command": "ls -a", "n": [1, 2.5], "s": "\u00e9\n\ud83d\ude00", "b": true}"#
        );
    }

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
        assert_eq!(repr("a"), "'a'");
        assert_eq!(repr("it's"), "\"it's\"");
        assert_eq!(repr("a\\b\n"), "'a\\\\b\\n'");
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
