//! ApiRemoteWorkspace: asks a runtime API for a sandbox running the agent server and hands back a remote workspace pointing at it.
//!
//! **Status:** not implemented yet; the crate exposes no API.
