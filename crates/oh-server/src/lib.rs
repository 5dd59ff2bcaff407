//! The OpenHands agent server.
//!
//! A hyper HTTP + WebSocket server with the Python agent server's routes, flags and
//! environment, hosting the agent loop from `oh-agent` and streaming its events.
//!
//! **Status:** not implemented yet; there is no binary and no API. The routes and JSON it will
//! serve are described by the wire types in [`oh_protocol`].
