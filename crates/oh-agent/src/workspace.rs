//! `LocalWorkspace`: commands and file transfer on this machine.
