//! The [`Trainer`]: Algorithm 1 of the paper — flow matching, time consistency (shortcut) and
//! length consistency, with per-sample lengths and an EMA network θ⁻ for every non-data target.

use anyhow::Result;
use odelt_format::seed::mix_seed;
use odelt_format::{CheckpointMeta, ModelConfig};
use tch::{nn, Device, Kind, Tensor};

use super::checkpoint::{self, named_variables, CheckpointConfig, CheckpointContents, LogRow, NamedTensors};
use super::config::{AdaLnInit, Objective, TrainConfig};
use super::optim::{ema_update, AdamW};
use crate::model::{xavier_uniform, Dit, Lengths};

/// The losses of one step (MSE over all elements, and over each part of the batch).
#[derive(Debug, Clone, Copy, Default)]
pub struct Losses {
    pub total: f64,
    pub fm: f64,
    pub tc: f64,
    pub lc: f64,
}

/// Inputs and targets of one training batch (docs/DESIGN.md §4).
pub struct Batch {
    pub x_t: Tensor,
    pub t: Tensor,
    pub k: Tensor,
    pub y: Tensor,
    pub lengths: Tensor,
    pub target: Tensor,
    /// Sizes of the time- and length-consistency parts (first and last rows).
    pub tc: usize,
    pub lc: usize,
}

pub struct Trainer {
    pub model_config: ModelConfig,
    pub train: TrainConfig,
    pub total_steps: u64,
    pub step: u64,
    device: Device,
    vs: nn::VarStore,
    ema_vs: nn::VarStore,
    model: Dit,
    ema: Dit,
    optimizer: AdamW,
    ema_params: Vec<(String, Tensor)>,
    pub log: Vec<LogRow>,
}

impl Trainer {
    /// A freshly initialised model (DiT init from the run's seed) with θ⁻ = θ, on `device`.
    pub fn new(model_config: ModelConfig, train: TrainConfig, total_steps: u64, device: Device) -> Self {
        tch::manual_seed(mix_seed(train.seed, 0x1417) as i64);
        let vs = nn::VarStore::new(device);
        let model = Dit::new(&vs.root(), &model_config);
        if train.adaln_init == AdaLnInit::Xavier {
            xavier_adaln(&vs);
        }
        let mut ema_vs = nn::VarStore::new(device);
        let ema = Dit::new(&ema_vs.root(), &model_config);
        ema_vs
            .copy(&vs)
            .expect("two stores of one model have the same variables");
        ema_vs.freeze();
        let params = trainable(&vs);
        let ema_params = named_variables(&ema_vs)
            .into_iter()
            .filter(|(name, _)| params.iter().any(|(n, _)| n == name))
            .collect();
        let optimizer = AdamW::new(params, train.beta1, train.beta2, train.weight_decay);
        Self {
            model_config,
            train,
            total_steps,
            step: 0,
            device,
            vs,
            ema_vs,
            model,
            ema,
            optimizer,
            ema_params,
            log: Vec::new(),
        }
    }

    /// Continues the run saved in `dir` (weights, EMA, AdamW moments, step and log).
    pub fn resume(dir: &std::path::Path, total_steps: u64, device: Device) -> Result<Self> {
        let saved = CheckpointConfig::read(dir)?;
        let mut trainer = Self::new(saved.meta.model.clone(), saved.train.clone(), total_steps, device);
        let state = NamedTensors::read(&dir.join(checkpoint::TRAIN_STATE_FILE))?;
        tch::no_grad(|| -> Result<()> {
            for (name, p) in trainer.optimizer.params.iter_mut() {
                p.copy_(&state.take_like(&format!("param.{name}"), p)?);
            }
            Ok(())
        })?;
        trainer.optimizer.load_state(&state)?;
        checkpoint::load_weights(&trainer.ema_vs, &dir.join(checkpoint::MODEL_FILE))?;
        trainer.step = saved.meta.step;
        trainer.log = checkpoint::read_log(dir, trainer.step);
        Ok(trainer)
    }

    /// Replaces θ and θ⁻ by the EMA weights of the checkpoint `dir` (same model config), so
    /// this run fine-tunes that model; AdamW starts afresh.
    pub fn start_from(&mut self, dir: &std::path::Path) -> Result<()> {
        let weights = dir.join(checkpoint::MODEL_FILE);
        checkpoint::load_weights(&self.vs, &weights)?;
        checkpoint::load_weights(&self.ema_vs, &weights)?;
        self.train.init_from = Some(dir.display().to_string());
        Ok(())
    }

    /// The EMA network θ⁻ (what sampling and export use).
    pub fn ema_model(&self) -> &Dit {
        &self.ema
    }

    /// The trained network θ.
    pub fn model(&self) -> &Dit {
        &self.model
    }

    /// Draws lengths, times, levels, labels and targets for the step `self.step`.
    pub fn make_batch(&self, x1: &Tensor, y: &Tensor) -> Batch {
        tch::manual_seed(mix_seed(self.train.seed, 0x57e9_0000_0000 + self.step) as i64);
        let cfg = &self.model_config;
        let b = x1.size()[0];
        let (tc, lc) = self.train.split(b as usize);
        let opts = (Kind::Float, self.device);
        let lengths = self.sample_lengths(b, &self.train.length_weights);
        let x0 = x1.randn_like();
        let flow_level = cfg.flow_level() as f64;

        let mut t = Tensor::rand([b], opts);
        if self.train.t_on_grid {
            let t_max = cfg.denoise_timesteps as f64;
            t = (t * t_max).floor() / t_max;
        }
        let k = Tensor::full([b], flow_level, opts);
        let dropped = Tensor::rand([b], opts).lt(self.train.class_dropout);
        let y = y.where_self(
            &dropped.logical_not(),
            &Tensor::full_like(y, cfg.num_classes as i64),
        );

        // Time consistency: level k0, t on the grid of step 2d = 1/2^k0.
        let k0 = draw_indices(
            tc as i64,
            cfg.flow_level() as i64,
            &self.train.tc_level_weights,
            self.device,
        );
        let steps_at_k0 = Tensor::full([tc as i64], 2.0, opts).pow(&k0.to_kind(Kind::Float));
        let t_tc = (Tensor::rand([tc as i64], opts) * &steps_at_k0).floor() / &steps_at_k0;
        t = Tensor::cat(&[t_tc, t.narrow(0, tc as i64, b - tc as i64)], 0);
        let k_tc = k0.to_kind(Kind::Float);
        k.narrow(0, 0, tc as i64).copy_(&k_tc);

        let tb = t.view([b, 1, 1, 1]);
        let x_t = &tb * x1 + (1.0 - &tb) * &x0;
        let target = tch::no_grad(|| {
            let target = x1 - &x0;
            if tc > 0 {
                let part = |x: &Tensor| x.narrow(0, 0, tc as i64);
                let d = (-(&k_tc + 1.0)).exp2();
                let k_fine = &k_tc + 1.0;
                let (xs, ts, ys, ls) = (part(&x_t), part(&t), part(&y), part(&lengths));
                let v1 = self.ema.forward(&xs, &ts, &k_fine, &ys, Lengths::PerSample(&ls));
                let x_mid = &xs + &v1 * d.view([tc as i64, 1, 1, 1]);
                let v2 = self
                    .ema
                    .forward(&x_mid, &(&ts + &d), &k_fine, &ys, Lengths::PerSample(&ls));
                part(&target).copy_(&((v1 + v2) * 0.5));
            }
            if lc > 0 {
                let part = |x: &Tensor| x.narrow(0, b - lc as i64, lc as i64);
                let l_lc = self.sample_lengths(lc as i64, &[]);
                let v = self.ema.forward(
                    &part(&x_t),
                    &part(&t),
                    &part(&k),
                    &part(&y),
                    Lengths::PerSample(&l_lc),
                );
                part(&target).copy_(&v);
            }
            target
        });
        Batch {
            x_t,
            t,
            k,
            y,
            lengths,
            target,
            tc,
            lc,
        }
    }

    /// Lengths drawn from the valid ones with relative `weights` (empty: uniform); full depth
    /// for the baselines.
    fn sample_lengths(&self, n: i64, weights: &[f64]) -> Tensor {
        let cfg = &self.model_config;
        if self.train.objective != Objective::Odelt {
            return Tensor::full([n], cfg.depth as i64, (Kind::Int64, self.device));
        }
        let choices = cfg.valid_lengths().len() as i64;
        draw_indices(n, choices, weights, self.device) * cfg.group_size as i64 + cfg.depth_min as i64
    }

    /// The loss of `batch` under θ, split into its parts.
    pub fn losses(&self, batch: &Batch) -> (Tensor, Losses) {
        let pred = self.model.forward(
            &batch.x_t,
            &batch.t,
            &batch.k,
            &batch.y,
            Lengths::PerSample(&batch.lengths),
        );
        let loss = pred.mse_loss(&batch.target, tch::Reduction::Mean);
        let parts = tch::no_grad(|| {
            let b = pred.size()[0];
            let err = (&pred - &batch.target)
                .square()
                .flatten(1, -1)
                .mean_dim(1, false, Kind::Float);
            let mean_of = |start: i64, len: i64| {
                if len > 0 {
                    err.narrow(0, start, len).mean(Kind::Float).double_value(&[])
                } else {
                    f64::NAN
                }
            };
            let (tc, lc) = (batch.tc as i64, batch.lc as i64);
            Losses {
                total: loss.double_value(&[]),
                fm: mean_of(tc, b - tc - lc),
                tc: mean_of(0, tc),
                lc: mean_of(b - lc, lc),
            }
        });
        (loss, parts)
    }

    /// One optimizer step on (x1, y); returns its losses and learning rate.
    pub fn train_step(&mut self, x1: &Tensor, y: &Tensor) -> (Losses, f64) {
        let batch = self.make_batch(x1, y);
        let (loss, parts) = self.losses(&batch);
        let lr = self.train.lr_at(self.step, self.total_steps);
        self.optimizer.zero_grad();
        loss.backward();
        self.optimizer.step(lr);
        ema_update(&mut self.ema_params, &self.optimizer.params, self.train.ema_decay);
        self.step += 1;
        (parts, lr)
    }

    /// Writes the checkpoint folder atomically.
    pub fn save(&self, dir: &std::path::Path) -> Result<()> {
        let config = CheckpointConfig {
            meta: CheckpointMeta::new(self.step, self.model_config.clone()),
            total_steps: self.total_steps,
            train: self.train.clone(),
        };
        let mut train_state: Vec<(String, Tensor)> = self
            .optimizer
            .params
            .iter()
            .map(|(n, p)| (format!("param.{n}"), p.detach()))
            .collect();
        train_state.extend(self.optimizer.state());
        let on_cpu = |named: Vec<(String, Tensor)>| -> Vec<(String, Tensor)> {
            named
                .into_iter()
                .map(|(n, t)| (n, t.to_device(Device::Cpu)))
                .collect()
        };
        let (ema, train_state) = (on_cpu(named_variables(&self.ema_vs)), on_cpu(train_state));
        checkpoint::write_checkpoint(
            dir,
            &CheckpointContents {
                config: &config,
                ema: &ema,
                train_state,
                log: &self.log,
            },
        )
    }
}

/// Redraws every block's adaLN projection xavier-uniform (the final layer's stays zero), in
/// name order so that the draws follow the seed. A redraw after DiT's initialisation rather
/// than a different one inside it: every other weight is then the same as in an adaLN-Zero
/// run of the same seed, so comparing the two changes one thing (EXPERIMENTS.md, "Training
/// defaults").
fn xavier_adaln(vs: &nn::VarStore) {
    tch::no_grad(|| {
        for (name, mut weight) in named_variables(vs) {
            if name.starts_with("blocks.") && name.ends_with(".adaLN_modulation.1.weight") {
                let (fan_out, fan_in) = weight.size2().expect("a linear weight is 2-D");
                xavier_uniform(fan_in as usize, fan_out as usize).set(&mut weight);
            }
        }
    });
}

/// `n` indices in 0..`choices`: uniform, or drawn with the relative `weights` (one per choice).
fn draw_indices(n: i64, choices: i64, weights: &[f64], device: Device) -> Tensor {
    if weights.is_empty() || n == 0 {
        return Tensor::randint(choices, [n], (Kind::Int64, device));
    }
    Tensor::from_slice(weights).to_device(device).multinomial(n, true)
}

/// Trainable variables sorted by name (the order AdamW and the EMA pair them in).
fn trainable(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    named_variables(vs)
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect()
}
