//! End-to-end tests across crates: the facade over the wire types, and (ignored by default:
//! they need the Docker Engine and `cargo xtask image`) `ApiRemoteWorkspace` and
//! `OpenHandsCloudWorkspace` against our sandbox server.
//!
//! One test binary (`all.rs` + `suite/`) links faster than one per file.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod suite;
