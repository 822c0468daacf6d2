//! The ODE_t(ODE_l) DiT as an ONNX graph for one length l (docs/DESIGN.md §3).
//!
//! Every weight matrix is a plain initializer, input 1 of the node that multiplies by it: a
//! `MatMul` (token linears, `[in, out]`), a `Gemm(transB = 1)` (conditioning linears, checkpoint
//! layout) or, for qkv in the fused form, `com.microsoft` `Attention` (`[in, out]`), so
//! post-passes that rewrite matrix products see them all. Around them the graph has two forms
//! ([`Ops`]):
//!
//! - **fused** (default; ONNX Runtime's CPU and CUDA providers): 20 nodes per block. adaLN's
//!   six vectors come from one Gemm (whose bias carries the `1 +` of both scales, folded into a
//!   constant by ONNX Runtime), one Unsqueeze and one Split; `modulate(LN(x))` is a unit-scale
//!   `LayerNormalization`, a Mul and an Add; attention is one `com.microsoft` `Attention` (qkv
//!   product and bias, then attention scaled by its default 1/√d_head); fc1's bias and
//!   tanh-GELU are one `com.microsoft` `FastGelu`.
//! - **standard** (opset 17 only, for TensorRT, whose parser takes no `com.microsoft`
//!   operators): `LayerNormalization` then `x·(1 + scale) + shift`, `MatMul` + `Add` for every
//!   token linear, tanh-GELU in the form ONNX Runtime's `FastGeluFusion` matches (x·0.5·(1 +
//!   tanh(0.79788456·x·(1 + 0.044715·x·x)))), and multi-head attention as MatMul → Softmax →
//!   MatMul with the scale applied to q (one multiply over N·D elements instead of N·N, and no
//!   fp16 overflow in the scores).
//!
//! In an fp16 graph the token linears, the patch embedding, attention and the MLP run in
//! float16; the residual stream r, the inner-ODE sum v, LayerNormalization (whose input is the
//! fp32 residual, `stash_type = 1`), adaLN modulation, gates and residual adds stay float32. A
//! Cast to float16 follows each modulate and a Cast back to float32 precedes each gate.

use std::collections::HashMap;

use odelt_format::tensors::{FREQUENCY_DIM, LAYER_NORM_EPS, MAX_PERIOD};
use odelt_format::ModelConfig;
use onnx_protobuf::ModelProto;

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::graph::{Attr, Dim, ExternalUse, GraphBuilder};
use crate::weights::StoredTensor;

/// Name of the length embedding row folded into the graph of length `l`.
pub fn length_row_name(l: u32) -> String {
    format!("l_embedder.row{l}")
}

/// How a checkpoint tensor is stored in `weights.bin`: its element type and whether it is
/// transposed from PyTorch's `[out, in]` to `[in, out]` (weights of the token linears, which
/// `MatMul` consumes).
pub fn storage(name: &str, fp16: bool) -> (Elem, bool) {
    let token_linear =
        name.contains(".attn.") || name.contains(".mlp.fc") || name.starts_with("final_layer.linear.");
    let matrix_product = token_linear || name.starts_with("x_embedder.");
    let elem = if fp16 && matrix_product {
        Elem::F16
    } else {
        Elem::F32
    };
    (elem, token_linear && name.ends_with(".weight"))
}

/// Which operators a graph is written with (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ops {
    /// Fused nodes, some from ONNX Runtime's `com.microsoft` domain.
    #[default]
    Fused,
    /// The standard ONNX opset only.
    Standard,
}

impl Ops {
    /// The manifest's name for the form.
    pub fn name(self) -> &'static str {
        match self {
            Ops::Fused => "fused",
            Ops::Standard => "standard",
        }
    }
}

/// Precision of one graph.
#[derive(Debug, Clone, Copy)]
pub struct Precision {
    /// Matrix products and attention in float16.
    pub fp16: bool,
    /// `x` and `v` in float16 (requires `fp16`).
    pub fp16_io: bool,
}

/// Builds the graph of length `length` over the tensors stored in `weights_file`. Returns the
/// model and the external initializers it references.
pub fn build(
    cfg: &ModelConfig,
    length: u32,
    stored: &HashMap<String, StoredTensor>,
    precision: Precision,
    ops: Ops,
    weights_file: &str,
) -> Result<(ModelProto, Vec<ExternalUse>)> {
    let mut b = DitGraph {
        g: GraphBuilder::new(weights_file),
        cfg,
        stored,
        mm: if precision.fp16 { Elem::F16 } else { Elem::F32 },
        ops,
    };
    let io = if precision.fp16_io { Elem::F16 } else { Elem::F32 };
    let (c, h, p) = (
        cfg.in_channels as i64,
        cfg.input_size as i64,
        cfg.patch_size as i64,
    );
    let batch = Dim::Symbolic("batch");
    let per_sample = [batch.clone()];
    let image = [batch.clone(), Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(h)];
    let x = b.g.input("x", io, &image);
    let t = b.g.input("t", Elem::F32, &per_sample);
    let k = b.g.input("k", Elem::F32, &per_sample);
    let y = b.g.input("y", Elem::I64, &per_sample);

    let tokens = b.patch_embed(&x, io);
    let cond = b.conditioning(&t, &k, &y);
    let row = length_row_name(length);
    let table = &stored["l_embedder.embedding_table.weight"];
    let d = cfg.hidden_size as i64;
    let row = b.g.external_view(&row, table, length as u64 * d as u64, &[d]);
    let c_l = b.g.node("c_l", "Add", &[&cond, &row], vec![]);
    let silu_cl = b.silu("c_l/silu", &c_l);

    // Inner ODE over depth: groups of G chained blocks, one Euler step per group.
    let g_size = cfg.group_size;
    let mut r = tokens;
    let mut v: Option<String> = None;
    for i in 0..length {
        let out = b.block(i, &r, &silu_cl);
        if (i + 1).is_multiple_of(g_size) {
            let step = (i + 1) / g_size;
            v = Some(match v {
                None => out.clone(),
                Some(prev) => {
                    b.g.node(&format!("ode/step{step}/v"), "Add", &[&prev, &out], vec![])
                }
            });
            if i + 1 < length {
                r = b.g.node(&format!("ode/step{step}/r"), "Add", &[&r, &out], vec![]);
            }
        } else {
            r = out;
        }
    }
    let Some(v) = v else {
        return Err(Error::Internal(format!(
            "length {length} is not a positive multiple of the group size {g_size}"
        )));
    };

    // Head: conditioned on c, without the length embedding.
    let silu_c = b.silu("final_layer/silu", &cond);
    let mods = b.adaln(
        "final_layer/adaLN_modulation",
        &silu_c,
        "final_layer.adaLN_modulation.1",
        &[Modulation::Shift, Modulation::Scale],
    );
    let modulated = b.norm_modulate("final_layer", &v, &mods[0], &mods[1]);
    let out = b.linear("final_layer/linear", &modulated, "final_layer.linear");
    let out = b.cast_to("final_layer/linear/cast", &out, b.mm, io);
    let side = h / p;
    let shape = b.g.ints(&[0, side, side, p, p, c]);
    let patches = b.g.node("unpatchify/reshape", "Reshape", &[&out, &shape], vec![]);
    let nchw = b.g.node(
        "unpatchify/transpose",
        "Transpose",
        &[&patches],
        vec![("perm", Attr::Ints(vec![0, 5, 1, 3, 2, 4]))],
    );
    let shape = b.g.ints(&[0, c, h, h]);
    b.g.node_to("unpatchify", "Reshape", &[&nchw, &shape], "v", vec![]);
    b.g.output("v", io, &image);

    let externals = b.g.externals().to_vec();
    let doc = format!(
        "ODE_t(ODE_l) DiT, length {length} of {} (first {length} blocks + shared head), {} matrix products",
        cfg.depth,
        if precision.fp16 { "fp16" } else { "fp32" }
    );
    let meta = [
        ("odelt.length", length.to_string()),
        (
            "odelt.precision",
            if precision.fp16 { "fp16" } else { "fp32" }.to_string(),
        ),
        ("odelt.ops", ops.name().to_string()),
    ];
    let model = b.g.finish(&format!("odelt_l{length}"), &doc, &meta)?;
    Ok((model, externals))
}

struct DitGraph<'a> {
    g: GraphBuilder,
    cfg: &'a ModelConfig,
    stored: &'a HashMap<String, StoredTensor>,
    /// Element type of matrix products.
    mm: Elem,
    ops: Ops,
}

/// What one chunk of an adaLN modulation is.
#[derive(Clone, Copy, PartialEq)]
enum Modulation {
    Shift,
    Scale,
    Gate,
}

/// A block's six chunks, in DiT's order.
const BLOCK_MODULATION: [Modulation; 6] = [
    Modulation::Shift,
    Modulation::Scale,
    Modulation::Gate,
    Modulation::Shift,
    Modulation::Scale,
    Modulation::Gate,
];

impl DitGraph<'_> {
    fn weight(&mut self, name: &str) -> String {
        match self.stored.get(name) {
            Some(stored) => self.g.external(stored),
            None => {
                self.g
                    .fault(format!("{name} was not stored before graphs are built"));
                name.to_string()
            }
        }
    }

    /// Token linear `x·Wᵀ + b` on [B, N, in]: MatMul over the transposed weight, then Add.
    fn linear(&mut self, name: &str, x: &str, param: &str) -> String {
        let (mm, bias) = self.matmul(name, x, param);
        self.g.node(&format!("{name}/bias"), "Add", &[&mm, &bias], vec![])
    }

    /// The product `x·Wᵀ` of a token linear, and its bias for the consumer to add.
    fn matmul(&mut self, name: &str, x: &str, param: &str) -> (String, String) {
        let w = self.weight(&format!("{param}.weight"));
        let bias = self.weight(&format!("{param}.bias"));
        (self.g.node(name, "MatMul", &[x, &w], vec![]), bias)
    }

    /// Conditioning linear on [B, in] with the checkpoint's [out, in] weight.
    fn gemm(&mut self, name: &str, x: &str, param: &str) -> String {
        let w = self.weight(&format!("{param}.weight"));
        let bias = self.weight(&format!("{param}.bias"));
        self.gemm_node(name, x, &w, &bias)
    }

    fn gemm_node(&mut self, name: &str, x: &str, w: &str, bias: &str) -> String {
        self.g
            .node(name, "Gemm", &[x, w, bias], vec![("transB", Attr::Int(1))])
    }

    fn silu(&mut self, name: &str, x: &str) -> String {
        let s = self.g.node(&format!("{name}/sigmoid"), "Sigmoid", &[x], vec![]);
        self.g.node(name, "Mul", &[x, &s], vec![])
    }

    fn cast_to(&mut self, name: &str, x: &str, from: Elem, to: Elem) -> String {
        if from == to {
            return x.to_string();
        }
        self.g
            .node(name, "Cast", &[x], vec![("to", Attr::Int(to.onnx() as i64))])
    }

    /// adaLN: `Linear(silu(c))` split into `[B, 1, D]` chunks. In the fused form the Gemm's
    /// bias is `bias + 1` on the scale chunks (a constant Add of initializers, which ONNX Runtime
    /// folds), so the Scale chunks come out as `1 + scale`.
    fn adaln(&mut self, name: &str, silu_c: &str, param: &str, chunks: &[Modulation]) -> Vec<String> {
        let w = self.weight(&format!("{param}.weight"));
        let mut bias = self.weight(&format!("{param}.bias"));
        if self.ops == Ops::Fused {
            let offsets = self.scale_offsets(chunks);
            bias = self.g.node(
                &format!("{name}/bias_plus_one"),
                "Add",
                &[&bias, &offsets],
                vec![],
            );
        }
        let ada = self.gemm_node(name, silu_c, &w, &bias);
        let axes = self.g.ints(&[1]);
        let u = self
            .g
            .node(&format!("{name}/unsqueeze"), "Unsqueeze", &[&ada, &axes], vec![]);
        self.g.node_n(
            &format!("{name}/chunk"),
            "Split",
            &[&u],
            chunks.len(),
            vec![("axis", Attr::Int(2))],
        )
    }

    /// 1 over the Scale chunks, 0 elsewhere (one constant per chunk layout).
    fn scale_offsets(&mut self, chunks: &[Modulation]) -> String {
        let name = format!("adaLN.scale_offsets{}", chunks.len());
        if self.g.is_defined(&name) {
            return name;
        }
        let d = self.cfg.hidden_size as usize;
        let offsets: Vec<f32> = chunks
            .iter()
            .flat_map(|m| std::iter::repeat_n(if *m == Modulation::Scale { 1.0 } else { 0.0 }, d))
            .collect();
        self.g.floats(&name, &[offsets.len() as i64], &offsets)
    }

    /// `modulate(LayerNorm(x), shift, scale)` on the fp32 residual `x`, cast to the
    /// matrix-product type: a unit-scale LayerNormalization over the last axis (eps 1e-6, fp32
    /// statistics), then `·(1 + scale) + shift`. In the fused form the Scale chunk already is
    /// `1 + scale` ([`Self::adaln`]). Not LayerNormalization's own scale and bias inputs at
    /// [B, 1, D]: ONNX Runtime's CPU kernel rounds a row differently when B = 1 (its
    /// non-broadcast path) than in a larger batch, and rows must not depend on their batch.
    fn norm_modulate(&mut self, name: &str, x: &str, shift: &str, scale: &str) -> String {
        let ones = self.ones();
        let normed = self.g.node(
            &format!("{name}/norm"),
            "LayerNormalization",
            &[x, &ones],
            vec![
                ("axis", Attr::Int(-1)),
                ("epsilon", Attr::Float(LAYER_NORM_EPS as f32)),
                ("stash_type", Attr::Int(1)),
            ],
        );
        let one_plus_scale = match self.ops {
            Ops::Fused => scale.to_string(),
            Ops::Standard => {
                let one = self.g.scalar(1.0, Elem::F32);
                self.g.node(
                    &format!("{name}/modulate/one_plus_scale"),
                    "Add",
                    &[scale, &one],
                    vec![],
                )
            }
        };
        let scaled = self.g.node(
            &format!("{name}/modulate/scale"),
            "Mul",
            &[&normed, &one_plus_scale],
            vec![],
        );
        let modulated = self
            .g
            .node(&format!("{name}/modulate"), "Add", &[&scaled, shift], vec![]);
        self.cast_to(&format!("{name}/modulate/cast"), &modulated, Elem::F32, self.mm)
    }

    fn ones(&mut self) -> String {
        const NAME: &str = "layer_norm.unit_scale";
        if self.g.is_defined(NAME) {
            return NAME.to_string();
        }
        let d = self.cfg.hidden_size as usize;
        self.g.floats(NAME, &[d as i64], &vec![1.0; d])
    }

    /// Conv2d with stride P, flattened row-major to tokens [B, N, D], plus `pos_embed`.
    fn patch_embed(&mut self, x: &str, io: Elem) -> String {
        let p = self.cfg.patch_size as i64;
        let d = self.cfg.hidden_size as i64;
        let x = self.cast_to("x_embedder/cast", x, io, self.mm);
        let w = self.weight("x_embedder.proj.weight");
        let bias = self.weight("x_embedder.proj.bias");
        let conv = self.g.node(
            "x_embedder/proj",
            "Conv",
            &[&x, &w, &bias],
            vec![
                ("kernel_shape", Attr::Ints(vec![p, p])),
                ("strides", Attr::Ints(vec![p, p])),
            ],
        );
        let conv = self.cast_to("x_embedder/proj/cast", &conv, self.mm, Elem::F32);
        let shape = self.g.ints(&[0, d, -1]);
        let flat = self
            .g
            .node("x_embedder/flatten", "Reshape", &[&conv, &shape], vec![]);
        let tokens = self.g.node(
            "x_embedder/tokens",
            "Transpose",
            &[&flat],
            vec![("perm", Attr::Ints(vec![0, 2, 1]))],
        );
        let pos = self.weight("pos_embed");
        self.g.node("pos_embed/add", "Add", &[&tokens, &pos], vec![])
    }

    /// c = t_embedder(t) + d_embedder(k) + y_embedder[y].
    fn conditioning(&mut self, t: &str, k: &str, y: &str) -> String {
        let te = self.scalar_embedder("t_embedder", t);
        let de = self.scalar_embedder("d_embedder", k);
        let table = self.weight("y_embedder.embedding_table.weight");
        let ye = self
            .g
            .node("y_embedder", "Gather", &[&table, y], vec![("axis", Attr::Int(0))]);
        let td = self.g.node("c/t_plus_d", "Add", &[&te, &de], vec![]);
        self.g.node("c", "Add", &[&td, &ye], vec![])
    }

    /// Linear → SiLU → Linear over the 256-dim [cos, sin] embedding of a scalar.
    fn scalar_embedder(&mut self, name: &str, s: &str) -> String {
        const NAME: &str = "timestep.freqs";
        let freqs = if self.g.is_defined(NAME) {
            NAME.to_string()
        } else {
            let half = FREQUENCY_DIM / 2;
            let f: Vec<f32> = (0..half)
                .map(|j| (-(MAX_PERIOD.ln()) * j as f64 / half as f64).exp() as f32)
                .collect();
            self.g.floats(NAME, &[1, half as i64], &f)
        };
        let axes = self.g.ints(&[1]);
        let u = self
            .g
            .node(&format!("{name}/unsqueeze"), "Unsqueeze", &[s, &axes], vec![]);
        let args = self.g.node(&format!("{name}/args"), "Mul", &[&u, &freqs], vec![]);
        let cos = self.g.node(&format!("{name}/cos"), "Cos", &[&args], vec![]);
        let sin = self.g.node(&format!("{name}/sin"), "Sin", &[&args], vec![]);
        let emb = self.g.node(
            &format!("{name}/frequency_embedding"),
            "Concat",
            &[&cos, &sin],
            vec![("axis", Attr::Int(1))],
        );
        let h = self.gemm(&format!("{name}/mlp.0"), &emb, &format!("{name}.mlp.0"));
        let h = self.silu(&format!("{name}/mlp.1"), &h);
        self.gemm(&format!("{name}/mlp.2"), &h, &format!("{name}.mlp.2"))
    }

    /// One adaLN-Zero DiT block on the fp32 residual `x`; returns the block's output (fp32).
    fn block(&mut self, i: u32, x: &str, silu_cl: &str) -> String {
        let s = format!("blocks.{i}");
        let m = self.adaln(
            &format!("{s}/adaLN_modulation"),
            silu_cl,
            &format!("{s}.adaLN_modulation.1"),
            &BLOCK_MODULATION,
        );

        let h = self.norm_modulate(&format!("{s}/norm1"), x, &m[0], &m[1]);
        let a = self.attention(&s, &h);
        let a = self.cast_to(&format!("{s}/attn/cast"), &a, self.mm, Elem::F32);
        let a = self.g.node(&format!("{s}/gate1"), "Mul", &[&m[2], &a], vec![]);
        let x = self.g.node(&format!("{s}/residual1"), "Add", &[x, &a], vec![]);

        let h = self.norm_modulate(&format!("{s}/norm2"), &x, &m[3], &m[4]);
        let f = self.fc1_gelu(&format!("{s}/mlp"), &h, &format!("{s}.mlp.fc1"));
        let f = self.linear(&format!("{s}/mlp/fc2"), &f, &format!("{s}.mlp.fc2"));
        let f = self.cast_to(&format!("{s}/mlp/cast"), &f, self.mm, Elem::F32);
        let f = self.g.node(&format!("{s}/gate2"), "Mul", &[&m[5], &f], vec![]);
        self.g.node(&format!("{s}/residual2"), "Add", &[&x, &f], vec![])
    }

    /// `gelu_tanh(fc1(h))`: fused, the product then one FastGelu that adds the bias.
    fn fc1_gelu(&mut self, name: &str, h: &str, param: &str) -> String {
        match self.ops {
            Ops::Fused => {
                let (mm, bias) = self.matmul(&format!("{name}/fc1"), h, param);
                self.g
                    .contrib(&format!("{name}/gelu"), "FastGelu", &[&mm, &bias], vec![])
            }
            Ops::Standard => {
                let f = self.linear(&format!("{name}/fc1"), h, param);
                self.gelu_tanh(&format!("{name}/gelu"), &f)
            }
        }
    }

    /// Multi-head self-attention with fused qkv, in the matrix-product precision.
    fn attention(&mut self, s: &str, h: &str) -> String {
        let ctx = match self.ops {
            Ops::Fused => {
                let heads = self.cfg.num_heads as i64;
                let w = self.weight(&format!("{s}.attn.qkv.weight"));
                let bias = self.weight(&format!("{s}.attn.qkv.bias"));
                self.g.contrib(
                    &format!("{s}/attn/attention"),
                    "Attention",
                    &[h, &w, &bias],
                    vec![("num_heads", Attr::Int(heads))],
                )
            }
            Ops::Standard => self.attention_standard(s, h),
        };
        self.linear(&format!("{s}/attn/proj"), &ctx, &format!("{s}.attn.proj"))
    }

    /// Attention's context [B, N, D] from standard operators.
    fn attention_standard(&mut self, s: &str, h: &str) -> String {
        let heads = self.cfg.num_heads as i64;
        let d = self.cfg.hidden_size as i64;
        let dh = d / heads;
        let qkv = self.linear(&format!("{s}/attn/qkv"), h, &format!("{s}.attn.qkv"));
        let shape = self.g.ints(&[0, 0, 3, heads, dh]);
        let split = self.g.node(
            &format!("{s}/attn/split_heads"),
            "Reshape",
            &[&qkv, &shape],
            vec![],
        );
        let perm = self.g.node(
            &format!("{s}/attn/qkv_first"),
            "Transpose",
            &[&split],
            vec![("perm", Attr::Ints(vec![2, 0, 3, 1, 4]))],
        );
        let parts = self.g.node_n(
            &format!("{s}/attn/unbind"),
            "Split",
            &[&perm],
            3,
            vec![("axis", Attr::Int(0))],
        );
        let axes = self.g.ints(&[0]);
        let q = self
            .g
            .node(&format!("{s}/attn/q"), "Squeeze", &[&parts[0], &axes], vec![]);
        let k = self
            .g
            .node(&format!("{s}/attn/k"), "Squeeze", &[&parts[1], &axes], vec![]);
        let v = self
            .g
            .node(&format!("{s}/attn/v"), "Squeeze", &[&parts[2], &axes], vec![]);
        let scale = self.g.scalar(1.0 / (dh as f32).sqrt(), self.mm);
        let q = self
            .g
            .node(&format!("{s}/attn/q_scaled"), "Mul", &[&q, &scale], vec![]);
        let kt = self.g.node(
            &format!("{s}/attn/k_t"),
            "Transpose",
            &[&k],
            vec![("perm", Attr::Ints(vec![0, 1, 3, 2]))],
        );
        let scores = self
            .g
            .node(&format!("{s}/attn/scores"), "MatMul", &[&q, &kt], vec![]);
        let probs = self.g.node(
            &format!("{s}/attn/softmax"),
            "Softmax",
            &[&scores],
            vec![("axis", Attr::Int(-1))],
        );
        let ctx = self
            .g
            .node(&format!("{s}/attn/context"), "MatMul", &[&probs, &v], vec![]);
        let ctx = self.g.node(
            &format!("{s}/attn/merge_heads_t"),
            "Transpose",
            &[&ctx],
            vec![("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let shape = self.g.ints(&[0, 0, d]);
        self.g.node(
            &format!("{s}/attn/merge_heads"),
            "Reshape",
            &[&ctx, &shape],
            vec![],
        )
    }

    /// tanh-GELU as x·0.5·(1 + tanh(√(2/π)·x·(1 + 0.044715·x·x))): ONNX Runtime's
    /// FastGeluFusion (first formula) turns it into one FastGelu. Without a cube it also stays
    /// finite in fp16 for |x| up to ≈120 (x³ overflows at ≈40).
    fn gelu_tanh(&mut self, name: &str, x: &str) -> String {
        let c1 = self.g.scalar(0.044715, self.mm);
        let one = self.g.scalar(1.0, self.mm);
        let c2 = self.g.scalar((2.0 / std::f64::consts::PI).sqrt() as f32, self.mm);
        let half = self.g.scalar(0.5, self.mm);
        let a = self.g.node(&format!("{name}/mul_coef"), "Mul", &[x, &c1], vec![]);
        let a = self.g.node(&format!("{name}/mul_x"), "Mul", &[&a, x], vec![]);
        let a = self
            .g
            .node(&format!("{name}/add_one"), "Add", &[&a, &one], vec![]);
        let sx = self
            .g
            .node(&format!("{name}/mul_sqrt_2_pi"), "Mul", &[x, &c2], vec![]);
        let a = self.g.node(&format!("{name}/inner"), "Mul", &[&sx, &a], vec![]);
        let a = self.g.node(&format!("{name}/tanh"), "Tanh", &[&a], vec![]);
        let a = self
            .g
            .node(&format!("{name}/add_one_tanh"), "Add", &[&a, &one], vec![]);
        let hx = self.g.node(&format!("{name}/half_x"), "Mul", &[x, &half], vec![]);
        self.g.node(name, "Mul", &[&hx, &a], vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_types_and_layouts() {
        assert_eq!(storage("blocks.3.attn.qkv.weight", true), (Elem::F16, true));
        assert_eq!(storage("blocks.3.attn.qkv.bias", true), (Elem::F16, false));
        assert_eq!(storage("blocks.3.mlp.fc2.weight", false), (Elem::F32, true));
        assert_eq!(storage("final_layer.linear.weight", true), (Elem::F16, true));
        assert_eq!(storage("x_embedder.proj.weight", true), (Elem::F16, false));
        assert_eq!(
            storage("blocks.3.adaLN_modulation.1.weight", true),
            (Elem::F32, false)
        );
        assert_eq!(
            storage("final_layer.adaLN_modulation.1.weight", true),
            (Elem::F32, false)
        );
        assert_eq!(storage("t_embedder.mlp.0.weight", true), (Elem::F32, false));
        assert_eq!(storage("pos_embed", true), (Elem::F32, false));
    }
}
