//! `odelt engines build`: backend engines for an export folder (docs/DESIGN.md §8). The work is in
//! the `odelt-engines` crate; this is its command line.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use odelt_engines::{build, Backend, BuildEvent, BuildOptions, CpuLevel};
use odelt_format::Precision;

/// `odelt engines …`
#[derive(Debug, clap::Args)]
pub struct EnginesArgs {
    #[command(subcommand)]
    pub command: EnginesCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum EnginesCommand {
    /// Build one engine per exported length for a backend and record them in the manifest.
    Build(BuildArgs),
}

/// Build engines for an export folder.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Export folder written by `odelt export` (manifest.json, model_l{l}.onnx, weights.bin);
    /// the engines are written next to the graphs.
    #[arg(long, value_name = "DIR")]
    pub engines: PathBuf,
    /// ort-cpu: ONNX Runtime's offline-optimized model per length, sharing weights.bin;
    /// ort-cuda: the same with the CUDA provider; tensorrt: TensorRT engines through ONNX
    /// Runtime's TensorRT provider (EP-context model + engine cache under DIR/trt).
    #[arg(long, value_name = "BACKEND", value_parser = Backend::NAMES)]
    pub backend: String,
    /// Float16 matrix products (TensorRT); the same as `--precision fp16`. ort-cpu/ort-cuda run
    /// the graph's own precision: export with `odelt export --fp16` instead.
    #[arg(long, conflicts_with = "precision")]
    pub fp16: bool,
    /// Precision of the engines [default: the export's own]: int8 (ort-cpu, from an fp32
    /// export) quantizes every matrix product's weights to int8 with per-output-channel scales
    /// (activations quantized at run time), stored once in weights.int8.<hash>.bin for all
    /// lengths; fp16 (tensorrt). Engines of another precision than the export's sit beside
    /// the others (model_l{l}.<backend>-<precision>.onnx); `--precision` of sample, bench,
    /// serve, eval and demo picks them.
    #[arg(long, value_name = "P")]
    pub precision: Option<Precision>,
    /// Batch sizes the engines will run, comma-separated: TensorRT's optimization profile
    /// spans min..max with opt = max.
    #[arg(long, value_delimiter = ',', value_name = "B,B,…", default_value = "1")]
    pub batch: Vec<u32>,
    /// Classifier-free guidance runs its two halves in one call: double the profile's batches.
    #[arg(long)]
    pub cfg: bool,
    /// ONNX Runtime intra-op threads for the build sessions (0: ONNX Runtime's default).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Lengths to build, comma-separated (default: every exported length).
    #[arg(long, value_delimiter = ',', value_name = "L,L,…")]
    pub lengths: Option<Vec<u32>>,
    /// Graph optimization level of ort-cpu/ort-cuda models: basic, extended (the highest whose
    /// saved model is portable) or all (adds NCHWc layout transforms specific to this CPU).
    #[arg(long, value_name = "LEVEL", default_value = "extended", value_parser = ["basic", "extended", "all"])]
    pub level: String,
    /// GPU index for ort-cuda and tensorrt.
    #[arg(long, value_name = "ID", default_value_t = 0)]
    pub device_id: i32,
    /// TensorRT: capture CUDA graphs (needs a single --batch size).
    #[arg(long)]
    pub cuda_graph: bool,
    /// TensorRT: weight-stripped engines, refitted from the ONNX weights (weights.bin) at load.
    #[arg(long)]
    pub weight_stripped: bool,
    /// Verbose ONNX Runtime log and TensorRT's detailed build log on stderr.
    #[arg(long)]
    pub verbose: bool,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, then the scripts/setup.sh venv).
    #[arg(long, value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
}

pub fn run(args: EnginesArgs) -> anyhow::Result<()> {
    match args.command {
        EnginesCommand::Build(args) => run_build(args),
    }
}

fn run_build(args: BuildArgs) -> anyhow::Result<()> {
    let options = BuildOptions {
        backend: Backend::parse(&args.backend)?,
        precision: if args.fp16 {
            Some(Precision::Fp16)
        } else {
            args.precision
        },
        batches: args.batch.clone(),
        cfg: args.cfg,
        threads: args.threads,
        device_id: args.device_id,
        level: CpuLevel::parse(&args.level)?,
        cuda_graph: args.cuda_graph,
        weight_stripped: args.weight_stripped,
        verbose: args.verbose,
        lengths: args.lengths.clone(),
        ort_library: args.ort_library.clone(),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} engines [{bar:30}] {pos}/{len} {elapsed} {msg}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let result = build(&args.engines, &options, |event| match event {
        BuildEvent::Started { lengths } => bar.set_length(lengths.len() as u64),
        BuildEvent::Building { length } => {
            bar.set_message(format!("building {} l={length}", options.backend))
        }
        BuildEvent::Built(_) => bar.inc(1),
    });
    bar.finish_and_clear();
    let built = result?;
    println!(
        "built {} {} engine(s) in {}:",
        built.len(),
        options.backend,
        args.engines.display()
    );
    for b in &built {
        let o = &b.entry.options;
        let weights = match (o.get("shared_bytes"), o.get("own_bytes")) {
            (Some(shared), Some(own)) => format!(
                "  weights: {} MiB shared with {}, {} MiB own",
                mib(shared),
                o.get("int8")
                    .and_then(|i| i["weights"].as_str())
                    .map_or("weights.bin".into(), |f| format!("weights.bin and {f}")),
                mib(own)
            ),
            _ => String::new(),
        };
        println!(
            "  l={:<3} {:<28} {} {:>7.2} s{weights}",
            b.length, b.entry.file, b.entry.precision, b.entry.build_seconds
        );
    }
    Ok(())
}

fn mib(v: &serde_json::Value) -> String {
    format!("{:.1}", v.as_f64().unwrap_or(0.0) / (1024.0 * 1024.0))
}
