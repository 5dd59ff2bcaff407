//! The helper module shared by the topics (`common`: an in-process agent server, a scripted
//! agent, a TCP proxy that cuts event sockets), then one module per topic.

mod common;

mod disconnect;
mod socket;
