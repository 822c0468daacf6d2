//! The ODE_t(ODE_l) DiT in tch, exactly docs/DESIGN.md §3. Tensor paths match its names
//! (and facebookresearch/DiT), so checkpoints, ONNX initializers and DiT weights line up.

mod block;
mod dit;
mod embed;
mod init;

pub use block::{DitBlock, FinalLayer};
pub use dit::{Dit, Lengths};
pub use embed::{sincos_pos_embed, timestep_embedding, EmbeddingTable, PatchEmbedder, ScalarEmbedder};
pub use init::xavier_uniform;
