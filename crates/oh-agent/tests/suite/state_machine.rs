//! The execution-status state machine: pause, messages sent mid-run, the iteration cap,
//! stuck detection, confirmation accept and reject, and resuming from disk.

use super::common;

use std::time::Duration;

use oh_protocol::agent::{AlwaysConfirm, ConfirmRisky};
use oh_protocol::event::SecurityRisk;
use oh_protocol::{ConfirmationPolicy, Event, ExecutionStatus, SecurityAnalyzer};
use oh_testkit::{Reply, ScriptedLlm};
use serde_json::json;

fn think(thought: &str) -> Reply {
    Reply::tool("think", json!({"thought": thought}))
}

fn finish(message: &str) -> Reply {
    Reply::tool("finish", json!({"message": message}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_reply_finishes_and_new_message_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::text("Hi there."), Reply::text("Still here.")])
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    assert_eq!(conv.status(), ExecutionStatus::Idle);
    conv.send_text("hello").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    // Running a finished conversation makes no LLM call.
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(llm.requests().len(), 1);
    conv.send_text("again").await.unwrap();
    assert_eq!(conv.status(), ExecutionStatus::Idle);
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(llm.requests().len(), 2);
    assert_eq!(
        common::kinds(&conv.events()),
        [
            "SystemPromptEvent",
            "message:user",
            "message:agent",
            "message:user",
            "message:agent"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_while_idle_is_undone_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::text("done")]).await.unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("hi").await.unwrap();
    conv.pause().unwrap();
    assert_eq!(conv.status(), ExecutionStatus::Paused);
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    assert!(conv.events().iter().any(|e| matches!(e, Event::Pause(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_mid_run_stops_after_the_step_and_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::delay(600, think("step one")),
        think("step two"),
        finish("ok"),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    let runner = {
        let conv = conv.clone();
        tokio::spawn(async move { conv.run().await })
    };
    common::llm_called(&llm, 1).await;
    assert_eq!(conv.status(), ExecutionStatus::Running);
    conv.pause().unwrap();
    assert_eq!(runner.await.unwrap().unwrap(), ExecutionStatus::Paused);
    assert_eq!(
        llm.requests().len(),
        1,
        "the loop stopped after the in-flight step"
    );
    // The step that was in flight completed: its think call has an observation.
    assert!(common::kinds(&conv.events()).contains(&"Observation:think".to_owned()));
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(llm.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_sent_mid_run_is_seen_at_the_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::delay(600, think("working")), finish("done")])
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("first").await.unwrap();
    let runner = {
        let conv = conv.clone();
        tokio::spawn(async move { conv.run().await })
    };
    common::llm_called(&llm, 1).await;
    conv.send_text("also do this").await.unwrap();
    assert_eq!(runner.await.unwrap().unwrap(), ExecutionStatus::Finished);
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    let second = requests[1].body["messages"].as_array().unwrap().clone();
    // The tool result directly follows its call; the new user message comes after it.
    let roles: Vec<&str> = second.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
    assert!(second[4].to_string().contains("also do this"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_arriving_while_finishing_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::delay(600, Reply::text("first answer")),
        Reply::text("second answer"),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("one").await.unwrap();
    let runner = {
        let conv = conv.clone();
        tokio::spawn(async move { conv.run().await })
    };
    common::llm_called(&llm, 1).await;
    conv.send_text("two").await.unwrap();
    assert_eq!(runner.await.unwrap().unwrap(), ExecutionStatus::Finished);
    assert_eq!(
        llm.requests().len(),
        2,
        "the late message got its own LLM call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_concurrent_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::delay(500, Reply::text("ok"))])
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("hi").await.unwrap();
    let runner = {
        let conv = conv.clone();
        tokio::spawn(async move { conv.run().await })
    };
    common::llm_called(&llm, 1).await;
    let second = conv.run().await;
    assert!(
        matches!(
            second,
            Err(oh_agent::conversation::Error::AlreadyRunning { .. })
        ),
        "{second:?}"
    );
    assert_eq!(runner.await.unwrap().unwrap(), ExecutionStatus::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iteration_cap_ends_in_error_with_max_iterations_event() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![think("a"), think("b"), think("c"), think("d")])
        .await
        .unwrap();
    let config = common::config(common::agent(&llm.base_url()), dir.path(), None).max_iterations(2);
    let conv = common::start(config);
    conv.send_text("loop").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Error);
    assert_eq!(llm.requests().len(), 2);
    let error = common::first!(conv.events(), ConversationError).unwrap();
    assert_eq!(error.code, "MaxIterationsReached");
    assert_eq!(error.detail, "Agent reached maximum iterations limit (2).");
    // A new run starts counting again.
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Error);
    assert_eq!(llm.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_identical_steps_are_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start((0..6).map(|_| think("same thought")).collect())
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Stuck);
    assert_eq!(
        llm.requests().len(),
        4,
        "stuck after four identical action/observation pairs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_errors_get_a_nudge_then_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let bad = || {
        Reply::tool(
            "file_editor",
            json!({"command": "view", "path": "relative.txt"}),
        )
    };
    // Unknown parameter -> validation error each time.
    let bad_args = || Reply::tool("think", json!({"thought": "x", "bogus": 1}));
    let _ = bad;
    let llm = ScriptedLlm::start((0..6).map(|_| bad_args()).collect())
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Stuck);
    let events = conv.events();
    let nudges = events
        .iter()
        .filter(
            |e| matches!(e, Event::Message(m) if m.base.source == oh_protocol::Source::Environment),
        )
        .count();
    assert_eq!(nudges, 1, "one nudge after three identical failures");
    assert_eq!(llm.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_confirm_then_accept_runs_the_action() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "echo approved > out.txt"})),
        finish("done"),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.set_confirmation_policy(ConfirmationPolicy::AlwaysConfirm(AlwaysConfirm {}))
        .unwrap();
    conv.send_text("write a file").await.unwrap();
    assert_eq!(
        conv.run().await.unwrap(),
        ExecutionStatus::WaitingForConfirmation
    );
    assert!(
        !dir.path().join("out.txt").exists(),
        "nothing ran before approval"
    );
    // Pause keeps the waiting status.
    conv.pause().unwrap();
    assert_eq!(conv.status(), ExecutionStatus::WaitingForConfirmation);
    // Approve = run again.
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "approved\n"
    );
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_confirm_then_reject_records_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool("terminal", json!({"command": "rm -rf important"})),
        Reply::text("Understood, I will not delete it."),
    ])
    .await
    .unwrap();
    std::fs::create_dir(dir.path().join("important")).unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.set_confirmation_policy(ConfirmationPolicy::AlwaysConfirm(AlwaysConfirm {}))
        .unwrap();
    conv.send_text("clean up").await.unwrap();
    assert_eq!(
        conv.run().await.unwrap(),
        ExecutionStatus::WaitingForConfirmation
    );
    conv.reject_pending_actions("Do not delete that.").unwrap();
    assert_eq!(conv.status(), ExecutionStatus::Idle);
    assert!(dir.path().join("important").exists());
    let rejection = common::first!(conv.events(), UserRejectObservation).unwrap();
    assert_eq!(rejection.rejection_reason, "Do not delete that.");
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let second = llm.requests()[1].body.to_string();
    assert!(
        second.contains("Action rejected: Do not delete that."),
        "{second}"
    );
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finish_alone_is_never_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![finish("bye")]).await.unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.set_confirmation_policy(ConfirmationPolicy::AlwaysConfirm(AlwaysConfirm {}))
        .unwrap();
    conv.send_text("stop").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_risky_uses_the_models_risk_with_an_analyzer() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "terminal",
            json!({"command": "echo low", "security_risk": "LOW"}),
        ),
        Reply::tool(
            "terminal",
            json!({"command": "echo high", "security_risk": "HIGH"}),
        ),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    let policy = ConfirmRisky {
        threshold: SecurityRisk::High,
        confirm_unknown: true,
    };
    conv.set_confirmation_policy(ConfirmationPolicy::ConfirmRisky(policy))
        .unwrap();
    let analyzer = SecurityAnalyzer {
        kind: "LLMSecurityAnalyzer".into(),
        settings: serde_json::Map::new(),
    };
    conv.set_security_analyzer(Some(analyzer)).unwrap();
    conv.send_text("go").await.unwrap();
    assert_eq!(
        conv.run().await.unwrap(),
        ExecutionStatus::WaitingForConfirmation
    );
    let actions: Vec<SecurityRisk> = conv
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Action(a) => Some(a.security_risk),
            _ => None,
        })
        .collect();
    assert_eq!(
        actions,
        [SecurityRisk::Low, SecurityRisk::High],
        "LOW ran, HIGH waits"
    );
    assert_eq!(
        common::kinds(&conv.events())
            .iter()
            .filter(|k| *k == "Observation:terminal")
            .count(),
        1
    );
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_analyzer_risk_is_unknown_and_confirm_unknown_applies() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::tool(
        "terminal",
        json!({"command": "echo x", "security_risk": "LOW"}),
    )])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.set_confirmation_policy(ConfirmationPolicy::ConfirmRisky(ConfirmRisky::default()))
        .unwrap();
    conv.send_text("go").await.unwrap();
    assert_eq!(
        conv.run().await.unwrap(),
        ExecutionStatus::WaitingForConfirmation
    );
    let risk = conv.events().iter().find_map(|e| match e {
        Event::Action(a) => Some(a.security_risk),
        _ => None,
    });
    assert_eq!(risk, Some(SecurityRisk::Unknown));
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persisted_conversation_reloads_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("ws");
    let store = dir.path().join("conversations");
    let llm = ScriptedLlm::start(vec![
        think("first"),
        Reply::text("first done"),
        Reply::text("second done"),
    ])
    .await
    .unwrap();
    let config = common::config(common::agent(&llm.base_url()), &workspace, Some(&store));
    let conv = common::start(config.clone());
    let id = conv.id();
    conv.send_text("one").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let before = conv.events();
    conv.close().await;
    drop(conv);

    let hex = id.simple().to_string();
    assert!(store.join(&hex).join("base_state.json").is_file());
    let files = std::fs::read_dir(store.join(&hex).join("events"))
        .unwrap()
        .count();
    assert_eq!(files, before.len());

    let resumed = common::start(config.id(id));
    assert_eq!(resumed.events(), before, "every event reloads as it was");
    assert_eq!(resumed.status(), ExecutionStatus::Finished);
    resumed.send_text("two").await.unwrap();
    assert_eq!(resumed.run().await.unwrap(), ExecutionStatus::Finished);
    assert_eq!(
        common::kinds(&resumed.events())
            .iter()
            .filter(|k| *k == "SystemPromptEvent")
            .count(),
        1,
        "the system prompt is not recorded twice"
    );
    let last = llm.requests().last().unwrap().body.to_string();
    assert!(last.contains("first done") && last.contains("two"));
    resumed.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_abandons_the_llm_call() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![Reply::delay(3000, think("too late")), finish("done")])
        .await
        .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("go").await.unwrap();
    let runner = {
        let conv = conv.clone();
        tokio::spawn(async move { conv.run().await })
    };
    common::llm_called(&llm, 1).await;
    let started = std::time::Instant::now();
    conv.interrupt().unwrap();
    assert_eq!(runner.await.unwrap().unwrap(), ExecutionStatus::Paused);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "did not wait for the LLM"
    );
    let kinds = common::kinds(&conv.events());
    assert_eq!(
        kinds,
        ["SystemPromptEvent", "message:user", "InterruptEvent"]
    );
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_stops_a_running_command() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![
        Reply::tool(
            "terminal",
            // One foreground process from before the marker exists until the interrupt.
            json!({"command": "sh -c 'touch started && exec sleep 30'", "timeout": 60}),
        ),
        finish("stopped"),
    ])
    .await
    .unwrap();
    let conv = common::start(common::config(
        common::agent(&llm.base_url()),
        dir.path(),
        None,
    ));
    conv.send_text("wait").await.unwrap();
    let runner = {
        let conv = conv.clone();
        tokio::spawn(async move { conv.run().await })
    };
    common::wait_for("the command to start", || {
        dir.path().join("started").exists()
    })
    .await;
    let started = std::time::Instant::now();
    conv.interrupt().unwrap();
    assert_eq!(runner.await.unwrap().unwrap(), ExecutionStatus::Paused);
    assert!(started.elapsed() < Duration::from_secs(10));
    let exit = conv.events().iter().find_map(|e| match e {
        Event::Observation(o) => match &o.observation {
            oh_protocol::Observation::Terminal(t) => t.exit_code,
            _ => None,
        },
        _ => None,
    });
    assert_eq!(exit, Some(130), "the command got Ctrl-C");
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    conv.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_mode_records_state_updates() {
    let dir = tempfile::tempdir().unwrap();
    let llm = ScriptedLlm::start(vec![finish("ok")]).await.unwrap();
    let config =
        common::config(common::agent(&llm.base_url()), dir.path(), None).emit_state_updates(true);
    let conv = common::start(config);
    conv.send_text("go").await.unwrap();
    assert_eq!(conv.run().await.unwrap(), ExecutionStatus::Finished);
    let updates: Vec<(String, serde_json::Value)> = conv
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::ConversationStateUpdate(u) => Some((u.key.clone(), u.value.clone())),
            _ => None,
        })
        .collect();
    let statuses: Vec<&serde_json::Value> = updates
        .iter()
        .filter(|(k, _)| k == "execution_status")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(statuses, [&json!("running"), &json!("finished")]);
    assert!(
        updates
            .iter()
            .any(|(k, v)| k == "last_user_message_id" && v.is_string())
    );
    let stats = updates
        .iter()
        .find(|(k, _)| k == "stats")
        .map(|(_, v)| v)
        .unwrap();
    assert!(
        stats["usage_to_metrics"]["agent"]["accumulated_token_usage"]["prompt_tokens"].is_u64()
    );
    // The snapshot form of the reference: no per-call lists, `max_budget_per_task` null.
    assert!(stats["usage_to_metrics"]["agent"].get("costs").is_none());
    assert!(stats["usage_to_metrics"]["agent"]["max_budget_per_task"].is_null());
    // State updates do not move the conversation's HEAD.
    let state = conv.state();
    let last_other = conv
        .events()
        .iter()
        .rev()
        .find(|e| !matches!(e, Event::ConversationStateUpdate(_)))
        .and_then(|e| e.id().map(str::to_owned));
    assert_eq!(state.leaf_event_id, last_other);
}
