//! Behaviour of `planning_file_editor` (planning preset): views anything, edits the plan
//! only. Texts and observation fields are what the Python reference 1.58.2 answered for the
//! same calls.

use std::fs;

use oh_agent::tools::ToolContext;
use oh_agent::tools::planning_file_editor::{PlanningFileEditorTool, plan_headers};
use oh_protocol::message::Content;
use oh_protocol::tool::{FileEditorAction, FileEditorCommand, FileEditorObservation};
use pretty_assertions::assert_eq;

fn ctx(root: &std::path::Path) -> ToolContext {
    ToolContext {
        working_dir: root.to_path_buf(),
        conversation_dir: None,
        secrets: Default::default(),
    }
}

fn action(command: FileEditorCommand, path: &str) -> FileEditorAction {
    FileEditorAction {
        command,
        path: path.to_owned(),
        file_text: None,
        old_str: None,
        new_str: None,
        insert_line: None,
        view_range: None,
    }
}

fn text(observation: &FileEditorObservation) -> String {
    observation
        .content
        .iter()
        .filter_map(Content::as_text)
        .collect()
}

#[test]
fn the_plan_is_created_with_its_headers() {
    assert_eq!(
        plan_headers(),
        "# 1. OBJECTIVE\n\n# 2. CONTEXT SUMMARY\n\n# 3. APPROACH OVERVIEW\n\n\
         # 4. IMPLEMENTATION STEPS\n\n# 5. TESTING AND VALIDATION\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let tool = PlanningFileEditorTool::new(&ctx(&root), None).unwrap();
    let plan = root.join(".agents_tmp/PLAN.md");
    assert_eq!(tool.plan_path(), plan);
    assert_eq!(fs::read_to_string(&plan).unwrap(), plan_headers());

    // An existing plan is kept; a legacy PLAN.md at the root wins.
    fs::write(&plan, "mine").unwrap();
    PlanningFileEditorTool::new(&ctx(&root), None).unwrap();
    assert_eq!(fs::read_to_string(&plan).unwrap(), "mine");
    fs::write(root.join("PLAN.md"), "legacy").unwrap();
    let tool = PlanningFileEditorTool::new(&ctx(&root), None).unwrap();
    assert_eq!(tool.plan_path(), root.join("PLAN.md"));
}

#[test]
fn plan_path_must_be_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let err = PlanningFileEditorTool::new(&ctx(dir.path()), Some("plans/PLAN.md")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "plan_path must be an absolute path, got: plans/PLAN.md"
    );
    let custom = dir.path().join("p/MY.md");
    let tool =
        PlanningFileEditorTool::new(&ctx(dir.path()), Some(&custom.to_string_lossy())).unwrap();
    assert_eq!(tool.plan_path(), custom);
    assert_eq!(fs::read_to_string(custom).unwrap(), plan_headers());
}

#[test]
fn only_the_plan_can_be_edited() {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let ws = root.to_string_lossy().into_owned();
    fs::write(root.join("x.txt"), "x\n").unwrap();
    let tool = PlanningFileEditorTool::new(&ctx(&root), None).unwrap();
    let plan = format!("{ws}/.agents_tmp/PLAN.md");

    let mut create = action(FileEditorCommand::Create, &format!("{ws}/x.txt"));
    create.file_text = Some("y".into());
    let refused = tool.run(&create);
    assert_eq!(
        refused,
        FileEditorObservation {
            content: vec![Content::text(format!(
                "Operation 'create' is not allowed on file '{ws}/x.txt'. Only the following \
                 files can be edited: ['{plan}']"
            ))],
            is_error: true,
            command: FileEditorCommand::Create,
            path: None,
            prev_exist: true,
            old_content: None,
            new_content: None,
        }
    );
    assert_eq!(fs::read_to_string(root.join("x.txt")).unwrap(), "x\n");

    // The path is resolved before the check.
    let mut insert = action(FileEditorCommand::Insert, &format!("{ws}/../x"));
    insert.insert_line = Some(0);
    insert.new_str = Some("a".into());
    let refused = tool.run(&insert);
    let parent = root.parent().unwrap().join("x");
    assert_eq!(
        text(&refused),
        format!(
            "Operation 'insert' is not allowed on file '{}'. Only the following files can be \
             edited: ['{plan}']",
            parent.display()
        )
    );

    let mut edit = action(FileEditorCommand::StrReplace, &plan);
    edit.old_str = Some("# 1. OBJECTIVE\n".into());
    edit.new_str = Some("# 1. OBJECTIVE\nShip it.\n".into());
    let edited = tool.run(&edit);
    assert!(!edited.is_error, "{}", text(&edited));
    assert_eq!(edited.path.as_deref(), Some(plan.as_str()));
    // Only command, content, error flag and path are carried over.
    assert_eq!(
        (edited.prev_exist, &edited.old_content, &edited.new_content),
        (true, &None, &None)
    );
    assert!(
        text(&edited).starts_with(&format!("The file {plan} has been edited.")),
        "{}",
        text(&edited)
    );
    assert!(
        fs::read_to_string(&plan)
            .unwrap()
            .starts_with("# 1. OBJECTIVE\nShip it.\n")
    );

    let view = tool.run(&action(FileEditorCommand::View, &format!("{ws}/x.txt")));
    assert_eq!(
        text(&view),
        format!("Here's the result of running `cat -n` on {ws}/x.txt:\n     1\tx\n")
    );
}
