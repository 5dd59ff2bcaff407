//! Results of workspace operations and the file and git routes.

use serde::{Deserialize, Serialize};

use crate::wire::{omit_none, yes};

/// Result of `execute_command` (`CommandResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    /// The command.
    pub command: String,
    /// Exit code; -1 on timeout or error.
    pub exit_code: i64,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// The client's deadline passed.
    pub timeout_occurred: bool,
}

/// Result of `file_upload` / `file_download` (`FileOperationResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOperationResult {
    /// The operation succeeded.
    pub success: bool,
    /// Source path.
    pub source_path: String,
    /// Destination path.
    pub destination_path: String,
    /// Bytes transferred.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub file_size: Option<u64>,
    /// Error message.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub error: Option<String>,
}

/// Response of `POST /api/file/upload` (`FileUploadResult`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileUploadResult {
    /// Always true on 200.
    #[serde(default = "yes")]
    pub success: bool,
    /// Bytes written.
    pub file_size: u64,
}

/// How a file changed (`GitChangeStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[non_exhaustive]
pub enum GitChangeStatus {
    /// Renamed.
    Moved,
    /// New or untracked.
    Added,
    /// Removed.
    Deleted,
    /// Modified.
    Updated,
}

/// One changed file (`GitChange`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitChange {
    /// How it changed.
    pub status: GitChangeStatus,
    /// POSIX path relative to the repository root.
    pub path: String,
}

/// Contents of one file before and after (`GitDiff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitDiff {
    /// Current content.
    #[serde(skip_serializing_if = "omit_none")]
    pub modified: Option<String>,
    /// Content at the base.
    #[serde(skip_serializing_if = "omit_none")]
    pub original: Option<String>,
}
