//! [`fit`]: a training run from the command line's point of view — start (fresh, resumed or
//! from another checkpoint's weights), load the data, step, log, save, stop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use odelt_format::ModelConfig;
use tch::{Device, Tensor};

use super::checkpoint::{CheckpointConfig, LogRow, CONFIG_FILE};
use super::config::TrainOverrides;
use super::tensors::{epoch_permutation, TensorData};
use super::trainer::{Losses, Trainer};
use crate::bad_input;
use crate::data::{DataSource, Dataset, Split};

/// A training run.
#[derive(Debug, Clone)]
pub struct FitOptions {
    pub data: DataSource,
    /// Checkpoint folder to write (replaced atomically at every save).
    pub out: PathBuf,
    /// Model preset or JSON file of a fresh run.
    pub model: String,
    /// Start from this checkpoint's EMA weights (a new run).
    pub init_from: Option<PathBuf>,
    /// Continue the run saved in `out`.
    pub resume: bool,
    /// Hyper-parameters given; the rest take their defaults.
    pub hyper: TrainOverrides,
    /// Total steps of the schedule.
    pub steps: u64,
    /// Save and stop after this step, as if interrupted.
    pub stop_at: Option<u64>,
    /// Save and stop at the first step that starts after this long.
    pub time_limit: Option<Duration>,
    pub save_every: u64,
    pub log_every: u64,
    /// libtorch CPU threads (`None`: all cores).
    pub threads: Option<usize>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
}

/// Progress of [`fit`].
#[derive(Debug)]
pub enum FitEvent<'a> {
    /// Data loaded; the run goes from `step` to `total`.
    Started { step: u64, total: u64, samples: usize },
    /// A step is done; `logged` is the log row written at it, if any.
    Stepped { step: u64, logged: Option<&'a LogRow> },
    /// The time limit stopped the run at `step`.
    TimeLimit { step: u64 },
}

/// What a finished (or stopped) run reached.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSummary {
    pub step: u64,
    pub last_loss: Option<f64>,
}

/// Trains as `options` say and writes the checkpoint at every save and at the end.
pub fn fit(options: &FitOptions, mut progress: impl FnMut(FitEvent)) -> Result<FitSummary> {
    if options.save_every == 0 || options.log_every == 0 {
        return Err(bad_input!("--save-every and --log-every must be at least 1"));
    }
    let deadline = options.time_limit.map(|limit| Instant::now() + limit);
    if let Some(threads) = options.threads {
        tch::set_num_threads(threads as i32);
    }
    let device = parse_device(&options.device)?;
    let mut trainer = start(options, device)?;
    let data = Dataset::load(
        &options.data,
        &trainer.model_config,
        Split::Train,
        trainer.train.seed,
    )?;
    let data = TensorData::new(&data, device);
    progress(FitEvent::Started {
        step: trainer.step,
        total: options.steps,
        samples: data.len(),
    });
    let mut order = BatchOrder::new(data.len(), trainer.train.seed);
    let mut interval = Interval::new();
    let stop = options.stop_at.unwrap_or(options.steps).min(options.steps);
    while trainer.step < stop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            progress(FitEvent::TimeLimit { step: trainer.step });
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
        let step = trainer.step;
        if step % options.log_every == 0 || step == options.steps {
            trainer.log.push(interval.finish(step, lr));
            progress(FitEvent::Stepped {
                step,
                logged: trainer.log.last(),
            });
        } else {
            progress(FitEvent::Stepped { step, logged: None });
        }
        if step % options.save_every == 0 && step < options.steps {
            trainer.save(&options.out)?;
        }
    }
    trainer.save(&options.out)?;
    Ok(FitSummary {
        step: trainer.step,
        last_loss: trainer.log.last().map(|r| r.loss),
    })
}

/// The trainer a run starts with: resumed from `out`, from another checkpoint's weights, or
/// freshly initialised; refuses to overwrite a checkpoint it was not asked to continue.
fn start(options: &FitOptions, device: Device) -> Result<Trainer> {
    let out = &options.out;
    let has_checkpoint = out.join(CONFIG_FILE).exists();
    if options.resume {
        if !has_checkpoint {
            return Err(bad_input!(
                "--resume: {} holds no checkpoint to continue",
                out.display()
            ));
        }
        return Trainer::resume(out, options.steps, device);
    }
    if has_checkpoint {
        return Err(bad_input!(
            "{} already holds a checkpoint; pass --resume to continue it or choose another --out",
            out.display()
        ));
    }
    let model = match &options.init_from {
        Some(dir) => CheckpointConfig::read(dir)?.meta.model,
        None => ModelConfig::from_preset_or_file(&options.model)?,
    };
    let train = options.hyper.resolve(&model).map_err(|e| bad_input!("{e}"))?;
    let mut trainer = Trainer::new(model, train, options.steps, device);
    if let Some(dir) = &options.init_from {
        trainer.start_from(dir)?;
    }
    Ok(trainer)
}

/// `cpu`, `cuda` or `cuda:N`, refused unless libtorch sees that GPU.
pub fn parse_device(spec: &str) -> Result<Device> {
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
                    self.permutation = Vec::<i64>::try_from(&perm).expect("randperm gives int64");
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
