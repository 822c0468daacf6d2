//! Latent models: a user-supplied ONNX decoder turns sampled latents into images.
//!
//! The decoder graph has one float input, the latents [N, C, H, W], and one float output, the
//! images [N, C', H', W'] in [-1, 1] (an SD-VAE decoder exported with its latent scaling folded
//! in, for example). Runs on the same execution provider and threads as the engines.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef};

use crate::error::{invalid, Error, Result};
use crate::options::RuntimeOptions;
use crate::{ortlib, session};

/// An opened decoder graph. `Send + Sync`; calls are serialised on one session.
pub struct Decoder {
    path: PathBuf,
    input: String,
    output: String,
    max_batch: usize,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("path", &self.path).finish()
    }
}

/// Decoded images, row-major.
#[derive(Debug, Clone)]
pub struct Images {
    pub data: Vec<f32>,
    /// [N, C', H', W'].
    pub shape: [usize; 4],
}

impl Decoder {
    /// Opens `path` with the options' library, threads and provider (`max_batch` chunks too).
    pub fn open(path: impl AsRef<Path>, options: &RuntimeOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "decoder {} does not exist",
                path.display()
            )));
        }
        let env = ortlib::environment(options.ort_library.as_deref())?;
        let bad = |message: String| Error::Model {
            path: path.display().to_string(),
            message,
        };
        let session = session::builder(&env, &options.session(true))?
            .commit_from_file(&path)
            .map_err(|e| bad(format!("ONNX Runtime cannot load this decoder: {e}")))?;
        let (inputs, outputs) = (session.inputs(), session.outputs());
        if inputs.len() != 1 || outputs.is_empty() {
            return Err(bad(format!(
                "a decoder needs one input (the latents) and one output (the images); it has {} and {}",
                inputs.len(),
                outputs.len()
            )));
        }
        for (what, outlet) in [("input", &inputs[0]), ("output", &outputs[0])] {
            let ty = outlet.dtype();
            if ty.tensor_type() != Some(TensorElementType::Float32)
                || ty.tensor_shape().is_some_and(|s| s.len() != 4)
            {
                return Err(bad(format!(
                    "decoder {what} '{}' must be a float32 tensor of rank 4",
                    outlet.name()
                )));
            }
        }
        Ok(Self {
            input: inputs[0].name().to_string(),
            output: outputs[0].name().to_string(),
            path,
            max_batch: options.max_batch,
            session: Mutex::new(session),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decodes `latents` of shape [N, C, H, W] (chunked by the options' `max_batch`).
    pub fn decode(&self, latents: &[f32], shape: [usize; 4]) -> Result<Images> {
        let [n, c, h, w] = shape;
        let numel = c * h * w;
        if n == 0 || latents.len() != n * numel {
            return invalid!(
                "decoder input has {} floats, expected {n}×{c}×{h}×{w}",
                latents.len()
            );
        }
        let chunk = if self.max_batch == 0 {
            n
        } else {
            self.max_batch.min(n)
        };
        let backend = |e: ort::Error| Error::Backend(format!("decoder {}: {e}", self.path.display()));
        let mut session = self
            .session
            .lock()
            .map_err(|_| Error::Internal("decoder lock poisoned".into()))?;
        let mut data = Vec::new();
        let mut out_shape = [n, 0, 0, 0];
        for part in latents.chunks(chunk * numel) {
            let b = part.len() / numel;
            let input = TensorRef::from_array_view(([b, c, h, w], part)).map_err(backend)?;
            let outputs = session
                .run(ort::inputs![self.input.as_str() => input])
                .map_err(backend)?;
            let value = outputs
                .get(&self.output)
                .ok_or_else(|| Error::Backend(format!("decoder: no output '{}'", self.output)))?;
            let (s, values) = value.try_extract_tensor::<f32>().map_err(backend)?;
            if s.len() != 4 || s[0] != b as i64 {
                return Err(Error::Backend(format!(
                    "decoder output has shape {:?}, expected [{b}, C, H, W]",
                    &s[..]
                )));
            }
            let dims = [s[1] as usize, s[2] as usize, s[3] as usize];
            if out_shape[1] == 0 {
                out_shape[1..].copy_from_slice(&dims);
            } else if out_shape[1..] != dims {
                return Err(Error::Backend(
                    "decoder output shape changed between batches".into(),
                ));
            }
            data.extend_from_slice(values);
        }
        if let Some(v) = data.iter().find(|v| !v.is_finite()) {
            return Err(Error::Numerical(format!(
                "decoder {} produced {v}",
                self.path.display()
            )));
        }
        Ok(Images {
            data,
            shape: out_shape,
        })
    }
}
