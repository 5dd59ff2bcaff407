//! The agent of a conversation created from `agent_settings` or from a stored agent profile
//! (`agent_profile_id`), built as the reference builds it: the settings' LLM, the standard
//! exec tools when none are listed, `finish` and `think` as built-ins, and the summarizing
//! condenser on a copy of the LLM (usage id `condenser`).
//!
//! Differences from the reference, all refused with a clear 422 rather than ignored: ACP
//! agents, the model-routing tool and `switch_llm` (this server has neither), so the default
//! tool set has no `switch_llm`.

use oh_protocol::Agent;
use serde_json::{Map, Value, json};

use crate::error::{ApiError, ApiResult};
use crate::settings_store::{SettingsStore, conform, deep_merge, default_agent_settings};

/// The standard exec tools of an agent whose settings list none.
const DEFAULT_EXEC_TOOLS: &[&str] = &["terminal", "file_editor", "task_tracker"];

/// The built-ins every agent gets unless its tools say otherwise.
const BUILT_INS: &[&str] = &["FinishTool", "ThinkTool"];

/// A built-in's class name, for a spec naming it by tool or class name.
fn builtin_class(name: &str) -> Option<&'static str> {
    Some(match name {
        "finish" | "FinishTool" => "FinishTool",
        "think" | "ThinkTool" => "ThinkTool",
        "switch_llm" | "SwitchLLMTool" => "SwitchLLMTool",
        "invoke_skill" | "InvokeSkillTool" => "InvokeSkillTool",
        _ => return None,
    })
}

/// An invalid `agent_settings`, as the reference reports a failed validator of the request.
fn invalid(reason: impl std::fmt::Display) -> ApiError {
    ApiError::validation(
        &["body"],
        "value_error",
        format!("Value error, Invalid agent_settings: {reason}"),
        Value::Null,
    )
}

fn number(settings: &Value, pointer: &str) -> Option<f64> {
    settings.pointer(pointer).and_then(Value::as_f64)
}

/// A bound: where the number is, whether a value is allowed, the rule in words.
type Bound = (&'static str, fn(f64) -> bool, &'static str);

/// Checks the numeric bounds the reference's settings model enforces.
fn check_bounds(settings: &Value) -> ApiResult<()> {
    let rules: &[Bound] = &[
        ("/condenser/max_size", |v| v >= 20.0, "at least 20"),
        ("/condenser/keep_first", |v| v >= 0.0, "at least 0"),
        ("/condenser/max_tokens", |v| v > 0.0, "greater than 0"),
        (
            "/condenser/minimum_progress",
            |v| v > 0.0 && v < 1.0,
            "between 0 and 1 (exclusive)",
        ),
        (
            "/condenser/hard_context_reset_max_retries",
            |v| v > 0.0,
            "greater than 0",
        ),
        (
            "/condenser/hard_context_reset_context_scaling",
            |v| v > 0.0 && v < 1.0,
            "between 0 and 1 (exclusive)",
        ),
        ("/tool_concurrency_limit", |v| v >= 1.0, "at least 1"),
    ];
    for (pointer, ok, rule) in rules {
        if let Some(value) = number(settings, pointer)
            && !ok(value)
        {
            return Err(invalid(format!(
                "{} must be {rule}, got {value}",
                pointer.trim_start_matches('/').replace('/', ".")
            )));
        }
    }
    if let Some(persona) = settings.get("persona").and_then(Value::as_str)
        && (persona.is_empty() || persona.chars().count() > 65536)
    {
        return Err(invalid("persona must have 1 to 65536 characters"));
    }
    Ok(())
}

/// Tool specs and built-ins from the settings' `tools` (`null`: the standard set).
fn resolve_tools(tools: &Value) -> ApiResult<(Vec<Value>, Vec<String>)> {
    let mut include: Vec<String> = BUILT_INS.iter().map(|s| (*s).to_owned()).collect();
    let specs: Vec<Value> = match tools {
        Value::Null => {
            return Ok((
                DEFAULT_EXEC_TOOLS
                    .iter()
                    .map(|name| json!({"name": name, "params": {}}))
                    .collect(),
                include,
            ));
        }
        Value::Array(items) => items.clone(),
        _ => return Err(invalid("tools must be a list or null")),
    };
    // Specs naming the same tool collapse into the first one with parameters.
    let mut merged: Vec<(String, Map<String, Value>)> = Vec::new();
    for spec in specs {
        let Some(name) = spec.get("name").and_then(Value::as_str) else {
            return Err(invalid("every tool needs a name"));
        };
        let params = match spec.get("params") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(params)) => params.clone(),
            Some(_) => {
                return Err(invalid(format!(
                    "the params of tool {name:?} must be an object"
                )));
            }
        };
        let canonical = builtin_class(name).unwrap_or(name).to_owned();
        match merged.iter_mut().find(|(n, _)| *n == canonical) {
            Some((_, kept)) if kept.is_empty() && !params.is_empty() => *kept = params,
            Some(_) => {}
            None => merged.push((canonical, params)),
        }
    }
    let mut out = Vec::new();
    for (name, params) in merged {
        match builtin_class(&name) {
            None => out.push(json!({"name": name, "params": params})),
            Some(class) if !params.is_empty() => {
                out.push(json!({"name": class, "params": params}));
                include.retain(|n| n != class);
            }
            Some(class) => {
                if !include.iter().any(|n| n == class) {
                    include.push(class.to_owned());
                }
            }
        }
    }
    Ok((out, include))
}

/// The condenser of the settings, on a copy of the agent's LLM.
fn condenser(settings: &Value, given: &Value, llm: &Value) -> Option<Value> {
    let condenser = settings.get("condenser")?;
    if condenser.get("enabled") == Some(&Value::Bool(false)) {
        return None;
    }
    match condenser.get("condenser_kind").and_then(Value::as_str) {
        Some("noop") => Some(json!({"kind": "NoOpCondenser"})),
        _ => {
            let mut llm = llm.clone();
            llm["usage_id"] = json!("condenser");
            // Without an explicit limit the condenser inherits the LLM's input window.
            let max_tokens = match given.pointer("/condenser/max_tokens") {
                Some(v) => v.clone(),
                None => llm.get("max_input_tokens").cloned().unwrap_or(Value::Null),
            };
            let field = |key: &str| condenser.get(key).cloned().unwrap_or(Value::Null);
            Some(json!({
                "kind": "LLMSummarizingCondenser",
                "llm": llm,
                "max_size": field("max_size"),
                "max_tokens": max_tokens,
                "keep_first": field("keep_first"),
                "minimum_progress": field("minimum_progress"),
                "hard_context_reset_max_retries": field("hard_context_reset_max_retries"),
                "hard_context_reset_context_scaling": field("hard_context_reset_context_scaling"),
            }))
        }
    }
}

/// The agent `agent_settings` describes (a partial document: the rest is the defaults).
pub(crate) fn agent_from_settings(given: Map<String, Value>) -> ApiResult<Agent> {
    let mut given = Value::Object(given);
    match given.get("agent_kind") {
        None | Some(Value::Null) => {}
        Some(Value::String(kind)) if kind == "openhands" || kind == "llm" => {
            given["agent_kind"] = json!("openhands");
        }
        Some(Value::String(kind)) if kind == "acp" => {
            return Err(invalid(
                "ACP agents (agent_kind 'acp') are not supported by this server",
            ));
        }
        Some(other) => {
            return Err(invalid(format!(
                "agent_kind {other} is not one of 'openhands', 'llm', 'acp'"
            )));
        }
    }
    let default = default_agent_settings();
    let mut merged = default.clone();
    deep_merge(&mut merged, given.clone());
    let settings =
        conform(merged, &default).ok_or_else(|| invalid("a field has the wrong type"))?;
    check_bounds(&settings)?;
    if settings.get("enable_classify_and_switch_llm_tool") == Some(&Value::Bool(true)) {
        return Err(invalid(
            "the model-routing tool (enable_classify_and_switch_llm_tool) is not supported by \
             this server",
        ));
    }
    let llm = settings.get("llm").cloned().unwrap_or(Value::Null);
    let (tools, include) = resolve_tools(settings.get("tools").unwrap_or(&Value::Null))?;
    let mut agent_context = settings.get("agent_context").cloned().unwrap_or(json!({}));
    if agent_context
        .get("current_datetime")
        .is_none_or(Value::is_null)
    {
        agent_context["current_datetime"] = json!(crate::service::utc_now());
    }
    let document = json!({
        "llm": llm,
        "tools": tools,
        "mcp_config": settings.get("mcp_config").cloned().unwrap_or(json!({})),
        "include_default_tools": include,
        "agent_context": agent_context,
        "condenser": condenser(&settings, &given, &llm),
        "tool_concurrency_limit": settings.get("tool_concurrency_limit").cloned().unwrap_or(json!(1)),
        "persona": settings.get("persona").cloned().unwrap_or(Value::Null),
    });
    serde_json::from_value(document).map_err(invalid)
}

/// A conversation's agent from a stored agent profile, and what the conversation records of
/// the launch (`launched_agent_profile`).
pub(crate) struct ProfileLaunch {
    pub(crate) agent: Agent,
    pub(crate) launched: Value,
    /// The secrets the profile lets through (`None`: all).
    pub(crate) secret_refs: Option<Vec<String>>,
}

/// The 422 of a profile whose references do not resolve.
fn unresolved(llm_ref: Option<&str>, mcp_refs: &[String]) -> ApiError {
    let message = match llm_ref {
        Some(name) => format!("LLM profile '{name}' not found"),
        None => format!("MCP servers not found: {}", mcp_refs.join(", ")),
    };
    ApiError::with_body(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        oh_protocol::ErrorBody::new(oh_protocol::ErrorDetail::Other(json!({
            "code": "unresolved_profile_references",
            "message": message,
            "dangling_llm_profile_ref": llm_ref,
            "dangling_mcp_server_refs": mcp_refs,
            "dangling_meta_profile_ref": null,
            "dangling_meta_profile_llm_refs": [],
        }))),
    )
}

/// Resolves the agent profile `id` against the stores (blocking: reads files).
pub(crate) fn agent_from_profile(
    store: &SettingsStore,
    id: uuid::Uuid,
) -> ApiResult<ProfileLaunch> {
    let store_error = crate::settings::store_error;
    let not_found = || {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            format!("Agent profile with id '{id}' not found"),
        )
    };
    let name = store
        .agent_profile_name_for_id(&id.to_string())
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let profile = store
        .load_agent_profile(&name)
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    if profile.get("agent_kind").and_then(Value::as_str) == Some("acp") {
        return Err(ApiError::unprocessable(
            "ACP agent profiles are not supported by this server",
        ));
    }
    let llm_ref = profile
        .get("llm_profile_ref")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let llm = store.load_profile(&llm_ref).map_err(store_error)?;
    let settings = store.load_settings().map_err(store_error)?;
    let all_mcp = settings
        .agent_settings
        .get("mcp_config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let (mcp_config, dangling) = match profile.get("mcp_server_refs") {
        Some(Value::Array(refs)) => {
            let names: Vec<String> = refs
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let dangling: Vec<String> = names
                .iter()
                .filter(|n| !all_mcp.contains_key(*n))
                .cloned()
                .collect();
            let kept: Map<String, Value> = all_mcp
                .into_iter()
                .filter(|(k, _)| names.contains(k))
                .collect();
            (kept, dangling)
        }
        _ => (all_mcp, Vec::new()),
    };
    let Some(llm) = llm else {
        return Err(unresolved(Some(&llm_ref), &dangling));
    };
    if !dangling.is_empty() {
        return Err(unresolved(None, &dangling));
    }
    if profile.get("enable_classify_and_switch_llm_tool") == Some(&Value::Bool(true)) {
        return Err(ApiError::unprocessable(
            "the model-routing tool of this agent profile is not supported by this server",
        ));
    }
    let field = |key: &str| profile.get(key).cloned().unwrap_or(Value::Null);
    let mut settings_doc = Map::new();
    settings_doc.insert("llm".into(), llm);
    settings_doc.insert("tools".into(), field("tools"));
    settings_doc.insert("mcp_config".into(), Value::Object(mcp_config));
    if !field("persona").is_null() {
        settings_doc.insert("persona".into(), field("persona"));
    }
    if profile.get("condenser").is_some_and(Value::is_object) {
        settings_doc.insert("condenser".into(), field("condenser"));
    }
    if !field("tool_concurrency_limit").is_null() {
        settings_doc.insert(
            "tool_concurrency_limit".into(),
            field("tool_concurrency_limit"),
        );
    }
    settings_doc.insert(
        "agent_context".into(),
        json!({
            "system_message_suffix": field("system_message_suffix"),
            "disabled_skills": profile.get("disabled_skills").cloned().unwrap_or(json!([])),
            "load_project_skills": true,
        }),
    );
    let agent = agent_from_settings(settings_doc)?;
    let secret_refs = match profile.get("secret_refs") {
        Some(Value::Array(refs)) => Some(
            refs.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        _ => None,
    };
    Ok(ProfileLaunch {
        agent,
        launched: json!({
            "agent_profile_id": field("id"),
            "revision": field("revision"),
            "secret_refs": field("secret_refs"),
            "llm_profile_ref": null,
        }),
        secret_refs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn defaults_give_the_exec_tools_and_the_summarizing_condenser() {
        let agent = agent_from_settings(settings(json!({
            "llm": {"model": "openai/m", "api_key": "k", "base_url": "http://h/v1"}
        })))
        .expect("agent");
        let names: Vec<&str> = agent.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["terminal", "file_editor", "task_tracker"]);
        assert_eq!(agent.include_default_tools, ["FinishTool", "ThinkTool"]);
        let condenser = agent.condenser.expect("condenser");
        assert_eq!(condenser["kind"], "LLMSummarizingCondenser");
        assert_eq!(condenser["max_size"], 240);
        assert_eq!(condenser["keep_first"], 2);
        assert_eq!(condenser["llm"]["usage_id"], "condenser");
        assert_eq!(agent.llm.model, "openai/m");
    }

    #[test]
    fn listed_tools_and_a_disabled_condenser() {
        let agent = agent_from_settings(settings(json!({
            "llm": {"model": "openai/m"},
            "tools": [{"name": "terminal"}, {"name": "finish"}, {"name": "terminal"}],
            "condenser": {"enabled": false},
        })))
        .expect("agent");
        let names: Vec<&str> = agent.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["terminal"]);
        assert_eq!(agent.include_default_tools, ["FinishTool", "ThinkTool"]);
        assert!(agent.condenser.is_none());
    }

    #[test]
    fn invalid_settings_are_422() {
        for bad in [
            json!({"condenser": {"max_size": 5}}),
            json!({"agent_kind": "bogus"}),
            json!({"agent_kind": "acp"}),
            json!({"tools": 5}),
            json!({"tool_concurrency_limit": 0}),
            json!({"llm": {"model": 5}}),
            json!({"enable_classify_and_switch_llm_tool": true}),
        ] {
            let err = agent_from_settings(settings(bad.clone())).expect_err("invalid");
            assert_eq!(err.status(), 422, "{bad}");
        }
    }
}
