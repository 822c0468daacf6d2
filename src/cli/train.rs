//! `odelt train`: Algorithm 1 on a dataset, writing a checkpoint folder (`train::fit`; needs the
//! `train` feature).

use std::path::PathBuf;

use anyhow::Result;

use crate::train::{AdaLnInit, Objective};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Training data: `fashion-mnist` (the Debian package's IDX files), `synthetic`
    /// (procedural images at the model's size), a float32 [N, C, H, W] `.npy` file in [-1, 1],
    /// or a folder with one subfolder of images per class.
    #[arg(long)]
    pub data: String,
    /// int64 [N] labels for a `.npy` dataset (default: all class 0).
    #[arg(long)]
    pub data_labels: Option<PathBuf>,
    /// Model preset (tiny, fmnist, dit-s, dit-b, dit-xl) or a JSON config file. With --resume or
    /// --init-from the checkpoint's own config is used.
    #[arg(long, default_value = "tiny")]
    pub model: String,
    /// Total optimizer steps of the run (with --resume: continue up to this many). 0 writes the
    /// initialised checkpoint.
    #[arg(long)]
    pub steps: u64,
    /// Checkpoint folder to write (replaced atomically at every save).
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the run saved in --out; gives the same weights as an uninterrupted run.
    #[arg(long)]
    pub resume: bool,
    /// Start a new run (step 0, fresh AdamW, the flags' hyper-parameters) from the EMA weights of
    /// this checkpoint folder instead of DiT's initialisation: fine-tuning, or continuing a model
    /// whose train_state was not kept.
    #[arg(long, value_name = "CKPT", conflicts_with = "resume")]
    pub init_from: Option<PathBuf>,
    /// Seed of initialisation, data order and every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Samples per step [default: 64].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// odelt (the paper), shortcut (time consistency at full length), flow (rectified flow)
    /// [default: odelt].
    #[arg(long, value_enum)]
    pub objective: Option<Objective>,
    /// Peak learning rate [default: 1e-4 at DiT-B width, scaled as 1/width up to 1e-3].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Final learning rate of the cosine decay over the last 10% of steps [default: 1e-5].
    #[arg(long)]
    pub lr_min: Option<f64>,
    /// Linear warm-up steps, capped at 10% of the run [default: 1000].
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    /// EMA rate of the target network θ⁻ [default: 0.995]. Each shortcut level learns from θ⁻ one
    /// level up, so the few-step levels wait on this rate level by level: θ⁻ trails θ by about
    /// 1/(1 − rate) steps (200 here; 1 000 at the earlier default 0.999, which left the few-step
    /// levels unconverged, EXPERIMENTS.md "Training defaults").
    #[arg(long)]
    pub ema_decay: Option<f64>,
    /// Probability of replacing a label by the null label [default: 0.1].
    #[arg(long)]
    pub class_dropout: Option<f64>,
    /// Share of a batch trained for time consistency [default: 0.125].
    #[arg(long)]
    pub tc_fraction: Option<f64>,
    /// Share of a batch trained for length consistency, K [default: 0.125].
    #[arg(long)]
    pub lc_fraction: Option<f64>,
    /// Draw flow-matching times on the T_max grid instead of U(0, 1).
    #[arg(long)]
    pub t_on_grid: bool,
    /// How the blocks' adaLN projections start: xavier (the authors' JAX code; the few-step
    /// levels converge sooner) or zero (DiT's adaLN-Zero, every block starts as the identity)
    /// [default: xavier].
    #[arg(long, value_enum)]
    pub adaln_init: Option<AdaLnInit>,
    /// Relative weights of the lengths a sample trains at, shortest first, one per valid
    /// length (fmnist: 4, 8, 12), e.g. `2,1,1` to train the shortest length on half the batch
    /// [default: uniform].
    #[arg(long, value_delimiter = ',', value_name = "W,W,...")]
    pub length_weights: Vec<f64>,
    /// Relative weights of the time-consistency levels k0 = 0 (one step), 1, … log2 T_max − 1
    /// (fmnist: 7 weights) in each TC sample's draw, e.g. `3,3,2,2,1,1,1` for more of the
    /// few-step levels [default: uniform].
    #[arg(long, value_delimiter = ',', value_name = "W,W,...")]
    pub tc_level_weights: Vec<f64>,
    /// Save a checkpoint every this many steps (and always at the end).
    #[arg(long, default_value_t = 500)]
    pub save_every: u64,
    /// Write a train_log.csv row (mean over the interval) every this many steps.
    #[arg(long, default_value_t = 10)]
    pub log_every: u64,
    /// CPU threads for libtorch [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Where to train: `cpu`, `cuda` or `cuda:N` (needs a libtorch built with CUDA and a GPU).
    /// Checkpoints are the same on every device; a run may resume on another one.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Stop after this step and save, as if interrupted (the schedule still spans --steps);
    /// continue later with --resume. For time-limited jobs and the resume test.
    #[arg(long, value_name = "STEP")]
    pub stop_at: Option<u64>,
}

#[cfg(feature = "train")]
impl TrainArgs {
    fn hyper(&self) -> crate::train::TrainOverrides {
        crate::train::TrainOverrides {
            objective: self.objective,
            batch_size: self.batch_size,
            lr: self.lr,
            lr_min: self.lr_min,
            warmup_steps: self.warmup_steps,
            ema_decay: self.ema_decay,
            class_dropout: self.class_dropout,
            tc_fraction: self.tc_fraction,
            lc_fraction: self.lc_fraction,
            t_on_grid: self.t_on_grid,
            adaln_init: self.adaln_init,
            length_weights: self.length_weights.clone(),
            tc_level_weights: self.tc_level_weights.clone(),
            seed: self.seed,
        }
    }
}

#[cfg(not(feature = "train"))]
pub fn run(_args: TrainArgs) -> Result<()> {
    Err(crate::train::needs_train_feature("train"))
}

#[cfg(feature = "train")]
pub fn run(args: TrainArgs) -> Result<()> {
    use crate::data::DataSource;
    use crate::train::{fit, FitEvent, FitOptions};

    let options = FitOptions {
        data: DataSource::parse(&args.data, args.data_labels.clone())?,
        out: args.out.clone(),
        model: args.model.clone(),
        init_from: args.init_from.clone(),
        resume: args.resume,
        hyper: args.hyper(),
        steps: args.steps,
        stop_at: args.stop_at,
        time_limit: None,
        save_every: args.save_every,
        log_every: args.log_every,
        threads: args.threads,
        device: args.device.clone(),
    };
    let bar = crate::progress::bar(
        args.steps,
        "{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}",
    );
    let summary = fit(&options, |event| match event {
        FitEvent::Started { step, total, samples } => {
            tracing::info!(samples, step, total, "training");
            bar.set_position(step);
        }
        FitEvent::Stepped { logged, .. } => {
            bar.inc(1);
            if let Some(row) = logged {
                bar.set_message(format!(
                    "loss {:.4}  {:.0} samples/s",
                    row.loss, row.samples_per_s
                ));
            }
        }
        FitEvent::TimeLimit { step } => {
            bar.suspend(|| eprintln!("time limit reached at step {step} of {}", args.steps))
        }
    });
    bar.finish();
    let summary = summary?;
    let last = summary
        .last_loss
        .map(|loss| format!(", last loss {loss:.4}"))
        .unwrap_or_default();
    eprintln!("wrote {} at step {}{last}", args.out.display(), summary.step);
    Ok(())
}
