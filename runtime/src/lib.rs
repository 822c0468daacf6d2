//! odelt-runtime: runs exported ODE_t(ODE_l) engines without libtorch.
#![warn(clippy::unwrap_used)]

pub mod config;
pub mod error;
pub mod manifest;

pub use config::{CheckpointMeta, ModelConfig};
pub use error::{Error, Result};
pub use manifest::Manifest;
