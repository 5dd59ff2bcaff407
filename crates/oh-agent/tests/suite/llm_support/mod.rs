//! Helpers shared by the LLM client tests (`llm_openai`, `llm_anthropic`).

#![allow(unreachable_pub, reason = "`pub` helpers of a private test module")]

use oh_agent::llm::{CompletionRequest, LlmClient, ToolSchema};
use oh_protocol::message::{ImageContent, Thinking, ThinkingBlock, ToolCallOrigin};
use oh_protocol::{Content, Llm, Message, MessageToolCall, Role, SecretString, TextContent};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::{Value, json};

/// A scripted LLM server playing `script`.
pub async fn server(script: Vec<Reply>) -> ScriptedLlm {
    ScriptedLlm::start(script).await.unwrap()
}

/// A configuration for `model` at `base_url` with instant retries.
pub fn config(model: &str, base_url: &str) -> Llm {
    Llm {
        base_url: Some(base_url.to_owned()),
        api_key: Some(SecretString::new("sk-test-123")),
        num_retries: 3,
        retry_multiplier: 0.0,
        retry_min_wait: 0,
        retry_max_wait: 0,
        timeout: Some(30),
        ..Llm::new(model)
    }
}

pub fn client(config: Llm) -> LlmClient {
    LlmClient::new(config).expect("valid config")
}

pub fn text(t: &str) -> Content {
    Content::Text(TextContent::new(t))
}

pub fn msg(role: Role, content: Vec<Content>) -> Message {
    Message::new(role, content)
}

pub fn tool_call(id: &str, name: &str, args: &str) -> MessageToolCall {
    MessageToolCall {
        id: id.to_owned(),
        responses_item_id: None,
        name: name.to_owned(),
        arguments: args.to_owned(),
        origin: ToolCallOrigin::Completion,
    }
}

pub fn tool_result(id: &str, name: &str, t: &str) -> Message {
    Message {
        tool_call_id: Some(id.to_owned()),
        name: Some(name.to_owned()),
        ..msg(Role::Tool, vec![text(t)])
    }
}

/// The conversation the reference captures were taken with (see `fixtures/llm/*.json`).
pub fn reference_conversation(second_arguments_valid: bool) -> Vec<Message> {
    let second = if second_arguments_valid {
        r#"{"thought": "y", "b": 1}"#
    } else {
        "not json"
    };
    vec![
        msg(
            Role::System,
            vec![text("static prompt"), text("dynamic prompt")],
        ),
        msg(
            Role::User,
            vec![
                text("hello"),
                Content::Image(ImageContent {
                    cache_prompt: false,
                    image_urls: vec!["https://example.com/a.png".into()],
                }),
            ],
        ),
        Message {
            thinking_blocks: vec![ThinkingBlock::Thinking(Thinking {
                thinking: "t1".into(),
                signature: Some("s1".into()),
            })],
            tool_calls: Some(vec![
                tool_call("call_a", "think", r#"{"thought": "x"}"#),
                tool_call("call_b", "think", second),
            ]),
            reasoning_content: Some("rc".into()),
            ..msg(Role::Assistant, vec![text("")])
        },
        tool_result("call_a", "think", "res a"),
        tool_result("call_b", "think", "res b"),
        msg(Role::User, vec![text("next")]),
        msg(Role::Assistant, vec![]),
        msg(Role::User, vec![text("last")]),
    ]
}

/// A captured reference request (`fixtures/llm/NAME.json`).
pub fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/llm/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// The tools of a captured request, back as `ToolSchema`s (Chat or Anthropic shape).
pub fn fixture_tools(body: &Value) -> Vec<ToolSchema> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| match t.get("function") {
            Some(f) => ToolSchema {
                name: f["name"].as_str().unwrap().to_owned(),
                description: f["description"].as_str().unwrap().to_owned(),
                parameters: f["parameters"].clone(),
            },
            None => ToolSchema {
                name: t["name"].as_str().unwrap().to_owned(),
                description: t["description"].as_str().unwrap().to_owned(),
                parameters: t["input_schema"].clone(),
            },
        })
        .collect()
}

/// A tool with an empty-ish schema.
pub fn simple_tool(name: &str) -> ToolSchema {
    ToolSchema {
        name: name.to_owned(),
        description: format!("The {name} tool."),
        parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
    }
}

pub fn request<'a>(messages: &'a [Message], tools: &'a [ToolSchema]) -> CompletionRequest<'a> {
    CompletionRequest {
        messages,
        tools,
        conversation_id: None,
    }
}

/// A short system + user conversation.
pub fn hello() -> Vec<Message> {
    vec![
        msg(Role::System, vec![text("You are a test.")]),
        Message::user("Say hi."),
    ]
}

pub fn text_of(m: &Message) -> String {
    m.content.iter().filter_map(Content::as_text).collect()
}
