//! Credential sharing: the user's LLM, secrets and MCP servers.

use std::collections::BTreeMap;
use std::time::Duration;

use oh_protocol::agent::SecretSource;
use oh_workspace_cloud::{Error, OpenHandsCloudWorkspace};
use pretty_assertions::assert_eq;
use serde_json::json;

use super::fake::{API_KEY, AgentServer, FakeCloud, Step};

async fn started(cloud: &FakeCloud) -> OpenHandsCloudWorkspace {
    cloud.script(vec![Step::Status("RUNNING")]);
    OpenHandsCloudWorkspace::builder(cloud.url.as_str(), API_KEY)
        .init_timeout(Duration::from_secs(20))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_comes_from_the_user_settings() {
    let agent = AgentServer::start("sk-session-llm").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.settings(json!({
        "llm_model": "litellm_proxy/claude-sonnet",
        "llm_api_key": "sk-llm-1",
        "llm_base_url": "https://llm-proxy.example.com",
        "llm_profiles": {"profiles": {
            "cheap": {"model": "openai/gpt-4o-mini", "api_key": "sk-llm-2", "temperature": 0.5},
        }},
    }));
    let workspace = started(&cloud).await;

    let llm = workspace.get_llm(None).await.unwrap();
    assert_eq!(llm.model, "litellm_proxy/claude-sonnet");
    assert_eq!(llm.api_key.as_ref().map(|k| k.expose()), Some("sk-llm-1"));
    assert_eq!(
        llm.base_url.as_deref(),
        Some("https://llm-proxy.example.com")
    );
    let call = cloud.calls().last().cloned().unwrap();
    assert_eq!(call.line(), "GET /api/v1/users/me?expose_secrets=true");
    assert_eq!(
        call.authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(call.session_key.as_deref(), Some(agent.key.as_str()));

    let cheap = workspace.get_llm(Some("cheap")).await.unwrap();
    assert_eq!(cheap.model, "openai/gpt-4o-mini");
    assert_eq!(cheap.api_key.as_ref().map(|k| k.expose()), Some("sk-llm-2"));
    assert_eq!(cheap.temperature, Some(0.5));
    assert_eq!(cheap.usage_id, "profile:cheap");

    let missing = workspace.get_llm(Some("nope")).await.unwrap_err();
    assert!(
        matches!(&missing, Error::ProfileNotFound { profile } if profile == "nope"),
        "{missing:?}"
    );
    workspace.cleanup().await.unwrap();
    assert!(matches!(
        workspace.get_llm(None).await,
        Err(Error::NotRunning { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_lookups_that_the_client_never_resolves() {
    let agent = AgentServer::start("sk-session-sec").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.secrets(json!({"secrets": [
        {"name": "GITHUB_TOKEN", "description": "GitHub token"},
        {"name": "MY_API", "description": null},
    ]}));
    let workspace = started(&cloud).await;

    let all = workspace.get_secrets(None).await.unwrap();
    assert_eq!(
        all.keys().map(String::as_str).collect::<Vec<_>>(),
        ["GITHUB_TOKEN", "MY_API"]
    );
    let Some(SecretSource::Lookup(lookup)) = all.get("GITHUB_TOKEN") else {
        panic!("expected a lookup: {all:?}");
    };
    assert_eq!(
        lookup.url,
        format!(
            "{}/api/v1/sandboxes/sb-1/settings/secrets/GITHUB_TOKEN",
            cloud.base()
        )
    );
    assert_eq!(lookup.description.as_deref(), Some("GitHub token"));
    let headers: BTreeMap<&str, &str> = lookup
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        BTreeMap::from([("X-Session-API-Key", agent.key.as_str())])
    );

    let some = workspace.get_secrets(Some(&["MY_API"])).await.unwrap();
    assert_eq!(some.keys().collect::<Vec<_>>(), ["MY_API"]);

    let listing = cloud
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("/settings/secrets"))
        .collect::<Vec<_>>();
    assert_eq!(listing.len(), 2);
    for call in listing {
        assert_eq!(call.line(), "GET /api/v1/sandboxes/sb-1/settings/secrets");
        assert_eq!(call.session_key.as_deref(), Some(agent.key.as_str()));
    }
    workspace.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_servers_come_from_the_user_settings() {
    let agent = AgentServer::start("sk-session-mcp").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.settings(json!({"mcp_config": {
        "sse_servers": [{"url": "https://mcp.example.com/sse", "api_key": "k1"}],
        "shttp_servers": [],
        "stdio_servers": [{"name": "fetch", "command": "uvx", "args": ["mcp-server-fetch"]}],
    }}));
    let workspace = started(&cloud).await;

    let config = workspace.get_mcp_config().await.unwrap();

    assert_eq!(
        config,
        json!({
            "sse_0": {"url": "https://mcp.example.com/sse", "transport": "sse",
                      "headers": {"Authorization": "Bearer k1"}},
            "fetch": {"command": "uvx", "args": ["mcp-server-fetch"]},
        })
    );
    assert_eq!(cloud.calls().last().unwrap().line(), "GET /api/v1/users/me");
    workspace.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_calls_retry_transient_errors_only() {
    let agent = AgentServer::start("sk-session-retry").await;
    let cloud = FakeCloud::start(&agent.url, &agent.key).await;
    cloud.settings(json!({"llm_model": "openai/gpt-4o"}));
    let workspace = started(&cloud).await;
    let users_me = |cloud: &FakeCloud| {
        cloud
            .lines()
            .iter()
            .filter(|l| l.starts_with("GET /api/v1/users/me"))
            .count()
    };

    cloud.fail_settings(vec![503]);
    assert_eq!(
        workspace.get_llm(None).await.unwrap().model,
        "openai/gpt-4o"
    );
    assert_eq!(users_me(&cloud), 2);

    cloud.fail_settings(vec![400, 503]);
    let error = workspace.get_llm(None).await.unwrap_err();
    assert!(matches!(error, Error::Api { .. }), "{error:?}");
    assert_eq!(users_me(&cloud), 3, "a 400 is not retried");
    workspace.cleanup().await.unwrap();
}
