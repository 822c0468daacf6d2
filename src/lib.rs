//! odelt: the library behind the command line — data, sample quality, the demo figure, PNG
//! output — and, with the `train` feature, the tch model and its training (the only code that
//! links libtorch). The formats live in `odelt-format`; export, engines and the runtime in
//! their own crates (docs/DESIGN.md §1).

pub mod args;
pub mod cli;
pub mod data;
pub mod demo;
pub mod error;
pub mod eval;
#[cfg(feature = "train")]
pub mod model;
pub mod png;
pub mod progress;
pub mod serve;
pub mod train;
