//! A Triton Inference Server model repository from an export folder (docs/triton.md): one model
//! per length, `odelt_l{l}`, with its `config.pbtxt` and the graph under version `1/`.
//!
//! Layout for `--backend onnxruntime`:
//!
//! ```text
//! REPO/odelt_l4/config.pbtxt
//! REPO/odelt_l4/1/model.onnx/model.onnx     the exported graph, unchanged
//! REPO/odelt_l4/1/model.onnx/weights.bin    hard link: one file for every length
//! REPO/odelt-triton.json                    what was written, from which export
//! ```
//!
//! Triton's onnxruntime backend loads `1/model.onnx/model.onnx` when `model.onnx` is a folder,
//! by path, so the graph's relative external-data reference finds `weights.bin` beside it.
//! For `--backend tensorrt` the graph and its weights go to `odelt_l{l}/onnx/` and
//! `build_plans.sh` turns them into `odelt_l{l}/1/model.plan` with `trtexec` on the GPU that
//! will serve them (a plan is specific to a GPU model and TensorRT version).
//!
//! The repository is written in a staging folder and swapped in whole
//! (`odelt_format::atomic::StagedDir`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use odelt_format::atomic::StagedDir;
use odelt_format::manifest::{LengthEntry, Manifest};
use odelt_runtime::remote::model_name;
use serde::Serialize;

use crate::error::{invalid, Error, Result};

/// The marker `odelt triton` leaves at the repository's root (Triton ignores files there).
pub const REPOSITORY_FILE: &str = "odelt-triton.json";

/// Which Triton backend serves the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TritonBackend {
    /// The ONNX graphs, run by Triton's onnxruntime backend (with TensorRT on GPU instances).
    Onnxruntime,
    /// TensorRT plans, built from the graphs on the serving GPU by `build_plans.sh`.
    Tensorrt,
}

/// Where Triton places each model instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceKind {
    Cpu,
    Gpu,
}

/// Settings of `odelt triton`.
#[derive(Debug, Clone, Serialize)]
pub struct TritonOptions {
    pub backend: TritonBackend,
    /// Triton's `max_batch_size`: the most rows one execution of a model takes.
    pub max_batch: u32,
    /// Instances per model (per GPU for `InstanceKind::Gpu`).
    pub instances: u32,
    pub kind: InstanceKind,
    /// TensorRT in fp16 (the onnxruntime backend's TensorRT accelerator, or the plans).
    pub fp16: bool,
    /// How long Triton's dynamic batcher holds a request to gather a larger batch.
    pub queue_delay_us: u64,
}

impl Default for TritonOptions {
    fn default() -> Self {
        Self {
            backend: TritonBackend::Onnxruntime,
            max_batch: 64,
            instances: 1,
            kind: InstanceKind::Cpu,
            fp16: false,
            queue_delay_us: 1000,
        }
    }
}

/// What [`write_repository`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct TritonRepository {
    pub repository: PathBuf,
    pub export: PathBuf,
    pub models: Vec<TritonModel>,
    /// Bytes of the one weights file every model links to.
    pub weights_bytes: u64,
    pub options: TritonOptions,
}

#[derive(Debug, Clone, Serialize)]
pub struct TritonModel {
    pub name: String,
    pub length: u32,
    pub content_hash: String,
}

/// Writes the Triton model repository of the export `engines` to `out` (absent, empty or an
/// earlier repository, which is replaced).
pub fn write_repository(engines: &Path, out: &Path, options: &TritonOptions) -> Result<TritonRepository> {
    check_options(options)?;
    let manifest = Manifest::read(engines)?;
    if manifest.lengths.is_empty() {
        return invalid!("{}: the manifest lists no exported lengths", engines.display());
    }
    manifest.check_weights_size(engines)?;
    check_output(out)?;
    let staged = StagedDir::new(out)?;
    let weights = engines.join(&manifest.weights_file);
    let mut first_weights: Option<PathBuf> = None;
    let mut models = Vec::new();
    for entry in &manifest.lengths {
        let name = model_name(entry.length);
        let model_dir = staged.path().join(&name);
        let graph_dir = match options.backend {
            TritonBackend::Onnxruntime => model_dir.join("1").join("model.onnx"),
            TritonBackend::Tensorrt => model_dir.join("onnx"),
        };
        create_dir(&graph_dir)?;
        create_dir(&model_dir.join("1"))?;
        let graph = engines.join(&entry.file);
        copy(&graph, &graph_dir.join("model.onnx"))?;
        let linked = graph_dir.join(&manifest.weights_file);
        match &first_weights {
            None => copy(&weights, &linked)?,
            Some(first) => std::fs::hard_link(first, &linked).map_err(Error::io(&linked))?,
        }
        first_weights.get_or_insert(linked);
        let config = model_config(&manifest, entry, options);
        write(&model_dir.join("config.pbtxt"), config.as_bytes())?;
        models.push(TritonModel {
            name,
            length: entry.length,
            content_hash: entry.content_hash.clone(),
        });
    }
    if options.backend == TritonBackend::Tensorrt {
        let script = staged.path().join("build_plans.sh");
        write(&script, plan_script(&manifest, options).as_bytes())?;
        make_executable(&script)?;
    }
    let repository = TritonRepository {
        repository: out.to_path_buf(),
        export: engines.to_path_buf(),
        models,
        weights_bytes: manifest.weights_bytes,
        options: options.clone(),
    };
    let marker = serde_json::to_vec_pretty(&repository)
        .map_err(|e| Error::InvalidArgument(format!("describing the repository: {e}")))?;
    write(&staged.path().join(REPOSITORY_FILE), &marker)?;
    staged.commit()?;
    tracing::info!(
        "wrote {} Triton model(s) to {}",
        repository.models.len(),
        out.display()
    );
    Ok(repository)
}

fn check_options(options: &TritonOptions) -> Result<()> {
    if options.max_batch == 0 {
        return invalid!("--max-batch must be at least 1");
    }
    if options.instances == 0 {
        return invalid!("--instances must be at least 1");
    }
    if options.backend == TritonBackend::Tensorrt && options.kind == InstanceKind::Cpu {
        return invalid!("--backend tensorrt runs on GPUs only: add --kind gpu");
    }
    if options.fp16 && options.kind == InstanceKind::Cpu {
        return invalid!("--fp16 selects TensorRT's fp16 precision, which needs --kind gpu");
    }
    Ok(())
}

/// `out` may be absent, an empty folder or an earlier repository.
fn check_output(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let empty = out.is_dir() && std::fs::read_dir(out).map_err(Error::io(out))?.next().is_none();
    if empty || out.join(REPOSITORY_FILE).is_file() {
        return Ok(());
    }
    invalid!(
        "{}: exists and is not a repository written by `odelt triton` (no {REPOSITORY_FILE}); \
         give a new or empty folder",
        out.display()
    )
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(Error::io(path))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).map(drop).map_err(Error::io(from))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(Error::io(path))
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(Error::io(path))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}

/// One tensor of the exported interface (docs/DESIGN.md §6) as Triton declares it: `dims`
/// without the batch dimension; a per-row scalar ([batch] in the graph) is `dims: [1]` with
/// `reshape: { shape: [] }`, Triton's form for a tensor that is only the batch dimension.
struct Tensor {
    name: &'static str,
    data_type: &'static str,
    dims: Vec<usize>,
    per_row_scalar: bool,
}

fn interface(manifest: &Manifest) -> (Vec<Tensor>, Tensor) {
    let model = &manifest.model;
    let image = vec![
        model.in_channels as usize,
        model.input_size as usize,
        model.input_size as usize,
    ];
    let io_type = if manifest.io_precision == "fp16" {
        "TYPE_FP16"
    } else {
        "TYPE_FP32"
    };
    let scalar = |name, data_type| Tensor {
        name,
        data_type,
        dims: vec![1],
        per_row_scalar: true,
    };
    let inputs = vec![
        Tensor {
            name: "x",
            data_type: io_type,
            dims: image.clone(),
            per_row_scalar: false,
        },
        scalar("t", "TYPE_FP32"),
        scalar("k", "TYPE_FP32"),
        scalar("y", "TYPE_INT64"),
    ];
    let output = Tensor {
        name: "v",
        data_type: io_type,
        dims: image,
        per_row_scalar: false,
    };
    (inputs, output)
}

fn dims(dims: &[usize]) -> String {
    let list: Vec<String> = dims.iter().map(usize::to_string).collect();
    format!("[ {} ]", list.join(", "))
}

fn tensor_block(t: &Tensor) -> String {
    let mut s = format!(
        "  {{\n    name: \"{}\"\n    data_type: {}\n    dims: {}\n",
        t.name,
        t.data_type,
        dims(&t.dims)
    );
    if t.per_row_scalar {
        s.push_str("    reshape: { shape: [ ] }\n");
    }
    s.push_str("  }");
    s
}

/// Preferred batch sizes for the dynamic batcher: a quarter, a half and all of `max_batch`.
fn preferred_batch_sizes(max_batch: u32) -> Vec<u32> {
    let mut sizes: Vec<u32> = [max_batch / 4, max_batch / 2, max_batch]
        .into_iter()
        .filter(|b| *b >= 1)
        .collect();
    sizes.dedup();
    sizes
}

/// `config.pbtxt` of one length, in Triton's model configuration schema
/// (triton-inference-server/common `model_config.proto`).
fn model_config(manifest: &Manifest, entry: &LengthEntry, options: &TritonOptions) -> String {
    let (inputs, output) = interface(manifest);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# odelt length {}: first {} blocks of {} (step {}), content hash {}. Written by `odelt triton`.",
        entry.length, entry.length, manifest.source.checkpoint, manifest.source.step, entry.content_hash
    );
    let _ = writeln!(s, "name: \"{}\"", model_name(entry.length));
    let platform = match options.backend {
        TritonBackend::Onnxruntime => "onnxruntime_onnx",
        TritonBackend::Tensorrt => "tensorrt_plan",
    };
    let _ = writeln!(s, "platform: \"{platform}\"");
    let _ = writeln!(s, "max_batch_size: {}", options.max_batch);
    let blocks: Vec<String> = inputs.iter().map(tensor_block).collect();
    let _ = writeln!(s, "input [\n{}\n]", blocks.join(",\n"));
    let _ = writeln!(s, "output [\n{}\n]", tensor_block(&output));
    let kind = match options.kind {
        InstanceKind::Cpu => "KIND_CPU",
        InstanceKind::Gpu => "KIND_GPU",
    };
    let _ = writeln!(
        s,
        "instance_group [\n  {{\n    count: {}\n    kind: {kind}\n  }}\n]",
        options.instances
    );
    let preferred: Vec<usize> = preferred_batch_sizes(options.max_batch)
        .into_iter()
        .map(|b| b as usize)
        .collect();
    let _ = writeln!(
        s,
        "dynamic_batching {{\n  preferred_batch_size: {}\n  max_queue_delay_microseconds: {}\n}}",
        dims(&preferred),
        options.queue_delay_us
    );
    s.push_str(&warmup(&inputs, options.max_batch));
    if options.backend == TritonBackend::Onnxruntime && options.kind == InstanceKind::Gpu {
        s.push_str(&tensorrt_accelerator(manifest, entry, options));
    }
    s
}

/// Zero-filled warm-up at batch 1 and at `max_batch`, so neither the first request nor the
/// first full batch pays for allocations (or, with TensorRT, for an engine build).
fn warmup(inputs: &[Tensor], max_batch: u32) -> String {
    let mut batches = vec![1, max_batch];
    batches.dedup();
    let runs: Vec<String> = batches
        .iter()
        .map(|batch| {
            let tensors: Vec<String> = inputs
                .iter()
                .map(|t| {
                    format!(
                        "    inputs {{ key: \"{}\" value: {{ data_type: {} dims: {} zero_data: true }} }}\n",
                        t.name,
                        t.data_type,
                        dims(&t.dims)
                    )
                })
                .collect();
            format!(
                "  {{\n    name: \"zeros_batch_{batch}\"\n    batch_size: {batch}\n{}  }}",
                tensors.concat()
            )
        })
        .collect();
    format!("model_warmup [\n{}\n]\n", runs.join(",\n"))
}

/// TensorRT shapes `x:BxCxHxW,t:B,k:B,y:B` for batch `b` (the graph's own shapes).
fn trt_shapes(manifest: &Manifest, b: u32) -> String {
    let m = &manifest.model;
    let (c, h) = (m.in_channels, m.input_size);
    format!("x:{b}x{c}x{h}x{h},t:{b},k:{b},y:{b}")
}

/// The onnxruntime backend's TensorRT execution accelerator: precision, one optimization
/// profile over batches 1..=max_batch (so no batch size triggers a rebuild), and an engine
/// cache keyed by the length's content hash so a restarted server reuses its engines.
fn tensorrt_accelerator(manifest: &Manifest, entry: &LengthEntry, options: &TritonOptions) -> String {
    let precision = if options.fp16 { "FP16" } else { "FP32" };
    let opt = preferred_batch_sizes(options.max_batch)[0].max(1);
    let hash_prefix = &entry.content_hash[..entry.content_hash.len().min(16)];
    let parameters = [
        ("precision_mode", precision.to_string()),
        ("max_workspace_size_bytes", (1u64 << 30).to_string()),
        ("trt_engine_cache_enable", "1".into()),
        (
            "trt_engine_cache_path",
            format!("/tmp/odelt_trt_cache/{}", model_name(entry.length)),
        ),
        (
            "trt_engine_cache_prefix",
            format!("odelt_l{}_{hash_prefix}", entry.length),
        ),
        ("trt_timing_cache_enable", "1".into()),
        ("trt_profile_min_shapes", trt_shapes(manifest, 1)),
        ("trt_profile_opt_shapes", trt_shapes(manifest, opt)),
        ("trt_profile_max_shapes", trt_shapes(manifest, options.max_batch)),
    ];
    let lines: Vec<String> = parameters
        .iter()
        .map(|(k, v)| format!("      parameters {{ key: \"{k}\" value: \"{v}\" }}\n"))
        .collect();
    format!(
        "optimization {{\n  execution_accelerators {{\n    gpu_execution_accelerator: [\n    {{\n      name: \"tensorrt\"\n{}    }}\n    ]\n  }}\n}}\n",
        lines.concat()
    )
}

/// `build_plans.sh`: builds every length's TensorRT plan with `trtexec` on the serving GPU.
fn plan_script(manifest: &Manifest, options: &TritonOptions) -> String {
    let fp16 = if options.fp16 { " --fp16" } else { "" };
    let opt = preferred_batch_sizes(options.max_batch)[0].max(1);
    let mut s = String::from(
        "#!/usr/bin/env bash\n\
         # Builds odelt_l{l}/1/model.plan from odelt_l{l}/onnx/model.onnx with TensorRT's trtexec.\n\
         # Run it on the GPU model and with the TensorRT version Triton will serve with, e.g. inside\n\
         # the tritonserver container: plans do not move between GPU models or TensorRT versions.\n\
         set -euo pipefail\n\
         cd \"$(dirname \"$0\")\"\n",
    );
    for entry in &manifest.lengths {
        let name = model_name(entry.length);
        let _ = writeln!(
            s,
            "trtexec --onnx={name}/onnx/model.onnx --saveEngine={name}/1/model.plan \
             --minShapes={} --optShapes={} --maxShapes={}{fp16}",
            trt_shapes(manifest, 1),
            trt_shapes(manifest, opt),
            trt_shapes(manifest, options.max_batch)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preferred_sizes_are_fractions_of_the_max() {
        assert_eq!(preferred_batch_sizes(64), [16, 32, 64]);
        assert_eq!(preferred_batch_sizes(2), [1, 2]);
        assert_eq!(preferred_batch_sizes(1), [1]);
    }

    #[test]
    fn option_combinations_triton_cannot_serve_are_refused() {
        let bad = [
            TritonOptions {
                max_batch: 0,
                ..Default::default()
            },
            TritonOptions {
                instances: 0,
                ..Default::default()
            },
            TritonOptions {
                backend: TritonBackend::Tensorrt,
                ..Default::default()
            },
            TritonOptions {
                fp16: true,
                ..Default::default()
            },
        ];
        for options in bad {
            let err = check_options(&options).expect_err("refused");
            assert!(err.is_input(), "{err}");
        }
    }
}
