//! Values built on the Rust side: their JSON is pinned by insta snapshots, and where the
//! reference has an equivalent constructor, the result must equal its captured fixture.

use oh_protocol::event::PauseEvent;
use oh_protocol::*;
use pretty_assertions::assert_eq;
use serde_json::Value;

fn fixture(path: &str) -> Value {
    let file = format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap()
}

/// The fixture agent's LLM rebuilt from `Llm::default()`: every default matches Python's.
fn fixture_llm(base_url: &str) -> Llm {
    Llm {
        api_key: Some("sk-fixture-llm-key".into()),
        base_url: Some(base_url.to_owned()),
        usage_id: "agent".to_owned(),
        num_retries: 0,
        input_cost_per_token: Some(0.000003),
        output_cost_per_token: Some(0.000015),
        max_input_tokens: Some(128_000),
        max_output_tokens: Some(4096),
        ..Llm::new("openai/fixture-model")
    }
}

#[test]
fn agent_defaults_match_python() {
    let expected = fixture("Agent/default_full_exposed.json");
    let base_url = expected["llm"]["base_url"].as_str().unwrap();
    let tools = ["terminal", "file_editor", "task_tracker"]
        .map(ToolSpec::new)
        .to_vec();
    let agent = AgentBase::from(Agent::new(fixture_llm(base_url), tools));
    assert_eq!(serde_json::to_value(&agent).unwrap(), expected);
}

#[test]
fn start_conversation_request_defaults_match_python() {
    let expected = fixture("StartConversationRequest/minimal_compact.json");
    let agent: AgentBase = serde_json::from_value(expected["agent"].clone()).unwrap();
    let request = StartConversationRequest::new(agent, WorkspaceSpec::local("/workspace/project"));
    assert_eq!(wire::to_compact_value(&request).unwrap(), expected);
}

#[test]
fn messages_and_requests() {
    insta::assert_json_snapshot!(Message::user("Fix the failing test"), @r#"
    {
      "role": "user",
      "content": [
        {
          "type": "text",
          "cache_prompt": false,
          "text": "Fix the failing test"
        }
      ],
      "tool_calls": null,
      "tool_call_id": null,
      "name": null,
      "reasoning_content": null,
      "thinking_blocks": [],
      "responses_reasoning_item": null
    }
    "#);
    insta::assert_json_snapshot!(SendMessageRequest::text("hello", true), @r#"
    {
      "role": "user",
      "content": [
        {
          "type": "text",
          "cache_prompt": false,
          "text": "hello"
        }
      ],
      "run": true
    }
    "#);
    insta::assert_json_snapshot!(Success::TRUE, @r#"
    {
      "success": true
    }
    "#);
    insta::assert_json_snapshot!(ErrorBody::message("Not Found"), @r#"
    {
      "detail": "Not Found"
    }
    "#);
}

#[test]
fn policies_workspace_and_auth_frame() {
    let policies = vec![
        ConfirmationPolicy::default(),
        ConfirmationPolicy::AlwaysConfirm(AlwaysConfirm {}),
        ConfirmationPolicy::ConfirmRisky(ConfirmRisky::default()),
    ];
    insta::assert_json_snapshot!(policies, @r#"
    [
      {
        "kind": "NeverConfirm"
      },
      {
        "kind": "AlwaysConfirm"
      },
      {
        "threshold": "HIGH",
        "confirm_unknown": true,
        "kind": "ConfirmRisky"
      }
    ]
    "#);
    insta::assert_json_snapshot!(WorkspaceSpec::local("/workspace/project"), @r#"
    {
      "working_dir": "/workspace/project",
      "kind": "LocalWorkspace"
    }
    "#);
    // The frame the Python client sends first, built from its own constants.
    let frame = AuthFrame {
        session_api_key: "fixture-session-key".into(),
    };
    assert_eq!(
        serde_json::to_value(&frame).unwrap(),
        fixture("WsAuthFrame/auth.json")
    );
}

#[test]
fn new_events_are_compact_with_fresh_ids() {
    let event = Event::Pause(PauseEvent {
        base: EventBase::new(Source::User, "2026-05-04T10:15:02.118204"),
    });
    let id = event.id().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    insta::assert_json_snapshot!(event, { ".id" => "[id]" }, @r#"
    {
      "id": "[id]",
      "timestamp": "2026-05-04T10:15:02.118204",
      "source": "user",
      "kind": "PauseEvent"
    }
    "#);
}

#[test]
fn unknown_kinds_survive_unchanged() {
    let raw = serde_json::json!({"id": "x", "timestamp": "t", "source": "agent", "kind": "FutureEvent", "nested": {"a": null}});
    let event: Event = serde_json::from_value(raw.clone()).unwrap();
    assert!(matches!(event, Event::Unknown(_)));
    assert_eq!(event.kind(), "FutureEvent");
    assert_eq!(event.id(), Some("x"));
    assert_eq!(serde_json::to_value(&event).unwrap(), raw);

    let action: Action =
        serde_json::from_value(serde_json::json!({"url": "u", "kind": "BrowserNavigateAction"}))
            .unwrap();
    assert_eq!(action.kind(), "BrowserNavigateAction");
}

#[test]
fn bad_input_is_a_typed_error_not_a_panic() {
    for bad in [
        r#"{"kind": 3}"#,
        r#"{"id": "x"}"#,
        r#"{"kind": "ActionEvent", "id": "x"}"#,
        r#"[]"#,
        r#"{"kind": "MessageEvent", "id": "x", "timestamp": "t", "source": "robot", "llm_message": {"role": "user"}}"#,
    ] {
        assert!(
            serde_json::from_str::<Event>(bad).is_err(),
            "{bad} must not decode"
        );
    }
    let err = serde_json::from_str::<Event>(
        r#"{"kind": "PauseEvent", "timestamp": "t", "source": "user"}"#,
    )
    .unwrap_err();
    assert!(err.to_string().contains("PauseEvent"), "{err}");
}

#[test]
fn secrets_accept_plain_strings_and_hide_from_debug() {
    let req: UpdateSecretsRequest =
        serde_json::from_str(r#"{"secrets": {"A": "s3cret", "B": {"value": "v2"}}}"#).unwrap();
    assert_eq!(
        serde_json::to_value(&req).unwrap(),
        serde_json::json!({"secrets": {
            "A": {"description": null, "value": "s3cret", "kind": "StaticSecret"},
            "B": {"description": null, "value": "v2", "kind": "StaticSecret"}
        }})
    );
    assert!(!format!("{req:?}").contains("s3cret"));
}
