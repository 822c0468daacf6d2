//! Reading a checkpoint folder without libtorch: `config.json` and `model.safetensors`, strictly
//! (every tensor of docs/DESIGN.md §3 present with its shape, finite values).

use std::collections::HashMap;
use std::path::Path;

use odelt_format::checkpoint::MODEL_FILE as WEIGHTS_FILE;
use odelt_format::tensors::expected_tensors;
use odelt_format::CheckpointMeta;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A checkpoint tensor as f32, row-major, PyTorch layout.
#[derive(Debug, Clone)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A loaded checkpoint: its metadata and every expected tensor as f32.
pub struct Checkpoint {
    pub meta: CheckpointMeta,
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Reads `DIR/config.json` and `DIR/model.safetensors` (f32, f16 or bf16 tensors).
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "checkpoint folder {} does not exist (expected config.json and {WEIGHTS_FILE} in it)",
                dir.display()
            )));
        }
        let meta = CheckpointMeta::read(dir)?;
        let path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|source| Error::ReadCheckpoint {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(meta, &bytes, &path)
    }

    /// The checkpoint whose metadata is `meta` and whose `model.safetensors`, read from
    /// `path`, holds `bytes`: every expected tensor present, with its shape, finite.
    pub fn parse(meta: CheckpointMeta, bytes: &[u8], path: &Path) -> Result<Self> {
        let shown = path.display().to_string();
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::CorruptCheckpoint {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let mut tensors = HashMap::new();
        for (name, shape) in expected_tensors(&meta.model) {
            let view = st.tensor(&name).map_err(|_| Error::MissingTensor {
                path: shown.clone(),
                name: name.clone(),
                shape: shape.clone(),
            })?;
            if view.shape() != shape.as_slice() {
                return Err(Error::TensorShape {
                    path: shown.clone(),
                    name,
                    expected: shape,
                    found: view.shape().to_vec(),
                });
            }
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                // One bulk copy (the bytes need not be 4-aligned) instead of a conversion per
                // element, which debug builds make slow.
                Dtype::F32 if cfg!(target_endian = "little") => bytemuck::pod_collect_to_vec(raw),
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                    .collect(),
                other => {
                    return Err(Error::TensorDtype {
                        path: shown.clone(),
                        name,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            if let Some(bad) = data.iter().find(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    path: shown.clone(),
                    name,
                    value: *bad,
                });
            }
            tensors.insert(name, Tensor { shape, data });
        }
        let unknown: Vec<&str> = st
            .names()
            .into_iter()
            .filter(|n| !tensors.contains_key(*n))
            .collect();
        if !unknown.is_empty() {
            tracing::warn!(
                "{shown}: ignoring {} tensors the model does not use: {}",
                unknown.len(),
                unknown.join(", ")
            );
        }
        Ok(Self { meta, tensors })
    }

    /// A tensor `load` checked; any other name is an error naming it.
    pub fn get(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::Internal(format!("{name} is not among the checked tensors")))
    }
}

/// `[out, in]` → `[in, out]`.
pub fn transpose(t: &Tensor) -> Vec<f32> {
    let (rows, cols) = (t.shape[0], t.shape[1]);
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = t.data[r * cols + c];
        }
    }
    out
}
