//! A checkpoint folder (docs/DESIGN.md §5): `config.json` (this metadata plus the training
//! hyper-parameters, which belong to the training code and which other readers ignore),
//! `model.safetensors` (the EMA weights export and sampling use), `train_state.safetensors`
//! (what `--resume` needs) and `train_log.csv`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::error::Result;
use crate::json::{read_versioned, Versioned};

pub const CONFIG_FILE: &str = "config.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const TRAIN_STATE_FILE: &str = "train_state.safetensors";
pub const LOG_FILE: &str = "train_log.csv";

/// What every checkpoint's `config.json` holds besides the training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format_version: u32,
    /// Optimizer steps taken.
    pub step: u64,
    pub model: ModelConfig,
}

impl Versioned for CheckpointMeta {
    const FORMAT_VERSION: u32 = 1;
    const WHAT: &'static str = "an odelt checkpoint config";

    fn validate(&self) -> Result<()> {
        self.model.validate()
    }
}

impl CheckpointMeta {
    pub const FORMAT_VERSION: u32 = <Self as Versioned>::FORMAT_VERSION;

    pub fn new(step: u64, model: ModelConfig) -> Self {
        Self {
            format_version: Self::FORMAT_VERSION,
            step,
            model,
        }
    }

    /// Reads `DIR/config.json`, validating the model config.
    pub fn read(dir: &Path) -> Result<Self> {
        read_versioned(&dir.join(CONFIG_FILE))
    }
}
