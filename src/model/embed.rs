//! Embedders: patches, 2-D sin-cos positions, sinusoidal scalars (t and shortcut level k),
//! and lookup tables (class labels, lengths).

use tch::{nn, nn::Module, Kind, Tensor};

use super::init::{linear, xavier_uniform, WeightInit};

/// Width of the sinusoidal embedding of a scalar, as in DiT.
pub const FREQUENCY_DIM: usize = 256;

/// Conv2d with kernel = stride = P: [B, C, H, W] → tokens [B, N, D], row-major over patches.
#[derive(Debug)]
pub struct PatchEmbedder {
    proj: nn::Conv2D,
}

impl PatchEmbedder {
    pub fn new(vs: nn::Path, in_channels: usize, hidden: usize, patch: usize) -> Self {
        let fan_in = in_channels * patch * patch;
        let config = nn::ConvConfig {
            stride: patch as i64,
            ws_init: xavier_uniform(fan_in, hidden),
            bs_init: nn::Init::Const(0.0),
            ..Default::default()
        };
        Self {
            proj: nn::conv2d(
                vs / "proj",
                in_channels as i64,
                hidden as i64,
                patch as i64,
                config,
            ),
        }
    }

    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.proj.forward(x).flatten(2, 3).transpose(1, 2)
    }
}

/// Fixed 2-D sin-cos position embedding [1, N, D]: for ω_j = 10000^(−j/(D/4)), token (row, col)
/// gets [sin(col·ω), cos(col·ω), sin(row·ω), cos(row·ω)].
pub fn sincos_pos_embed(hidden: usize, side: usize) -> Tensor {
    let quarter = hidden / 4;
    let mut data = Vec::with_capacity(side * side * hidden);
    for row in 0..side {
        for col in 0..side {
            for pos in [col, row] {
                let omega = |j: usize| 10000f64.powf(-(j as f64) / quarter as f64);
                data.extend((0..quarter).map(|j| (pos as f64 * omega(j)).sin() as f32));
                data.extend((0..quarter).map(|j| (pos as f64 * omega(j)).cos() as f32));
            }
        }
    }
    Tensor::from_slice(&data).view([1, (side * side) as i64, hidden as i64])
}

/// emb(s) = [cos(s·f), sin(s·f)], f_j = exp(−ln(10000)·j/128): s [B] → [B, 256].
pub fn timestep_embedding(s: &Tensor) -> Tensor {
    let half = (FREQUENCY_DIM / 2) as i64;
    let freqs = (Tensor::arange(half, (Kind::Float, s.device())) * (-(10000f64.ln()) / half as f64)).exp();
    let args = s.to_kind(Kind::Float).unsqueeze(1) * freqs.unsqueeze(0);
    Tensor::cat(&[args.cos(), args.sin()], 1)
}

/// Linear → SiLU → Linear on the sinusoidal embedding of a scalar (t or k), unscaled.
#[derive(Debug)]
pub struct ScalarEmbedder {
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl ScalarEmbedder {
    pub fn new(vs: nn::Path, hidden: usize) -> Self {
        let mlp = vs / "mlp";
        Self {
            fc1: linear(&mlp / "0", FREQUENCY_DIM, hidden, WeightInit::Normal002),
            fc2: linear(&mlp / "2", hidden, hidden, WeightInit::Normal002),
        }
    }

    pub fn forward(&self, s: &Tensor) -> Tensor {
        self.fc2.forward(&self.fc1.forward(&timestep_embedding(s)).silu())
    }
}

/// A lookup table `embedding_table.weight` [rows, D]: class labels (last row: null label) or lengths.
#[derive(Debug)]
pub struct EmbeddingTable {
    weight: Tensor,
}

impl EmbeddingTable {
    pub fn new(vs: nn::Path, rows: usize, hidden: usize) -> Self {
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        Self {
            weight: (vs / "embedding_table").var("weight", &[rows as i64, hidden as i64], init),
        }
    }

    /// Rows for `index` (i64 [B]) → [B, D].
    pub fn forward(&self, index: &Tensor) -> Tensor {
        self.weight.index_select(0, index)
    }
}
