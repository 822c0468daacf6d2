//! `odelt bench`: latency of one engine call per length and batch, recorded in the manifest
//! as calibration for `odelt sample --budget-ms` (docs/DESIGN.md §8).

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use odelt_engines::{bench, record_calibration, BenchOptions};
use odelt_runtime::{Precision, Provider};

/// Measure engine latency per length and batch.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Export folder written by `odelt export` (built engines are used when present).
    #[arg(long, value_name = "DIR")]
    pub engines: PathBuf,
    /// Batch sizes (rows per engine call), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "B,B,…", default_value = "1")]
    pub batch: Vec<u32>,
    /// Print one JSON line per (length, batch): length, batch, ms_median, ms_min, ms_max,
    /// runs, threads, backend, file, built.
    #[arg(long)]
    pub json: bool,
    /// Timed calls per (length, batch); the median and the min/max are reported.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub runs: u32,
    /// Untimed warm-up calls per (length, batch) before timing.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub warmup: u32,
    /// ONNX Runtime intra-op threads (0: ONNX Runtime's default, one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Lengths to measure, comma-separated (default: every exported length).
    #[arg(long, value_delimiter = ',', value_name = "L,L,…")]
    pub lengths: Option<Vec<u32>>,
    /// Execution provider: cpu, cuda[:ID], cuda-graph[:ID] (CUDA graphs, one batch size), tensorrt[:ID] or tensorrt-fp16[:ID]; calibration is
    /// recorded for its backend (ort-cpu, ort-cuda, tensorrt).
    #[arg(long, value_name = "P", default_value = "cpu")]
    pub provider: String,
    /// Precision of the engines to run: fp32, fp16 or int8 [default: the export's own]. int8
    /// needs engines built with `odelt engines build --backend ort-cpu --precision int8`.
    #[arg(long, value_name = "P")]
    pub precision: Option<Precision>,
    /// Time the plain graphs even when built engines exist.
    #[arg(long)]
    pub plain: bool,
    /// Measure only: leave the manifest's calibration unchanged.
    #[arg(long)]
    pub no_record: bool,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, then the scripts/setup.sh venv).
    #[arg(long, value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let options = BenchOptions {
        batches: args.batch.clone(),
        runs: args.runs,
        warmup: args.warmup,
        threads: args.threads,
        provider: Provider::parse(&args.provider)?,
        prefer_built_engines: !args.plain,
        lengths: args.lengths.clone(),
        precision: args.precision,
        ort_library: args.ort_library.clone(),
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} bench [{bar:30}] {pos}/{len} calls {elapsed}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    let result = bench(&args.engines, &options, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let measurements = result?;
    if !args.no_record {
        record_calibration(&args.engines, &measurements)?;
    }
    let largest = |batch: u32| {
        measurements
            .iter()
            .filter(|m| m.batch == batch)
            .max_by_key(|m| m.length)
            .map(|m| m.calibration.ms_median)
    };
    for m in &measurements {
        let c = &m.calibration;
        let ratio = largest(m.batch).map(|l| c.ms_median / l).unwrap_or(1.0);
        if args.json {
            let line = serde_json::json!({
                "length": m.length,
                "batch": m.batch,
                "ms_median": c.ms_median,
                "ms_min": c.ms_min,
                "ms_max": c.ms_max,
                "runs": c.runs,
                "threads": c.threads,
                "backend": c.backend,
                "precision": c.precision,
                "file": m.file,
                "built": m.built,
                "ratio_to_largest": ratio,
            });
            println!("{line}");
        } else {
            println!(
                "l={:<3} batch {:<3} {} median {:>9.3} ms  (min {:.3}, max {:.3}, {} runs, {} threads)  {:.3}× the largest length  {}{}",
                m.length,
                m.batch,
                c.precision.as_deref().unwrap_or(""),
                c.ms_median,
                c.ms_min,
                c.ms_max,
                c.runs,
                c.threads,
                ratio,
                m.file,
                if m.built { " (built)" } else { "" }
            );
        }
    }
    if !args.no_record && !args.json {
        println!(
            "calibration recorded in {}",
            args.engines.join("manifest.json").display()
        );
    }
    Ok(())
}
