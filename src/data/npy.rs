//! NumPy `.npy` arrays, the one home of the format in odelt: a dataset given as float32
//! [N, C, H, W] in [-1, 1] (e.g. VAE latents) with optional int64 labels [N] (all zero when
//! absent); `odelt sample`'s `--noise` and `--labels`; and the samples `odelt sample --npy`
//! writes and `odelt serve` answers with (the same bytes for the same samples).

use std::path::Path;

use anyhow::{Context, Result};
use ndarray::{Array1, Array4};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use super::Dataset;
use crate::bad_input;

pub fn load(images: &Path, labels: Option<&Path>) -> Result<Dataset> {
    let label_bytes = labels.map(read).transpose()?;
    parse(&read(images)?, images, label_bytes.as_deref().zip(labels))
}

/// The bytes of the file at `path`.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| bad_input!("cannot read {}: {e}", path.display()))
}

/// float32 [N, C, H, W] `.npy` bytes read from `path`: the values, row-major, and the shape.
pub fn images(bytes: &[u8], path: &Path) -> Result<(Vec<f32>, [usize; 4])> {
    let array = Array4::<f32>::read_npy(bytes).map_err(|e| {
        bad_input!(
            "{}: expected a float32 [N, C, H, W] .npy array: {e}",
            path.display()
        )
    })?;
    let (n, c, h, w) = array.dim();
    Ok((array.iter().copied().collect(), [n, c, h, w]))
}

/// int64 [N] `.npy` bytes read from `path`.
pub fn labels(bytes: &[u8], path: &Path) -> Result<Vec<i64>> {
    let array = Array1::<i64>::read_npy(bytes)
        .map_err(|e| bad_input!("{}: expected an int64 [N] .npy array: {e}", path.display()))?;
    Ok(array.to_vec())
}

/// The dataset in `.npy` bytes: images read from `images_path`, labels (bytes and path) if
/// given.
pub fn parse(
    images_bytes: &[u8],
    images_path: &Path,
    labels_given: Option<(&[u8], &Path)>,
) -> Result<Dataset> {
    let (images, shape) = images(images_bytes, images_path)?;
    let n = shape[0];
    let labels = match labels_given {
        Some((bytes, path)) => {
            let y = labels(bytes, path)?;
            if y.len() != n {
                return Err(bad_input!(
                    "{}: {} labels for {n} images",
                    path.display(),
                    y.len()
                ));
            }
            y
        }
        None => vec![0; n],
    };
    Ok(Dataset {
        images,
        shape,
        labels,
    })
}

/// float32 `.npy` bytes of samples `data`, row-major with `shape` [N, C, H, W].
pub fn samples(data: &[f32], shape: [usize; 4]) -> Result<Vec<u8>> {
    let array = Array4::from_shape_vec(shape, data.to_vec()).context("samples have the wrong length")?;
    let mut bytes = Vec::new();
    array.write_npy(&mut bytes).context("encoding .npy")?;
    Ok(bytes)
}
