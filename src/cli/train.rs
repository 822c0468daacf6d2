//! `odelt train`: Algorithm 1 on a dataset, writing a checkpoint folder.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use odelt_runtime::ModelConfig;
use tch::{Device, Tensor};

use crate::bad_input;
use crate::checkpoint::LogRow;
use crate::data::{epoch_permutation, DataSource, Dataset, Split};
use crate::train::{Losses, Objective, TrainConfig, Trainer};

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
    /// EMA rate of the target network θ⁻ [default: 0.999]. Each shortcut level learns from θ⁻ one
    /// level up, so the few-step levels wait on this rate level by level; on short runs a faster
    /// rate helps (the shipped model: 0.995 with --tc-fraction 0.25 took T = 1 from noise to
    /// clothes in under 2 000 steps, EXPERIMENTS.md).
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

impl TrainArgs {
    fn train_config(&self, model: &ModelConfig) -> Result<TrainConfig> {
        let d = TrainConfig::default();
        let config = TrainConfig {
            objective: self.objective.unwrap_or(d.objective),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            lr: self.lr.unwrap_or(TrainConfig::default_lr(model.hidden_size)),
            lr_min: self.lr_min.unwrap_or(d.lr_min),
            warmup_steps: self.warmup_steps.unwrap_or(d.warmup_steps),
            ema_decay: self.ema_decay.unwrap_or(d.ema_decay),
            class_dropout: self.class_dropout.unwrap_or(d.class_dropout),
            tc_fraction: self.tc_fraction.unwrap_or(d.tc_fraction),
            lc_fraction: self.lc_fraction.unwrap_or(d.lc_fraction),
            t_on_grid: self.t_on_grid,
            seed: self.seed,
            ..d
        };
        config.validate().map_err(|e| bad_input!("{e}"))?;
        Ok(config)
    }

    fn trainer(&self, device: Device) -> Result<Trainer> {
        let has_checkpoint = self.out.join(crate::checkpoint::CONFIG_FILE).exists();
        if self.resume {
            if !has_checkpoint {
                return Err(bad_input!(
                    "--resume: {} holds no checkpoint to continue",
                    self.out.display()
                ));
            }
            return Trainer::resume(&self.out, self.steps, device);
        }
        if has_checkpoint {
            return Err(bad_input!(
                "{} already holds a checkpoint; pass --resume to continue it or choose another --out",
                self.out.display()
            ));
        }
        let model = match &self.init_from {
            Some(dir) => crate::checkpoint::CheckpointConfig::read(dir)?.meta.model,
            None => ModelConfig::from_preset_or_file(&self.model)?,
        };
        let train = self.train_config(&model)?;
        let mut trainer = Trainer::new(model, train, self.steps, device);
        if let Some(dir) = &self.init_from {
            trainer.start_from(dir)?;
        }
        Ok(trainer)
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    run_for(args, None).map(drop)
}

/// [`run`], stopping (and saving) at the first step that starts after `limit`; returns the
/// steps done. The learning-rate schedule still spans `--steps`.
pub(crate) fn run_for(args: TrainArgs, limit: Option<std::time::Duration>) -> Result<u64> {
    let deadline = limit.map(|limit| Instant::now() + limit);
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads as i32);
    }
    let device = parse_device(&args.device)?;
    let mut trainer = args.trainer(device)?;
    let source = DataSource::parse(&args.data, args.data_labels.clone())?;
    let data =
        Dataset::load(&source, &trainer.model_config, Split::Train, trainer.train.seed)?.to_device(device);
    tracing::info!(
        samples = data.len(),
        step = trainer.step,
        total = args.steps,
        "training"
    );
    let bar = progress_bar(args.steps, trainer.step);
    let mut order = BatchOrder::new(data.len(), trainer.train.seed);
    let mut interval = Interval::new();
    let stop = args.stop_at.unwrap_or(args.steps).min(args.steps);
    while trainer.step < stop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            bar.suspend(|| eprintln!("time limit reached at step {} of {}", trainer.step, args.steps));
            break;
        }
        let indices = order.indices(trainer.step, trainer.train.batch_size);
        let (x1, y) = data.batch(&indices.to_device(device));
        let (losses, lr) = trainer.train_step(&x1, &y);
        if !losses.total.is_finite() {
            anyhow::bail!(
                "the loss became {} at step {}; lower --lr or check the data",
                losses.total,
                trainer.step
            );
        }
        interval.add(losses, x1.size()[0] as usize);
        bar.inc(1);
        if trainer.step % args.log_every == 0 || trainer.step == args.steps {
            let row = interval.finish(trainer.step, lr);
            bar.set_message(format!(
                "loss {:.4}  {:.0} samples/s",
                row.loss, row.samples_per_s
            ));
            trainer.log.push(row);
        }
        if trainer.step % args.save_every == 0 && trainer.step < args.steps {
            trainer.save(&args.out)?;
        }
    }
    trainer.save(&args.out)?;
    bar.finish();
    let last = trainer
        .log
        .last()
        .map(|r| format!(", last loss {:.4}", r.loss))
        .unwrap_or_default();
    eprintln!("wrote {} at step {}{last}", args.out.display(), trainer.step);
    Ok(trainer.step)
}

/// `cpu`, `cuda` or `cuda:N`, refused unless libtorch sees that GPU.
fn parse_device(spec: &str) -> Result<Device> {
    let index = match spec {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        _ => spec
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| bad_input!("--device '{spec}' is not cpu, cuda or cuda:N"))?,
    };
    let gpus = tch::Cuda::device_count() as usize;
    if index >= gpus {
        return Err(bad_input!(
            "--device '{spec}' is not available: libtorch sees {gpus} CUDA device(s) (a CPU-only libtorch or no GPU)"
        ));
    }
    Ok(Device::Cuda(index))
}

fn progress_bar(total: u64, done: u64) -> ProgressBar {
    let bar = ProgressBar::new(total).with_position(done);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps [{elapsed_precise}<{eta_precise}] {msg}")
            .expect("a valid template"),
    );
    bar
}

/// Sample order over epochs: step s takes positions s·B … s·B + B − 1 of the concatenation of
/// per-epoch permutations, so the order depends only on (seed, step) and survives a resume.
struct BatchOrder {
    len: usize,
    seed: u64,
    epoch: u64,
    permutation: Vec<i64>,
}

impl BatchOrder {
    fn new(len: usize, seed: u64) -> Self {
        Self {
            len,
            seed,
            epoch: u64::MAX,
            permutation: Vec::new(),
        }
    }

    fn indices(&mut self, step: u64, batch: usize) -> Tensor {
        let start = step * batch as u64;
        let picks: Vec<i64> = (start..start + batch as u64)
            .map(|g| {
                let epoch = g / self.len as u64;
                if epoch != self.epoch {
                    let perm = epoch_permutation(self.len, self.seed, epoch);
                    self.permutation = Vec::<i64>::try_from(&perm).expect("an int64 permutation");
                    self.epoch = epoch;
                }
                self.permutation[(g % self.len as u64) as usize]
            })
            .collect();
        Tensor::from_slice(&picks)
    }
}

/// Means over a logging interval.
struct Interval {
    start: Instant,
    steps: usize,
    samples: usize,
    sum: Losses,
}

impl Interval {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            steps: 0,
            samples: 0,
            sum: Losses::default(),
        }
    }

    fn add(&mut self, l: Losses, samples: usize) {
        let nan0 = |v: f64| if v.is_nan() { 0.0 } else { v };
        self.sum.total += l.total;
        self.sum.fm += nan0(l.fm);
        self.sum.tc += nan0(l.tc);
        self.sum.lc += nan0(l.lc);
        self.steps += 1;
        self.samples += samples;
    }

    fn finish(&mut self, step: u64, lr: f64) -> LogRow {
        let n = self.steps.max(1) as f64;
        let row = LogRow {
            step,
            loss: self.sum.total / n,
            loss_fm: self.sum.fm / n,
            loss_tc: self.sum.tc / n,
            loss_lc: self.sum.lc / n,
            lr,
            samples_per_s: self.samples as f64 / self.start.elapsed().as_secs_f64(),
        };
        *self = Self::new();
        row
    }
}
