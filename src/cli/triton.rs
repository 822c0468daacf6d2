//! `odelt triton`: a Triton Inference Server model repository for an export folder
//! (docs/triton.md). The work is `odelt_engines::triton`; this is its command line.

use std::path::PathBuf;

use odelt_engines::{write_repository, InstanceKind, TritonBackend, TritonOptions};

/// Which Triton backend serves the models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// Triton's onnxruntime backend runs the exported graphs (with TensorRT on GPU instances).
    Onnxruntime,
    /// TensorRT plans, built from the graphs by REPO/build_plans.sh on the serving GPU.
    Tensorrt,
}

/// Where Triton places the model instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KindArg {
    Cpu,
    Gpu,
}

/// Write a Triton model repository: one model `odelt_l{l}` per exported length, sharing one
/// weights file.
#[derive(Debug, clap::Args)]
pub struct TritonArgs {
    /// Export folder written by `odelt export` (manifest.json, model_l{l}.onnx, weights.bin).
    #[arg(long, value_name = "DIR")]
    pub engines: PathBuf,
    /// The repository folder to write: absent, empty, or an earlier `odelt triton` repository
    /// (replaced whole).
    #[arg(long, value_name = "REPO")]
    pub out: PathBuf,
    /// onnxruntime: the graphs as they are; tensorrt: TensorRT plans (built on the target GPU
    /// by REPO/build_plans.sh; needs --kind gpu).
    #[arg(long, value_enum, default_value = "onnxruntime")]
    pub backend: BackendArg,
    /// Triton's max_batch_size: the most rows one model execution takes (the dynamic batcher
    /// prefers a quarter, a half and all of it). Sample with `--max-batch` at most this.
    #[arg(long, value_name = "B", default_value_t = 64)]
    pub max_batch: u32,
    /// Model instances per model (for --kind gpu: on each GPU).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub instances: u32,
    /// Instance kind: cpu or gpu (gpu with onnxruntime adds the TensorRT accelerator).
    #[arg(long, value_enum, default_value = "cpu")]
    pub kind: KindArg,
    /// TensorRT in fp16 (the TensorRT accelerator's precision, or the plans'); needs --kind gpu.
    #[arg(long)]
    pub fp16: bool,
    /// Dynamic batching: how long Triton holds a request to gather a larger batch.
    #[arg(long, value_name = "US", default_value_t = 1000)]
    pub queue_delay_us: u64,
    /// Print what was written as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: TritonArgs) -> anyhow::Result<()> {
    let options = TritonOptions {
        backend: match args.backend {
            BackendArg::Onnxruntime => TritonBackend::Onnxruntime,
            BackendArg::Tensorrt => TritonBackend::Tensorrt,
        },
        max_batch: args.max_batch,
        instances: args.instances,
        kind: match args.kind {
            KindArg::Cpu => InstanceKind::Cpu,
            KindArg::Gpu => InstanceKind::Gpu,
        },
        fp16: args.fp16,
        queue_delay_us: args.queue_delay_us,
    };
    let repository = write_repository(&args.engines, &args.out, &options)?;
    if args.json {
        println!("{}", serde_json::to_string(&repository)?);
        return Ok(());
    }
    let names: Vec<&str> = repository.models.iter().map(|m| m.name.as_str()).collect();
    println!(
        "wrote {} Triton model(s) to {}: {} (max batch {}, {} {} instance(s) each, weights {:.1} MB stored once)",
        names.len(),
        args.out.display(),
        names.join(", "),
        options.max_batch,
        options.instances,
        match options.kind {
            InstanceKind::Cpu => "CPU",
            InstanceKind::Gpu => "GPU",
        },
        repository.weights_bytes as f64 / 1e6
    );
    if options.backend == TritonBackend::Tensorrt {
        println!(
            "build the TensorRT plans on the serving GPU: {}/build_plans.sh",
            args.out.display()
        );
    }
    Ok(())
}
