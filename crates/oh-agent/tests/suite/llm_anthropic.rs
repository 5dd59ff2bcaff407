//! The Anthropic Messages client against a scripted LLM over real HTTP.

use super::llm_support;

use llm_support::*;
use oh_agent::llm::{CompletionRequest, LlmError, WireFormat};
use oh_protocol::message::{ThinkingBlock, ToolCallOrigin};
use oh_protocol::{Message, Role};
use oh_testkit::{COMPLETION_TOKENS, PROMPT_TOKENS, Reply, ScriptedCall};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

const MODEL: &str = "anthropic/claude-sonnet-4-5";
/// A Claude model outside the built-in table and the thinking lists: no thinking, 4096
/// output tokens, but cache markers (`claude-3-5-haiku` is a prompt-cache model).
const PLAIN: &str = "anthropic/claude-3-5-haiku-20241022";

#[tokio::test]
async fn text_reply() {
    let llm = server(vec![Reply::text("Hello from Claude")]).await;
    let c = client(config(MODEL, &llm.base_url()));
    assert_eq!(c.wire_format(), WireFormat::AnthropicMessages);
    // LiteLLM appends /v1/messages to the base URL.
    assert_eq!(c.endpoint(), format!("{}/v1/messages", llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(r.id, "msg_scripted_1");
    assert_eq!(text_of(&r.message), "Hello from Claude");
    assert!(r.message.tool_calls.is_none());
    assert!(r.message.thinking_blocks.is_empty());
    assert_eq!(r.message.reasoning_content, None);
    let usage = r.metrics.accumulated_token_usage.unwrap();
    assert_eq!(usage.prompt_tokens, PROMPT_TOKENS);
    assert_eq!(usage.completion_tokens, COMPLETION_TOKENS);
    assert_eq!(llm.requests()[0].path, "/v1/v1/messages");
}

#[tokio::test]
async fn tool_use_reply_becomes_tool_calls() {
    let llm = server(vec![Reply::ToolCalls {
        text: Some("Running it.".into()),
        calls: vec![
            ScriptedCall::new(
                "terminal",
                r#"{"command":"ls -la","is_input":false,"a":"é"}"#,
            ),
            ScriptedCall::new("finish", r#"{"message":"done"}"#).with_id("toolu_fixed"),
        ],
    }])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let tools = [simple_tool("terminal"), simple_tool("finish")];
    let r = c.complete(request(&messages, &tools)).await.unwrap();
    assert_eq!(text_of(&r.message), "Running it.");
    let calls = r.message.tool_calls.unwrap();
    assert_eq!(calls[0].id, "toolu_1");
    assert_eq!(calls[0].name, "terminal");
    // Python's json.dumps of the input, key order kept, as the reference stores it.
    assert_eq!(
        calls[0].arguments,
        r#"{"command": "ls -la", "is_input": false, "a": "\u00e9"}"#
    );
    assert_eq!(calls[0].origin, ToolCallOrigin::Completion);
    assert_eq!(calls[1].id, "toolu_fixed");
    assert_eq!(calls[1].arguments, r#"{"message": "done"}"#);
}

#[tokio::test]
async fn thinking_blocks_are_kept_with_signatures() {
    let llm = server(vec![Reply::thinking(
        "Let me think.",
        "sig-123",
        Reply::tool("finish", json!({"message": "ok"})),
    )])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(
        r.message.reasoning_content.as_deref(),
        Some("Let me think.")
    );
    match r.message.thinking_blocks.as_slice() {
        [ThinkingBlock::Thinking(t)] => {
            assert_eq!(t.thinking, "Let me think.");
            assert_eq!(t.signature.as_deref(), Some("sig-123"));
        }
        other => panic!("unexpected thinking blocks {other:?}"),
    }
    assert!(r.message.content.is_empty());
    assert_eq!(r.message.tool_calls.unwrap().len(), 1);
}

/// The request equals what the Python reference (LiteLLM's Anthropic translation) sent for
/// the same conversation, captured in `fixtures/llm/anthropic_claude_sonnet_4_5.json`:
/// system blocks with the cache marker on the static one, thinking first then tool uses,
/// both tool results and the next user text in one user turn, the empty assistant turn
/// replaced by LiteLLM's placeholder, the last user block marked, manual thinking with
/// `max_tokens` 64000, no temperature.
#[tokio::test]
async fn request_matches_reference_capture() {
    let fx = fixture("anthropic_claude_sonnet_4_5");
    let expected = &fx["body"];
    let llm = server(vec![Reply::text("ok")]).await;
    let mut cfg = config(MODEL, &llm.base_url());
    cfg.temperature = fx["config"]["temperature"].as_f64();
    let c = client(cfg);
    let messages = reference_conversation(true);
    let tools = fixture_tools(expected);
    let req = CompletionRequest {
        messages: &messages,
        tools: &tools,
        conversation_id: Some("conv-1"),
    };
    c.complete(req).await.unwrap();
    let recorded = &llm.requests()[0];
    assert_eq!(recorded.path, fx["path"].as_str().unwrap());
    assert_eq!(&recorded.body, expected);
    for (header, value) in fx["headers"].as_object().unwrap() {
        assert_eq!(recorded.header(header), value.as_str(), "header {header}");
    }
    assert_eq!(recorded.header("authorization"), None);
}

fn blocks(turn: &Value) -> Vec<&str> {
    turn["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn tool_results_are_grouped_and_turns_alternate() {
    let llm = server(vec![Reply::text("a"), Reply::text("b")]).await;
    let c = client(config(PLAIN, &llm.base_url()));
    let mut assistant = msg(Role::Assistant, vec![text("Two things.")]);
    assistant.tool_calls = Some(vec![
        tool_call("toolu_a", "terminal", r#"{"command":"ls"}"#),
        tool_call("toolu.b", "terminal", "{broken"),
    ]);
    let mut messages = vec![
        msg(Role::System, vec![text("static"), text("dynamic")]),
        Message::user("go"),
        assistant,
        tool_result("toolu_a", "terminal", "files"),
        tool_result("toolu.b", "terminal", "error"),
    ];
    let tools = [simple_tool("terminal")];
    c.complete(request(&messages, &tools)).await.unwrap();
    messages.push(Message::user("and now?"));
    c.complete(request(&messages, &tools)).await.unwrap();

    let reqs = llm.requests();
    let first = &reqs[0].body;
    assert_eq!(first["model"], "claude-3-5-haiku-20241022");
    assert_eq!(first["max_tokens"], 4096);
    assert!(first.get("thinking").is_none());
    assert!(first.get("tool_choice").is_none());
    assert_eq!(
        first["system"],
        json!([
            {"type": "text", "text": "static", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "dynamic"},
        ])
    );
    assert_eq!(
        first["tools"],
        json!([{"name": "terminal", "type": "custom", "description": "The terminal tool.",
                "input_schema": tools[0].parameters}])
    );
    let turns = first["messages"].as_array().unwrap();
    let roles: Vec<&str> = turns.iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user"]);
    assert_eq!(blocks(&turns[1]), ["text", "tool_use", "tool_use"]);
    assert_eq!(turns[1]["content"][1]["input"], json!({"command": "ls"}));
    // Ids are sanitised; arguments that are not a JSON object are sent as {}.
    assert_eq!(turns[1]["content"][2]["id"], "toolu_b");
    assert_eq!(turns[1]["content"][2]["input"], json!({}));
    assert_eq!(blocks(&turns[2]), ["tool_result", "tool_result"]);
    assert_eq!(turns[2]["content"][1]["tool_use_id"], "toolu_b");
    // The last user/tool message is a tool result: its block carries the cache marker.
    assert_eq!(turns[2]["content"][0].get("cache_control"), None);
    assert_eq!(
        turns[2]["content"][1],
        json!({"type": "tool_result", "tool_use_id": "toolu_b",
               "content": [{"type": "text", "text": "error"}],
               "cache_control": {"type": "ephemeral"}})
    );

    let second = &reqs[1].body;
    let turns = second["messages"].as_array().unwrap();
    let roles: Vec<&str> = turns.iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        ["user", "assistant", "user"],
        "the user text joins the tool results"
    );
    assert_eq!(blocks(&turns[2]), ["tool_result", "tool_result", "text"]);
    assert_eq!(turns[2]["content"][1].get("cache_control"), None);
    assert_eq!(
        turns[2]["content"][2],
        json!({"type": "text", "text": "and now?", "cache_control": {"type": "ephemeral"}})
    );

    assert_eq!(reqs[0].header("x-api-key"), Some("sk-test-123"));
    assert_eq!(reqs[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(reqs[0].header("anthropic-beta"), None);
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn no_cache_markers_when_caching_is_off() {
    let llm = server(vec![Reply::text("a")]).await;
    let mut cfg = config(PLAIN, &llm.base_url());
    cfg.caching_prompt = false;
    cfg.temperature = Some(0.3);
    let c = client(cfg);
    let messages = hello();
    c.complete(request(&messages, &[])).await.unwrap();
    let body = llm.requests()[0].body.clone();
    assert!(!body.to_string().contains("cache_control"), "{body}");
    assert_eq!(body["temperature"], 0.3);
    assert!(body.get("tools").is_none());
}

#[tokio::test]
async fn overloaded_is_retried() {
    let llm = server(vec![
        Reply::status(529, json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
        Reply::text("ok"),
    ])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(text_of(&r.message), "ok");
    assert_eq!(llm.requests().len(), 2);
}

#[tokio::test]
async fn errors_are_typed() {
    let llm = server(vec![
        Reply::error(400, "prompt is too long: 210000 tokens > 200000 maximum"),
        Reply::error(
            400,
            "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
        ),
        Reply::error(401, "invalid x-api-key"),
        Reply::error(400, "max_tokens: Field required"),
    ])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let mut errors = Vec::new();
    for _ in 0..4 {
        errors.push(c.complete(request(&messages, &[])).await.unwrap_err());
    }
    assert!(
        matches!(errors[0], LlmError::ContextWindowExceeded(_)),
        "{:?}",
        errors[0]
    );
    assert!(
        matches!(errors[1], LlmError::MalformedHistory(_)),
        "{:?}",
        errors[1]
    );
    assert_eq!(errors[1].code(), "LLMMalformedConversationHistoryError");
    assert!(
        matches!(errors[2], LlmError::Authentication(_)),
        "{:?}",
        errors[2]
    );
    assert!(
        matches!(&errors[3], LlmError::BadRequest(m) if m.contains("max_tokens: Field required"))
    );
    assert_eq!(llm.requests().len(), 4, "none of these is retried");
}

#[tokio::test]
async fn usage_and_cost_match_the_reference() {
    // The response and figures of the reference capture: prompt tokens include cache reads
    // and writes; cost 10·3e-6 + 7·3e-7 + 3·3.75e-6 + 5·1.5e-5 = 0.00011835 USD.
    let body = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "ok"},
            {"type": "tool_use", "id": "toolu_9", "name": "finish",
             "input": {"a": [1, 2.5, 1e20], "message": "d\u{e9}j\u{e0}"}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 5,
                  "cache_creation_input_tokens": 3, "cache_read_input_tokens": 7},
    });
    let llm = server(vec![Reply::Raw(body)]).await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(r.id, "msg_1");
    let calls = r.message.tool_calls.clone().unwrap();
    // Formatted as the reference stores it (`json.dumps`: separators, ASCII escapes, floats).
    assert_eq!(
        calls[0].arguments,
        r#"{"a": [1, 2.5, 1e+20], "message": "d\u00e9j\u00e0"}"#
    );
    assert_eq!(r.message.reasoning_content.as_deref(), Some("hmm"));
    let m = c.metrics();
    let u = &m.token_usages[0];
    assert_eq!(
        (
            u.prompt_tokens,
            u.completion_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens
        ),
        (20, 5, 7, 3)
    );
    assert_eq!(u.context_window, 200_000);
    assert_eq!(u.per_turn_token, 25);
    assert!(
        (m.accumulated_cost - 0.000_118_35).abs() < 1e-12,
        "{}",
        m.accumulated_cost
    );
}

#[tokio::test]
async fn empty_reply_is_an_empty_message() {
    let llm = server(vec![Reply::Empty]).await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert!(r.message.content.is_empty());
    assert!(r.message.tool_calls.is_none());
}

#[tokio::test]
async fn malformed_body_is_an_invalid_response() {
    let llm = server(vec![Reply::Raw(json!({"id": "msg_x", "type": "message"}))]).await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(matches!(err, LlmError::InvalidResponse(_)), "{err:?}");
    assert_eq!(llm.requests().len(), 1);
}

#[tokio::test]
async fn base_url_ending_in_v1_messages_is_used_as_is() {
    let llm = server(vec![Reply::text("ok")]).await;
    let c = client(config(PLAIN, &format!("{}/messages", llm.base_url())));
    let messages = hello();
    c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(llm.requests()[0].path, "/v1/messages");
}

#[tokio::test]
async fn history_with_tool_blocks_but_no_tools_gets_the_dummy_tool() {
    let llm = server(vec![Reply::text("summary")]).await;
    let c = client(config(PLAIN, &llm.base_url()));
    let mut assistant = msg(Role::Assistant, vec![]);
    assistant.tool_calls = Some(vec![tool_call("toolu_1", "terminal", "{}")]);
    let messages = vec![
        Message::user("go"),
        assistant,
        tool_result("toolu_1", "terminal", "done"),
    ];
    c.complete(request(&messages, &[])).await.unwrap();
    let body = &llm.requests()[0].body;
    assert_eq!(body["tools"][0]["name"], "dummy_tool");
}

/// Thinking parameters as the reference sent them (captured with a custom base URL, which
/// caps metadata output limits at 16384): manual thinking for `claude-haiku-4-5` (also
/// without the `anthropic/` prefix), `reasoning_effort` mapped to a 4096 budget for
/// `claude-opus-4-5`, adaptive thinking for `claude-opus-4-6`, nothing for unknown models.
#[test]
fn thinking_parameters_match_the_reference() {
    let messages = hello();
    let body = |model: &str| {
        let mut cfg = config(model, "http://127.0.0.1:9");
        cfg.temperature = Some(0.5);
        client(cfg).request_body(request(&messages, &[]))
    };
    let pick = |b: &Value| {
        json!({
            "max_tokens": b["max_tokens"], "thinking": b["thinking"],
            "output_config": b["output_config"], "temperature": b["temperature"],
        })
    };
    assert_eq!(
        pick(&body("claude-haiku-4-5")),
        json!({"max_tokens": 16384, "thinking": {"type": "enabled", "budget_tokens": 16383},
               "output_config": null, "temperature": null})
    );
    assert_eq!(
        pick(&body("anthropic/claude-opus-4-5")),
        json!({"max_tokens": 16384, "thinking": {"type": "enabled", "budget_tokens": 4096},
               "output_config": null, "temperature": null})
    );
    assert_eq!(
        pick(&body("anthropic/claude-opus-4-6")),
        json!({"max_tokens": 16384, "thinking": {"type": "adaptive", "display": "summarized"},
               "output_config": {"effort": "high"}, "temperature": null})
    );
    assert_eq!(
        pick(&body("anthropic/fixture-model")),
        json!({"max_tokens": 4096, "thinking": null, "output_config": null, "temperature": 0.5})
    );
}
