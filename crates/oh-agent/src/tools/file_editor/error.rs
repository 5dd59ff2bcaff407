//! Why a file editor command failed. Each variant renders to the exact text the reference
//! shows the model.

/// A failed file editor command; becomes an error observation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EditorError {
    /// A parameter the command needs was not given.
    #[error("Parameter `{parameter}` is required for command: {command}.")]
    ParameterMissing {
        /// The command, e.g. `create`.
        command: &'static str,
        /// The parameter, e.g. `file_text`.
        parameter: &'static str,
    },
    /// A parameter has a value the command cannot use.
    #[error("Invalid `{parameter}` parameter: {value}. {hint}")]
    ParameterInvalid {
        /// The parameter.
        parameter: &'static str,
        /// Its value, rendered as Python's `str()` would.
        value: String,
        /// What is wrong and what to do instead.
        hint: String,
    },
    /// The file is too large or binary.
    #[error("File validation failed for {path}: {reason}")]
    FileValidation {
        /// The file.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// Any other failure, with its full message.
    #[error("{0}")]
    Tool(String),
}

impl EditorError {
    /// A [`EditorError::ParameterInvalid`].
    pub(crate) fn invalid(
        parameter: &'static str,
        value: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self::ParameterInvalid {
            parameter,
            value: value.into(),
            hint: hint.into(),
        }
    }

    /// A [`EditorError::ParameterMissing`].
    pub(crate) fn missing(command: &'static str, parameter: &'static str) -> Self {
        Self::ParameterMissing { command, parameter }
    }
}
