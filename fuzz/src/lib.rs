//! What the fuzz targets share: the small model every checkpoint input is read against.

use odelt_format::ModelConfig;

/// A model small enough that a valid checkpoint of it is a few KiB (a seed AFL can mutate).
pub fn micro_model() -> ModelConfig {
    ModelConfig {
        input_size: 4,
        in_channels: 1,
        patch_size: 2,
        hidden_size: 8,
        num_heads: 2,
        mlp_ratio: 2.0,
        depth: 2,
        depth_min: 2,
        group_size: 2,
        num_classes: 2,
        denoise_timesteps: 2,
    }
}

/// `bytes` split at the first `\0`: (before, after), or (all, None).
pub fn split_at_nul(bytes: &[u8]) -> (&[u8], Option<&[u8]>) {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => (&bytes[..i], Some(&bytes[i + 1..])),
        None => (bytes, None),
    }
}
