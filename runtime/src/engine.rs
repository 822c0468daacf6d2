//! Engines: one ONNX Runtime session (pool) per exported length, opened on first use.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::memory::Allocator;
use ort::session::{IoBinding, Session};
use ort::value::{Tensor, TensorElementType};

use crate::cuda_graph::CudaGraph;
use crate::error::{Error, Result};
use crate::options::RuntimeOptions;
use crate::session::{self, Provider};
use odelt_format::manifest::{LengthEntry, Manifest};

/// The graph file to load for `entry`: a built engine for the provider's backend and the wanted
/// precision when asked for and present, else the plain graph (when it runs at that
/// precision). Returns the path and whether it is a built engine.
fn engine_file(
    dir: &Path,
    manifest: &Manifest,
    entry: &LengthEntry,
    options: &RuntimeOptions,
) -> Result<(PathBuf, bool)> {
    let backend = options.provider.backend();
    let precision = options.precision_name(manifest);
    let plain_runs = options.plain_graph_runs(manifest);
    if options.prefer_built_engines || !plain_runs {
        let wanted = entry
            .engines
            .iter()
            .filter(|e| e.backend == backend && e.precision == precision);
        for built in wanted {
            let path = dir.join(&built.file);
            if path.is_file() {
                return Ok((path, true));
            }
            if !plain_runs {
                return Err(Error::NotFound(format!(
                    "length {}: the {precision} {backend} engine {} is missing; build it again with \
                     `odelt engines build --backend {backend} --precision {precision}`",
                    entry.length,
                    path.display()
                )));
            }
            tracing::warn!(
                "length {}: {} engine {} is missing; using the plain graph",
                entry.length,
                backend,
                path.display()
            );
        }
    }
    if !plain_runs {
        return Err(Error::NotFound(format!(
            "length {}: no {precision} {backend} engine (the export's graphs are {}); build one with \
             `odelt engines build --backend {backend} --precision {precision}`",
            entry.length, manifest.precision
        )));
    }
    Ok((dir.join(&entry.file), false))
}

/// A fixed number of sessions shared by threads: `acquire` takes an idle one, creates one while
/// under the limit, or waits.
struct SessionPool {
    idle: Mutex<(Vec<BoundSession>, usize)>,
    returned: Condvar,
    max: usize,
}

struct PooledSession<'a> {
    pool: &'a SessionPool,
    session: Option<BoundSession>,
}

/// A session and the tensors bound to its inputs and output for the last batch size it ran:
/// a solve's steps (one batch size) reuse them, so a call copies x, t, k, y in and v out and
/// allocates no tensors. With CUDA graphs (`cuda-graph` provider) the bound buffers are on the
/// device instead ([`CudaGraph`]).
struct BoundSession {
    session: Session,
    bound: Option<Bound>,
    graph: Option<CudaGraph>,
}

struct Bound {
    batch: usize,
    x: Tensor<f32>,
    t: Tensor<f32>,
    k: Tensor<f32>,
    y: Tensor<i64>,
    v: Tensor<f32>,
    binding: IoBinding,
}

impl BoundSession {
    fn new(session: Session) -> Self {
        Self {
            session,
            bound: None,
            graph: None,
        }
    }

    /// Runs the session on one batch: inputs copied into the bound tensors (and re-bound, which
    /// for a device provider is where they are copied to the device), v copied into `out`.
    fn run(
        &mut self,
        image: [usize; 3],
        x: &[f32],
        t: &[f32],
        k: &[f32],
        y: &[i64],
        out: &mut [f32],
    ) -> ort::Result<()> {
        let batch = t.len();
        if self.bound.as_ref().is_some_and(|b| b.batch != batch) {
            self.bound = None; // free the old tensors before allocating new ones
        }
        let b = match &mut self.bound {
            Some(b) => b,
            slot @ None => slot.insert(Bound::new(&self.session, batch, image)?),
        };
        b.x.extract_tensor_mut().1.copy_from_slice(x);
        b.t.extract_tensor_mut().1.copy_from_slice(t);
        b.k.extract_tensor_mut().1.copy_from_slice(k);
        b.y.extract_tensor_mut().1.copy_from_slice(y);
        b.binding.bind_input("x", &b.x)?;
        b.binding.bind_input("t", &b.t)?;
        b.binding.bind_input("k", &b.k)?;
        b.binding.bind_input("y", &b.y)?;
        self.session.run_binding(&b.binding)?;
        out.copy_from_slice(b.v.extract_tensor().1);
        Ok(())
    }
}

impl Bound {
    fn new(session: &Session, batch: usize, [c, h, w]: [usize; 3]) -> ort::Result<Self> {
        let cpu = Allocator::default();
        let mut v = Tensor::new(&cpu, [batch, c, h, w])?;
        let mut binding = session.create_binding()?;
        binding.bind_output("v", &mut v)?;
        Ok(Self {
            batch,
            x: Tensor::new(&cpu, [batch, c, h, w])?,
            t: Tensor::new(&cpu, [batch])?,
            k: Tensor::new(&cpu, [batch])?,
            y: Tensor::new(&cpu, [batch])?,
            v,
            binding,
        })
    }
}

impl SessionPool {
    fn lock(&self) -> Result<MutexGuard<'_, (Vec<BoundSession>, usize)>> {
        self.idle
            .lock()
            .map_err(|_| Error::Internal("session pool lock poisoned".into()))
    }

    fn acquire(&self, create: impl Fn() -> Result<BoundSession>) -> Result<PooledSession<'_>> {
        let mut state = self.lock()?;
        loop {
            if let Some(session) = state.0.pop() {
                return Ok(PooledSession {
                    pool: self,
                    session: Some(session),
                });
            }
            if state.1 < self.max {
                state.1 += 1;
                drop(state);
                return match create() {
                    Ok(session) => Ok(PooledSession {
                        pool: self,
                        session: Some(session),
                    }),
                    Err(e) => {
                        self.lock()?.1 -= 1;
                        Err(e)
                    }
                };
            }
            state = self
                .returned
                .wait(state)
                .map_err(|_| Error::Internal("session pool lock poisoned".into()))?;
        }
    }
}

impl PooledSession<'_> {
    fn slot(&mut self) -> Result<&mut BoundSession> {
        self.session
            .as_mut()
            .ok_or_else(|| Error::Internal("a pooled session went missing".into()))
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if let Ok(mut state) = self.pool.idle.lock() {
                state.0.push(session);
            }
            self.pool.returned.notify_one();
        }
    }
}

/// One exported length: `v = model(x, t, k, y)` on a batch.
pub struct Engine {
    length: u32,
    file: PathBuf,
    built: bool,
    numel: usize,
    shape: [usize; 3],
    env: Environment,
    options: RuntimeOptions,
    pool: SessionPool,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("length", &self.length)
            .field("file", &self.file)
            .finish()
    }
}

const INPUTS: [(&str, TensorElementType); 4] = [
    ("x", TensorElementType::Float32),
    ("t", TensorElementType::Float32),
    ("k", TensorElementType::Float32),
    ("y", TensorElementType::Int64),
];

impl Engine {
    pub(crate) fn open(
        env: &Environment,
        dir: &Path,
        manifest: &Manifest,
        entry: &LengthEntry,
        options: &RuntimeOptions,
    ) -> Result<Self> {
        let (file, built) = engine_file(dir, manifest, entry, options)?;
        let model = &manifest.model;
        let shape = [
            model.in_channels as usize,
            model.input_size as usize,
            model.input_size as usize,
        ];
        let engine = Engine {
            length: entry.length,
            file,
            built,
            numel: model.image_numel(),
            shape,
            env: env.clone(),
            options: options.clone(),
            pool: SessionPool {
                idle: Mutex::new((Vec::new(), 0)),
                returned: Condvar::new(),
                max: options.sessions_per_engine.max(1),
            },
        };
        // Open the first session now: a corrupt graph fails here, at a predictable place.
        let session = engine.create_session()?;
        engine.check_interface(&session.session)?;
        {
            let mut state = engine
                .pool
                .idle
                .lock()
                .map_err(|_| Error::Internal("session pool lock poisoned".into()))?;
            state.0.push(session);
            state.1 = 1;
        }
        tracing::info!(
            "length {}: opened {}{}",
            entry.length,
            engine.file.display(),
            if built { " (built engine)" } else { "" }
        );
        Ok(engine)
    }

    fn create_session(&self) -> Result<BoundSession> {
        let mut builder = session::builder(&self.env, &self.options.session(!self.built))?;
        let session = builder.commit_from_file(&self.file).map_err(|e| Error::Model {
            path: self.file.display().to_string(),
            message: format!("ONNX Runtime cannot load this graph: {e}"),
        })?;
        Ok(BoundSession::new(session))
    }

    /// Checks the exporter's interface (docs/DESIGN.md §6): inputs x, t, k, y and output v.
    fn check_interface(&self, session: &Session) -> Result<()> {
        let bad = |message: String| Error::Model {
            path: self.file.display().to_string(),
            message,
        };
        let inputs = session.inputs();
        if inputs.len() != 4 {
            let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
            return Err(bad(format!(
                "expected inputs x, t, k, y; the graph has {}",
                names.join(", ")
            )));
        }
        let mut x_pos = 0;
        for (name, ty) in INPUTS {
            let Some(pos) = inputs.iter().position(|i| i.name() == name) else {
                return Err(bad(format!(
                    "the graph has no input '{name}' (expected inputs x, t, k, y)"
                )));
            };
            if inputs[pos].dtype().tensor_type() != Some(ty) {
                return Err(bad(format!("input '{name}' is not a {ty:?} tensor")));
            }
            if name == "x" {
                x_pos = pos;
            }
        }
        if let Some(shape) = inputs[x_pos].dtype().tensor_shape() {
            let dims: Vec<i64> = shape.iter().copied().collect();
            let want = [
                -1,
                self.shape[0] as i64,
                self.shape[1] as i64,
                self.shape[2] as i64,
            ];
            let ok = dims.len() == 4 && dims.iter().zip(want).skip(1).all(|(d, w)| *d == w || *d < 0);
            if !ok {
                return Err(bad(format!(
                    "input 'x' has shape {dims:?}, but the manifest's model needs [batch, {}, {}, {}]",
                    self.shape[0], self.shape[1], self.shape[2]
                )));
            }
        }
        let outputs = session.outputs();
        if !outputs
            .iter()
            .any(|o| o.name() == "v" && o.dtype().tensor_type() == Some(TensorElementType::Float32))
        {
            return Err(bad("the graph has no float output 'v'".into()));
        }
        Ok(())
    }

    pub fn length(&self) -> u32 {
        self.length
    }

    /// The file this engine loaded.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// True when the file is a built engine from the manifest, not the plain graph.
    pub fn is_built(&self) -> bool {
        self.built
    }

    /// Floats per image C·H·W.
    pub fn image_numel(&self) -> usize {
        self.numel
    }

    /// Runs the graph on one batch (`t.len()` rows, no chunking) and writes `v` into `out`.
    /// Returns the time spent in this call — the copies into the bound input tensors, the run
    /// and the copy of v into `out` — excluding any wait for a free session (and the
    /// session's creation when the pool grows).
    pub fn run(&self, x: &[f32], t: &[f32], k: &[f32], y: &[i64], out: &mut [f32]) -> Result<Duration> {
        let batch = t.len();
        let n = batch * self.numel;
        if batch == 0 || x.len() != n || k.len() != batch || y.len() != batch || out.len() != n {
            return Err(Error::Internal(format!(
                "engine called with x {}, t {}, k {}, y {}, out {} for {} floats per image",
                x.len(),
                t.len(),
                k.len(),
                y.len(),
                out.len(),
                self.numel
            )));
        }
        if let Provider::Cuda {
            device_id,
            cuda_graph: true,
        } = self.options.provider
        {
            return self.run_graph(device_id, (x, t, k, y), out);
        }
        let call = Instant::now();
        let (mut pooled, waited) = self.pooled()?;
        pooled
            .slot()?
            .run(self.shape, x, t, k, y, out)
            .map_err(|e| Error::Backend(format!("length {}: {e}", self.length)))?;
        Ok(call.elapsed().saturating_sub(waited))
    }

    /// A session from the pool, and how long the wait for it (or its creation) took.
    fn pooled(&self) -> Result<(PooledSession<'_>, Duration)> {
        let wait = Instant::now();
        let pooled = self.pool.acquire(|| self.create_session())?;
        Ok((pooled, wait.elapsed()))
    }

    /// [`Engine::run`] through a CUDA graph: the session's bound device buffers, created for its
    /// first call's batch size.
    fn run_graph(
        &self,
        device_id: i32,
        inputs: (&[f32], &[f32], &[f32], &[i64]),
        out: &mut [f32],
    ) -> Result<Duration> {
        let (x, t, k, y) = inputs;
        let backend = |e: ort::Error| Error::Backend(format!("length {} (CUDA graph): {e}", self.length));
        let call = Instant::now();
        let (mut pooled, waited) = self.pooled()?;
        let slot = pooled.slot()?;
        let batch = t.len();
        if slot.graph.is_none() {
            slot.graph = Some(CudaGraph::new(&slot.session, device_id, batch, self.shape).map_err(backend)?);
        }
        let graph = slot
            .graph
            .as_mut()
            .ok_or_else(|| Error::Internal("a CUDA graph binding went missing".into()))?;
        if graph.batch() != batch {
            return Err(Error::InvalidArgument(format!(
                "length {}: a CUDA graph replays one batch size; this engine's session captured {} rows, \
                 this call has {batch} (use one batch size, e.g. --max-batch, or the cuda provider)",
                self.length,
                graph.batch()
            )));
        }
        graph.run(&mut slot.session, x, t, k, y, out).map_err(backend)?;
        Ok(call.elapsed().saturating_sub(waited))
    }
}
