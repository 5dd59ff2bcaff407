//! Actions and observations of the gemini preset's file tools: `read_file`, `write_file`,
//! `edit` and `list_directory` (kinds `ReadFileAction`, `ReadFileObservation`, …), with the
//! reference's field names, defaults and nullability.

use serde::{Deserialize, Serialize};

use crate::message::Content;
use crate::wire::omit_none;

/// Read a text file, optionally a window of its lines (`ReadFileAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFileAction {
    /// The file, absolute or relative to the workspace.
    pub file_path: String,
    /// First line to show, 0-based.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub offset: Option<u64>,
    /// Most lines to show (at least 1).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub limit: Option<u64>,
}

/// Result of `read_file` (`ReadFileObservation`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadFileObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The read failed.
    #[serde(default)]
    pub is_error: bool,
    /// The resolved path.
    pub file_path: String,
    /// The lines shown, numbered.
    #[serde(default)]
    pub file_content: String,
    /// Only part of the file is shown.
    #[serde(default)]
    pub is_truncated: bool,
    /// With `is_truncated`: first and last line shown, 1-based.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub lines_shown: Option<(u64, u64)>,
    /// Lines in the file.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub total_lines: Option<u64>,
}

/// Replace a file's whole content, creating it if needed (`WriteFileAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFileAction {
    /// The file, absolute or relative to the workspace.
    pub file_path: String,
    /// The new content.
    pub content: String,
}

/// Result of `write_file` (`WriteFileObservation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WriteFileObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The write failed.
    #[serde(default)]
    pub is_error: bool,
    /// The resolved path (unset on errors).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub file_path: Option<String>,
    /// The file did not exist before.
    #[serde(default)]
    pub is_new_file: bool,
    /// The content before, if the file existed.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub old_content: Option<String>,
    /// The content written.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub new_content: Option<String>,
}

/// Find-and-replace in a file, or create one with an empty `old_string` (`EditAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditAction {
    /// The file, absolute or relative to the workspace.
    pub file_path: String,
    /// The exact text to replace; empty to create the file.
    pub old_string: String,
    /// The replacement.
    pub new_string: String,
    /// How many occurrences must be found (all are replaced).
    #[serde(default = "one")]
    pub expected_replacements: u64,
}

fn one() -> u64 {
    1
}

/// Result of `edit` (`EditObservation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EditObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The edit failed.
    #[serde(default)]
    pub is_error: bool,
    /// The resolved path.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub file_path: Option<String>,
    /// The edit created the file.
    #[serde(default)]
    pub is_new_file: bool,
    /// Occurrences replaced.
    #[serde(default)]
    pub replacements_made: u64,
    /// The content before.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub old_content: Option<String>,
    /// The content after.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub new_content: Option<String>,
}

/// List a directory, optionally two levels deep (`ListDirectoryAction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDirectoryAction {
    /// The directory, absolute or relative to the workspace.
    #[serde(default = "dot")]
    pub dir_path: String,
    /// Also list subdirectories (two levels).
    #[serde(default)]
    pub recursive: bool,
}

fn dot() -> String {
    ".".to_owned()
}

/// One entry of a listing (`FileEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name.
    pub name: String,
    /// Full path.
    pub path: String,
    /// A directory.
    pub is_directory: bool,
    /// Size in bytes, 0 for directories.
    pub size: u64,
    /// Last modification, naive ISO time.
    pub modified_time: String,
}

/// Result of `list_directory` (`ListDirectoryObservation`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListDirectoryObservation {
    /// What the LLM sees.
    #[serde(default)]
    pub content: Vec<Content>,
    /// The listing failed.
    #[serde(default)]
    pub is_error: bool,
    /// The resolved directory (unset on errors).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub dir_path: Option<String>,
    /// The entries.
    #[serde(default)]
    pub entries: Vec<FileEntry>,
    /// Entries found.
    #[serde(default)]
    pub total_count: u64,
    /// The listing hit its cap.
    #[serde(default)]
    pub is_truncated: bool,
}
