//! [`LengthEngine`]: what the sampler and `odelt serve` call for one length, wherever the
//! graph runs — an ONNX Runtime session pool here ([`crate::Engine`]) or a model on an
//! inference server ([`crate::remote::RemoteEngine`]).

use std::time::Duration;

use crate::engine::Engine;
use crate::error::Result;

/// One exported length: `v = model(x, t, k, y)` on a batch. Shared between threads.
pub trait LengthEngine: Send + Sync + std::fmt::Debug {
    fn length(&self) -> u32;

    /// Floats per image C·H·W.
    fn image_numel(&self) -> usize;

    /// Runs one batch (`t.len()` rows, no chunking) and writes `v` into `out`; returns the
    /// time of the call.
    fn run(&self, x: &[f32], t: &[f32], k: &[f32], y: &[i64], out: &mut [f32]) -> Result<Duration>;
}

impl LengthEngine for Engine {
    fn length(&self) -> u32 {
        Engine::length(self)
    }

    fn image_numel(&self) -> usize {
        Engine::image_numel(self)
    }

    fn run(&self, x: &[f32], t: &[f32], k: &[f32], y: &[i64], out: &mut [f32]) -> Result<Duration> {
        Engine::run(self, x, t, k, y, out)
    }
}
