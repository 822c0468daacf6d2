//! odelt-runtime: runs exported ODE_t(ODE_l) engines without libtorch.
//!
//! ```no_run
//! use odelt_runtime::{Labels, Runtime, RuntimeOptions, SampleRequest, SolverChoice};
//! # fn main() -> odelt_runtime::Result<()> {
//! let rt = Runtime::open("engines/", RuntimeOptions::default())?;
//! let req = SampleRequest::new(16, SolverChoice::Euler { steps: 8 })
//!     .with_length(8)
//!     .with_seed(42)
//!     .with_labels(Labels::Class(3));
//! let samples = rt.sample(&req)?; // [16, C, H, W] in samples.data
//! println!("{} evaluations in {:?}", samples.stats.nfe, samples.wall);
//! # Ok(())
//! # }
//! ```
//!
//! The noise for a seed is defined in [`noise`]; the C ABI is in [`ffi`] (`include/odelt.h`).
#![warn(clippy::unwrap_used)]

mod cuda_graph;
pub mod decoder;
pub mod engine;
pub mod error;
pub mod ffi;
pub mod length_engine;
pub mod memory;
pub mod noise;
mod options;
pub mod ortlib;
pub mod remote;
mod runtime;
pub mod sample;
pub mod session;
pub mod solver;

/// The formats the runtime reads, from `odelt-format`.
pub use odelt_format::{config, manifest, CheckpointMeta, Manifest, ModelConfig, Precision};

pub use decoder::{Decoder, Images};
pub use engine::Engine;
pub use error::{Error, Result};
pub use length_engine::LengthEngine;
pub use options::RuntimeOptions;
pub use remote::{RemoteEngine, RemoteOptions};
pub use runtime::{BudgetPick, Runtime};
pub use sample::{
    EngineRows, GuidanceMode, Labels, NoiseSource, RowModel, SampleRequest, Samples, SolverChoice,
};
pub use session::Provider;
pub use solver::{Dopri5, Dopri5Options, Euler, SolveStats, Solver, VectorField};
