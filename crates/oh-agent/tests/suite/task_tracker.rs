//! Behaviour of the `task_tracker` tool core.
//!
//! Texts, the `TASKS.json` layout and the alias handling were checked against the Python
//! reference (openhands-tools 1.57.0) with the same calls.

use std::fs;

use oh_agent::tools::task_tracker::{TaskTracker, parse_action};
use oh_protocol::message::Content;
use oh_protocol::tool::{
    TaskItem, TaskStatus, TaskTrackerAction, TaskTrackerCommand, TaskTrackerObservation,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn parse(args: Value) -> Result<TaskTrackerAction, String> {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    parse_action(map)
}

fn text_of(observation: &TaskTrackerObservation) -> String {
    observation
        .content
        .iter()
        .filter_map(Content::as_text)
        .collect()
}

fn item(title: &str, notes: &str, status: TaskStatus) -> TaskItem {
    TaskItem {
        title: title.to_owned(),
        notes: notes.to_owned(),
        status,
    }
}

/// The plan used by several tests, with aliases, odd casing and an ignored extra key.
fn sample_plan() -> TaskTrackerAction {
    parse(json!({"command": "plan", "task_list": [
        {"title": "Explore repo", "notes": "look at src/", "status": "Completed"},
        {"title": "Fix bug ✓", "status": "in-progress", "id": "7"},
        {"title": "Write tests", "notes": "", "status": "Pending"},
        {"title": "Ship", "status": "TO DO", "notes": "  trailing  "}
    ]}))
    .unwrap()
}

const SAMPLE_VIEW: &str = "# Task List\n\n1. ✅ Explore repo\n   look at src/\n\n2. 🔄 Fix bug ✓\n\n3. ⏳ Write tests\n\n4. ⏳ Ship\n     trailing";

#[test]
fn view_of_an_empty_list() {
    let mut tracker = TaskTracker::new(None);
    let observation = tracker.run(&parse(json!({})).unwrap());
    assert_eq!(
        observation,
        TaskTrackerObservation {
            content: vec![Content::text(
                "No task list found. Use the \"plan\" command to create one."
            )],
            is_error: false,
            command: TaskTrackerCommand::View,
            task_list: Vec::new(),
        }
    );
}

#[test]
fn plan_replaces_the_list_and_view_formats_it() {
    let mut tracker = TaskTracker::new(None);
    let plan = tracker.run(&sample_plan());
    assert_eq!(plan.command, TaskTrackerCommand::Plan);
    assert_eq!(text_of(&plan), "Task list has been updated with 4 item(s).");
    assert_eq!(
        plan.task_list,
        [
            item("Explore repo", "look at src/", TaskStatus::Done),
            item("Fix bug ✓", "", TaskStatus::InProgress),
            item("Write tests", "", TaskStatus::Todo),
            item("Ship", "  trailing  ", TaskStatus::Todo),
        ]
    );
    let view = tracker.run(&parse(json!({"command": "view"})).unwrap());
    assert_eq!(text_of(&view), SAMPLE_VIEW);
    assert_eq!(view.task_list, plan.task_list);

    let cleared = tracker.run(&parse(json!({"command": "plan", "task_list": []})).unwrap());
    assert_eq!(
        text_of(&cleared),
        "Task list has been updated with 0 item(s)."
    );
    assert!(tracker.tasks().is_empty());
}

#[test]
fn plan_saves_tasks_json_like_python_and_a_new_tracker_reloads_it() {
    let dir = tempfile::tempdir().unwrap();
    let save_dir = dir.path().join("conversation");
    let mut tracker = TaskTracker::new(Some(save_dir.clone()));
    tracker.run(&sample_plan());
    let saved = fs::read_to_string(save_dir.join("TASKS.json")).unwrap();
    assert_eq!(
        saved,
        "[\n  {\n    \"title\": \"Explore repo\",\n    \"notes\": \"look at src/\",\n    \"status\": \"done\"\n  },\n  {\n    \"title\": \"Fix bug \\u2713\",\n    \"notes\": \"\",\n    \"status\": \"in_progress\"\n  },\n  {\n    \"title\": \"Write tests\",\n    \"notes\": \"\",\n    \"status\": \"todo\"\n  },\n  {\n    \"title\": \"Ship\",\n    \"notes\": \"  trailing  \",\n    \"status\": \"todo\"\n  }\n]"
    );
    let names: Vec<String> = fs::read_dir(&save_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["TASKS.json"], "no temporary file is left behind");

    let mut resumed = TaskTracker::new(Some(save_dir.clone()));
    assert_eq!(resumed.tasks(), tracker.tasks());
    assert_eq!(
        text_of(&resumed.run(&TaskTrackerAction::default())),
        SAMPLE_VIEW
    );

    resumed.run(&parse(json!({"command": "plan"})).unwrap());
    assert_eq!(
        fs::read_to_string(save_dir.join("TASKS.json")).unwrap(),
        "[]"
    );
}

#[test]
fn loading_applies_aliases_and_ignores_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("TASKS.json");
    fs::write(&file, r#"[{"title": "x", "status": "complete"}]"#).unwrap();
    let mut tracker = TaskTracker::new(Some(dir.path().to_path_buf()));
    assert_eq!(
        text_of(&tracker.run(&TaskTrackerAction::default())),
        "# Task List\n\n1. ✅ x"
    );

    fs::write(&file, "{not json").unwrap();
    let mut broken = TaskTracker::new(Some(dir.path().to_path_buf()));
    assert_eq!(
        text_of(&broken.run(&TaskTrackerAction::default())),
        "No task list found. Use the \"plan\" command to create one."
    );
}

#[test]
fn a_save_failure_does_not_fail_the_plan() {
    // The reference logs a failed save and still reports the update.
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, "x").unwrap();
    let mut tracker = TaskTracker::new(Some(not_a_dir.clone()));
    let observation = tracker.run(&sample_plan());
    assert!(!observation.is_error);
    assert_eq!(
        text_of(&observation),
        "Task list has been updated with 4 item(s)."
    );
    assert_eq!(fs::read_to_string(&not_a_dir).unwrap(), "x");
    assert_eq!(
        text_of(&tracker.run(&TaskTrackerAction::default())),
        SAMPLE_VIEW
    );
}

#[test]
fn status_aliases_are_normalised() {
    let cases = [
        ("todo", TaskStatus::Todo),
        ("pending", TaskStatus::Todo),
        ("to_do", TaskStatus::Todo),
        ("To-Do", TaskStatus::Todo),
        (" IN PROGRESS ", TaskStatus::InProgress),
        ("in-progress", TaskStatus::InProgress),
        ("done", TaskStatus::Done),
        ("completed", TaskStatus::Done),
        ("Complete", TaskStatus::Done),
    ];
    for (raw, expected) in cases {
        let action =
            parse(json!({"command": "plan", "task_list": [{"title": "t", "status": raw}]}))
                .unwrap();
        assert_eq!(action.task_list[0].status, expected, "{raw}");
    }
}

#[test]
fn parse_defaults_and_errors() {
    let action = parse(json!({"command": "plan", "task_list": [{"title": "only title"}]})).unwrap();
    assert_eq!(action.task_list, [item("only title", "", TaskStatus::Todo)]);
    assert_eq!(parse(json!({})).unwrap(), TaskTrackerAction::default());

    let bad_status =
        parse(json!({"command": "plan", "task_list": [{"title": "x", "status": "blocked"}]}))
            .unwrap_err();
    assert!(
        bad_status.contains("item 0")
            && bad_status.contains("`status`")
            && bad_status.contains("blocked"),
        "{bad_status}"
    );
    let unknown = parse(json!({"command": "plan", "bogus": 1})).unwrap_err();
    assert!(unknown.contains("`bogus`"), "{unknown}");
    let no_title = parse(json!({"command": "plan", "task_list": [{"notes": "n"}]})).unwrap_err();
    assert!(no_title.contains("`title`"), "{no_title}");
    let bad_command = parse(json!({"command": "delete"})).unwrap_err();
    assert!(bad_command.contains("`command`"), "{bad_command}");
    let not_a_list = parse(json!({"command": "plan", "task_list": "do it"})).unwrap_err();
    assert!(not_a_list.contains("`task_list`"), "{not_a_list}");
}
