//! OpenAI Chat Completions: request building (§3.2) and response parsing.
//!
//! The chat-shaped messages built here are also the input of the Anthropic translation
//! ([`super::anthropic`]), as LiteLLM translates the same shape in the reference.

use oh_protocol::message::{
    Content, Message, MessageToolCall, Role, ThinkingBlock, ToolCallOrigin,
};
use serde_json::{Map, Value, json};

use super::model::{Features, Route, Thinking};
use super::{CompletionRequest, LlmError, ToolSchema};
use crate::tools::truncate::{CLIPPED_NOTICE, maybe_truncate};

/// Tool result text longer than this is middle-truncated (`DEFAULT_TEXT_CONTENT_LIMIT`).
pub(crate) const TOOL_TEXT_LIMIT: usize = 50_000;

/// Token counts of one response, normalised across wire formats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) prompt_tokens: u64,
    pub(crate) completion_tokens: u64,
    pub(crate) cache_read_tokens: u64,
    pub(crate) cache_write_tokens: u64,
    pub(crate) reasoning_tokens: u64,
}

/// A decoded successful response.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    /// Provider response id (empty when absent).
    pub(crate) id: String,
    /// The assistant message; `None` when the response had no choices.
    pub(crate) message: Option<Message>,
    /// Token usage, when reported.
    pub(crate) usage: Option<Usage>,
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::System => "system",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
        // `Role` is non-exhaustive; a future role is sent as a user turn.
        _ => "user",
    }
}

fn truncate_tool_text(text: &str) -> String {
    maybe_truncate(text, TOOL_TEXT_LIMIT, CLIPPED_NOTICE)
}

/// Which content blocks get an Anthropic cache marker (`_apply_prompt_caching`): the first
/// block of a leading system message, and the last block of the last user or tool message.
fn cache_marks(messages: &[Message]) -> (bool, Option<usize>) {
    let system = messages
        .first()
        .is_some_and(|m| m.role == Role::System && !m.content.is_empty());
    let last = messages
        .iter()
        .rposition(|m| matches!(m.role, Role::User | Role::Tool))
        .filter(|&i| messages.get(i).is_some_and(|m| !m.content.is_empty()));
    (system, last)
}

/// Serialises `messages` as Chat Completions messages (`Message.to_chat_dict`), with cache
/// markers when `features.caching`.
pub(crate) fn chat_messages(messages: &[Message], features: &Features) -> Vec<Value> {
    let (mark_system, mark_last) = if features.caching {
        cache_marks(messages)
    } else {
        (false, None)
    };
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let marked_block = if i == 0 && mark_system {
                Some(0)
            } else if Some(i) == mark_last {
                Some(m.content.len().saturating_sub(1))
            } else {
                None
            };
            chat_message(m, marked_block, features)
        })
        .collect()
}

fn chat_message(m: &Message, marked_block: Option<usize>, features: &Features) -> Value {
    let is_tool = m.role == Role::Tool;
    let has_images = m.content.iter().any(|c| matches!(c, Content::Image(_)));
    let preserve_images = features.vision && has_images;
    let mut out = Map::new();

    if !features.force_string_serializer || preserve_images {
        // List serializer.
        let mut blocks = Vec::new();
        let mut tool_cache = false;
        for (idx, part) in m.content.iter().enumerate() {
            let marked = marked_block == Some(idx);
            let mut items: Vec<Map<String, Value>> = match part {
                Content::Text(t) => {
                    let text = if is_tool {
                        truncate_tool_text(&t.text)
                    } else {
                        t.text.clone()
                    };
                    let mut block = Map::new();
                    block.insert("type".into(), json!("text"));
                    block.insert("text".into(), Value::String(text));
                    vec![block]
                }
                Content::Image(img) if features.vision => img
                    .image_urls
                    .iter()
                    .map(|url| {
                        let mut block = Map::new();
                        block.insert("type".into(), json!("image_url"));
                        block.insert("image_url".into(), json!({ "url": url }));
                        block
                    })
                    .collect(),
                // Images without vision and unknown part types are not sent.
                _ => Vec::new(),
            };
            if marked && !items.is_empty() {
                if is_tool {
                    // Tool messages carry the marker at the message level.
                    tool_cache = true;
                } else if let Some(last) = items.last_mut() {
                    last.insert("cache_control".into(), json!({"type": "ephemeral"}));
                }
            }
            blocks.extend(items.into_iter().map(Value::Object));
        }
        out.insert("content".into(), Value::Array(blocks));
        out.insert("role".into(), json!(role_str(m.role)));
        if tool_cache {
            out.insert("cache_control".into(), json!({"type": "ephemeral"}));
        }
        if m.role == Role::Assistant && !m.thinking_blocks.is_empty() {
            let blocks: Vec<Value> = m
                .thinking_blocks
                .iter()
                .filter_map(|b| serde_json::to_value(b).ok())
                .collect();
            out.insert("thinking_blocks".into(), Value::Array(blocks));
        }
    } else {
        // String serializer.
        let text = m
            .content
            .iter()
            .filter_map(Content::as_text)
            .collect::<Vec<_>>()
            .join("\n");
        let text = if is_tool {
            truncate_tool_text(&text)
        } else {
            text
        };
        out.insert("content".into(), Value::String(text));
        out.insert("role".into(), json!(role_str(m.role)));
    }

    match &m.tool_calls {
        Some(calls) if m.role == Role::Assistant && !calls.is_empty() => {
            let calls: Vec<Value> = calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    })
                })
                .collect();
            out.insert("tool_calls".into(), Value::Array(calls));
            remove_empty_content(&mut out);
        }
        _ => {
            if m.role == Role::Assistant
                && out
                    .get("content")
                    .is_some_and(|c| c.as_array().is_some_and(Vec::is_empty))
            {
                out.insert("content".into(), json!(""));
            }
        }
    }

    if is_tool && let Some(id) = &m.tool_call_id {
        out.insert("tool_call_id".into(), json!(id));
        out.insert("name".into(), json!(m.name.as_deref().unwrap_or_default()));
    }
    if features.send_reasoning_content
        && let Some(reasoning) = m.reasoning_content.as_deref().filter(|r| !r.is_empty())
    {
        out.insert("reasoning_content".into(), json!(reasoning));
    }
    Value::Object(out)
}

/// Drops whitespace-only text blocks of an assistant tool-call message, and the `content`
/// key when nothing remains (`_remove_content_if_empty`).
fn remove_empty_content(out: &mut Map<String, Value>) {
    let keep = match out.get_mut("content") {
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(Value::Array(items)) => {
            items.retain(|item| {
                item.get("type").and_then(Value::as_str) != Some("text")
                    || item
                        .get("text")
                        .and_then(Value::as_str)
                        .is_some_and(|t| !t.trim().is_empty())
            });
            !items.is_empty()
        }
        _ => true,
    };
    if !keep {
        out.remove("content");
    }
}

/// `[{type: "function", function: {name, description, parameters}}]`.
pub(crate) fn chat_tools(tools: &[ToolSchema]) -> Vec<Value> {
    tools
        .iter()
        .map(|t| {
            json!({
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            })
        })
        .collect()
}

/// Sampling parameters are removed for reasoning models and manual-thinking models.
pub(crate) fn sampling_allowed(features: &Features, route: &Route) -> bool {
    !(features.thinking == Thinking::Manual
        || features.reasoning_effort && !route.capability_name.contains("gemini"))
}

/// The `thinking` parameter of a manual-thinking model, and the output budget it needs.
pub(crate) fn manual_thinking(
    config: &oh_protocol::Llm,
    features: &Features,
) -> Option<(Value, u64)> {
    if features.thinking != Thinking::Manual {
        return None;
    }
    let budget = config.extended_thinking_budget.filter(|&b| b > 0)?;
    let max_output = features.max_output_tokens.filter(|&m| m > 1)?;
    Some((
        json!({"type": "enabled", "budget_tokens": budget.min(max_output - 1)}),
        max_output,
    ))
}

/// `prompt_cache_retention` support (`PROMPT_CACHE_RETENTION_MODELS`: ordered include and
/// exclude rules, the last matching one wins).
fn supports_prompt_cache_retention(name: &str) -> bool {
    const RULES: &[&str] = &["gpt-5", "gpt-4.1", "!mini", "gpt-5.1-codex-mini", "!azure/"];
    let mut decided = false;
    for rule in RULES {
        let (exclude, core) = match rule.strip_prefix('!') {
            Some(core) => (true, core),
            None => (false, *rule),
        };
        if name.contains(core) {
            decided = !exclude;
        }
    }
    decided
}

/// The Chat Completions request body and extra headers.
pub(crate) fn build_request(
    config: &oh_protocol::Llm,
    route: &Route,
    features: &Features,
    request: &CompletionRequest<'_>,
) -> (Value, Vec<(String, String)>) {
    let mut body = Map::new();
    body.insert("model".into(), json!(route.wire_model));
    body.insert(
        "messages".into(),
        Value::Array(chat_messages(request.messages, features)),
    );
    if !request.tools.is_empty() {
        body.insert("tools".into(), Value::Array(chat_tools(request.tools)));
    }
    if let Some(max) = features.max_output_tokens {
        body.insert("max_completion_tokens".into(), json!(max));
    }
    if sampling_allowed(features, route) {
        if let Some(t) = config.temperature {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(p) = config.top_p {
            body.insert("top_p".into(), json!(p));
        }
    }
    if features.reasoning_effort_on_wire
        && let Some(effort) = &config.reasoning_effort
    {
        body.insert("reasoning_effort".into(), json!(effort));
    }
    let mut headers = Vec::new();
    if let Some((thinking, max_tokens)) = manual_thinking(config, features) {
        body.insert("thinking".into(), thinking);
        body.insert("max_tokens".into(), json!(max_tokens));
        headers.push((
            "anthropic-beta".to_owned(),
            "interleaved-thinking-2025-05-14".to_owned(),
        ));
    }
    if supports_prompt_cache_retention(&route.capability_name)
        && let Some(retention) = &config.prompt_cache_retention
    {
        body.insert("prompt_cache_retention".into(), json!(retention));
    }
    if let Some(seed) = config.seed {
        body.insert("seed".into(), json!(seed));
    }
    if features.prompt_cache_key
        && let Some(id) = request.conversation_id
    {
        body.insert("prompt_cache_key".into(), json!(id));
    }
    // `litellm_extra_body` is merged into the JSON body, as the OpenAI client does.
    for (k, v) in &config.litellm_extra_body {
        body.insert(k.clone(), v.clone());
    }
    if let Some(key) = config.api_key.as_ref().filter(|k| !k.is_placeholder()) {
        headers.push((
            "authorization".to_owned(),
            format!("Bearer {}", key.expose()),
        ));
    }
    (Value::Object(body), headers)
}

/// The number at `path` in `v`, 0 when absent or not a number.
pub(crate) fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    let mut cur = v;
    for key in path {
        cur = cur.get(key)?;
    }
    cur.as_u64()
        .or_else(|| cur.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
}

fn parse_usage(usage: &Value) -> Option<Usage> {
    if !usage.is_object() {
        return None;
    }
    let prompt = u64_at(usage, &["prompt_tokens"])
        .or_else(|| u64_at(usage, &["input_tokens"]))
        .unwrap_or(0);
    let completion = u64_at(usage, &["completion_tokens"])
        .or_else(|| u64_at(usage, &["output_tokens"]))
        .unwrap_or(0);
    let cache_read = u64_at(usage, &["prompt_tokens_details", "cached_tokens"])
        .or_else(|| u64_at(usage, &["input_tokens_details", "cached_tokens"]))
        .or_else(|| u64_at(usage, &["cache_read_input_tokens"]))
        .or_else(|| u64_at(usage, &["cached_tokens"]))
        .unwrap_or(0);
    let cache_write = u64_at(usage, &["prompt_tokens_details", "cache_creation_tokens"])
        .or_else(|| u64_at(usage, &["cache_creation_input_tokens"]))
        .unwrap_or(0);
    let reasoning = u64_at(usage, &["completion_tokens_details", "reasoning_tokens"])
        .or_else(|| u64_at(usage, &["output_tokens_details", "reasoning_tokens"]))
        .unwrap_or(0);
    Some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: reasoning,
    })
}

/// Decodes a Chat Completions response body.
pub(crate) fn parse_response(body: &[u8]) -> Result<Parsed, LlmError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        LlmError::InvalidResponse(format!(
            "response is not JSON ({e}): {}",
            super::retry::snippet(body)
        ))
    })?;
    if !value.is_object() {
        return Err(LlmError::InvalidResponse(format!(
            "response is not a JSON object: {}",
            super::retry::snippet(body)
        )));
    }
    let id = value
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let usage = value.get("usage").and_then(parse_usage);
    let first = value
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first());
    let Some(choice) = first else {
        return Ok(Parsed {
            id,
            message: None,
            usage,
        });
    };
    let msg = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| {
            LlmError::InvalidResponse(format!(
                "choice without a message: {}",
                super::retry::snippet(body)
            ))
        })?;
    Ok(Parsed {
        id,
        message: Some(parse_message(msg)?),
        usage,
    })
}

fn parse_message(msg: &Value) -> Result<Message, LlmError> {
    let content = match msg.get("content") {
        Some(Value::String(text)) => vec![Content::text(text.clone())],
        Some(Value::Array(parts)) => {
            let text: String = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            if text.is_empty() {
                Vec::new()
            } else {
                vec![Content::text(text)]
            }
        }
        _ => Vec::new(),
    };

    let mut tool_calls = None;
    if let Some(calls) = msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        let mut out = Vec::new();
        for call in calls {
            let kind = call
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("function");
            if kind != "function" {
                tracing::warn!("ignoring a tool call of type {kind:?}");
                continue;
            }
            let function = call.get("function").unwrap_or(&Value::Null);
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| LlmError::InvalidResponse("tool call without a name".into()))?;
            let arguments = match function.get("arguments") {
                Some(Value::String(s)) => s.clone(),
                None | Some(Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            out.push(MessageToolCall {
                id,
                responses_item_id: None,
                name: name.to_owned(),
                arguments,
                origin: ToolCallOrigin::Completion,
            });
        }
        if out.is_empty() {
            return Err(LlmError::InvalidResponse(
                "the model returned tool calls but none of type \"function\"".into(),
            ));
        }
        tool_calls = Some(out);
    }

    let reasoning_content = msg
        .get("reasoning_content")
        .and_then(Value::as_str)
        .or_else(|| msg.get("reasoning").and_then(Value::as_str))
        .map(str::to_owned);
    let thinking_blocks = msg
        .get("thinking_blocks")
        .and_then(Value::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| serde_json::from_value::<ThinkingBlock>(b.clone()).ok())
                .collect()
        })
        .unwrap_or_default();

    Ok(Message {
        role: Role::Assistant,
        content,
        tool_calls,
        tool_call_id: None,
        name: None,
        reasoning_content,
        thinking_blocks,
        responses_reasoning_item: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_rules() {
        assert!(supports_prompt_cache_retention("openai/gpt-5"));
        assert!(supports_prompt_cache_retention("gpt-4.1"));
        assert!(!supports_prompt_cache_retention("gpt-5-mini"));
        assert!(supports_prompt_cache_retention("gpt-5.1-codex-mini"));
        assert!(!supports_prompt_cache_retention("azure/gpt-5"));
        assert!(!supports_prompt_cache_retention("gpt-4o"));
    }

    #[test]
    fn parses_usage_variants() {
        let u = parse_usage(&json!({
            "prompt_tokens": 100, "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 40},
            "completion_tokens_details": {"reasoning_tokens": 5}
        }))
        .unwrap();
        assert_eq!(
            u,
            Usage {
                prompt_tokens: 100,
                completion_tokens: 20,
                cache_read_tokens: 40,
                cache_write_tokens: 0,
                reasoning_tokens: 5
            }
        );
        assert!(parse_usage(&Value::Null).is_none());
    }

    #[test]
    fn malformed_bodies_are_invalid_responses() {
        assert!(matches!(
            parse_response(b"not json"),
            Err(LlmError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_response(b"[1]"),
            Err(LlmError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_response(
                br#"{"choices":[{"message":{"tool_calls":[{"type":"function","function":{}}]}}]}"#
            ),
            Err(LlmError::InvalidResponse(_))
        ));
        let p = parse_response(br#"{"id":"x","choices":[]}"#).unwrap();
        assert!(p.message.is_none());
    }
}
