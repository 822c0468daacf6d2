use thiserror::Error;

/// Errors of the engine builder and the latency benchmark. `is_input` tells bad input
/// (exit 2) from run-time failure (exit 1).
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] odelt_runtime::Error),
    #[error(transparent)]
    Format(#[from] odelt_format::Error),
    #[error(transparent)]
    Export(#[from] odelt_export::Error),
    #[error("{0}")]
    InvalidArgument(String),
    /// A graph ONNX Runtime or the protobuf parser rejects.
    #[error("{path}: {message}")]
    Model { path: String, message: String },
    /// Building an engine failed.
    #[error("length {length}: building the {backend} engine failed: {message}")]
    Build {
        length: u32,
        backend: &'static str,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// True when the error comes from what the user gave (exit code 2).
    pub fn is_input(&self) -> bool {
        match self {
            Error::Runtime(e) => e.is_input(),
            Error::Format(e) => e.is_input(),
            Error::Export(e) => e.is_input(),
            Error::InvalidArgument(_) | Error::Model { .. } => true,
            Error::Build { .. } | Error::Io { .. } => false,
        }
    }

    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.display().to_string(),
            source,
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
