//! `manifest.json`: what an export folder holds (docs/DESIGN.md §6). The exporter writes it,
//! the engine builder and `odelt bench` add to it, the runtime reads it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::json::{read_versioned, Versioned};

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub model: ModelConfig,
    /// The checkpoint the graphs came from.
    pub source: Source,
    /// Precision of matrix products in the graphs: "fp32" or "fp16" (built engines may differ:
    /// `EngineEntry::precision`).
    pub precision: String,
    /// Element type of the graphs' `x` and `v`: "fp32" unless exported with fp16 I/O.
    #[serde(default = "fp32")]
    pub io_precision: String,
    /// Operators the graphs use: "fused" (ONNX Runtime's `com.microsoft` Attention, or
    /// MultiHeadAttention in earlier exports, and FastGelu; CPU and CUDA providers) or
    /// "standard" (ONNX opset 17 only, which TensorRT needs). Exports that predate the field
    /// are standard.
    #[serde(default = "standard_ops")]
    pub ops: String,
    /// The shared external-data file every graph references.
    pub weights_file: String,
    pub weights_bytes: u64,
    pub lengths: Vec<LengthEntry>,
}

fn fp32() -> String {
    "fp32".into()
}

fn standard_ops() -> String {
    "standard".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub checkpoint: String,
    pub step: u64,
}

/// One exported length l: the first l blocks plus the shared head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthEntry {
    pub length: u32,
    /// The ONNX graph, relative to the manifest's folder.
    pub file: String,
    /// Parameters this graph uses.
    pub parameters: u64,
    /// Bytes of weights.bin this graph references.
    pub weight_bytes: u64,
    /// Hex SHA-256 over the graph file and the weight bytes it references; engine caches
    /// are keyed by it.
    pub content_hash: String,
    /// Engines built from this graph.
    #[serde(default)]
    pub engines: Vec<EngineEntry>,
    /// Measured latencies of one engine call.
    #[serde(default)]
    pub calibration: Vec<Calibration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineEntry {
    /// "ort-cpu", "ort-cuda" or "tensorrt".
    pub backend: String,
    /// The built artefact (optimized model, EP-context model), relative to the manifest.
    pub file: String,
    /// "fp32", "fp16" or "int8" ([`Precision`]).
    pub precision: String,
    pub build_seconds: f64,
    /// Backend-specific settings used to build it.
    #[serde(default)]
    pub options: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub backend: String,
    /// The measured engines' precision; absent in manifests written before int8 engines,
    /// whose calibration is of the export's own precision ([`Manifest::calibration_precision`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    pub batch: u32,
    pub threads: u32,
    pub ms_median: f64,
    pub ms_min: f64,
    pub ms_max: f64,
    pub runs: u32,
}

impl Versioned for Manifest {
    const FORMAT_VERSION: u32 = 1;
    const WHAT: &'static str = "an odelt manifest";

    fn validate(&self) -> Result<()> {
        self.model.validate()
    }
}

impl Manifest {
    pub const FORMAT_VERSION: u32 = <Self as Versioned>::FORMAT_VERSION;

    /// Reads and validates `DIR/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        read_versioned(&dir.join(MANIFEST_FILE))
    }

    /// Writes `DIR/manifest.json` atomically (temp file, then rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Internal(format!("cannot serialise the manifest: {e}")))?;
        write_atomic(&dir.join(MANIFEST_FILE), text.as_bytes())
    }

    pub fn entry(&self, length: u32) -> Result<&LengthEntry> {
        self.lengths
            .iter()
            .find(|e| e.length == length)
            .ok_or_else(|| self.not_exported(length))
    }

    pub fn entry_mut(&mut self, length: u32) -> Result<&mut LengthEntry> {
        match self.lengths.iter().position(|e| e.length == length) {
            Some(i) => Ok(&mut self.lengths[i]),
            None => Err(self.not_exported(length)),
        }
    }

    fn not_exported(&self, length: u32) -> Error {
        let have: Vec<u32> = self.lengths.iter().map(|e| e.length).collect();
        Error::InvalidArgument(format!(
            "length {length} is not exported here; exported lengths: {}",
            crate::config::join(&have)
        ))
    }

    /// Fails unless `DIR/weights_file` exists with the size recorded here: a truncated or
    /// replaced file would otherwise fail (or fault) only when ONNX Runtime maps it.
    pub fn check_weights_size(&self, dir: &Path) -> Result<()> {
        let path = dir.join(&self.weights_file);
        let size = std::fs::metadata(&path).map_err(Error::read(&path))?.len();
        if size != self.weights_bytes {
            return Err(Error::InvalidArgument(format!(
                "{}: {size} bytes, the manifest says {}: truncated or replaced; export again \
                 (`odelt verify` checks every file)",
                path.display(),
                self.weights_bytes
            )));
        }
        Ok(())
    }

    pub fn largest_length(&self) -> Option<u32> {
        self.lengths.iter().map(|e| e.length).max()
    }

    /// The precision a calibration entry measured.
    pub fn calibration_precision<'a>(&'a self, c: &'a Calibration) -> &'a str {
        c.precision.as_deref().unwrap_or(&self.precision)
    }
}

/// Precision of an engine's matrix products. An export is fp32 or fp16 (`odelt export
/// --fp16`); int8 engines are built from an fp32 export (`odelt engines build --precision
/// int8`); TensorRT builds fp16 engines from an fp32 export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    Fp32,
    Fp16,
    Int8,
}

impl Precision {
    pub const NAMES: [&'static str; 3] = ["fp32", "fp16", "int8"];

    /// The manifest's name: "fp32", "fp16" or "int8".
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
            Precision::Int8 => "int8",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "fp32" => Ok(Precision::Fp32),
            "fp16" => Ok(Precision::Fp16),
            "int8" => Ok(Precision::Int8),
            _ => Err(Error::InvalidArgument(format!(
                "unknown precision '{text}'; expected fp32, fp16 or int8"
            ))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}
