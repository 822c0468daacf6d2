//! The whole demo: find (or train) the checkpoint, export it, build ort-cpu engines, sample and
//! time every cell, draw the figure. Reuses an export and engines that are still current.

use std::path::{Path, PathBuf};

use odelt_engines::{BuildEvent, BuildOptions};
use odelt_export::{ExportOptions, Progress};
use odelt_format::atomic::write_atomic;
use odelt_format::checkpoint::MODEL_FILE;
use odelt_format::{CheckpointMeta, Manifest, ModelConfig, Precision};
use odelt_runtime::{Runtime, RuntimeOptions};

use super::figure::Figure;
use super::quality::{self, Quality};
use super::{
    columns, export_matches, label_text, labels, lengths_without_engine, measure, rows, warm_up, Cell,
};
use crate::bad_input;

/// The shipped model, under the assets folder.
pub const SHIPPED: &str = "fmnist";
/// Samples per cell: one per class (Fashion-MNIST has 10).
pub const SAMPLES: usize = 10;
pub const BACKEND: &str = "ort-cpu";

/// Where the demo's checkpoint comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The shipped model (`$ODELT_ASSETS/fmnist`, else `assets/fmnist`).
    Shipped,
    /// A checkpoint folder.
    Checkpoint(PathBuf),
    /// A fresh fmnist run into `OUT/checkpoint` for `steps` steps or `minutes`, whichever ends
    /// first (needs the `train` feature).
    Train { steps: u64, minutes: f64 },
}

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub source: Source,
    /// engines/, grid.png and (when training) checkpoint/ go here.
    pub out: PathBuf,
    /// ONNX Runtime (and libtorch) threads; 0: all cores.
    pub threads: usize,
    /// Noise seed of every cell (and of training).
    pub seed: u64,
    /// Precisions to compare (ort-cpu engines of each are built when missing); empty: the
    /// export's own.
    pub precisions: Vec<Precision>,
}

/// Progress of [`run`], for bars and notes.
#[derive(Debug, Clone)]
pub enum DemoEvent {
    /// A line for the user.
    Note(String),
    /// A phase of `total` steps begins ("train", "export", "build", "sample").
    Begin { phase: &'static str, total: u64 },
    /// One step of the phase is done.
    Step { message: String },
    /// The phase is over.
    End,
}

/// What the demo measured and drew.
#[derive(Debug)]
pub struct DemoResult {
    pub checkpoint: PathBuf,
    pub step: u64,
    /// Per precision, in the order asked for: its name, cells and figure.
    pub figures: Vec<PrecisionFigure>,
}

/// The cells and figure of one precision.
#[derive(Debug)]
pub struct PrecisionFigure {
    pub precision: String,
    pub cells: Vec<Cell>,
    /// Each cell's measured quality, from the checkpoint's evaluation (`quality::QUALITY_FILE`).
    pub quality: Vec<Option<Quality>>,
    pub grid: PathBuf,
}

pub fn run(options: &DemoOptions, mut progress: impl FnMut(DemoEvent)) -> anyhow::Result<DemoResult> {
    let checkpoint = match &options.source {
        Source::Checkpoint(dir) => {
            check_checkpoint(dir).map_err(|e| bad_input!("--checkpoint {}: {e}", dir.display()))?;
            dir.clone()
        }
        Source::Shipped => shipped_model()?,
        Source::Train { steps, minutes } => train_fmnist(options, *steps, *minutes, &mut progress)?,
    };
    let meta = CheckpointMeta::read(&checkpoint)?;
    let model = &meta.model;
    let rows = rows(&model.valid_lengths());
    let columns = columns(model.denoise_timesteps);
    let engines = options.out.join("engines");
    if export_matches(&engines, &checkpoint, &rows) {
        progress(DemoEvent::Note(format!(
            "reusing the export in {}",
            engines.display()
        )));
    } else {
        export(&checkpoint, &engines, &rows, &mut progress)?;
    }
    let precisions: Vec<Option<Precision>> = if options.precisions.is_empty() {
        vec![None]
    } else {
        options.precisions.iter().copied().map(Some).collect()
    };
    let evaluated = quality::read(&checkpoint)?;
    let mut figures = Vec::new();
    for (index, &precision) in precisions.iter().enumerate() {
        let runtime_options = RuntimeOptions::default()
            .with_intra_threads(options.threads)
            .with_precision(precision);
        let name = runtime_options
            .precision_name(&Manifest::read(&engines)?)
            .to_string();
        let missing = lengths_without_engine(&engines, BACKEND, &name)?;
        if missing.is_empty() {
            progress(DemoEvent::Note(format!(
                "reusing the {name} {BACKEND} engines in {}",
                engines.display()
            )));
        } else {
            build_engines(&engines, missing, precision, options.threads, &mut progress)?;
        }
        let rt = Runtime::open(&engines, runtime_options)?;
        let grid = if index == 0 {
            options.out.join("grid.png")
        } else {
            options.out.join(format!("grid-{name}.png"))
        };
        let evaluated: Vec<Quality> = evaluated
            .iter()
            .filter(|q| q.precision == name)
            .cloned()
            .collect();
        let (cells, quality) = sample_figure(
            &rt,
            model,
            (&rows, &columns),
            options.seed,
            &evaluated,
            &grid,
            &mut progress,
        )?;
        figures.push(PrecisionFigure {
            precision: name,
            cells,
            quality,
            grid,
        });
    }
    Ok(DemoResult {
        checkpoint,
        step: meta.step,
        figures,
    })
}

/// Samples and times every (row length, column steps) cell on `rt`'s engines and draws the
/// figure into `grid`, each cell captioned with its quality in `evaluated` when there.
fn sample_figure(
    rt: &Runtime,
    model: &ModelConfig,
    (rows, columns): (&[u32], &[u32]),
    seed: u64,
    evaluated: &[Quality],
    grid: &Path,
    progress: &mut impl FnMut(DemoEvent),
) -> anyhow::Result<(Vec<Cell>, Vec<Option<Quality>>)> {
    let labels = labels(SAMPLES, model.num_classes);
    warm_up(rt, rows, SAMPLES, &labels)?;
    progress(DemoEvent::Begin {
        phase: "sample",
        total: (rows.len() * columns.len()) as u64,
    });
    let mut cells = Vec::new();
    for &length in rows {
        for &steps in columns {
            cells.push(measure(rt, length, steps, seed, &labels)?);
            progress(DemoEvent::Step {
                message: format!("l={length} T={steps}"),
            });
        }
    }
    progress(DemoEvent::End);

    let quality: Vec<Option<Quality>> = cells
        .iter()
        .map(|c| quality::find(evaluated, c.length, c.steps).cloned())
        .collect();
    let captions = if quality.iter().any(Option::is_some) {
        quality
            .iter()
            .map(|q| q.as_ref().map(Quality::caption).unwrap_or_default())
            .collect()
    } else {
        Vec::new()
    };
    let figure = Figure {
        row_headers: rows.iter().map(|l| format!("l={l}")).collect(),
        column_headers: columns.iter().map(|t| format!("T={t}")).collect(),
        labels: labels.iter().map(|&y| label_text(y, model)).collect(),
        shape: [
            SAMPLES,
            model.in_channels as usize,
            model.input_size as usize,
            model.input_size as usize,
        ],
        cells: cells.iter().map(|c| c.data.as_slice()).collect(),
        captions,
    };
    write_atomic(grid, &figure.png()?)?;
    Ok((cells, quality))
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
         on Fashion-MNIST first (a few minutes; needs the `train` feature)",
        candidates[0].display()
    ))
}

/// A checkpoint folder with a readable config.json and model.safetensors.
fn check_checkpoint(dir: &Path) -> Result<(), String> {
    CheckpointMeta::read(dir).map_err(|e| e.to_string())?;
    let weights = dir.join(MODEL_FILE);
    std::fs::File::open(&weights).map_err(|e| format!("{}: {e}", weights.display()))?;
    Ok(())
}

#[cfg(not(feature = "train"))]
fn train_fmnist(
    _options: &DemoOptions,
    _steps: u64,
    _minutes: f64,
    _progress: &mut impl FnMut(DemoEvent),
) -> anyhow::Result<PathBuf> {
    Err(crate::train::needs_train_feature("demo --train"))
}

/// `--train`: a fresh fmnist run into OUT/checkpoint.
#[cfg(feature = "train")]
fn train_fmnist(
    options: &DemoOptions,
    steps: u64,
    minutes: f64,
    progress: &mut impl FnMut(DemoEvent),
) -> anyhow::Result<PathBuf> {
    use crate::train::{fit, FitEvent, FitOptions, TrainOverrides};

    if minutes.is_nan() || minutes <= 0.0 {
        return Err(bad_input!("--minutes must be positive (got {minutes})"));
    }
    let out = options.out.join("checkpoint");
    if out.join(odelt_format::checkpoint::CONFIG_FILE).is_file() {
        use anyhow::Context;
        std::fs::remove_dir_all(&out).with_context(|| format!("removing the earlier {}", out.display()))?;
    }
    progress(DemoEvent::Note(format!(
        "training the fmnist preset on Fashion-MNIST for {steps} steps or {minutes} minutes, whichever \
         comes first, into {}.\nA short run like this gives blurry samples (a sharp model trains for hours).",
        out.display()
    )));
    // A short run's EMA must forget the initialisation: 1 − 10/steps, between 0.9 and 0.999.
    let ema_decay = (1.0 - 10.0 / steps.max(1) as f64).clamp(0.9, 0.999);
    let fit_options = FitOptions {
        data: crate::data::DataSource::parse("fashion-mnist", None)?,
        out: out.clone(),
        model: "fmnist".into(),
        init_from: None,
        resume: false,
        hyper: TrainOverrides {
            ema_decay: Some(ema_decay),
            seed: options.seed,
            ..TrainOverrides::default()
        },
        steps,
        stop_at: None,
        time_limit: Some(std::time::Duration::from_secs_f64(minutes * 60.0)),
        save_every: steps.max(1),
        log_every: 10,
        threads: (options.threads > 0).then_some(options.threads),
        device: "cpu".into(),
    };
    progress(DemoEvent::Begin {
        phase: "train",
        total: steps,
    });
    let result = fit(&fit_options, |event| match event {
        FitEvent::Stepped { logged, .. } => progress(DemoEvent::Step {
            message: logged
                .map(|row| format!("loss {:.4}", row.loss))
                .unwrap_or_default(),
        }),
        FitEvent::TimeLimit { step } => progress(DemoEvent::Note(format!(
            "time limit reached at step {step} of {steps}"
        ))),
        FitEvent::Started { .. } => {}
    });
    progress(DemoEvent::End);
    result?;
    Ok(out)
}

fn export(
    checkpoint: &Path,
    engines: &Path,
    lengths: &[u32],
    progress: &mut impl FnMut(DemoEvent),
) -> anyhow::Result<()> {
    progress(DemoEvent::Begin {
        phase: "export",
        total: lengths.len() as u64,
    });
    let options = ExportOptions {
        lengths: Some(lengths.to_vec()),
        ..ExportOptions::default()
    };
    let result = odelt_export::export_with_progress(checkpoint, engines, &options, |event| {
        if let Progress::GraphWritten { file, .. } = event {
            progress(DemoEvent::Step { message: file });
        }
    });
    progress(DemoEvent::End);
    let manifest = result?;
    let exported: Vec<u32> = manifest.lengths.iter().map(|e| e.length).collect();
    progress(DemoEvent::Note(format!(
        "exported lengths {} of {} to {}",
        odelt_format::join(&exported),
        checkpoint.display(),
        engines.display()
    )));
    Ok(())
}

fn build_engines(
    engines: &Path,
    lengths: Vec<u32>,
    precision: Option<Precision>,
    threads: usize,
    progress: &mut impl FnMut(DemoEvent),
) -> anyhow::Result<()> {
    progress(DemoEvent::Begin {
        phase: "build",
        total: lengths.len() as u64,
    });
    let options = BuildOptions {
        lengths: Some(lengths),
        precision,
        threads,
        ..BuildOptions::default()
    };
    let started = std::time::Instant::now();
    let result = odelt_engines::build(engines, &options, |event| {
        if let BuildEvent::Built(built) = event {
            progress(DemoEvent::Step {
                message: format!("{BACKEND} l={}", built.length),
            });
        }
    });
    progress(DemoEvent::End);
    let built = result?;
    progress(DemoEvent::Note(format!(
        "built {} {BACKEND} engine(s) in {:.1} s",
        built.len(),
        started.elapsed().as_secs_f64()
    )));
    Ok(())
}
