//! The feature network `odelt eval` measures sample quality with (Fréchet distance in its
//! feature space, as FID does with InceptionV3): 3×3 convolutions with ReLU, 2×2 max-pooling
//! between them, global average pooling. Small, so its weights live inline in one file.

use std::path::Path;

use protobuf::Message;

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::graph::{Attr, Dim, GraphBuilder};

/// One 3×3 convolution (padding 1): weight [out, in, 3, 3] and bias [out], row-major f32.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_channels: usize,
    pub out_channels: usize,
}

/// Input `images` f32 [batch, C, H, W] in [-1, 1]; output `features` f32 [batch, F, 1, 1].
pub fn write_feature_net(convs: &[Conv3x3], image_shape: [usize; 3], path: &Path) -> Result<()> {
    let [c, h, w] = image_shape.map(|d| d as i64);
    let mut g = GraphBuilder::new("");
    let batch = Dim::Symbolic("batch");
    let mut x = g.input(
        "images",
        Elem::F32,
        &[batch.clone(), Dim::Fixed(c), Dim::Fixed(h), Dim::Fixed(w)],
    );
    for (i, conv) in convs.iter().enumerate() {
        let dims = [conv.out_channels as i64, conv.in_channels as i64, 3, 3];
        let weight = g.floats(&format!("convs.{i}.weight"), &dims, &conv.weight);
        let bias = g.floats(&format!("convs.{i}.bias"), &[dims[0]], &conv.bias);
        let attrs = vec![
            ("kernel_shape", Attr::Ints(vec![3, 3])),
            ("pads", Attr::Ints(vec![1, 1, 1, 1])),
        ];
        let y = g.node(&format!("convs.{i}/conv"), "Conv", &[&x, &weight, &bias], attrs);
        x = g.node(&format!("convs.{i}/relu"), "Relu", &[&y], vec![]);
        if i + 1 < convs.len() {
            let attrs = vec![
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("strides", Attr::Ints(vec![2, 2])),
            ];
            x = g.node(&format!("convs.{i}/pool"), "MaxPool", &[&x], attrs);
        }
    }
    g.node_to("pool", "GlobalAveragePool", &[&x], "features", vec![]);
    let features = convs.last().map_or(c, |conv| conv.out_channels as i64);
    g.output(
        "features",
        Elem::F32,
        &[batch, Dim::Fixed(features), Dim::Fixed(1), Dim::Fixed(1)],
    );
    let model = g.finish("odelt_features", "odelt eval feature network", &[])?;
    let bytes = model
        .write_to_bytes()
        .map_err(|e| Error::Internal(format!("cannot serialise the feature network: {e}")))?;
    Ok(odelt_format::atomic::write_atomic(path, &bytes)?)
}
