//! Checkpoint folders as training writes them (docs/DESIGN.md §5): config.json,
//! model.safetensors (EMA weights), train_state.safetensors (raw weights, AdamW moments, step)
//! and train_log.csv. Written into a staging folder that replaces the old one, so a killed run
//! never leaves a folder that looks complete but is not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use odelt_format::atomic::StagedDir;
pub use odelt_format::checkpoint::{CONFIG_FILE, LOG_FILE, MODEL_FILE, TRAIN_STATE_FILE};
use odelt_format::json::{read_versioned, Versioned};
use odelt_format::CheckpointMeta;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

use super::config::TrainConfig;
use crate::bad_input;

/// config.json: the shared checkpoint metadata plus the training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointConfig {
    #[serde(flatten)]
    pub meta: CheckpointMeta,
    /// Total steps the run was asked for.
    pub total_steps: u64,
    pub train: TrainConfig,
}

impl Versioned for CheckpointConfig {
    const FORMAT_VERSION: u32 = CheckpointMeta::FORMAT_VERSION;
    const WHAT: &'static str = "an odelt training config";

    fn validate(&self) -> odelt_format::Result<()> {
        self.meta.model.validate()?;
        self.train
            .validate(&self.meta.model)
            .map_err(odelt_format::Error::InvalidConfig)
    }
}

impl CheckpointConfig {
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(read_versioned(&dir.join(CONFIG_FILE))?)
    }
}

/// The tensors of a safetensors file, by name.
pub struct NamedTensors {
    path: PathBuf,
    tensors: BTreeMap<String, Tensor>,
}

impl NamedTensors {
    pub fn read(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(bad_input!("{}: no such file", path.display()));
        }
        let tensors = Tensor::read_safetensors(path)
            .map_err(|e| bad_input!("{}: not a readable safetensors file: {e}", path.display()))?;
        Ok(Self {
            path: path.into(),
            tensors: tensors.into_iter().collect(),
        })
    }

    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| bad_input!("{}: tensor '{name}' is missing", self.path.display()))
    }

    /// `name` as f32/whatever `like` is, after checking its shape matches `like`.
    pub fn take_like(&self, name: &str, like: &Tensor) -> Result<Tensor> {
        let t = self.get(name)?;
        if t.size() != like.size() {
            return Err(bad_input!(
                "{}: tensor '{name}' has shape {:?}, the model expects {:?}",
                self.path.display(),
                t.size(),
                like.size()
            ));
        }
        Ok(t.to_kind(like.kind()))
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }
}

/// Loads every variable of `vs` from `path` (any float dtype), strictly: a missing tensor, an
/// unexpected one or a shape mismatch is an error naming it.
pub fn load_weights(vs: &nn::VarStore, path: &Path) -> Result<()> {
    let file = NamedTensors::read(path)?;
    let mut vars = named_variables(vs);
    if let Some(extra) = file.names().find(|n| !vars.iter().any(|(name, _)| name == *n)) {
        return Err(bad_input!(
            "{}: unexpected tensor '{extra}' for this model config",
            path.display()
        ));
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var) in vars.iter_mut() {
            var.copy_(&file.take_like(name, var)?);
        }
        Ok(())
    })
}

/// Named variables of `vs`, sorted by name.
pub fn named_variables(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut vars: Vec<_> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// One row of train_log.csv.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogRow {
    pub step: u64,
    pub loss: f64,
    pub loss_fm: f64,
    pub loss_tc: f64,
    pub loss_lc: f64,
    pub lr: f64,
    pub samples_per_s: f64,
}

impl LogRow {
    pub const HEADER: &'static str = "step,loss,loss_fm,loss_tc,loss_lc,lr,samples_per_s";

    fn to_csv(self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.3e},{:.1}",
            self.step, self.loss, self.loss_fm, self.loss_tc, self.loss_lc, self.lr, self.samples_per_s
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f.get(i)?.parse::<f64>().ok();
        Some(Self {
            step: f.first()?.parse().ok()?,
            loss: num(1)?,
            loss_fm: num(2)?,
            loss_tc: num(3)?,
            loss_lc: num(4)?,
            lr: num(5)?,
            samples_per_s: num(6)?,
        })
    }
}

/// Rows of an existing train_log.csv up to `step` (a resumed run continues the log).
pub fn read_log(dir: &Path, up_to: u64) -> Vec<LogRow> {
    let text = std::fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(LogRow::parse)
        .filter(|r| r.step <= up_to)
        .collect()
}

/// Everything a checkpoint folder holds.
pub struct CheckpointContents<'a> {
    pub config: &'a CheckpointConfig,
    pub ema: &'a [(String, Tensor)],
    pub train_state: Vec<(String, Tensor)>,
    pub log: &'a [LogRow],
}

/// Writes the checkpoint into a staging folder, then swaps it in place of `dir`.
pub fn write_checkpoint(dir: &Path, contents: &CheckpointContents) -> Result<()> {
    let staged = StagedDir::new(dir)?;
    let tmp = staged.path();
    let config = serde_json::to_string_pretty(contents.config)?;
    std::fs::write(tmp.join(CONFIG_FILE), config)?;
    Tensor::write_safetensors(contents.ema, tmp.join(MODEL_FILE))?;
    Tensor::write_safetensors(&contents.train_state, tmp.join(TRAIN_STATE_FILE))?;
    let mut log = String::from(LogRow::HEADER);
    for row in contents.log {
        log.push('\n');
        log.push_str(&row.to_csv());
    }
    log.push('\n');
    std::fs::write(tmp.join(LOG_FILE), log)?;
    Ok(staged.commit()?)
}
