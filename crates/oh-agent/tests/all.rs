//! Integration tests of the agent core: tools, LLM clients, conversations on a scripted LLM,
//! persistence and `LocalWorkspace`.
//!
//! One test binary (`tests/all.rs` + `tests/suite/`) links faster than one per file.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod suite;
