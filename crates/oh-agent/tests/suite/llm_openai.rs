//! The Chat Completions client against a scripted LLM over real HTTP.

use super::llm_support;

use std::time::{Duration, Instant};

use llm_support::*;
use oh_agent::llm::{CompletionRequest, LlmClient, LlmError, WireFormat};
use oh_protocol::agent::ApiMode;
use oh_protocol::message::ToolCallOrigin;
use oh_protocol::{Llm, Message, Role};
use oh_testkit::{COMPLETION_TOKENS, PROMPT_TOKENS, Reply, ScriptedCall};
use pretty_assertions::assert_eq;
use serde_json::json;

const MODEL: &str = "openai/fixture-model";

#[tokio::test]
async fn text_reply() {
    let llm = server(vec![Reply::text("Hello there")]).await;
    let c = client(config(MODEL, &llm.base_url()));
    assert_eq!(c.wire_format(), WireFormat::ChatCompletions);
    assert_eq!(c.endpoint(), format!("{}/chat/completions", llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(r.id, "chatcmpl-scripted-1");
    assert_eq!(r.message.role, Role::Assistant);
    assert_eq!(text_of(&r.message), "Hello there");
    assert!(r.message.tool_calls.is_none());
    let usage = r.metrics.accumulated_token_usage.unwrap();
    assert_eq!(usage.prompt_tokens, PROMPT_TOKENS);
    assert_eq!(usage.completion_tokens, COMPLETION_TOKENS);
    assert_eq!(llm.requests().len(), 1);
    assert_eq!(llm.requests()[0].path, "/v1/chat/completions");
}

#[tokio::test]
async fn tool_call_arguments_are_preserved_byte_for_byte() {
    let odd = "{\"command\":  \"ls -la\",\n \"z\": 1, \"a\": \"\\u00e9\"}";
    let invalid = "{\"command\": \"echo";
    let llm = server(vec![Reply::ToolCalls {
        text: Some("Let me look.".into()),
        calls: vec![
            ScriptedCall::new("terminal", odd),
            ScriptedCall::new("terminal", invalid).with_id("call_fixed"),
        ],
    }])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let tools = [simple_tool("terminal")];
    let r = c.complete(request(&messages, &tools)).await.unwrap();
    assert_eq!(text_of(&r.message), "Let me look.");
    let calls = r.message.tool_calls.unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].id, "call_1");
    assert_eq!(calls[0].name, "terminal");
    assert_eq!(calls[0].arguments, odd);
    assert_eq!(calls[0].origin, ToolCallOrigin::Completion);
    assert_eq!(calls[1].id, "call_fixed");
    assert_eq!(calls[1].arguments, invalid);
}

/// The request body equals what the Python reference (with LiteLLM) sent for the same
/// conversation, captured in `fixtures/llm/`.
async fn check_against_capture(name: &str) {
    let fx = fixture(name);
    let expected = &fx["body"];
    let llm = server(vec![Reply::text("ok")]).await;
    let mut cfg = config(fx["model"].as_str().unwrap(), &llm.base_url());
    cfg.api_key = Some(fx["api_key"].as_str().unwrap().into());
    cfg.temperature = fx["config"]["temperature"].as_f64();
    cfg.top_p = fx["config"]["top_p"].as_f64();
    let c = client(cfg);
    let messages = reference_conversation(fx["valid_second_arguments"].as_bool().unwrap());
    let tools = fixture_tools(expected);
    let req = CompletionRequest {
        messages: &messages,
        tools: &tools,
        conversation_id: fx["conversation_id"].as_str(),
    };
    c.complete(req).await.unwrap();
    let recorded = &llm.requests()[0];
    assert_eq!(recorded.path, fx["path"].as_str().unwrap());
    assert_eq!(&recorded.body, expected, "request body of {name}");
    for (header, value) in fx["headers"].as_object().unwrap() {
        assert_eq!(
            recorded.header(header),
            value.as_str(),
            "header {header} of {name}"
        );
    }
    let captured: Vec<&str> = fx["headers"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for absent in ["anthropic-beta", "x-api-key", "anthropic-version"] {
        if !captured.contains(&absent) {
            assert_eq!(recorded.header(absent), None, "{absent} of {name}");
        }
    }
    assert_eq!(c.request_body(req), *expected);
}

#[tokio::test]
async fn request_matches_reference_openai_unknown_model() {
    // reasoning_effort sent, temperature dropped, prompt_cache_key sent, no image (no
    // vision), thinking blocks echoed, empty assistant content "".
    check_against_capture("openai_fixture_model").await;
}

#[tokio::test]
async fn request_matches_reference_litellm_proxy_unknown_model() {
    // Sampling parameters kept, no reasoning_effort, no prompt_cache_key.
    check_against_capture("litellm_proxy_fixture_model").await;
}

#[tokio::test]
async fn request_matches_reference_litellm_proxy_claude() {
    // Cache markers (system static block, last user block), manual thinking with the
    // interleaved-thinking beta header, max_tokens, image kept.
    check_against_capture("litellm_proxy_claude_sonnet_4_5").await;
}

#[tokio::test]
async fn request_shape_basics() {
    let llm = server(vec![Reply::text("a"), Reply::text("b")]).await;
    let mut cfg = config("litellm_proxy/my-model", &llm.base_url());
    cfg.api_key = None;
    cfg.extra_headers = Some([("X-Custom".to_owned(), "yes".to_owned())].into());
    cfg.max_output_tokens = Some(1234);
    let c = client(cfg);
    let messages = vec![
        msg(Role::System, vec![text("sys")]),
        Message::user("do it"),
        llm_support::msg(Role::Assistant, vec![text("Running.")]),
    ];
    let mut messages = messages;
    messages[2].tool_calls = Some(vec![tool_call(
        "call_9",
        "terminal",
        "{\"command\":\"ls\"}",
    )]);
    messages.push(tool_result("call_9", "terminal", &"x".repeat(60_000)));
    c.complete(request(&messages, &[])).await.unwrap();
    let tools = [simple_tool("terminal")];
    c.complete(request(&messages, &tools)).await.unwrap();

    let reqs = llm.requests();
    let first = &reqs[0].body;
    assert_eq!(first["model"], "my-model");
    assert!(first.get("tools").is_none(), "no tools key without tools");
    assert!(first.get("tool_choice").is_none());
    assert_eq!(first["max_completion_tokens"], 1234);
    assert_eq!(reqs[0].header("authorization"), None);
    assert_eq!(reqs[0].header("x-custom"), Some("yes"));
    assert_eq!(reqs[0].header("x-litellm-session-id"), None);
    let roles: Vec<&str> = first["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool"]);
    assert_eq!(
        first["messages"][2],
        json!({
            "role": "assistant",
            "content": [{"type": "text", "text": "Running."}],
            "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": "terminal", "arguments": "{\"command\":\"ls\"}"}}],
        })
    );
    let tool_msg = &first["messages"][3];
    assert_eq!(tool_msg["tool_call_id"], "call_9");
    assert_eq!(tool_msg["name"], "terminal");
    let tool_text = tool_msg["content"][0]["text"].as_str().unwrap();
    assert_eq!(tool_text.chars().count(), 50_000);
    assert!(tool_text.contains("<response clipped>"));

    let second = &reqs[1].body;
    assert_eq!(
        second["tools"],
        json!([{"type": "function", "function": {
            "name": "terminal",
            "description": "The terminal tool.",
            "parameters": tools[0].parameters,
        }}])
    );
    assert!(second.get("tool_choice").is_none());
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let llm = server(vec![
        Reply::error(500, "boom"),
        Reply::error(502, "bad gateway"),
        Reply::text("finally"),
    ])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(text_of(&r.message), "finally");
    assert_eq!(llm.requests().len(), 3);
    // Failed attempts record no metrics.
    assert_eq!(c.metrics().response_latencies.len(), 1);
}

#[tokio::test]
async fn rate_limits_are_retried_then_reported() {
    let llm = server(vec![Reply::error(429, "slow down"), Reply::text("ok")]).await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(llm.requests().len(), 2);

    let llm = server(vec![
        Reply::error(429, "slow down"),
        Reply::error(429, "slow down"),
        Reply::error(429, "slow down"),
    ])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::RateLimit(m) if m.contains("slow down")),
        "{err:?}"
    );
    assert_eq!(err.code(), "LLMRateLimitError");
    assert_eq!(llm.requests().len(), 3);
}

#[tokio::test]
async fn exhausted_quota_is_not_retried() {
    let body = json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}});
    let llm = server(vec![Reply::status(429, body), Reply::text("never")]).await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(matches!(err, LlmError::RateLimit(_)), "{err:?}");
    assert_eq!(llm.requests().len(), 1);
}

#[tokio::test]
async fn unauthorized_is_not_retried() {
    let llm = server(vec![
        Reply::error(401, "Incorrect API key provided"),
        Reply::text("never"),
    ])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::Authentication(m) if m.contains("Incorrect API key")),
        "{err:?}"
    );
    assert_eq!(err.code(), "LLMAuthenticationError");
    assert_eq!(llm.requests().len(), 1);
    assert_eq!(llm.remaining(), 1);
}

#[tokio::test]
async fn context_window_errors_are_typed() {
    let openai_style = json!({"error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.",
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}});
    let llm = server(vec![
        Reply::status(400, openai_style),
        Reply::error(400, "Context length exceeded for this request"),
    ])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    for _ in 0..2 {
        let err = c.complete(request(&messages, &[])).await.unwrap_err();
        assert!(matches!(err, LlmError::ContextWindowExceeded(_)), "{err:?}");
        assert_eq!(err.code(), "LLMContextWindowExceedError");
    }
    assert_eq!(llm.requests().len(), 2, "no retries");
}

#[tokio::test]
async fn other_bad_requests_are_typed_with_the_provider_message() {
    let llm = server(vec![Reply::error(
        400,
        "Unrecognized request argument: foo",
    )])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    match &err {
        LlmError::BadRequest(m) => {
            assert!(m.contains("Unrecognized request argument: foo"), "{m}");
            assert!(m.contains("400"), "{m}");
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
    assert_eq!(err.code(), "LLMBadRequestError");
    assert_eq!(llm.requests().len(), 1);
}

#[tokio::test]
async fn content_filter_is_typed() {
    let body = json!({"error": {"message": "Your request was rejected", "type": "invalid_request_error", "code": "content_policy_violation"}});
    let llm = server(vec![Reply::status(400, body)]).await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(matches!(err, LlmError::ContentPolicy(_)), "{err:?}");
}

#[tokio::test]
async fn connection_refused_is_service_unavailable_after_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut cfg = config(MODEL, &format!("http://127.0.0.1:{port}/v1"));
    cfg.num_retries = 2;
    // 10 ms, then 20 ms between attempts.
    let c = client(cfg).with_retry_waits(Duration::from_millis(10), Duration::from_millis(20));
    let messages = hello();
    let started = Instant::now();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::ServiceUnavailable(m) if m.contains("127.0.0.1")),
        "{err:?}"
    );
    assert_eq!(err.code(), "LLMServiceUnavailableError");
    assert!(started.elapsed() >= Duration::from_millis(10));
}

#[tokio::test]
async fn timeouts_are_retried_then_reported() {
    let llm = server(vec![
        Reply::delay(2_500, Reply::text("too late")),
        Reply::text("in time"),
        Reply::delay(2_500, Reply::text("too late")),
    ])
    .await;
    let mut cfg = config(MODEL, &llm.base_url());
    cfg.timeout = Some(1);
    cfg.num_retries = 2;
    let c = client(cfg.clone());
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(text_of(&r.message), "in time");

    cfg.num_retries = 1;
    let c = client(cfg);
    let started = Instant::now();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(matches!(err, LlmError::Timeout(_)), "{err:?}");
    assert_eq!(err.code(), "LLMTimeoutError");
    assert!(started.elapsed() < Duration::from_millis(2_400));
    assert_eq!(llm.requests().len(), 3);
}

#[tokio::test]
async fn no_choices_is_retried_then_no_response() {
    let empty = || {
        Reply::Raw(
            json!({"id": "chatcmpl-empty", "object": "chat.completion", "choices": [],
        "usage": {"prompt_tokens": 3, "completion_tokens": 0}}),
        )
    };
    let llm = server(vec![empty(), empty(), empty()]).await;
    let mut cfg = config("litellm_proxy/fixture-model", &llm.base_url());
    cfg.temperature = Some(0.0);
    let c = client(cfg);
    let messages = hello();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(matches!(err, LlmError::NoResponse(_)), "{err:?}");
    assert_eq!(err.code(), "LLMNoResponseError");
    let reqs = llm.requests();
    assert_eq!(reqs.len(), 3);
    // A temperature of 0 is bumped to 1 after an empty response.
    assert_eq!(reqs[0].body["temperature"], 0.0);
    assert_eq!(reqs[1].body["temperature"], 1.0);
    // The reference records telemetry before checking the choices.
    assert_eq!(c.metrics().response_latencies.len(), 3);
}

#[tokio::test]
async fn empty_message_is_not_an_error() {
    let llm = server(vec![Reply::Empty]).await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert!(r.message.content.is_empty());
    assert!(r.message.tool_calls.is_none());
}

#[tokio::test]
async fn malformed_bodies_are_invalid_responses_without_retry() {
    let llm = server(vec![
        Reply::Raw(json!(["not", "an", "object"])),
        Reply::text("never"),
    ])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(matches!(err, LlmError::InvalidResponse(_)), "{err:?}");
    assert_eq!(llm.requests().len(), 1);
}

#[tokio::test]
async fn exhausted_script_fails_loudly() {
    let llm = server(vec![]).await;
    let mut cfg = config(MODEL, &llm.base_url());
    cfg.num_retries = 1;
    let c = client(cfg);
    let messages = hello();
    let err = c.complete(request(&messages, &[])).await.unwrap_err();
    assert!(
        matches!(&err, LlmError::ServiceUnavailable(m) if m.contains("script exhausted")),
        "{err:?}"
    );
}

#[tokio::test]
async fn reasoning_content_is_kept() {
    let llm = server(vec![Reply::thinking(
        "I should greet.",
        "sig",
        Reply::text("Hi"),
    )])
    .await;
    let c = client(config(MODEL, &llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(
        r.message.reasoning_content.as_deref(),
        Some("I should greet.")
    );
    assert_eq!(text_of(&r.message), "Hi");
}

#[tokio::test]
async fn metrics_accumulate_with_custom_prices() {
    let llm = server(vec![
        Reply::text("one"),
        Reply::tool("finish", json!({"message": "done"})),
    ])
    .await;
    let mut cfg = config(MODEL, &llm.base_url());
    cfg.input_cost_per_token = Some(0.001);
    cfg.output_cost_per_token = Some(0.002);
    cfg.max_input_tokens = Some(100_000);
    let c = client(cfg);
    let messages = hello();
    let r1 = c.complete(request(&messages, &[])).await.unwrap();
    let r2 = c.complete(request(&messages, &[])).await.unwrap();

    let per_call = PROMPT_TOKENS as f64 * 0.001 + COMPLETION_TOKENS as f64 * 0.002;
    let m = c.metrics();
    assert_eq!(m.model_name, MODEL);
    assert_eq!(m.costs.len(), 2);
    assert!(
        (m.accumulated_cost - 2.0 * per_call).abs() < 1e-9,
        "{}",
        m.accumulated_cost
    );
    assert_eq!(m.response_latencies.len(), 2);
    assert_eq!(m.response_latencies[1].response_id, "chatcmpl-scripted-2");
    assert!(
        m.response_latencies
            .iter()
            .all(|l| l.latency >= 0.0 && l.model == MODEL)
    );
    assert_eq!(m.token_usages.len(), 2);
    assert_eq!(m.token_usages[0].response_id, "chatcmpl-scripted-1");
    assert_eq!(m.token_usages[0].context_window, 100_000);
    assert_eq!(
        m.token_usages[0].per_turn_token,
        PROMPT_TOKENS + COMPLETION_TOKENS
    );
    let acc = m.accumulated_token_usage.clone().unwrap();
    assert_eq!(acc.prompt_tokens, 2 * PROMPT_TOKENS);
    assert_eq!(acc.completion_tokens, 2 * COMPLETION_TOKENS);
    assert_eq!(acc.response_id, "");
    assert!((r1.metrics.accumulated_cost - per_call).abs() < 1e-9);
    assert_eq!(r2.metrics, m.snapshot());

    // Restored metrics keep accumulating.
    let llm2 = server(vec![Reply::text("three")]).await;
    let mut cfg2 = config(MODEL, &llm2.base_url());
    cfg2.input_cost_per_token = Some(0.001);
    cfg2.output_cost_per_token = Some(0.002);
    let c2 = client(cfg2);
    c2.restore_metrics(m);
    c2.complete(request(&messages, &[])).await.unwrap();
    let m2 = c2.metrics();
    assert_eq!(m2.costs.len(), 3);
    assert!((m2.accumulated_cost - 3.0 * per_call).abs() < 1e-9);
}

#[tokio::test]
async fn cost_from_the_proxy_header_wins() {
    let llm = server(vec![Reply::with_headers(
        Reply::text("priced"),
        [("x-litellm-response-cost", "0.25")],
    )])
    .await;
    let mut cfg = config(MODEL, &llm.base_url());
    cfg.input_cost_per_token = Some(1.0);
    cfg.output_cost_per_token = Some(1.0);
    let c = client(cfg);
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(r.metrics.accumulated_cost, 0.25);
}

#[tokio::test]
async fn built_in_prices_for_known_models() {
    let llm = server(vec![Reply::text("priced")]).await;
    let c = client(config("openai/gpt-4o", &llm.base_url()));
    let messages = hello();
    let r = c.complete(request(&messages, &[])).await.unwrap();
    let expected = PROMPT_TOKENS as f64 * 2.5e-6 + COMPLETION_TOKENS as f64 * 1e-5;
    assert!((r.metrics.accumulated_cost - expected).abs() < 1e-12);
    assert_eq!(c.context_window(), 128_000);
    // A custom base URL caps the metadata output limit at 16384.
    assert_eq!(llm.requests()[0].body["max_completion_tokens"], 16_384);

    let llm = server(vec![Reply::text("free")]).await;
    let c = client(config(MODEL, &llm.base_url()));
    let r = c.complete(request(&messages, &[])).await.unwrap();
    assert_eq!(r.metrics.accumulated_cost, 0.0);
    assert!(c.metrics().costs.is_empty(), "zero cost is not recorded");
}

#[test]
fn unsupported_configurations_are_rejected() {
    let responses = Llm {
        api_mode: ApiMode::Responses,
        ..Llm::new("openai/gpt-5")
    };
    let err = LlmClient::new(responses).unwrap_err();
    assert!(
        matches!(&err, LlmError::Config(m) if m.contains("responses")),
        "{err:?}"
    );
    assert!(matches!(
        LlmClient::new(Llm::new("")),
        Err(LlmError::Config(_))
    ));
    assert!(matches!(
        LlmClient::new(Llm::new("bedrock/anthropic.claude")),
        Err(LlmError::Config(_))
    ));
    let bad_url = Llm {
        base_url: Some("not a url".into()),
        ..Llm::new(MODEL)
    };
    assert!(matches!(LlmClient::new(bad_url), Err(LlmError::Config(_))));
    // `auto` uses Chat Completions, also for GPT-5.
    let auto = LlmClient::new(Llm::new("openai/gpt-5")).unwrap();
    assert_eq!(auto.wire_format(), WireFormat::ChatCompletions);
    assert_eq!(
        auto.endpoint(),
        "https://api.openai.com/v1/chat/completions"
    );
}

#[test]
fn debug_never_shows_the_key() {
    let c = client(config(MODEL, "http://127.0.0.1:1/v1"));
    let shown = format!("{c:?}");
    assert!(!shown.contains("sk-test-123"), "{shown}");
}

/// Parameters as the reference sent them for other models (captured with a custom base
/// URL): `o3` reasons (no temperature, `reasoning_effort`, output capped at 16384);
/// `openai/gpt-4o` drops temperature too but LiteLLM filters `reasoning_effort` out;
/// `litellm_proxy/gpt-4o` keeps temperature and gets `prompt_cache_key`.
#[test]
fn parameters_match_the_reference_for_known_models() {
    let messages = hello();
    let body = |model: &str| {
        let mut cfg = config(model, "http://127.0.0.1:9/v1");
        cfg.temperature = Some(0.5);
        cfg.top_p = Some(0.9);
        let req = CompletionRequest {
            messages: &messages,
            tools: &[],
            conversation_id: Some("conv-1"),
        };
        let mut b = client(cfg).request_body(req);
        b.as_object_mut().unwrap().remove("messages");
        b
    };
    assert_eq!(
        body("openai/o3"),
        json!({"model": "o3", "max_completion_tokens": 16384, "prompt_cache_key": "conv-1",
               "reasoning_effort": "high"})
    );
    assert_eq!(
        body("openai/gpt-4o"),
        json!({"model": "gpt-4o", "max_completion_tokens": 16384, "prompt_cache_key": "conv-1"})
    );
    assert_eq!(
        body("litellm_proxy/gpt-4o"),
        json!({"model": "gpt-4o", "max_completion_tokens": 16384, "prompt_cache_key": "conv-1",
               "temperature": 0.5, "top_p": 0.9})
    );
    assert_eq!(
        body("openai/gpt-5-mini"),
        json!({"model": "gpt-5-mini", "max_completion_tokens": 16384, "prompt_cache_key": "conv-1",
               "reasoning_effort": "high"})
    );
}
