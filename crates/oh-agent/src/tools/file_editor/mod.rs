//! The `file_editor` tool.
