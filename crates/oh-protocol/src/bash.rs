//! Server-side shell commands (`/api/bash/*`): not conversation events, global to the server.
//!
//! Ids are UUIDs written as 32 hex characters; timestamps are UTC with `Z`. Written in the
//! full form (nulls present) on REST and on the bash socket.

use serde::{Deserialize, Serialize};

use crate::api::EventSortOrder;
use crate::tagged::{Unknown, tagged_union};
use crate::wire::omit_none;

/// A UUID written as 32 lower-case hex characters (any UUID form is accepted on input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HexUuid(pub uuid::Uuid);

impl HexUuid {
    /// A fresh random id.
    pub fn new_v4() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl std::fmt::Display for HexUuid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.simple().fmt(f)
    }
}

impl Serialize for HexUuid {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.simple())
    }
}

impl<'de> Deserialize<'de> for HexUuid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        uuid::Uuid::deserialize(deserializer).map(Self)
    }
}

/// Body of `POST /api/bash/start_bash_command` and `execute_bash_command` (`ExecuteBashRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteBashRequest {
    /// Shell command, run with `/bin/sh -c`.
    pub command: String,
    /// Working directory (default: the server's).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub cwd: Option<String>,
    /// Seconds before the command is killed.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
}

fn default_timeout() -> u64 {
    300
}

/// A bash event, tagged by `kind`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BashEvent {
    /// A command was started.
    Command(BashCommand),
    /// Output of a command; the last one carries the exit code.
    Output(BashOutput),
    /// A bash socket frame could not be processed.
    Error(BashError),
    /// A kind this crate does not know.
    Unknown(Unknown),
}

tagged_union! { BashEvent, tag = "kind";
    Command(BashCommand) = "BashCommand",
    Output(BashOutput) = "BashOutput",
    Error(BashError) = "BashError",
}

/// A started command (`BashCommand`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BashCommand {
    /// The command.
    pub command: String,
    /// Working directory.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub cwd: Option<String>,
    /// Timeout in seconds.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Command id.
    pub id: HexUuid,
    /// UTC, `…Z`.
    pub timestamp: String,
}

/// Output of a command (`BashOutput`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BashOutput {
    /// Event id.
    pub id: HexUuid,
    /// UTC, `…Z`.
    pub timestamp: String,
    /// The command.
    pub command_id: HexUuid,
    /// Strictly increasing per command, from 0.
    #[serde(default)]
    pub order: u64,
    /// Set on the last output only; -1 for a timeout or a spawn failure.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub exit_code: Option<i64>,
    /// Standard output of this chunk.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub stdout: Option<String>,
    /// Standard error of this chunk.
    #[serde(default, skip_serializing_if = "omit_none")]
    pub stderr: Option<String>,
}

/// An invalid bash socket frame (`BashError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BashError {
    /// Event id.
    pub id: HexUuid,
    /// UTC, `…Z`.
    pub timestamp: String,
    /// Error code.
    pub code: String,
    /// Details.
    pub detail: String,
}

/// A page of bash events (`BashEventPage`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BashEventPage {
    /// The events.
    pub items: Vec<BashEvent>,
    /// Storage name of the first event of the next page (not an event id).
    #[serde(default, skip_serializing_if = "omit_none")]
    pub next_page_id: Option<String>,
}

/// Sort orders of `GET /api/bash/bash_events/search` (same spellings as events).
pub type BashEventSortOrder = EventSortOrder;
