//! The helper module shared by the engine tests (`server`: a sandbox server in process, on
//! the real engine), then one module per topic.

mod server;

mod cloud;
mod e2e;
mod sandbox;
