//! Bash commands outside any conversation (spec §7): `/api/bash/*`.

use std::path::{Path, PathBuf};

use axum::Router;

use crate::app::AppState;

/// Runs commands and stores their events under `bash_events_dir`.
#[derive(Debug)]
pub(crate) struct BashService {
    dir: PathBuf,
}

impl BashService {
    pub(crate) fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
