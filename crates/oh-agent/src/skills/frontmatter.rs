//! Markdown frontmatter: a `---` line, a small YAML document, a closing `---` line, then
//! the body.
//!
//! Skill files use a small part of YAML: a mapping of keys to plain or quoted scalars,
//! flow lists (`[a, "b"]`), block lists (`- a`), lists of small mappings (`inputs:`) and
//! nested mappings (`metadata:`). This parser reads exactly that part into JSON values and
//! refuses anything else with [`FrontmatterError`], so a skill it cannot read is skipped
//! rather than misread.

use serde_json::{Map, Value};

/// A frontmatter block that is not in the YAML subset skills use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frontmatter line {line}: {reason}")]
pub struct FrontmatterError {
    /// 1-based line inside the frontmatter block.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Splits `text` into its frontmatter (an empty map when there is none) and its body, both
/// as the reference reads them: the body has surrounding whitespace removed.
pub fn split(text: &str) -> Result<(Map<String, Value>, String), FrontmatterError> {
    let trimmed = text.trim_start();
    let Some(rest) = trimmed
        .strip_prefix("---\n")
        .or_else(|| trimmed.strip_prefix("---\r\n"))
    else {
        return Ok((Map::new(), text.trim().to_owned()));
    };
    // The block ends at the first line that is exactly `---`.
    let mut offset = 0;
    let mut end = None;
    for line in rest.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "---" {
            end = Some((offset, offset + line.len()));
            break;
        }
        offset += line.len();
    }
    let Some((yaml_end, body_start)) = end else {
        return Ok((Map::new(), text.trim().to_owned()));
    };
    let metadata = parse(&rest[..yaml_end])?;
    Ok((metadata, rest[body_start..].trim().to_owned()))
}

struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

/// Parses the YAML subset into a mapping (an empty document is an empty mapping).
pub fn parse(yaml: &str) -> Result<Map<String, Value>, FrontmatterError> {
    let mut lines = Vec::new();
    for (i, raw) in yaml.lines().enumerate() {
        let without_comment = strip_comment(raw);
        if without_comment.trim().is_empty() {
            continue;
        }
        let leading = &raw[..raw.len() - raw.trim_start().len()];
        if leading.contains('\t') {
            return Err(err(i + 1, "tabs are not allowed in indentation"));
        }
        let text = without_comment.trim_end();
        let indent = text.len() - text.trim_start().len();
        lines.push(Line {
            number: i + 1,
            indent,
            text: text.trim_start(),
        });
    }
    if lines.is_empty() {
        return Ok(Map::new());
    }
    let mut pos = 0;
    let value = block(&lines, &mut pos, lines[0].indent)?;
    if let Some(line) = lines.get(pos) {
        return Err(err(line.number, "unexpected indentation"));
    }
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(err(lines[0].number, "the frontmatter must be a mapping")),
    }
}

fn err(line: usize, reason: impl Into<String>) -> FrontmatterError {
    FrontmatterError {
        line,
        reason: reason.into(),
    }
}

/// A block (mapping or list) whose lines start at `indent`.
fn block(lines: &[Line<'_>], pos: &mut usize, indent: usize) -> Result<Value, FrontmatterError> {
    if lines[*pos].text.starts_with("- ") || lines[*pos].text == "-" {
        list(lines, pos, indent)
    } else {
        mapping(lines, pos, indent, None)
    }
}

fn list(lines: &[Line<'_>], pos: &mut usize, indent: usize) -> Result<Value, FrontmatterError> {
    let mut items = Vec::new();
    while let Some(line) = lines.get(*pos) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent {
            return Err(err(line.number, "unexpected indentation"));
        }
        let Some(item) = line.text.strip_prefix('-') else {
            break;
        };
        let item = item.trim_start();
        let item_indent = indent + (line.text.len() - item.len());
        *pos += 1;
        if item.is_empty() {
            match lines.get(*pos) {
                Some(next) if next.indent > indent => {
                    let next_indent = next.indent;
                    items.push(block(lines, pos, next_indent)?);
                }
                _ => items.push(Value::Null),
            }
        } else if let Some((key, rest)) = key_value(item) {
            // A mapping item: `- name: x` followed by more keys at the item's indent.
            let first = (key, rest, line.number);
            items.push(mapping(lines, pos, item_indent, Some(first))?);
        } else {
            items.push(scalar(item, line.number)?);
        }
    }
    Ok(Value::Array(items))
}

fn mapping(
    lines: &[Line<'_>],
    pos: &mut usize,
    indent: usize,
    first: Option<(String, &str, usize)>,
) -> Result<Value, FrontmatterError> {
    let mut map = Map::new();
    let mut pending = first;
    loop {
        let (key, rest, number) = match pending.take() {
            Some(first) => first,
            None => {
                let Some(line) = lines.get(*pos) else { break };
                if line.indent < indent {
                    break;
                }
                if line.indent > indent {
                    return Err(err(line.number, "unexpected indentation"));
                }
                let Some((key, rest)) = key_value(line.text) else {
                    return Err(err(line.number, "expected `key: value`"));
                };
                *pos += 1;
                (key, rest, line.number)
            }
        };
        let value = if rest.is_empty() {
            match lines.get(*pos) {
                // A block list may sit at the key's own indent (`key:\n- a`).
                Some(next)
                    if next.indent > indent
                        || (next.indent == indent && next.text.starts_with('-')) =>
                {
                    let next_indent = next.indent;
                    block(lines, pos, next_indent)?
                }
                _ => Value::Null,
            }
        } else if rest == "|" || rest == ">" || rest.starts_with("|-") || rest.starts_with(">-") {
            block_scalar(lines, pos, indent, rest)?
        } else {
            scalar(rest, number)?
        };
        map.insert(key, value);
    }
    Ok(Value::Object(map))
}

/// `|` / `>` scalars: the more-indented lines that follow, joined by newlines (`|`) or
/// spaces (`>`), with one trailing newline unless the indicator has `-`.
fn block_scalar(
    lines: &[Line<'_>],
    pos: &mut usize,
    indent: usize,
    indicator: &str,
) -> Result<Value, FrontmatterError> {
    let mut parts = Vec::new();
    while let Some(line) = lines.get(*pos) {
        if line.indent <= indent {
            break;
        }
        parts.push(line.text);
        *pos += 1;
    }
    let separator = if indicator.starts_with('|') {
        "\n"
    } else {
        " "
    };
    let mut text = parts.join(separator);
    if !indicator.ends_with('-') && !text.is_empty() {
        text.push('\n');
    }
    Ok(Value::String(text))
}

/// `key: rest` (the key plain or quoted); `None` when the line is not a mapping entry.
fn key_value(text: &str) -> Option<(String, &str)> {
    if let Some(quote) = text.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = text[1..].find(quote)? + 1;
        let rest = text[end + 1..].strip_prefix(':')?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        return Some((text[1..end].to_owned(), rest.trim()));
    }
    if text.starts_with('[') || text.starts_with('{') {
        return None;
    }
    let colon = text
        .match_indices(':')
        .map(|(i, _)| i)
        .find(|&i| text[i + 1..].is_empty() || text[i + 1..].starts_with(' '))?;
    let key = text[..colon].trim();
    if key.is_empty() {
        return None;
    }
    Some((key.to_owned(), text[colon + 1..].trim()))
}

fn scalar(text: &str, line: usize) -> Result<Value, FrontmatterError> {
    let text = text.trim();
    if text.starts_with('[') {
        return flow_list(text, line);
    }
    if text.starts_with('{') {
        return Err(err(line, "flow mappings are not supported"));
    }
    if text.starts_with('"') || text.starts_with('\'') {
        let (value, rest) = quoted(text, line)?;
        if !rest.trim().is_empty() {
            return Err(err(line, "text after a quoted string"));
        }
        return Ok(Value::String(value));
    }
    if text.starts_with(['&', '*', '!', '%', '@', '`']) {
        return Err(err(line, format!("unsupported YAML: {text}")));
    }
    Ok(plain(text))
}

/// A plain scalar as YAML 1.1 (PyYAML) types it: null, booleans, integers, floats, else text.
fn plain(text: &str) -> Value {
    match text {
        "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
            return Value::Bool(true);
        }
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Value::Bool(false);
        }
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(n) = text.parse::<i64>()
    {
        return Value::from(n);
    }
    let is_float = digits.contains('.')
        && digits.bytes().all(|b| {
            b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'-' || b == b'+'
        })
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if is_float
        && let Ok(f) = text.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

/// A quoted string at the start of `text`, and what follows it.
fn quoted(text: &str, line: usize) -> Result<(String, &str), FrontmatterError> {
    let quote = text.as_bytes()[0];
    let mut out = String::new();
    let mut chars = text[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        if quote == b'\'' && c == '\'' {
            if text[1 + i + 1..].starts_with('\'') {
                out.push('\'');
                chars.next();
                continue;
            }
            return Ok((out, &text[1 + i + 1..]));
        }
        if quote == b'"' && c == '"' {
            return Ok((out, &text[1 + i + 1..]));
        }
        if quote == b'"' && c == '\\' {
            match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('/') => out.push('/'),
                Some(other) => return Err(err(line, format!("unsupported escape \\{other}"))),
                None => break,
            }
            continue;
        }
        out.push(c);
    }
    Err(err(line, "unterminated quoted string"))
}

fn flow_list(text: &str, line: usize) -> Result<Value, FrontmatterError> {
    let mut rest = text[1..].trim_start();
    let mut items = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix(']') {
            if !after.trim().is_empty() {
                return Err(err(line, "text after a list"));
            }
            return Ok(Value::Array(items));
        }
        if rest.is_empty() {
            return Err(err(line, "unterminated list"));
        }
        let (item, after) = if rest.starts_with('"') || rest.starts_with('\'') {
            let (value, after) = quoted(rest, line)?;
            (Value::String(value), after)
        } else if rest.starts_with('[') || rest.starts_with('{') {
            return Err(err(line, "nested flow collections are not supported"));
        } else {
            let end = rest.find([',', ']']).unwrap_or(rest.len());
            (plain(rest[..end].trim()), &rest[end..])
        };
        items.push(item);
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(next) => next.trim_start(),
            None if after.starts_with(']') => after,
            None => return Err(err(line, "expected `,` or `]` in a list")),
        };
    }
}

/// The line without a `#` comment (one that starts the line or follows a space, outside
/// quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'')
                && (previous == ' ' || previous == '[' || previous == ',' || previous == '-') =>
            {
                quote = Some(c)
            }
            None if c == '#' && previous.is_whitespace() => return &line[..i],
            None => {}
        }
        previous = c;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_frontmatter_and_trims_the_body() {
        let (meta, body) =
            split("---\nname: x\ntriggers:\n- a\n---\n\n# Body\n\ntext\n\n").unwrap();
        assert_eq!(Value::Object(meta), json!({"name": "x", "triggers": ["a"]}));
        assert_eq!(body, "# Body\n\ntext");
    }

    #[test]
    fn text_without_frontmatter_is_all_body() {
        let (meta, body) = split("no fm\n").unwrap();
        assert!(meta.is_empty());
        assert_eq!(body, "no fm");
        // An opening line without a closing one is not frontmatter either.
        let (meta, body) = split("---\nname: x\n").unwrap();
        assert!(meta.is_empty());
        assert_eq!(body, "---\nname: x");
    }

    #[test]
    fn reads_the_subset_skills_use() {
        let yaml = "\
name: 'it''s'   # a comment
triggers: [a, \"b c\", 3]
version: 1.0
enabled: yes
inputs:
  - name: REPO
    description: \"the repo: owner/name\"
  - name: BRANCH
    description: branch
metadata:
  author: me
  tags:
    - x
description: |
  line one
  line two
empty:
";
        let map = parse(yaml).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({
                "name": "it's",
                "triggers": ["a", "b c", 3],
                "version": 1.0,
                "enabled": true,
                "inputs": [
                    {"name": "REPO", "description": "the repo: owner/name"},
                    {"name": "BRANCH", "description": "branch"}
                ],
                "metadata": {"author": "me", "tags": ["x"]},
                "description": "line one\nline two\n",
                "empty": null
            })
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(parse("a: {b: 1}").is_err());
        assert!(parse("a: [1, 2").is_err());
        assert!(parse("a: 1\n   b: 2").is_err());
        assert!(parse("- a\n- b").is_err());
        assert!(parse("a: \"open").is_err());
        assert!(parse("a: &anchor x").is_err());
    }
}
