//! Integration tests of the agent server: every route, the sockets, persistence across restarts,
//! limits and fuzzed inputs, over real HTTP on a loopback port.
//!
//! One test binary (`tests/all.rs` + `tests/suite/`) links faster than one per file.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod suite;
