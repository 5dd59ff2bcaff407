//! LLM messages and their content parts (`openhands.sdk.llm.message`).

use serde::{Deserialize, Serialize};

use crate::tagged::{Unknown, tagged_union};
use crate::wire::omit_none;

/// A text part: `{"cache_prompt": false, "type": "text", "text": "…"}`.
///
/// The `type` discriminator is written wherever a text part appears, also outside a
/// [`Content`] list (e.g. `ActionEvent.thought`), as the reference does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "text")]
pub struct TextContent {
    /// Ask the provider to cache the prompt up to here. Always written.
    #[serde(default)]
    pub cache_prompt: bool,
    /// The text.
    pub text: String,
}

impl TextContent {
    /// A text part without a cache marker.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            cache_prompt: false,
            text: text.into(),
        }
    }
}

/// An image part: `{"cache_prompt": false, "type": "image", "image_urls": […]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "image")]
pub struct ImageContent {
    /// Ask the provider to cache the prompt up to here.
    #[serde(default)]
    pub cache_prompt: bool,
    /// `http(s)://` or `data:` URLs.
    pub image_urls: Vec<String>,
}

/// One part of a message's content, tagged by `type`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Content {
    /// `"type": "text"`.
    Text(TextContent),
    /// `"type": "image"`.
    Image(ImageContent),
    /// A part type this crate does not know, kept verbatim.
    Unknown(Unknown),
}

impl Content {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text(TextContent::new(text))
    }

    /// The text of a text part.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(t) => Some(&t.text),
            _ => None,
        }
    }
}

impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(t) => t.serialize(serializer),
            Self::Image(i) => i.serialize(serializer),
            Self::Unknown(u) => u.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let value = |map| serde_json::Value::Object(map);
        match map.get("type").and_then(serde_json::Value::as_str) {
            Some("text") => serde_json::from_value(value(map)).map(Self::Text),
            Some("image") => serde_json::from_value(value(map)).map(Self::Image),
            Some(_) => return Ok(Self::Unknown(Unknown { raw: map })),
            None => return Err(D::Error::custom("content part without a string `type`")),
        }
        .map_err(D::Error::custom)
    }
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// The user.
    User,
    /// The system prompt.
    System,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

/// Where a tool call came from: Chat Completions or the Responses API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ToolCallOrigin {
    /// Chat Completions.
    Completion,
    /// The Responses API.
    Responses,
}

/// A tool call as the model made it (`MessageToolCall`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageToolCall {
    /// The provider's call id.
    pub id: String,
    /// Responses API item id.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub responses_item_id: Option<String>,
    /// The tool name.
    pub name: String,
    /// The arguments as a JSON string, exactly as the model produced them.
    pub arguments: String,
    /// Chat Completions or Responses API.
    pub origin: ToolCallOrigin,
}

/// Extended-thinking blocks (Anthropic), tagged by `type`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ThinkingBlock {
    /// `"type": "thinking"`.
    Thinking(Thinking),
    /// `"type": "redacted_thinking"`.
    Redacted(RedactedThinking),
    /// A block type this crate does not know.
    Unknown(Unknown),
}

tagged_union! { ThinkingBlock, tag = "type";
    Thinking(Thinking) = "thinking",
    Redacted(RedactedThinking) = "redacted_thinking",
}

/// A visible thinking block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thinking {
    /// The reasoning text.
    pub thinking: String,
    /// The provider's signature over it.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub signature: Option<String>,
}

/// A redacted thinking block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedactedThinking {
    /// Opaque data to send back.
    pub data: String,
}

/// A Responses API reasoning item (`ReasoningItemModel`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReasoningItemModel {
    /// Item id.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub id: Option<String>,
    /// Summary lines.
    #[serde(default)]
    pub summary: Vec<String>,
    /// Content lines.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub content: Option<Vec<String>>,
    /// Encrypted reasoning to send back.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub encrypted_content: Option<String>,
    /// Item status.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub status: Option<String>,
}

/// A message in the LLM conversation (`Message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// Content parts. On input a plain string or `null` is accepted too.
    #[serde(default, deserialize_with = "content_list")]
    pub content: Vec<Content>,
    /// Tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub tool_calls: Option<Vec<MessageToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub tool_call_id: Option<String>,
    /// Tool name of a tool message.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub name: Option<String>,
    /// Reasoning text of the model.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub reasoning_content: Option<String>,
    /// Thinking blocks. Always written.
    #[serde(default)]
    pub thinking_blocks: Vec<ThinkingBlock>,
    /// Responses API reasoning item.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub responses_reasoning_item: Option<ReasoningItemModel>,
}

impl Message {
    /// A message with the given role and content and nothing else.
    pub fn new(role: Role, content: Vec<Content>) -> Self {
        Self {
            role,
            content,
            tool_calls: None,
            tool_call_id: None,
            name: None,
            reasoning_content: None,
            thinking_blocks: Vec::new(),
            responses_reasoning_item: None,
        }
    }

    /// A user message with one text part.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, vec![Content::text(text)])
    }
}

/// A user message with one text part, as Python's `send_message("...")` sends a string.
impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Self::user(text)
    }
}

/// A user message with one text part, as Python's `send_message("...")` sends a string.
impl From<String> for Message {
    fn from(text: String) -> Self {
        Self::user(text)
    }
}

/// Accepts a list of parts, a plain string (one text part) or `null` (no parts).
pub(crate) fn content_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Content>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Input {
        Parts(Vec<Content>),
        Text(String),
    }
    Ok(match Option::<Input>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(Input::Parts(parts)) => parts,
        Some(Input::Text(text)) => vec![Content::text(text)],
    })
}
