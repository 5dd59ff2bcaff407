//! Golden fixtures captured from the Python SDK 1.57.0 (see `fixtures/manifest.json`).
//!
//! Every fixture must (1) decode into its Rust type, (2) encode back to JSON equal to the
//! original as a JSON value, in the form the reference used (full or compact), and (3) decode
//! to the same typed value as last time (an insta snapshot of its `Debug`), so a fixture changed
//! by a byte of meaning fails. Each fixture is one test case.
//!
//! Regenerate the fixtures with `cargo xtask fixtures`, then review the snapshot changes with
//! `cargo insta review` (or accept them with `INSTA_UPDATE=always cargo test -p oh-protocol`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure should panic"
)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};
use oh_protocol::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const REGENERATE: &str =
    "fixtures come from `cargo xtask fixtures`; snapshots from `cargo insta review`";

#[derive(serde::Deserialize)]
struct Entry {
    file: String,
    r#type: String,
    form: String,
    origin: String,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Decodes as `T`, re-encodes in `form`, and returns the re-encoded JSON and the typed `Debug`.
fn round_trip<T: DeserializeOwned + Serialize + Debug>(
    json: &Value,
    form: &str,
) -> Result<(Value, String), String> {
    let typed: T =
        serde_json::from_value(json.clone()).map_err(|e| format!("does not decode: {e}"))?;
    let encoded = match form {
        "full" => serde_json::to_value(&typed),
        "compact" => wire::to_compact_value(&typed),
        other => return Err(format!("unknown form {other:?}")),
    }
    .map_err(|e| format!("does not encode: {e}"))?;
    Ok((encoded, format!("{typed:#?}")))
}

type Checker = fn(&Value, &str) -> Result<(Value, String), String>;

fn checker(rust_type: &str) -> Option<Checker> {
    Some(match rust_type {
        "Agent" => round_trip::<AgentBase>,
        "AgentResponseResult" => round_trip::<AgentResponseResult>,
        "BashEvent" => round_trip::<BashEvent>,
        "BashEventPage" => round_trip::<BashEventPage>,
        "CommandResult" => round_trip::<CommandResult>,
        "ConfirmationResponseRequest" => round_trip::<ConfirmationResponseRequest>,
        "ConversationInfo" => round_trip::<ConversationInfo>,
        "ConversationInfoBatch" => round_trip::<Vec<Option<ConversationInfo>>>,
        "ConversationPage" => round_trip::<ConversationPage>,
        "ConversationState" => round_trip::<ConversationState>,
        "Count" => round_trip::<u64>,
        "ErrorBody" => round_trip::<ErrorBody>,
        "ErrorClassification" => round_trip::<ErrorClassification>,
        "Event" => round_trip::<Event>,
        "EventPage" => round_trip::<EventPage>,
        "ExecuteBashRequest" => round_trip::<ExecuteBashRequest>,
        "FileOperationResult" => round_trip::<FileOperationResult>,
        "FileUploadResult" => round_trip::<FileUploadResult>,
        "GitChange" => round_trip::<GitChange>,
        "GitChanges" => round_trip::<Vec<GitChange>>,
        "GitDiff" => round_trip::<GitDiff>,
        "HealthStatus" => round_trip::<HealthStatus>,
        "Llm" => round_trip::<Llm>,
        "Metrics" => round_trip::<Metrics>,
        "SendMessageRequest" => round_trip::<SendMessageRequest>,
        "ServerInfo" => round_trip::<ServerInfo>,
        "SetConfirmationPolicyRequest" => round_trip::<SetConfirmationPolicyRequest>,
        "SetSecurityAnalyzerRequest" => round_trip::<SetSecurityAnalyzerRequest>,
        "StartConversationRequest" => round_trip::<StartConversationRequest>,
        "Success" => round_trip::<Success>,
        "UpdateConversationRequest" => round_trip::<UpdateConversationRequest>,
        "UpdateSecretsRequest" => round_trip::<UpdateSecretsRequest>,
        "WsAuthFrame" => round_trip::<AuthFrame>,
        "WsFrames" => round_trip::<Vec<Event>>,
        _ => return None,
    })
}

/// Where two JSON values first differ, as a path.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(&format!("{path}.{k}"), p, q),
                (p, q) => Some(format!("{path}.{k}: original {p:?}, ours {q:?}")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(&format!("{path}[{i}]"), p, q)),
        _ if a == b => None,
        _ => Some(format!("{path}: original {a}, ours {b}")),
    }
}

fn check(entry: &Entry) -> Result<(), Failed> {
    let text = std::fs::read_to_string(fixtures_dir().join(&entry.file))?;
    let original: Value = serde_json::from_str(&text)?;
    let check = checker(&entry.r#type)
        .ok_or_else(|| format!("no Rust type registered for {:?}", entry.r#type))?;
    let (encoded, debug) =
        check(&original, &entry.form).map_err(|e| format!("{}: {e}", entry.file))?;
    if let Some(diff) = first_difference("$", &original, &encoded) {
        return Err(format!(
            "{} ({}) does not round-trip: {diff}\n({REGENERATE})",
            entry.file, entry.origin
        )
        .into());
    }
    let name = entry.file.trim_end_matches(".json").replace('/', "__");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_description(format!("{} decoded from {}", entry.r#type, entry.file));
    settings.set_omit_expression(true);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        settings.bind(|| insta::assert_snapshot!(name, debug))
    }))
    .map_err(|_| {
        Failed::from(format!(
            "{}: typed value differs from its snapshot ({REGENERATE})",
            entry.file
        ))
    })
}

/// Every JSON file under `fixtures/` is listed in the manifest, and every listed file exists.
fn manifest_covers_all_files(entries: &[String]) -> Result<(), Failed> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, root, out)?;
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path.strip_prefix(root).map_err(std::io::Error::other)?;
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
        Ok(())
    }
    let root = fixtures_dir();
    let mut on_disk = BTreeSet::new();
    walk(&root, &root, &mut on_disk)?;
    on_disk.remove("manifest.json");
    let listed: BTreeSet<String> = entries.iter().cloned().collect();
    let unlisted: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    if unlisted.is_empty() && missing.is_empty() {
        Ok(())
    } else {
        Err(
            format!("files not in the manifest: {unlisted:?}; listed but missing: {missing:?}")
                .into(),
        )
    }
}

fn main() {
    let args = Arguments::from_args();
    let manifest = std::fs::read_to_string(fixtures_dir().join("manifest.json"))
        .expect("fixtures/manifest.json");
    let entries: Vec<Entry> =
        serde_json::from_str(&manifest).expect("manifest.json is a list of entries");
    let files: Vec<String> = entries.iter().map(|e| e.file.clone()).collect();
    let mut trials = vec![Trial::test("manifest_covers_all_files", move || {
        manifest_covers_all_files(&files)
    })];
    for entry in entries {
        let name = format!(
            "fixture::{}",
            entry.file.trim_end_matches(".json").replace('/', "::")
        );
        trials.push(Trial::test(name, move || check(&entry)));
    }
    libtest_mimic::run(&args, trials).exit();
}
