//! Integration tests: `OpenHandsCloudWorkspace` against a fake Cloud API and in-process agent
//! servers.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod suite;
