//! Integration tests of the sandbox server on the real Docker Engine (ignored by default: they
//! need the engine and `cargo xtask image`): restarts, and the Swarm backend.
//!
//! One test binary (`tests/all.rs` + `tests/suite/`) links faster than one per file.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod suite;
