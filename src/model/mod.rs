//! The ODE_t(ODE_l) DiT in tch, exactly DESIGN §3. Tensor paths match the DESIGN names
//! (and facebookresearch/DiT), so checkpoints, ONNX initializers and DiT weights line up.

mod block;
mod dit;
mod embed;
mod init;

pub use block::{DitBlock, FinalLayer};
pub use dit::{Dit, Lengths};
pub use embed::{sincos_pos_embed, timestep_embedding, EmbeddingTable, PatchEmbedder, ScalarEmbedder};
