//! Random checkpoints for tests and fixtures: every tensor of docs/DESIGN.md §3 with non-zero values
//! (DiT's initialisation zeroes the adaLN and final layers, which would make a numerical
//! comparison vacuous). Deterministic for a seed.

use std::path::Path;

use odelt_format::checkpoint::{CONFIG_FILE, MODEL_FILE};
use odelt_format::seed::SplitMix64;
use odelt_format::tensors::expected_tensors;
use odelt_format::{CheckpointMeta, ModelConfig};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// A named tensor: name, shape, row-major values.
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// A standard normal from two SplitMix64 uniforms (Box–Muller).
fn normal(rng: &mut SplitMix64) -> f32 {
    let (u1, u2) = (rng.uniform(), rng.uniform());
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

/// Every tensor of `cfg` with random values: weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1²),
/// tables and `pos_embed` ~ N(0, 0.5²).
pub fn random_tensors(cfg: &ModelConfig, seed: u64) -> Vec<NamedTensor> {
    let mut rng = SplitMix64::new(seed);
    expected_tensors(cfg)
        .into_iter()
        .map(|(name, shape)| {
            let numel: usize = shape.iter().product();
            let std = if name.ends_with(".bias") {
                0.1
            } else if name.contains("embedding_table") || name == "pos_embed" {
                0.5
            } else {
                let fan_in: usize = shape[1..].iter().product();
                1.0 / (fan_in as f32).sqrt()
            };
            let data = (0..numel).map(|_| std * normal(&mut rng)).collect();
            (name, shape, data)
        })
        .collect()
}

/// Writes a checkpoint folder (`config.json`, `model.safetensors` in `dtype`: F32, F16 or BF16).
pub fn write_checkpoint(
    dir: &Path,
    cfg: &ModelConfig,
    step: u64,
    tensors: &[NamedTensor],
    dtype: Dtype,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let config = CheckpointMeta::new(step, cfg.clone());
    std::fs::write(dir.join(CONFIG_FILE), serde_json::to_string_pretty(&config)?)?;
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let bytes: Vec<u8> = match dtype {
                Dtype::F16 => data
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
                Dtype::BF16 => data
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
                _ => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            };
            (name.clone(), shape.clone(), bytes)
        })
        .collect();
    let dtype = if matches!(dtype, Dtype::F16 | Dtype::BF16) {
        dtype
    } else {
        Dtype::F32
    };
    let views = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(dtype, shape.clone(), bytes).map_err(std::io::Error::other)?;
            Ok((name.as_str(), view))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, &dir.join(MODEL_FILE)).map_err(std::io::Error::other)
}

/// A random f32 checkpoint of `cfg` at `dir`.
pub fn write_random_checkpoint(dir: &Path, cfg: &ModelConfig, seed: u64) -> std::io::Result<()> {
    write_checkpoint(dir, cfg, 1000, &random_tensors(cfg, seed), Dtype::F32)
}
