//! odelt: training, checkpoints and the command line. The only crate that links libtorch.

pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod demo;
pub mod error;
pub mod eval;
pub mod model;
pub mod train;
