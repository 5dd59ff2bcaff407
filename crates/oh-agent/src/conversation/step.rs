//! The run loop and one agent step (spec §1.3, §2).

use std::collections::HashSet;

use oh_protocol::event::{
    ActionEvent, AgentErrorEvent, CondensationRequest, SecurityRisk, SystemPromptEvent,
};
use oh_protocol::{
    Action, ConfirmationPolicy, Content, Event, ExecutionStatus, Message, MessageEvent,
    MessageToolCall, ObservationEvent, Source, TextContent,
};

use super::parse::{self, ParsedCall};
use super::stuck::{self, Verdict};
use super::{Error, Inner, Result, new_base, now_timestamp};
use crate::llm::{CompletionRequest, LlmError, ToolSchema};
use crate::prompt;
use crate::secrets::Secrets;
use crate::tools::{self, SharedTool, ToolError};

/// Text of the corrective message after a reply with neither a tool call nor text.
const EMPTY_REPLY_NUDGE: &str = "Your last response contained neither a tool call nor a message \
    for the user. To keep working, call one of the available tools; to finish, call the \
    `finish` tool with your final message.";

/// Text sent when the provider's content filter refused the request.
const CONTENT_POLICY_NUDGE: &str = "The previous request was refused by the model provider's \
    content policy. Rephrase your response and continue with the task.";

/// The agent loop of one `run()` call.
pub(super) async fn run_loop(inner: &Inner) -> Result<ExecutionStatus> {
    {
        let mut core = inner.lock();
        if matches!(
            core.state.execution_status,
            ExecutionStatus::Idle
                | ExecutionStatus::Paused
                | ExecutionStatus::Error
                | ExecutionStatus::Stuck
        ) {
            core.set_status(ExecutionStatus::Running)?;
        }
    }
    let max_iterations = inner.lock().state.max_iterations.max(1);
    let mut iteration: u64 = 0;
    loop {
        // Messages waiting to be sent get in before the next iteration looks at the status.
        let _gate = inner.step_gate.lock().await;
        {
            let mut core = inner.lock();
            match core.state.execution_status {
                ExecutionStatus::Paused | ExecutionStatus::Stuck | ExecutionStatus::Error => break,
                ExecutionStatus::Finished => break,
                // A message arrived after the agent finished: answer it.
                ExecutionStatus::Idle => core.set_status(ExecutionStatus::Running)?,
                _ => {}
            }
            if inner.stuck_detection {
                match stuck::check(&core.active_branch(), &inner.stuck_thresholds) {
                    Verdict::Fine => {}
                    Verdict::Nudge {
                        error_event_id,
                        text,
                    } => {
                        if core.nudged.insert(error_event_id) {
                            core.emit(Event::Message(environment_message(text)))?;
                        }
                    }
                    Verdict::Stuck(reason) => {
                        tracing::warn!(conversation = %inner.id, reason, "agent is stuck");
                        core.set_status(ExecutionStatus::Stuck)?;
                        break;
                    }
                }
            }
            if core.state.execution_status == ExecutionStatus::WaitingForConfirmation {
                core.set_status(ExecutionStatus::Running)?;
            }
        }

        let outcome = step(inner).await;
        iteration += 1;
        if let Err(failure) = outcome {
            let (code, detail) = match &failure {
                StepFailure::Llm(e) => (e.code().to_owned(), llm_detail(e)),
                StepFailure::Conversation(e) => ("ConversationError".to_owned(), e.to_string()),
            };
            let mut core = inner.lock();
            core.set_status(ExecutionStatus::Error)?;
            core.conversation_error(&code, &detail)?;
            return Err(Error::Run {
                failure: oh_protocol::RunFailure::new(
                    inner.id,
                    ExecutionStatus::Error,
                    Some(code),
                    detail,
                ),
                persistence_dir: inner.conversation_dir.clone(),
            });
        }

        let mut core = inner.lock();
        let status = core.state.execution_status;
        if status == ExecutionStatus::WaitingForConfirmation {
            break;
        }
        if let Some(budget) = inner.max_budget_per_run {
            let spent = core.state.stats.accumulated_cost();
            if spent >= budget && status != ExecutionStatus::Finished {
                core.set_status(ExecutionStatus::Error)?;
                let detail = format!(
                    "Agent reached maximum budget limit (${budget:.2}); spent ${spent:.4}."
                );
                core.conversation_error("MaxBudgetReached", &detail)?;
                break;
            }
        }
        if iteration >= max_iterations {
            if matches!(status, ExecutionStatus::Running | ExecutionStatus::Idle) {
                core.set_status(ExecutionStatus::Error)?;
                let detail = format!("Agent reached maximum iterations limit ({max_iterations}).");
                core.conversation_error("MaxIterationsReached", &detail)?;
            }
            break;
        }
    }
    Ok(inner.lock().state.execution_status)
}

fn llm_detail(error: &LlmError) -> String {
    match error {
        LlmError::Authentication(_) => "API key invalid or expired".to_owned(),
        other => other.to_string(),
    }
}

/// Why a step failed.
pub(super) enum StepFailure {
    Llm(LlmError),
    Conversation(Error),
}

impl From<StepFailure> for Error {
    fn from(failure: StepFailure) -> Self {
        match failure {
            StepFailure::Llm(e) => Error::Llm(e),
            StepFailure::Conversation(e) => e,
        }
    }
}

impl From<Error> for StepFailure {
    fn from(e: Error) -> Self {
        Self::Conversation(e)
    }
}

impl From<super::StoreError> for StepFailure {
    fn from(e: super::StoreError) -> Self {
        Self::Conversation(Error::Store(e))
    }
}

fn environment_message(text: String) -> MessageEvent {
    MessageEvent {
        base: new_base(Source::Environment),
        llm_message: Message::user(text),
        llm_response_id: None,
        activated_skills: Vec::new(),
        extended_content: Vec::new(),
        sender: None,
        critic_result: None,
    }
}

/// Actions with a valid `action` and no result yet: neither an observation, a rejection
/// nor an error for their call.
pub(super) fn unmatched_actions(events: &[Event]) -> Vec<ActionEvent> {
    let mut answered_actions: HashSet<&str> = HashSet::new();
    let mut answered_calls: HashSet<&str> = HashSet::new();
    for event in events {
        match event {
            Event::Observation(o) => {
                answered_actions.insert(&o.action_id);
            }
            Event::UserRejectObservation(o) => {
                answered_actions.insert(&o.action_id);
            }
            Event::AgentError(e) => {
                answered_calls.insert(&e.tool_call_id);
            }
            _ => {}
        }
    }
    events
        .iter()
        .filter_map(|e| match e {
            Event::Action(a)
                if a.action.is_some()
                    && !answered_actions.contains(a.base.id.as_str())
                    && !answered_calls.contains(a.tool_call_id.as_str()) =>
            {
                Some(a.clone())
            }
            _ => None,
        })
        .collect()
}

/// The `SystemPromptEvent` recorded once at the start of a conversation.
pub(super) fn system_prompt_event(
    agent: &oh_protocol::Agent,
    context: Option<&crate::skills::AgentContext>,
    tools: &[SharedTool],
    secrets: &Secrets,
) -> SystemPromptEvent {
    let cli_mode = agent
        .system_prompt_kwargs
        .get("cli_mode")
        .and_then(serde_json::Value::as_bool);
    let options = prompt::PromptOptions {
        cli_mode,
        persona: agent.persona.clone(),
    };
    let text = match &agent.system_prompt {
        Some(custom) if !custom.trim().is_empty() => custom.clone(),
        _ if agent.system_prompt_filename == prompt::PLANNING_PROMPT_FILENAME => {
            let plan_structure = match agent.system_prompt_kwargs.get("plan_structure") {
                Some(serde_json::Value::String(text)) => text.clone(),
                None | Some(serde_json::Value::Null) => String::new(),
                Some(other) => other.to_string(),
            };
            prompt::planning_prompt(&plan_structure, agent.persona.as_deref())
        }
        _ => prompt::static_prompt(&options),
    };
    let now = &now_timestamp()[..16];
    let described = secrets.described();
    let dynamic = match context {
        None => prompt::dynamic_context(&described, now),
        Some(context) => {
            let (repo, listed) = context.partition(&agent.llm.model);
            let repo: Vec<(&str, &str)> = repo
                .iter()
                .map(|s| (s.name.as_str(), s.content.as_str()))
                .collect();
            let listed: Vec<prompt::ListedSkill<'_>> = listed
                .iter()
                .map(|s| prompt::ListedSkill {
                    name: &s.name,
                    description: s.description.as_deref(),
                    content: &s.content,
                })
                .collect();
            let given = match &context.current_datetime {
                None => None,
                Some(Some(given)) => Some(prompt::prompt_datetime(given)),
                Some(None) => Some(now.to_owned()),
            };
            let now = given.as_deref();
            prompt::dynamic_context_with(&prompt::DynamicParts {
                repo_skills: &repo,
                listed_skills: &listed,
                custom_suffix: context.system_message_suffix.as_deref(),
                secrets: &described,
                now,
            })
        }
    };
    SystemPromptEvent {
        base: new_base(Source::Agent),
        system_prompt: TextContent::new(text),
        tools: tools.iter().map(|t| t.definition()).collect(),
        dynamic_context: dynamic.map(TextContent::new),
    }
}

pub(super) fn tool_schemas(tools: &[SharedTool]) -> Vec<ToolSchema> {
    tools.iter().map(|t| t.schema()).collect()
}

/// One agent step.
async fn step(inner: &Inner) -> Result<(), StepFailure> {
    let tools = inner.ensure_ready().await?;

    // 1. Actions left pending (confirmation, crash) run first.
    let pending = unmatched_actions(&inner.lock().active_branch());
    if !pending.is_empty() {
        execute_batch(inner, tools, pending).await?;
        return Ok(());
    }

    // 2. A condensation due (view too long, or requested) takes this step.
    if condense_if_due(inner).await? {
        return Ok(());
    }

    // 3. The LLM call, without holding the lock.
    let (messages, users_before) = {
        let core = inner.lock();
        let render =
            |o: &ObservationEvent| tools::observation_content(o, inner.conversation_dir.as_deref());
        (
            super::view::events_to_messages(&core.active_branch(), &render),
            core.user_messages,
        )
    };
    let schemas = tool_schemas(tools);
    let conversation_id = inner.id.to_string();
    let request = CompletionRequest {
        messages: &messages,
        tools: &schemas,
        conversation_id: Some(&conversation_id),
    };
    let mut interrupts = inner.interrupted.subscribe();
    interrupts.mark_unchanged();
    let result = tokio::select! {
        result = inner.llm.complete(request) => result,
        _ = interrupts.changed() => {
            tracing::info!(conversation = %inner.id, "LLM call abandoned: interrupted");
            return Ok(());
        }
    };
    {
        let mut core = inner.lock();
        core.update_stats(inner.llm.usage_id(), inner.llm.metrics())?;
    }
    let response = match result {
        Ok(response) => response,
        Err(LlmError::ContentPolicy(detail)) => {
            tracing::warn!(%detail, "content policy refusal; asking the model to rephrase");
            let mut core = inner.lock();
            let mut event = environment_message(CONTENT_POLICY_NUDGE.to_owned());
            event.base.source = Source::User;
            core.emit(Event::Message(event))?;
            return Ok(());
        }
        Err(LlmError::ContextWindowExceeded(detail)) if inner.condenser.is_some() => {
            tracing::warn!(%detail, "context window exceeded; requesting a condensation");
            inner
                .lock()
                .emit(Event::CondensationRequest(CondensationRequest {
                    base: new_base(Source::Environment),
                }))?;
            return Ok(());
        }
        Err(e) => return Err(StepFailure::Llm(e)),
    };

    let message = response.message;
    let calls = message.tool_calls.clone().unwrap_or_default();
    if !calls.is_empty() {
        handle_tool_calls(inner, tools, &message, calls, &response.id).await?;
    } else {
        let has_text = message.content.iter().any(|c| match c {
            Content::Text(t) => !t.text.trim().is_empty(),
            _ => false,
        });
        let mut core = inner.lock();
        core.emit(Event::Message(MessageEvent {
            base: new_base(Source::Agent),
            llm_message: message,
            llm_response_id: Some(response.id.clone()),
            activated_skills: Vec::new(),
            extended_content: Vec::new(),
            sender: None,
            critic_result: None,
        }))?;
        if has_text {
            core.set_status(ExecutionStatus::Finished)?;
        } else {
            core.emit(Event::Message(environment_message(
                EMPTY_REPLY_NUDGE.to_owned(),
            )))?;
        }
    }

    // A user message that arrived during the call keeps the loop going.
    let mut core = inner.lock();
    if core.state.execution_status == ExecutionStatus::Finished && core.user_messages > users_before
    {
        core.set_status(ExecutionStatus::Running)?;
    }
    Ok(())
}

/// Condenses the history if the condenser says it is due; true if a `Condensation` was
/// recorded (the step ends there).
pub(super) async fn condense_if_due(inner: &Inner) -> Result<bool, StepFailure> {
    let Some(condenser) = &inner.condenser else {
        return Ok(false);
    };
    let plan = {
        let core = inner.lock();
        let render =
            |o: &ObservationEvent| tools::observation_content(o, inner.conversation_dir.as_deref());
        condenser.plan(&core.active_branch(), &render)?
    };
    let Some(plan) = plan else {
        return Ok(false);
    };
    let conversation_id = inner.id.to_string();
    let result = condenser.summarize(plan, Some(&conversation_id)).await;
    let mut core = inner.lock();
    core.update_stats(condenser.llm().usage_id(), condenser.llm().metrics())?;
    let condensation = result.map_err(StepFailure::Llm)?;
    tracing::info!(
        forgotten = condensation.forgotten_event_ids.len(),
        "history condensed"
    );
    core.emit(Event::Condensation(condensation))?;
    Ok(true)
}

/// Records one ActionEvent per call (plus an error for invalid ones), then either waits for
/// confirmation or executes the valid actions.
async fn handle_tool_calls(
    inner: &Inner,
    tools: &[SharedTool],
    message: &Message,
    mut calls: Vec<MessageToolCall>,
    response_id: &str,
) -> Result<(), StepFailure> {
    // Calls after the first `finish` would never run; leave them out entirely so the
    // history never holds an unanswered call.
    if let Some(at) = calls.iter().position(|c| c.name == "finish") {
        if at + 1 < calls.len() {
            tracing::info!(
                dropped = calls.len() - at - 1,
                "ignoring tool calls after finish"
            );
        }
        calls.truncate(at + 1);
    }
    let thought: Vec<TextContent> = message
        .content
        .iter()
        .filter_map(|c| match c {
            Content::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();

    let mut valid: Vec<ActionEvent> = Vec::new();
    {
        let mut core = inner.lock();
        let analyzer = core.state.security_analyzer.is_some();
        for (index, call) in calls.iter().enumerate() {
            let first = index == 0;
            let mut event = ActionEvent {
                base: new_base(Source::Agent),
                thought: if first { thought.clone() } else { Vec::new() },
                reasoning_content: if first {
                    message.reasoning_content.clone()
                } else {
                    None
                },
                thinking_blocks: if first {
                    message.thinking_blocks.clone()
                } else {
                    Vec::new()
                },
                responses_reasoning_item: if first {
                    message.responses_reasoning_item.clone()
                } else {
                    None
                },
                action: None,
                tool_name: call.name.clone(),
                tool_call_id: call.id.clone(),
                tool_call: call.clone(),
                llm_response_id: response_id.to_owned(),
                security_risk: SecurityRisk::Unknown,
                critic_result: None,
                summary: None,
            };
            let error = match parse::parse_call(call, tools, analyzer) {
                ParsedCall::UnknownTool { tool_name, error } => {
                    event.tool_name = tool_name;
                    Some(error)
                }
                ParsedCall::Invalid {
                    tool_name,
                    error,
                    stored_arguments,
                } => {
                    event.tool_name = tool_name;
                    if let Some(arguments) = stored_arguments {
                        event.tool_call.arguments = arguments;
                    }
                    Some(error)
                }
                ParsedCall::Valid {
                    tool_name,
                    action,
                    arguments,
                    security_risk,
                    summary,
                } => {
                    event.tool_call = MessageToolCall {
                        id: call.id.clone(),
                        responses_item_id: call.responses_item_id.clone(),
                        name: tool_name.clone(),
                        arguments,
                        origin: call.origin,
                    };
                    event.tool_name = tool_name;
                    event.action = Some(action);
                    event.security_risk = security_risk;
                    event.summary = Some(summary);
                    None
                }
            };
            let tool_name = event.tool_name.clone();
            let tool_call_id = event.tool_call_id.clone();
            if error.is_none() {
                valid.push(event.clone());
            }
            core.emit(Event::Action(event))?;
            if let Some(error) = error {
                core.emit(Event::AgentError(AgentErrorEvent {
                    base: new_base(Source::Agent),
                    tool_name,
                    tool_call_id,
                    error,
                    classification: Some(super::classify::agent_action()),
                }))?;
            }
        }
        if needs_confirmation(&core.state.confirmation_policy, &valid) {
            core.set_status(ExecutionStatus::WaitingForConfirmation)?;
            return Ok(());
        }
    }
    execute_batch(inner, tools, valid).await
}

/// Whether this batch must wait for the user (spec §5).
fn needs_confirmation(policy: &ConfirmationPolicy, actions: &[ActionEvent]) -> bool {
    if actions.is_empty() {
        return false;
    }
    if let [only] = actions
        && matches!(only.tool_name.as_str(), "finish" | "think")
    {
        return false;
    }
    match policy {
        ConfirmationPolicy::NeverConfirm(_) => false,
        ConfirmationPolicy::AlwaysConfirm(_) => true,
        ConfirmationPolicy::ConfirmRisky(p) => actions.iter().any(|a| match a.security_risk {
            SecurityRisk::Unknown => p.confirm_unknown,
            risk => risk_rank(risk) >= risk_rank(p.threshold),
        }),
        // A policy this version does not know: be safe and ask.
        _ => true,
    }
}

fn risk_rank(risk: SecurityRisk) -> u8 {
    match risk {
        SecurityRisk::Low => 1,
        SecurityRisk::Medium => 2,
        SecurityRisk::High => 3,
        _ => 0,
    }
}

/// Runs actions in order and records their results; `finish` ends the conversation.
async fn execute_batch(
    inner: &Inner,
    tools: &[SharedTool],
    mut actions: Vec<ActionEvent>,
) -> Result<(), StepFailure> {
    if let Some(at) = actions.iter().position(|a| a.tool_name == "finish") {
        actions.truncate(at + 1);
    }
    let mut finished = false;
    let interrupts = inner.interrupted.subscribe();
    for action_event in &actions {
        let Some(action) = &action_event.action else {
            continue;
        };
        if interrupts.has_changed().unwrap_or(false) {
            inner.lock().emit(Event::AgentError(AgentErrorEvent {
                base: new_base(Source::Agent),
                tool_name: action_event.tool_name.clone(),
                tool_call_id: action_event.tool_call_id.clone(),
                error: super::CANCELLED_BY_INTERRUPT.to_owned(),
                classification: Some(super::classify::internal()),
            }))?;
            continue;
        }
        let tool = tools.iter().find(|t| t.name() == action_event.tool_name);
        let result = match tool {
            Some(tool) => tool.execute(action).await,
            None => Err(ToolError::Invalid(format!(
                "Tool '{}' is not available in this conversation",
                action_event.tool_name
            ))),
        };
        let mut core = inner.lock();
        match result {
            Ok(observation) => {
                // Path rules of the files the action touched, once per conversation; the
                // state's list changes in place, as in the reference.
                let mut extended_content = Vec::new();
                if let Some(context) = inner.context().as_deref()
                    && let Some(path) = touched_path(action, &inner.workspace)
                    && let Some((text, names)) =
                        context.tool_use_suffix(&path, &core.state.activated_path_rules)
                {
                    core.state.activated_path_rules.extend(names);
                    extended_content.push(oh_protocol::TextContent::new(text));
                }
                core.emit(Event::Observation(ObservationEvent {
                    base: new_base(Source::Environment),
                    tool_name: action_event.tool_name.clone(),
                    tool_call_id: action_event.tool_call_id.clone(),
                    observation,
                    action_id: action_event.base.id.clone(),
                    extended_content,
                }))?;
                if matches!(action, Action::Finish(_)) {
                    finished = true;
                }
            }
            Err(error) => {
                let classification = match &error {
                    ToolError::Invalid(_) => super::classify::agent_action(),
                    ToolError::Internal(_) => super::classify::internal(),
                };
                core.emit(Event::AgentError(AgentErrorEvent {
                    base: new_base(Source::Agent),
                    tool_name: action_event.tool_name.clone(),
                    tool_call_id: action_event.tool_call_id.clone(),
                    error: format!("Error executing tool '{}': {error}", action_event.tool_name),
                    classification: Some(classification),
                }))?;
            }
        }
    }
    if finished {
        inner.lock().set_status(ExecutionStatus::Finished)?;
    }
    Ok(())
}

/// The workspace-relative `/` path an action's `path` field names: as given when relative,
/// else below the workspace (also through symlinks); `None` when the action has no path or
/// it is outside the workspace.
fn touched_path(action: &oh_protocol::Action, workspace: &std::path::Path) -> Option<String> {
    let raw = match action {
        oh_protocol::Action::FileEditor(a) => a.path.clone(),
        oh_protocol::Action::Terminal(_)
        | oh_protocol::Action::Finish(_)
        | oh_protocol::Action::Think(_)
        | oh_protocol::Action::TaskTracker(_) => return None,
        other => serde_json::to_value(other)
            .ok()?
            .get("path")?
            .as_str()?
            .to_owned(),
    };
    if raw.is_empty() {
        return None;
    }
    let path = std::path::Path::new(&raw);
    let relative = if path.is_relative() {
        path.to_path_buf()
    } else if let Ok(inside) = path.strip_prefix(workspace) {
        inside.to_path_buf()
    } else {
        let root = std::fs::canonicalize(workspace).ok()?;
        let resolved = match std::fs::canonicalize(path) {
            Ok(resolved) => resolved,
            // A file not created yet: resolve its directory.
            Err(_) => std::fs::canonicalize(path.parent()?)
                .ok()?
                .join(path.file_name()?),
        };
        resolved.strip_prefix(&root).ok()?.to_path_buf()
    };
    Some(
        relative
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/"),
    )
}
