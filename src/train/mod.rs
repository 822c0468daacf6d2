//! Training (docs/DESIGN.md §4). The hyper-parameters are plain data and always built; the
//! rest needs libtorch and the `train` feature.

mod config;

pub use config::{AdaLnInit, Objective, TrainConfig, TrainOverrides};

#[cfg(feature = "train")]
pub mod checkpoint;
#[cfg(feature = "train")]
pub mod features;
#[cfg(feature = "train")]
mod fit;
#[cfg(feature = "train")]
mod optim;
#[cfg(feature = "train")]
pub mod tensors;
#[cfg(feature = "train")]
mod trainer;

#[cfg(feature = "train")]
pub use fit::{fit, parse_device, FitEvent, FitOptions, FitSummary};
#[cfg(feature = "train")]
pub use trainer::{Batch, Losses, Trainer};

/// The error of a command that needs the `train` feature in a build without it.
pub fn needs_train_feature(command: &str) -> anyhow::Error {
    crate::bad_input!(
        "`odelt {command}` needs libtorch: this odelt is the deploy build; build with \
         `cargo build --release --features train` after `scripts/setup.sh --train && . scripts/env.sh`"
    )
}
