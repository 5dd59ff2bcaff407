//! Behaviour of `apply_patch`: parsing and applying the `*** Begin Patch` format, and the
//! texts a refused patch shows the model (those of the Python reference 1.58.2, whose
//! `process_patch` was run on the same inputs).

use std::fs;
use std::path::Path;

use oh_agent::tools::ToolContext;
use oh_agent::tools::apply_patch::ApplyPatchTool;
use oh_protocol::message::Content;
use oh_protocol::tool_gpt5_planning::{ApplyPatchObservation, FileChangeType};
use pretty_assertions::assert_eq;

fn tool(dir: &Path) -> ApplyPatchTool {
    ApplyPatchTool::new(&ToolContext {
        working_dir: dir.to_path_buf(),
        conversation_dir: None,
        secrets: Default::default(),
    })
}

fn text(observation: &ApplyPatchObservation) -> String {
    observation
        .content
        .iter()
        .filter_map(Content::as_text)
        .collect()
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

/// Applies `patch` and returns the error text, checking it is an error observation.
fn refused(dir: &Path, patch: &str) -> String {
    let observation = tool(dir).apply(patch).unwrap();
    assert!(observation.is_error, "expected a refusal: {observation:?}");
    assert_eq!(observation.commit, None);
    assert_eq!(observation.message, "");
    text(&observation)
}

#[test]
fn adds_a_file_in_a_new_directory() {
    let dir = tempfile::tempdir().unwrap();
    let observation = tool(dir.path())
        .apply("*** Begin Patch\n*** Add File: src/hello.py\n+print('hi')\n+\n*** End Patch")
        .unwrap();
    assert!(!observation.is_error);
    assert_eq!(text(&observation), "Done!");
    assert_eq!(observation.message, "Done!");
    assert_eq!(observation.fuzz, 0);
    // The added lines are joined without a final newline, as in the reference.
    assert_eq!(read(dir.path(), "src/hello.py"), "print('hi')\n");
    let commit = observation.commit.unwrap();
    let change = &commit.changes["src/hello.py"];
    assert_eq!(change.change_type, FileChangeType::Add);
    assert_eq!(change.new_content.as_deref(), Some("print('hi')\n"));
    assert_eq!(change.old_content, None);
    assert_eq!(change.move_path, None);
}

#[test]
fn updates_with_context_and_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("app.py"),
        "def a():\n    return 1\n\ndef b():\n    return 1\n",
    )
    .unwrap();
    let patch = "*** Begin Patch\n*** Update File: app.py\n@@ def b():\n-    return 1\n+    return 2\n*** End Patch\n";
    let observation = tool(dir.path()).apply(patch).unwrap();
    assert!(!observation.is_error, "{}", text(&observation));
    assert_eq!(
        read(dir.path(), "app.py"),
        "def a():\n    return 1\n\ndef b():\n    return 2\n"
    );
    let commit = observation.commit.unwrap();
    let change = &commit.changes["app.py"];
    assert_eq!(change.change_type, FileChangeType::Update);
    // An update that is not a move records an empty move path, as the reference does.
    assert_eq!(change.move_path.as_deref(), Some(""));
    assert_eq!(
        change.old_content.as_deref(),
        Some("def a():\n    return 1\n\ndef b():\n    return 1\n")
    );
}

#[test]
fn whitespace_differences_cost_fuzz() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f.txt"), "one  \ntwo\nthree\n").unwrap();
    let patch = "*** Begin Patch\n*** Update File: f.txt\n one\n-two\n+2\n three\n*** End Patch";
    let observation = tool(dir.path()).apply(patch).unwrap();
    assert_eq!(observation.fuzz, 1);
    assert_eq!(read(dir.path(), "f.txt"), "one  \n2\nthree\n");
}

#[test]
fn end_of_file_hunks_anchor_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f.txt"), "x\nend\nx\nend").unwrap();
    let patch =
        "*** Begin Patch\n*** Update File: f.txt\n x\n-end\n+END\n*** End of File\n*** End Patch";
    let observation = tool(dir.path()).apply(patch).unwrap();
    assert!(!observation.is_error, "{}", text(&observation));
    assert_eq!(read(dir.path(), "f.txt"), "x\nend\nx\nEND");
}

#[test]
fn moves_deletes_and_adds_in_one_patch() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("old.txt"), "a\nb\n").unwrap();
    fs::write(dir.path().join("gone.txt"), "bye\n").unwrap();
    let patch = "*** Begin Patch\n*** Update File: old.txt\n*** Move to: moved/new.txt\n-a\n+A\n b\n*** Delete File: gone.txt\n*** Add File: added.txt\n+new\n*** End Patch";
    let observation = tool(dir.path()).apply(patch).unwrap();
    assert!(!observation.is_error, "{}", text(&observation));
    assert!(!dir.path().join("old.txt").exists());
    assert!(!dir.path().join("gone.txt").exists());
    assert_eq!(read(dir.path(), "moved/new.txt"), "A\nb\n");
    assert_eq!(read(dir.path(), "added.txt"), "new");
    let commit = observation.commit.unwrap();
    assert_eq!(
        commit.changes.keys().collect::<Vec<_>>(),
        ["added.txt", "gone.txt", "old.txt"]
    );
    assert_eq!(
        commit.changes["old.txt"].move_path.as_deref(),
        Some("moved/new.txt")
    );
    assert_eq!(
        commit.changes["gone.txt"].old_content.as_deref(),
        Some("bye\n")
    );
}

#[test]
fn absolute_paths_inside_the_workspace_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let target = root.join("abs.txt");
    let patch = format!(
        "*** Begin Patch\n*** Add File: {}\n+x\n*** End Patch",
        target.display()
    );
    assert!(!tool(&root).apply(&patch).unwrap().is_error);
    assert_eq!(fs::read_to_string(target).unwrap(), "x");
}

#[test]
fn refusals_name_the_problem_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("f.txt"), "one\ntwo\n").unwrap();
    let cases: &[(&str, &str)] = &[
        (
            "patch me",
            "Invalid patch: must start with '*** Begin Patch'",
        ),
        ("*** Begin Patch\n*** Add File: x\n+x", "Invalid patch text"),
        (
            "*** Begin Patch\n*** Update File: missing.txt\n-a\n*** End Patch",
            "Delete File Error: Missing File: missing.txt",
        ),
        (
            "*** Begin Patch\n*** Delete File: missing.txt\n*** End Patch",
            "Delete File Error: Missing File: missing.txt",
        ),
        (
            "*** Begin Patch\n*** Update File: f.txt\n-three\n+3\n*** End Patch",
            "Invalid Context 0:\nthree",
        ),
        (
            "*** Begin Patch\n*** Update File: f.txt\n-three\n*** End of File\n*** End Patch",
            "Invalid EOF Context 0:\nthree",
        ),
        (
            "*** Begin Patch\n*** Add File: n.txt\nno plus\n*** End Patch",
            "Invalid Add File Line: no plus",
        ),
        (
            "*** Begin Patch\nhello\n*** End Patch",
            "Unknown Line: hello",
        ),
        (
            "*** Begin Patch\n*** Add File: a.txt\n+1\n*** Add File: a.txt\n+2\n*** End Patch",
            "Add File Error: Duplicate Path: a.txt",
        ),
        (
            "*** Begin Patch\n*** Update File: f.txt\n*** Move to: ../out.txt\n-one\n*** End Patch",
            "Update File Error: Invalid move path '../out.txt': must be a relative path without '..' components",
        ),
        (
            "*** Begin Patch\n*** Update File: f.txt\n one\n*** Bogus\n*** End Patch",
            "Invalid Line: *** Bogus",
        ),
        (
            "*** Begin Patch\n*** Update File: f.txt\n?one\n*** End Patch",
            "Invalid Line: ?one",
        ),
        (
            "*** Begin Patch\n*** Add File: ../escape.txt\n+x\n*** End Patch",
            "Absolute or escaping paths are not allowed",
        ),
        (
            "*** Begin Patch\n*** Delete File: /etc/hostname\n*** End Patch",
            "Absolute or escaping paths are not allowed",
        ),
    ];
    for (patch, expected) in cases {
        assert_eq!(&refused(d, patch), expected, "patch: {patch:?}");
    }
    assert_eq!(read(d, "f.txt"), "one\ntwo\n");
    assert!(!d.join("n.txt").exists() && !d.join("a.txt").exists());
    assert!(!d.parent().unwrap().join("escape.txt").exists());
}

#[test]
fn a_second_hunk_must_be_introduced_by_an_anchor() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f.txt"), "a\nb\nc\nd\n").unwrap();
    // After the first hunk, a hunk without `@@` is refused.
    let patch =
        "*** Begin Patch\n*** Update File: f.txt\n-a\n+A\n*** End of File\n b\n*** End Patch";
    assert_eq!(refused(dir.path(), patch), "Invalid Line:\n b");
    // With `@@` both hunks apply.
    let patch =
        "*** Begin Patch\n*** Update File: f.txt\n-a\n+A\n b\n@@\n c\n-d\n+D\n*** End Patch";
    let observation = tool(dir.path()).apply(patch).unwrap();
    assert!(!observation.is_error, "{}", text_of(&observation));
    assert_eq!(read(dir.path(), "f.txt"), "A\nb\nc\nD\n");
}

fn text_of(observation: &ApplyPatchObservation) -> String {
    text(observation)
}

#[test]
fn a_file_that_is_not_utf8_is_an_invalid_call() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bin"), [0xff, 0x00]).unwrap();
    let err = tool(dir.path())
        .apply("*** Begin Patch\n*** Delete File: bin\n*** End Patch")
        .unwrap_err();
    assert!(
        matches!(&err, oh_agent::tools::ToolError::Invalid(t) if t.contains("'utf-8' codec can't decode byte 0xff in position 0")),
        "{err:?}"
    );
    assert!(dir.path().join("bin").exists());
}
