//! The `task_tracker` tool.
