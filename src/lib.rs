//! odelt: training, checkpoints and the command line. The only crate that links libtorch.

pub mod cli;
pub mod error;
