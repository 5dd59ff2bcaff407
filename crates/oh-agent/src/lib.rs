//! The OpenHands agent core.
//!
//! This crate will hold the LLM clients (OpenAI-compatible Chat Completions and Anthropic
//! Messages), the default tools (`terminal`, `file_editor`, `task_tracker`, `finish`,
//! `think`), the conversation engine with its execution-status state machine, persistence in
//! the reference's on-disk layout, and `LocalWorkspace`.
//!
//! **Status:** not implemented yet. The crate exists so the workspace layering is fixed from
//! the start; it exposes no API. The wire types it will speak live in [`oh_protocol`].
