//! odelt-engines: exported ONNX graphs → backend engines, latency calibration.
//!
//! - [`build`] turns each `model_l{l}.onnx` of an export folder into an engine for one backend
//!   and records it in the manifest (`LengthEntry::engines`):
//!   - `ort-cpu` / `ort-cuda`: ONNX Runtime's offline optimization (`optimized_model_filepath`)
//!     at a level whose output is portable, saved as `model_l{l}.<backend>.onnx` with its
//!     initializers re-linked to the shared `weights.bin` (see [`relink`]); the runtime loads it
//!     with graph optimization disabled.
//!   - `tensorrt`: ONNX Runtime's TensorRT provider writes an EP-context model
//!     `model_l{l}.tensorrt.onnx` (embed mode 0) and the serialized engine under `trt/`, keyed
//!     by the manifest's content hash, with one timing cache for all lengths.
//!   - `--precision int8` (ort-cpu): the graph's matrix products rewritten to int8
//!     (`DynamicQuantizeMatMul`, see [`int8`]) before the same optimization; the int8 weights
//!     of all lengths in one shared `weights.int8.<hash>.bin`.
//! - [`bench`] measures one engine call per length and batch and records the medians as the
//!   manifest's calibration, which `Runtime::pick_for_budget` reads.
//!
//! - [`triton`] writes a Triton Inference Server model repository (one model per length,
//!   `odelt_l{l}`, sharing one weights file) that the runtime's remote engine calls.
//!
//! Sessions come from the runtime's one builder (`odelt_runtime::session`): a backend whose
//! provider is missing fails with the runtime's `Error::Provider`, never a silent CPU fallback.

pub mod backend;
pub mod bench;
pub mod build;
mod error;
pub mod int8;
pub mod relink;
pub mod triton;

pub use backend::{Backend, CpuLevel};
pub use bench::{bench, record_calibration, BenchOptions, Measurement};
pub use build::{build, BuildEvent, BuildOptions, BuiltEngine};
pub use error::{Error, Result};
pub use triton::{write_repository, InstanceKind, TritonBackend, TritonOptions, TritonRepository};
