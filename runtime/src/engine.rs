//! Engines: one ONNX Runtime session (pool) per exported length, opened on first use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{Session, SessionInputValue};
use ort::value::{TensorElementType, TensorRef};

use crate::error::{invalid, Error, Result};
use crate::manifest::{LengthEntry, Manifest};
use crate::ortlib;

/// Where the graphs run. GPU providers are registered with `error_on_failure`: when the loaded
/// ONNX Runtime lacks them, opening an engine fails instead of silently running on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// The CUDA provider (from `onnxruntime-gpu`) on this device.
    Cuda { device_id: i32 },
    /// The TensorRT provider (from `onnxruntime-gpu` + `tensorrt-cu12-libs`), CUDA for the rest.
    TensorRt { device_id: i32, fp16: bool },
}

impl Provider {
    /// The manifest's backend name for engines built for this provider.
    pub fn backend(&self) -> &'static str {
        match self {
            Provider::Cpu => "ort-cpu",
            Provider::Cuda { .. } => "ort-cuda",
            Provider::TensorRt { .. } => "tensorrt",
        }
    }

    /// `cpu`, `cuda`, `cuda:1`, `tensorrt`, `tensorrt:0`, `tensorrt-fp16`.
    pub fn parse(text: &str) -> Result<Self> {
        let (name, device) = match text.split_once(':') {
            Some((name, id)) => match id.parse::<i32>() {
                Ok(id) if id >= 0 => (name, id),
                _ => return invalid!("provider '{text}': device id '{id}' is not a non-negative integer"),
            },
            None => (text, 0),
        };
        Ok(match name {
            "cpu" if device == 0 => Provider::Cpu,
            "cuda" => Provider::Cuda { device_id: device },
            "tensorrt" => Provider::TensorRt {
                device_id: device,
                fp16: false,
            },
            "tensorrt-fp16" => Provider::TensorRt {
                device_id: device,
                fp16: true,
            },
            _ => {
                return invalid!(
                    "unknown provider '{text}'; expected cpu, cuda[:ID], tensorrt[:ID] or tensorrt-fp16[:ID]"
                )
            }
        })
    }
}

/// How [`Runtime::open`] finds ONNX Runtime and runs the graphs.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The ONNX Runtime shared library; `None` searches `ORT_DYLIB_PATH`, then the setup venv.
    pub ort_library: Option<PathBuf>,
    /// Threads inside one graph node (ONNX Runtime intra-op threads); 0 lets ONNX Runtime choose.
    pub intra_threads: usize,
    /// Execution provider.
    pub provider: Provider,
    /// Largest batch sent to the engine in one call; larger requests are split. 0 = no limit.
    pub max_batch: usize,
    /// Use an engine built for the provider's backend (`LengthEntry::engines`) when its file
    /// exists, else the plain graph.
    pub prefer_built_engines: bool,
    /// Sessions per length: concurrent callers of one length share this many sessions
    /// (`Session::run` needs exclusive access). Each holds its own copy of the working memory.
    pub sessions_per_engine: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            ort_library: None,
            intra_threads: 0,
            provider: Provider::Cpu,
            max_batch: 0,
            prefer_built_engines: true,
            sessions_per_engine: 1,
        }
    }
}

impl RuntimeOptions {
    #[must_use]
    pub fn with_ort_library(mut self, path: impl Into<PathBuf>) -> Self {
        self.ort_library = Some(path.into());
        self
    }
    #[must_use]
    pub fn with_intra_threads(mut self, threads: usize) -> Self {
        self.intra_threads = threads;
        self
    }
    #[must_use]
    pub fn with_provider(mut self, provider: Provider) -> Self {
        self.provider = provider;
        self
    }
    #[must_use]
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }
    #[must_use]
    pub fn with_prefer_built_engines(mut self, prefer: bool) -> Self {
        self.prefer_built_engines = prefer;
        self
    }
    #[must_use]
    pub fn with_sessions_per_engine(mut self, sessions: usize) -> Self {
        self.sessions_per_engine = sessions;
        self
    }
}

/// An export folder ready to sample from. `Send + Sync`: share it (e.g. in an `Arc`) between
/// threads; each length's engine opens on first use and stays open.
pub struct Runtime {
    dir: PathBuf,
    manifest: Manifest,
    options: RuntimeOptions,
    env: Environment,
    engines: Mutex<HashMap<u32, Arc<Engine>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish()
    }
}

impl Runtime {
    /// Reads `DIR/manifest.json`, checks that the files it names exist, and loads ONNX Runtime.
    /// No graph is opened yet.
    pub fn open(dir: impl AsRef<Path>, options: RuntimeOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::NotFound(format!(
                "engine folder {} does not exist; run `odelt export` first",
                dir.display()
            )));
        }
        let manifest = Manifest::read(&dir)?;
        if manifest.lengths.is_empty() {
            return invalid!("{}: the manifest lists no exported lengths", dir.display());
        }
        if manifest.io_precision != "fp32" {
            return invalid!(
                "{}: io_precision '{}' is not supported by this runtime (fp32 only)",
                dir.display(),
                manifest.io_precision
            );
        }
        for entry in &manifest.lengths {
            manifest.model.check_length(entry.length).map_err(|e| {
                Error::InvalidArgument(format!(
                    "{}: manifest lists {e}",
                    dir.join("manifest.json").display()
                ))
            })?;
            let file = dir.join(&entry.file);
            if !file.is_file() {
                return Err(Error::NotFound(format!(
                    "{}: graph for length {} is missing",
                    file.display(),
                    entry.length
                )));
            }
        }
        let weights = dir.join(&manifest.weights_file);
        if !weights.is_file() {
            return Err(Error::NotFound(format!(
                "{}: the shared weights file is missing",
                weights.display()
            )));
        }
        let env = ortlib::environment(options.ort_library.as_deref())?;
        Ok(Self {
            dir,
            manifest,
            options,
            env,
            engines: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Image shape (C, H, W).
    pub fn image_shape(&self) -> [usize; 3] {
        let m = &self.manifest.model;
        [
            m.in_channels as usize,
            m.input_size as usize,
            m.input_size as usize,
        ]
    }

    /// Exported lengths, ascending.
    pub fn lengths(&self) -> Vec<u32> {
        let mut lengths: Vec<u32> = self.manifest.lengths.iter().map(|e| e.length).collect();
        lengths.sort_unstable();
        lengths
    }

    /// The engine for `length`, opening its session on first use.
    pub fn engine(&self, length: u32) -> Result<Arc<Engine>> {
        let entry = self.manifest.entry(length)?;
        let mut engines = self
            .engines
            .lock()
            .map_err(|_| Error::Internal("engine table lock poisoned".into()))?;
        if let Some(engine) = engines.get(&length) {
            return Ok(engine.clone());
        }
        let engine = Arc::new(Engine::open(
            &self.env,
            &self.dir,
            &self.manifest,
            entry,
            &self.options,
        )?);
        engines.insert(length, engine.clone());
        Ok(engine)
    }
}

/// The graph file to load for `entry`: a built engine for the provider's backend when asked
/// for and present, else the plain graph. Returns the path and whether it is a built engine.
fn engine_file(dir: &Path, entry: &LengthEntry, options: &RuntimeOptions) -> (PathBuf, bool) {
    if options.prefer_built_engines {
        let backend = options.provider.backend();
        for built in entry.engines.iter().filter(|e| e.backend == backend) {
            let path = dir.join(&built.file);
            if path.is_file() {
                return (path, true);
            }
            tracing::warn!(
                "length {}: {} engine {} is missing; using the plain graph",
                entry.length,
                backend,
                path.display()
            );
        }
    }
    (dir.join(&entry.file), false)
}

/// A session builder with the options' threads and provider.
pub(crate) fn session_builder(
    env: &Environment,
    options: &RuntimeOptions,
    optimize: bool,
) -> Result<SessionBuilder> {
    let backend = |e: ort::Error| Error::Backend(e.to_string());
    let level = if optimize {
        GraphOptimizationLevel::All
    } else {
        GraphOptimizationLevel::Disable
    };
    // Worker threads otherwise keep spinning after a call returns and steal the cores from the
    // next engine (or process): with engines used in turn, calls took up to 3× longer.
    let mut builder = Session::builder(env)
        .map_err(backend)?
        .with_optimization_level(level)
        .map_err(|e| Error::Backend(e.to_string()))?
        .with_config_entry("session.force_spinning_stop", "1")
        .map_err(|e| Error::Backend(e.to_string()))?;
    if options.intra_threads > 0 {
        builder = builder
            .with_intra_threads(options.intra_threads)
            .map_err(|e| Error::Backend(e.to_string()))?;
    }
    let providers = match options.provider {
        Provider::Cpu => Vec::new(),
        Provider::Cuda { device_id } => {
            vec![ort::ep::CUDA::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure()]
        }
        Provider::TensorRt { device_id, fp16 } => vec![
            ort::ep::TensorRT::default()
                .with_device_id(device_id)
                .with_fp16(fp16)
                .build()
                .error_on_failure(),
            ort::ep::CUDA::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure(),
        ],
    };
    if !providers.is_empty() {
        builder = builder.with_execution_providers(providers).map_err(|e| {
            let name = match options.provider {
                Provider::Cpu => "CPU",
                Provider::Cuda { .. } => "CUDA",
                Provider::TensorRt { .. } => "TensorRT",
            };
            Error::Provider(format!(
                "the {name} execution provider is not available in the loaded ONNX Runtime ({e}); \
                 install onnxruntime-gpu (and tensorrt-cu12-libs for TensorRT) or use --provider cpu"
            ))
        })?;
    }
    Ok(builder)
}

/// A fixed number of sessions shared by threads: `acquire` takes an idle one, creates one while
/// under the limit, or waits.
struct SessionPool {
    idle: Mutex<(Vec<Session>, usize)>,
    returned: Condvar,
    max: usize,
}

struct PooledSession<'a> {
    pool: &'a SessionPool,
    session: Option<Session>,
}

impl SessionPool {
    fn lock(&self) -> Result<MutexGuard<'_, (Vec<Session>, usize)>> {
        self.idle
            .lock()
            .map_err(|_| Error::Internal("session pool lock poisoned".into()))
    }

    fn acquire(&self, create: impl Fn() -> Result<Session>) -> Result<PooledSession<'_>> {
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
    fn open(
        env: &Environment,
        dir: &Path,
        manifest: &Manifest,
        entry: &LengthEntry,
        options: &RuntimeOptions,
    ) -> Result<Self> {
        let (file, built) = engine_file(dir, entry, options);
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

    fn create_session(&self) -> Result<Session> {
        let mut builder = session_builder(&self.env, &self.options, !self.built)?;
        builder.commit_from_file(&self.file).map_err(|e| Error::Model {
            path: self.file.display().to_string(),
            message: format!("ONNX Runtime cannot load this graph: {e}"),
        })
    }

    /// Checks the exporter's interface (DESIGN §6) and returns where each input sits.
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

        let wait = Instant::now();
        let mut pooled = self.pool.acquire(|| self.create_session())?;
        let waited = wait.elapsed();
        let session = pooled
            .session
            .as_mut()
            .ok_or_else(|| Error::Internal("a pooled session went missing".into()))?;
        let outputs = session.run(inputs).map_err(backend)?;
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
