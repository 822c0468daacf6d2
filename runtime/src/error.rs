use thiserror::Error;

/// Errors of the runtime crate. `is_input` tells bad input (exit 2) from run-time failure (exit 1).
#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON for {what}: {source}")]
    Json {
        path: String,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// True when the error comes from what the user gave (exit code 2), false for run-time failures.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidConfig(_) | Error::InvalidArgument(_) | Error::Io { .. } | Error::Json { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
