//! The git routes (spec §3.18): `/api/git/*`, a thin HTTP face over
//! [`oh_agent::workspace::git`], which holds the git logic (base-ref policy, changes, diffs,
//! the reference's error texts) shared with `LocalWorkspace`.
//!
//! This module parses the queries, maps [`GitError`] to statuses (a missing repository is an
//! empty result, a failed git command or an undiffable path 400 with the reference's text)
//! and bounds the work: the helpers' filesystem work runs on the bounded blocking pool
//! (`blocking`, family `Git`), and git processes run at most [`GIT_PROCESSES`] at once over
//! all requests, each killed after [`GIT_TIMEOUT`] (waiting included).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use axum::routing::get;
use oh_agent::workspace::git::{Blocking, BlockingError, Git, GitError};
use oh_protocol::{GitChange, GitDiff};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::blocking::{self, Family};
use crate::error::{ApiError, ApiResult, ok};
use crate::extract::{Query, path_param};

/// How long one git command may take, waiting for its turn included; it is killed then.
const GIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Git processes running at once, over all requests.
const GIT_PROCESSES: usize = 16;

/// The git helpers of every request: one bound on git processes for the whole server.
static GIT: Git<BoundedPool> = Git::new(BoundedPool, GIT_PROCESSES, GIT_TIMEOUT);

/// The helpers' filesystem work on the bounded blocking pool (family `Git`).
struct BoundedPool;

impl Blocking for BoundedPool {
    async fn run<T, F>(&self, op: F) -> Result<T, BlockingError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        blocking::run(Family::Git, op)
            .await
            .map_err(|err| BlockingError(Box::new(err)))
    }
}

pub(crate) fn router() -> Router<AppState> {
    routes("/api/git")
}

/// The git routes under `prefix` (`/api/git`, or a conversation's `…/git`).
pub(crate) fn routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/changes"), get(changes))
        .route(&format!("{prefix}/diff"), get(diff))
        .route(&format!("{prefix}/commits"), get(commits))
        .route(
            &format!("{prefix}/commits/{{sha}}/changes"),
            get(commit_changes),
        )
}

/// A failure of the helpers as the routes answer it: 400 with the reference's text; the
/// pool's own 503 / 504 as they are.
fn api_error(err: GitError) -> ApiError {
    match err {
        GitError::Blocking(err) => match err.into_inner().downcast::<ApiError>() {
            Ok(api) => *api,
            Err(other) => ApiError::internal(other.to_string()),
        },
        other => ApiError::bad_request(other.to_string()),
    }
}

/// A commit hash parameter: 4 to 64 hex digits (422 otherwise).
fn check_sha(loc: &[&str], raw: &str) -> ApiResult<()> {
    if (4..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::validation(
            loc,
            "string_pattern_mismatch",
            "String should match pattern '^[0-9a-fA-F]{4,64}$'",
            Value::String(raw.to_owned()),
        ))
    }
}

async fn changes(State(state): State<AppState>, query: Query) -> ApiResult<Response> {
    let path = query.required("path")?;
    state.activity.touch();
    match GIT.changes(path, query.get("ref")).await {
        Ok(changes) => Ok(ok(&changes)),
        Err(GitError::NotARepository) => Ok(ok(&Vec::<GitChange>::new())),
        Err(err) => Err(api_error(err)),
    }
}

async fn diff(State(state): State<AppState>, query: Query) -> ApiResult<Response> {
    let path = query.required("path")?;
    let commit = query.get("commit");
    if let Some(commit) = commit {
        check_sha(&["query", "commit"], commit)?;
    }
    let reference = query.get("ref");
    if reference.is_some() && commit.is_some() {
        return Err(ApiError::bad_request(
            "'ref' and 'commit' are mutually exclusive",
        ));
    }
    state.activity.touch();
    let result = match commit {
        Some(commit) => GIT.commit_diff(path, commit).await,
        None => GIT.diff(path, reference).await,
    };
    match result {
        Ok(diff) => Ok(ok(&diff)),
        Err(GitError::NotARepository) => Ok(ok(&GitDiff {
            modified: None,
            original: None,
        })),
        Err(err) => Err(api_error(err)),
    }
}

async fn commits(State(state): State<AppState>, query: Query) -> ApiResult<Response> {
    let path = query.required("path")?;
    let limit = query
        .parse("limit", "int_parsing", |raw| {
            raw.trim().parse::<i64>().map_err(|_| {
                "Input should be a valid integer, unable to parse string as an integer".to_owned()
            })
        })?
        .unwrap_or(50);
    if !(1..=200).contains(&limit) {
        let (kind, msg) = if limit < 1 {
            (
                "greater_than_equal",
                "Input should be greater than or equal to 1",
            )
        } else {
            (
                "less_than_equal",
                "Input should be less than or equal to 200",
            )
        };
        return Err(ApiError::validation(
            &["query", "limit"],
            kind,
            msg,
            Value::String(limit.to_string()),
        ));
    }
    state.activity.touch();
    let limit = usize::try_from(limit).unwrap_or(50);
    match GIT.log(path, limit).await {
        Ok(log) => Ok(ok(&log)),
        Err(GitError::NotARepository) => Ok(ok(&json!({"commits": [], "has_more": false}))),
        Err(err) => Err(api_error(err)),
    }
}

async fn commit_changes(State(state): State<AppState>, mut parts: Parts) -> ApiResult<Response> {
    let sha = path_param(&mut parts, &state, "sha").await?;
    check_sha(&["path", "sha"], &sha)?;
    let query = Query(
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    let path = query.required("path")?;
    state.activity.touch();
    match GIT.commit_changes(path, &sha).await {
        Ok(changes) => Ok(ok(&changes)),
        Err(GitError::NotARepository) => Ok(ok(&Vec::<GitChange>::new())),
        Err(err) => Err(api_error(err)),
    }
}
