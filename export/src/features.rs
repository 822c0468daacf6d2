//! The feature network `odelt eval` measures sample quality with (Fréchet distance, precision
//! and recall in its feature space, as FID does with InceptionV3's pool3): 3×3 convolutions
//! with ReLU (batch norm folded in), 2×2 max-pooling after some of them, then one dense layer
//! with ReLU whose output is the feature vector. Small, so its weights live inline in one file.

use std::path::Path;

use protobuf::Message;

use crate::elem::Elem;
use crate::error::{Error, Result};
use crate::graph::{Attr, Dim, GraphBuilder};

/// One 3×3 convolution (padding 1): weight [out, in, 3, 3] and bias [out], row-major f32,
/// followed by ReLU and, if `pool_after`, a 2×2 max-pool of stride 2.
#[derive(Debug, Clone)]
pub struct Conv3x3 {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub pool_after: bool,
}

/// A dense layer on the flattened activations: weight [outputs, inputs] and bias [outputs].
#[derive(Debug, Clone)]
pub struct Dense {
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

/// Input `images` f32 [batch, C, H, W] in [-1, 1]; output `features` f32 [batch, F, 1, 1], F
/// being `dense.outputs`.
pub fn write_feature_net(
    convs: &[Conv3x3],
    dense: &Dense,
    image_shape: [usize; 3],
    path: &Path,
) -> Result<()> {
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
        if conv.pool_after {
            let attrs = vec![
                ("kernel_shape", Attr::Ints(vec![2, 2])),
                ("strides", Attr::Ints(vec![2, 2])),
            ];
            x = g.node(&format!("convs.{i}/pool"), "MaxPool", &[&x], attrs);
        }
    }
    let flat = g.node("flatten", "Flatten", &[&x], vec![("axis", Attr::Int(1))]);
    let dims = [dense.outputs as i64, dense.inputs as i64];
    let weight = g.floats("dense.weight", &dims, &dense.weight);
    let bias = g.floats("dense.bias", &[dims[0]], &dense.bias);
    let y = g.node(
        "dense/gemm",
        "Gemm",
        &[&flat, &weight, &bias],
        vec![("transB", Attr::Int(1))],
    );
    let features = g.node("dense/relu", "Relu", &[&y], vec![]);
    // [batch, F, 1, 1]: the images-in, images-out form odelt's decoders share (§6).
    let axes = g.ints(&[2, 3]);
    g.node_to("unsqueeze", "Unsqueeze", &[&features, &axes], "features", vec![]);
    let one = Dim::Fixed(1);
    g.output(
        "features",
        Elem::F32,
        &[batch, Dim::Fixed(dims[0]), one.clone(), one],
    );
    let model = g.finish("odelt_features", "odelt eval feature network", &[])?;
    let bytes = model
        .write_to_bytes()
        .map_err(|e| Error::Internal(format!("cannot serialise the feature network: {e}")))?;
    Ok(odelt_format::atomic::write_atomic(path, &bytes)?)
}
