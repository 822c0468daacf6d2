//! Training data: Fashion-MNIST (IDX), an image folder, a `.npy` array, or synthetic images.
//! Everything is loaded into memory as f32 [N, C, H, W] in [-1, 1] with i64 labels [N], in
//! plain vectors: evaluation needs no libtorch, training turns them into tensors.

pub mod folder;
pub mod idx;
pub mod npy;
mod synthetic;

use std::path::{Path, PathBuf};

use anyhow::Result;
use odelt_format::ModelConfig;

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
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Row-major [N, C, H, W].
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    pub labels: Vec<i64>,
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

    pub fn len(&self) -> usize {
        self.shape[0]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check_fits(&self, config: &ModelConfig) -> Result<()> {
        let want = [
            config.in_channels as usize,
            config.input_size as usize,
            config.input_size as usize,
        ];
        if self.shape[1..] != want {
            return Err(bad_input!(
                "data images are {:?} but the model expects [N, {}, {}, {}]; pick a matching --model or data",
                self.shape,
                want[0],
                want[1],
                want[2]
            ));
        }
        if self.is_empty() {
            return Err(bad_input!("the data holds no images"));
        }
        let max_label = self.labels.iter().copied().max().unwrap_or(0);
        let min_label = self.labels.iter().copied().min().unwrap_or(0);
        if min_label < 0 || max_label >= config.num_classes as i64 {
            return Err(bad_input!(
                "data labels reach {} but the model has {} classes (0..{})",
                if min_label < 0 { min_label } else { max_label },
                config.num_classes,
                config.num_classes - 1
            ));
        }
        Ok(())
    }
}

/// u8 pixels [N, C, H, W] → f32 in [-1, 1].
fn from_bytes(pixels: &[u8]) -> Vec<f32> {
    pixels.iter().map(|&p| p as f32 / 127.5 - 1.0).collect()
}
