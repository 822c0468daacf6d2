//! The feature network: trained as a classifier on the real data, then its pooled features
//! define the space `odelt eval` compares distributions in.

use std::path::Path;

use anyhow::Result;
use indicatif::ProgressBar;
use odelt_export::features::Conv3x3;
use odelt_format::ModelConfig;
use tch::{nn, nn::Module, nn::OptimizerConfig, Device, Kind, Tensor};

use super::tensors::{epoch_permutation, TensorData};
use crate::data::{DataSource, Dataset, Split};

/// Channel widths of the three convolutions; 128 features.
const WIDTHS: [i64; 3] = [32, 64, 128];

pub struct FeatureNet {
    convs: Vec<nn::Conv2D>,
    head: nn::Linear,
}

impl FeatureNet {
    pub fn new(vs: &nn::Path, in_channels: i64, num_classes: i64) -> Self {
        let config = nn::ConvConfig {
            padding: 1,
            ..Default::default()
        };
        let mut inputs = in_channels;
        let convs = WIDTHS
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let conv = nn::conv2d(vs / "convs" / i, inputs, w, 3, config);
                inputs = w;
                conv
            })
            .collect();
        let head = nn::linear(vs / "head", inputs, num_classes, Default::default());
        Self { convs, head }
    }

    /// Pooled features [B, 128], as the exported graph computes them.
    pub fn features(&self, x: &Tensor) -> Tensor {
        let mut h = x.shallow_clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = conv.forward(&h).relu();
            if i + 1 < self.convs.len() {
                h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        h.mean_dim(&[2i64, 3][..], false, Kind::Float)
    }

    pub fn logits(&self, x: &Tensor) -> Tensor {
        self.head.forward(&self.features(x))
    }

    /// The convolutions in the exporter's form.
    pub fn convs(&self) -> Vec<Conv3x3> {
        let floats = |t: &Tensor| Vec::<f32>::try_from(&t.flatten(0, -1)).expect("f32 weights");
        self.convs
            .iter()
            .map(|c| {
                let size = c.ws.size();
                Conv3x3 {
                    weight: floats(&c.ws),
                    bias: floats(c.bs.as_ref().expect("convolutions have a bias")),
                    in_channels: size[1] as usize,
                    out_channels: size[0] as usize,
                }
            })
            .collect()
    }

    /// Share of `data` classified correctly.
    pub fn accuracy(&self, data: &TensorData) -> f64 {
        tch::no_grad(|| {
            let n = data.len() as i64;
            let correct: i64 = (0..n)
                .step_by(1000)
                .map(|s| {
                    let len = 1000.min(n - s);
                    let pred = self.logits(&data.images.narrow(0, s, len)).argmax(1, false);
                    pred.eq_tensor(&data.labels.narrow(0, s, len))
                        .sum(Kind::Int64)
                        .int64_value(&[])
                })
                .sum();
            correct as f64 / n as f64
        })
    }
}

/// Trains a feature network as a classifier with Adam (lr 1e-3, batch 128) for `epochs`.
pub fn train_feature_net(
    data: &TensorData,
    num_classes: i64,
    epochs: u64,
    seed: u64,
) -> Result<(nn::VarStore, FeatureNet)> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = FeatureNet::new(&vs.root(), data.images.size()[1], num_classes);
    let mut opt = nn::Adam::default().build(&vs, 1e-3)?;
    let batch = 128usize;
    let steps_per_epoch = data.len().div_ceil(batch);
    let bar = ProgressBar::new(epochs * steps_per_epoch as u64);
    for epoch in 0..epochs {
        let order = epoch_permutation(data.len(), seed, epoch);
        for step in 0..steps_per_epoch {
            let start = (step * batch) as i64;
            let idx = order.narrow(0, start, (batch as i64).min(data.len() as i64 - start));
            let (x, y) = data.batch(&idx);
            let loss = net.logits(&x).cross_entropy_for_logits(&y);
            opt.backward_step(&loss);
            bar.inc(1);
            if step % 50 == 0 {
                bar.set_message(format!("loss {:.3}", loss.double_value(&[])));
            }
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
    let (_vs, net) = train_feature_net(&train, model.num_classes as i64, epochs, seed)?;
    let shape = [
        model.in_channels as usize,
        model.input_size as usize,
        model.input_size as usize,
    ];
    odelt_export::features::write_feature_net(&net.convs(), shape, out)?;
    Ok(net.accuracy(&test))
}
