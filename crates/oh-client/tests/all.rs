//! Integration tests of the agent-server client against in-process servers: event sockets cut
//! and reconnected, fatal closes after a reconnect.
//!
//! One test binary (`tests/all.rs` + `tests/suite/`) links faster than one per file.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod suite;
