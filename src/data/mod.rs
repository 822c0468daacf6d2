//! Training data: Fashion-MNIST (IDX), an image folder, a `.npy` array, or synthetic images.
//! Everything is loaded into memory as f32 [N, C, H, W] in [-1, 1] with i64 labels [N].

mod folder;
mod idx;
mod npy;
mod synthetic;

use std::path::{Path, PathBuf};

use anyhow::Result;
use odelt_runtime::ModelConfig;
use tch::{Kind, Tensor};

use crate::bad_input;

/// Where the Debian package `dataset-fashion-mnist` puts the IDX files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// What `--data` names.
#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    FashionMnist(PathBuf),
    Synthetic,
    /// float32 [N, C, H, W] in [-1, 1], optional int64 labels [N].
    Npy {
        images: PathBuf,
        labels: Option<PathBuf>,
    },
    /// One subfolder per class, sorted by name.
    Folder(PathBuf),
}

impl DataSource {
    /// `fashion-mnist`, `synthetic`, a `.npy` file or a folder. `ODELT_FASHION_MNIST` overrides
    /// the Fashion-MNIST folder.
    pub fn parse(spec: &str, labels: Option<PathBuf>) -> Result<Self> {
        Ok(match spec {
            "fashion-mnist" => {
                let dir = std::env::var_os("ODELT_FASHION_MNIST").map(PathBuf::from);
                Self::FashionMnist(dir.unwrap_or_else(|| PathBuf::from(FASHION_MNIST_DIR)))
            }
            "synthetic" => Self::Synthetic,
            path if path.ends_with(".npy") => Self::Npy {
                images: path.into(),
                labels,
            },
            path if Path::new(path).is_dir() => Self::Folder(path.into()),
            other => {
                return Err(bad_input!(
                    "--data {other}: not 'fashion-mnist', 'synthetic', a .npy file or an existing folder"
                ))
            }
        })
    }
}

/// Images f32 [N, C, H, W] in [-1, 1] and labels i64 [N] in [0, num_classes).
#[derive(Debug)]
pub struct Dataset {
    pub images: Tensor,
    pub labels: Tensor,
}

impl Dataset {
    pub fn load(source: &DataSource, config: &ModelConfig, split: Split, seed: u64) -> Result<Self> {
        let dataset = match source {
            DataSource::FashionMnist(dir) => idx::load_fashion_mnist(dir, split)?,
            DataSource::Synthetic => synthetic::generate(config, split, seed),
            DataSource::Npy { images, labels } => npy::load(images, labels.as_deref())?,
            DataSource::Folder(dir) => folder::load(dir, config)?,
        };
        dataset.check_fits(config)?;
        Ok(dataset)
    }

    /// The same data on `device` (training draws batches where the model is).
    pub fn to_device(self, device: tch::Device) -> Self {
        Self {
            images: self.images.to_device(device),
            labels: self.labels.to_device(device),
        }
    }

    pub fn len(&self) -> usize {
        self.images.size()[0] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The samples at `indices` (i64 [B]).
    pub fn batch(&self, indices: &Tensor) -> (Tensor, Tensor) {
        (
            self.images.index_select(0, indices),
            self.labels.index_select(0, indices),
        )
    }

    fn check_fits(&self, config: &ModelConfig) -> Result<()> {
        let want = [
            config.in_channels as i64,
            config.input_size as i64,
            config.input_size as i64,
        ];
        let size = self.images.size();
        if size.len() != 4 || size[1..] != want {
            return Err(bad_input!(
                "data images are {:?} but the model expects [N, {}, {}, {}]; pick a matching --model or data",
                size,
                want[0],
                want[1],
                want[2]
            ));
        }
        if self.is_empty() {
            return Err(bad_input!("the data holds no images"));
        }
        let max_label = self.labels.max().int64_value(&[]);
        if self.labels.min().int64_value(&[]) < 0 || max_label >= config.num_classes as i64 {
            return Err(bad_input!(
                "data labels reach {max_label} but the model has {} classes (0..{})",
                config.num_classes,
                config.num_classes - 1
            ));
        }
        Ok(())
    }
}

/// u8 pixels [N, C, H, W] → f32 in [-1, 1].
fn from_bytes(pixels: &[u8], shape: [i64; 4]) -> Tensor {
    Tensor::from_slice(pixels).view(shape).to_kind(Kind::Float) / 127.5 - 1.0
}

/// A deterministic permutation of 0..n for `epoch` of a run seeded with `seed`.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Tensor {
    tch::manual_seed(crate::train::mix_seed(seed, 0x5eed_0000 + epoch) as i64);
    Tensor::randperm(n as i64, (Kind::Int64, tch::Device::Cpu))
}
