use thiserror::Error;

/// Errors of the runtime crate. `is_input` tells bad input (exit 2) from run-time failure (exit 1).
#[derive(Debug, Error)]
pub enum Error {
    /// A format file (manifest, config) that cannot be read, parsed or validated.
    #[error(transparent)]
    Format(#[from] odelt_format::Error),
    #[error("{0}")]
    InvalidArgument(String),
    /// A file or folder that was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The ONNX Runtime library could not be found.
    #[error("{0}")]
    OrtLibraryNotFound(String),
    /// The ONNX Runtime library could not be loaded (too old, not ONNX Runtime).
    #[error("{0}")]
    OrtLibrary(String),
    /// A graph ONNX Runtime rejects (missing, corrupt, or not the exporter's interface).
    #[error("{path}: {message}")]
    Model { path: String, message: String },
    /// An execution provider the user asked for is not available in the loaded ONNX Runtime.
    #[error("{0}")]
    Provider(String),
    /// ONNX Runtime failed while running a graph that it had accepted.
    #[error("ONNX Runtime: {0}")]
    Backend(String),
    /// An inference server that cannot be reached, answers with an error or not in time.
    #[error("{0}")]
    Remote(String),
    /// NaN/Inf in a model output, or an adaptive solver that could not finish.
    #[error("{0}")]
    Numerical(String),
    /// A bug: a panic caught at the C boundary, a poisoned lock.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True when the error comes from what the user gave (exit code 2), false for run-time failures.
    ///
    /// Bad input includes a missing or unusable ONNX Runtime library, a corrupt graph and an
    /// unavailable execution provider: each is fixed by changing what is given, not by retrying.
    pub fn is_input(&self) -> bool {
        if let Error::Format(e) = self {
            return e.is_input();
        }
        matches!(
            self,
            Error::InvalidArgument(_)
                | Error::NotFound(_)
                | Error::OrtLibraryNotFound(_)
                | Error::OrtLibrary(_)
                | Error::Model { .. }
                | Error::Provider(_)
        )
    }

    /// True when a file or library that was asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Format(e) => e.is_not_found(),
            Error::NotFound(_) | Error::OrtLibraryNotFound(_) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for `Err(Error::InvalidArgument(format!(…)))`.
macro_rules! invalid {
    ($($arg:tt)*) => {
        Err($crate::error::Error::InvalidArgument(format!($($arg)*)))
    };
}
pub(crate) use invalid;
