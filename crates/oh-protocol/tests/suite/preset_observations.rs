//! Actions and observations of the gpt5 and planning preset tools decode into their typed
//! variants and re-encode (compact form) to exactly what the Python reference 1.58.2 wrote
//! (`model_dump(exclude_none=True)` of the same objects).

use oh_protocol::tool::FileEditorCommand;
use oh_protocol::tool_gpt5_planning::FileChangeType;
use oh_protocol::{Action, Observation, wire};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn round_trip_observation(reference: Value) -> Observation {
    let typed: Observation = serde_json::from_value(reference.clone()).unwrap();
    assert_eq!(wire::to_compact_value(&typed).unwrap(), reference);
    typed
}

fn text(t: &str) -> Value {
    json!([{"cache_prompt": false, "type": "text", "text": t}])
}

#[test]
fn apply_patch_observations() {
    let done = round_trip_observation(json!({
        "content": text("Done!"), "is_error": false, "message": "Done!", "fuzz": 0,
        "commit": {"changes": {
            "gone.txt": {"type": "delete", "old_content": "bye\n"},
            "old.txt": {"type": "update", "old_content": "a\nb\n", "new_content": "A\nb\n", "move_path": "moved/new.txt"},
            "added.txt": {"type": "add", "new_content": "new"}
        }},
        "kind": "ApplyPatchObservation"
    }));
    let Observation::ApplyPatch(done) = done else {
        panic!("{done:?}")
    };
    let changes = done.commit.unwrap().changes;
    assert_eq!(changes["gone.txt"].change_type, FileChangeType::Delete);
    assert_eq!(
        changes["old.txt"].move_path.as_deref(),
        Some("moved/new.txt")
    );

    let refused = round_trip_observation(json!({
        "content": text("Invalid patch text"), "is_error": true, "message": "", "fuzz": 0,
        "kind": "ApplyPatchObservation"
    }));
    assert!(matches!(refused, Observation::ApplyPatch(o) if o.commit.is_none()));
}

#[test]
fn search_observations() {
    round_trip_observation(json!({
        "content": text("Found 1 file(s) matching pattern '.*.py' in '/WS':\n/WS/.top.py"),
        "is_error": false, "files": ["/WS/.top.py"], "pattern": ".*.py", "search_path": "/WS",
        "truncated": false, "kind": "GlobObservation"
    }));
    round_trip_observation(json!({
        "content": text("No files found containing pattern 'zzz' in directory '/WS'"),
        "is_error": false, "matches": [], "pattern": "zzz", "search_path": "/WS",
        "truncated": false, "kind": "GrepObservation"
    }));
    round_trip_observation(json!({
        "content": text("x"), "is_error": false, "matches": ["/WS/a.md"], "pattern": "hello",
        "search_path": "/WS", "include_pattern": "*.md", "truncated": false,
        "kind": "GrepObservation"
    }));
}

#[test]
fn planning_file_editor_keeps_its_kinds() {
    let observation = round_trip_observation(json!({
        "content": text("Operation 'create' is not allowed on file '/WS/x.txt'. Only the following files can be edited: ['/WS/.agents_tmp/PLAN.md']"),
        "is_error": true, "command": "create", "prev_exist": true,
        "kind": "PlanningFileEditorObservation"
    }));
    assert!(
        matches!(observation, Observation::PlanningFileEditor(o) if o.command == FileEditorCommand::Create)
    );
    let action =
        json!({"command": "view", "path": "/WS/PLAN.md", "kind": "PlanningFileEditorAction"});
    let typed: Action = serde_json::from_value(action.clone()).unwrap();
    assert!(matches!(typed, Action::PlanningFileEditor(_)));
    assert_eq!(wire::to_compact_value(&typed).unwrap(), action);
    for action in [
        json!({"patch": "*** Begin Patch\n*** End Patch", "kind": "ApplyPatchAction"}),
        json!({"pattern": "**/*.py", "kind": "GlobAction"}),
        json!({"pattern": "x", "path": "/WS", "include": "*.rs", "kind": "GrepAction"}),
    ] {
        let typed: Action = serde_json::from_value(action.clone()).unwrap();
        assert!(!matches!(typed, Action::Unknown(_)), "{action}");
        assert_eq!(wire::to_compact_value(&typed).unwrap(), action);
    }
}
