//! The gemini preset's actions and observations round-trip the reference's JSON.
//!
//! `gemini/reference_dumps.json` holds, per document, what Python 1.58.2's
//! `model_dump(mode="json")` (full) and `model_dump(mode="json", exclude_none=True)`
//! (compact) give for `ReadFileAction`, `EditObservation`, … built with sample values (the
//! `kind` added as the discriminated unions write it). Each must decode into its typed
//! variant (not `Unknown`) and encode back to the same JSON in both forms.

use oh_protocol::wire::to_compact_value;
use oh_protocol::{Action, Observation};
use pretty_assertions::assert_eq;
use serde_json::Value;

fn dumps() -> serde_json::Map<String, Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/gemini/reference_dumps.json"
    );
    match serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap() {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn every_reference_document_round_trips_in_both_forms() {
    let docs = dumps();
    assert_eq!(docs.len(), 13);
    for (name, forms) in docs {
        let full = &forms["full"];
        let compact = &forms["compact"];
        let kind = full["kind"].as_str().unwrap();
        if kind.ends_with("Action") {
            for form in [full, compact] {
                let action: Action = serde_json::from_value(form.clone()).unwrap();
                assert!(
                    !matches!(action, Action::Unknown(_)),
                    "{name} decoded as Unknown"
                );
                assert_eq!(action.kind(), kind);
                assert_eq!(&serde_json::to_value(&action).unwrap(), full, "{name} full");
                assert_eq!(
                    &to_compact_value(&action).unwrap(),
                    compact,
                    "{name} compact"
                );
            }
        } else {
            for form in [full, compact] {
                let observation: Observation = serde_json::from_value(form.clone()).unwrap();
                assert!(
                    !matches!(observation, Observation::Unknown(_)),
                    "{name} decoded as Unknown"
                );
                assert_eq!(observation.kind(), kind);
                assert_eq!(
                    &serde_json::to_value(&observation).unwrap(),
                    full,
                    "{name} full"
                );
                assert_eq!(
                    &to_compact_value(&observation).unwrap(),
                    compact,
                    "{name} compact"
                );
            }
        }
    }
}

#[test]
fn defaults_fill_what_the_model_left_out() {
    let edit: Action = serde_json::from_str(
        r#"{"kind": "EditAction", "file_path": "f", "old_string": "a", "new_string": "b"}"#,
    )
    .unwrap();
    let Action::Edit(edit) = edit else {
        panic!("not an edit")
    };
    assert_eq!(edit.expected_replacements, 1);
    let list: Action = serde_json::from_str(r#"{"kind": "ListDirectoryAction"}"#).unwrap();
    let Action::ListDirectory(list) = list else {
        panic!("not a listing")
    };
    assert_eq!((list.dir_path.as_str(), list.recursive), (".", false));
}
