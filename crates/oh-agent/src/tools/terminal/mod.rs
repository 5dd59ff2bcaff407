//! The `terminal` tool: one persistent bash session per conversation.
