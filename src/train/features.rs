//! The feature network: trained as a classifier on the real data, then the activations of its
//! penultimate layer define the space `odelt eval` compares distributions in.
//!
//! Two 3×3 convolutions with batch norm, ReLU and 2×2 max-pooling (32 and 64 channels), one
//! dense layer of 128 features with ReLU, dropout and a linear classifier on top. Trained
//! with AdamW under a cosine learning-rate schedule on flipped and shifted images. At export the
//! batch norms are folded into the convolutions, so the ONNX graph holds plain Conv nodes.

use std::path::Path;

use anyhow::Result;
use indicatif::ProgressBar;
use odelt_export::features::{Conv3x3, Dense};
use odelt_format::seed::mix_seed;
use odelt_format::ModelConfig;
use tch::{nn, nn::Module, nn::ModuleT, nn::OptimizerConfig, Device, Kind, Tensor};

use super::tensors::{epoch_permutation, TensorData};
use crate::data::{DataSource, Dataset, Split};

/// (output channels, max-pool after) of each convolution.
const CONVS: [(i64, bool); 2] = [(32, true), (64, true)];
/// Width of the feature vector.
const FEATURES: i64 = 128;
const DROPOUT: f64 = 0.3;
const BATCH: usize = 128;
const PEAK_LR: f64 = 2e-3;
const WEIGHT_DECAY: f64 = 5e-4;
/// Largest shift of the training augmentation, in pixels (either way, each axis).
const MAX_SHIFT: i64 = 2;

pub struct FeatureNet {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    dense: nn::Linear,
    head: nn::Linear,
}

impl FeatureNet {
    /// A network for images of `in_channels` × `side`².
    pub fn new(vs: &nn::Path, in_channels: i64, side: i64, num_classes: i64) -> Self {
        let config = nn::ConvConfig {
            padding: 1,
            bias: false,
            ..Default::default()
        };
        let (mut channels, mut side) = (in_channels, side);
        let convs = CONVS
            .iter()
            .enumerate()
            .map(|(i, &(out, pool))| {
                let conv = nn::conv2d(vs / "convs" / i, channels, out, 3, config);
                let norm = nn::batch_norm2d(vs / "norms" / i, out, Default::default());
                channels = out;
                if pool {
                    side /= 2;
                }
                (conv, norm)
            })
            .collect();
        let dense = nn::linear(vs / "dense", channels * side * side, FEATURES, Default::default());
        let head = nn::linear(vs / "head", FEATURES, num_classes, Default::default());
        Self { convs, dense, head }
    }

    /// Features [B, 128], as the exported graph computes them when `train` is false.
    pub fn features(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for ((conv, norm), &(_, pool)) in self.convs.iter().zip(&CONVS) {
            h = norm.forward_t(&conv.forward(&h), train).relu();
            if pool {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        self.dense.forward(&h.flatten(1, -1)).relu()
    }

    pub fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        self.head
            .forward(&self.features(x, train).dropout(DROPOUT, train))
    }

    /// The convolutions with their batch norms folded in, in the exporter's form.
    pub fn convs(&self) -> Vec<Conv3x3> {
        tch::no_grad(|| {
            self.convs
                .iter()
                .zip(&CONVS)
                .map(|((conv, norm), &(_, pool_after))| {
                    let eps = 1e-5;
                    let gamma = norm.ws.as_ref().expect("affine batch norm");
                    let beta = norm.bs.as_ref().expect("affine batch norm");
                    let scale = gamma / (&norm.running_var + eps).sqrt();
                    let weight = &conv.ws * scale.view([-1, 1, 1, 1]);
                    let bias = beta - &norm.running_mean * &scale;
                    let size = conv.ws.size();
                    Conv3x3 {
                        weight: floats(&weight),
                        bias: floats(&bias),
                        in_channels: size[1] as usize,
                        out_channels: size[0] as usize,
                        pool_after,
                    }
                })
                .collect()
        })
    }

    /// The dense layer in the exporter's form.
    pub fn dense(&self) -> Dense {
        let size = self.dense.ws.size();
        Dense {
            weight: floats(&self.dense.ws),
            bias: floats(self.dense.bs.as_ref().expect("the dense layer has a bias")),
            inputs: size[1] as usize,
            outputs: size[0] as usize,
        }
    }

    /// Share of `data` classified correctly.
    pub fn accuracy(&self, data: &TensorData) -> f64 {
        tch::no_grad(|| {
            let n = data.len() as i64;
            let correct: i64 = (0..n)
                .step_by(1000)
                .map(|s| {
                    let len = 1000.min(n - s);
                    let pred = self
                        .logits(&data.images.narrow(0, s, len), false)
                        .argmax(1, false);
                    pred.eq_tensor(&data.labels.narrow(0, s, len))
                        .sum(Kind::Int64)
                        .int64_value(&[])
                })
                .sum();
            correct as f64 / n as f64
        })
    }
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.detach().flatten(0, -1)).expect("f32 weights")
}

/// A random horizontal flip and a random shift of up to `MAX_SHIFT` pixels (zero fill) of each
/// image of `x` [B, C, H, W].
fn augment(x: &Tensor) -> Tensor {
    let size = x.size();
    let (b, h, w) = (size[0], size[2], size[3]);
    let flip = Tensor::rand([b, 1, 1, 1], (Kind::Float, Device::Cpu)).lt(0.5);
    let x = x.flip([3]).where_self(&flip, x);
    // Zero padding is -1 in the data's [-1, 1] range: the background colour.
    let padded = (x + 1.0).constant_pad_nd([MAX_SHIFT; 4]) - 1.0;
    let shifts = Tensor::randint(2 * MAX_SHIFT + 1, [b, 2], (Kind::Int64, Device::Cpu));
    let shifts = Vec::<i64>::try_from(&shifts.flatten(0, -1)).expect("i64 shifts");
    let crops: Vec<Tensor> = (0..b as usize)
        .map(|i| {
            padded
                .get(i as i64)
                .narrow(1, shifts[2 * i], h)
                .narrow(2, shifts[2 * i + 1], w)
        })
        .collect();
    Tensor::stack(&crops, 0)
}

/// Learning rate at `step` of `total`: linear warm-up over the first 2%, then cosine to zero.
fn learning_rate(step: usize, total: usize) -> f64 {
    let warmup = (total / 50).max(1);
    if step < warmup {
        return PEAK_LR * (step + 1) as f64 / warmup as f64;
    }
    let progress = (step - warmup) as f64 / (total - warmup).max(1) as f64;
    PEAK_LR * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Trains a feature network as a classifier for `epochs` passes over `data`, logging the
/// accuracy on `test` after each.
pub fn train_feature_net(
    data: &TensorData,
    test: Option<&TensorData>,
    num_classes: i64,
    epochs: u64,
    seed: u64,
) -> Result<(nn::VarStore, FeatureNet)> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let size = data.images.size();
    let net = FeatureNet::new(&vs.root(), size[1], size[2], num_classes);
    let mut opt = nn::AdamW {
        wd: WEIGHT_DECAY,
        ..Default::default()
    }
    .build(&vs, PEAK_LR)?;
    let steps_per_epoch = data.len().div_ceil(BATCH);
    let test_accuracy = |net: &FeatureNet| test.map(|test| net.accuracy(test));
    let total = epochs as usize * steps_per_epoch;
    let bar = ProgressBar::new(total as u64);
    for epoch in 0..epochs {
        let order = epoch_permutation(data.len(), seed, epoch);
        tch::manual_seed(mix_seed(seed, 0xa06_0000 + epoch) as i64);
        for step in 0..steps_per_epoch {
            opt.set_lr(learning_rate(epoch as usize * steps_per_epoch + step, total));
            let start = (step * BATCH) as i64;
            let idx = order.narrow(0, start, (BATCH as i64).min(data.len() as i64 - start));
            let (x, y) = data.batch(&idx);
            let loss = net.logits(&augment(&x), true).cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            bar.inc(1);
            if step % 50 == 0 {
                bar.set_message(format!("epoch {} loss {:.3}", epoch + 1, loss.double_value(&[])));
            }
        }
        if let Some(accuracy) = test_accuracy(&net) {
            bar.suspend(|| tracing::info!("epoch {}: test accuracy {:.2}%", epoch + 1, 100.0 * accuracy));
        }
    }
    bar.finish_and_clear();
    Ok((vs, net))
}

/// `odelt features`: trains the network on `source`'s training split for a model shaped like
/// `model`, writes it to `out` as ONNX and returns its test accuracy.
pub fn train_and_export(
    source: &DataSource,
    model: &ModelConfig,
    epochs: u64,
    seed: u64,
    out: &Path,
) -> Result<f64> {
    let load = |split| -> Result<TensorData> {
        Ok(TensorData::new(
            &Dataset::load(source, model, split, seed)?,
            Device::Cpu,
        ))
    };
    let (train, test) = (load(Split::Train)?, load(Split::Test)?);
    let (_vs, net) = train_feature_net(&train, Some(&test), model.num_classes as i64, epochs, seed)?;
    let shape = [
        model.in_channels as usize,
        model.input_size as usize,
        model.input_size as usize,
    ];
    odelt_export::features::write_feature_net(&net.convs(), &net.dense(), shape, out)?;
    Ok(net.accuracy(&test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use odelt_runtime::{Decoder, RuntimeOptions};

    /// The exported graph (batch norms folded into the convolutions) computes the features the
    /// tch network computes in evaluation mode.
    #[test]
    fn exported_features_equal_tch() {
        let data = TensorData {
            images: Tensor::rand([64, 1, 8, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0,
            labels: Tensor::randint(10, [64], (Kind::Int64, Device::Cpu)),
        };
        // One epoch moves the batch norms' running statistics away from (0, 1).
        let (_vs, net) = train_feature_net(&data, None, 10, 1, 3).expect("train");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("features.onnx");
        odelt_export::features::write_feature_net(&net.convs(), &net.dense(), [1, 8, 8], &path)
            .expect("export");
        let x = data.images.narrow(0, 0, 5);
        let expected = floats(&tch::no_grad(|| net.features(&x, false)));
        let onnx = Decoder::open(&path, &RuntimeOptions::default())
            .expect("open")
            .decode(&floats(&x), [5, 1, 8, 8])
            .expect("run");
        assert_eq!(onnx.shape, [5, FEATURES as usize, 1, 1]);
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = onnx
            .data
            .iter()
            .zip(&expected)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            scale > 0.0 && worst <= 1e-5 * scale,
            "max error {worst} of scale {scale}"
        );
    }
}
