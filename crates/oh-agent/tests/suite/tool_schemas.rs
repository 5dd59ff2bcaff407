//! The default tools' wire schemas equal the reference's, and the system prompt has its
//! sections.
//!
//! The golden schemas in `fixtures/llm_requests/tools.json` come from the Python SDK
//! (`cargo xtask llm-fixtures`), with every `description` replaced by a placeholder.

use std::path::Path;

use oh_agent::prompt::{PromptOptions, dynamic_context, static_prompt};
use oh_agent::tools::spec::{
    DefaultTool, action_parameters, description, file_editor_description, tool_definition,
    wire_parameters, with_injected_fields, working_dir_sentence,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llm_requests")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Replaces every string `description` value by a placeholder, recursively, and checks that
/// ours were non-empty on the way.
fn scrub(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, v)| match (key.as_str(), v) {
                    ("description", Value::String(text)) => {
                        assert!(!text.trim().is_empty(), "empty description");
                        (key.clone(), json!("<description>"))
                    }
                    _ => (key.clone(), scrub(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(scrub).collect()),
        other => other.clone(),
    }
}

/// The captured Python schema of `name`.
fn python_schema(name: &str) -> Value {
    let tools = fixture("tools.json");
    tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tool| tool["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in tools.json"))["parameters"]
        .clone()
}

#[test]
fn tools_json_lists_the_five_tools_in_wire_order() {
    let tools = fixture("tools.json");
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    let ours: Vec<&str> = DefaultTool::ALL.iter().map(|tool| tool.name()).collect();
    assert_eq!(names, ours);
}

#[test]
fn wire_parameters_equal_the_python_schemas() {
    for tool in DefaultTool::ALL {
        assert_eq!(
            scrub(&wire_parameters(tool)),
            python_schema(tool.name()),
            "schema of `{}`",
            tool.name()
        );
    }
}

#[test]
fn every_schema_node_we_emit_has_a_description_where_python_has_one() {
    // `scrub` turns ours into placeholders, so equality above already covers presence;
    // this checks the reverse direction explicitly for the injected fields.
    for tool in DefaultTool::ALL {
        let schema = wire_parameters(tool);
        let properties = schema["properties"].as_object().unwrap();
        assert!(properties["summary"]["description"].is_string());
        assert_eq!(
            properties.contains_key("security_risk"),
            !tool.read_only(),
            "security_risk of `{}`",
            tool.name()
        );
    }
}

#[test]
fn injected_fields_do_not_touch_required_or_own_properties() {
    let own = action_parameters(DefaultTool::Terminal);
    let wire = with_injected_fields(own.clone(), false);
    assert_eq!(wire["required"], own["required"]);
    for (name, schema) in own["properties"].as_object().unwrap() {
        assert_eq!(&wire["properties"][name], schema);
    }
    let read_only = with_injected_fields(own, true);
    assert!(read_only["properties"].get("security_risk").is_none());
    assert!(read_only["properties"].get("summary").is_some());
    // A schema without properties gets them.
    let bare = with_injected_fields(json!({"type": "object"}), true);
    assert_eq!(
        scrub(&bare),
        json!({"type": "object", "properties": {"summary": {"type": "string", "description": "<description>"}}})
    );
}

#[test]
fn the_captured_requests_carry_the_same_schemas() {
    // The OpenAI and Anthropic captures offer the same five schemas on every request.
    for (file, tools_of) in [
        (
            "openai_chat.json",
            (|tool: &Value| tool["function"].clone()) as fn(&Value) -> Value,
        ),
        (
            "anthropic_messages.json",
            |tool: &Value| json!({"name": tool["name"], "parameters": tool["input_schema"]}),
        ),
    ] {
        let capture = fixture(file);
        let requests = capture["requests"].as_array().unwrap();
        assert!(!requests.is_empty(), "{file} has no requests");
        for request in requests {
            let tools = request["body"]["tools"].as_array().unwrap();
            assert_eq!(tools.len(), DefaultTool::ALL.len(), "{file}");
            for (tool, ours) in tools.iter().zip(DefaultTool::ALL) {
                let tool = tools_of(tool);
                assert_eq!(tool["name"], ours.name(), "{file}");
                assert_eq!(scrub(&wire_parameters(ours)), tool["parameters"], "{file}");
            }
        }
    }
}

#[test]
fn descriptions_are_non_empty_and_file_editor_names_the_workspace() {
    for tool in DefaultTool::ALL {
        let text = description(tool, "/workspace/project");
        assert!(!text.trim().is_empty(), "description of `{}`", tool.name());
        assert_eq!(
            text.contains("/workspace/project"),
            tool == DefaultTool::FileEditor,
            "only file_editor mentions the workspace (`{}`)",
            tool.name()
        );
    }
    let editor = description(DefaultTool::FileEditor, "/workspace/project");
    assert!(editor.ends_with(&working_dir_sentence("/workspace/project")));
    assert!(!editor.contains(".webp"));
    let with_vision = file_editor_description("/workspace/project", true);
    assert!(with_vision.contains(".webp"));
    assert!(with_vision.ends_with(&working_dir_sentence("/workspace/project")));
}

#[test]
fn tool_definitions_match_the_system_prompt_event_fixture() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../oh-protocol/tests/fixtures/Event/SystemPromptEvent.json");
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let records = event["tools"].as_array().unwrap();
    assert_eq!(records.len(), DefaultTool::ALL.len());
    for (record, tool) in records.iter().zip(DefaultTool::ALL) {
        let mut ours =
            oh_protocol::wire::to_compact_value(&tool_definition(tool, "/workspace")).unwrap();
        ours["description"] = json!("<tool description>");
        assert_eq!(&ours, record, "record of `{}`", tool.name());
    }
}

#[test]
fn names_and_kinds() {
    for tool in DefaultTool::ALL {
        assert_eq!(DefaultTool::from_name(tool.name()), Some(tool));
        let stem = tool.kind().strip_suffix("Tool").unwrap();
        assert_eq!(tool.action_kind(), format!("{stem}Action"));
        assert_eq!(tool.observation_kind(), format!("{stem}Observation"));
        assert_eq!(tool.annotations().read_only_hint, tool.read_only());
    }
    assert_eq!(DefaultTool::from_name("browser_navigate"), None);
}

const SECTION_TAGS: [&str; 15] = [
    "SOUL",
    "ROLE",
    "MEMORY",
    "EFFICIENCY",
    "FILE_SYSTEM_GUIDELINES",
    "CODE_QUALITY",
    "VERSION_CONTROL",
    "PULL_REQUESTS",
    "PROBLEM_SOLVING_WORKFLOW",
    "SECURITY",
    "SECURITY_RISK_ASSESSMENT",
    "EXTERNAL_SERVICES",
    "ENVIRONMENT_SETUP",
    "TROUBLESHOOTING",
    "PROCESS_MANAGEMENT",
];

/// The body of `<tag>...</tag>` in `prompt`.
fn section<'a>(prompt: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>\n");
    let close = format!("\n</{tag}>");
    let start = prompt
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in the prompt"))
        + open.len();
    let end = start
        + prompt[start..]
            .find(&close)
            .unwrap_or_else(|| panic!("no </{tag}> in the prompt"));
    &prompt[start..end]
}

#[test]
fn static_prompt_has_every_section_in_order() {
    let prompt = static_prompt(&PromptOptions::default());
    let mut last = 0;
    for tag in SECTION_TAGS {
        let at = prompt
            .find(&format!("<{tag}>\n"))
            .unwrap_or_else(|| panic!("no <{tag}>"));
        assert!(at >= last, "<{tag}> out of order");
        last = at;
        assert!(!section(&prompt, tag).trim().is_empty(), "<{tag}> is empty");
    }
    assert!(prompt.len() <= 8 * 1024, "prompt is {} bytes", prompt.len());
    assert!(!prompt.contains("\n\n\n"), "no triple newlines");
}

#[test]
fn risk_tiers_follow_cli_mode() {
    let unset = static_prompt(&PromptOptions::default());
    let cli = static_prompt(&PromptOptions {
        cli_mode: Some(true),
        persona: None,
    });
    let sandbox = static_prompt(&PromptOptions {
        cli_mode: Some(false),
        persona: None,
    });
    assert_eq!(unset, cli, "cli_mode defaults to true");
    assert_ne!(
        section(&cli, "SECURITY_RISK_ASSESSMENT"),
        section(&sandbox, "SECURITY_RISK_ASSESSMENT")
    );
    assert!(section(&sandbox, "SECURITY_RISK_ASSESSMENT").contains("sandbox"));
    // Only the risk section differs.
    for tag in SECTION_TAGS
        .iter()
        .filter(|tag| **tag != "SECURITY_RISK_ASSESSMENT")
    {
        assert_eq!(section(&cli, tag), section(&sandbox, tag), "<{tag}>");
    }
    for level in ["LOW", "MEDIUM", "HIGH"] {
        assert!(section(&cli, "SECURITY_RISK_ASSESSMENT").contains(level));
        assert!(section(&sandbox, "SECURITY_RISK_ASSESSMENT").contains(level));
    }
}

#[test]
fn a_persona_replaces_the_working_style_sections() {
    let prompt = static_prompt(&PromptOptions {
        cli_mode: None,
        persona: Some("<PERSONA>\nYou review code.\n</PERSONA>".into()),
    });
    assert!(prompt.starts_with("<PERSONA>\nYou review code.\n</PERSONA>\n\n"));
    for kept in [
        "MEMORY",
        "SECURITY",
        "SECURITY_RISK_ASSESSMENT",
        "EXTERNAL_SERVICES",
        "PROCESS_MANAGEMENT",
    ] {
        section(&prompt, kept);
    }
    for dropped in [
        "SOUL",
        "ROLE",
        "EFFICIENCY",
        "CODE_QUALITY",
        "TROUBLESHOOTING",
    ] {
        assert!(
            !prompt.contains(&format!("<{dropped}>")),
            "<{dropped}> kept"
        );
    }
}

#[test]
fn dynamic_context_lists_secrets_and_the_time() {
    assert_eq!(dynamic_context(&[], "2026-01-01T12:00"), None);
    let text = dynamic_context(
        &[
            ("GITHUB_TOKEN".into(), Some("GitHub access".into())),
            ("PLAIN".into(), None),
        ],
        "2026-01-01T12:00",
    )
    .unwrap();
    let secrets = section(&text, "CUSTOM_SECRETS");
    assert!(secrets.contains("$GITHUB_TOKEN - GitHub access"));
    assert!(secrets.lines().any(|line| line.ends_with("$PLAIN")));
    assert!(secrets.contains("<secret-hidden>"));
    assert!(section(&text, "CURRENT_DATETIME").contains("2026-01-01T12:00"));
    assert!(text.find("<CUSTOM_SECRETS>") < text.find("<CURRENT_DATETIME>"));
}
