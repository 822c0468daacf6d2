//! `odelt sample`: draw images from exported engines with Euler or Dopri5 (docs/DESIGN.md §8).
//!
//! Bad usage and input are `odelt_runtime::Error`s with `is_input()` (exit 2); failures while
//! running are not (exit 1). Outputs are written through a temp file and a rename.

use std::io::Write;
use std::path::PathBuf;

use odelt_format::atomic::write_atomic;
use odelt_runtime::{
    Decoder, Dopri5Options, Error as RtError, GuidanceMode, Labels, Precision, Provider, Runtime,
    RuntimeOptions, SampleRequest, SolverChoice,
};

use crate::data::npy;

/// The time integrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SolverKind {
    /// Explicit Euler with --steps uniform steps.
    Euler,
    /// Adaptive Dormand–Prince 5(4) with --rtol/--atol.
    Dopri5,
}

/// Sample images from exported engines with Euler or Dopri5.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("engine_choice").required(true).args(["length", "budget_ms"])))]
pub struct SampleArgs {
    /// Export folder written by `odelt export` (manifest.json, model_l{l}.onnx, weights.bin).
    #[arg(long, value_name = "DIR")]
    pub engines: PathBuf,
    /// Active blocks l: one of the exported lengths.
    #[arg(long, value_name = "L")]
    pub length: Option<u32>,
    /// Time budget for the whole solve in milliseconds: picks the largest length (and, for
    /// Euler without --steps, the most steps, a power of two ≤ T_max) whose calibrated time
    /// fits. Needs latencies recorded by `odelt bench`.
    #[arg(long, value_name = "MS")]
    pub budget_ms: Option<f64>,
    /// Time integrator: euler (needs --steps) or dopri5 (uses --rtol/--atol).
    #[arg(long, value_enum)]
    pub solver: SolverKind,
    /// Euler steps T; a power of two ≤ T_max runs the model at shortcut level log2 T.
    #[arg(long, value_name = "T")]
    pub steps: Option<u32>,
    /// Dopri5 relative tolerance (> 0) [default: 1e-5].
    #[arg(long, value_name = "R")]
    pub rtol: Option<f64>,
    /// Dopri5 absolute tolerance (> 0) [default: 1e-5].
    #[arg(long, value_name = "A")]
    pub atol: Option<f64>,
    /// Dopri5's shortcut level: 0 (the one-step level) to log2 T_max (the flow)
    /// [default: the flow level].
    #[arg(long, value_name = "K")]
    pub level: Option<u32>,
    /// Number of samples.
    #[arg(long, value_name = "N")]
    pub n: usize,
    /// Noise seed. The noise is "odelt noise v1" (ChaCha8 keyed by the seed, Box–Muller), the
    /// same for this command, the Rust API and the C ABI.
    #[arg(long, value_name = "S", default_value_t = 0, conflicts_with = "noise")]
    pub seed: u64,
    /// Initial noise instead of a seed: float32 .npy of shape [N, C, H, W].
    #[arg(long, value_name = "x0.npy")]
    pub noise: Option<PathBuf>,
    /// Class label for every sample (default: the null label, i.e. unconditional).
    #[arg(long, value_name = "C", conflicts_with = "labels")]
    pub class: Option<i64>,
    /// One label per sample: int64 .npy of shape [N]; label num_classes is the null label.
    #[arg(long, value_name = "y.npy")]
    pub labels: Option<PathBuf>,
    /// Classifier-free guidance scale w: v = v_u + w (v_c − v_u); w ≤ 1 means no guidance.
    #[arg(long, value_name = "W", default_value_t = 1.0)]
    pub cfg: f32,
    /// Evaluate guidance's conditional and null halves in two engine calls of N rows (less
    /// memory) instead of one call of 2N.
    #[arg(long)]
    pub cfg_separate: bool,
    /// Write the samples as a near-square PNG grid ([-1, 1] → 0…255; 1 or 3 channels, after
    /// --decoder when given).
    #[arg(long, value_name = "grid.png")]
    pub out: Option<PathBuf>,
    /// Write the samples as float32 .npy [N, C, H, W] (the decoded images with --decoder).
    #[arg(long, value_name = "x1.npy")]
    pub npy: Option<PathBuf>,
    /// Print one JSON line to stdout: length, solver, steps or rtol/atol, nfe, wall_ms (the
    /// sampling call, engine loading included), engine_ms.
    #[arg(long)]
    pub json: bool,
    /// ONNX Runtime intra-op threads per engine (0: ONNX Runtime's default).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// ONNX decoder for latent models, run on the samples before writing them: one input
    /// (latents [N, C, H, W]) and one output (images [N, C', H', W'] in [-1, 1]).
    #[arg(long, value_name = "decoder.onnx")]
    pub decoder: Option<PathBuf>,
    /// Execution provider: cpu, cuda[:ID], cuda-graph[:ID] (CUDA graphs, one batch size), tensorrt[:ID] or tensorrt-fp16[:ID]. A GPU
    /// provider missing from the loaded ONNX Runtime is an error, never a silent CPU fallback.
    #[arg(long, value_name = "P", default_value = "cpu")]
    pub provider: String,
    /// Precision of the engines to run: fp32, fp16 or int8 [default: the export's own]. int8
    /// needs engines built with `odelt engines build --backend ort-cpu --precision int8`.
    #[arg(long, value_name = "P")]
    pub precision: Option<Precision>,
    /// Largest batch per engine call; larger batches are split (0: no limit).
    #[arg(long, value_name = "B", default_value_t = 0)]
    pub max_batch: usize,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, then the scripts/setup.sh venv).
    #[arg(long, value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
    #[command(flatten)]
    pub remote: crate::args::RemoteArgs,
}

fn input(message: String) -> anyhow::Error {
    RtError::InvalidArgument(message).into()
}

pub fn run(args: SampleArgs) -> anyhow::Result<()> {
    check_flags(&args)?;
    let mut options = RuntimeOptions::default()
        .with_provider(Provider::parse(&args.provider)?)
        .with_intra_threads(args.threads)
        .with_max_batch(args.max_batch)
        .with_precision(args.precision);
    options.ort_library = args.ort_library.clone();
    options.remote = args.remote.options()?;
    let rt = Runtime::open(&args.engines, options.clone())?;
    let [c, h, w] = rt.image_shape();

    let mut request = SampleRequest::new(args.n, SolverChoice::Euler { steps: 1 });
    if let Some(path) = &args.noise {
        let (noise, shape) = npy::images(&npy::read(path)?, path)?;
        if shape != [args.n, c, h, w] {
            return Err(input(format!(
                "{}: noise has shape {shape:?}, expected [{}, {c}, {h}, {w}] (--n {} and the model's image shape)",
                path.display(),
                args.n,
                args.n
            )));
        }
        request.noise = odelt_runtime::NoiseSource::Given(noise);
    } else {
        request.noise = odelt_runtime::NoiseSource::Seed(args.seed);
    }
    request.labels = match (&args.labels, args.class) {
        (Some(path), _) => Labels::PerSample(npy::labels(&npy::read(path)?, path)?),
        (None, Some(class)) => Labels::Class(class),
        (None, None) => Labels::Null,
    };
    let mode = if args.cfg_separate {
        GuidanceMode::Separate
    } else {
        GuidanceMode::Batched
    };
    request = request.with_cfg(args.cfg, mode);

    let mut budget_note = None;
    let solver = match args.solver {
        SolverKind::Euler => {
            let (length, steps) = match args.budget_ms {
                Some(budget) => {
                    let rows = rt.rows_per_evaluation(&request);
                    let pick = rt.pick_for_budget(budget, args.steps, rows)?;
                    let note = format!(
                        "budget {budget} ms: picked length {} with {} Euler step{} (predicted {:.2} ms at {rows} row{} per evaluation)",
                        pick.length,
                        pick.steps,
                        if pick.steps == 1 { "" } else { "s" },
                        pick.predicted_ms,
                        if rows == 1 { "" } else { "s" }
                    );
                    budget_note = Some((budget, pick.predicted_ms));
                    eprintln!("{note}");
                    (pick.length, pick.steps)
                }
                None => (
                    args.length.expect("clap requires --length or --budget-ms"),
                    args.steps.expect("checked"),
                ),
            };
            request.length = Some(length);
            SolverChoice::Euler { steps }
        }
        SolverKind::Dopri5 => {
            request.length = args.length;
            SolverChoice::Dopri5(Dopri5Options {
                rtol: args.rtol.unwrap_or(1e-5),
                atol: args.atol.unwrap_or(1e-5),
                level: args.level,
                ..Default::default()
            })
        }
    };
    request.solver = solver;

    let samples = rt.sample(&request)?;
    let (data, shape) = match &args.decoder {
        Some(path) => {
            let decoder = Decoder::open(path, &options)?;
            let images = decoder.decode(&samples.data, samples.shape)?;
            (images.data, images.shape)
        }
        None => (samples.data.clone(), samples.shape),
    };
    // Check the image layout before writing anything.
    if args.out.is_some() && !matches!(shape[1], 1 | 3) {
        return Err(input(format!(
            "--out needs 1 or 3 channels, the samples have {} (a latent model? pass --decoder decoder.onnx)",
            shape[1]
        )));
    }
    if let Some(path) = &args.npy {
        write_atomic(path, &npy::samples(&data, shape)?)?;
    }
    if let Some(path) = &args.out {
        write_atomic(path, &crate::png::grid(&data, shape)?)?;
    }

    let wall_ms = samples.wall.as_secs_f64() * 1e3;
    let engine_ms = samples.stats.engine.as_secs_f64() * 1e3;
    let solver_name = request.solver.name();
    if args.json {
        let mut line = serde_json::json!({
            "length": samples.length,
            "solver": solver_name,
            "n": args.n,
            "nfe": samples.stats.nfe,
            "wall_ms": wall_ms,
            "engine_ms": engine_ms,
        });
        match &request.solver {
            SolverChoice::Euler { steps } => line["steps"] = (*steps).into(),
            SolverChoice::Dopri5(o) => {
                line["rtol"] = o.rtol.into();
                line["atol"] = o.atol.into();
                line["level"] = samples.level.into();
                line["accepted_steps"] = samples.stats.accepted_steps.into();
                line["rejected_steps"] = samples.stats.rejected_steps.into();
            }
        }
        if let Some((budget, predicted)) = budget_note {
            line["budget_ms"] = budget.into();
            line["predicted_ms"] = predicted.into();
        }
        println!("{line}");
    } else {
        let what = match &request.solver {
            SolverChoice::Euler { steps } => format!("euler, {steps} steps"),
            SolverChoice::Dopri5(o) => format!(
                "dopri5 at level {}, rtol {:e} atol {:e}, {} accepted / {} rejected steps",
                samples.level, o.rtol, o.atol, samples.stats.accepted_steps, samples.stats.rejected_steps
            ),
        };
        println!(
            "{} samples, length {}, {what}: {} evaluations in {wall_ms:.1} ms ({engine_ms:.1} ms in the engine)",
            args.n, samples.length, samples.stats.nfe
        );
    }
    std::io::stdout().flush().ok();
    Ok(())
}

/// Flag combinations clap cannot express.
fn check_flags(args: &SampleArgs) -> anyhow::Result<()> {
    match args.solver {
        SolverKind::Euler => {
            if args.rtol.is_some() || args.atol.is_some() || args.level.is_some() {
                return Err(input(
                    "--rtol/--atol/--level apply to --solver dopri5, not euler (its level follows --steps)"
                        .into(),
                ));
            }
            if args.steps.is_none() && args.budget_ms.is_none() {
                return Err(input(
                    "--solver euler needs --steps T (or --budget-ms to choose them)".into(),
                ));
            }
        }
        SolverKind::Dopri5 => {
            if args.steps.is_some() {
                return Err(input(
                    "--steps applies to --solver euler; dopri5 chooses its steps from --rtol/--atol".into(),
                ));
            }
            if args.budget_ms.is_some() {
                return Err(input(
                    "--budget-ms needs --solver euler: dopri5's number of evaluations is not known in advance".into(),
                ));
            }
        }
    }
    if args.n == 0 {
        return Err(input("--n must be at least 1".into()));
    }
    Ok(())
}
