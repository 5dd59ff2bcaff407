//! Actions and observations of the tools of the SDK's `gpt5` and `planning` presets:
//! `apply_patch` (`ApplyPatchAction` / `ApplyPatchObservation`), `glob`, `grep`, and
//! `planning_file_editor`, whose action and observation have the fields of the file editor's
//! (see [`crate::tool::FileEditorAction`]) under their own `kind`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::message::Content;
use crate::wire::omit_none;

/// Apply a patch in the `*** Begin Patch` … `*** End Patch` format (`ApplyPatchAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyPatchAction {
    /// The patch text.
    pub patch: String,
}

/// What one file went through in an applied patch (`ActionType` of the reference).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileChangeType {
    /// A new file.
    Add,
    /// A removed file.
    Delete,
    /// A changed (possibly moved) file.
    Update,
}

/// The change of one file (`FileChange`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Add, delete or update.
    #[serde(rename = "type")]
    pub change_type: FileChangeType,
    /// Content before (delete, update).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub old_content: Option<String>,
    /// Content after (add, update).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub new_content: Option<String>,
    /// Where an updated file was moved to.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub move_path: Option<String>,
}

/// The changes an applied patch made, by path as written in the patch (`Commit`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Commit {
    /// Path → change.
    #[serde(default)]
    pub changes: BTreeMap<String, FileChange>,
}

/// Result of `apply_patch` (`ApplyPatchObservation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ApplyPatchObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The patch was refused.
    #[serde(default)]
    pub is_error: bool,
    /// Summary (`Done!` on success; empty on error).
    #[serde(default)]
    pub message: String,
    /// How loosely the context lines matched (0: exactly).
    #[serde(default)]
    pub fuzz: i64,
    /// The applied changes (absent on error).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub commit: Option<Commit>,
}

/// Find files by glob pattern (`GlobAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobAction {
    /// The pattern, e.g. `**/*.rs`; may be absolute.
    pub pattern: String,
    /// Directory to search; the working directory if absent.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub path: Option<String>,
}

/// Result of `glob` (`GlobObservation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GlobObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The search failed.
    #[serde(default)]
    pub is_error: bool,
    /// Matching files, absolute, newest first, at most 100.
    #[serde(default)]
    pub files: Vec<String>,
    /// The pattern as given.
    #[serde(default)]
    pub pattern: String,
    /// The directory searched.
    #[serde(default)]
    pub search_path: String,
    /// More than the returned files matched.
    #[serde(default)]
    pub truncated: bool,
}

/// Find files whose content matches a regular expression (`GrepAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrepAction {
    /// The regular expression (matched case-insensitively).
    pub pattern: String,
    /// Directory to search; the working directory if absent.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub path: Option<String>,
    /// File-name pattern restricting the files searched, e.g. `*.py`.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub include: Option<String>,
}

/// Result of `grep` (`GrepObservation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct GrepObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The search failed.
    #[serde(default)]
    pub is_error: bool,
    /// Files containing a match, absolute, newest first, at most 100.
    #[serde(default)]
    pub matches: Vec<String>,
    /// The pattern as given.
    #[serde(default)]
    pub pattern: String,
    /// The directory searched.
    #[serde(default)]
    pub search_path: String,
    /// The `include` filter, if any.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub include_pattern: Option<String>,
    /// More than the returned files matched.
    #[serde(default)]
    pub truncated: bool,
}
