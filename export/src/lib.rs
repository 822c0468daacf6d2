//! odelt-export: checkpoint → per-length ONNX graphs + shared weights.bin + manifest.json.

mod error;
pub use error::{Error, Result};
