//! Sample quality: a feature network trained on the data (tch, exported to ONNX) and the
//! Fréchet distance between generated and held-out images in its feature space.

mod classifier;
mod frechet;

pub use classifier::{train_feature_net, FeatureNet};
pub use frechet::{frechet_distance, FeatureStats};
