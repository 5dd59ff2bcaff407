//! End-to-end tests of the openhands crates; see `all.rs`. The library is empty.
