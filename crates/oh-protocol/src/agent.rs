//! Agent configuration: the LLM, the agent, tools, policies, secrets and the workspace spec.
//!
//! These types appear in REST bodies (full form) and in state snapshots (compact form); see
//! [`wire`](crate::wire).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::SecurityRisk;
use crate::tagged::{Unknown, tagged_union};
use crate::wire::{omit_none, yes};

/// A secret string: written in clear on the wire (the reference decides per route whether a
/// secret is sent, masked as `"**********"` or nulled), never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// What the reference writes in place of a secret it does not expose.
    pub const MASK: &'static str = "**********";

    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret in clear.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for the reference's "no secret here" values: empty, blank or the mask.
    pub fn is_placeholder(&self) -> bool {
        self.0.trim().is_empty() || self.0 == Self::MASK
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(**********)")
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// How the LLM authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthType {
    /// An API key.
    #[default]
    ApiKey,
    /// A vendor subscription login.
    Subscription,
}

/// Which API the LLM client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ApiMode {
    /// Chosen from the model.
    #[default]
    Auto,
    /// Chat Completions.
    Chat,
    /// Responses API.
    Responses,
}

/// LLM configuration (`LLM`), with the reference's defaults.
///
/// Unknown input fields are ignored, as the reference does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[allow(
    missing_docs,
    reason = "field meanings follow the reference's `LLM` model one to one"
)]
pub struct Llm {
    /// Model name, with provider prefix where needed (`openai/gpt-4o`, `anthropic/…`).
    pub model: String,
    #[serde(skip_serializing_if = "omit_none")]
    pub api_key: Option<SecretString>,
    #[serde(skip_serializing_if = "omit_none")]
    pub provider_connection_id: Option<String>,
    pub auth_type: AuthType,
    #[serde(skip_serializing_if = "omit_none")]
    pub subscription_vendor: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub aws_access_key_id: Option<SecretString>,
    #[serde(skip_serializing_if = "omit_none")]
    pub aws_secret_access_key: Option<SecretString>,
    #[serde(skip_serializing_if = "omit_none")]
    pub aws_session_token: Option<SecretString>,
    #[serde(skip_serializing_if = "omit_none")]
    pub aws_region_name: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub aws_profile_name: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub aws_role_name: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub aws_session_name: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub aws_bedrock_runtime_endpoint: Option<String>,
    pub openrouter_site_url: String,
    pub openrouter_app_name: String,
    pub num_retries: u32,
    pub retry_multiplier: f64,
    pub retry_min_wait: u64,
    pub retry_max_wait: u64,
    /// Request timeout in seconds.
    #[serde(skip_serializing_if = "omit_none")]
    pub timeout: Option<u64>,
    #[serde(skip_serializing_if = "omit_none")]
    pub stream_idle_timeout: Option<f64>,
    pub max_message_chars: u64,
    #[serde(skip_serializing_if = "omit_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "omit_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "omit_none")]
    pub top_k: Option<f64>,
    #[serde(skip_serializing_if = "omit_none")]
    pub max_input_tokens: Option<u64>,
    #[serde(skip_serializing_if = "omit_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "omit_none")]
    pub model_canonical_name: Option<String>,
    pub api_mode: ApiMode,
    pub capability_overrides: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "omit_none")]
    pub extra_headers: Option<BTreeMap<String, String>>,
    /// USD per input token, when the price is known.
    #[serde(skip_serializing_if = "omit_none")]
    pub input_cost_per_token: Option<f64>,
    /// USD per output token, when the price is known.
    #[serde(skip_serializing_if = "omit_none")]
    pub output_cost_per_token: Option<f64>,
    #[serde(skip_serializing_if = "omit_none")]
    pub ollama_base_url: Option<String>,
    pub stream: bool,
    pub drop_params: bool,
    #[serde(skip_serializing_if = "omit_none")]
    pub disable_vision: Option<bool>,
    #[serde(skip_serializing_if = "omit_none")]
    pub disable_stop_word: Option<bool>,
    pub caching_prompt: bool,
    pub log_completions: bool,
    pub log_completions_folder: String,
    #[serde(skip_serializing_if = "omit_none")]
    pub custom_tokenizer: Option<String>,
    pub native_tool_calling: bool,
    #[serde(skip_serializing_if = "omit_none")]
    pub force_string_serializer: Option<bool>,
    #[serde(skip_serializing_if = "omit_none")]
    pub inline_image_urls: Option<bool>,
    #[serde(skip_serializing_if = "omit_none")]
    pub reasoning_effort: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub reasoning_summary: Option<String>,
    pub enable_encrypted_reasoning: bool,
    #[serde(skip_serializing_if = "omit_none")]
    pub prompt_cache_retention: Option<String>,
    #[serde(skip_serializing_if = "omit_none")]
    pub extended_thinking_budget: Option<u64>,
    #[serde(skip_serializing_if = "omit_none")]
    pub seed: Option<i64>,
    /// Keys this LLM's entry in the conversation stats.
    pub usage_id: String,
    pub litellm_extra_body: serde_json::Map<String, serde_json::Value>,
    /// Output only: the LLM authenticates through a subscription.
    pub is_subscription: bool,
}

impl Default for Llm {
    fn default() -> Self {
        Self {
            model: "gpt-5.6".to_owned(),
            api_key: None,
            provider_connection_id: None,
            auth_type: AuthType::ApiKey,
            subscription_vendor: None,
            base_url: None,
            api_version: None,
            aws_access_key_id: None,
            aws_secret_access_key: None,
            aws_session_token: None,
            aws_region_name: None,
            aws_profile_name: None,
            aws_role_name: None,
            aws_session_name: None,
            aws_bedrock_runtime_endpoint: None,
            openrouter_site_url: "https://docs.all-hands.dev/".to_owned(),
            openrouter_app_name: "OpenHands".to_owned(),
            num_retries: 5,
            retry_multiplier: 8.0,
            retry_min_wait: 8,
            retry_max_wait: 64,
            timeout: Some(300),
            stream_idle_timeout: Some(300.0),
            max_message_chars: 30_000,
            temperature: None,
            top_p: None,
            top_k: None,
            max_input_tokens: None,
            max_output_tokens: None,
            model_canonical_name: None,
            api_mode: ApiMode::Auto,
            capability_overrides: BTreeMap::new(),
            extra_headers: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            ollama_base_url: None,
            stream: false,
            drop_params: true,
            disable_vision: None,
            disable_stop_word: Some(false),
            caching_prompt: true,
            log_completions: false,
            log_completions_folder: "logs/completions".to_owned(),
            custom_tokenizer: None,
            native_tool_calling: true,
            force_string_serializer: None,
            inline_image_urls: None,
            reasoning_effort: Some("high".to_owned()),
            reasoning_summary: None,
            enable_encrypted_reasoning: true,
            prompt_cache_retention: Some("24h".to_owned()),
            extended_thinking_budget: Some(200_000),
            seed: None,
            usage_id: crate::event::default_usage_id(),
            litellm_extra_body: serde_json::Map::new(),
            is_subscription: false,
        }
    }
}

impl Llm {
    /// An LLM for `model` with the reference's defaults otherwise.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }
}

/// A tool the agent should use, by registry name (`Tool` spec): `{"name": "terminal", "params": {}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Registry name: `terminal`, `file_editor`, `task_tracker`, …
    pub name: String,
    /// Tool parameters.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl ToolSpec {
    /// A tool by name, without parameters.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            params: serde_json::Map::new(),
        }
    }
}

/// The regular agent (`Agent`).
///
/// Nested configurations this crate does not interpret yet (`agent_context`, `condenser`,
/// `critic`, `mcp_config`) are kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// The LLM.
    pub llm: Llm,
    /// Tools by registry name.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// MCP servers.
    #[serde(default)]
    pub mcp_config: serde_json::Map<String, serde_json::Value>,
    /// Only tools whose names match.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub filter_tools_regex: Option<String>,
    /// Built-in tools by class name.
    #[serde(default = "default_tools")]
    pub include_default_tools: Vec<String>,
    /// Skills, message suffixes, secrets.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub agent_context: Option<serde_json::Value>,
    /// A system prompt replacing the template.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub system_prompt: Option<String>,
    /// System prompt template name.
    #[serde(default = "default_system_prompt_filename")]
    pub system_prompt_filename: String,
    /// Security policy template name.
    #[serde(default = "default_security_policy_filename")]
    pub security_policy_filename: String,
    /// Template parameters.
    #[serde(default)]
    pub system_prompt_kwargs: serde_json::Map<String, serde_json::Value>,
    /// History condenser.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub condenser: Option<serde_json::Value>,
    /// Critic model.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub critic: Option<serde_json::Value>,
    /// Parallel tool calls executed at once.
    #[serde(default = "one")]
    pub tool_concurrency_limit: u32,
    /// Persona text replacing the built-in persona sections.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub persona: Option<String>,
}

fn default_tools() -> Vec<String> {
    vec!["FinishTool".to_owned(), "ThinkTool".to_owned()]
}

fn default_system_prompt_filename() -> String {
    "system_prompt.j2".to_owned()
}

fn default_security_policy_filename() -> String {
    "security_policy.j2".to_owned()
}

fn one() -> u32 {
    1
}

impl Agent {
    /// An agent with `llm`, the given tools and the reference's defaults otherwise
    /// (`finish` and `think` built in, `llm_security_analyzer: true` in the prompt parameters).
    pub fn new(llm: Llm, tools: Vec<ToolSpec>) -> Self {
        let mut system_prompt_kwargs = serde_json::Map::new();
        system_prompt_kwargs.insert("llm_security_analyzer".to_owned(), true.into());
        Self {
            llm,
            tools,
            mcp_config: serde_json::Map::new(),
            filter_tools_regex: None,
            include_default_tools: default_tools(),
            agent_context: None,
            system_prompt: None,
            system_prompt_filename: default_system_prompt_filename(),
            security_policy_filename: default_security_policy_filename(),
            system_prompt_kwargs,
            condenser: None,
            critic: None,
            tool_concurrency_limit: 1,
            persona: None,
        }
    }
}

/// Any agent (`AgentBase`): the regular `Agent`, or another kind (e.g. `ACPAgent`) kept as JSON.
/// An object without `kind` is an `Agent`, as in the reference.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AgentBase {
    /// `"kind": "Agent"`.
    Agent(Box<Agent>),
    /// Another agent kind.
    Unknown(Unknown),
}

tagged_union! { AgentBase, tag = "kind", default = "Agent";
    Agent(Box<Agent>) = "Agent",
}

impl From<Agent> for AgentBase {
    fn from(agent: Agent) -> Self {
        Self::Agent(Box::new(agent))
    }
}

/// When actions need the user's confirmation (`ConfirmationPolicyBase`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ConfirmationPolicy {
    /// Never ask (the default).
    NeverConfirm(NeverConfirm),
    /// Always ask.
    AlwaysConfirm(AlwaysConfirm),
    /// Ask for risky actions.
    ConfirmRisky(ConfirmRisky),
    /// A policy this crate does not know.
    Unknown(Unknown),
}

tagged_union! { ConfirmationPolicy, tag = "kind";
    NeverConfirm(NeverConfirm) = "NeverConfirm",
    AlwaysConfirm(AlwaysConfirm) = "AlwaysConfirm",
    ConfirmRisky(ConfirmRisky) = "ConfirmRisky",
}

impl Default for ConfirmationPolicy {
    fn default() -> Self {
        Self::NeverConfirm(NeverConfirm {})
    }
}

/// `{"kind": "NeverConfirm"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NeverConfirm {}

/// `{"kind": "AlwaysConfirm"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlwaysConfirm {}

/// Confirm actions at or above a risk threshold (`ConfirmRisky`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmRisky {
    /// Lowest risk that needs confirmation; the reference rejects `UNKNOWN` here.
    #[serde(default = "high")]
    pub threshold: SecurityRisk,
    /// Also confirm actions of unknown risk.
    #[serde(default = "yes")]
    pub confirm_unknown: bool,
}

fn high() -> SecurityRisk {
    SecurityRisk::High
}

impl Default for ConfirmRisky {
    fn default() -> Self {
        Self {
            threshold: SecurityRisk::High,
            confirm_unknown: true,
        }
    }
}

/// A security analyzer (`SecurityAnalyzerBase`): its `kind` (e.g. `LLMSecurityAnalyzer`)
/// and its settings, kept as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityAnalyzer {
    /// The analyzer class.
    pub kind: String,
    /// Its settings.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// Where a secret's value comes from (`SecretSource`).
///
/// On input a plain string, or an object without `kind`, is a [`StaticSecret`] (as the
/// reference's secrets route accepts).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SecretSource {
    /// A value given directly.
    Static(StaticSecret),
    /// A value fetched by URL when needed.
    Lookup(LookupSecret),
    /// A source this crate does not know.
    Unknown(Unknown),
}

mod secret_source_wire {
    use super::*;

    /// The object form of [`SecretSource`].
    #[derive(Debug)]
    pub(super) enum Object {
        Static(StaticSecret),
        Lookup(LookupSecret),
        Unknown(Unknown),
    }

    tagged_union! { Object, tag = "kind", default = "StaticSecret";
        Static(StaticSecret) = "StaticSecret",
        Lookup(LookupSecret) = "LookupSecret",
    }
}

impl Serialize for SecretSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use secret_source_wire::Object;
        // Borrowing variants would need a second enum; cloning a secret source is cheap.
        match self {
            Self::Static(s) => Object::Static(s.clone()).serialize(serializer),
            Self::Lookup(l) => Object::Lookup(l.clone()).serialize(serializer),
            Self::Unknown(u) => u.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use secret_source_wire::Object;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Input {
            Plain(String),
            Object(Object),
        }
        Ok(match Input::deserialize(deserializer)? {
            Input::Plain(value) => Self::Static(StaticSecret::new(value)),
            Input::Object(Object::Static(s)) => Self::Static(s),
            Input::Object(Object::Lookup(l)) => Self::Lookup(l),
            Input::Object(Object::Unknown(u)) => Self::Unknown(u),
        })
    }
}

/// A secret given by value (`StaticSecret`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticSecret {
    /// Description for the system prompt.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub description: Option<String>,
    /// The value (null in REST responses, masked in state snapshots).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub value: Option<SecretString>,
}

impl StaticSecret {
    /// A secret with this value and no description.
    pub fn new(value: impl Into<SecretString>) -> Self {
        Self {
            description: None,
            value: Some(value.into()),
        }
    }
}

impl From<String> for SecretSource {
    fn from(value: String) -> Self {
        Self::Static(StaticSecret::new(value))
    }
}

impl From<&str> for SecretSource {
    fn from(value: &str) -> Self {
        Self::Static(StaticSecret::new(value))
    }
}

impl From<StaticSecret> for SecretSource {
    fn from(secret: StaticSecret) -> Self {
        Self::Static(secret)
    }
}

impl From<LookupSecret> for SecretSource {
    fn from(secret: LookupSecret) -> Self {
        Self::Lookup(secret)
    }
}

/// A secret fetched with `GET url` and `headers` when first used (`LookupSecret`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupSecret {
    /// Description for the system prompt.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub description: Option<String>,
    /// Where to fetch the value; host-less URLs are resolved against the server itself.
    pub url: String,
    /// Request headers (secret values).
    #[serde(default)]
    pub headers: BTreeMap<String, SecretString>,
}

/// The workspace of a conversation as the server sees it: `{"working_dir": …, "kind":
/// "LocalWorkspace"}`. A missing `kind` means `LocalWorkspace`.
///
/// The Python models are `LocalWorkspace` and friends; here they carry a `Spec` suffix
/// because `Workspace` and `LocalWorkspace` name the workspaces that run commands (the
/// `openhands` facade, `oh_agent::workspace`). The JSON is the same.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WorkspaceSpec {
    /// A directory on the server's machine.
    Local(LocalWorkspaceSpec),
    /// Another workspace kind.
    Unknown(Unknown),
}

tagged_union! { WorkspaceSpec, tag = "kind", default = "LocalWorkspace";
    Local(LocalWorkspaceSpec) = "LocalWorkspace",
}

/// A directory on the server's machine (the Python model `LocalWorkspace`, kind
/// `"LocalWorkspace"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalWorkspaceSpec {
    /// Absolute working directory.
    pub working_dir: String,
}

impl WorkspaceSpec {
    /// A local workspace at `working_dir`.
    pub fn local(working_dir: impl Into<String>) -> Self {
        Self::Local(LocalWorkspaceSpec {
            working_dir: working_dir.into(),
        })
    }
}
