//! Wire schemas and descriptions of the default tools.
