//! The model's parameters by name and shape, and the constants of its forward pass
//! (docs/DESIGN.md §3). The tch model and the ONNX exporter both follow these; a test checks
//! the tch model's variables against [`expected_tensors`] for every preset.

use crate::config::ModelConfig;

/// Width of the sinusoidal embedding of t and k (half cosines, half sines).
pub const FREQUENCY_DIM: usize = 256;
/// Base of the sinusoidal embeddings' and the position embedding's frequencies.
pub const MAX_PERIOD: f64 = 10000.0;
/// LayerNorm epsilon (no affine parameters).
pub const LAYER_NORM_EPS: f64 = 1e-6;

/// Names and shapes of every tensor the model has, in the model's order (PyTorch layout:
/// `Linear` weights are [out, in]).
pub fn expected_tensors(cfg: &ModelConfig) -> Vec<(String, Vec<usize>)> {
    let d = cfg.hidden_size as usize;
    let c = cfg.in_channels as usize;
    let p = cfg.patch_size as usize;
    let m = cfg.mlp_hidden();
    let mut out: Vec<(String, Vec<usize>)> = vec![
        ("x_embedder.proj.weight".into(), vec![d, c, p, p]),
        ("x_embedder.proj.bias".into(), vec![d]),
        ("pos_embed".into(), vec![1, cfg.num_tokens(), d]),
    ];
    for embedder in ["t_embedder", "d_embedder"] {
        out.push((format!("{embedder}.mlp.0.weight"), vec![d, FREQUENCY_DIM]));
        out.push((format!("{embedder}.mlp.0.bias"), vec![d]));
        out.push((format!("{embedder}.mlp.2.weight"), vec![d, d]));
        out.push((format!("{embedder}.mlp.2.bias"), vec![d]));
    }
    out.push((
        "y_embedder.embedding_table.weight".into(),
        vec![cfg.num_classes as usize + 1, d],
    ));
    out.push((
        "l_embedder.embedding_table.weight".into(),
        vec![cfg.depth as usize + 1, d],
    ));
    for i in 0..cfg.depth as usize {
        let linears = [
            ("attn.qkv", 3 * d, d),
            ("attn.proj", d, d),
            ("mlp.fc1", m, d),
            ("mlp.fc2", d, m),
            ("adaLN_modulation.1", 6 * d, d),
        ];
        for (name, fan_out, fan_in) in linears {
            out.push((format!("blocks.{i}.{name}.weight"), vec![fan_out, fan_in]));
            out.push((format!("blocks.{i}.{name}.bias"), vec![fan_out]));
        }
    }
    out.push(("final_layer.adaLN_modulation.1.weight".into(), vec![2 * d, d]));
    out.push(("final_layer.adaLN_modulation.1.bias".into(), vec![2 * d]));
    out.push(("final_layer.linear.weight".into(), vec![p * p * c, d]));
    out.push(("final_layer.linear.bias".into(), vec![p * p * c]));
    out
}
