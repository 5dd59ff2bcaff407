//! Integration tests of the wire types: constructors, the Gemini preset's observations and
//! fuzzed parsers.
//!
//! One test binary (`tests/all.rs` + `tests/suite/`) links faster than one per file. The
//! captured fixtures are checked by `tests/wire_fixtures.rs`, a binary of its own: it has its
//! own harness (one test per fixture file).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod suite;
