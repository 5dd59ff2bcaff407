//! OpenHands agents in Rust.
//!
//! Conversation code is written once and runs against a local workspace, an agent server
//! (in this process, a container, a sandbox from a runtime API or OpenHands Cloud). Pick the
//! backends you use with features:
//!
//! | Use case | `Cargo.toml` line |
//! | --- | --- |
//! | Decode and build wire types only | `openhands = { version = "0.1", default-features = false }` |
//! | Drive a running agent server | `openhands = "0.1"` (feature `client`, the default) |
//! | Agent servers in Docker containers | `openhands = { version = "0.1", features = ["docker"] }` |
//! | Sandboxes from a runtime API | `openhands = { version = "0.1", features = ["api"] }` |
//! | OpenHands Cloud sandboxes | `openhands = { version = "0.1", features = ["cloud"] }` |
//! | Conversations in this process | `openhands = { version = "0.1", features = ["local"] }` |
//! | The agent server in this process ([`LocalServer`]) | `openhands = { version = "0.1", features = ["server"] }` |
//!
//! The main types:
//!
//! - [`Workspace`]: where the agent works, [`Workspace::Local`] (this machine) or
//!   [`Workspace::Remote`] (an agent server): commands, file upload and download, git.
//! - [`Conversation`]: created from an agent and a workspace, it runs the agent in this
//!   process for a local workspace and on the server for a remote one, with the same
//!   methods (`send_message`, `run`, `pause`, `events`, `stats`, …).
//! - [`RemoteWorkspace`] and [`RemoteConversation`]: the agent server's client, usable
//!   directly for everything the server offers.
//! - [`LocalServer`]: the agent server on a free loopback port of this process.
//! - [`protocol`]: the wire types (events, messages, actions, observations), always there.
//!
//! Every fallible call returns [`Result`], whose [`Error`] wraps the backends' errors and
//! reports a failed run as [`Error::Run`] whichever backend ran it.
#![cfg_attr(
    feature = "client",
    doc = r#"
# Quick start

```no_run
use openhands::prelude::*;

# async fn demo() -> openhands::Result<()> {
let mut llm = Llm::new("anthropic/claude-sonnet-4-5");
llm.api_key = Some(std::env::var("LLM_API_KEY").unwrap_or_default().into());
let agent = Agent::new(llm, vec![ToolSpec::new("terminal"), ToolSpec::new("file_editor")]);

let workspace = Workspace::remote("http://localhost:8000", "/workspace/project")?;
let conversation = Conversation::builder(agent, workspace)
    .callback(|event| println!("{}", event.kind()))
    .build()
    .await?;
conversation.send_text("Write hello.py that prints hello, and run it.").await?;
let status = conversation.run().await?;
println!("{status:?}, cost ${:.4}", conversation.accumulated_cost().await?);
conversation.close().await;
# Ok(()) }
```
"#
)]
#![cfg_attr(
    feature = "server",
    doc = r#"
# The same code, local or remote

With the `server` feature the agent server runs in this process; the function below does
not know whether its conversation runs here or behind HTTP and a WebSocket.

```no_run
use openhands::prelude::*;

async fn greet(agent: Agent, workspace: Workspace) -> openhands::Result<ExecutionStatus> {
    let result = workspace.execute_command("echo hello").await?;
    assert_eq!(result.stdout, "hello\n");
    let conversation = Conversation::new(agent, workspace, []).await?;
    conversation.send_text("Say hello in the terminal, then finish.").await?;
    let status = conversation.run().await?;
    conversation.close().await;
    Ok(status)
}

# async fn demo(agent: Agent) -> openhands::Result<()> {
greet(agent.clone(), Workspace::local("/tmp/hello")).await?;
let server = LocalServer::start().await?;
greet(agent, server.workspace()?.into()).await?;
server.shutdown().await?;
# Ok(()) }
```
"#
)]
#![cfg_attr(
    all(feature = "docker", feature = "api", feature = "cloud"),
    doc = r#"
# Containers and sandboxes

A Docker container, a sandbox from a runtime API and an OpenHands Cloud sandbox each start an
agent server and hand it over as a [`Workspace`]; their errors convert into [`Error`], so `?`
works on every call. The container or sandbox is removed when its handle is dropped (or
closed), unless asked to keep it.

```no_run
use openhands::prelude::*;

async fn hello(workspace: Workspace) -> openhands::Result<()> {
    let result = workspace.execute_command("echo hello").await?;
    println!("{}", result.stdout);
    Ok(())
}

# async fn demo() -> openhands::Result<()> {
// A container of the agent-server image on this machine.
let docker = DockerWorkspace::builder().start().await?;
hello(Workspace::from(&docker)).await?;

// A sandbox from a runtime API (e.g. `openhands-sandbox-server`).
let api = ApiRemoteWorkspace::builder("http://127.0.0.1:8600", "runtime-key", "openhands-agent-server:latest")
    .start()
    .await?;
hello(Workspace::from(&api)).await?;

// An OpenHands Cloud sandbox.
let cloud = OpenHandsCloudWorkspace::builder("https://app.all-hands.dev", "cloud-key")
    .start()
    .await?;
hello(Workspace::from(&cloud)).await?;
# Ok(()) }
```
"#
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Declares items that exist only with a feature (or one of several), and marks them so in
/// the docs.
macro_rules! cfg_feature {
    (any $features:tt => $($item:item)*) => {
        $( cfg_feature!(@any $features $item); )*
    };
    (@any ($($feature:literal),+) $item:item) => {
        #[cfg(any($(feature = $feature),+))]
        #[cfg_attr(docsrs, doc(cfg(any($(feature = $feature),+))))]
        $item
    };
    ($feature:literal => $($item:item)*) => {
        $(
            #[cfg(feature = $feature)]
            #[cfg_attr(docsrs, doc(cfg(feature = $feature)))]
            $item
        )*
    };
}

mod error;

pub use error::{Error, Result};

/// Wire types shared with the Python agent server: events, messages, actions, observations,
/// agent and LLM settings, conversation state and the agent server's REST models. Always
/// available.
///
/// The modules hold every type of their kind (each event, action and observation, for a
/// `match` in a callback); the types used most are also here. Serialization helpers,
/// timestamp parsers, the agent server's bash-endpoint models and the APIs of sandbox
/// services stay internal to the crates that use them.
pub mod protocol {
    #[doc(inline)]
    pub use oh_protocol::{
        agent, api, event, gemini, message, server, state, tool, tool_gpt5_planning, workspace,
    };

    #[doc(inline)]
    pub use oh_protocol::{
        Action, ActionEvent, Agent, AgentBase, AgentErrorEvent, AlwaysConfirm, Callback,
        CommandResult, ConfirmRisky, ConfirmationPolicy, Content, ConversationErrorEvent,
        ConversationInfo, ConversationState, ConversationStateUpdateEvent, ConversationStats,
        ErrorBody, Event, EventBase, EventPage, ExecutionStatus, FileOperationResult, GitChange,
        GitChangeStatus, GitDiff, ImageContent, Llm, LookupSecret, Message, MessageEvent,
        MessageToolCall, Metrics, NeverConfirm, Observation, ObservationEvent, Role, RunFailure,
        SecretSource, SecretString, SecurityAnalyzer, SecurityRisk, ServerInfo, Source,
        StartConversationRequest, StaticSecret, SystemPromptEvent, TextContent, TokenUsage,
        ToolSpec, Unknown, UserRejectObservation,
    };
}

cfg_feature! { any("local", "client") =>
    mod conversation;
    mod workspace;
    pub use conversation::{Conversation, ConversationBuilder, callback};
    #[doc(inline)]
    pub use oh_protocol::Callback;
    pub use workspace::{DEFAULT_COMMAND_TIMEOUT, ExecuteCommand, Workspace};
}

cfg_feature! { "server" =>
    mod local_server;
    pub use local_server::{LocalServer, LocalServerBuilder};
    #[doc(inline)]
    pub use oh_server::ServerError;
}

cfg_feature! { "client" =>
    #[doc(inline)]
    pub use oh_client::{
        RemoteConversation, RemoteConversationBuilder, RemoteWorkspace, RemoteWorkspaceBuilder,
    };

    /// The agent server's client: [`RemoteWorkspace`] and [`RemoteConversation`], their
    /// builders, defaults and errors.
    pub mod client {
        #[doc(inline)]
        pub use oh_client::{
            Backoff, DEFAULT_DELETE_ON_CLOSE, DEFAULT_RUN_TIMEOUT, DEFAULT_WORKING_DIR, Error,
            RemoteConversation, RemoteConversationBuilder, RemoteWorkspace,
            RemoteWorkspaceBuilder, Result,
        };
    }
}
cfg_feature! { "docker" =>
    #[doc(inline)]
    pub use oh_workspace_docker::{DockerDevWorkspace, DockerWorkspace, DockerWorkspaceBuilder};

    /// Agent servers in local Docker containers: [`DockerWorkspace`], its builder, the
    /// image built from a checkout ([`DockerDevWorkspace`]) and the removal of containers a
    /// killed process left behind ([`sweep`](docker::sweep)).
    pub mod docker {
        #[doc(inline)]
        pub use oh_workspace_docker::{
            DEFAULT_IMAGE, DockerDevWorkspace, DockerWorkspace, DockerWorkspaceBuilder, Error,
            LABEL, OWNER_LABEL, Result, sweep,
        };
    }
}
cfg_feature! { "api" =>
    #[doc(inline)]
    pub use oh_workspace_api::{ApiRemoteWorkspace, ApiRemoteWorkspaceBuilder};

    /// Agent servers in sandboxes from a runtime API: [`ApiRemoteWorkspace`], its builder,
    /// options and errors.
    pub mod api {
        #[doc(inline)]
        pub use oh_workspace_api::{
            ApiRemoteWorkspace, ApiRemoteWorkspaceBuilder, DEFAULT_RUNTIME_CLASS,
            DEFAULT_WORKING_DIR, Error, PullPolicy, Result, TargetType,
        };
    }
}
cfg_feature! { "cloud" =>
    #[doc(inline)]
    pub use oh_workspace_cloud::{OpenHandsCloudWorkspace, OpenHandsCloudWorkspaceBuilder};

    /// Agent servers in OpenHands Cloud sandboxes: [`OpenHandsCloudWorkspace`], its
    /// builder, defaults and errors.
    pub mod cloud {
        #[doc(inline)]
        pub use oh_workspace_cloud::{
            DEFAULT_AGENT_SERVER_PORT, DEFAULT_WORKING_DIR, Error, OpenHandsCloudWorkspace,
            OpenHandsCloudWorkspaceBuilder, Result,
        };
    }
}
cfg_feature! { "local" =>
    #[doc(inline)]
    pub use oh_agent::conversation::LocalConversation;
    #[doc(inline)]
    pub use oh_agent::workspace::LocalWorkspace;

    /// Conversations in this process: [`LocalConversation`] (what [`Conversation::Local`]
    /// holds) and [`LocalWorkspace`], with their errors.
    pub mod local {
        #[doc(inline)]
        pub use oh_agent::conversation::{Error, LocalConversation, Result};
        #[doc(inline)]
        pub use oh_agent::workspace::LocalWorkspace;
        #[doc(inline)]
        pub use oh_agent::workspace::git::GitError;
    }
}

/// The everyday names, for `use openhands::prelude::*;`.
pub mod prelude {
    pub use crate::protocol::{
        Agent, CommandResult, ConfirmationPolicy, ConversationStats, Event, ExecutionStatus,
        FileOperationResult, GitChange, GitDiff, Llm, LookupSecret, Message, Observation,
        SecretSource, ToolSpec,
    };
    pub use crate::{Error, Result};

    cfg_feature! { any("local", "client") =>
        pub use crate::{Callback, Conversation, Workspace, callback};
    }
    cfg_feature! { "client" =>
        pub use crate::{RemoteConversation, RemoteWorkspace};
    }
    cfg_feature! { "local" =>
        pub use crate::{LocalConversation, LocalWorkspace};
    }
    cfg_feature! { "docker" =>
        pub use crate::DockerWorkspace;
    }
    cfg_feature! { "api" =>
        pub use crate::ApiRemoteWorkspace;
    }
    cfg_feature! { "cloud" =>
        pub use crate::OpenHandsCloudWorkspace;
    }
    cfg_feature! { "server" =>
        pub use crate::LocalServer;
    }
}
