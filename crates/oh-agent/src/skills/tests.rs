use super::*;
use serde_json::json;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn frontmatter_decides_name_and_trigger() {
    let base = Path::new("/repo/.openhands/skills");
    let repo = Skill::parse(&base.join("style.md"), "# Style\nUse tabs.\n", Some(base)).unwrap();
    assert_eq!((repo.name.as_str(), repo.kind()), ("style", "repo"));
    assert_eq!(repo.content, "# Style\nUse tabs.");
    assert_eq!(
        repo.source.as_deref(),
        Some("/repo/.openhands/skills/style.md")
    );

    let nested = Skill::parse(
        &base.join("tools/docker.md"),
        "---\ntriggers:\n- docker\n- container\n---\nRun `docker ps` first.",
        Some(base),
    )
    .unwrap();
    assert_eq!(nested.name, "tools/docker");
    assert_eq!(nested.kind(), "knowledge");
    assert_eq!(nested.triggers(), ["docker", "container"]);

    let named = Skill::parse(&base.join("x.md"), "---\nname: deploy\ninputs:\n  - name: ENV\n    description: target\n---\nDeploy to ${ENV}.", Some(base)).unwrap();
    assert_eq!(named.name, "deploy");
    assert_eq!(named.trigger, Some(Trigger::Task(vec!["/deploy".into()])));
    assert!(
        named
            .content
            .starts_with("Deploy to ${ENV}.\n\nIf the user didn't provide")
    );

    let rule = Skill::parse(
        &base.join("r.md"),
        "---\npaths: 'src/**, docs/*.md'\ntriggers: [x]\n---\nrule",
        Some(base),
    )
    .unwrap();
    assert_eq!(
        rule.trigger,
        Some(Trigger::Path(vec!["src/**".into(), "docs/*.md".into()]))
    );
    assert!(rule.disable_model_invocation);
    assert!(rule.triggers().is_empty());
}

#[test]
fn third_party_files_are_whole_and_always_active() {
    let text = "---\nname: other\n---\nBe brief.\n";
    let skill = Skill::parse(Path::new("/repo/AGENTS.md"), text, None).unwrap();
    assert_eq!(skill.name, "agents");
    assert_eq!(skill.content, text);
    assert_eq!(skill.trigger, None);
    let cursor = Skill::parse(Path::new("/repo/.cursorrules"), "x", None).unwrap();
    assert_eq!(cursor.name, "cursorrules");
}

#[test]
fn agentskills_names_are_checked() {
    let ok = Skill::parse(
        Path::new("/s/pdf-tools/SKILL.md"),
        "---\ndescription: PDFs\n---\nbody",
        None,
    )
    .unwrap();
    assert_eq!((ok.name.as_str(), ok.kind()), ("pdf-tools", "agentskills"));
    assert_eq!(ok.description.as_deref(), Some("PDFs"));
    for (path, text) in [
        ("/s/PDF/SKILL.md", "body"),
        ("/s/pdf/SKILL.md", "---\nname: other\n---\nbody"),
        ("/s/a--b/SKILL.md", "body"),
    ] {
        let err = Skill::parse(Path::new(path), text, None).unwrap_err();
        assert!(matches!(err, SkillError::Invalid { .. }), "{path}: {err}");
    }
}

#[test]
fn bad_frontmatter_is_a_typed_error() {
    let err = Skill::parse(
        Path::new("/s/x.md"),
        "---\ntriggers: {a: 1}\n---\nbody",
        None,
    )
    .unwrap_err();
    assert!(matches!(err, SkillError::Frontmatter { .. }));
    assert!(std::error::Error::source(&err).is_some());
    let err = Skill::parse(
        Path::new("/s/x.md"),
        "---\ntriggers: docker\n---\nbody",
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("triggers must be a list"), "{err}");
}

#[test]
fn keywords_match_whole_tokens_in_any_case() {
    let skill = Skill::new(
        "git",
        "c",
        Some(Trigger::Keyword(vec!["git".into(), "/Deploy".into()])),
    );
    assert_eq!(skill.match_trigger("Use GIT please"), Some("git"));
    assert_eq!(skill.match_trigger("open github"), None);
    assert_eq!(skill.match_trigger("run /deploy now"), Some("/Deploy"));
    assert_eq!(skill.match_trigger("git."), Some("git"));
}

#[test]
fn project_skills_come_from_the_reference_places() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    write(&root.join("AGENTS.md"), "root agents");
    write(&root.join("sub/AGENTS.md"), "sub agents");
    write(&root.join(".openhands/skills/repo.md"), "always");
    write(&root.join(".openhands/skills/README.md"), "not a skill");
    write(
        &root.join(".openhands/skills/kn.md"),
        "---\ntriggers: [zebra]\n---\nstripes",
    );
    write(
        &root.join(".openhands/skills/my-tool/SKILL.md"),
        "---\ndescription: tool\n---\nuse it",
    );
    write(
        &root.join(".openhands/skills/my-tool/notes.md"),
        "a reference, not a skill",
    );
    write(
        &root.join(".openhands/microagents/repo.md"),
        "shadowed by the skills dir",
    );
    write(
        &root.join(".openhands/microagents/legacy.md"),
        "---\ntriggers: [old]\n---\nlegacy",
    );
    write(
        &root.join(".openhands/skills/broken.md"),
        "---\ntriggers: {x: 1}\n---\nskipped",
    );

    let skills = load_project_skills(root);
    let names: Vec<&str> = skills.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["agents", "agents:sub", "repo", "kn", "my-tool", "legacy"]
    );
    assert_eq!(skills[2].content, "always");
    assert_eq!(
        skills[1].trigger,
        Some(Trigger::Path(vec!["sub/**".into()]))
    );

    // From a subdirectory, the git root's files are found too, after the directory's own.
    let from_sub = load_project_skills(&root.join("sub"));
    let names: Vec<&str> = from_sub.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["agents", "repo", "kn", "my-tool", "legacy"]);
    assert_eq!(from_sub[0].content, "sub agents");

    assert!(load_project_skills(&root.join("missing")).is_empty());
}

#[test]
fn user_dirs_follow_home_and_persistence_dir() {
    let home = Path::new("/home/u");
    assert_eq!(
        user_skill_dirs(Some(home), None),
        [
            home.join(".agents/skills"),
            home.join(".openhands/skills"),
            home.join(".openhands/microagents")
        ]
    );
    assert_eq!(
        user_skill_dirs(Some(home), Some(Path::new("/p"))),
        [
            home.join(".agents/skills"),
            PathBuf::from("/p/skills"),
            PathBuf::from("/p/microagents")
        ]
    );
}

#[test]
fn later_sources_replace_earlier_ones_in_place() {
    let merged = merge_later_wins([
        vec![Skill::new("a", "1", None), Skill::new("b", "1", None)],
        vec![Skill::new("a", "2", None), Skill::new("c", "2", None)],
    ]);
    let got: Vec<(&str, &str)> = merged
        .iter()
        .map(|s| (s.name.as_str(), s.content.as_str()))
        .collect();
    assert_eq!(got, [("a", "2"), ("b", "1"), ("c", "2")]);
}

#[test]
fn work_hosts_lists_worker_urls_only() {
    assert_eq!(
        work_hosts_skill(&[("VSCODE".into(), "http://v".into(), 1)]),
        None
    );
    let skill = work_hosts_skill(&[
        ("WORKER_1".into(), "http://w1".into(), 8011),
        ("VSCODE".into(), "http://v".into(), 1),
    ])
    .unwrap();
    assert_eq!(skill.name, "work_hosts");
    assert!(skill.content.ends_with("\n* http://w1 (port 8011)"));
}

#[test]
fn agent_context_partitions_and_activates() {
    let context = AgentContext::from_json(
        &json!({
            "skills": [
                {"name": "repo", "content": "R", "trigger": null},
                {"name": "claude", "content": "C", "trigger": null},
                {"name": "zebra", "content": "Z", "source": "/s/zebra.md",
                 "trigger": {"type": "keyword", "keywords": ["zebra"]}},
                {"name": "rule", "content": "P", "trigger": {"type": "path", "paths": ["a/**"]}},
                {"name": "off", "content": "O", "trigger": null}
            ],
            "disabled_skills": ["off"],
            "user_message_suffix": "  be kind  ",
            "current_datetime": null
        }),
        &[],
    );
    assert_eq!(context.current_datetime, None);
    let (repo, listed) = context.partition("openai/gpt-5");
    assert_eq!(
        repo.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["repo"]
    );
    assert_eq!(
        listed.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["zebra"]
    );
    let (repo, _) = context.partition("anthropic/claude-sonnet-4-5");
    assert_eq!(repo.len(), 2);

    let (text, names) = context.user_message_suffix("I saw a Zebra", &[]).unwrap();
    assert_eq!(names, ["zebra"]);
    assert!(
        text.contains("<EXTRA_INFO>") && text.contains("\"zebra\""),
        "{text}"
    );
    assert!(
        text.contains("/s/zebra.md") && text.contains("\nZ\n</EXTRA_INFO>"),
        "{text}"
    );
    assert!(text.ends_with("\nbe kind"), "{text}");
    // Once active, a skill is not added again; the suffix still is.
    assert_eq!(
        context.user_message_suffix("zebra again", &["zebra".into()]),
        Some(("be kind".into(), Vec::new()))
    );
    assert_eq!(
        AgentContext::default().user_message_suffix("zebra", &[]),
        None
    );
}

#[test]
fn user_skills_fill_gaps_and_project_skills_override() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("skills/mine.md"), "user mine");
    write(&dir.path().join("skills/explicit.md"), "user explicit");
    let mut context = AgentContext::from_json(
        &json!({"skills": [{"name": "explicit", "content": "E"}], "load_user_skills": true}),
        &[dir.path().join("skills")],
    );
    let got: Vec<(&str, &str)> = context
        .skills
        .iter()
        .map(|s| (s.name.as_str(), s.content.as_str()))
        .collect();
    assert_eq!(got, [("explicit", "E"), ("mine", "user mine")]);
    context.add_project_skills(vec![Skill::new("explicit", "project", None)]);
    assert_eq!(context.skills[0].content, "project");
}

#[test]
fn skill_info_has_the_reference_shape() {
    let skill = Skill::parse(
        Path::new("/s/k.md"),
        "---\ntriggers: [a]\ndescription: d\n---\nbody",
        Some(Path::new("/s")),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(skill.info()).unwrap(),
        json!({"name": "k", "type": "knowledge", "content": "body", "triggers": ["a"],
               "source": "/s/k.md", "description": "d", "is_agentskills_format": false,
               "disable_model_invocation": false})
    );
}

#[test]
fn several_skills_and_the_suffix_are_laid_out_like_the_reference() {
    let context = AgentContext {
        skills: vec![
            Skill {
                source: Some("/s/a.md".into()),
                ..Skill::new("a", "A body", Some(Trigger::Keyword(vec!["x".into()])))
            },
            Skill::new("b", "B body", Some(Trigger::Keyword(vec!["y".into()]))),
        ],
        user_message_suffix: Some("SUF".into()),
        ..AgentContext::default()
    };
    let (text, names) = context.user_message_suffix("x and y", &[]).unwrap();
    assert_eq!(names, ["a", "b"]);
    // Blocks start and end with their tags, the location sits after a blank line, the
    // content after two, blocks are a blank line apart and the suffix follows on its line.
    assert!(text.starts_with("<EXTRA_INFO>\n"), "{text:?}");
    assert!(text.contains(".\n\nSkill location: /s/a.md\n("), "{text:?}");
    assert!(
        text.contains(")\n\n\nA body\n</EXTRA_INFO>\n\n<EXTRA_INFO>\n"),
        "{text:?}"
    );
    assert!(
        text.ends_with(".\n\n\nB body\n</EXTRA_INFO>\nSUF"),
        "{text:?}"
    );
}

#[test]
fn datetimes_are_shown_to_the_minute() {
    use crate::prompt::prompt_datetime;
    assert_eq!(
        prompt_datetime("2026-12-05T17:32:54.123456Z"),
        "2026-12-05T17:32"
    );
    assert_eq!(
        prompt_datetime("2026-01-02 03:04:05+02:00"),
        "2026-01-02T03:04"
    );
    assert_eq!(prompt_datetime("2026-01-02"), "2026-01-02T00:00");
    assert_eq!(prompt_datetime("next Tuesday"), "next Tuesday");
}

#[test]
fn globs_match_like_gitignore() {
    assert!(path_matches_glob("src/a/b.rs", "src/**"));
    assert!(path_matches_glob("src/b.rs", "src/**/*.rs"));
    assert!(path_matches_glob("src/x/y/b.rs", "src/**/*.rs"));
    assert!(!path_matches_glob("lib/b.rs", "src/**"));
    assert!(path_matches_glob("deep/dir/file.py", "*.py"));
    assert!(!path_matches_glob("src/a/b.rs", "src/*.rs"));
    assert!(path_matches_glob("a.c", "?.c"));
    assert!(!path_matches_glob("a.c", ""));
    assert!(path_matches_glob("a+b(1).md", "a+b(1).md"));
}

#[test]
fn path_rules_fire_once_per_rule() {
    let context = AgentContext {
        skills: vec![
            Skill {
                source: Some("/w/sub/AGENTS.md".into()),
                ..Skill::new(
                    "agents:sub",
                    "SUB RULE",
                    Some(Trigger::Path(vec!["sub/**".into()])),
                )
            },
            Skill::new("kw", "K", Some(Trigger::Keyword(vec!["sub".into()]))),
        ],
        ..AgentContext::default()
    };
    let (text, names) = context.tool_use_suffix("sub/x.rs", &[]).unwrap();
    assert_eq!(names, ["agents:sub"]);
    assert!(
        text.starts_with("<EXTRA_INFO>\n") && text.contains("\"sub/**\""),
        "{text}"
    );
    assert!(
        text.contains("Rule location: /w/sub/AGENTS.md\n\nSUB RULE\n</EXTRA_INFO>"),
        "{text}"
    );
    assert_eq!(context.tool_use_suffix("sub/x.rs", &names), None);
    assert_eq!(context.tool_use_suffix("other/x.rs", &[]), None);
}
