//! Engines: one ONNX Runtime session (pool) per exported length, opened on first use.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef};

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

/// A session and, with CUDA graphs, its bound device buffers.
struct Slot {
    session: Session,
    graph: Option<CudaGraph>,
}

impl Slot {
    fn new(session: Session) -> Self {
        Self { session, graph: None }
    }
}

/// A fixed number of sessions shared by threads: `acquire` takes an idle one, creates one while
/// under the limit, or waits.
struct SessionPool {
    idle: Mutex<(Vec<Slot>, usize)>,
    returned: Condvar,
    max: usize,
}

struct PooledSession<'a> {
    pool: &'a SessionPool,
    session: Option<Slot>,
}

impl SessionPool {
    fn lock(&self) -> Result<MutexGuard<'_, (Vec<Slot>, usize)>> {
        self.idle
            .lock()
            .map_err(|_| Error::Internal("session pool lock poisoned".into()))
    }

    fn acquire(&self, create: impl Fn() -> Result<Slot>) -> Result<PooledSession<'_>> {
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
    fn slot(&mut self) -> Result<&mut Slot> {
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
    /// Position of x, t, k, y among the session's inputs.
    order: [usize; 4],
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
        let mut engine = Engine {
            length: entry.length,
            file,
            built,
            numel: model.image_numel(),
            shape,
            order: [0, 1, 2, 3],
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
        engine.order = engine.check_interface(&session)?;
        {
            let mut state = engine
                .pool
                .idle
                .lock()
                .map_err(|_| Error::Internal("session pool lock poisoned".into()))?;
            state.0.push(Slot::new(session));
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

    fn create_session(&self) -> Result<Session> {
        let mut builder = session::builder(&self.env, &self.options.session(!self.built))?;
        builder.commit_from_file(&self.file).map_err(|e| Error::Model {
            path: self.file.display().to_string(),
            message: format!("ONNX Runtime cannot load this graph: {e}"),
        })
    }

    /// Checks the exporter's interface (docs/DESIGN.md §6) and returns where each input sits.
    fn check_interface(&self, session: &Session) -> Result<[usize; 4]> {
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
        let mut order = [0; 4];
        for (slot, (name, ty)) in INPUTS.iter().enumerate() {
            let Some(pos) = inputs.iter().position(|i| i.name() == *name) else {
                return Err(bad(format!(
                    "the graph has no input '{name}' (expected inputs x, t, k, y)"
                )));
            };
            if inputs[pos].dtype().tensor_type() != Some(*ty) {
                return Err(bad(format!("input '{name}' is not a {ty:?} tensor")));
            }
            order[slot] = pos;
        }
        if let Some(shape) = inputs[order[0]].dtype().tensor_shape() {
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
        Ok(order)
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
    /// Returns the time spent in this call — ONNX Runtime's input wrapping, run, output
    /// extraction and the copy into `out` — excluding any wait for a free session (and the
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
        let backend = |e: ort::Error| Error::Backend(format!("length {}: {e}", self.length));
        let [c, h, w] = self.shape;
        let x = TensorRef::from_array_view(([batch, c, h, w], x)).map_err(backend)?;
        let t = TensorRef::from_array_view(([batch], t)).map_err(backend)?;
        let k = TensorRef::from_array_view(([batch], k)).map_err(backend)?;
        let y = TensorRef::from_array_view(([batch], y)).map_err(backend)?;
        let mut named: [Option<SessionInputValue<'_>>; 4] =
            [Some(x.into()), Some(t.into()), Some(k.into()), Some(y.into())];
        let mut positional: [Option<SessionInputValue<'_>>; 4] = [None, None, None, None];
        for (slot, pos) in self.order.iter().enumerate() {
            positional[*pos] = named[slot].take();
        }
        let [Some(i0), Some(i1), Some(i2), Some(i3)] = positional else {
            return Err(Error::Internal(format!(
                "length {}: input order {:?} is not a permutation",
                self.length, self.order
            )));
        };
        let inputs = [i0, i1, i2, i3];

        let (mut pooled, waited) = self.pooled()?;
        let slot = pooled.slot()?;
        let outputs = slot.session.run(inputs).map_err(backend)?;
        let v = outputs
            .get("v")
            .ok_or_else(|| Error::Backend(format!("length {}: no output 'v'", self.length)))?;
        let (shape, data) = v.try_extract_tensor::<f32>().map_err(backend)?;
        if data.len() != n {
            return Err(Error::Backend(format!(
                "length {}: output 'v' has shape {:?}, expected [{batch}, {c}, {h}, {w}]",
                self.length,
                &shape[..]
            )));
        }
        out.copy_from_slice(data);
        drop(outputs);
        Ok(call.elapsed().saturating_sub(waited))
    }
}

impl Engine {
    /// A session from the pool, and how long the wait for it (or its creation) took.
    fn pooled(&self) -> Result<(PooledSession<'_>, Duration)> {
        let wait = Instant::now();
        let pooled = self.pool.acquire(|| self.create_session().map(Slot::new))?;
        Ok((pooled, wait.elapsed()))
    }

    /// [`Engine::run`] through a CUDA graph: the session's bound buffers, created for its first
    /// call's batch size.
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
