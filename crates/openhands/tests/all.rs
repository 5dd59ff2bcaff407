//! Integration tests of the facade: conversations and workspace operations through both
//! kinds of workspace, the in-process agent server, and a scripted LLM over real HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod suite;
