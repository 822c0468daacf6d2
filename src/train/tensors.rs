//! A [`Dataset`] as tensors on the training device, and the data order of a run.

use odelt_format::seed::mix_seed;
use tch::{Device, Kind, Tensor};

use crate::data::Dataset;

/// Images f32 [N, C, H, W] and labels i64 [N] as tensors.
#[derive(Debug)]
pub struct TensorData {
    pub images: Tensor,
    pub labels: Tensor,
}

impl TensorData {
    pub fn new(data: &Dataset, device: Device) -> Self {
        let shape: Vec<i64> = data.shape.iter().map(|&d| d as i64).collect();
        Self {
            images: Tensor::from_slice(&data.images)
                .view(shape.as_slice())
                .to_device(device),
            labels: Tensor::from_slice(&data.labels).to_device(device),
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
}

/// A deterministic permutation of 0..n for `epoch` of a run seeded with `seed`.
pub fn epoch_permutation(n: usize, seed: u64, epoch: u64) -> Tensor {
    tch::manual_seed(mix_seed(seed, 0x5eed_0000 + epoch) as i64);
    Tensor::randperm(n as i64, (Kind::Int64, Device::Cpu))
}
