//! The adaLN-Zero DiT block and the final layer.

use tch::{nn, nn::Module, Kind, Tensor};

use super::init::{linear, WeightInit};

const LN_EPS: f64 = 1e-6;

/// LayerNorm over the last dimension without affine parameters.
fn layer_norm(x: &Tensor) -> Tensor {
    let dim = *x.size().last().expect("tokens have a feature dimension");
    x.layer_norm([dim], None::<Tensor>, None::<Tensor>, LN_EPS, true)
}

/// z·(1 + scale) + shift, with shift/scale [B, D] broadcast over tokens.
fn modulate(z: &Tensor, shift: &Tensor, scale: &Tensor) -> Tensor {
    z * (scale.unsqueeze(1) + 1.0) + shift.unsqueeze(1)
}

#[derive(Debug)]
pub struct DitBlock {
    num_heads: i64,
    qkv: nn::Linear,
    proj: nn::Linear,
    fc1: nn::Linear,
    fc2: nn::Linear,
    ada: nn::Linear,
}

impl DitBlock {
    pub fn new(vs: nn::Path, hidden: usize, num_heads: usize, mlp_hidden: usize) -> Self {
        let attn = &vs / "attn";
        let mlp = &vs / "mlp";
        Self {
            num_heads: num_heads as i64,
            qkv: linear(&attn / "qkv", hidden, 3 * hidden, WeightInit::Xavier),
            proj: linear(&attn / "proj", hidden, hidden, WeightInit::Xavier),
            fc1: linear(&mlp / "fc1", hidden, mlp_hidden, WeightInit::Xavier),
            fc2: linear(&mlp / "fc2", mlp_hidden, hidden, WeightInit::Xavier),
            ada: linear(
                &vs / "adaLN_modulation" / "1",
                hidden,
                6 * hidden,
                WeightInit::Zero,
            ),
        }
    }

    /// Multi-head self-attention with fused qkv: [B, N, D] → [B, N, D].
    fn attention(&self, x: &Tensor) -> Tensor {
        let (b, n, d) = x.size3().expect("tokens are [B, N, D]");
        let head_dim = d / self.num_heads;
        let qkv = self
            .qkv
            .forward(x)
            .view([b, n, 3, self.num_heads, head_dim])
            .permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let scale = 1.0 / (head_dim as f64).sqrt();
        let out = Tensor::scaled_dot_product_attention(&q, &k, &v, None::<Tensor>, 0.0, false, scale, false);
        self.proj.forward(&out.transpose(1, 2).reshape([b, n, d]))
    }

    /// x + gate1·attn(modulate(LN x)) then + gate2·mlp(modulate(LN x)), conditioned on c_l [B, D].
    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Tensor {
        let m = self.ada.forward(&c.silu()).chunk(6, 1);
        let attn = self.attention(&modulate(&layer_norm(x), &m[0], &m[1]));
        let x = x + m[2].unsqueeze(1) * attn;
        let hidden = self
            .fc1
            .forward(&modulate(&layer_norm(&x), &m[3], &m[4]))
            .gelu("tanh");
        &x + m[5].unsqueeze(1) * self.fc2.forward(&hidden)
    }
}

/// adaLN (shift, scale) from c, LayerNorm, then a linear map to P·P·C values per token.
#[derive(Debug)]
pub struct FinalLayer {
    ada: nn::Linear,
    linear: nn::Linear,
}

impl FinalLayer {
    pub fn new(vs: nn::Path, hidden: usize, out_per_token: usize) -> Self {
        Self {
            ada: linear(
                &vs / "adaLN_modulation" / "1",
                hidden,
                2 * hidden,
                WeightInit::Zero,
            ),
            linear: linear(&vs / "linear", hidden, out_per_token, WeightInit::Zero),
        }
    }

    pub fn forward(&self, x: &Tensor, c: &Tensor) -> Tensor {
        let m = self.ada.forward(&c.silu()).chunk(2, 1);
        self.linear
            .forward(&modulate(&layer_norm(x), &m[0], &m[1]))
            .to_kind(Kind::Float)
    }
}
