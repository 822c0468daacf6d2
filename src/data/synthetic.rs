//! Procedural images at the model's size and class count, for tests and quick runs: class c
//! is a plane wave at angle π·c/K and frequency 1 + c mod 3 cycles per image, with a random
//! phase and contrast per sample, so classes are distinct yet each has variety.

use odelt_runtime::ModelConfig;
use tch::{Kind, Tensor};

use super::{Dataset, Split};

/// Samples per split; enough for many distinct batches of a tiny model.
const SAMPLES: i64 = 2048;

pub fn generate(config: &ModelConfig, split: Split, seed: u64) -> Dataset {
    let stream = match split {
        Split::Train => 0x7a11,
        Split::Test => 0x7e57,
    };
    tch::manual_seed(crate::train::mix_seed(seed, stream) as i64);
    let opts = (Kind::Float, tch::Device::Cpu);
    let (side, k) = (config.input_size as i64, config.num_classes as i64);
    let labels = Tensor::randint(k, [SAMPLES], (Kind::Int64, tch::Device::Cpu));
    let phase = Tensor::rand([SAMPLES, 1, 1], opts) * (2.0 * std::f64::consts::PI);
    let contrast = Tensor::rand([SAMPLES, 1, 1], opts) * 0.4 + 0.6;
    let angle = labels.to_kind(Kind::Float) * (std::f64::consts::PI / k as f64);
    let freq = labels.remainder(3).to_kind(Kind::Float) + 1.0;
    let coord = Tensor::arange(side, opts) / side as f64;
    let (rows, cols) = (coord.view([1, side, 1]), coord.view([1, 1, side]));
    let along = cols * angle.cos().view([SAMPLES, 1, 1]) + rows * angle.sin().view([SAMPLES, 1, 1]);
    let wave = ((along * freq.view([SAMPLES, 1, 1]) * (2.0 * std::f64::consts::PI)) + phase).sin() * contrast;
    let images = wave
        .unsqueeze(1)
        .expand([SAMPLES, config.in_channels as i64, side, side], false)
        .contiguous();
    Dataset { images, labels }
}
