//! A dataset given as NumPy arrays: float32 [N, C, H, W] in [-1, 1] (e.g. VAE latents) and
//! optional int64 labels [N] (all zero when absent).

use std::path::Path;

use anyhow::Result;
use ndarray::{Array1, Array4};
use ndarray_npy::ReadNpyExt;

use super::Dataset;
use crate::bad_input;

pub fn load(images: &Path, labels: Option<&Path>) -> Result<Dataset> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| bad_input!("cannot read {}: {e}", path.display()));
    let label_bytes = labels.map(read).transpose()?;
    parse(&read(images)?, images, label_bytes.as_deref().zip(labels))
}

/// The dataset in `.npy` bytes: images read from `images_path`, labels (bytes and path) if
/// given.
pub fn parse(images: &[u8], images_path: &Path, labels: Option<(&[u8], &Path)>) -> Result<Dataset> {
    let array = Array4::<f32>::read_npy(images).map_err(|e| {
        bad_input!(
            "{}: expected a float32 [N, C, H, W] .npy array: {e}",
            images_path.display()
        )
    })?;
    let shape = array.dim();
    let n = shape.0;
    let labels = match labels {
        Some((bytes, path)) => {
            let y = Array1::<i64>::read_npy(bytes)
                .map_err(|e| bad_input!("{}: expected an int64 [N] .npy array: {e}", path.display()))?;
            if y.len() != n {
                return Err(bad_input!(
                    "{}: {} labels for {n} images",
                    path.display(),
                    y.len()
                ));
            }
            y.to_vec()
        }
        None => vec![0; n],
    };
    Ok(Dataset {
        images: array.iter().copied().collect(),
        shape: [shape.0, shape.1, shape.2, shape.3],
        labels,
    })
}
