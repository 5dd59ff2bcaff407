//! End-to-end tests of the openhands crates; see `e2e.rs`. The library is empty.
