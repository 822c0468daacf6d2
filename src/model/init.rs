//! DiT's initialisation: xavier-uniform linears with zero bias, zeros for adaLN and the final
//! layer (adaLN-Zero), normal(0.02) for embedding tables and the embedders' linears.

use tch::nn;

/// A `Linear` named `name` under `vs` with [out, in] weight, initialised by `weight_init`.
pub fn linear(vs: nn::Path, in_dim: usize, out_dim: usize, weight_init: WeightInit) -> nn::Linear {
    let ws_init = match weight_init {
        WeightInit::Xavier => xavier_uniform(in_dim, out_dim),
        WeightInit::Normal002 => nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        },
        WeightInit::Zero => nn::Init::Const(0.0),
    };
    let config = nn::LinearConfig {
        ws_init,
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    nn::linear(vs, in_dim as i64, out_dim as i64, config)
}

#[derive(Debug, Clone, Copy)]
pub enum WeightInit {
    Xavier,
    Normal002,
    Zero,
}

/// Glorot & Bengio (2010): U(±sqrt(6 / (fan_in + fan_out))).
pub fn xavier_uniform(fan_in: usize, fan_out: usize) -> nn::Init {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}
