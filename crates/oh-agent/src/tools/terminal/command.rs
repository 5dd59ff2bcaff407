//! Looking at a command before it runs: top-level statements, literal arguments, key names.
//!
//! The splitter is a small shell-aware scanner (quotes, `$(...)`, backticks, `${...}`,
//! heredocs, comments, line continuations, `( )`/`{ }` groups and the `if`/`case`/loop
//! keywords). It only needs to find newlines that separate top-level statements; anything
//! it cannot make sense of is treated as a single statement, as the reference does on a
//! parse error.

/// How a command splits into top-level statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Split {
    /// The statements; one entry for a single command.
    pub(super) statements: Vec<String>,
    /// A statement ending in a heredoc is followed by more statements on later lines, so
    /// bash will print a prompt before the whole input is consumed.
    pub(super) needs_boundary: bool,
}

/// Splits `command` into top-level statements separated by newlines. Statements joined by
/// `;`, `&&`, `||`, `|` or `&` stay together, and so do the statements after a completed
/// heredoc (the reference's 1.57 rule).
pub(super) fn split_commands(command: &str) -> Split {
    let single = || Split {
        statements: vec![command.to_owned()],
        needs_boundary: false,
    };
    if command.trim().is_empty() {
        return Split {
            statements: vec![String::new()],
            needs_boundary: false,
        };
    }
    let mut scanner = Scanner::new(command.as_bytes());
    if scanner.scan_top().is_err() {
        return single();
    }
    let stmts = scanner.statements;
    if stmts.is_empty() {
        return single();
    }
    let mut starts = vec![stmts[0].start];
    let mut needs_boundary = false;
    for pair in stmts.windows(2) {
        if pair[0].ends_with_heredoc {
            needs_boundary = true;
        } else {
            starts.push(pair[1].start);
        }
    }
    starts.push(command.len());
    let statements = starts
        .windows(2)
        .map(|w| command[w[0]..w[1]].trim_end().to_owned())
        .collect();
    Split {
        statements,
        needs_boundary,
    }
}

#[derive(Debug, Clone, Copy)]
struct Statement {
    start: usize,
    ends_with_heredoc: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// `( ... )`, `$( ... )`, `<( ... )`.
    Paren,
    /// `{ ...; }`.
    Brace,
    /// `if ... fi`.
    If,
    /// `for`/`while`/`until`/`select` ... `done`.
    Loop,
    /// `case` before `in`.
    CaseHead,
    /// `case ... in`, expecting a pattern.
    CasePattern,
    /// `case ... in pattern)`, in the commands of a branch.
    CaseBody,
}

#[derive(Debug)]
struct Unparsable;

#[derive(Debug)]
struct Heredoc {
    delimiter: Vec<u8>,
    strip_tabs: bool,
}

struct Scanner<'a> {
    src: &'a [u8],
    pos: usize,
    stack: Vec<Ctx>,
    heredocs: Vec<Heredoc>,
    /// The next word is in command position (keywords count there).
    command_start: bool,
    /// The word after `function` names a function; a `{` may follow it.
    function_name: bool,
    /// Inside `` `...` ``: a backtick ends the current word.
    backticks: usize,
    // Top-level statement tracking.
    statements: Vec<Statement>,
    in_statement: bool,
    /// The last token was `&&`, `||`, `|` or `|&`: a newline continues the statement.
    pending_operator: bool,
}

const META: &[u8] = b" \t\n;&|()<>";

impl<'a> Scanner<'a> {
    fn new(src: &'a [u8]) -> Self {
        Self {
            src,
            pos: 0,
            stack: Vec::new(),
            heredocs: Vec::new(),
            command_start: true,
            function_name: false,
            backticks: 0,
            statements: Vec::new(),
            in_statement: false,
            pending_operator: false,
        }
    }

    fn peek(&self, offset: usize) -> Option<u8> {
        self.src.get(self.pos + offset).copied()
    }

    fn at_top(&self) -> bool {
        self.stack.is_empty()
    }

    /// Notes that a token starts at the current position (for statement tracking).
    fn token(&mut self) {
        if self.at_top() && !self.in_statement {
            self.statements.push(Statement {
                start: self.pos,
                ends_with_heredoc: false,
            });
            self.in_statement = true;
        }
        self.pending_operator = false;
    }

    fn scan_top(&mut self) -> Result<(), Unparsable> {
        self.scan(None)?;
        if !self.stack.is_empty() || !self.heredocs.is_empty() {
            return Err(Unparsable);
        }
        Ok(())
    }

    /// Scans commands until the end of input, or until `until` (`)` or `` ` ``) closes the
    /// current nesting level.
    fn scan(&mut self, until: Option<u8>) -> Result<(), Unparsable> {
        let depth = self.stack.len();
        while let Some(c) = self.peek(0) {
            match c {
                b' ' | b'\t' => self.pos += 1,
                b'\n' => self.newline()?,
                b'\\' if self.peek(1) == Some(b'\n') => self.pos += 2,
                b'#' => {
                    while let Some(c) = self.peek(0) {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b';' => {
                    self.token();
                    let is_case_end = matches!(self.peek(1), Some(b';' | b'&'));
                    if is_case_end && self.stack.last() == Some(&Ctx::CaseBody) {
                        self.pos += 2;
                        if self.peek(0) == Some(b'&') {
                            self.pos += 1;
                        }
                        self.replace_top(Ctx::CasePattern);
                    } else {
                        self.pos += 1;
                    }
                    self.command_start = true;
                }
                b'&' => {
                    self.token();
                    match self.peek(1) {
                        Some(b'&') => {
                            self.pos += 2;
                            self.pending_operator = true;
                        }
                        Some(b'>') => {
                            self.pos += 2;
                            if self.peek(0) == Some(b'>') {
                                self.pos += 1;
                            }
                        }
                        _ => self.pos += 1,
                    }
                    self.command_start = true;
                }
                b'|' => {
                    self.token();
                    self.pos += if matches!(self.peek(1), Some(b'|' | b'&')) {
                        2
                    } else {
                        1
                    };
                    self.pending_operator = true;
                    self.command_start = true;
                }
                b'(' => {
                    self.token();
                    self.pos += 1;
                    if self.stack.last() == Some(&Ctx::CasePattern) {
                        continue;
                    }
                    self.stack.push(Ctx::Paren);
                    self.command_start = true;
                }
                b')' => {
                    self.token();
                    match self.stack.last() {
                        Some(Ctx::CasePattern) => {
                            self.pos += 1;
                            self.replace_top(Ctx::CaseBody);
                            self.command_start = true;
                        }
                        Some(Ctx::Paren) if self.stack.len() > depth => {
                            self.pos += 1;
                            self.stack.pop();
                            self.command_start = true;
                        }
                        _ if until == Some(b')') && self.stack.len() == depth => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(Unparsable),
                    }
                }
                b'`' if until == Some(b'`') => {
                    if self.stack.len() != depth {
                        return Err(Unparsable);
                    }
                    self.pos += 1;
                    return Ok(());
                }
                b'<' => {
                    self.token();
                    self.less_than()?;
                }
                b'>' => {
                    self.token();
                    self.pos += 1;
                    match self.peek(0) {
                        Some(b'(') => {
                            self.pos += 1;
                            self.nested(b')')?;
                        }
                        Some(b'>' | b'&' | b'|') => self.pos += 1,
                        _ => {}
                    }
                }
                _ => {
                    self.token();
                    self.word()?;
                }
            }
        }
        if until.is_some() {
            return Err(Unparsable);
        }
        Ok(())
    }

    fn replace_top(&mut self, ctx: Ctx) {
        if let Some(top) = self.stack.last_mut() {
            *top = ctx;
        }
    }

    fn newline(&mut self) -> Result<(), Unparsable> {
        self.pos += 1;
        let had_heredoc = !self.heredocs.is_empty();
        if had_heredoc {
            self.heredoc_bodies()?;
        }
        if self.at_top() && self.in_statement && !self.pending_operator {
            if let Some(last) = self.statements.last_mut() {
                last.ends_with_heredoc = had_heredoc;
            }
            self.in_statement = false;
        }
        if self.stack.last() != Some(&Ctx::CaseHead) {
            self.command_start = true;
        }
        Ok(())
    }

    /// Reads the bodies of the pending heredocs, which start at the current position.
    fn heredoc_bodies(&mut self) -> Result<(), Unparsable> {
        for heredoc in std::mem::take(&mut self.heredocs) {
            loop {
                if self.pos >= self.src.len() {
                    return Err(Unparsable);
                }
                let line_end = self.src[self.pos..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(self.src.len(), |i| self.pos + i);
                let mut line = &self.src[self.pos..line_end];
                if heredoc.strip_tabs {
                    while let Some((b'\t', rest)) = line.split_first() {
                        line = rest;
                    }
                }
                self.pos = (line_end + 1).min(self.src.len());
                if line == heredoc.delimiter.as_slice() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `<`, `<<`, `<<-`, `<<<`, `<(`, `<&`, `<>`.
    fn less_than(&mut self) -> Result<(), Unparsable> {
        self.pos += 1;
        match self.peek(0) {
            Some(b'(') => {
                self.pos += 1;
                self.nested(b')')
            }
            Some(b'<') if self.peek(1) == Some(b'<') => {
                self.pos += 2;
                Ok(())
            }
            Some(b'<') => {
                self.pos += 1;
                let strip_tabs = self.peek(0) == Some(b'-');
                if strip_tabs {
                    self.pos += 1;
                }
                while matches!(self.peek(0), Some(b' ' | b'\t')) {
                    self.pos += 1;
                }
                let start = self.pos;
                self.word_raw()?;
                let delimiter = unquote(&self.src[start..self.pos]);
                if delimiter.is_empty() {
                    return Err(Unparsable);
                }
                self.heredocs.push(Heredoc {
                    delimiter,
                    strip_tabs,
                });
                Ok(())
            }
            Some(b'&' | b'>') => {
                self.pos += 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Reads one word and applies keyword rules to it.
    fn word(&mut self) -> Result<(), Unparsable> {
        let start = self.pos;
        let plain = self.word_raw()?;
        if self.pos == start {
            return Err(Unparsable);
        }
        let text = &self.src[start..self.pos];
        let in_pattern = self.stack.last() == Some(&Ctx::CasePattern);
        if self.stack.last() == Some(&Ctx::CaseHead) {
            if plain && text == b"in" {
                self.replace_top(Ctx::CasePattern);
                self.command_start = true;
            }
            return Ok(());
        }
        if self.function_name {
            self.function_name = false;
            self.command_start = true;
            return Ok(());
        }
        if !plain || !self.command_start {
            self.command_start = false;
            return Ok(());
        }
        if in_pattern {
            if text == b"esac" {
                self.stack.pop();
            }
            self.command_start = false;
            return Ok(());
        }
        match text {
            b"if" => {
                self.stack.push(Ctx::If);
                self.command_start = true;
            }
            b"then" | b"else" | b"elif" | b"do" | b"!" | b"time" => self.command_start = true,
            b"fi" => self.close(Ctx::If)?,
            b"while" | b"until" => {
                self.stack.push(Ctx::Loop);
                self.command_start = true;
            }
            b"for" | b"select" => {
                self.stack.push(Ctx::Loop);
                self.command_start = false;
            }
            b"done" => self.close(Ctx::Loop)?,
            b"case" => {
                self.stack.push(Ctx::CaseHead);
                self.command_start = false;
            }
            b"esac" => match self.stack.last() {
                Some(Ctx::CaseBody | Ctx::CasePattern) => {
                    self.stack.pop();
                    self.command_start = false;
                }
                _ => return Err(Unparsable),
            },
            b"{" => {
                self.stack.push(Ctx::Brace);
                self.command_start = true;
            }
            b"}" => self.close(Ctx::Brace)?,
            b"function" => {
                self.function_name = true;
                self.command_start = false;
            }
            _ => {
                // An assignment prefix keeps the command position.
                let is_assignment = text
                    .iter()
                    .position(|&b| b == b'=')
                    .is_some_and(|eq| eq > 0);
                self.command_start = is_assignment;
            }
        }
        Ok(())
    }

    fn close(&mut self, ctx: Ctx) -> Result<(), Unparsable> {
        if self.stack.last() == Some(&ctx) {
            self.stack.pop();
            self.command_start = false;
            Ok(())
        } else {
            Err(Unparsable)
        }
    }

    /// Advances over one word (quotes, expansions and escapes included). Returns whether
    /// the word was plain (no quoting or expansion), so it may be a keyword.
    fn word_raw(&mut self) -> Result<bool, Unparsable> {
        let mut plain = true;
        while let Some(c) = self.peek(0) {
            match c {
                b'\\' => {
                    plain = false;
                    self.pos = (self.pos + 2).min(self.src.len());
                }
                b'\'' => {
                    plain = false;
                    self.single_quoted()?;
                }
                b'"' => {
                    plain = false;
                    self.double_quoted()?;
                }
                b'`' if self.backticks > 0 => break,
                b'`' => {
                    plain = false;
                    self.pos += 1;
                    self.nested(b'`')?;
                }
                b'$' => {
                    plain = false;
                    self.dollar()?;
                }
                c if META.contains(&c) => break,
                _ => self.pos += 1,
            }
        }
        Ok(plain)
    }

    /// `'...'` starting at the current position.
    fn single_quoted(&mut self) -> Result<(), Unparsable> {
        self.pos += 1;
        match self.src[self.pos..].iter().position(|&b| b == b'\'') {
            Some(i) => {
                self.pos += i + 1;
                Ok(())
            }
            None => Err(Unparsable),
        }
    }

    /// `"..."` starting at the current position.
    fn double_quoted(&mut self) -> Result<(), Unparsable> {
        self.pos += 1;
        while let Some(c) = self.peek(0) {
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => self.pos = (self.pos + 2).min(self.src.len()),
                b'`' => {
                    self.pos += 1;
                    self.nested(b'`')?;
                }
                b'$' => self.dollar()?,
                _ => self.pos += 1,
            }
        }
        Err(Unparsable)
    }

    /// `$...` starting at the current position.
    fn dollar(&mut self) -> Result<(), Unparsable> {
        self.pos += 1;
        match self.peek(0) {
            Some(b'(') => {
                self.pos += 1;
                self.nested(b')')
            }
            Some(b'{') => {
                self.pos += 1;
                self.braced_parameter()
            }
            Some(b'\'') => {
                // ANSI-C string: backslash escapes the quote.
                self.pos += 1;
                while let Some(c) = self.peek(0) {
                    match c {
                        b'\\' => self.pos = (self.pos + 2).min(self.src.len()),
                        b'\'' => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => self.pos += 1,
                    }
                }
                Err(Unparsable)
            }
            Some(b'"') => self.double_quoted(),
            _ => Ok(()),
        }
    }

    /// `${...}` after the opening brace.
    fn braced_parameter(&mut self) -> Result<(), Unparsable> {
        let mut depth = 1usize;
        while let Some(c) = self.peek(0) {
            match c {
                b'}' => {
                    self.pos += 1;
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                b'{' => {
                    self.pos += 1;
                    depth += 1;
                }
                b'\\' => self.pos = (self.pos + 2).min(self.src.len()),
                b'\'' => self.single_quoted()?,
                b'"' => self.double_quoted()?,
                b'`' => {
                    self.pos += 1;
                    self.nested(b'`')?;
                }
                b'$' => self.dollar()?,
                _ => self.pos += 1,
            }
        }
        Err(Unparsable)
    }

    /// A nested command list (`$(...)`, `<(...)` or `` `...` ``) after its opening, up to
    /// and including its closing character. Newlines inside do not separate statements.
    fn nested(&mut self, close: u8) -> Result<(), Unparsable> {
        let saved = (self.command_start, self.function_name);
        // A marker context: the stack is not empty inside, so nothing is top level.
        self.stack.push(Ctx::Paren);
        let depth = self.stack.len();
        self.command_start = true;
        self.function_name = false;
        let backtick = usize::from(close == b'`');
        self.backticks += backtick;
        // `scan` returns at the closer met at `depth`, with the marker still in place.
        let result = self.scan(Some(close));
        self.backticks -= backtick;
        (self.command_start, self.function_name) = saved;
        result?;
        if self.stack.len() != depth {
            return Err(Unparsable);
        }
        self.stack.pop();
        Ok(())
    }
}

/// A heredoc delimiter word with its quoting removed.
fn unquote(word: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(word.len());
    let mut i = 0;
    while i < word.len() {
        match word[i] {
            b'\'' | b'"' => {}
            b'\\' if i + 1 < word.len() => {
                i += 1;
                out.push(word[i]);
            }
            b'$' if matches!(word.get(i + 1), Some(b'\'' | b'"')) => {}
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// What kind of Python/JSON literal `command` looks like, if it looks like one
/// (`list literal`, `nested list literal`, `dict literal`).
pub(super) fn literal_kind(command: &str) -> Option<&'static str> {
    let mut chars = command.trim_start().chars();
    let a = chars.next()?;
    let b = chars.next()?;
    match (a, b) {
        ('[', '{' | '"' | '\'') => Some("list literal"),
        ('[', '[') => match chars.next() {
            Some(c) if c != ' ' && c != '\t' => Some("nested list literal"),
            _ => None,
        },
        ('{', '"' | '\'') => Some("dict literal"),
        _ => None,
    }
}

/// A key name understood with `is_input` (`C-c`, `CTRL+c`, `UP`, `ENTER`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Key {
    /// What is typed.
    pub(super) bytes: Vec<u8>,
    /// For control keys, the letter (upper case).
    pub(super) ctrl: Option<char>,
}

/// Recognises a key name (case-insensitive).
pub(super) fn parse_key(text: &str) -> Option<Key> {
    let upper = text.trim().to_ascii_uppercase();
    let named: Option<&[u8]> = match upper.as_str() {
        "ENTER" => Some(b"\r"),
        "TAB" => Some(b"\t"),
        "BS" => Some(b"\x7f"),
        "ESC" => Some(b"\x1b"),
        "UP" => Some(b"\x1b[A"),
        "DOWN" => Some(b"\x1b[B"),
        "RIGHT" => Some(b"\x1b[C"),
        "LEFT" => Some(b"\x1b[D"),
        "HOME" => Some(b"\x1b[H"),
        "END" => Some(b"\x1b[F"),
        "PGUP" => Some(b"\x1b[5~"),
        "PGDN" => Some(b"\x1b[6~"),
        _ => None,
    };
    if let Some(bytes) = named {
        return Some(Key {
            bytes: bytes.to_vec(),
            ctrl: None,
        });
    }
    let letter = upper
        .strip_prefix("C-")
        .or_else(|| upper.strip_prefix("CTRL-"))
        .or_else(|| upper.strip_prefix("CTRL+"))?;
    let mut letters = letter.chars();
    match (letters.next(), letters.next()) {
        (Some(c), None) if c.is_ascii_uppercase() => Some(Key {
            bytes: vec![(c as u8) & 0x1f],
            ctrl: Some(c),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(cmd: &str) -> Vec<String> {
        split_commands(cmd).statements
    }

    #[test]
    fn single_commands_stay_whole() {
        for cmd in [
            "echo hi",
            "a && b || c; d | e & f",
            "a &&\n b",
            "a |\n b",
            "echo 'multi\nline'",
            "echo \"multi\nline $(date\n)\"",
            "python -c \"\nimport os\nprint(1)\n\"",
            "a \\\n b",
            "if true; then\n echo a\n echo b\nfi",
            "for i in 1 2; do\n echo $i\ndone",
            "while read l; do\n echo $l\ndone < f",
            "case $x in\n a) echo a;;\n b) echo b\n ;;\nesac",
            "f() {\n echo a\n echo b\n}",
            "function g {\n echo a\n}",
            "(\n cd x\n ls\n)",
            "cat <<EOF\na\nb\nEOF",
            "cat <<'EOF' > f\n$x `y`\nEOF",
            "cat <<-EOF\n\tx\n\tEOF",
            "echo $'a\\'\nb'",
            "echo ${x:-\n}",
            "# just a comment",
            "echo a # comment",
            "find . -name '*.rs' -exec grep -l foo {} \\;",
            "x=$(cat <<EOF\nhi\nEOF\n)",
            "echo `ls\n`",
            "echo {a,b}",
            "[[ -f x ]] && echo y",
            "diff <(ls\n) >(cat\n)",
            "echo $((1 + (2 * 3)))",
        ] {
            assert_eq!(stmts(cmd), vec![cmd.to_owned()], "{cmd:?}");
        }
    }

    #[test]
    fn top_level_newlines_split() {
        assert_eq!(stmts("echo a\necho b"), vec!["echo a", "echo b"]);
        assert_eq!(stmts("ls\n\n  pwd  \n"), vec!["ls", "pwd"]);
        assert_eq!(stmts("a; b\nc"), vec!["a; b", "c"]);
        assert_eq!(stmts("a &\nb"), vec!["a &", "b"]);
        assert_eq!(stmts("a # c\nb"), vec!["a # c", "b"]);
        assert_eq!(
            stmts("if true; then echo a; fi\necho b"),
            vec!["if true; then echo a; fi", "echo b"]
        );
    }

    #[test]
    fn statements_after_a_heredoc_stay_together() {
        let cmd = "cat > f <<EOF\nhello\nEOF\ncat f";
        let split = split_commands(cmd);
        assert_eq!(split.statements, vec![cmd.to_owned()]);
        assert!(split.needs_boundary);
        let split = split_commands("cat <<EOF\nx\nEOF\na\nb");
        assert_eq!(split.statements, vec!["cat <<EOF\nx\nEOF\na", "b"]);
        assert!(!split_commands("cat <<EOF\nx\nEOF").needs_boundary);
    }

    #[test]
    fn unparsable_input_is_one_statement() {
        for cmd in ["echo 'open\nx", "a )\nb", "fi\nls", "cat <<EOF\nno end"] {
            assert_eq!(stmts(cmd), vec![cmd.to_owned()], "{cmd:?}");
        }
    }

    #[test]
    fn literals() {
        assert_eq!(literal_kind("[{\"a\": 1}]"), Some("list literal"));
        assert_eq!(literal_kind("  ['x']"), Some("list literal"));
        assert_eq!(literal_kind("[[1, 2]]"), Some("nested list literal"));
        assert_eq!(literal_kind("[[ -f x ]]"), None);
        assert_eq!(literal_kind("{\"a\": 1}"), Some("dict literal"));
        assert_eq!(literal_kind("{ ls; }"), None);
        assert_eq!(literal_kind("[ -f x ]"), None);
    }

    #[test]
    fn keys() {
        assert_eq!(parse_key("C-c").map(|k| k.bytes), Some(vec![3]));
        assert_eq!(parse_key("ctrl+d").map(|k| k.ctrl), Some(Some('D')));
        assert_eq!(parse_key(" up ").map(|k| k.bytes), Some(b"\x1b[A".to_vec()));
        assert_eq!(parse_key("C-cc"), None);
        assert_eq!(parse_key("hello"), None);
    }
}
