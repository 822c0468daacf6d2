use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] odelt_runtime::Error),
    #[error("{0}")]
    InvalidArgument(String),
}

impl Error {
    /// True when the error comes from what the user gave (exit code 2).
    pub fn is_input(&self) -> bool {
        match self {
            Error::Runtime(e) => e.is_input(),
            Error::InvalidArgument(_) => true,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
