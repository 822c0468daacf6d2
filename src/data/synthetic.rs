//! Procedural images at the model's size and class count, for tests and quick runs: class c
//! is a plane wave at angle π·c/K and frequency 1 + c mod 3 cycles per image, with a random
//! phase and contrast per sample, so classes are distinct yet each has variety.

use std::f64::consts::PI;

use odelt_format::seed::{mix_seed, SplitMix64};
use odelt_format::ModelConfig;

use super::{Dataset, Split};

/// Samples per split; enough for many distinct batches of a tiny model.
const SAMPLES: usize = 2048;

pub fn generate(config: &ModelConfig, split: Split, seed: u64) -> Dataset {
    let stream = match split {
        Split::Train => 0x7a11,
        Split::Test => 0x7e57,
    };
    let mut rng = SplitMix64::new(mix_seed(seed, stream));
    let (side, channels, k) = (
        config.input_size as usize,
        config.in_channels as usize,
        config.num_classes as u64,
    );
    let mut images = Vec::with_capacity(SAMPLES * channels * side * side);
    let mut labels = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let label = rng.next_u64() % k;
        let phase = rng.uniform() * 2.0 * PI;
        let contrast = rng.uniform() * 0.4 + 0.6;
        let angle = label as f64 * PI / k as f64;
        let freq = (label % 3 + 1) as f64;
        let wave: Vec<f32> = (0..side * side)
            .map(|i| {
                let (row, col) = ((i / side) as f64 / side as f64, (i % side) as f64 / side as f64);
                let along = col * angle.cos() + row * angle.sin();
                ((along * freq * 2.0 * PI + phase).sin() * contrast) as f32
            })
            .collect();
        for _ in 0..channels {
            images.extend_from_slice(&wave);
        }
        labels.push(label as i64);
    }
    Dataset {
        images,
        shape: [SAMPLES, channels, side, side],
        labels,
    }
}
