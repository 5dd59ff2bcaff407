//! Provider routing and the model facts the reference reads from LiteLLM's metadata.
//!
//! The reference resolves capabilities (prompt caching, manual extended thinking, context
//! window, output limit, prices) from LiteLLM's model table plus its own substring lists
//! (`utils/model_features.py`). This port keeps the substring lists that change the wire
//! format, and a small built-in table ([`KNOWN_MODELS`]) for the most common models.

use oh_protocol::Llm;
use oh_protocol::agent::ApiMode;

use super::LlmError;

/// Which wire format a client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireFormat {
    /// OpenAI Chat Completions (`POST {base}/chat/completions`).
    ChatCompletions,
    /// Anthropic Messages (`POST {base}/v1/messages`).
    AnthropicMessages,
}

/// Where and how requests go.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub(crate) wire: WireFormat,
    /// The full endpoint URL.
    pub(crate) url: String,
    /// The model name sent on the wire (provider prefix stripped).
    pub(crate) wire_model: String,
    /// The name used for capability look-ups (`model_canonical_name` or the model,
    /// lower-cased).
    pub(crate) capability_name: String,
    /// True when the configured `base_url` replaced the provider's default endpoint.
    pub(crate) custom_base_url: bool,
    /// The lower-cased provider prefix of the model name, if any.
    pub(crate) provider: Option<String>,
}

const OPENAI_BASE: &str = "https://api.openai.com/v1";
const ANTHROPIC_BASE: &str = "https://api.anthropic.com";
const OPENROUTER_BASE: &str = "https://openrouter.ai/api/v1";
const DEEPSEEK_BASE: &str = "https://api.deepseek.com";
const OPENHANDS_PROXY_BASE: &str = "https://llm-proxy.app.all-hands.dev";

/// Resolves the endpoint for `config`.
///
/// Supported model prefixes: `openai/`, `litellm_proxy/`, `openhands/` (the OpenHands LLM
/// proxy), `openrouter/`, `deepseek/` and `hosted_vllm/` speak Chat Completions;
/// `anthropic/` speaks Anthropic Messages. A bare name speaks Anthropic Messages when it
/// starts with `claude`, Chat Completions otherwise (as LiteLLM infers `gpt-*`, `o3`, … as
/// OpenAI). Other prefixes (`azure/`, `bedrock/`, `gemini/`, `vertex_ai/`, …) are not
/// supported yet. `api_mode: responses` is not supported yet; `auto` uses Chat Completions
/// for every model in this version (the reference would pick the Responses API for the
/// GPT-5 and Codex families).
pub(crate) fn route(config: &Llm) -> Result<Route, LlmError> {
    let model = config.model.trim();
    if model.is_empty() {
        return Err(LlmError::Config("the model name is empty".into()));
    }
    match config.api_mode {
        ApiMode::Auto | ApiMode::Chat => {}
        ApiMode::Responses => {
            return Err(LlmError::Config(format!(
                "api_mode \"responses\" (OpenAI Responses API) is not supported yet for model {model:?}; \
                 use api_mode \"chat\" or \"auto\""
            )));
        }
        other => {
            return Err(LlmError::Config(format!(
                "api_mode {other:?} is not supported for model {model:?}"
            )));
        }
    }
    let base_url = config
        .base_url
        .as_deref()
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| b.trim_end_matches('/').to_owned());
    if let Some(base) = &base_url {
        validate_base_url(base)?;
    }

    let (provider, rest) = match model.split_once('/') {
        Some((provider, rest)) => (Some(provider.to_ascii_lowercase()), rest),
        None => (None, model),
    };
    let capability_name = config
        .model_canonical_name
        .as_deref()
        .unwrap_or(model)
        .to_ascii_lowercase();

    let chat = |default_base: &str, wire_model: &str, custom: Option<String>| {
        let custom_base_url = custom.is_some();
        let base = custom.unwrap_or_else(|| default_base.to_owned());
        Route {
            wire: WireFormat::ChatCompletions,
            url: format!("{base}/chat/completions"),
            wire_model: wire_model.to_owned(),
            capability_name: capability_name.clone(),
            custom_base_url,
            provider: provider.clone(),
        }
    };
    let anthropic = |wire_model: &str, custom: Option<String>| {
        let custom_base_url = custom.is_some();
        let base = custom.unwrap_or_else(|| ANTHROPIC_BASE.to_owned());
        // LiteLLM appends /v1/messages unless the base already ends with it.
        let url = if base.ends_with("/v1/messages") {
            base
        } else {
            format!("{base}/v1/messages")
        };
        Route {
            wire: WireFormat::AnthropicMessages,
            url,
            wire_model: wire_model.to_owned(),
            capability_name: capability_name.clone(),
            custom_base_url,
            provider: provider.clone(),
        }
    };

    match provider.as_deref() {
        // The reference resets `https://api.openai.com` to "no base URL" for openai/ models.
        Some("openai") => {
            let custom = base_url.filter(|b| !is_openai_default(b));
            Ok(chat(OPENAI_BASE, rest, custom))
        }
        Some("litellm_proxy") | Some("hosted_vllm") => match base_url {
            Some(base) => Ok(chat(OPENAI_BASE, rest, Some(base))),
            None => Err(LlmError::Config(format!(
                "model {model:?} needs a base_url (the OpenAI-compatible endpoint)"
            ))),
        },
        Some("openhands") => {
            let base = base_url.unwrap_or_else(|| OPENHANDS_PROXY_BASE.to_owned());
            Ok(chat(OPENAI_BASE, rest, Some(base)))
        }
        Some("openrouter") => Ok(chat(OPENROUTER_BASE, rest, base_url)),
        Some("deepseek") => Ok(chat(DEEPSEEK_BASE, rest, base_url)),
        Some("anthropic") => Ok(anthropic(rest, base_url)),
        Some(other) if rest.is_empty() => Err(LlmError::Config(format!(
            "invalid model name {model:?} (provider {other:?} without a model)"
        ))),
        Some(other) => Err(LlmError::Config(format!(
            "provider {other:?} (model {model:?}) is not supported yet; supported prefixes: \
             openai/, anthropic/, litellm_proxy/, openhands/, openrouter/, deepseek/, hosted_vllm/"
        ))),
        None if model.to_ascii_lowercase().starts_with("claude") => Ok(anthropic(model, base_url)),
        None => Ok(chat(OPENAI_BASE, model, base_url)),
    }
}

fn is_openai_default(base: &str) -> bool {
    matches!(base, "https://api.openai.com" | "https://api.openai.com/v1")
}

fn validate_base_url(base: &str) -> Result<(), LlmError> {
    let uri: hyper::Uri = base
        .parse()
        .map_err(|e| LlmError::Config(format!("invalid base_url {base:?}: {e}")))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(LlmError::Config(format!(
            "invalid base_url {base:?}: expected http:// or https:// with a host"
        ))),
    }
}

/// True if any of `patterns` is a substring of `name` (already lower-case).
fn matches_any(name: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| name.contains(p))
}

/// Models that get Anthropic prompt-cache markers (`PROMPT_CACHE_MODELS` in 1.57.0).
const PROMPT_CACHE_MODELS: &[&str] = &[
    "claude-3-7-sonnet",
    "claude-sonnet-3-7-latest",
    "claude-3-5-sonnet",
    "claude-3-5-haiku",
    "claude-3-haiku-20240307",
    "claude-3-opus-20240229",
    "claude-sonnet-4",
    "claude-opus-4",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-sonnet-4-6",
    "claude-opus-4-5",
    "claude-opus-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-haiku-5-5",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-fable-5",
];

/// Models with manual extended thinking (`EXTENDED_THINKING_MODELS`).
const EXTENDED_THINKING_MODELS: &[&str] =
    &["claude-sonnet-4-5", "claude-sonnet-4-6", "claude-haiku-4-5"];

/// Models that want tool and message content as a plain string
/// (`FORCE_STRING_SERIALIZER_MODELS`).
const FORCE_STRING_SERIALIZER_MODELS: &[&str] = &[
    "deepseek-v3.2",
    "glm",
    "groq/kimi-k2-instruct",
    "openrouter/minimax",
];

/// Models whose `reasoning_content` must be echoed back (`SEND_REASONING_CONTENT_MODELS`).
const SEND_REASONING_CONTENT_MODELS: &[&str] = &[
    "kimi-k3",
    "kimi-k2-thinking",
    "kimi-k2.5",
    "kimi-k2.6",
    "openrouter/minimax-m2",
    "deepseek/deepseek-reasoner",
    "deepseek/deepseek-v4-pro",
    "deepseek/deepseek-v4-flash",
    "deepseek/deepseek-v4.1-flash",
];

/// Models LiteLLM marks as reasoning models (`supports_reasoning`), by family.
const REASONING_MODELS: &[&str] = &[
    "o1",
    "o3",
    "o4-mini",
    "gpt-5",
    "gpt-6",
    "codex-mini",
    "claude-sonnet-4-5",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "claude-opus-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-haiku-5-5",
    "claude-fable-5",
    "claude-mythos",
    "deepseek-reasoner",
];

/// Anthropic models with adaptive thinking (`supports_adaptive_thinking`): the reference
/// sends `thinking: {type: adaptive, display: summarized}` and `output_config.effort`.
const ADAPTIVE_THINKING_MODELS: &[&str] = &[
    "claude-opus-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-opus-5",
    "claude-sonnet-4-6",
    "claude-sonnet-5",
    "claude-haiku-5-5",
    "claude-fable-5",
    "claude-mythos",
];

/// OpenAI model families: `prompt_cache_key` is an accepted parameter for them.
const OPENAI_FAMILIES: &[&str] = &["gpt-", "o1", "o3", "o4-", "chatgpt", "codex"];

/// Visual model families (LiteLLM's `supports_vision`); unknown models are not visual.
const VISION_MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4.1",
    "gpt-4-turbo",
    "gpt-5",
    "gpt-6",
    "o1",
    "o3",
    "o4-mini",
    "claude-3",
    "claude-sonnet-4",
    "claude-opus-4",
    "claude-haiku-4",
    "claude-sonnet-5",
    "claude-opus-5",
    "claude-haiku-5",
    "claude-fable-5",
    "gemini",
];

/// The built-in model facts: context window, output limit and USD prices per token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ModelInfo {
    /// Name as matched (the longest key contained in the model name wins).
    pub(crate) key: &'static str,
    pub(crate) max_input_tokens: u64,
    pub(crate) max_output_tokens: u64,
    pub(crate) input_cost: f64,
    pub(crate) output_cost: f64,
    pub(crate) cache_read_cost: Option<f64>,
    pub(crate) cache_write_cost: Option<f64>,
}

const fn info(
    key: &'static str,
    max_input_tokens: u64,
    max_output_tokens: u64,
    input_cost: f64,
    output_cost: f64,
    cache_read_cost: Option<f64>,
    cache_write_cost: Option<f64>,
) -> ModelInfo {
    ModelInfo {
        key,
        max_input_tokens,
        max_output_tokens,
        input_cost,
        output_cost,
        cache_read_cost,
        cache_write_cost,
    }
}

/// Prices and limits of a few well-known models, from LiteLLM's table as shipped with the
/// reference (USD per token): `gpt-4o`, `gpt-4o-mini`, `gpt-4.1`, `gpt-4.1-mini`, `gpt-5`,
/// `gpt-5-mini`, `o3`, `o4-mini`, `claude-sonnet-4-5`, `claude-sonnet-4-6`,
/// `claude-haiku-4-5`, `claude-opus-4-5`, `claude-opus-4-6`, `deepseek-chat`. Matched by
/// substring on the lower-cased model name, the longest key first, so `gpt-4o-mini` wins
/// over `gpt-4o`.
pub(crate) const KNOWN_MODELS: &[ModelInfo] = &[
    info("gpt-4o", 128_000, 16_384, 2.5e-6, 1e-5, Some(1.25e-6), None),
    info(
        "gpt-4o-mini",
        128_000,
        16_384,
        1.5e-7,
        6e-7,
        Some(7.5e-8),
        None,
    ),
    info("gpt-4.1", 1_047_576, 32_768, 2e-6, 8e-6, Some(5e-7), None),
    info(
        "gpt-4.1-mini",
        1_047_576,
        32_768,
        4e-7,
        1.6e-6,
        Some(1e-7),
        None,
    ),
    info(
        "gpt-5",
        272_000,
        128_000,
        1.25e-6,
        1e-5,
        Some(1.25e-7),
        None,
    ),
    info(
        "gpt-5-mini",
        272_000,
        128_000,
        2.5e-7,
        2e-6,
        Some(2.5e-8),
        None,
    ),
    info("o3", 200_000, 100_000, 2e-6, 8e-6, Some(5e-7), None),
    info(
        "o4-mini",
        200_000,
        100_000,
        1.1e-6,
        4.4e-6,
        Some(2.75e-7),
        None,
    ),
    info(
        "claude-sonnet-4-5",
        200_000,
        64_000,
        3e-6,
        1.5e-5,
        Some(3e-7),
        Some(3.75e-6),
    ),
    info(
        "claude-sonnet-4-6",
        1_000_000,
        128_000,
        3e-6,
        1.5e-5,
        Some(3e-7),
        Some(3.75e-6),
    ),
    info(
        "claude-haiku-4-5",
        200_000,
        64_000,
        1e-6,
        5e-6,
        Some(1e-7),
        Some(1.25e-6),
    ),
    info(
        "claude-opus-4-5",
        200_000,
        64_000,
        5e-6,
        2.5e-5,
        Some(5e-7),
        Some(6.25e-6),
    ),
    info(
        "claude-opus-4-6",
        1_000_000,
        128_000,
        5e-6,
        2.5e-5,
        Some(5e-7),
        Some(6.25e-6),
    ),
    info(
        "deepseek-chat",
        131_072,
        8_192,
        2.8e-7,
        4.2e-7,
        Some(2.8e-8),
        None,
    ),
];

/// The default output budget of an Anthropic request when nothing else is known (LiteLLM's
/// `DEFAULT_ANTHROPIC_CHAT_MAX_TOKENS`).
pub(crate) const DEFAULT_ANTHROPIC_MAX_TOKENS: u64 = 4096;

/// Output cap for metadata limits behind a custom base URL (`DEFAULT_MAX_OUTPUT_TOKENS_CAP`).
const DEFAULT_MAX_OUTPUT_TOKENS_CAP: u64 = 16_384;

/// How the model thinks, as the reference decides it (`_thinking_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Thinking {
    /// No extended thinking parameter.
    None,
    /// `thinking: {type: enabled, budget_tokens}` with the interleaved-thinking beta.
    Manual,
    /// `thinking: {type: adaptive}` (Anthropic Messages only).
    Adaptive,
}

/// What the client needs to know about the configured model.
#[derive(Debug, Clone)]
pub(crate) struct Features {
    pub(crate) info: Option<ModelInfo>,
    /// Anthropic cache markers are added.
    pub(crate) caching: bool,
    pub(crate) thinking: Thinking,
    pub(crate) force_string_serializer: bool,
    pub(crate) send_reasoning_content: bool,
    /// The reference believes the model takes `reasoning_effort` (this also removes the
    /// sampling parameters).
    pub(crate) reasoning_effort: bool,
    /// `reasoning_effort` survives LiteLLM's parameter filter and reaches the wire.
    pub(crate) reasoning_effort_on_wire: bool,
    /// The endpoint accepts `prompt_cache_key`.
    pub(crate) prompt_cache_key: bool,
    pub(crate) vision: bool,
    /// Effective context window (`max_input_tokens` or the table's), 0 when unknown.
    pub(crate) context_window: u64,
    /// Effective output limit, when known.
    pub(crate) max_output_tokens: Option<u64>,
}

/// The table entry whose key is the longest substring of `name`.
pub(crate) fn lookup(name: &str) -> Option<ModelInfo> {
    KNOWN_MODELS
        .iter()
        .filter(|m| name.contains(m.key))
        .max_by_key(|m| m.key.len())
        .copied()
}

/// Resolves the features of `config` routed by `route`.
///
/// Matches what the reference (with LiteLLM) put on the wire in captures: for `openai/…`
/// models the reference believes every model takes `reasoning_effort` (so temperature and
/// top_p are never sent), and LiteLLM then drops `reasoning_effort` again for the known
/// non-reasoning models (`gpt-4o`, `gpt-4.1`); behind `litellm_proxy/` only known reasoning
/// models get it. `prompt_cache_key` goes to OpenAI models only.
pub(crate) fn features(config: &Llm, route: &Route) -> Features {
    let name = route.capability_name.as_str();
    // Capability look-ups use the name without the SDK's routing prefixes.
    let bare = name
        .strip_prefix("litellm_proxy/")
        .or_else(|| name.strip_prefix("openhands/"))
        .unwrap_or(name);
    let info = lookup(bare);
    let overrides = &config.capability_overrides;
    let bool_override = |key: &str| overrides.get(key).and_then(serde_json::Value::as_bool);

    let caching = config.caching_prompt
        && bool_override("supports_prompt_cache")
            .unwrap_or_else(|| matches_any(name, PROMPT_CACHE_MODELS));
    let reasoning_model = matches_any(bare, REASONING_MODELS);
    let thinking = match overrides
        .get("thinking_mode")
        .and_then(serde_json::Value::as_str)
    {
        Some("manual") => Thinking::Manual,
        Some("adaptive") => Thinking::Adaptive,
        Some(_) => Thinking::None,
        None if matches_any(bare, ADAPTIVE_THINKING_MODELS) => Thinking::Adaptive,
        None if matches_any(bare, EXTENDED_THINKING_MODELS) => Thinking::Manual,
        None => Thinking::None,
    };
    let is_openai_provider = route.provider.as_deref() == Some("openai");
    let reasoning_effort =
        bool_override("supports_reasoning_effort").unwrap_or(reasoning_model || is_openai_provider);
    // LiteLLM drops the parameter for known OpenAI models that do not reason.
    let known_non_reasoning = info.is_some() && !reasoning_model;
    let reasoning_effort_on_wire = reasoning_effort && !known_non_reasoning;
    let prompt_cache_key = bool_override("supports_prompt_cache_key").unwrap_or_else(|| {
        route.wire == WireFormat::ChatCompletions
            && (is_openai_provider || OPENAI_FAMILIES.iter().any(|f| bare.starts_with(f)))
            && !bare.contains("claude")
    });
    let vision = config.disable_vision != Some(true)
        && bool_override("supports_vision").unwrap_or_else(|| matches_any(bare, VISION_MODELS));
    let force_string_serializer = config
        .force_string_serializer
        .unwrap_or_else(|| matches_any(name, FORCE_STRING_SERIALIZER_MODELS));

    let context_window = config
        .max_input_tokens
        .filter(|&n| n > 0)
        .or(info.map(|i| i.max_input_tokens))
        .unwrap_or(0);

    // Effective max output tokens, as `_init_model_info_and_caps` computes it.
    let model = config.model.as_str();
    let mut max_output = config.max_output_tokens.filter(|&n| n > 0);
    if max_output.is_none() {
        if ["claude-3-7-sonnet", "claude-sonnet-4", "kimi-k2-thinking"]
            .iter()
            .any(|m| model.contains(m))
        {
            max_output = Some(64_000);
        } else if let Some(i) = info {
            let mut out = i.max_output_tokens;
            let window = if context_window > 0 {
                context_window
            } else {
                i.max_input_tokens
            };
            if out >= window {
                out /= 2;
            }
            if route.custom_base_url
                && !model.starts_with("litellm_proxy/")
                && out > DEFAULT_MAX_OUTPUT_TOKENS_CAP
            {
                out = DEFAULT_MAX_OUTPUT_TOKENS_CAP;
            }
            max_output = Some(out);
        }
    }
    if model.contains("o3") && max_output.is_none_or(|n| n > 100_000) {
        max_output = Some(100_000);
    }

    Features {
        info,
        caching,
        thinking,
        force_string_serializer,
        send_reasoning_content: matches_any(name, SEND_REASONING_CONTENT_MODELS),
        reasoning_effort,
        reasoning_effort_on_wire,
        prompt_cache_key,
        vision,
        context_window,
        max_output_tokens: max_output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llm(model: &str, base_url: Option<&str>) -> Llm {
        Llm {
            base_url: base_url.map(str::to_owned),
            ..Llm::new(model)
        }
    }

    #[test]
    fn routes_by_prefix() {
        let r = route(&llm("openai/gpt-4o", None)).unwrap();
        assert_eq!(r.wire, WireFormat::ChatCompletions);
        assert_eq!(r.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(r.wire_model, "gpt-4o");

        let r = route(&llm("openai/fixture-model", Some("http://127.0.0.1:9/v1/"))).unwrap();
        assert_eq!(r.url, "http://127.0.0.1:9/v1/chat/completions");
        assert_eq!(r.wire_model, "fixture-model");
        assert!(r.custom_base_url);

        let r = route(&llm(
            "litellm_proxy/claude-sonnet-4-5",
            Some("http://proxy"),
        ))
        .unwrap();
        assert_eq!(r.wire_model, "claude-sonnet-4-5");
        assert_eq!(r.url, "http://proxy/chat/completions");

        let r = route(&llm("anthropic/claude-sonnet-4-5", None)).unwrap();
        assert_eq!(r.wire, WireFormat::AnthropicMessages);
        assert_eq!(r.url, "https://api.anthropic.com/v1/messages");
        let r = route(&llm("anthropic/claude-x", Some("http://h:1/v1"))).unwrap();
        assert_eq!(r.url, "http://h:1/v1/v1/messages");
        let r = route(&llm("claude-haiku-4-5", Some("http://h:1/v1/messages"))).unwrap();
        assert_eq!(r.url, "http://h:1/v1/messages");

        assert!(matches!(route(&llm("", None)), Err(LlmError::Config(_))));
        assert!(matches!(
            route(&llm("bedrock/x", None)),
            Err(LlmError::Config(_))
        ));
        assert!(matches!(
            route(&llm("litellm_proxy/x", None)),
            Err(LlmError::Config(_))
        ));
        assert!(matches!(
            route(&llm("openai/x", Some("ftp://x"))),
            Err(LlmError::Config(_))
        ));
        let responses = Llm {
            api_mode: ApiMode::Responses,
            ..Llm::new("openai/gpt-5")
        };
        assert!(matches!(route(&responses), Err(LlmError::Config(_))));
    }

    #[test]
    fn features_follow_the_reference_lists() {
        let cfg = llm("anthropic/claude-sonnet-4-5-20250929", None);
        let f = features(&cfg, &route(&cfg).unwrap());
        assert!(f.caching);
        assert_eq!(f.thinking, Thinking::Manual);
        assert_eq!(f.max_output_tokens, Some(64_000));
        assert_eq!(f.context_window, 200_000);

        let cfg = llm("openai/gpt-4o-mini", None);
        let f = features(&cfg, &route(&cfg).unwrap());
        assert!(!f.caching);
        assert_eq!(f.thinking, Thinking::None);
        assert!(f.reasoning_effort && !f.reasoning_effort_on_wire && f.prompt_cache_key);
        assert_eq!(f.info.map(|i| i.key), Some("gpt-4o-mini"));
        assert_eq!(f.max_output_tokens, Some(16_384));

        let cfg = llm("openai/fixture-model", Some("http://x/v1"));
        let f = features(&cfg, &route(&cfg).unwrap());
        assert_eq!(f.max_output_tokens, None);
        assert_eq!(f.context_window, 0);
        assert!(f.reasoning_effort && f.reasoning_effort_on_wire && !f.vision);

        let cfg = llm("litellm_proxy/fixture-model", Some("http://x/v1"));
        let f = features(&cfg, &route(&cfg).unwrap());
        assert!(!f.reasoning_effort && !f.prompt_cache_key);
        let cfg = llm("litellm_proxy/gpt-4o", Some("http://x/v1"));
        let f = features(&cfg, &route(&cfg).unwrap());
        assert!(!f.reasoning_effort && f.prompt_cache_key && f.vision);
        assert_eq!(f.max_output_tokens, Some(16_384));

        let cfg = Llm {
            caching_prompt: false,
            ..llm("anthropic/claude-opus-4-5", None)
        };
        let f = features(&cfg, &route(&cfg).unwrap());
        assert!(!f.caching);
        assert_eq!(f.thinking, Thinking::None);
        assert!(f.reasoning_effort);
        let cfg = llm("anthropic/claude-opus-4-6", None);
        assert_eq!(
            features(&cfg, &route(&cfg).unwrap()).thinking,
            Thinking::Adaptive
        );
    }
}
