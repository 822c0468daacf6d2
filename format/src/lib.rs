//! odelt-format: the one home of the formats every stage reads and writes (docs/DESIGN.md §3,
//! §5, §6), so that a format changes in one place:
//!
//! - [`config`]: the model configuration and its presets;
//! - [`tensors`]: the model's parameters by name and shape, and the constants of its forward
//!   pass that training and export must agree on;
//! - [`checkpoint`]: what a checkpoint folder's `config.json` holds and its file names;
//! - [`manifest`]: an export folder's `manifest.json`;
//! - [`json`]: reading a versioned JSON file (parse, check `format_version`, validate);
//! - [`atomic`]: files and folders replaced atomically (`tempfile` + rename);
//! - [`seed`]: the SplitMix64 mixer behind every derived seed.
//!
//! Nothing here links ONNX Runtime or libtorch.

pub mod atomic;
pub mod checkpoint;
pub mod config;
mod error;
pub mod json;
pub mod manifest;
pub mod seed;
pub mod tensors;

pub use checkpoint::CheckpointMeta;
pub use config::{join, ModelConfig};
pub use error::{Error, Result};
pub use manifest::{Manifest, Precision};
