//! `weights.bin`: every tensor once, each at an offset aligned to 64 KiB, referenced by all
//! graphs as ONNX external data.
//!
//! ONNX Runtime maps external data whose offset is a multiple of the allocation granularity
//! (64 KiB covers Windows; Linux pages are smaller) instead of copying it, so sessions for
//! several lengths share the same physical pages. Padding between tensors is left as a hole
//! (the file is seeked, not zero-filled), so it costs no disk blocks where the file system
//! supports sparse files.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::elem::Elem;
use crate::error::{Error, Result};

/// Alignment of every tensor's offset in `weights.bin`.
pub const ALIGNMENT: u64 = 64 * 1024;

/// A tensor written to the weights file.
#[derive(Debug, Clone)]
pub struct StoredTensor {
    pub name: String,
    pub elem: Elem,
    /// Dimensions as stored (a Linear weight used by MatMul is stored transposed, [in, out]).
    pub dims: Vec<i64>,
    pub offset: u64,
    pub length: u64,
    /// How the stored tensor relates to the checkpoint tensor of the same name.
    pub doc: String,
}

pub struct WeightsWriter {
    path: PathBuf,
    file: BufWriter<File>,
    /// End of the last tensor written.
    end: u64,
    tensors: HashMap<String, StoredTensor>,
}

impl WeightsWriter {
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::write(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file: BufWriter::new(file),
            end: 0,
            tensors: HashMap::new(),
        })
    }

    /// Appends a tensor at the next aligned offset. `values` are converted to `elem`.
    pub fn add(&mut self, name: &str, elem: Elem, dims: &[i64], values: &[f32], doc: &str) -> Result<()> {
        if self.tensors.contains_key(name) {
            return Err(Error::Internal(format!("tensor {name} stored twice")));
        }
        if dims.iter().product::<i64>() as usize != values.len() {
            return Err(Error::Internal(format!(
                "{name}: dims {dims:?} hold {} values",
                values.len()
            )));
        }
        let offset = self.end.div_ceil(ALIGNMENT) * ALIGNMENT;
        let bytes = encode(values, elem)?;
        let io = |e| Error::write(&self.path, e);
        if offset != self.end {
            self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        }
        self.file.write_all(&bytes).map_err(io)?;
        self.end = offset + bytes.len() as u64;
        self.tensors.insert(
            name.to_string(),
            StoredTensor {
                name: name.to_string(),
                elem,
                dims: dims.to_vec(),
                offset,
                length: bytes.len() as u64,
                doc: doc.to_string(),
            },
        );
        Ok(())
    }

    /// Flushes the file and returns the stored tensors by name and the file's size.
    pub fn finish(mut self) -> Result<(HashMap<String, StoredTensor>, u64)> {
        let io = |e| Error::write(&self.path, e);
        self.file.flush().map_err(io)?;
        let file = self
            .file
            .into_inner()
            .map_err(|e| Error::write(&self.path, e.into_error()))?;
        // A trailing seek without a write would not extend the file; set its length exactly.
        file.set_len(self.end).map_err(|e| Error::write(&self.path, e))?;
        file.sync_all().map_err(|e| Error::write(&self.path, e))?;
        Ok((self.tensors, self.end))
    }
}

/// Little-endian bytes of `values` as `elem` (bulk copies where possible: debug builds check
/// every element access, and DiT-XL has 675M values).
fn encode(values: &[f32], elem: Elem) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(values.len() * elem.size());
    match elem {
        Elem::F32 if cfg!(target_endian = "little") => bytes.extend_from_slice(bytemuck::cast_slice(values)),
        Elem::F32 => {
            for v in values {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        Elem::F16 => {
            for v in values {
                bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
            }
        }
        Elem::I64 => return Err(Error::Internal("weights are floating point, not int64".into())),
    }
    Ok(bytes)
}

/// Feeds the byte ranges `(offset, length)` of `path` into `sink`, in order.
pub fn read_ranges(path: &Path, ranges: &[(u64, u64)], mut sink: impl FnMut(&[u8])) -> Result<()> {
    let io = |e| Error::read(path, e);
    let mut file = File::open(path).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    for &(offset, length) in ranges {
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut left = length;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            file.read_exact(&mut buf[..n]).map_err(io)?;
            sink(&buf[..n]);
            left -= n as u64;
        }
    }
    Ok(())
}
