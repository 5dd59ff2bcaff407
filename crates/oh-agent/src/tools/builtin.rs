//! The built-in tools `finish` and `think`.
