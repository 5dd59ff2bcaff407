//! Clients for an OpenHands agent server: `RemoteWorkspace` (commands, files, git) and
//! `RemoteConversation` (create, message, run, event stream over WebSocket).
//!
//! **Status:** not implemented yet; the crate exposes no API. It will speak the wire types in
//! [`oh_protocol`].
