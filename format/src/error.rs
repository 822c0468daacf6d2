use thiserror::Error;

/// Errors reading or writing the formats. Every one but [`Error::Internal`] and
/// [`Error::Write`] is bad input (exit code 2).
#[derive(Debug, Error)]
pub enum Error {
    #[error("invalid model config: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidArgument(String),
    /// A file that could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A file that could not be written (a run-time failure: disk full, permissions).
    #[error("{path}: {source}")]
    Write {
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
    #[error("{path}: {what} format_version {found} is not supported (expected {expected})")]
    Version {
        path: String,
        what: &'static str,
        found: u64,
        expected: u32,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True when the error comes from what the user gave (exit code 2).
    pub fn is_input(&self) -> bool {
        !matches!(self, Error::Write { .. } | Error::Internal(_))
    }

    /// True when a file that was asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    pub(crate) fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Write {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
