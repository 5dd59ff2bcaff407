//! Behaviour of `glob` and `grep` (planning preset). The expected texts and lists are what
//! the Python reference 1.58.2 (without ripgrep: its Python glob and system grep backends)
//! answered for the same tree and calls.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use oh_agent::tools::ToolContext;
use oh_agent::tools::glob::GlobTool;
use oh_agent::tools::grep::GrepTool;
use oh_protocol::message::Content;
use oh_protocol::tool_gpt5_planning::{GlobAction, GrepAction};
use pretty_assertions::assert_eq;

/// The tree, oldest first (each file 10 s newer than the previous one).
const TREE: &[(&str, &[u8])] = &[
    ("a.py", b"import os\nprint('Hello')\n"),
    ("src/b.py", b"def main():\n    pass\n"),
    ("src/deep/c.ts", b"let x = 1 // TODO\n"),
    (".hidden/h.py", b"hello\n"),
    (".top.py", b"hello\n"),
    ("src/readme.md", b"HELLO world\n"),
    ("bin.dat", b"hello\x00\x01"),
];

fn tree() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let mut time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
    for (name, content) in TREE {
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        time += Duration::from_secs(10);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    let root = root.to_string_lossy().into_owned();
    (dir, root)
}

fn ctx(root: &str) -> ToolContext {
    ToolContext {
        working_dir: root.into(),
        conversation_dir: None,
        secrets: Default::default(),
    }
}

fn text(content: &[Content]) -> String {
    content.iter().filter_map(Content::as_text).collect()
}

fn glob(pattern: &str, path: Option<&str>) -> GlobAction {
    GlobAction {
        pattern: pattern.to_owned(),
        path: path.map(str::to_owned),
    }
}

fn grep(pattern: &str, path: Option<&str>, include: Option<&str>) -> GrepAction {
    GrepAction {
        pattern: pattern.to_owned(),
        path: path.map(str::to_owned),
        include: include.map(str::to_owned),
    }
}

#[test]
fn glob_matches_like_the_reference() {
    let (_dir, ws) = tree();
    let tool = GlobTool::new(&ctx(&ws)).unwrap();
    let cases: Vec<(GlobAction, &str, Vec<&str>, &str)> = vec![
        (
            glob("*.py", None),
            "Found 2 file(s) matching pattern '*.py' in '/WS':\n/WS/src/b.py\n/WS/a.py",
            vec!["/WS/src/b.py", "/WS/a.py"],
            "/WS",
        ),
        (
            glob("**/*.py", None),
            "Found 2 file(s) matching pattern '**/*.py' in '/WS':\n/WS/src/b.py\n/WS/a.py",
            vec!["/WS/src/b.py", "/WS/a.py"],
            "/WS",
        ),
        (
            glob("src/*", None),
            "Found 2 file(s) matching pattern 'src/*' in '/WS':\n/WS/src/readme.md\n/WS/src/b.py",
            vec!["/WS/src/readme.md", "/WS/src/b.py"],
            "/WS",
        ),
        (
            glob(".*.py", None),
            "Found 1 file(s) matching pattern '.*.py' in '/WS':\n/WS/.top.py",
            vec!["/WS/.top.py"],
            "/WS",
        ),
        (
            glob("*.nothing", None),
            "No files found matching pattern '*.nothing' in directory '/WS'",
            vec![],
            "/WS",
        ),
        (
            glob("**/*.{py,ts}", None),
            "No files found matching pattern '**/*.{py,ts}' in directory '/WS'",
            vec![],
            "/WS",
        ),
    ];
    for (action, expected, files, search_path) in cases {
        let observation = tool.run(&action);
        assert!(!observation.is_error);
        assert_eq!(
            text(&observation.content).replace(&ws, "/WS"),
            expected,
            "{action:?}"
        );
        let listed: Vec<String> = observation
            .files
            .iter()
            .map(|f| f.replace(&ws, "/WS"))
            .collect();
        assert_eq!(listed, files);
        assert_eq!(observation.search_path.replace(&ws, "/WS"), search_path);
        assert_eq!(observation.pattern, action.pattern);
        assert!(!observation.truncated);
    }
}

#[test]
fn glob_splits_absolute_patterns_and_checks_the_directory() {
    let (_dir, ws) = tree();
    let tool = GlobTool::new(&ctx(&ws)).unwrap();
    let pattern = format!("{ws}/src/**/*.ts");
    let observation = tool.run(&glob(&pattern, None));
    assert_eq!(
        text(&observation.content).replace(&ws, "/WS"),
        "Found 1 file(s) matching pattern '/WS/src/**/*.ts' in '/WS/src':\n/WS/src/deep/c.ts"
    );
    assert_eq!(observation.search_path, format!("{ws}/src"));

    let missing = format!("{ws}/nope");
    let observation = tool.run(&glob("*.py", Some(&missing)));
    assert!(observation.is_error);
    assert_eq!(
        text(&observation.content).replace(&ws, "/WS"),
        "Search path '/WS/nope' is not a valid directory"
    );
    assert_eq!(observation.search_path, missing);
    assert!(observation.files.is_empty());
}

#[test]
fn glob_stops_at_100_files() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..105 {
        fs::write(dir.path().join(format!("f{i}.txt")), "").unwrap();
    }
    let tool = GlobTool::new(&ctx(&dir.path().to_string_lossy())).unwrap();
    let observation = tool.run(&glob("*.txt", None));
    assert_eq!(observation.files.len(), 100);
    assert!(observation.truncated);
    assert!(text(&observation.content).ends_with(
        "\n\n[Results truncated to first 100 files. Consider using a more specific pattern.]"
    ));
}

#[test]
fn grep_finds_files_like_the_reference() {
    let (_dir, ws) = tree();
    let tool = GrepTool::new(&ctx(&ws)).unwrap();
    let src = format!("{ws}/src");
    let cases: Vec<(GrepAction, &str, Vec<&str>)> = vec![
        (
            // Case-insensitive; hidden files and directories and binary files are skipped.
            grep("hello", None, None),
            "Found 2 file(s) containing pattern 'hello' in '/WS':\n/WS/src/readme.md\n/WS/a.py",
            vec!["/WS/src/readme.md", "/WS/a.py"],
        ),
        (
            grep("hello", None, Some("*.md")),
            "Found 1 file(s) containing pattern 'hello' in '/WS' (filtered by '*.md'):\n/WS/src/readme.md",
            vec!["/WS/src/readme.md"],
        ),
        (
            grep("todo", Some(&src), None),
            "Found 1 file(s) containing pattern 'todo' in '/WS/src':\n/WS/src/deep/c.ts",
            vec!["/WS/src/deep/c.ts"],
        ),
        (
            grep("zzz", None, None),
            "No files found containing pattern 'zzz' in directory '/WS'",
            vec![],
        ),
    ];
    for (action, expected, matches) in cases {
        let observation = tool.run(&action);
        assert!(!observation.is_error);
        assert_eq!(
            text(&observation.content).replace(&ws, "/WS"),
            expected,
            "{action:?}"
        );
        let listed: Vec<String> = observation
            .matches
            .iter()
            .map(|f| f.replace(&ws, "/WS"))
            .collect();
        assert_eq!(listed, matches);
        assert_eq!(observation.include_pattern, action.include);
    }
}

#[test]
fn grep_reports_bad_patterns_and_paths() {
    let (_dir, ws) = tree();
    let tool = GrepTool::new(&ctx(&ws)).unwrap();
    let observation = tool.run(&grep("(unclosed", None, None));
    assert!(observation.is_error);
    let shown = text(&observation.content);
    assert!(shown.starts_with("Invalid regex pattern: "), "{shown}");
    assert_eq!(observation.search_path, ws);

    let observation = tool.run(&grep("x", Some("/no/such/dir"), None));
    assert!(observation.is_error);
    assert_eq!(
        text(&observation.content),
        "Search path '/no/such/dir' is not a valid directory"
    );
    assert_eq!(observation.search_path, "/no/such/dir");
}

#[test]
fn grep_reads_the_regex_syntax_its_description_promises() {
    let (_dir, ws) = tree();
    let tool = GrepTool::new(&ctx(&ws)).unwrap();
    let observation = tool.run(&grep(r"def\s+main|^let ", None, None));
    let listed: Vec<String> = observation
        .matches
        .iter()
        .map(|f| f.replace(&ws, "/WS"))
        .collect();
    assert_eq!(listed, ["/WS/src/deep/c.ts", "/WS/src/b.py"]);
}

#[test]
fn the_search_tools_need_an_existing_working_directory() {
    let err = GlobTool::new(&ctx("/no/such/dir")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "working_dir '/no/such/dir' is not a valid directory"
    );
    assert!(GrepTool::new(&ctx("/no/such/dir")).is_err());
    assert!(Path::new("/").is_dir());
}
