//! odelt-engines: exported ONNX graphs → backend engines, latency calibration.

mod error;
pub use error::{Error, Result};
