//! The model configuration: one definition, shared by training, export and the runtime.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn default_mlp_ratio() -> f64 {
    4.0
}
fn default_denoise_timesteps() -> u32 {
    128
}
fn default_group_size() -> u32 {
    1
}

/// Architecture of an ODE_t(ODE_l) DiT (docs/DESIGN.md §3). Images are `in_channels × input_size²`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Image side H = W.
    pub input_size: u32,
    /// Channels C.
    pub in_channels: u32,
    /// Patch side P; H must be a multiple of it.
    pub patch_size: u32,
    /// Hidden size D; a multiple of `num_heads` and of 4 (2-D sin-cos position embedding).
    pub hidden_size: u32,
    pub num_heads: u32,
    /// MLP hidden size is `hidden_size · mlp_ratio`.
    #[serde(default = "default_mlp_ratio")]
    pub mlp_ratio: f64,
    /// Number of blocks L.
    pub depth: u32,
    /// Smallest length L_min that may be sampled.
    pub depth_min: u32,
    /// Blocks per inner Euler step G.
    #[serde(default = "default_group_size")]
    pub group_size: u32,
    /// Number of classes; label `num_classes` is the null label.
    pub num_classes: u32,
    /// T_max, a power of two: the finest time grid, k = log2(T_max) is the plain flow.
    #[serde(default = "default_denoise_timesteps")]
    pub denoise_timesteps: u32,
}

impl ModelConfig {
    /// Test-sized model: trains in seconds, used throughout the test suite.
    pub fn tiny() -> Self {
        Self {
            input_size: 8,
            in_channels: 1,
            patch_size: 2,
            hidden_size: 32,
            num_heads: 2,
            mlp_ratio: 4.0,
            depth: 4,
            depth_min: 2,
            group_size: 2,
            num_classes: 4,
            denoise_timesteps: 128,
        }
    }

    /// Fashion-MNIST model: lengths 4, 8, 12 as in the paper's figures. Hidden size 96 (2 M
    /// parameters): measured at hidden 128 a step of 64 samples on a busy 2-core CPU ran at 6–9
    /// samples/s, too slow for a few-hour run; 96 takes about half the FLOPs.
    pub fn fmnist() -> Self {
        Self {
            input_size: 28,
            in_channels: 1,
            patch_size: 4,
            hidden_size: 96,
            num_heads: 4,
            mlp_ratio: 4.0,
            depth: 12,
            depth_min: 4,
            group_size: 4,
            num_classes: 10,
            denoise_timesteps: 128,
        }
    }

    /// DiT on 32×32×4 SD-VAE latents (256² images), patch 2, 1000 classes (Peebles & Xie, Table 1).
    fn dit_latent(hidden_size: u32, num_heads: u32, depth: u32, depth_min: u32, group_size: u32) -> Self {
        Self {
            input_size: 32,
            in_channels: 4,
            patch_size: 2,
            hidden_size,
            num_heads,
            mlp_ratio: 4.0,
            depth,
            depth_min,
            group_size,
            num_classes: 1000,
            denoise_timesteps: 128,
        }
    }

    /// DiT-S/2: 384 hidden, 6 heads, 12 blocks; lengths 4, 8, 12.
    pub fn dit_s() -> Self {
        Self::dit_latent(384, 6, 12, 4, 4)
    }

    /// DiT-B/2: 768 hidden, 12 heads, 12 blocks; lengths 4, 8, 12 (the paper's ImageNet runs).
    pub fn dit_b() -> Self {
        Self::dit_latent(768, 12, 12, 4, 4)
    }

    /// DiT-XL/2: 1152 hidden, 16 heads, 28 blocks. Lengths 12…28 in groups of 4: a group of 8
    /// does not divide 28 blocks.
    pub fn dit_xl() -> Self {
        Self::dit_latent(1152, 16, 28, 12, 4)
    }

    /// Names accepted by [`ModelConfig::preset`].
    pub const PRESETS: [&'static str; 5] = ["tiny", "fmnist", "dit-s", "dit-b", "dit-xl"];

    pub fn preset(name: &str) -> Option<Self> {
        Some(match name {
            "tiny" => Self::tiny(),
            "fmnist" => Self::fmnist(),
            "dit-s" => Self::dit_s(),
            "dit-b" => Self::dit_b(),
            "dit-xl" => Self::dit_xl(),
            _ => return None,
        })
    }

    /// A preset name or a JSON file holding a config (either bare or under the key `"model"`).
    pub fn from_preset_or_file(spec: &str) -> Result<Self> {
        if let Some(config) = Self::preset(spec) {
            return Ok(config);
        }
        let path = Path::new(spec);
        if !path.exists() {
            return Err(Error::InvalidArgument(format!(
                "unknown model '{spec}': not a preset ({}) and no such file",
                Self::PRESETS.join(", ")
            )));
        }
        let text = std::fs::read_to_string(path).map_err(Error::read(path))?;
        Self::from_json(&text, path)
    }

    /// A config from JSON text read from `path` (bare or under the key `"model"`), validated.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let json = |source| Error::Json {
            path: path.display().to_string(),
            what: "a model config",
            source,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(json)?;
        let inner = value.get("model").cloned().unwrap_or(value);
        let config: Self = serde_json::from_value(inner).map_err(json)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every constraint of docs/DESIGN.md §3, naming the first one broken.
    pub fn validate(&self) -> Result<()> {
        let fail = |msg: String| Err(Error::InvalidConfig(msg));
        let positive = [
            ("input_size", self.input_size),
            ("in_channels", self.in_channels),
            ("patch_size", self.patch_size),
            ("hidden_size", self.hidden_size),
            ("num_heads", self.num_heads),
            ("depth", self.depth),
            ("depth_min", self.depth_min),
            ("group_size", self.group_size),
            ("num_classes", self.num_classes),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return fail(format!("{name} must be at least 1"));
        }
        if !self.input_size.is_multiple_of(self.patch_size) {
            return fail(format!(
                "input_size {} is not a multiple of patch_size {}",
                self.input_size, self.patch_size
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return fail(format!(
                "hidden_size {} is not divisible by num_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if !self.hidden_size.is_multiple_of(4) {
            return fail(format!(
                "hidden_size {} is not a multiple of 4 (the 2-D sin-cos position embedding needs it)",
                self.hidden_size
            ));
        }
        if !(self.mlp_ratio > 0.0 && self.mlp_ratio.is_finite()) || self.mlp_hidden() == 0 {
            return fail(format!("mlp_ratio {} must be positive", self.mlp_ratio));
        }
        if !self.depth.is_multiple_of(self.group_size) || !self.depth_min.is_multiple_of(self.group_size) {
            return fail(format!(
                "depth {} and depth_min {} must be multiples of group_size {}",
                self.depth, self.depth_min, self.group_size
            ));
        }
        if self.depth_min > self.depth {
            return fail(format!(
                "depth_min {} exceeds depth {}",
                self.depth_min, self.depth
            ));
        }
        if !self.denoise_timesteps.is_power_of_two() || self.denoise_timesteps < 2 {
            return fail(format!(
                "denoise_timesteps {} must be a power of two ≥ 2",
                self.denoise_timesteps
            ));
        }
        Ok(())
    }

    /// Tokens per image N = (H/P)².
    pub fn num_tokens(&self) -> usize {
        let side = (self.input_size / self.patch_size) as usize;
        side * side
    }

    /// MLP hidden size M = D · mlp_ratio.
    pub fn mlp_hidden(&self) -> usize {
        (self.hidden_size as f64 * self.mlp_ratio) as usize
    }

    /// Floats per image C·H·W.
    pub fn image_numel(&self) -> usize {
        (self.in_channels * self.input_size * self.input_size) as usize
    }

    /// Valid lengths L_min, L_min+G, …, L.
    pub fn valid_lengths(&self) -> Vec<u32> {
        (self.depth_min..=self.depth)
            .step_by(self.group_size as usize)
            .collect()
    }

    /// Checks that `length` is valid, naming the valid ones when it is not.
    pub fn check_length(&self, length: u32) -> Result<()> {
        if self.valid_lengths().contains(&length) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "length {length} is not valid for this model; valid lengths: {}",
                join(&self.valid_lengths())
            )))
        }
    }

    /// log2(T_max): the shortcut level of the plain flow (d ≈ 0).
    pub fn flow_level(&self) -> u32 {
        self.denoise_timesteps.trailing_zeros()
    }

    /// The shortcut level k for Euler with `steps` steps: log2 T when T is a power of two ≤
    /// T_max, else the plain flow's level.
    pub fn euler_level(&self, steps: u32) -> u32 {
        if steps.is_power_of_two() && steps <= self.denoise_timesteps {
            steps.trailing_zeros()
        } else {
            self.flow_level()
        }
    }
}

/// "4, 8, 12" for messages.
pub fn join(values: &[u32]) -> String {
    values.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for name in ModelConfig::PRESETS {
            ModelConfig::preset(name).expect("preset").validate().expect(name);
        }
    }

    #[test]
    fn lengths_and_levels() {
        let c = ModelConfig::fmnist();
        assert_eq!(c.valid_lengths(), vec![4, 8, 12]);
        assert!(c
            .check_length(6)
            .expect_err("invalid")
            .to_string()
            .contains("4, 8, 12"));
        assert_eq!(c.euler_level(4), 2);
        assert_eq!(c.euler_level(128), 7);
        assert_eq!(c.euler_level(3), 7);
        assert_eq!(c.euler_level(256), 7);
    }

    #[test]
    fn invalid_configs_name_the_problem() {
        let mut c = ModelConfig::tiny();
        c.depth = 5;
        assert!(c
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("multiples of group_size"));
        let mut c = ModelConfig::tiny();
        c.hidden_size = 30;
        c.num_heads = 4;
        assert!(c
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("num_heads"));
    }
}
