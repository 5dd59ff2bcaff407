//! `POST /api/skills`: the skills a conversation would get, merged from the reference's
//! sources in its precedence order (later wins on a name): the sandbox's `work_hosts`
//! skill, marketplace registrations (none here), the public and user skills (`sdk_base`),
//! organization repositories (`org`, cloned with `git`), the project directory (`project`).
//!
//! The public skills live in the OpenHands/extensions repository on GitHub; this server does
//! not fetch them, so `load_public` adds none — what the reference answers when its clone
//! fails (it logs the failure and goes on with the other sources).
//!
//! Skill files are read by `oh_agent::skills`, on the blocking pool.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use oh_agent::skills::{self, Skill};
use oh_protocol::{OrgConfig, SkillsRequest, SkillsResponse};

use crate::app::AppState;
use crate::error::{ApiError, ApiResult, ok};
use crate::extract::Json;

/// How long an organization repository's clone may take (as the reference).
const ORG_CLONE_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/skills", post(load_skills))
}

async fn load_skills(
    State(state): State<AppState>,
    Json(request): Json<SkillsRequest>,
) -> ApiResult<Response> {
    let mut org_skills = Vec::new();
    if request.load_org {
        for org in request.org_configs.iter().flatten() {
            org_skills = skills::merge_later_wins([org_skills, load_org_skills(org).await]);
        }
    }
    let user_dirs = state.config.user_skill_dirs.clone();
    let response = tokio::task::spawn_blocking(move || merge(&request, &user_dirs, org_skills))
        .await
        .map_err(ApiError::internal)?;
    Ok(ok(&response))
}

/// The merge of every source but the organizations' (already loaded: `org`).
fn merge(request: &SkillsRequest, user_dirs: &[PathBuf], org: Vec<Skill>) -> SkillsResponse {
    let sandbox: Vec<Skill> = request
        .sandbox_config
        .as_ref()
        .map(|config| {
            let urls: Vec<(String, String, u16)> = config
                .exposed_urls
                .iter()
                .map(|u| (u.name.clone(), u.url.clone(), u.port))
                .collect();
            skills::work_hosts_skill(&urls).into_iter().collect()
        })
        .unwrap_or_default();
    if request.load_public {
        tracing::info!("public skills are not fetched by this server; none loaded");
    }
    let sdk_base = if request.load_user {
        skills::load_user_skills(user_dirs)
    } else {
        Vec::new()
    };
    let project = match (&request.project_dir, request.load_project) {
        (Some(dir), true) if !dir.is_empty() => skills::load_project_skills(Path::new(dir)),
        _ => Vec::new(),
    };
    let sources = [
        ("sandbox", sandbox.len()),
        ("registered_marketplaces", 0),
        ("sdk_base", sdk_base.len()),
        ("org", org.len()),
        ("project", project.len()),
    ]
    .into_iter()
    .map(|(name, count)| (name.to_owned(), count))
    .collect();
    let merged = skills::merge_later_wins([sandbox, Vec::new(), sdk_base, org, project]);
    SkillsResponse {
        skills: merged.iter().map(Skill::info).collect(),
        sources,
    }
}

/// Skills of an organization repository: a shallow clone of its (credentialed) URL, then
/// its `skills/` directory and, for names not seen there, `microagents/`. A repository that
/// cannot be cloned has none (its URL and git's output are never logged: they may hold
/// credentials).
async fn load_org_skills(org: &OrgConfig) -> Vec<Skill> {
    let temp = std::env::temp_dir().join(format!(
        "openhands_org_skills_{}",
        uuid::Uuid::new_v4().simple()
    ));
    let target = temp.join("repo");
    let mut command = tokio::process::Command::new("git");
    command
        .args(["clone", "--depth", "1", "--", &org.org_repo_url])
        .arg(&target)
        .env_clear()
        .envs(oh_agent::workspace::sanitized_env())
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let cloned = match tokio::time::timeout(ORG_CLONE_TIMEOUT, command.status()).await {
        Ok(Ok(status)) => status.success(),
        Ok(Err(e)) => {
            tracing::warn!(org = %org.org_name, error = %e, "cannot run git for organization skills");
            false
        }
        Err(_) => {
            tracing::warn!(org = %org.org_name, "cloning the organization skills timed out");
            false
        }
    };
    if !cloned {
        remove_dir(temp).await;
        tracing::debug!(org = %org.org_name, "organization skills repository not available");
        return Vec::new();
    }
    tokio::task::spawn_blocking(move || {
        let mut found = skills::load_skills_from_dir(&target.join("skills"));
        for skill in skills::load_skills_from_dir(&target.join("microagents")) {
            if !found.iter().any(|s| s.name == skill.name) {
                found.push(skill);
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&temp) {
            tracing::warn!(error = %e, "cannot remove a clone of organization skills");
        }
        found
    })
    .await
    .unwrap_or_default()
}

async fn remove_dir(dir: PathBuf) {
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, "cannot remove a clone of organization skills");
    }
}
