//! Behaviour of the `file_editor` tool core.
//!
//! Unless a test says otherwise, the expected texts were checked against the Python reference
//! (openhands-tools 1.57.0) by running the same calls on the same files; `<D>` stands for the
//! temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use oh_agent::tools::file_editor::{FileEditor, parse_action};
use oh_protocol::message::Content;
use oh_protocol::tool::{FileEditorCommand, FileEditorObservation};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A temporary directory and an editor working in it.
struct Env {
    dir: TempDir,
    editor: FileEditor,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let editor = FileEditor::new(dir.path().to_path_buf());
        Self { dir, editor }
    }

    fn root(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// Absolute path of `rel` inside the directory.
    fn path(&self, rel: &str) -> String {
        format!("{}/{rel}", self.root())
    }

    /// Writes a file (creating parents) and returns its absolute path.
    fn write(&self, rel: &str, bytes: impl AsRef<[u8]>) -> String {
        let path = self.path(rel);
        fs::create_dir_all(Path::new(&path).parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        path
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.path(rel)).unwrap()
    }

    /// Parses the arguments as the model would send them and runs them.
    fn run(&mut self, args: Value) -> FileEditorObservation {
        let Value::Object(map) = args else {
            panic!("arguments must be an object")
        };
        let action = parse_action(map).unwrap();
        self.editor.run(&action)
    }

    /// Runs a call that must fail and returns its redacted message.
    fn error(&mut self, args: Value) -> String {
        let observation = self.run(args);
        assert!(observation.is_error, "expected an error: {observation:?}");
        assert_eq!(observation.path, None);
        assert!(observation.prev_exist);
        self.redact(&text_of(&observation))
    }

    /// Runs a call that must succeed and returns its redacted text.
    fn ok(&mut self, args: Value) -> String {
        let observation = self.run(args);
        assert!(!observation.is_error, "unexpected error: {observation:?}");
        self.redact(&text_of(&observation))
    }

    fn redact(&self, text: &str) -> String {
        text.replace(&self.root(), "<D>")
    }
}

fn text_of(observation: &FileEditorObservation) -> String {
    observation
        .content
        .iter()
        .filter_map(Content::as_text)
        .collect()
}

/// `cat -n` body lines for `(number, text)` pairs.
fn numbered(lines: &[(usize, &str)]) -> String {
    lines
        .iter()
        .map(|(n, line)| format!("{n:6}\t{line}\n"))
        .collect()
}

fn twenty_lines() -> String {
    (1..=20).map(|i| format!("line {i}\n")).collect()
}

// ---------------------------------------------------------------- view: files

#[test]
fn view_whole_file_has_no_extra_line_for_the_trailing_newline() {
    let mut env = Env::new();
    let path = env.write("a.txt", "one\ntwo\nthree\n");
    let observation = env.run(json!({"command": "view", "path": path}));
    assert_eq!(observation.command, FileEditorCommand::View);
    assert_eq!(observation.path.as_deref(), Some(path.as_str()));
    assert!(observation.prev_exist);
    assert_eq!(
        env.redact(&text_of(&observation)),
        "Here's the result of running `cat -n` on <D>/a.txt:\n     1\tone\n     2\ttwo\n     3\tthree\n"
    );
}

#[test]
fn view_file_without_trailing_newline_and_empty_file() {
    let mut env = Env::new();
    let path = env.write("b.txt", "x\ny");
    assert_eq!(
        env.ok(json!({"command": "view", "path": path})),
        "Here's the result of running `cat -n` on <D>/b.txt:\n     1\tx\n     2\ty\n"
    );
    let empty = env.write("e.txt", "");
    assert_eq!(
        env.ok(json!({"command": "view", "path": empty})),
        "Here's the result of running `cat -n` on <D>/e.txt:\n"
    );
}

#[test]
fn view_range_and_minus_one() {
    let mut env = Env::new();
    let path = env.write("a.txt", "one\ntwo\nthree\n");
    let expected =
        "Here's the result of running `cat -n` on <D>/a.txt:\n     2\ttwo\n     3\tthree\n";
    assert_eq!(
        env.ok(json!({"command": "view", "path": path, "view_range": [2, 3]})),
        expected
    );
    assert_eq!(
        env.ok(json!({"command": "view", "path": path, "view_range": [2, -1]})),
        expected
    );
}

#[test]
fn view_range_end_past_the_file_is_clamped_with_a_note() {
    let mut env = Env::new();
    let path = env.write("a.txt", "one\ntwo\nthree\n");
    assert_eq!(
        env.ok(json!({"command": "view", "path": path, "view_range": [2, 10]})),
        "NOTE: We only show up to 3 since there're only 3 lines in this file.\n\
         Here's the result of running `cat -n` on <D>/a.txt:\n     2\ttwo\n     3\tthree\n"
    );
}

#[test]
fn view_range_errors() {
    let mut env = Env::new();
    let path = env.write("a.txt", "one\ntwo\nthree\n");
    let cases = [
        (
            json!([0, 2]),
            "Invalid `view_range` parameter: [0, 2]. Its first element `0` should be within the range of lines of the file: [1, 3].",
        ),
        (
            json!([4, 5]),
            "Invalid `view_range` parameter: [4, 5]. Its first element `4` should be within the range of lines of the file: [1, 3].",
        ),
        (
            json!([3, 2]),
            "Invalid `view_range` parameter: [3, 2]. Its second element `2` should be greater than or equal to the first element `3`.",
        ),
        (
            json!([2, -5]),
            "Invalid `view_range` parameter: [2, -5]. Its second element `-5` should be greater than or equal to the first element `2`.",
        ),
        (
            json!([1, 2, 3]),
            "Invalid `view_range` parameter: [1, 2, 3]. It should be a list of two integers.",
        ),
    ];
    for (range, expected) in cases {
        let observation = env.run(json!({"command": "view", "path": path, "view_range": range}));
        assert!(observation.is_error);
        assert_eq!(observation.command, FileEditorCommand::View);
        assert_eq!(text_of(&observation), expected);
    }
}

#[test]
fn view_range_on_an_empty_file_reports_the_empty_range() {
    let mut env = Env::new();
    let path = env.write("e.txt", "");
    assert_eq!(
        env.error(json!({"command": "view", "path": path, "view_range": [1, 1]})),
        "Invalid `view_range` parameter: [1, 1]. Its first element `1` should be within the range of lines of the file: [1, 0]."
    );
}

#[test]
fn empty_view_range_shows_the_whole_file() {
    let mut env = Env::new();
    let path = env.write("a.txt", "one\ntwo\n");
    assert_eq!(
        env.ok(json!({"command": "view", "path": path, "view_range": []})),
        "Here's the result of running `cat -n` on <D>/a.txt:\n     1\tone\n     2\ttwo\n"
    );
}

#[test]
fn lines_split_on_newline_only() {
    // 1.57.0: form feeds and Unicode line separators do not start new lines.
    let mut env = Env::new();
    let path = env.write("ff.txt", "a\x0cb\nc\u{2028}d\n");
    assert_eq!(
        env.ok(json!({"command": "view", "path": path})),
        "Here's the result of running `cat -n` on <D>/ff.txt:\n     1\ta\x0cb\n     2\tc\u{2028}d\n"
    );
    assert_eq!(
        env.ok(json!({"command": "view", "path": path, "view_range": [2, 2]})),
        "Here's the result of running `cat -n` on <D>/ff.txt:\n     2\tc\u{2028}d\n"
    );
}

#[test]
fn long_views_are_clipped_before_numbering() {
    let mut env = Env::new();
    let content: String = (0..1000)
        .map(|i| format!("{i:05} {}\n", "x".repeat(60)))
        .collect();
    let path = env.write("long.txt", content);
    let text = env.ok(json!({"command": "view", "path": path}));
    let notice = "<response clipped><NOTE>Due to the max output limit, only part of this file has been shown to you. You should retry this tool after you have searched inside the file with `grep -n` in order to find the line numbers of what you are looking for.</NOTE>";
    assert!(text.contains(notice));
    assert!(
        text.starts_with(
            "Here's the result of running `cat -n` on <D>/long.txt:\n     1\t00000 xxx"
        )
    );
    // The reference numbers the kept tail as if it followed the head directly.
    assert!(text.ends_with(&format!("   235\t00999 {}\n", "x".repeat(60))));
}

// ---------------------------------------------------------------- view: directories

#[test]
fn directory_listing_two_levels_without_hidden_items() {
    let mut env = Env::new();
    env.write("top/b.txt", "b");
    env.write("top/a/x.py", "x");
    env.write("top/a/.hid", "h");
    env.write("top/a/deep/z.txt", "z");
    env.write("top/.env", "e");
    env.write("top/.git/config", "c");
    env.write("top/c/k.txt", "k");
    let path = env.path("top");
    let observation = env.run(json!({"command": "view", "path": path}));
    assert_eq!(observation.path.as_deref(), Some(path.as_str()));
    assert_eq!(
        env.redact(&text_of(&observation)),
        "Here's the files and directories up to 2 levels deep in <D>/top, excluding hidden items:\n\
         <D>/top/\n<D>/top/a/\n<D>/top/a/deep/\n<D>/top/a/x.py\n<D>/top/b.txt\n<D>/top/c/\n<D>/top/c/k.txt\n\n\
         2 hidden files/directories in this directory are excluded. You can use 'ls -la <D>/top' to see them."
    );
}

#[test]
fn directory_listing_without_hidden_entries_has_no_count_line() {
    let mut env = Env::new();
    env.write("d/one.txt", "1");
    let path = format!("{}/", env.path("d"));
    assert_eq!(
        env.ok(json!({"command": "view", "path": path})),
        "Here's the files and directories up to 2 levels deep in <D>/d, excluding hidden items:\n<D>/d/\n<D>/d/one.txt"
    );
}

#[test]
fn view_range_is_refused_for_directories() {
    let mut env = Env::new();
    env.write("top/b.txt", "b");
    let path = format!("{}/", env.path("top"));
    assert_eq!(
        env.error(json!({"command": "view", "path": path, "view_range": [1, 2]})),
        "Invalid `view_range` parameter: [1, 2]. The `view_range` parameter is not allowed when `path` points to a directory."
    );
}

#[test]
fn large_directory_listings_are_clipped() {
    // The notice text is the reference's; the listing length depends on the directory name.
    let mut env = Env::new();
    for i in 0..400 {
        env.write(&format!("many/file_with_a_long_name_{i:04}.txt"), "");
    }
    let path = env.path("many");
    let observation = env.run(json!({"command": "view", "path": path}));
    let text = text_of(&observation);
    assert!(text.chars().count() <= 16_000);
    assert!(text.contains("<response clipped><NOTE>Due to the max output limit, only part of this directory has been shown to you. You should use `ls -la` instead to view large directories incrementally.</NOTE>"));
    assert!(text.ends_with("/many/file_with_a_long_name_0399.txt"));
}

// ---------------------------------------------------------------- view: images and binaries

#[test]
fn images_are_returned_as_data_urls() {
    let mut env = Env::new();
    let png = env.write("pic.PNG", b"\x89PNG\r\n\x1a\n0000");
    let observation = env.run(json!({"command": "view", "path": png}));
    assert!(!observation.is_error);
    assert_eq!(observation.path.as_deref(), Some(png.as_str()));
    let [Content::Text(text), Content::Image(image)] = observation.content.as_slice() else {
        panic!("expected text and image: {observation:?}");
    };
    assert_eq!(
        env.redact(&text.text),
        "Image file <D>/pic.PNG read successfully. Displaying image content."
    );
    assert_eq!(image.image_urls, ["data:image/png;base64,iVBORw0KGgowMDAw"]);

    for (name, bytes, url) in [
        (
            "pic.jpeg",
            &b"\xff\xd8\xff\xe0"[..],
            "data:image/jpeg;base64,/9j/4A==",
        ),
        ("pic.bmp", b"BM", "data:image/bmp;base64,Qk0="),
        ("pic.webp", b"RIFF", "data:image/webp;base64,UklGRg=="),
    ] {
        let path = env.write(name, bytes);
        let observation = env.run(json!({"command": "view", "path": path}));
        let Some(Content::Image(image)) = observation.content.get(1) else {
            panic!("no image for {name}");
        };
        assert_eq!(image.image_urls, [url]);
    }
}

#[test]
fn binary_files_are_refused() {
    let mut env = Env::new();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(2048).collect();
    let path = env.write("blob.dat", bytes);
    let expected = "File validation failed for <D>/blob.dat: File appears to be binary and this file type cannot be read or edited by this tool.";
    assert_eq!(
        env.error(json!({"command": "view", "path": path})),
        expected
    );
    let observation =
        env.run(json!({"command": "str_replace", "path": path, "old_str": "a", "new_str": "b"}));
    assert_eq!(observation.command, FileEditorCommand::StrReplace);
    assert_eq!(env.redact(&text_of(&observation)), expected);
}

#[test]
fn clean_text_is_not_binary_even_with_ansi_escapes_or_a_binary_extension() {
    let mut env = Env::new();
    let log = env.write("log.txt", b"\x1b[31mred\x1b[0m\nplain\n");
    assert_eq!(
        env.ok(json!({"command": "view", "path": log})),
        "Here's the result of running `cat -n` on <D>/log.txt:\n     1\t\x1b[31mred\x1b[0m\n     2\tplain\n"
    );
    let pdf = env.write("t.pdf", b"just text\n");
    assert_eq!(
        env.ok(json!({"command": "view", "path": pdf})),
        "Here's the result of running `cat -n` on <D>/t.pdf:\n     1\tjust text\n"
    );
}

#[test]
fn files_over_ten_megabytes_are_refused() {
    let mut env = Env::new();
    let path = env.path("big.txt");
    fs::File::create(&path)
        .unwrap()
        .set_len(10 * 1024 * 1024 + 1)
        .unwrap();
    assert_eq!(
        env.error(json!({"command": "view", "path": path})),
        "File validation failed for <D>/big.txt: File is too large (10.0MB). Maximum allowed size is 10MB."
    );
}

// ---------------------------------------------------------------- path checks

#[test]
fn relative_paths_are_refused_with_a_hint_when_the_file_exists() {
    let mut env = Env::new();
    env.write("rel.txt", "r");
    assert_eq!(
        env.error(json!({"command": "view", "path": "rel.txt"})),
        "Invalid `path` parameter: rel.txt. The path should be an absolute path. Maybe you meant <D>/rel.txt?"
    );
    assert_eq!(
        env.error(json!({"command": "view", "path": "nothere.txt"})),
        "Invalid `path` parameter: nothere.txt. The path should be an absolute path."
    );
    assert_eq!(
        env.error(json!({"command": "view", "path": ""})),
        "Invalid `path` parameter: .. The path should be an absolute path. Maybe you meant <D>?"
    );
}

#[test]
fn missing_paths_are_reported() {
    let mut env = Env::new();
    let path = env.path("missing.txt");
    let expected = "Invalid `path` parameter: <D>/missing.txt. The path <D>/missing.txt does not exist. Please provide a valid path.";
    assert_eq!(
        env.error(json!({"command": "view", "path": path})),
        expected
    );
    assert_eq!(
        env.error(json!({"command": "undo_edit", "path": path})),
        expected
    );
}

#[test]
fn directories_only_support_view() {
    let mut env = Env::new();
    env.write("top/a/x.py", "x");
    let dir = env.path("top/a");
    assert_eq!(
        env.error(json!({"command": "str_replace", "path": dir, "old_str": "x", "new_str": "y"})),
        "Invalid `path` parameter: <D>/top/a. The path <D>/top/a is a directory and only the `view` command can be used on directories."
    );
    assert_eq!(
        env.error(json!({"command": "create", "path": dir, "file_text": "x"})),
        "Invalid `path` parameter: <D>/top/a. File already exists at: <D>/top/a. Cannot overwrite files using command `create`."
    );
}

#[test]
fn paths_are_normalised_like_pathlib() {
    let mut env = Env::new();
    env.write("rel.txt", "r");
    let messy = format!("{}//./rel.txt", env.root());
    let observation = env.run(json!({"command": "view", "path": messy}));
    assert_eq!(observation.path, Some(env.path("rel.txt")));
    assert_eq!(
        env.redact(&text_of(&observation)),
        "Here's the result of running `cat -n` on <D>/rel.txt:\n     1\tr\n"
    );
}

// ---------------------------------------------------------------- create

#[test]
fn create_writes_a_new_file() {
    let mut env = Env::new();
    let path = env.path("new.txt");
    let observation =
        env.run(json!({"command": "create", "path": path, "file_text": "hello\nworld\n"}));
    assert_eq!(
        observation,
        FileEditorObservation {
            content: vec![Content::text(format!(
                "File created successfully at: {path}"
            ))],
            is_error: false,
            command: FileEditorCommand::Create,
            path: Some(path.clone()),
            prev_exist: false,
            old_content: None,
            new_content: Some("hello\nworld\n".to_owned()),
        }
    );
    assert_eq!(env.read("new.txt"), b"hello\nworld\n");
    // Port decision: the usual mode for new files (what `fs::write` gives), not the
    // reference's 0600.
    let probe = env.write("probe", "");
    let mode = |path: &str| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&path), mode(&probe));
}

#[test]
fn create_refuses_existing_files() {
    let mut env = Env::new();
    let path = env.write("rel.txt", "r");
    assert_eq!(
        env.error(json!({"command": "create", "path": path, "file_text": "x"})),
        "Invalid `path` parameter: <D>/rel.txt. File already exists at: <D>/rel.txt. Cannot overwrite files using command `create`."
    );
    assert_eq!(env.read("rel.txt"), b"r");
}

#[test]
fn create_does_not_make_missing_directories() {
    // The temporary file's random name differs from run to run; the shape is the reference's.
    let mut env = Env::new();
    let path = env.path("nodir/new.txt");
    let text = env.error(json!({"command": "create", "path": path, "file_text": "x"}));
    assert!(
        text.starts_with("Ran into [Errno 2] No such file or directory: '<D>/nodir/.new.txt."),
        "{text}"
    );
    assert!(
        text.ends_with(".tmp' while trying to write to <D>/nodir/new.txt"),
        "{text}"
    );
    assert!(!Path::new(&env.path("nodir")).exists());
}

#[test]
fn create_requires_file_text() {
    let mut env = Env::new();
    let path = env.path("n2.txt");
    let observation = env.run(json!({"command": "create", "path": path}));
    assert!(observation.is_error);
    assert_eq!(observation.command, FileEditorCommand::Create);
    assert_eq!(
        text_of(&observation),
        "Parameter `file_text` is required for command: create."
    );
}

// ---------------------------------------------------------------- str_replace

#[test]
fn str_replace_shows_a_snippet_four_lines_around_the_edit() {
    let mut env = Env::new();
    let path = env.write("s.py", twenty_lines());
    let observation = env.run(json!({
        "command": "str_replace", "path": path,
        "old_str": "line 10\n", "new_str": "LINE TEN\nextra\n"
    }));
    assert!(!observation.is_error);
    assert_eq!(observation.command, FileEditorCommand::StrReplace);
    assert!(observation.prev_exist);
    assert_eq!(
        observation.old_content.as_deref(),
        Some(twenty_lines().as_str())
    );
    let new_content = twenty_lines().replace("line 10\n", "LINE TEN\nextra\n");
    assert_eq!(
        observation.new_content.as_deref(),
        Some(new_content.as_str())
    );
    let snippet = numbered(&[
        (7, "line 7"),
        (8, "line 8"),
        (9, "line 9"),
        (10, "LINE TEN"),
        (11, "extra"),
        (12, "line 11"),
        (13, "line 12"),
        (14, "line 13"),
        (15, "line 14"),
        (16, "line 15"),
    ]);
    assert_eq!(
        env.redact(&text_of(&observation)),
        format!(
            "The file <D>/s.py has been edited. Here's the result of running `cat -n` on a snippet of <D>/s.py:\n{snippet}\
             Review the changes and make sure they are as expected. Edit the file again if necessary."
        )
    );
    assert_eq!(env.read("s.py"), new_content.as_bytes());
}

#[test]
fn str_replace_near_the_start_and_at_the_end_without_newline() {
    let mut env = Env::new();
    let path = env.write("s.txt", "a\nb\nc");
    assert_eq!(
        env.ok(json!({"command": "str_replace", "path": path, "old_str": "a", "new_str": "A"})),
        "The file <D>/s.txt has been edited. Here's the result of running `cat -n` on a snippet of <D>/s.txt:\n     1\tA\n     2\tb\n     3\tc\nReview the changes and make sure they are as expected. Edit the file again if necessary."
    );
    assert_eq!(
        env.ok(json!({"command": "str_replace", "path": path, "old_str": "c", "new_str": "C\nD"})),
        "The file <D>/s.txt has been edited. Here's the result of running `cat -n` on a snippet of <D>/s.txt:\n     1\tA\n     2\tb\n     3\tC\n     4\tD\nReview the changes and make sure they are as expected. Edit the file again if necessary."
    );
    assert_eq!(env.read("s.txt"), b"A\nb\nC\nD");
}

#[test]
fn str_replace_without_a_match() {
    let mut env = Env::new();
    let path = env.write("s.py", twenty_lines());
    assert_eq!(
        env.error(
            json!({"command": "str_replace", "path": path, "old_str": "nope", "new_str": "x"})
        ),
        "No replacement was performed, old_str `nope` did not appear verbatim in <D>/s.py."
    );
    // The message shows the stripped string that was searched last.
    assert_eq!(
        env.error(
            json!({"command": "str_replace", "path": path, "old_str": "  nope \n", "new_str": "x"})
        ),
        "No replacement was performed, old_str `nope` did not appear verbatim in <D>/s.py."
    );
}

#[test]
fn str_replace_with_several_matches_lists_their_lines() {
    let mut env = Env::new();
    let path = env.write("s.py", twenty_lines());
    assert_eq!(
        env.error(
            json!({"command": "str_replace", "path": path, "old_str": "line 1", "new_str": "x"})
        ),
        "No replacement was performed. Multiple occurrences of old_str `line 1` in lines [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]. Please ensure it is unique."
    );
    assert_eq!(env.read("s.py"), twenty_lines().as_bytes());
}

#[test]
fn str_replace_retries_with_stripped_old_str_but_keeps_new_str() {
    let mut env = Env::new();
    let path = env.write("s.py", twenty_lines());
    assert_eq!(
        env.ok(json!({"command": "str_replace", "path": path, "old_str": "  line 3  ", "new_str": "  L3"})),
        "The file <D>/s.py has been edited. Here's the result of running `cat -n` on a snippet of <D>/s.py:\n\
         \x20    1\tline 1\n     2\tline 2\n     3\t  L3\n     4\tline 4\n     5\tline 5\n     6\tline 6\n     7\tline 7\n\
         Review the changes and make sure they are as expected. Edit the file again if necessary."
    );
}

#[test]
fn str_replace_with_equal_strings_is_refused() {
    let mut env = Env::new();
    let path = env.write("s.py", twenty_lines());
    assert_eq!(
        env.error(
            json!({"command": "str_replace", "path": path, "old_str": "same", "new_str": "same"})
        ),
        "Invalid `new_str` parameter: same. No replacement was performed. `new_str` and `old_str` must be different."
    );
}

#[test]
fn str_replace_requires_old_and_new_str() {
    let mut env = Env::new();
    let path = env.write("s.py", twenty_lines());
    assert_eq!(
        env.error(json!({"command": "str_replace", "path": path, "new_str": "x"})),
        "Parameter `old_str` is required for command: str_replace."
    );
    assert_eq!(
        env.error(json!({"command": "str_replace", "path": path, "old_str": "x"})),
        "Parameter `new_str` is required for command: str_replace."
    );
}

#[test]
fn whitespace_only_old_str_matches_everywhere() {
    let mut env = Env::new();
    let path = env.write("s.txt", "a\nb\n");
    assert_eq!(
        env.error(
            json!({"command": "str_replace", "path": path, "old_str": "  \n ", "new_str": "q"})
        ),
        "No replacement was performed. Multiple occurrences of old_str `` in lines [1, 2, 3]. Please ensure it is unique."
    );
}

// ---------------------------------------------------------------- insert

#[test]
fn insert_at_the_top_and_at_the_end() {
    let mut env = Env::new();
    let path = env.write("i.txt", "a\nb\nc\n");
    let observation =
        env.run(json!({"command": "insert", "path": path, "insert_line": 0, "new_str": "top"}));
    assert_eq!(observation.command, FileEditorCommand::Insert);
    assert_eq!(observation.old_content.as_deref(), Some("a\nb\nc\n"));
    assert_eq!(observation.new_content.as_deref(), Some("top\na\nb\nc\n"));
    assert_eq!(
        env.redact(&text_of(&observation)),
        "The file <D>/i.txt has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n\
         \x20    1\ttop\n     2\ta\n     3\tb\n     4\tc\n\
         Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary."
    );
    assert_eq!(
        env.ok(
            json!({"command": "insert", "path": path, "insert_line": 4, "new_str": "end1\nend2"})
        ),
        "The file <D>/i.txt has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n\
         \x20    1\ttop\n     2\ta\n     3\tb\n     4\tc\n     5\tend1\n     6\tend2\n\
         Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary."
    );
    assert_eq!(env.read("i.txt"), b"top\na\nb\nc\nend1\nend2\n");
}

#[test]
fn insert_in_the_middle_shows_context_and_keeps_a_trailing_newline_line() {
    let mut env = Env::new();
    let content: String = (1..=15).map(|i| format!("{i}\n")).collect();
    let path = env.write("k.txt", content);
    assert_eq!(
        env.ok(json!({"command": "insert", "path": path, "insert_line": 10, "new_str": "new\n"})),
        format!(
            "The file <D>/k.txt has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n{}\
             Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
            numbered(&[
                (7, "7"),
                (8, "8"),
                (9, "9"),
                (10, "10"),
                (11, "new"),
                (12, ""),
                (13, "11"),
                (14, "12"),
                (15, "13"),
                (16, "14"),
            ])
        )
    );
}

#[test]
fn insert_after_a_last_line_without_newline_joins_them_as_the_reference_does() {
    let mut env = Env::new();
    let path = env.write("j.txt", "a\nb");
    let observation =
        env.run(json!({"command": "insert", "path": path, "insert_line": 2, "new_str": "c"}));
    assert_eq!(observation.new_content.as_deref(), Some("a\nbc\n"));
    assert_eq!(env.read("j.txt"), b"a\nbc\n");
}

#[test]
fn insert_into_an_empty_file() {
    let mut env = Env::new();
    let path = env.write("empty.txt", "");
    assert_eq!(
        env.ok(json!({"command": "insert", "path": path, "insert_line": 0, "new_str": "only"})),
        "The file <D>/empty.txt has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n     1\tonly\n\
         Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary."
    );
}

#[test]
fn insert_out_of_range_and_missing_parameters() {
    let mut env = Env::new();
    let path = env.write("i.txt", "a\nb\nc\n");
    assert_eq!(
        env.error(json!({"command": "insert", "path": path, "insert_line": 9, "new_str": "x"})),
        "Invalid `insert_line` parameter: 9. It should be within the range of allowed values: [0, 3]"
    );
    assert_eq!(
        env.error(json!({"command": "insert", "path": path, "new_str": "x"})),
        "Parameter `insert_line` is required for command: insert."
    );
    assert_eq!(
        env.error(json!({"command": "insert", "path": path, "insert_line": 1})),
        "Parameter `new_str` is required for command: insert."
    );
}

// ---------------------------------------------------------------- undo_edit

#[test]
fn undo_right_after_create_leaves_the_file_as_created() {
    let mut env = Env::new();
    let path = env.path("new.txt");
    env.ok(json!({"command": "create", "path": path, "file_text": "hello\nworld\n"}));
    let observation = env.run(json!({"command": "undo_edit", "path": path}));
    assert_eq!(observation.command, FileEditorCommand::UndoEdit);
    assert_eq!(observation.old_content.as_deref(), Some("hello\nworld\n"));
    assert_eq!(observation.new_content.as_deref(), Some("hello\nworld\n"));
    assert_eq!(
        env.redact(&text_of(&observation)),
        "Last edit to <D>/new.txt undone successfully. Here's the result of running `cat -n` on <D>/new.txt:\n     1\thello\n     2\tworld\n"
    );
    assert_eq!(env.read("new.txt"), b"hello\nworld\n");
    assert_eq!(
        env.error(json!({"command": "undo_edit", "path": path})),
        "No edit history found for <D>/new.txt."
    );
}

#[test]
fn undo_restores_the_previous_content() {
    let mut env = Env::new();
    let path = env.write("s.txt", "alpha\nbeta\n");
    env.ok(json!({"command": "str_replace", "path": path, "old_str": "beta", "new_str": "gamma"}));
    let observation = env.run(json!({"command": "undo_edit", "path": path}));
    assert!(!observation.is_error);
    assert_eq!(observation.old_content.as_deref(), Some("alpha\ngamma\n"));
    assert_eq!(observation.new_content.as_deref(), Some("alpha\nbeta\n"));
    assert_eq!(env.read("s.txt"), b"alpha\nbeta\n");
}

#[test]
fn undo_without_history() {
    let mut env = Env::new();
    let path = env.write("s.txt", "x\n");
    assert_eq!(
        env.error(json!({"command": "undo_edit", "path": path})),
        "No edit history found for <D>/s.txt."
    );
}

#[test]
fn undo_history_keeps_ten_versions() {
    let mut env = Env::new();
    let path = env.write("run.sh", "echo 1\n");
    for i in 1..13 {
        env.ok(json!({"command": "str_replace", "path": path, "old_str": format!("echo {i}"), "new_str": format!("echo {}", i + 1)}));
    }
    let mut undos = 0;
    while !env
        .run(json!({"command": "undo_edit", "path": path}))
        .is_error
    {
        undos += 1;
    }
    assert_eq!(undos, 10);
    assert_eq!(env.read("run.sh"), b"echo 3\n");
}

// ---------------------------------------------------------------- files on disk

#[test]
fn edits_keep_permissions_and_leave_no_temporary_files() {
    let mut env = Env::new();
    let path = env.write("run.sh", "echo 1\n");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    env.ok(json!({"command": "str_replace", "path": path, "old_str": "1", "new_str": "2"}));
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    let names: Vec<String> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["run.sh"]);
}

#[test]
fn single_byte_files_keep_their_encoding_until_it_cannot_represent_the_text() {
    let mut env = Env::new();
    // "café crème\nnaïve\n" in Windows-1252.
    let path = env.write("lat.txt", b"caf\xe9 cr\xe8me\nna\xefve\n");
    assert_eq!(
        env.ok(json!({"command": "view", "path": path})),
        "Here's the result of running `cat -n` on <D>/lat.txt:\n     1\tcafé crème\n     2\tnaïve\n"
    );
    env.ok(json!({"command": "str_replace", "path": path, "old_str": "crème", "new_str": "crÈme"}));
    assert_eq!(env.read("lat.txt"), b"caf\xe9 cr\xc8me\nna\xefve\n");
    // A check mark does not exist in Windows-1252: the whole file becomes UTF-8.
    let observation = env.run(
        json!({"command": "str_replace", "path": path, "old_str": "naïve", "new_str": "naïve ✓"}),
    );
    assert_eq!(
        observation.new_content.as_deref(),
        Some("café crÈme\nnaïve ✓\n")
    );
    assert_eq!(env.read("lat.txt"), "café crÈme\nnaïve ✓\n".as_bytes());
}

#[test]
fn cyrillic_windows_1251_files_are_read_and_written_in_their_encoding() {
    let mut env = Env::new();
    // "Привет, мир!\nВторая строка.\n" in Windows-1251.
    let bytes = b"\xcf\xf0\xe8\xe2\xe5\xf2, \xec\xe8\xf0!\n\xc2\xf2\xee\xf0\xe0\xff \xf1\xf2\xf0\xee\xea\xe0.\n";
    let path = env.write("cyr.txt", bytes);
    assert_eq!(
        env.ok(json!({"command": "view", "path": path})),
        "Here's the result of running `cat -n` on <D>/cyr.txt:\n     1\tПривет, мир!\n     2\tВторая строка.\n"
    );
    env.ok(json!({"command": "str_replace", "path": path, "old_str": "мир", "new_str": "свет"}));
    assert_eq!(
        env.read("cyr.txt"),
        b"\xcf\xf0\xe8\xe2\xe5\xf2, \xf1\xe2\xe5\xf2!\n\xc2\xf2\xee\xf0\xe0\xff \xf1\xf2\xf0\xee\xea\xe0.\n"
    );
}

#[test]
fn utf8_bom_is_kept_and_crlf_becomes_lf_on_edit() {
    let mut env = Env::new();
    let bom = env.write("bom.txt", b"\xef\xbb\xbfhello\n");
    assert_eq!(
        env.ok(json!({"command": "view", "path": bom})),
        "Here's the result of running `cat -n` on <D>/bom.txt:\n     1\thello\n"
    );
    env.ok(json!({"command": "str_replace", "path": bom, "old_str": "hello", "new_str": "bye"}));
    assert_eq!(env.read("bom.txt"), b"\xef\xbb\xbfbye\n");

    let crlf = env.write("crlf.txt", b"a\r\nb\r\nc\r\n");
    let observation =
        env.run(json!({"command": "str_replace", "path": crlf, "old_str": "b", "new_str": "B"}));
    assert_eq!(observation.old_content.as_deref(), Some("a\nb\nc\n"));
    assert_eq!(env.read("crlf.txt"), b"a\nB\nc\n");
}

// ---------------------------------------------------------------- argument parsing (port-specific)

fn parse(args: Value) -> Result<oh_protocol::tool::FileEditorAction, String> {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    parse_action(map)
}

#[test]
fn parse_rejects_unknown_and_mistyped_parameters() {
    let unknown = parse(json!({"command": "view", "path": "/x", "mode": "fast"})).unwrap_err();
    assert!(unknown.contains("`mode`"), "{unknown}");
    let mistyped = parse(json!({"command": "view", "path": 3})).unwrap_err();
    assert_eq!(mistyped, "Parameter `path` must be a string, got a number.");
    let bad_command = parse(json!({"command": "edit", "path": "/x"})).unwrap_err();
    assert!(
        bad_command.contains("`command`") && bad_command.contains("`edit`"),
        "{bad_command}"
    );
    assert_eq!(
        parse(json!({"path": "/x"})).unwrap_err(),
        "Missing required parameter `command`."
    );
    assert_eq!(
        parse(json!({"command": "view"})).unwrap_err(),
        "Missing required parameter `path`."
    );
    let negative =
        parse(json!({"command": "insert", "path": "/x", "insert_line": -1})).unwrap_err();
    assert!(negative.contains("`insert_line`"), "{negative}");
    let range = parse(json!({"command": "view", "path": "/x", "view_range": "1,2"})).unwrap_err();
    assert!(range.contains("`view_range`"), "{range}");
    let item = parse(json!({"command": "view", "path": "/x", "view_range": [1, "a"]})).unwrap_err();
    assert!(item.contains("`view_range`"), "{item}");
}

#[test]
fn parse_accepts_lax_integers_and_null_as_absent() {
    let action = parse(json!({
        "command": "insert", "path": "/x", "insert_line": "3", "new_str": "a",
        "view_range": [1.0, "-1"], "old_str": null
    }))
    .unwrap();
    assert_eq!(action.command, FileEditorCommand::Insert);
    assert_eq!(action.insert_line, Some(3));
    assert_eq!(action.view_range, Some(vec![1, -1]));
    assert_eq!(action.old_str, None);
    assert_eq!(action.new_str.as_deref(), Some("a"));
}

// ---------------------------------------------------------------- special files

/// A FIFO is refused at once with an error observation, for `view` (also under an image
/// extension) and for the edits that read it first. The reference waits forever for a writer
/// (and so would `open()` without `O_NONBLOCK`); the calls run on a thread and must answer
/// within a bounded time, so a regression fails instead of hanging the test.
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let env = Env::new();
    let mut expected = Vec::new();
    let mut calls = Vec::new();
    for name in ["pipe", "pipe.png"] {
        let path = env.path(name);
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        calls.push(json!({"command": "view", "path": path}));
        expected.push(format!(
            "File validation failed for <D>/{name}: Not a regular file (a FIFO, socket or device); \
             it cannot be read or edited by this tool."
        ));
    }
    let pipe = env.path("pipe");
    calls.push(json!({"command": "str_replace", "path": pipe, "old_str": "a", "new_str": "b"}));
    calls.push(json!({"command": "insert", "path": pipe, "insert_line": 0, "new_str": "b"}));
    expected.extend([expected[0].clone(), expected[0].clone()]);

    let (done, results) = std::sync::mpsc::channel();
    let Env { dir, mut editor } = env;
    let root = dir.path().to_string_lossy().into_owned();
    std::thread::spawn(move || {
        for call in calls {
            let Value::Object(map) = call else {
                unreachable!()
            };
            let observation = editor.run(&parse_action(map).unwrap());
            if done.send(observation).is_err() {
                return;
            }
        }
    });
    for want in expected {
        let observation = results
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the editor is stuck on the FIFO");
        assert!(observation.is_error, "{observation:?}");
        assert_eq!(text_of(&observation).replace(&root, "<D>"), want);
    }
}
