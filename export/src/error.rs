use std::path::Path;

use thiserror::Error;

/// Errors of the exporter. [`Error::is_input`] tells bad input (exit 2) from failures while
/// writing (exit 1).
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Format(#[from] odelt_format::Error),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{path}: cannot read the checkpoint weights: {source}")]
    ReadCheckpoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid safetensors file ({reason}); re-save the checkpoint")]
    CorruptCheckpoint { path: String, reason: String },
    #[error("{path}: tensor `{name}` {shape:?} is missing; the checkpoint does not match its config.json")]
    MissingTensor {
        path: String,
        name: String,
        shape: Vec<usize>,
    },
    #[error("{path}: tensor `{name}` has shape {found:?}, config.json implies {expected:?}")]
    TensorShape {
        path: String,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{name}` has element type {dtype}; expected F32, F16 or BF16")]
    TensorDtype {
        path: String,
        name: String,
        dtype: String,
    },
    #[error(
        "{path}: tensor `{name}` holds a non-finite value ({value}); the checkpoint is corrupt or diverged"
    )]
    NonFinite { path: String, name: String, value: f32 },
    /// A file of an export that cannot be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An export file that is truncated, altered or not what the manifest says.
    #[error("{path}: {message}")]
    Corrupt { path: String, message: String },
    #[error("output folder {0} exists and is not an odelt export (no manifest.json); choose another --out or remove it")]
    OutputNotExport(String),
    /// A broken invariant of the exporter itself, reported rather than panicking.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("{path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when the error comes from what the user gave (exit code 2).
    pub fn is_input(&self) -> bool {
        match self {
            Error::Format(e) => e.is_input(),
            Error::InvalidArgument(_)
            | Error::ReadCheckpoint { .. }
            | Error::CorruptCheckpoint { .. }
            | Error::MissingTensor { .. }
            | Error::TensorShape { .. }
            | Error::TensorDtype { .. }
            | Error::NonFinite { .. }
            | Error::OutputNotExport(_)
            | Error::Read { .. }
            | Error::Corrupt { .. } => true,
            Error::Write { .. } | Error::Internal(_) => false,
        }
    }

    pub(crate) fn read(path: &Path, source: std::io::Error) -> Self {
        Error::Read {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn write(path: &Path, source: std::io::Error) -> Self {
        Error::Write {
            path: path.display().to_string(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
