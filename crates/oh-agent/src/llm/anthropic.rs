//! Anthropic Messages: request building (§3.4) and response parsing.
//!
//! The reference never builds this payload itself: LiteLLM translates the Chat Completions
//! messages of [`super::openai::chat_messages`]. This module does the same translation
//! (`anthropic_messages_pt`, `AnthropicConfig.transform_request` and `transform_response` in
//! LiteLLM), so cache markers, thinking blocks and tool pairing come out as in the reference.

use oh_protocol::message::{
    Content, Message, MessageToolCall, RedactedThinking, Role, Thinking as ThinkingData,
    ThinkingBlock, ToolCallOrigin,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::model::{DEFAULT_ANTHROPIC_MAX_TOKENS, Features, Route, Thinking};
use super::openai::{self, Parsed, Usage, u64_at};
use super::{CompletionRequest, LlmError, ToolSchema};

/// The `anthropic-version` header value.
pub(crate) const ANTHROPIC_VERSION: &str = "2023-06-01";

/// What LiteLLM puts in place of empty user/assistant text (Anthropic rejects empty text).
const EMPTY_TEXT_PLACEHOLDER: &str =
    "[System: Empty message content sanitised to satisfy protocol]";

/// Thinking budgets LiteLLM maps `reasoning_effort` to for non-adaptive Claude models.
fn effort_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(2048),
        "high" => Some(4096),
        "xhigh" => Some(8192),
        "max" => Some(16_384),
        _ => None,
    }
}

/// `output_config.effort` for adaptive-thinking models.
fn adaptive_effort(effort: &str) -> Option<&'static str> {
    match effort {
        "minimal" | "low" => Some("low"),
        "medium" => Some("medium"),
        "high" => Some("high"),
        "xhigh" => Some("xhigh"),
        "max" => Some("max"),
        _ => None,
    }
}

/// Anthropic requires tool-use ids to match `^[a-zA-Z0-9_-]+$`.
fn sanitize_tool_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An input schema Anthropic accepts: `type: object`, `properties` present, and only the
/// keys Anthropic knows.
fn input_schema(parameters: &Value) -> Value {
    let mut schema = match parameters {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        schema.insert("type".into(), json!("object"));
    }
    schema.entry("properties").or_insert_with(|| json!({}));
    schema.retain(|k, _| {
        matches!(
            k.as_str(),
            "type" | "properties" | "additionalProperties" | "required" | "$defs" | "strict"
        )
    });
    Value::Object(schema)
}

fn anthropic_tools(tools: &[ToolSchema]) -> Vec<Value> {
    tools
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "input_schema": input_schema(&t.parameters),
                "type": "custom",
                "description": t.description,
            })
        })
        .collect()
}

/// The tool LiteLLM adds when the history has tool blocks but no tools are offered.
fn dummy_tool() -> Value {
    json!({
        "name": "dummy_tool",
        "input_schema": {"type": "object", "properties": {}},
        "type": "custom",
        "description": "This is a dummy tool call",
    })
}

/// `data:<mime>;base64,<data>` → base64 source, anything else → URL source.
fn image_block(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
    {
        let media_type = meta.split(';').next().unwrap_or("image/png");
        return json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data},
        });
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

fn copy_cache_control(from: &Value, to: &mut Map<String, Value>) {
    if let Some(cc) = from.get("cache_control").filter(|c| c.is_object()) {
        to.insert("cache_control".into(), cc.clone());
    }
}

/// Appends the non-empty text blocks of a Chat-shaped message (string or block list content)
/// as Anthropic text blocks.
fn push_text_blocks(message: &Value, out: &mut Vec<Value>) {
    match message.get("content") {
        Some(Value::String(text)) if !text.is_empty() => out.push(text_block(text, message)),
        Some(Value::Array(items)) => {
            for item in items {
                if item.get("type").and_then(Value::as_str) == Some("text")
                    && let Some(text) = item.get("text").and_then(Value::as_str)
                    && !text.is_empty()
                {
                    out.push(text_block(text, item));
                }
            }
        }
        _ => {}
    }
}

fn text_block(text: &str, source: &Value) -> Value {
    let mut block = Map::new();
    block.insert("type".into(), json!("text"));
    block.insert("text".into(), json!(text));
    copy_cache_control(source, &mut block);
    Value::Object(block)
}

/// Replaces empty user/assistant text with the placeholder (`_sanitize_empty_text_content`).
fn sanitize_empty_text(message: &mut Value) {
    let role = message
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if role != "user" && role != "assistant" {
        return;
    }
    match message.get_mut("content") {
        Some(Value::String(s)) if s.trim().is_empty() => *s = EMPTY_TEXT_PLACEHOLDER.to_owned(),
        Some(Value::Array(blocks)) => {
            for block in blocks {
                if block.get("type").and_then(Value::as_str) == Some("text")
                    && block
                        .get("text")
                        .and_then(Value::as_str)
                        .is_none_or(|t| t.trim().is_empty())
                    && let Some(obj) = block.as_object_mut()
                {
                    obj.insert("text".into(), json!(EMPTY_TEXT_PLACEHOLDER));
                }
            }
        }
        _ => {}
    }
}

/// Blocks of a user message (text with cache markers, images).
fn user_blocks(message: &Value, out: &mut Vec<Value>) {
    match message.get("content") {
        Some(Value::String(text)) => out.push(text_block(text, message)),
        Some(Value::Array(items)) => {
            for item in items {
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = item.get("text").and_then(Value::as_str).unwrap_or_default();
                        out.push(text_block(text, item));
                    }
                    Some("image_url") => {
                        let url = item
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let mut block = image_block(url);
                        if let Some(obj) = block.as_object_mut() {
                            copy_cache_control(item, obj);
                        }
                        out.push(block);
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// A `tool_result` block for a chat tool message.
fn tool_result_block(message: &Value) -> Value {
    let content = match message.get("content") {
        Some(Value::String(s)) => json!(s),
        Some(Value::Array(items)) => {
            let mut blocks = Vec::new();
            for item in items {
                match item.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = item.get("text").and_then(Value::as_str).unwrap_or_default();
                        blocks.push(text_block(text, item));
                    }
                    Some("image_url") => {
                        let url = item
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        blocks.push(image_block(url));
                    }
                    _ => {}
                }
            }
            Value::Array(blocks)
        }
        _ => json!(""),
    };
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut block = Map::new();
    block.insert("type".into(), json!("tool_result"));
    block.insert("tool_use_id".into(), json!(sanitize_tool_id(id)));
    block.insert("content".into(), content);
    copy_cache_control(message, &mut block);
    Value::Object(block)
}

/// Tool arguments as a JSON object; anything else (invalid JSON, a non-object) becomes `{}`.
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            tracing::warn!("tool call arguments are not a JSON object; sending {{}} to Anthropic");
            json!({})
        }
    }
}

/// Blocks of an assistant message: thinking blocks (signed ones; redacted kept), text, then
/// tool uses (ids already used in this turn are skipped).
fn assistant_blocks(message: &Value, out: &mut Vec<Value>, seen_ids: &mut Vec<String>) {
    if let Some(blocks) = message.get("thinking_blocks").and_then(Value::as_array) {
        for block in blocks {
            let unsignable = block.get("type").and_then(Value::as_str) == Some("thinking")
                && block
                    .get("signature")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty);
            if !unsignable {
                out.push(block.clone());
            }
        }
    }
    push_text_blocks(message, out);
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            let id = sanitize_tool_id(call.get("id").and_then(Value::as_str).unwrap_or_default());
            if seen_ids.contains(&id) {
                continue;
            }
            seen_ids.push(id.clone());
            let function = call.get("function").unwrap_or(&Value::Null);
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let arguments = function
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or_default();
            out.push(json!({
                "type": "tool_use",
                "id": id,
                "name": name,
                "input": tool_input(arguments),
            }));
        }
    }
}

/// Chat messages (without the leading system run) → alternating Anthropic turns: runs of
/// user and tool messages become one user turn (tool results in order, then user content),
/// runs of assistant messages one assistant turn.
fn anthropic_messages(chat: Vec<Value>) -> Vec<Value> {
    let messages: Vec<Value> = chat
        .into_iter()
        .map(|mut m| {
            // A later system message cannot be placed in the conversation; send it as user text.
            if m.get("role").and_then(Value::as_str) == Some("system")
                && let Some(obj) = m.as_object_mut()
            {
                obj.insert("role".into(), json!("user"));
            }
            sanitize_empty_text(&mut m);
            m
        })
        .collect();
    let role = |m: &Value| {
        m.get("role")
            .and_then(Value::as_str)
            .unwrap_or("user")
            .to_owned()
    };

    let mut out = Vec::new();
    let mut i = 0;
    while i < messages.len() {
        let start = i;
        let mut user = Vec::new();
        while i < messages.len() && matches!(role(&messages[i]).as_str(), "user" | "tool") {
            if role(&messages[i]) == "tool" {
                user.push(tool_result_block(&messages[i]));
            } else {
                user_blocks(&messages[i], &mut user);
            }
            i += 1;
        }
        if !user.is_empty() {
            out.push(json!({"role": "user", "content": user}));
        }
        let mut assistant = Vec::new();
        let mut seen_ids = Vec::new();
        while i < messages.len() && role(&messages[i]) == "assistant" {
            assistant_blocks(&messages[i], &mut assistant, &mut seen_ids);
            i += 1;
        }
        if !assistant.is_empty() {
            out.push(json!({"role": "assistant", "content": assistant}));
        }
        if i == start {
            // Unknown role: skip it rather than loop forever.
            i += 1;
        }
    }
    // No trailing whitespace in a final assistant turn.
    if let Some(last) = out.last_mut()
        && last.get("role").and_then(Value::as_str) == Some("assistant")
        && let Some(Value::Array(blocks)) = last.get_mut("content")
    {
        for block in blocks {
            if block.get("type").and_then(Value::as_str) == Some("text")
                && let Some(Value::String(text)) = block.get_mut("text")
            {
                let trimmed = text.trim_end().to_owned();
                *text = trimmed;
            }
        }
    }
    out
}

/// The `system` blocks of the leading system messages (empty text skipped).
fn system_blocks(leading: &[Value]) -> Vec<Value> {
    let mut blocks = Vec::new();
    for m in leading {
        push_text_blocks(m, &mut blocks);
    }
    blocks
}

fn has_tool_blocks(messages: &[Value]) -> bool {
    messages.iter().any(|m| {
        m.get("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| {
                blocks.iter().any(|b| {
                    matches!(
                        b.get("type").and_then(Value::as_str),
                        Some("tool_use" | "tool_result")
                    )
                })
            })
    })
}

/// The Messages request body and headers (`x-api-key`, `anthropic-version`, the
/// interleaved-thinking beta for manual thinking).
pub(crate) fn build_request(
    config: &oh_protocol::Llm,
    route: &Route,
    features: &Features,
    request: &CompletionRequest<'_>,
) -> (Value, Vec<(String, String)>) {
    let chat = openai::chat_messages(request.messages, features);
    let split = chat
        .iter()
        .position(|m| m.get("role").and_then(Value::as_str) != Some("system"))
        .unwrap_or(chat.len());
    let system = system_blocks(&chat[..split]);
    let messages = anthropic_messages(chat[split..].to_vec());

    let mut body = Map::new();
    body.insert("model".into(), json!(route.wire_model));
    let has_tools = !request.tools.is_empty();
    let needs_dummy = !has_tools && has_tool_blocks(&messages);
    body.insert("messages".into(), Value::Array(messages));
    let max_tokens = features
        .max_output_tokens
        .unwrap_or(DEFAULT_ANTHROPIC_MAX_TOKENS);
    body.insert("max_tokens".into(), json!(max_tokens));
    if has_tools {
        body.insert("tools".into(), Value::Array(anthropic_tools(request.tools)));
    } else if needs_dummy {
        body.insert("tools".into(), json!([dummy_tool()]));
    }

    let mut headers = vec![("anthropic-version".to_owned(), ANTHROPIC_VERSION.to_owned())];
    let effort = config
        .reasoning_effort
        .as_deref()
        .filter(|_| features.reasoning_effort);
    let mut thinking_on = false;
    match features.thinking {
        Thinking::Manual => {
            if let Some((thinking, max)) = openai::manual_thinking(config, features) {
                body.insert("thinking".into(), thinking);
                body.insert("max_tokens".into(), json!(max));
                headers.push((
                    "anthropic-beta".to_owned(),
                    "interleaved-thinking-2025-05-14".to_owned(),
                ));
                thinking_on = true;
            }
        }
        Thinking::Adaptive => {
            if let Some(level) = effort.and_then(adaptive_effort) {
                body.insert(
                    "thinking".into(),
                    json!({"type": "adaptive", "display": "summarized"}),
                );
                body.insert("output_config".into(), json!({"effort": level}));
                thinking_on = true;
            }
        }
        Thinking::None => {
            if let Some(budget) = effort.and_then(effort_budget)
                && budget < max_tokens
            {
                body.insert(
                    "thinking".into(),
                    json!({"type": "enabled", "budget_tokens": budget}),
                );
                thinking_on = true;
            }
        }
    }
    if !thinking_on && openai::sampling_allowed(features, route) {
        if let Some(t) = config.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(p) = config.top_p {
            body.insert("top_p".into(), json!(p));
        }
        if let Some(k) = config.top_k {
            // Anthropic wants an integer.
            body.insert("top_k".into(), json!(k.round().max(0.0) as u64));
        }
    }
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    for (k, v) in &config.litellm_extra_body {
        body.insert(k.clone(), v.clone());
    }
    if let Some(key) = config.api_key.as_ref().filter(|k| !k.is_placeholder()) {
        headers.push(("x-api-key".to_owned(), key.expose().to_owned()));
    }
    (Value::Object(body), headers)
}

#[derive(Debug, Deserialize)]
struct ResponseBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    content: Option<Vec<ResponseBlock>>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ResponseBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    data: Option<String>,
}

fn parse_usage(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let input = u64_at(usage, &["input_tokens"]).unwrap_or(0);
    let output = u64_at(usage, &["output_tokens"]).unwrap_or(0);
    let cache_write = u64_at(usage, &["cache_creation_input_tokens"]).unwrap_or(0);
    let cache_read = u64_at(usage, &["cache_read_input_tokens"]).unwrap_or(0);
    let reasoning = u64_at(usage, &["output_tokens_details", "thinking_tokens"])
        .unwrap_or(0)
        .min(output);
    Some(Usage {
        // LiteLLM counts cache reads and writes into the prompt tokens.
        prompt_tokens: input + cache_write + cache_read,
        completion_tokens: output,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: reasoning,
    })
}

/// Decodes a Messages response: text blocks joined into one text part, `tool_use` blocks as
/// tool calls (arguments = `json.dumps(input)` as the reference writes them), thinking and
/// redacted-thinking blocks kept verbatim, `reasoning_content` = the thinking texts joined.
pub(crate) fn parse_response(body: &[u8]) -> Result<Parsed, LlmError> {
    let snippet = || super::retry::snippet(body);
    let parsed: ResponseBody = serde_json::from_slice(body).map_err(|e| {
        LlmError::InvalidResponse(format!("malformed Messages response ({e}): {}", snippet()))
    })?;
    let Some(blocks) = parsed.content else {
        return Err(LlmError::InvalidResponse(format!(
            "Messages response without content: {}",
            snippet()
        )));
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut thinking_blocks = Vec::new();
    for block in blocks {
        match block.kind.as_str() {
            "text" => text.push_str(block.text.as_deref().unwrap_or_default()),
            "tool_use" | "server_tool_use" => {
                let name = block.name.ok_or_else(|| {
                    LlmError::InvalidResponse(format!(
                        "tool_use block without a name: {}",
                        snippet()
                    ))
                })?;
                let input = block.input.unwrap_or_else(|| Value::Object(Map::new()));
                let arguments = crate::pyfmt::json_dumps(&input);
                calls.push(MessageToolCall {
                    id: block.id.unwrap_or_default(),
                    responses_item_id: None,
                    name,
                    arguments,
                    origin: ToolCallOrigin::Completion,
                });
            }
            "thinking" => thinking_blocks.push(ThinkingBlock::Thinking(ThinkingData {
                thinking: block.thinking.unwrap_or_default(),
                signature: block.signature,
            })),
            "redacted_thinking" => {
                thinking_blocks.push(ThinkingBlock::Redacted(RedactedThinking {
                    data: block.data.unwrap_or_default(),
                }))
            }
            _ => {}
        }
    }
    let reasoning_content = if thinking_blocks.is_empty() {
        None
    } else {
        Some(
            thinking_blocks
                .iter()
                .filter_map(|b| match b {
                    ThinkingBlock::Thinking(t) => Some(t.thinking.as_str()),
                    _ => None,
                })
                .collect::<String>(),
        )
    };
    let message = Message {
        role: Role::Assistant,
        content: if text.is_empty() {
            Vec::new()
        } else {
            vec![Content::text(text)]
        },
        tool_calls: if calls.is_empty() { None } else { Some(calls) },
        tool_call_id: None,
        name: None,
        reasoning_content,
        thinking_blocks,
        responses_reasoning_item: None,
    };
    Ok(Parsed {
        id: parsed.id.unwrap_or_default(),
        message: Some(message),
        usage: parsed.usage.as_ref().and_then(parse_usage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dumps(json: &str) -> String {
        let v: Value = serde_json::from_str(json).unwrap();
        crate::pyfmt::json_dumps(&v)
    }

    #[test]
    fn tool_inputs_are_dumped_like_python() {
        assert_eq!(
            dumps(r#"{"message":"d\u00e9j\u00e0","a":[1,2.5,1e20],"z":{"n":null,"t":true}}"#),
            r#"{"message": "d\u00e9j\u00e0", "a": [1, 2.5, 1e+20], "z": {"n": null, "t": true}}"#
        );
        assert_eq!(dumps(r#"{"b":1,"a":2}"#), r#"{"b": 1, "a": 2}"#);
        assert_eq!(dumps(r#""tab\t\"q\" 😀""#), r#""tab\t\"q\" \ud83d\ude00""#);
        assert_eq!(
            dumps("[1.0, 0.0001, 0.00001, 1e16, 123456789012345.6]"),
            "[1.0, 0.0001, 1e-05, 1e+16, 123456789012345.6]"
        );
        assert_eq!(dumps("{}"), "{}");
    }

    #[test]
    fn usage_counts_cache_in_prompt() {
        let u = parse_usage(&json!({
            "input_tokens": 10, "output_tokens": 5,
            "cache_creation_input_tokens": 3, "cache_read_input_tokens": 7
        }))
        .unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cache_read_tokens, u.cache_write_tokens),
            (20, 7, 3)
        );
    }

    #[test]
    fn malformed_bodies_are_invalid_responses() {
        for body in [
            &b"nope"[..],
            b"{}",
            br#"{"content":[{"type":"tool_use","input":{}}]}"#,
        ] {
            assert!(matches!(
                parse_response(body),
                Err(LlmError::InvalidResponse(_))
            ));
        }
    }

    #[test]
    fn input_schema_is_sanitised() {
        let s = input_schema(&json!({"properties": {"a": {}}, "title": "x", "required": ["a"]}));
        assert_eq!(
            s,
            json!({"type": "object", "properties": {"a": {}}, "required": ["a"]})
        );
    }
}
