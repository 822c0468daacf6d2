//! NumPy `.npy` bytes of samples: what `odelt sample --npy` writes and `odelt serve` answers
//! with `format: "npy"`, so both give the same bytes for the same samples.

use anyhow::Context;
use ndarray::Array4;

/// float32 `.npy` of `data`, row-major with `shape` [N, C, H, W].
pub fn samples(data: &[f32], shape: [usize; 4]) -> anyhow::Result<Vec<u8>> {
    let array = Array4::from_shape_vec(shape, data.to_vec()).context("samples have the wrong length")?;
    let mut bytes = Vec::new();
    ndarray_npy::WriteNpyExt::write_npy(&array, &mut bytes).context("encoding .npy")?;
    Ok(bytes)
}
