//! OpenHands agents in Rust.
//!
//! Conversation code is written once and runs against a local workspace, a Docker container,
//! a sandbox from a runtime API or OpenHands Cloud. Pick the backends you use with features:
//!
//! | Use case | `Cargo.toml` line |
//! | --- | --- |
//! | Decode and build wire types only | `openhands = { version = "0.1", default-features = false }` |
//! | Drive a running agent server | `openhands = "0.1"` (feature `client`, the default) |
//! | Agent servers in Docker containers | `openhands = { version = "0.1", features = ["docker"] }` |
//! | Sandboxes from a runtime API | `openhands = { version = "0.1", features = ["api"] }` |
//! | OpenHands Cloud sandboxes | `openhands = { version = "0.1", features = ["cloud"] }` |
//! | Conversations in this process | `openhands = { version = "0.1", features = ["local"] }` |
//! | The agent server in this process | `openhands = { version = "0.1", features = ["server"] }` |
//!
//! **Status:** only [`protocol`] (the wire types) is implemented so far. The other modules
//! re-export crates that do not expose an API yet.
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Wire types shared with the Python agent server: events, messages, actions, observations and
/// REST models. Always available.
#[doc(inline)]
pub use oh_protocol as protocol;

/// Declares items that exist only with a feature, and marks them so in the docs.
macro_rules! cfg_feature {
    ($feature:literal => $($item:item)*) => {
        $(
            #[cfg(feature = $feature)]
            #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
            $item
        )*
    };
}

cfg_feature! { "client" =>
    /// Clients for a running agent server.
    pub use oh_client as client;
}
cfg_feature! { "docker" =>
    /// Agent servers in local Docker containers.
    pub use oh_workspace_docker as docker;
}
cfg_feature! { "api" =>
    /// Agent servers in sandboxes from a runtime API.
    pub use oh_workspace_api as api;
}
cfg_feature! { "cloud" =>
    /// Agent servers in OpenHands Cloud sandboxes.
    pub use oh_workspace_cloud as cloud;
}
cfg_feature! { "local" =>
    /// The agent core, for conversations in this process.
    pub use oh_agent as agent;
}
cfg_feature! { "server" =>
    /// The agent server, to run in this process.
    pub use oh_server as server;
}
