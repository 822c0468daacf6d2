//! The ODE_t(ODE_l) DiT: the blocks form an inner Euler ODE over depth (one step per group of
//! G blocks), so any prefix of groups gives a velocity v_θ(l, k, t, x, y).

use odelt_runtime::ModelConfig;
use tch::{nn, Kind, Tensor};

use super::block::{DitBlock, FinalLayer};
use super::embed::{sincos_pos_embed, EmbeddingTable, PatchEmbedder, ScalarEmbedder};

#[derive(Debug)]
pub struct Dit {
    config: ModelConfig,
    x_embedder: PatchEmbedder,
    pos_embed: Tensor,
    t_embedder: ScalarEmbedder,
    d_embedder: ScalarEmbedder,
    y_embedder: EmbeddingTable,
    l_embedder: EmbeddingTable,
    blocks: Vec<DitBlock>,
    final_layer: FinalLayer,
}

/// Active blocks: one length for the whole batch, or one per sample (training mixes lengths).
#[derive(Debug, Clone, Copy)]
pub enum Lengths<'a> {
    Uniform(u32),
    PerSample(&'a Tensor),
}

impl Dit {
    /// Creates the variables under `vs` with DiT's initialisation; `pos_embed` is not trained.
    pub fn new(vs: &nn::Path, config: &ModelConfig) -> Self {
        let d = config.hidden_size as usize;
        let side = (config.input_size / config.patch_size) as usize;
        let patch = config.patch_size as usize;
        let pos_embed = vs.add(
            "pos_embed",
            sincos_pos_embed(d, side).to_device(vs.device()),
            false,
        );
        let blocks = (0..config.depth as usize)
            .map(|i| {
                DitBlock::new(
                    vs / "blocks" / i,
                    d,
                    config.num_heads as usize,
                    config.mlp_hidden(),
                )
            })
            .collect();
        Self {
            config: config.clone(),
            x_embedder: PatchEmbedder::new(vs / "x_embedder", config.in_channels as usize, d, patch),
            pos_embed,
            t_embedder: ScalarEmbedder::new(vs / "t_embedder", d),
            d_embedder: ScalarEmbedder::new(vs / "d_embedder", d),
            y_embedder: EmbeddingTable::new(vs / "y_embedder", config.num_classes as usize + 1, d),
            l_embedder: EmbeddingTable::new(vs / "l_embedder", config.depth as usize + 1, d),
            blocks,
            final_layer: FinalLayer::new(vs / "final_layer", d, patch * patch * config.in_channels as usize),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// v_θ(l, k, t, x, y): x [B, C, H, W] f32, t and k [B] f32, y [B] i64 → [B, C, H, W].
    pub fn forward(&self, x: &Tensor, t: &Tensor, k: &Tensor, y: &Tensor, lengths: Lengths) -> Tensor {
        let batch = x.size()[0];
        let h = self.x_embedder.forward(x) + &self.pos_embed;
        let c = self.t_embedder.forward(t) + self.d_embedder.forward(k) + self.y_embedder.forward(y);
        let (length_index, depth, mask) = match lengths {
            Lengths::Uniform(l) => (
                Tensor::full([batch], l as i64, (Kind::Int64, x.device())),
                l,
                None,
            ),
            Lengths::PerSample(ls) => (ls.shallow_clone(), ls.max().int64_value(&[]) as u32, Some(ls)),
        };
        let c_l = &c + self.l_embedder.forward(&length_index);
        let group = self.config.group_size as usize;
        let mut r = h;
        let mut v = Tensor::zeros_like(&r);
        for (i, block) in self.blocks.iter().take(depth as usize).enumerate() {
            let b = block.forward(&r, &c_l);
            if (i + 1) % group == 0 {
                // Samples shorter than this group stop integrating; their v is final.
                v = match mask {
                    Some(ls) => v + &b * ls.gt(i as i64).to_kind(Kind::Float).view([batch, 1, 1]),
                    None => v + &b,
                };
                // Out of place: the blocks' LayerNorm saved r for the backward pass.
                r = &r + b;
            } else {
                r = b;
            }
        }
        self.unpatchify(&self.final_layer.forward(&v, &c))
    }

    /// [B, N, P·P·C] → [B, C, H, W] as DiT does (patch-major rows, channel last inside a patch).
    fn unpatchify(&self, tokens: &Tensor) -> Tensor {
        let (p, c) = (self.config.patch_size as i64, self.config.in_channels as i64);
        let side = (self.config.input_size / self.config.patch_size) as i64;
        let batch = tokens.size()[0];
        tokens
            .view([batch, side, side, p, p, c])
            .permute([0, 5, 1, 3, 2, 4])
            .reshape([batch, c, side * p, side * p])
    }
}
