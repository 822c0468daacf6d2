//! Training hyper-parameters (docs/DESIGN.md §4), stored under `"train"` in a checkpoint's
//! config.json. Plain data: the deploy build reads them too.

use odelt_format::ModelConfig;
use serde::{Deserialize, Serialize};

/// Which objective to train: the paper's method or one of its baselines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Flow matching + time consistency + length consistency, lengths sampled per sample.
    Odelt,
    /// Shortcut model: flow matching + time consistency at full length only.
    Shortcut,
    /// Plain rectified flow at full length.
    Flow,
}

/// How the blocks' adaLN projections start (their biases start at zero either way).
/// `Default` is what a config.json without the field means: runs from before the field
/// existed started from zero. New runs start from xavier ([`TrainConfig::default`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AdaLnInit {
    /// Zero weights, DiT's adaLN-Zero: every block starts as the identity.
    #[default]
    Zero,
    /// Xavier-uniform weights, as the authors' JAX code starts them: the few-step levels
    /// converge sooner (EXPERIMENTS.md, "Training defaults").
    Xavier,
}

/// Every field has a default, so a config.json may leave any out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    pub objective: Objective,
    pub batch_size: usize,
    /// Peak learning rate after warm-up.
    pub lr: f64,
    /// Learning rate at the end of the cosine decay over the last 10% of steps.
    pub lr_min: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub warmup_steps: u64,
    /// EMA rate of θ⁻, the network every non-data target comes from.
    pub ema_decay: f64,
    /// Probability that a flow-matching label becomes the null label (for CFG).
    pub class_dropout: f64,
    /// Share of each batch trained for time consistency (the first B/8).
    pub tc_fraction: f64,
    /// Share of each batch trained for length consistency (the last B·K).
    pub lc_fraction: f64,
    /// Draw flow-matching t on the T_max grid instead of U(0, 1).
    pub t_on_grid: bool,
    #[serde(default)]
    pub adaln_init: AdaLnInit,
    /// Relative weights of the valid lengths (shortest first) in each sample's length draw;
    /// empty: uniform. Length consistency's teacher lengths stay uniform.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub length_weights: Vec<f64>,
    /// Relative weights of the time-consistency levels k0 = 0 (one step) … log2 T_max − 1 in
    /// each TC sample's draw; empty: uniform.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tc_level_weights: Vec<f64>,
    pub seed: u64,
    /// The checkpoint whose EMA weights started this run (θ and θ⁻), if it did not start from
    /// DiT's initialisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<String>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            objective: Objective::Odelt,
            batch_size: 64,
            lr: 1e-4,
            lr_min: 1e-5,
            beta1: 0.9,
            beta2: 0.999,
            weight_decay: 0.1,
            warmup_steps: 1000,
            ema_decay: 0.995,
            class_dropout: 0.1,
            tc_fraction: 0.125,
            lc_fraction: 0.125,
            t_on_grid: false,
            adaln_init: AdaLnInit::Xavier,
            length_weights: Vec::new(),
            tc_level_weights: Vec::new(),
            seed: 0,
            init_from: None,
        }
    }
}

impl TrainConfig {
    /// Peak learning rate for a model of `hidden` width: the paper's 1e-4 at DiT-B width (768),
    /// scaled as 1/width (the μP rule for Adam) up to 1e-3, so small models train in few steps.
    pub fn default_lr(hidden: u32) -> f64 {
        (1e-4 * 768.0 / hidden as f64).clamp(1e-4, 1e-3)
    }

    /// Learning rate at `step` (0-based) of `total`: linear warm-up, constant until 90% of the
    /// steps, then cosine decay to `lr_min`. Warm-up is capped at 10% of the run, so short runs
    /// still train at the peak rate.
    pub fn lr_at(&self, step: u64, total: u64) -> f64 {
        let warmup = self.warmup_steps.min(total / 10);
        if step < warmup {
            return self.lr * (step + 1) as f64 / warmup as f64;
        }
        let decay_start = (total as f64 * 0.9).floor() as u64;
        if step < decay_start || total <= decay_start {
            return self.lr;
        }
        // The last step runs at lr_min.
        let progress = (step + 1 - decay_start) as f64 / (total - decay_start) as f64;
        self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + (std::f64::consts::PI * progress).cos())
    }

    /// (time-consistency samples, length-consistency samples) of a batch of `b`.
    pub fn split(&self, b: usize) -> (usize, usize) {
        let count = |fraction: f64| ((b as f64 * fraction).round() as usize).min(b);
        match self.objective {
            Objective::Odelt => {
                let tc = count(self.tc_fraction);
                (tc, count(self.lc_fraction).min(b - tc))
            }
            Objective::Shortcut => (count(self.tc_fraction), 0),
            Objective::Flow => (0, 0),
        }
    }

    /// Checks every field, and that the sampling weights fit `model` (one per valid length,
    /// one per time-consistency level).
    pub fn validate(&self, model: &ModelConfig) -> Result<(), String> {
        let unit = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be in [0, 1], not {v}"))
            }
        };
        if self.batch_size == 0 {
            return Err("batch size must be at least 1".into());
        }
        if self.lr.is_nan() || self.lr <= 0.0 || self.lr_min.is_nan() || self.lr_min < 0.0 {
            return Err(format!(
                "learning rates must be positive (lr {}, lr_min {})",
                self.lr, self.lr_min
            ));
        }
        unit("class_dropout", self.class_dropout)?;
        unit("tc_fraction", self.tc_fraction)?;
        unit("lc_fraction", self.lc_fraction)?;
        unit("ema_decay", self.ema_decay)?;
        unit("beta1", self.beta1)?;
        unit("beta2", self.beta2)?;
        if !self.length_weights.is_empty() && self.objective != Objective::Odelt {
            return Err(
                "length weights apply to the odelt objective only (the baselines train at full length)"
                    .into(),
            );
        }
        let lengths = model.valid_lengths();
        let what = format!("lengths {lengths:?}");
        check_weights("length", &self.length_weights, lengths.len(), &what)?;
        let levels = model.flow_level() as usize;
        let what = format!("time-consistency levels 0..={}", levels - 1);
        check_weights("TC level", &self.tc_level_weights, levels, &what)
    }
}

/// Relative sampling weights: empty (uniform), or one per choice (`n` of them, `what`),
/// non-negative with a positive sum.
fn check_weights(name: &str, w: &[f64], n: usize, what: &str) -> Result<(), String> {
    if w.is_empty() {
        return Ok(());
    }
    if w.len() != n {
        return Err(format!(
            "{} {name} weights given for the model's {n} {what}",
            w.len()
        ));
    }
    if w.iter().any(|v| !v.is_finite() || *v < 0.0) || w.iter().sum::<f64>() <= 0.0 {
        return Err(format!(
            "{name} weights must be non-negative with a positive sum, not {w:?}"
        ));
    }
    Ok(())
}

/// The hyper-parameters a user gave; [`TrainOverrides::resolve`] fills in the defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrainOverrides {
    pub objective: Option<Objective>,
    pub batch_size: Option<usize>,
    pub lr: Option<f64>,
    pub lr_min: Option<f64>,
    pub warmup_steps: Option<u64>,
    pub ema_decay: Option<f64>,
    pub class_dropout: Option<f64>,
    pub tc_fraction: Option<f64>,
    pub lc_fraction: Option<f64>,
    pub t_on_grid: bool,
    pub adaln_init: Option<AdaLnInit>,
    pub length_weights: Vec<f64>,
    pub tc_level_weights: Vec<f64>,
    pub seed: u64,
}

impl TrainOverrides {
    /// The run's configuration for `model`: the peak learning rate defaults to
    /// [`TrainConfig::default_lr`] of its width. Validated.
    pub fn resolve(&self, model: &ModelConfig) -> Result<TrainConfig, String> {
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
            adaln_init: self.adaln_init.unwrap_or(d.adaln_init),
            length_weights: self.length_weights.clone(),
            tc_level_weights: self.tc_level_weights.clone(),
            seed: self.seed,
            ..d
        };
        config.validate(model)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_runs_start_xavier_and_older_configs_read_as_zero() {
        assert_eq!(TrainConfig::default().adaln_init, AdaLnInit::Xavier);
        let older: TrainConfig = serde_json::from_str(r#"{"ema_decay": 0.999}"#).unwrap();
        assert_eq!(older.adaln_init, AdaLnInit::Zero);
        assert_eq!(older.tc_fraction, TrainConfig::default().tc_fraction);
    }

    #[test]
    fn schedule_warms_up_holds_and_decays() {
        let c = TrainConfig {
            warmup_steps: 10,
            ..Default::default()
        };
        assert_eq!(TrainConfig::default().lr_at(0, 40), 1e-4 / 4.0);
        assert!((c.lr_at(0, 100) - 1e-5).abs() < 1e-12);
        assert!((c.lr_at(9, 100) - 1e-4).abs() < 1e-12);
        assert_eq!(c.lr_at(50, 100), 1e-4);
        assert_eq!(c.lr_at(89, 100), 1e-4);
        assert!((c.lr_at(94, 100) - (1e-5 + 0.5 * 9e-5)).abs() < 1e-12);
        assert!((c.lr_at(99, 100) - 1e-5).abs() < 1e-12);
    }

    #[test]
    fn default_lr_scales_with_width() {
        assert_eq!(TrainConfig::default_lr(768), 1e-4);
        assert_eq!(TrainConfig::default_lr(1152), 1e-4);
        assert!((TrainConfig::default_lr(128) - 6e-4).abs() < 1e-12);
        assert_eq!(TrainConfig::default_lr(32), 1e-3);
    }

    #[test]
    fn sampling_weights_need_one_per_choice() {
        let model = ModelConfig::fmnist();
        let with = |w: &[f64]| TrainOverrides {
            length_weights: w.to_vec(),
            ..Default::default()
        };
        assert!(with(&[]).resolve(&model).is_ok());
        assert_eq!(
            with(&[2.0, 1.0, 1.0]).resolve(&model).unwrap().length_weights,
            [2.0, 1.0, 1.0]
        );
        let err = with(&[2.0, 1.0]).resolve(&model).unwrap_err();
        assert!(
            err.contains("2 length weights") && err.contains("[4, 8, 12]"),
            "{err}"
        );
        assert!(with(&[1.0, -1.0, 1.0]).resolve(&model).is_err());
        assert!(with(&[0.0, 0.0, 0.0]).resolve(&model).is_err());
        let baseline = TrainOverrides {
            objective: Some(Objective::Flow),
            ..with(&[2.0, 1.0, 1.0])
        };
        assert!(baseline
            .resolve(&model)
            .unwrap_err()
            .contains("odelt objective only"));
        let levels = |w: &[f64]| TrainOverrides {
            tc_level_weights: w.to_vec(),
            ..Default::default()
        };
        assert!(levels(&[3.0, 3.0, 2.0, 2.0, 1.0, 1.0, 1.0])
            .resolve(&model)
            .is_ok());
        let err = levels(&[1.0; 8]).resolve(&model).unwrap_err();
        assert!(
            err.contains("8 TC level weights") && err.contains("0..=6"),
            "{err}"
        );
    }

    #[test]
    fn batch_split_follows_objective() {
        let mut c = TrainConfig::default();
        assert_eq!(c.split(64), (8, 8));
        c.objective = Objective::Shortcut;
        assert_eq!(c.split(64), (8, 0));
        c.objective = Objective::Flow;
        assert_eq!(c.split(64), (0, 0));
    }
}
