//! odelt-export: checkpoint → per-length ONNX graphs + shared `weights.bin` + `manifest.json`
//! (docs/DESIGN.md §6), without libtorch.
//!
//! ```no_run
//! use odelt_export::{export, ExportOptions};
//! # fn main() -> odelt_export::Result<()> {
//! let options = ExportOptions { lengths: Some(vec![4, 8, 12]), ..ExportOptions::default() };
//! let manifest = export("ckpt/".as_ref(), "engines/".as_ref(), &options)?;
//! println!("{} graphs sharing {} bytes of weights", manifest.lengths.len(), manifest.weights_bytes);
//! # Ok(())
//! # }
//! ```
//!
//! Layout of the code: [`checkpoint`] reads and checks the safetensors checkpoint, `weights`
//! writes the shared external-data file, `graph` is a small ONNX graph builder and `dit` the
//! model's graph for one length; this file orchestrates an export into a staging folder that
//! is renamed into place at the end.
//!
//! # Why `onnx-protobuf`
//! The ONNX messages come from the `onnx-protobuf` crate (rust-protobuf 3 code generated from
//! `onnx.proto`, lite runtime) rather than from prost: its generated code is checked in to the
//! crate, so building the exporter needs neither `protoc` nor a build script (prost-build needs
//! a `protoc` binary, which is not on every developer's or CI machine and cannot be downloaded
//! here), and it is current with ONNX IR 10 (external data, `metadata_props`). The cost is an
//! exact pin of `protobuf = "=3.4.0"`, which that generated code asserts. We only build and
//! serialize messages, so neither crate's reflection matters.
//!
//! # What a graph stores where
//! Initializer names are the checkpoint's tensor names (docs/DESIGN.md §3), so a graph can be checked
//! against the checkpoint name by name. The weights of the token linears (`attn.qkv`,
//! `attn.proj`, `mlp.fc1`, `mlp.fc2`, `final_layer.linear`) are stored transposed to
//! `[in, out]` for `MatMul`; the initializer's `doc_string` says so. Conditioning linears keep
//! PyTorch's `[out, in]` layout and run as `Gemm(transB = 1)`. The length embedding row l is
//! the initializer `l_embedder.row{l}`: a view of row l of the stored
//! `l_embedder.embedding_table.weight`, so the table is stored once for all lengths and each
//! graph reads only its own row. Shapes, scalars, the 128 timestep frequencies and
//! LayerNormalization's unit scale are inline.
//!
//! # Content hash
//! `content_hash` = SHA-256 over the graph file's bytes followed by the bytes of every external
//! initializer it references, in the graph's initializer order (the ranges of `weights.bin`
//! named by each initializer's offset and length).

pub mod checkpoint;
mod dit;
mod elem;
mod error;
pub mod external;
pub mod features;
mod graph;
pub mod testing;
pub mod verify;
mod weights;

use std::path::Path;

use odelt_format::atomic::StagedDir;
use odelt_format::manifest::{LengthEntry, Source, MANIFEST_FILE};
use odelt_format::tensors::expected_tensors;
use odelt_format::{Manifest, ModelConfig};
use protobuf::Message;

pub use dit::{length_row_name, Ops};
pub use error::{Error, Result};
pub use graph::{attribute, Attr, CONTRIB_DOMAIN};
pub use verify::{content_hash, verify, Verified};
pub use weights::ALIGNMENT;

use checkpoint::{transpose, Checkpoint};
use weights::WeightsWriter;

/// The shared external-data file, next to the graphs.
pub const WEIGHTS_FILE: &str = "weights.bin";

/// File name of the graph of length `l`.
pub fn graph_file(l: u32) -> String {
    format!("model_l{l}.onnx")
}

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Lengths to export; `None` exports every valid length.
    pub lengths: Option<Vec<u32>>,
    /// Matrix products and attention in float16 (weights stored in float16); LayerNorm
    /// statistics, adaLN modulation, gates and residual adds stay float32.
    pub fp16: bool,
    /// Graph input `x` and output `v` in float16 (requires `fp16`).
    pub fp16_io: bool,
    /// The operators graphs are written with: fused (ONNX Runtime) or standard (TensorRT).
    pub ops: dit::Ops,
}

/// Progress of an export, reported to [`export_with_progress`]'s callback.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The checkpoint is read and checked; these graphs will be written.
    Started { lengths: Vec<u32> },
    /// `weights.bin` is written.
    WeightsWritten { bytes: u64 },
    /// One graph is written.
    GraphWritten { length: u32, file: String, bytes: u64 },
}

/// Exports `checkpoint` to the folder `out` (replaced if it holds an earlier export).
pub fn export(checkpoint: &Path, out: &Path, options: &ExportOptions) -> Result<Manifest> {
    export_with_progress(checkpoint, out, options, |_| {})
}

/// [`export`], reporting progress.
pub fn export_with_progress(
    checkpoint: &Path,
    out: &Path,
    options: &ExportOptions,
    mut progress: impl FnMut(Progress),
) -> Result<Manifest> {
    if options.fp16_io && !options.fp16 {
        return Err(Error::InvalidArgument(
            "--fp16-io needs --fp16 (float16 inputs and outputs of a float32 graph are not supported)".into(),
        ));
    }
    check_output(out)?;
    let ckpt = Checkpoint::read(checkpoint)?;
    let cfg = ckpt.meta.model.clone();
    let lengths = resolve_lengths(&cfg, options.lengths.as_deref())?;
    progress(Progress::Started {
        lengths: lengths.clone(),
    });

    let staging = StagedDir::new(out)?;
    let weights_path = staging.path().join(WEIGHTS_FILE);
    let max_length = *lengths
        .last()
        .ok_or_else(|| Error::InvalidArgument("no lengths to export".into()))?;
    let mut writer = WeightsWriter::create(&weights_path)?;
    for (name, shape) in expected_tensors(&cfg) {
        if block_index(&name).is_some_and(|i| i >= max_length) {
            continue; // no exported graph uses this block
        }
        let tensor = ckpt.get(&name)?;
        let (elem, transposed) = dit::storage(&name, options.fp16);
        let mut dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let (data, doc) = if transposed {
            dims.reverse();
            (
                transpose(tensor),
                format!("checkpoint `{name}` {shape:?} transposed to [in, out] for MatMul"),
            )
        } else {
            (tensor.data.clone(), format!("checkpoint `{name}` {shape:?}"))
        };
        writer.add(&name, elem, &dims, &data, &doc)?;
    }
    let (stored, weights_bytes) = writer.finish()?;
    progress(Progress::WeightsWritten { bytes: weights_bytes });

    let precision = dit::Precision {
        fp16: options.fp16,
        fp16_io: options.fp16_io,
    };
    let mut entries = Vec::new();
    for &length in &lengths {
        let (model, externals) = dit::build(&cfg, length, &stored, precision, options.ops, WEIGHTS_FILE)?;
        let bytes = model
            .write_to_bytes()
            .map_err(|e| Error::Internal(format!("cannot serialise the l={length} graph: {e}")))?;
        let file = graph_file(length);
        let path = staging.path().join(&file);
        std::fs::write(&path, &bytes).map_err(|e| Error::write(&path, e))?;
        let ranges: Vec<(u64, u64)> = externals.iter().map(|e| (e.offset, e.length)).collect();
        entries.push(LengthEntry {
            length,
            file: file.clone(),
            parameters: externals.iter().map(|e| e.numel).sum(),
            weight_bytes: externals.iter().map(|e| e.length).sum(),
            content_hash: content_hash(&bytes, &weights_path, &ranges)?,
            engines: Vec::new(),
            calibration: Vec::new(),
        });
        progress(Progress::GraphWritten {
            length,
            file,
            bytes: bytes.len() as u64,
        });
    }

    let source = std::fs::canonicalize(checkpoint).unwrap_or_else(|_| checkpoint.to_path_buf());
    let manifest = Manifest {
        format_version: Manifest::FORMAT_VERSION,
        model: cfg,
        source: Source {
            checkpoint: source.display().to_string(),
            step: ckpt.meta.step,
        },
        precision: if options.fp16 { "fp16" } else { "fp32" }.into(),
        io_precision: if options.fp16_io { "fp16" } else { "fp32" }.into(),
        ops: options.ops.name().into(),
        weights_file: WEIGHTS_FILE.into(),
        weights_bytes,
        lengths: entries,
    };
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("cannot serialise the manifest: {e}")))?;
    let manifest_path = staging.path().join(MANIFEST_FILE);
    std::fs::write(&manifest_path, text).map_err(|e| Error::write(&manifest_path, e))?;
    staging.commit()?;
    Ok(manifest)
}

/// The requested lengths, checked, sorted and deduplicated; every valid length by default.
fn resolve_lengths(cfg: &ModelConfig, requested: Option<&[u32]>) -> Result<Vec<u32>> {
    let Some(requested) = requested else {
        return Ok(cfg.valid_lengths());
    };
    if requested.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "no lengths given; valid lengths: {}",
            odelt_format::join(&cfg.valid_lengths())
        )));
    }
    for &l in requested {
        cfg.check_length(l)?;
    }
    let mut lengths = requested.to_vec();
    lengths.sort_unstable();
    lengths.dedup();
    Ok(lengths)
}

/// `blocks.{i}.…` → i.
fn block_index(name: &str) -> Option<u32> {
    name.strip_prefix("blocks.")?.split('.').next()?.parse().ok()
}

/// `out` may be absent, an empty folder or an earlier export (which is replaced).
fn check_output(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let shown = out.display().to_string();
    if !out.is_dir() {
        return Err(Error::OutputNotExport(shown));
    }
    let empty = std::fs::read_dir(out)
        .map_err(|e| Error::write(out, e))?
        .next()
        .is_none();
    if empty || out.join(MANIFEST_FILE).is_file() {
        Ok(())
    } else {
        Err(Error::OutputNotExport(shown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_default_sort_and_dedup() {
        let cfg = ModelConfig::fmnist();
        assert_eq!(resolve_lengths(&cfg, None).unwrap(), vec![4, 8, 12]);
        assert_eq!(resolve_lengths(&cfg, Some(&[12, 4, 12])).unwrap(), vec![4, 12]);
        let err = resolve_lengths(&cfg, Some(&[4, 6])).unwrap_err();
        assert!(err.is_input() && err.to_string().contains("4, 8, 12"), "{err}");
    }

    #[test]
    fn block_indices() {
        assert_eq!(block_index("blocks.11.mlp.fc1.weight"), Some(11));
        assert_eq!(block_index("final_layer.linear.weight"), None);
        assert_eq!(graph_file(8), "model_l8.onnx");
    }
}
