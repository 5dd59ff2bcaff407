//! DockerWorkspace: starts an agent-server container on the local Docker Engine (through bollard) and hands back a remote workspace pointing at it.
//!
//! **Status:** not implemented yet; the crate exposes no API.
