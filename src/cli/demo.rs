//! `odelt demo`: the newcomer's first command. On the shipped Fashion-MNIST model (or one it
//! trains with `--train`) it exports three lengths, builds ONNX Runtime CPU engines, samples
//! the paper's 3 × 3 figure (rows l = 12, 8, 4; columns T = 128, 4, 1 Euler steps; the same
//! noise and labels in every cell) to `OUT/grid.png` and prints the latency of every cell and
//! its speed-up over the full model with the plain flow.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use odelt_engines::{BuildEvent, BuildOptions};
use odelt_export::{ExportOptions, Progress};
use odelt_runtime::{CheckpointMeta, Runtime, RuntimeOptions};

use crate::bad_input;
use crate::cli::sample::write_atomic;
use crate::cli::train::{self, TrainArgs};
use crate::demo::{self, figure::Figure, Cell};

/// The shipped model, under the assets folder.
const SHIPPED: &str = "fmnist";
/// Training steps of `--train` when `--steps` is not given.
const DEFAULT_STEPS: u64 = 400;
/// Time limit of `--train` when `--minutes` is not given.
const DEFAULT_MINUTES: f64 = 10.0;
/// Samples per cell: one per class (Fashion-MNIST has 10).
const SAMPLES: usize = 10;
const BACKEND: &str = "ort-cpu";

/// Show the method on real data: the paper's lengths × steps figure with latencies.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Retrain the fmnist preset from scratch on Fashion-MNIST (into OUT/checkpoint, replacing
    /// an earlier one) before the figure, instead of using the shipped model. A short run gives
    /// blurry samples.
    #[arg(long, conflicts_with = "checkpoint")]
    pub train: bool,
    /// With --train: optimizer steps [default: 400].
    #[arg(long, value_name = "N", requires = "train")]
    pub steps: Option<u64>,
    /// With --train: stop after this many minutes even if --steps are not done [default: 10].
    #[arg(long, value_name = "M", requires = "train")]
    pub minutes: Option<f64>,
    /// Use this checkpoint instead of the shipped model (default: assets/fmnist, or
    /// $ODELT_ASSETS/fmnist). Rows are its largest, middle and smallest valid lengths.
    #[arg(long, value_name = "CKPT")]
    pub checkpoint: Option<PathBuf>,
    /// Output folder: engines/ (export and engines, reused while the checkpoint is
    /// unchanged), grid.png, and checkpoint/ with --train.
    #[arg(long, value_name = "DIR", default_value = "demo")]
    pub out: PathBuf,
    /// Threads for ONNX Runtime (intra-op) and, with --train, libtorch (0: all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Noise seed of the samples (the same noise in every cell) and of --train.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON line per cell (length, steps, nfe, wall_ms, speedup, n, runs) instead of
    /// the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let checkpoint = match (&args.checkpoint, args.train) {
        (Some(dir), _) => {
            check_checkpoint(dir).map_err(|e| bad_input!("--checkpoint {}: {e}", dir.display()))?;
            dir.clone()
        }
        (None, true) => train_fmnist(&args)?,
        (None, false) => shipped_model()?,
    };
    let meta = CheckpointMeta::read(&checkpoint)?;
    let model = &meta.model;
    let rows = demo::rows(&model.valid_lengths());
    let columns = demo::columns(model.denoise_timesteps);
    let engines = args.out.join("engines");

    if demo::export_matches(&engines, &checkpoint, &rows) {
        eprintln!("reusing the export in {}", engines.display());
    } else {
        export(&checkpoint, &engines, &rows)?;
    }
    let missing = demo::lengths_without_engine(&engines, BACKEND)?;
    if missing.is_empty() {
        eprintln!("reusing the {BACKEND} engines in {}", engines.display());
    } else {
        build_engines(&engines, missing, args.threads)?;
    }

    let rt = Runtime::open(
        &engines,
        RuntimeOptions::default().with_intra_threads(args.threads),
    )?;
    let labels = demo::labels(SAMPLES, model.num_classes);
    demo::warm_up(&rt, &rows, SAMPLES, &labels)?;
    let bar = bar(
        (rows.len() * columns.len()) as u64,
        "{spinner} sample [{bar:30}] {pos}/{len} {msg}",
    );
    let mut cells = Vec::new();
    for &length in &rows {
        for &steps in &columns {
            bar.set_message(format!("l={length} T={steps}"));
            cells.push(demo::measure(&rt, length, steps, args.seed, &labels)?);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();

    let figure = Figure {
        row_headers: rows.iter().map(|l| format!("l={l}")).collect(),
        column_headers: columns.iter().map(|t| format!("T={t}")).collect(),
        labels: labels.iter().map(|&y| demo::label_text(y, model)).collect(),
        shape: [
            SAMPLES,
            model.in_channels as usize,
            model.input_size as usize,
            model.input_size as usize,
        ],
        cells: cells.iter().map(|c| c.data.as_slice()).collect(),
    };
    let grid = args.out.join("grid.png");
    write_atomic(&grid, &figure.png()?)?;
    report(&args, &cells, &checkpoint, meta.step, &grid);
    Ok(())
}

/// The shipped model's folder: $ODELT_ASSETS/fmnist, else assets/fmnist under the current
/// folder, else under the source tree this binary was built from.
fn shipped_model() -> anyhow::Result<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("ODELT_ASSETS") {
        Some(assets) => vec![PathBuf::from(assets).join(SHIPPED)],
        None => vec![
            Path::new("assets").join(SHIPPED),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("assets").join(SHIPPED),
        ],
    };
    let mut problem = String::new();
    for dir in &candidates {
        match check_checkpoint(dir) {
            Ok(()) => return Ok(dir.clone()),
            Err(e) if problem.is_empty() => problem = e,
            Err(_) => {}
        }
    }
    Err(bad_input!(
        "the shipped model {} is absent or unreadable ({problem}); run `odelt demo --train` to train one \
         on Fashion-MNIST first (a few minutes)",
        candidates[0].display()
    ))
}

/// A checkpoint folder with a readable config.json and model.safetensors.
fn check_checkpoint(dir: &Path) -> Result<(), String> {
    CheckpointMeta::read(dir).map_err(|e| e.to_string())?;
    let weights = dir.join(crate::checkpoint::MODEL_FILE);
    std::fs::File::open(&weights).map_err(|e| format!("{}: {e}", weights.display()))?;
    Ok(())
}

/// `--train`: a fresh fmnist run into OUT/checkpoint.
fn train_fmnist(args: &DemoArgs) -> anyhow::Result<PathBuf> {
    let out = args.out.join("checkpoint");
    if out.join(crate::checkpoint::CONFIG_FILE).is_file() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing the earlier {}", out.display()))?;
    }
    let steps = args.steps.unwrap_or(DEFAULT_STEPS);
    let minutes = args.minutes.unwrap_or(DEFAULT_MINUTES);
    if minutes.is_nan() || minutes <= 0.0 {
        return Err(bad_input!("--minutes must be positive (got {minutes})"));
    }
    eprintln!(
        "training the fmnist preset on Fashion-MNIST for {steps} steps or {minutes} minutes, whichever \
         comes first, into {}.\nA short run like this gives blurry samples (a sharp model trains for hours).",
        out.display()
    );
    // A short run's EMA must forget the initialisation: 1 − 10/steps, between 0.9 and 0.999.
    let ema_decay = (1.0 - 10.0 / steps.max(1) as f64).clamp(0.9, 0.999);
    let train_args = TrainArgs {
        data: "fashion-mnist".into(),
        data_labels: None,
        stop_at: None,
        model: "fmnist".into(),
        steps,
        out: out.clone(),
        resume: false,
        init_from: None,
        seed: args.seed,
        batch_size: None,
        objective: None,
        lr: None,
        lr_min: None,
        warmup_steps: None,
        ema_decay: Some(ema_decay),
        class_dropout: None,
        tc_fraction: None,
        lc_fraction: None,
        t_on_grid: false,
        save_every: steps.max(1),
        log_every: 10,
        threads: (args.threads > 0).then_some(args.threads),
        device: "cpu".into(),
    };
    train::run_for(train_args, Some(Duration::from_secs_f64(minutes * 60.0)))?;
    Ok(out)
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar
}

fn export(checkpoint: &Path, engines: &Path, lengths: &[u32]) -> anyhow::Result<()> {
    let bar = bar(
        lengths.len() as u64,
        "{spinner} export [{bar:30}] {pos}/{len} {msg}",
    );
    let options = ExportOptions {
        lengths: Some(lengths.to_vec()),
        ..ExportOptions::default()
    };
    let result = odelt_export::export_with_progress(checkpoint, engines, &options, |event| {
        if let Progress::GraphWritten { file, .. } = event {
            bar.inc(1);
            bar.set_message(file);
        }
    });
    bar.finish_and_clear();
    result?;
    eprintln!(
        "exported lengths {} of {} to {}",
        odelt_runtime::config::join(&sorted(lengths)),
        checkpoint.display(),
        engines.display()
    );
    Ok(())
}

fn sorted(values: &[u32]) -> Vec<u32> {
    let mut values = values.to_vec();
    values.sort_unstable();
    values
}

fn build_engines(engines: &Path, lengths: Vec<u32>, threads: usize) -> anyhow::Result<()> {
    let bar = bar(
        lengths.len() as u64,
        "{spinner} build [{bar:30}] {pos}/{len} {msg}",
    );
    let options = BuildOptions {
        lengths: Some(lengths),
        threads,
        ..BuildOptions::default()
    };
    let started = Instant::now();
    let result = odelt_engines::build(engines, &options, |event| match event {
        BuildEvent::Building { length } => bar.set_message(format!("{BACKEND} l={length}")),
        BuildEvent::Built(_) => bar.inc(1),
        BuildEvent::Started { .. } => {}
    });
    bar.finish_and_clear();
    let built = result?;
    eprintln!(
        "built {} {BACKEND} engine(s) in {:.1} s",
        built.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The table (or JSON lines) on stdout, the figure's path and notes on stderr.
fn report(args: &DemoArgs, cells: &[Cell], checkpoint: &Path, step: u64, grid: &Path) {
    let ms = |c: &Cell| c.wall.as_secs_f64() * 1e3;
    let reference = ms(&cells[0]);
    if args.json {
        for c in cells {
            let line = serde_json::json!({
                "length": c.length,
                "steps": c.steps,
                "nfe": c.nfe,
                "wall_ms": ms(c),
                "speedup": reference / ms(c),
                "n": SAMPLES,
                "runs": c.runs,
            });
            println!("{line}");
        }
    } else {
        println!(
            "{} (step {step}), {SAMPLES} samples per cell, seed {}, Euler, {BACKEND}",
            checkpoint.display(),
            args.seed
        );
        println!(
            "{:>4} {:>5} {:>5} {:>10} {:>9}",
            "l", "T", "NFE", "wall ms", "speed-up"
        );
        for c in cells {
            println!(
                "{:>4} {:>5} {:>5} {:>10.1} {:>8.1}×",
                c.length,
                c.steps,
                c.nfe,
                ms(c),
                reference / ms(c)
            );
        }
        println!(
            "wall ms: the median of up to {} calls for the whole batch",
            demo::MAX_RUNS
        );
    }
    eprintln!("wrote {}", grid.display());
    if args.train {
        eprintln!(
            "the samples come from a short training run and are blurry; `odelt demo --checkpoint {}` redraws \
             the figure without retraining",
            checkpoint.display()
        );
    }
}
