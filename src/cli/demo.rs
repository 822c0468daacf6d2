//! `odelt demo`: the newcomer's first command. On the shipped Fashion-MNIST model (or one it
//! trains with `--train`, which needs the `train` feature) it exports three lengths, builds
//! ONNX Runtime CPU engines, samples the paper's 3 × 3 figure (rows l = 12, 8, 4; columns
//! T = 128, 4, 1 Euler steps; the same noise and labels in every cell) to `OUT/grid.png` and
//! prints the latency of every cell and its speed-up over the full model with the plain flow.

use std::path::PathBuf;

use indicatif::ProgressBar;

use crate::demo::job::{run as run_demo, DemoEvent, DemoOptions, DemoResult, Source, BACKEND, SAMPLES};
use crate::demo::Cell;
use odelt_runtime::Precision;

/// Training steps of `--train` when `--steps` is not given.
const DEFAULT_STEPS: u64 = 400;
/// Time limit of `--train` when `--minutes` is not given.
const DEFAULT_MINUTES: f64 = 10.0;

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
    /// Precisions to compare, comma-separated (e.g. fp32,int8): ort-cpu engines of each are
    /// built when missing, every cell is sampled with each (the same noise), the first
    /// precision's figure goes to grid.png and the others' to grid-<precision>.png; speed-ups
    /// are over the first precision's full model with the plain flow [default: the export's
    /// own].
    #[arg(long, value_delimiter = ',', value_name = "P,P,…")]
    pub precision: Vec<Precision>,
    /// Print one JSON line per cell (precision, length, steps, nfe, wall_ms, speedup, n, runs)
    /// instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let source = match (&args.checkpoint, args.train) {
        (Some(dir), _) => Source::Checkpoint(dir.clone()),
        (None, true) => Source::Train {
            steps: args.steps.unwrap_or(DEFAULT_STEPS),
            minutes: args.minutes.unwrap_or(DEFAULT_MINUTES),
        },
        (None, false) => Source::Shipped,
    };
    let options = DemoOptions {
        source,
        out: args.out.clone(),
        threads: args.threads,
        seed: args.seed,
        precisions: args.precision.clone(),
    };
    let mut bar: Option<ProgressBar> = None;
    let result = run_demo(&options, |event| match event {
        DemoEvent::Note(line) => match &bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        },
        DemoEvent::Begin { phase, total } => {
            let template = format!("{{spinner}} {phase} [{{bar:30}}] {{pos}}/{{len}} {{msg}}");
            bar = Some(crate::progress::bar(total, &template));
        }
        DemoEvent::Step { message } => {
            if let Some(bar) = &bar {
                bar.inc(1);
                bar.set_message(message);
            }
        }
        DemoEvent::End => {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
        }
    });
    if let Some(bar) = bar.take() {
        bar.finish_and_clear();
    }
    report(&args, &result?);
    Ok(())
}

/// The table (or JSON lines) on stdout, the figure's path and notes on stderr.
fn report(args: &DemoArgs, result: &DemoResult) {
    let DemoResult {
        checkpoint,
        step,
        figures,
    } = result;
    let ms = |c: &Cell| c.wall.as_secs_f64() * 1e3;
    let reference = ms(&figures[0].cells[0]);
    let cells = figures.iter().flat_map(|f| {
        f.cells
            .iter()
            .zip(&f.quality)
            .map(move |(c, q)| (f.precision.as_str(), c, q))
    });
    let evaluated = figures.iter().any(|f| f.quality.iter().any(Option::is_some));
    if args.json {
        for (precision, c, q) in cells {
            let mut line = serde_json::json!({
                "precision": precision,
                "length": c.length,
                "steps": c.steps,
                "nfe": c.nfe,
                "wall_ms": ms(c),
                "speedup": reference / ms(c),
                "n": SAMPLES,
                "runs": c.runs,
            });
            if let Some(q) = q {
                line["fd"] = q.fd.into();
                line["fd_ci"] = serde_json::json!(q.fd_ci);
                line["knn_precision"] = q.knn_precision.into();
                line["knn_recall"] = q.knn_recall.into();
            }
            println!("{line}");
        }
    } else {
        println!(
            "{} (step {step}), {SAMPLES} samples per cell, seed {}, Euler, {BACKEND}",
            checkpoint.display(),
            args.seed
        );
        println!(
            "{:>9} {:>4} {:>5} {:>5} {:>10} {:>9}  quality (evaluated)",
            "precision", "l", "T", "NFE", "wall ms", "speed-up"
        );
        for (precision, c, q) in cells {
            println!(
                "{precision:>9} {:>4} {:>5} {:>5} {:>10.1} {:>8.1}×  {}",
                c.length,
                c.steps,
                c.nfe,
                ms(c),
                reference / ms(c),
                q.as_ref().map_or("–".into(), |q| format!(
                    "{}, kNN precision {:.2}, recall {:.2}",
                    q.caption(),
                    q.knn_precision,
                    q.knn_recall
                ))
            );
        }
        println!(
            "wall ms: the median of up to {} calls for the whole batch",
            crate::demo::MAX_RUNS
        );
        if evaluated {
            println!(
                "quality: Fréchet distance (95% bootstrap interval), kNN precision and recall from \
                 this checkpoint's evaluation, {}",
                checkpoint.join(crate::demo::quality::QUALITY_FILE).display()
            );
        }
    }
    for figure in figures {
        eprintln!("wrote {} ({})", figure.grid.display(), figure.precision);
    }
    if args.train {
        eprintln!(
            "the samples come from a short training run and are blurry; `odelt demo --checkpoint {}` redraws \
             the figure without retraining",
            checkpoint.display()
        );
    }
}
