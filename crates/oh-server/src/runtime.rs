//! Runtime-scoped routes: the bash, file and git routes again under
//! `/api/conversations/{conversation_id}/…`, bound to that conversation (as the reference's
//! runtime router). Before the shared handlers run, [`bind`] checks that the conversation
//! exists (404 `Conversation not found: <id>`), that a `path` or `workspace_dir` query parameter is
//! absolute and inside the conversation's working directory (422), and that a trajectory id
//! is the conversation's own (422). Bash commands of a conversation are stored under its
//! `bash_events` directory and run in its working directory unless they name one inside it
//! (`bash`). These checks route requests; they are no sandbox: commands still run on the host.
//! `archive`, `download-trajectory` and `vscode` answer 501 after the checks, as they do at
//! the top level.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::extract::{FromRequestParts as _, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use oh_protocol::WorkspaceSpec;

use crate::app::AppState;
use crate::bash::BashService;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ConversationId, Query, parse_uuid, path_param};

const PREFIX: &str = "/api/conversations/{conversation_id}";

/// Conversation bash services kept open; past this many, the unused ones are closed when
/// another opens (their events stay on disk and are indexed again on next use).
const OPEN_SCOPED_BASH: usize = 32;

/// What the shared handlers need of the conversation a request is bound to.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeScope {
    pub(crate) bash: BashService,
}

/// Bash services of conversations, created when first used.
pub(crate) type ScopedBash = std::sync::Mutex<HashMap<uuid::Uuid, BashService>>;

pub(crate) fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .merge(crate::bash::routes(&format!("{PREFIX}/bash")))
        .merge(crate::files::routes(&format!("{PREFIX}/file")))
        .merge(crate::git::routes(&format!("{PREFIX}/git")))
        .route(&format!("{PREFIX}/file/archive"), get(not_implemented))
        .route(
            &format!("{PREFIX}/file/download-trajectory/{{trajectory_conversation_id}}"),
            get(not_implemented),
        )
        .route(&format!("{PREFIX}/vscode/url"), get(not_implemented))
        .route(&format!("{PREFIX}/vscode/status"), get(not_implemented))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), bind))
}

async fn not_implemented(request: Request) -> Response {
    ApiError::not_implemented(&format!("{} {}", request.method(), request.uri().path()))
        .into_response()
}

/// Python's `Path.resolve()` (not strict): `path` made absolute against the current
/// directory, symbolic links of its existing part resolved, `..` applied in order.
pub(crate) fn resolve(path: &Path) -> PathBuf {
    let mut out = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    };
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                let is_link = std::fs::symlink_metadata(&out)
                    .map(|meta| meta.file_type().is_symlink())
                    .unwrap_or(false);
                if is_link && let Ok(real) = std::fs::canonicalize(&out) {
                    out = real;
                }
            }
        }
    }
    out
}

/// The checks of the runtime-scoped routes, then the handler with the conversation's
/// [`RuntimeScope`].
async fn bind(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match scope(&state, request).await {
        Ok(request) => next.run(request).await,
        Err(err) => err.into_response(),
    }
}

async fn scope(state: &AppState, request: Request) -> ApiResult<Request> {
    let (mut parts, body) = request.into_parts();
    let ConversationId(id) = ConversationId::from_request_parts(&mut parts, state).await?;
    let live = crate::conversations::live(state, id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Conversation not found: {id}"),
            )
        })?;
    let working_dir = match live.conv.state().workspace {
        WorkspaceSpec::Local(local) => PathBuf::from(local.working_dir),
        _ => return Err(ApiError::bad_request("unsupported workspace kind")),
    };

    let Query(query) = Query::from_request_parts(&mut parts, state).await?;
    let named: Vec<(String, PathBuf)> = query
        .iter()
        .filter(|(name, _)| name == "path" || name == "workspace_dir")
        .map(|(name, value)| (name.clone(), PathBuf::from(value)))
        .collect();
    let root = working_dir.clone();
    let outside = tokio::task::spawn_blocking(move || {
        let root = resolve(&root);
        named
            .into_iter()
            .find(|(_, path)| !path.is_absolute() || !resolve(path).starts_with(&root))
            .map(|(name, _)| name)
    })
    .await
    .map_err(ApiError::internal)?;
    if let Some(name) = outside {
        return Err(ApiError::unprocessable(format!(
            "{name} must be inside the conversation workspace"
        )));
    }

    if parts.uri.path().contains("/file/download-trajectory/") {
        let raw = path_param(&mut parts, state, "trajectory_conversation_id").await?;
        match parse_uuid(&raw) {
            None => {
                return Err(ApiError::unprocessable(
                    "Invalid trajectory conversation id",
                ));
            }
            Some(trajectory) if trajectory != id => {
                return Err(ApiError::unprocessable(
                    "Trajectory must belong to the selected conversation",
                ));
            }
            Some(_) => {}
        }
    }

    let bash = scoped_bash(state, id, live.dir().join("bash_events"), working_dir).await?;
    parts.extensions.insert(RuntimeScope { bash });
    Ok(Request::from_parts(parts, body))
}

/// The conversation's bash service, opened on first use.
async fn scoped_bash(
    state: &AppState,
    id: uuid::Uuid,
    dir: PathBuf,
    working_dir: PathBuf,
) -> ApiResult<BashService> {
    if let Some(found) = lock(&state.scoped_bash).get(&id) {
        return Ok(found.clone());
    }
    let env = state
        .config
        .command_env
        .iter()
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let opened = tokio::task::spawn_blocking(move || {
        BashService::for_conversation(&dir, env, working_dir)
            .map_err(|err| ApiError::internal(format!("bash events of the conversation: {err}")))
    })
    .await
    .map_err(ApiError::internal)??;
    let mut open = lock(&state.scoped_bash);
    if open.len() >= OPEN_SCOPED_BASH {
        open.retain(|_, bash| !bash.is_unused());
    }
    // A concurrent first use may have opened one too: keep the first.
    Ok(open.entry(id).or_insert(opened).clone())
}

/// Forgets a deleted conversation's bash service.
pub(crate) fn forget(state: &AppState, id: uuid::Uuid) {
    lock(&state.scoped_bash).remove(&id);
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_applies_parent_components_in_order() {
        assert_eq!(resolve(Path::new("/a/b/../c")), PathBuf::from("/a/c"));
        assert_eq!(resolve(Path::new("/a/./b//")), PathBuf::from("/a/b"));
        assert_eq!(resolve(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    fn resolve_follows_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/tmp", root.join("out")).unwrap();
        assert_eq!(resolve(&root.join("out/x")), resolve(Path::new("/tmp/x")));
        assert_eq!(resolve(&root.join("real/../y")), root.join("y"));
    }
}
