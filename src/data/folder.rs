//! An image folder: one subfolder per class (sorted by name → label 0, 1, …), each image
//! resized to cover the model's size and centre-cropped, as torchvision's Resize + CenterCrop.

use std::path::{Path, PathBuf};

use anyhow::Result;
use image::imageops::FilterType;
use odelt_format::ModelConfig;

use super::{from_bytes, Dataset};
use crate::bad_input;

pub fn load(dir: &Path, config: &ModelConfig) -> Result<Dataset> {
    let classes = sorted_entries(dir, |p| p.is_dir())?;
    if classes.is_empty() {
        return Err(bad_input!(
            "{}: no class subfolders (expected DIR/<class>/<image>)",
            dir.display()
        ));
    }
    let side = config.input_size;
    let channels = config.in_channels;
    if channels != 1 && channels != 3 {
        return Err(bad_input!(
            "image folders need a model with 1 or 3 channels, not {channels}"
        ));
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        for file in sorted_entries(class, |p| p.is_file())? {
            let bytes =
                std::fs::read(&file).map_err(|e| bad_input!("cannot read {}: {e}", file.display()))?;
            pixels.extend(decode_image(&bytes, &file, side, channels)?);
            labels.push(label as i64);
        }
    }
    let (side, channels) = (side as usize, channels as usize);
    Ok(Dataset {
        images: from_bytes(&pixels),
        shape: [labels.len(), channels, side, side],
        labels,
    })
}

/// An encoded image (read from `path`) resized to cover `side` × `side` and centre-cropped, as
/// u8 [channels, side, side] (1 = grey, 3 = RGB).
pub fn decode_image(bytes: &[u8], path: &Path, side: u32, channels: u32) -> Result<Vec<u8>> {
    let bad = |e: image::ImageError| bad_input!("{}: not a readable image: {e}", path.display());
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad_input!("{}: not a readable image: {e}", path.display()))?;
    // A small file may claim an enormous image: refuse it before allocating.
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(bad)?
        .resize_to_fill(side, side, FilterType::Triangle);
    Ok(if channels == 1 {
        img.to_luma8().into_raw()
    } else {
        // HWC → CHW.
        let rgb = img.to_rgb8().into_raw();
        (0..3)
            .flat_map(|c| rgb.iter().skip(c).step_by(3).copied().collect::<Vec<_>>())
            .collect()
    })
}

/// Largest width or height of an image in a folder dataset.
const MAX_SIDE: u32 = 16384;

fn sorted_entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    let read = std::fs::read_dir(dir).map_err(|e| bad_input!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| keep(p))
        .collect();
    paths.sort();
    Ok(paths)
}
