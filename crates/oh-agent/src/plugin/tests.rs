use std::path::Path;
use std::process::Command as Process;

use serde_json::{Value, json};

use super::*;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A marketplace `mk` at `root` listing `fmt` (skills and a command) and whatever else
/// `extra` names.
fn marketplace(root: &Path, name: &str, extra: &[Value]) {
    let mut plugins = vec![json!({"name": "fmt", "source": "./plugins/fmt"})];
    plugins.extend(extra.iter().cloned());
    write(
        &root.join(".plugin/marketplace.json"),
        &json!({"name": name, "owner": {"name": "t"}, "plugins": plugins}).to_string(),
    );
    let fmt = root.join("plugins/fmt");
    write(
        &fmt.join(".plugin/plugin.json"),
        r#"{"name": "fmt", "version": "0.2.0", "author": "A <a@b.c>"}"#,
    );
    write(
        &fmt.join("skills/style-guide/SKILL.md"),
        "---\nname: style-guide\ndescription: House style.\n---\nUse tabs.\n",
    );
    write(
        &fmt.join("skills/notes.md"),
        "---\ntriggers:\n- release\n---\nRelease notes go in CHANGES.\n",
    );
    write(
        &fmt.join("skills/style-guide/references/deep.md"),
        "not a skill",
    );
    write(
        &fmt.join("commands/now.md"),
        "---\ndescription: Tell time\nargument-hint: [city, zone]\nallowed-tools: Bash\n---\nSay the time.\n",
    );
    write(&fmt.join("commands/README.md"), "not a command");
}

fn context(registrations: Value) -> Value {
    json!({"skills": [], "registered_marketplaces": registrations, "load_user_skills": false})
}

fn local(root: &Path, name: &str) -> Value {
    json!([{"name": name, "source": root.to_string_lossy()}])
}

fn skill_names(context: &Value) -> Vec<String> {
    context["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_local_plugin_adds_its_skills_and_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mk");
    marketplace(&root, "mk", &[]);
    let ctx = context(local(&root, "mk"));
    let loaded = load_plugin(Some(&ctx), "fmt@mk", &tmp.path().join("cache"))
        .await
        .unwrap();
    assert_eq!(loaded.plugin.name, "fmt");
    assert_eq!(loaded.plugin.version, "0.2.0");
    assert_eq!(loaded.resolved_ref, None);
    let out = &loaded.agent_context;
    // Skills in path order, then the commands; a nested `.md` is a resource, not a skill.
    assert_eq!(skill_names(out), ["notes", "style-guide", "fmt:now"]);
    assert_eq!(
        out["registered_marketplaces"],
        ctx["registered_marketplaces"]
    );
    let skills = out["skills"].as_array().unwrap();
    assert_eq!(skills[1]["is_agentskills_format"], true);
    assert_eq!(skills[1]["description"], "House style.");
    assert_eq!(skills[1]["content"], "Use tabs.");
    assert_eq!(
        skills[0]["trigger"],
        json!({"type": "keyword", "keywords": ["release"]})
    );
    let command = &skills[2];
    assert_eq!(
        command["trigger"],
        json!({"type": "keyword", "keywords": ["/fmt:now"]})
    );
    assert_eq!(
        command["content"],
        "## now\n\nTell time\n\n**Arguments**: `$ARGUMENTS` - city zone\n\n\nSay the time."
    );
    assert_eq!(command["allowed_tools"], json!(["Bash"]));
    assert_eq!(command["description"], "Tell time");
    // The JSON reads back as the same skills.
    let parsed = crate::skills::AgentContext::from_json(out, &[]);
    assert_eq!(parsed.skills.len(), 3);
    assert_eq!(
        parsed.skills[2].match_trigger("run /fmt:now Paris"),
        Some("/fmt:now")
    );
}

#[tokio::test]
async fn a_bare_name_is_searched_in_every_marketplace() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    marketplace(&a, "a", &[]);
    marketplace(
        &b,
        "b",
        &[json!({"name": "only-b", "source": "./plugins/fmt"})],
    );
    let ctx = context(json!([
        {"name": "a", "source": a.to_string_lossy()},
        {"name": "b", "source": b.to_string_lossy()},
    ]));
    let cache = tmp.path().join("cache");
    let loaded = load_plugin(Some(&ctx), "only-b", &cache).await.unwrap();
    assert_eq!(loaded.plugin.name, "fmt");
    let err = load_plugin(Some(&ctx), "fmt", &cache).await.unwrap_err();
    assert!(matches!(err, PluginError::Ambiguous { .. }), "{err:?}");
    assert!(!err.is_not_found());
    assert_eq!(
        err.to_string(),
        "Plugin 'fmt' is ambiguous; found in multiple marketplaces: a, b. Use 'fmt@<marketplace-name>'."
    );
}

#[tokio::test]
async fn resolution_errors_are_typed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mk");
    marketplace(&root, "mk", &[]);
    let cache = tmp.path().join("cache");
    let ctx = context(local(&root, "mk"));

    let err = load_plugin(None, "fmt", &cache).await.unwrap_err();
    assert!(matches!(err, PluginError::NoContext), "{err:?}");
    let err = load_plugin(Some(&json!({"skills": []})), "fmt", &cache)
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::NoMarketplaces), "{err:?}");

    let err = load_plugin(Some(&ctx), "nope@mk", &cache)
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "Plugin 'nope' not found in marketplace 'mk'"
    );
    let err = load_plugin(Some(&ctx), "nope", &cache).await.unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(
        err.to_string(),
        "Plugin 'nope' not found in any registered marketplace"
    );
    let err = load_plugin(Some(&ctx), "fmt@other", &cache)
        .await
        .unwrap_err();
    assert!(err.is_not_found());
    assert_eq!(err.to_string(), "Marketplace 'other' is not registered");

    for bad in ["", "@mk", "fmt@"] {
        let err = load_plugin(Some(&ctx), bad, &cache).await.unwrap_err();
        assert!(
            matches!(err, PluginError::Resolution(_)),
            "{bad:?}: {err:?}"
        );
    }

    let dup = context(json!([
        {"name": "mk", "source": root.to_string_lossy()},
        {"name": "mk", "source": root.to_string_lossy()},
    ]));
    let err = load_plugin(Some(&dup), "fmt", &cache).await.unwrap_err();
    assert_eq!(err.to_string(), "Duplicate marketplace registration: mk");

    let traversal =
        context(json!([{"name": "mk", "source": root.to_string_lossy(), "repo_path": "../x"}]));
    let err = load_plugin(Some(&traversal), "fmt", &cache)
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn missing_and_unreachable_sources_fail_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let missing = tmp.path().join("absent");
    let ctx = context(local(&missing, "mk"));
    let err = load_plugin(Some(&ctx), "fmt@mk", &cache).await.unwrap_err();
    assert!(matches!(err, PluginError::Fetch(_)), "{err:?}");
    assert!(
        err.to_string().contains("Local plugin path does not exist"),
        "{err}"
    );
    // A bare name: every marketplace failed, so the plugin is not found, with the reasons.
    let err = load_plugin(Some(&ctx), "fmt", &cache).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(
        err.to_string()
            .contains("marketplace fetch failed: mk: Local plugin path"),
        "{err}"
    );

    // Nothing listens on port 1 of loopback; the credentials never show.
    let ctx = context(json!([{"name": "mk", "source": "http://user:hunter2@127.0.0.1:1/mk.git"}]));
    let err = load_plugin(Some(&ctx), "fmt@mk", &cache).await.unwrap_err();
    assert!(matches!(err, PluginError::Fetch(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("Failed to fetch plugin from http://****@127.0.0.1:1/mk.git"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    // An empty directory is neither a marketplace nor a folder of skills.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = load_plugin(Some(&context(local(&empty, "mk"))), "fmt@mk", &cache)
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::FileNotFound(_)), "{err:?}");
    assert!(!err.is_not_found());
}

#[tokio::test]
async fn an_invalid_manifest_is_a_value_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mk");
    marketplace(&root, "mk", &[]);
    write(&root.join("plugins/fmt/.plugin/plugin.json"), "{not json");
    let err = load_plugin(
        Some(&context(local(&root, "mk"))),
        "fmt@mk",
        &tmp.path().join("c"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, PluginError::Invalid(_)), "{err:?}");
    assert!(err.to_string().starts_with("Invalid JSON in "), "{err}");
}

#[tokio::test]
async fn mcp_hooks_and_agents_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mk");
    marketplace(&root, "mk", &[]);
    let fmt = root.join("plugins/fmt");
    write(
        &fmt.join(".mcp.json"),
        r#"{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}"#,
    );
    write(
        &fmt.join("hooks/hooks.json"),
        r#"{"hooks": {"PreToolUse": [{"matcher": "*", "hooks": [{"type": "command", "command": "true"}]}]}}"#,
    );
    write(
        &fmt.join("agents/reviewer.md"),
        "---\nname: reviewer\n---\nReview.\n",
    );
    let ctx = context(local(&root, "mk"));
    let err = load_plugin(Some(&ctx), "fmt@mk", &tmp.path().join("c"))
        .await
        .unwrap_err();
    let PluginError::Unsupported { plugin, features } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(plugin, "fmt");
    assert_eq!(
        features,
        &[
            "MCP servers (fetch)",
            "hooks",
            "sub-agents (1 definition(s))"
        ]
    );
    // An empty hooks file and an MCP file without servers are nothing to run.
    std::fs::remove_dir_all(fmt.join("agents")).unwrap();
    write(&fmt.join(".mcp.json"), r#"{"mcpServers": {}}"#);
    write(&fmt.join("hooks/hooks.json"), r#"{"hooks": {}}"#);
    load_plugin(Some(&ctx), "fmt@mk", &tmp.path().join("c"))
        .await
        .unwrap();
}

#[tokio::test]
async fn plugin_skills_replace_skills_of_the_same_name() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mk");
    marketplace(&root, "mk", &[]);
    let mut ctx = context(local(&root, "mk"));
    ctx["skills"] = json!([
        {"name": "style-guide", "content": "old", "trigger": null},
        {"name": "mine", "content": "kept", "trigger": null},
    ]);
    let loaded = load_plugin(Some(&ctx), "fmt@mk", &tmp.path().join("c"))
        .await
        .unwrap();
    let out = &loaded.agent_context;
    assert_eq!(
        skill_names(out),
        ["style-guide", "mine", "notes", "fmt:now"]
    );
    assert_eq!(out["skills"][0]["content"], "Use tabs.");
    assert_eq!(out["skills"][1]["content"], "kept");
}

#[tokio::test]
async fn a_manifest_less_plugin_and_agent_plugins_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("mk");
    marketplace(
        &root,
        "mk",
        &[
            json!({"name": "bare", "source": "./plugins/bare"}),
            json!({"name": "portable", "source": "./plugins/portable"}),
        ],
    );
    write(
        &root.join("plugins/bare/SKILL.md"),
        "---\nname: bare\ndescription: Root skill.\n---\nBare body.\n",
    );
    let portable = root.join("plugins/portable");
    write(
        &portable.join("plugin.json"),
        &json!({"$schema": AGENT_PLUGINS_SCHEMA, "name": "portable", "version": "2.0.0"})
            .to_string(),
    );
    write(&portable.join("dev.openhands/commands/go.md"), "Go now.\n");
    let ctx = context(local(&root, "mk"));
    let cache = tmp.path().join("c");
    let loaded = load_plugin(Some(&ctx), "bare@mk", &cache).await.unwrap();
    assert_eq!(loaded.plugin.name, "bare");
    assert_eq!(skill_names(&loaded.agent_context), ["bare"]);
    let loaded = load_plugin(Some(&ctx), "portable@mk", &cache)
        .await
        .unwrap();
    assert_eq!(loaded.plugin.version, "2.0.0");
    assert_eq!(skill_names(&loaded.agent_context), ["portable:go"]);
    assert_eq!(
        loaded.agent_context["skills"][0]["description"],
        "Command go from portable"
    );

    write(
        &portable.join("plugin.json"),
        &json!({"$schema": "https://example.com/other.json", "name": "portable"}).to_string(),
    );
    let err = load_plugin(Some(&ctx), "portable@mk", &cache)
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::Invalid(_)), "{err:?}");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Process::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn git_marketplaces_and_plugins_are_cloned_at_their_ref() {
    let tmp = tempfile::tempdir().unwrap();
    // The marketplace is a git repository; its plugin is another, pinned to a tag.
    let plugin_repo = tmp.path().join("plugin-repo");
    write(
        &plugin_repo.join("sub/.claude-plugin/plugin.json"),
        r#"{"name": "tagged"}"#,
    );
    write(
        &plugin_repo.join("sub/commands/hello.md"),
        "Old greeting.\n",
    );
    git(&plugin_repo, &["init", "-q", "-b", "main"]);
    git(&plugin_repo, &["add", "."]);
    git(&plugin_repo, &["commit", "-q", "-m", "v1"]);
    git(&plugin_repo, &["tag", "v1"]);
    let v1 = git(&plugin_repo, &["rev-parse", "HEAD"]);
    write(
        &plugin_repo.join("sub/commands/hello.md"),
        "New greeting.\n",
    );
    git(&plugin_repo, &["commit", "-q", "-am", "v2"]);

    let market_repo = tmp.path().join("market-repo");
    write(
        &market_repo.join("catalog/.plugin/marketplace.json"),
        &json!({"name": "remote", "owner": {"name": "t"}, "plugins": [{
            "name": "tagged",
            "source": {"source": "url", "url": format!("file://{}", plugin_repo.display()), "ref": "v1", "path": "sub"},
        }]})
        .to_string(),
    );
    git(&market_repo, &["init", "-q", "-b", "main"]);
    git(&market_repo, &["add", "."]);
    git(&market_repo, &["commit", "-q", "-m", "catalog"]);

    let ctx = context(json!([{
        "name": "remote",
        "source": format!("file://{}", market_repo.display()),
        "ref": "main",
        "repo_path": "catalog",
    }]));
    let cache = tmp.path().join("cache");
    let loaded = load_plugin(Some(&ctx), "tagged@remote", &cache)
        .await
        .unwrap();
    assert_eq!(loaded.resolved_ref.as_deref(), Some(v1.as_str()));
    assert_eq!(skill_names(&loaded.agent_context), ["tagged:hello"]);
    assert_eq!(
        loaded.agent_context["skills"][0]["content"],
        "Old greeting."
    );
    assert!(
        loaded
            .plugin
            .path
            .starts_with(std::fs::canonicalize(&cache).unwrap())
    );
    // Loading again reuses the commit's directory.
    let again = load_plugin(Some(&ctx), "tagged@remote", &cache)
        .await
        .unwrap();
    assert_eq!(again.plugin.path, loaded.plugin.path);

    let bad_ref = context(json!([{
        "name": "remote",
        "source": format!("file://{}", market_repo.display()),
        "ref": "no-such-branch",
    }]));
    let err = load_plugin(Some(&bad_ref), "tagged@remote", &cache)
        .await
        .unwrap_err();
    assert!(matches!(err, PluginError::Fetch(_)), "{err:?}");
    assert!(
        err.to_string().contains("ref 'no-such-branch' not found"),
        "{err}"
    );
    // Failed clones leave nothing behind.
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
