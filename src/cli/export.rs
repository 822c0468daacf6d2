//! `odelt export`: a checkpoint to one ONNX graph per length sharing one weights file
//! (docs/DESIGN.md §6). The work is in the `odelt-export` crate; this is its command line.

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use odelt_export::{export_with_progress, ExportOptions, Ops, Progress};

/// Export arguments.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Checkpoint folder written by `odelt train` (config.json and model.safetensors).
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: PathBuf,
    /// Lengths (numbers of active blocks) to export, comma-separated, e.g. 4,8,12. Default:
    /// every valid length of the model.
    #[arg(long, value_delimiter = ',', value_name = "L,L,…")]
    pub lengths: Option<Vec<u32>>,
    /// Output folder for model_l{l}.onnx, weights.bin and manifest.json. An earlier export
    /// there is replaced once the new one is complete.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Matrix products and attention in float16 (their weights stored as float16);
    /// LayerNorm statistics, adaLN modulation, gates and residual adds stay float32.
    #[arg(long)]
    pub fp16: bool,
    /// Graph input x and output v in float16 as well (needs --fp16); t, k and y keep their
    /// types.
    #[arg(long, requires = "fp16")]
    pub fp16_io: bool,
    /// Write the graphs with standard ONNX operators only (needed by --backend tensorrt,
    /// whose parser takes no com.microsoft operators). Default: fused nodes for ONNX
    /// Runtime's CPU and CUDA providers (Attention, FastGelu; docs/DESIGN.md §3).
    #[arg(long)]
    pub standard_ops: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let options = ExportOptions {
        lengths: args.lengths.clone(),
        fp16: args.fp16,
        fp16_io: args.fp16_io,
        ops: if args.standard_ops {
            Ops::Standard
        } else {
            Ops::Fused
        },
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} export [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    let result = export_with_progress(&args.checkpoint, &args.out, &options, |event| match event {
        Progress::Started { lengths } => {
            bar.set_length(lengths.len() as u64);
            bar.set_message("writing weights.bin");
        }
        Progress::WeightsWritten { bytes } => bar.set_message(format!("weights.bin {}", human(bytes))),
        Progress::GraphWritten { file, .. } => {
            bar.inc(1);
            bar.set_message(file);
        }
    });
    bar.finish_and_clear();
    let manifest = result?;

    println!(
        "exported {} (step {}, {} matrix products, {} I/O) to {}:",
        args.checkpoint.display(),
        manifest.source.step,
        manifest.precision,
        manifest.io_precision,
        args.out.display()
    );
    let mut separate = 0u64;
    for entry in &manifest.lengths {
        let graph_bytes = std::fs::metadata(args.out.join(&entry.file))
            .map(|m| m.len())
            .unwrap_or(0);
        separate += graph_bytes + entry.weight_bytes;
        println!(
            "  {:<16} l={:<3} {:>6} parameters  graph {:>9}  weights {:>9}  sha256 {}",
            entry.file,
            entry.length,
            count(entry.parameters),
            human(graph_bytes),
            human(entry.weight_bytes),
            &entry.content_hash[..16]
        );
    }
    println!(
        "  {:<16} {} shared by {} graph(s); self-contained files per length would take {} ({:.2}×)",
        manifest.weights_file,
        human(manifest.weights_bytes),
        manifest.lengths.len(),
        human(separate),
        separate as f64 / manifest.weights_bytes.max(1) as f64
    );
    Ok(())
}

/// 1234567 → "1.2M".
fn count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Bytes in binary units.
fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
