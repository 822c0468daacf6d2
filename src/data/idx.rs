//! Fashion-MNIST's IDX files (gzip): big-endian magic, dimension sizes, then u8 data.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};

use super::{from_bytes, Dataset, Split};
use crate::bad_input;

pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<Dataset> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let (image_dims, pixels) = read_idx(&dir.join(format!("{prefix}-images-idx3-ubyte.gz")))?;
    let (label_dims, labels) = read_idx(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")))?;
    if image_dims.len() != 3 || label_dims.len() != 1 || image_dims[0] != label_dims[0] {
        return Err(bad_input!(
            "{}: image dims {image_dims:?} and label dims {label_dims:?} do not match",
            dir.display()
        ));
    }
    Ok(Dataset {
        images: from_bytes(&pixels),
        shape: [image_dims[0], 1, image_dims[1], image_dims[2]],
        labels: labels.iter().map(|&l| l as i64).collect(),
    })
}

/// Returns the dimension sizes and the u8 payload of a gzipped IDX file.
fn read_idx(path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let file = std::fs::File::open(path).map_err(|e| {
        bad_input!(
            "cannot read {}: {e}; install Fashion-MNIST with scripts/setup.sh (Debian package \
             dataset-fashion-mnist) or set ODELT_FASHION_MNIST to its folder",
            path.display()
        )
    })?;
    let mut gz = Vec::new();
    std::io::BufReader::new(file)
        .read_to_end(&mut gz)
        .map_err(|e| bad_input!("cannot read {}: {e}", path.display()))?;
    parse_gz(&gz, path)
}

/// The dimension sizes and u8 payload of gzipped IDX bytes read from `path`.
pub fn parse_gz(gz: &[u8], path: &Path) -> Result<(Vec<usize>, Vec<u8>)> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .map_err(|e| bad_input!("{}: not a readable gzip IDX file: {e}", path.display()))?;
    parse_idx(&bytes).with_context(|| format!("{}: corrupt IDX file", path.display()))
}

fn parse_idx(bytes: &[u8]) -> Result<(Vec<usize>, Vec<u8>)> {
    let corrupt = || bad_input!("truncated or not an unsigned-byte IDX file");
    let header = bytes.get(..4).ok_or_else(corrupt)?;
    if header[..3] != [0, 0, 0x08] {
        return Err(corrupt());
    }
    let ndim = header[3] as usize;
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let b = bytes.get(4 + 4 * i..8 + 4 * i).ok_or_else(corrupt)?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        })
        .collect::<Result<_>>()?;
    let data = &bytes[4 + 4 * ndim..];
    // Sizes from the header may multiply past usize: a corrupt file, not an overflow.
    let expected = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if expected != Some(data.len()) {
        return Err(corrupt());
    }
    Ok((dims, data.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes_that_overflow_are_a_corrupt_file() {
        // Three dimensions of 2^32 − 1: their product wraps a 64-bit usize.
        let mut bytes = vec![0, 0, 0x08, 3];
        for _ in 0..3 {
            bytes.extend(u32::MAX.to_be_bytes());
        }
        bytes.extend([1, 2, 3]);
        let err = parse_idx(&bytes).expect_err("corrupt");
        assert!(err.to_string().contains("IDX"), "{err}");
    }

    #[test]
    fn a_small_file_parses() {
        let mut bytes = vec![0, 0, 0x08, 2];
        for d in [2u32, 3] {
            bytes.extend(d.to_be_bytes());
        }
        bytes.extend(0..6u8);
        assert_eq!(parse_idx(&bytes).expect("valid"), (vec![2, 3], (0..6).collect()));
    }
}
