//! Text as Python writes it. The model and the reference's clients see strings built with
//! `json.dumps`, `repr()` and `str(float)`; where those strings are part of the behaviour
//! (stored tool-call arguments, error messages, timeout notes) we produce the same bytes.

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
pub(crate) fn repr(text: &str) -> String {
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
}
