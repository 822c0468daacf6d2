//! Building engines for every exported length and recording them in the manifest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use odelt_export::external::read_model;
use odelt_format::manifest::{EngineEntry, LengthEntry, Manifest};
use odelt_format::Precision;
use odelt_runtime::session::{self, SessionConfig};
use odelt_runtime::{ortlib, Provider};
use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use serde_json::json;

use crate::backend::{Backend, CpuLevel};
use crate::error::{invalid, Error, Result};
use crate::int8::{self, Int8Weights};
use crate::relink::{relink, write_model};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub backend: Backend,
    /// Precision of the engines; `None`: the export's own. `Fp16` is TensorRT's
    /// `trt_fp16_enable` (ONNX Runtime's CPU and CUDA providers run the graph's own precision:
    /// export with `--fp16` for fp16 there); `Int8` is ort-cpu's int8 rewrite ([`crate::int8`]).
    pub precision: Option<Precision>,
    /// Batch sizes the engine will run (TensorRT optimization profile: min, opt = the
    /// largest, max).
    pub batches: Vec<u32>,
    /// Classifier-free guidance batches its two halves: the profile covers 2× each batch.
    pub cfg: bool,
    /// ONNX Runtime intra-op threads for the build session (0: ONNX Runtime's choice).
    pub threads: usize,
    /// GPU for ort-cuda and tensorrt.
    pub device_id: i32,
    /// Optimization level of ort-cpu / ort-cuda models.
    pub level: CpuLevel,
    /// TensorRT: capture CUDA graphs (needs one fixed batch size).
    pub cuda_graph: bool,
    /// TensorRT: weight-stripped engines, refitted from the ONNX weights at load time.
    pub weight_stripped: bool,
    /// TensorRT: ONNX Runtime's verbose log and TensorRT's detailed build log on stderr.
    pub verbose: bool,
    /// Lengths to build; `None` builds every exported length.
    pub lengths: Option<Vec<u32>>,
    /// The ONNX Runtime library (default: the runtime's search).
    pub ort_library: Option<PathBuf>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            backend: Backend::OrtCpu,
            precision: None,
            batches: vec![1],
            cfg: false,
            threads: 0,
            device_id: 0,
            level: CpuLevel::Extended,
            cuda_graph: false,
            weight_stripped: false,
            verbose: false,
            lengths: None,
            ort_library: None,
        }
    }
}

/// Progress of [`build`].
#[derive(Debug, Clone)]
pub enum BuildEvent {
    /// The provider is available; these lengths will be built.
    Started { lengths: Vec<u32> },
    /// Building one length.
    Building { length: u32 },
    /// One length is built and recorded in the manifest.
    Built(BuiltEngine),
}

/// One built engine.
#[derive(Debug, Clone)]
pub struct BuiltEngine {
    pub length: u32,
    pub entry: EngineEntry,
}

impl BuildOptions {
    fn check(&self, manifest: &Manifest) -> Result<()> {
        if self.batches.is_empty() || self.batches.contains(&0) {
            return invalid!("--batch needs positive batch sizes (got {:?})", self.batches);
        }
        let own = self.precision.is_none_or(|p| p.name() == manifest.precision);
        match self.backend {
            Backend::OrtCpu | Backend::OrtCuda => {
                match self.precision {
                    None => {}
                    _ if own => {}
                    Some(Precision::Int8)
                        if self.backend == Backend::OrtCpu && manifest.precision == "fp32" => {}
                    Some(Precision::Int8) => {
                        return invalid!(
                            "--precision int8 is built for ort-cpu from an fp32 export (this is {} from an {} export)",
                            self.backend,
                            manifest.precision
                        )
                    }
                    Some(p) => {
                        return invalid!(
                            "--precision {p} with {}: ONNX Runtime's {} provider runs the graph's own precision \
                             (this export is {}); export with `odelt export --fp16` instead",
                            self.backend,
                            if self.backend == Backend::OrtCpu {
                                "CPU"
                            } else {
                                "CUDA"
                            },
                            manifest.precision
                        )
                    }
                }
                if self.cuda_graph || self.weight_stripped {
                    return invalid!(
                        "--cuda-graph and --weight-stripped are TensorRT options (--backend tensorrt)"
                    );
                }
            }
            Backend::TensorRt => {
                if !own && self.precision != Some(Precision::Fp16) {
                    return invalid!(
                        "--precision {} with tensorrt: TensorRT engines are built in the export's precision or fp16",
                        self.precision.map_or("", Precision::name)
                    );
                }
                if manifest.ops != "standard" {
                    return invalid!(
                        "tensorrt needs graphs of standard ONNX operators (this export's are {}: \
                         ONNX Runtime's com.microsoft operators); export with `odelt export --standard-ops`",
                        manifest.ops
                    );
                }
                let mut distinct = self.batches.clone();
                distinct.dedup();
                if self.cuda_graph && distinct.len() > 1 {
                    return invalid!(
                        "--cuda-graph needs one fixed batch size (got --batch {:?}): a captured graph replays one shape",
                        self.batches
                    );
                }
            }
        }
        Ok(())
    }

    /// (min, opt, max) rows per engine call.
    pub fn profile(&self) -> (u32, u32, u32) {
        let scale = if self.cfg { 2 } else { 1 };
        let min = self.batches.iter().copied().min().unwrap_or(1) * scale;
        let max = self.batches.iter().copied().max().unwrap_or(1) * scale;
        (min, max, max)
    }

    /// The manifest's name of the engines' precision.
    fn precision<'a>(&self, manifest: &'a Manifest) -> &'a str {
        match self.precision {
            Some(p) => p.name(),
            None => &manifest.precision,
        }
    }

    /// True for a precision other than the export's own: its engine files carry it in their
    /// names, so that they sit beside the export's-precision engines of the same backend.
    fn is_variant(&self, manifest: &Manifest) -> bool {
        self.precision(manifest) != manifest.precision
    }

    fn fp16(&self) -> bool {
        self.precision == Some(Precision::Fp16)
    }

    /// The runtime provider that runs this build's engines.
    fn provider(&self) -> Provider {
        self.backend.provider(self.device_id, self.fp16())
    }

    /// The build session's settings at `optimization`.
    fn session(&self, optimization: GraphOptimizationLevel) -> SessionConfig {
        SessionConfig {
            provider: self.provider(),
            intra_threads: self.threads,
            optimization,
            verbose: self.verbose,
        }
    }
}

/// The name of `backend`'s artefact for length `l` without its extension:
/// `model_l{l}.{backend}`, `model_l{l}.{backend}-{precision}` for a precision other than the
/// export's own (`variant`).
pub fn engine_stem(backend: Backend, length: u32, variant: Option<Precision>) -> String {
    match variant {
        None => format!("model_l{length}.{}", backend.name()),
        Some(p) => format!("model_l{length}.{}-{}", backend.name(), p.name()),
    }
}

/// Builds engines for the export folder `dir` and records each in its manifest (written
/// atomically after every length, so a failure keeps the lengths already built).
pub fn build(
    dir: &Path,
    options: &BuildOptions,
    mut progress: impl FnMut(BuildEvent),
) -> Result<Vec<BuiltEngine>> {
    let runtime = odelt_runtime::Runtime::open(
        dir,
        odelt_runtime::RuntimeOptions {
            ort_library: options.ort_library.clone(),
            ..Default::default()
        },
    )?;
    let mut manifest = runtime.manifest().clone();
    drop(runtime);
    options.check(&manifest)?;
    let lengths: Vec<u32> = match &options.lengths {
        Some(ls) => {
            for l in ls {
                manifest.entry(*l)?;
            }
            ls.clone()
        }
        None => {
            let mut ls: Vec<u32> = manifest.lengths.iter().map(|e| e.length).collect();
            ls.sort_unstable();
            ls
        }
    };
    let env = ortlib::environment(options.ort_library.as_deref())?;
    session::check_available(&env, options.provider())?;
    progress(BuildEvent::Started {
        lengths: lengths.clone(),
    });
    let int8 = match options.precision {
        Some(Precision::Int8) => Some(int8::quantize_weights(dir, &manifest)?),
        _ => None,
    };
    let mut built = Vec::new();
    for length in lengths {
        progress(BuildEvent::Building { length });
        let entry = manifest.entry(length)?.clone();
        let start = Instant::now();
        let (file, settings) = match options.backend {
            Backend::OrtCpu | Backend::OrtCuda => {
                optimize(&env, dir, &manifest, &entry, options, int8.as_ref())?
            }
            Backend::TensorRt => tensorrt(&env, dir, &manifest, &entry, options)?,
        };
        let engine = EngineEntry {
            backend: options.backend.name().into(),
            file,
            precision: options.precision(&manifest).into(),
            build_seconds: start.elapsed().as_secs_f64(),
            options: settings,
        };
        let slot = manifest.entry_mut(length)?;
        slot.engines
            .retain(|e| !(e.backend == engine.backend && e.precision == engine.precision));
        slot.engines.push(engine.clone());
        manifest.write(dir)?;
        let done = BuiltEngine {
            length,
            entry: engine,
        };
        progress(BuildEvent::Built(done.clone()));
        built.push(done);
    }
    if int8.is_some() {
        int8::remove_unreferenced(dir, &manifest)?;
    }
    Ok(built)
}

/// ort-cpu / ort-cuda: ONNX Runtime's offline optimization, re-linked to weights.bin.
fn optimize(
    env: &Environment,
    dir: &Path,
    manifest: &Manifest,
    entry: &LengthEntry,
    options: &BuildOptions,
    int8: Option<&Int8Weights>,
) -> Result<(String, serde_json::Value)> {
    let backend = options.backend;
    let length = entry.length;
    let fail = |e: String| Error::Build {
        length,
        backend: backend.name(),
        message: e,
    };
    let own = engine_stem(
        backend,
        length,
        options.precision.filter(|_| options.is_variant(manifest)),
    );
    let out = format!("{own}.onnx");
    let partial = format!(".{own}.partial.onnx");
    let partial_data = format!("{partial}.data");
    // The int8 rewrite of the plain graph, optimized in its place.
    let quantized = format!(".{own}.quantized.onnx");
    let cleanup = || {
        for file in [&partial, &partial_data, &quantized] {
            std::fs::remove_file(dir.join(file)).ok();
        }
    };
    let mut shared = vec![manifest.weights_file.as_str()];
    let mut rewritten = None;
    let result = (|| {
        let source = match int8 {
            Some(int8) => {
                let mut model = read_model(&dir.join(&entry.file))?;
                rewritten = Some(int8::quantize_graph(&mut model, &manifest.weights_file, int8)?);
                shared.push(&int8.file);
                write_model(&dir.join(&quantized), &model)?;
                &quantized
            }
            None => &entry.file,
        };
        let err = |e: ort::Error<SessionBuilder>| fail(e.to_string());
        let mut builder = session::builder(env, &options.session(options.level.ort()))?
            .with_optimized_model_path(dir.join(&partial))
            .map_err(err)?
            .with_config_entry(
                "session.optimized_model_external_initializers_file_name",
                &partial_data,
            )
            .map_err(err)?
            .with_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes",
                "1024",
            )
            .map_err(err)?
            // Packed weights are not saved; packing them here would only cost time and memory.
            .with_prepacking(false)
            .map_err(err)?;
        let session = builder
            .commit_from_file(dir.join(source))
            .map_err(|e| fail(format!("ONNX Runtime cannot optimize {source}: {e}")))?;
        drop(session);
        relink(dir, source, &partial, &shared, &out, &own)
    })();
    cleanup();
    let relinked = result?;
    let mut settings = json!({
        "source": entry.file,
        "content_hash": entry.content_hash,
        "optimization_level": options.level.name(),
        "load_optimization_level": "disable",
        "ort_version": ortlib::ORT_VERSION,
        "shared_weights": manifest.weights_file,
        "shared_bytes": relinked.shared_bytes,
        "own_weights": relinked.own_file,
        "own_bytes": relinked.own_bytes,
    });
    if let (Some(int8), Some(rewritten)) = (int8, rewritten) {
        settings["int8"] = json!({
            "weights": int8.file,
            "weights_bytes": int8.bytes,
            "products": rewritten.products,
            "biases_folded": rewritten.biases_folded,
            "scheme": "DynamicQuantizeMatMul: int8 weights, symmetric per-output-channel scales; \
                       activations uint8 per tensor at run time",
        });
    }
    if backend == Backend::OrtCuda {
        settings["cuda"] = json!({
            "device_id": options.device_id,
            "cudnn_conv_algo_search": "EXHAUSTIVE",
            "arena_extend_strategy": "kNextPowerOfTwo",
            "do_copy_in_default_stream": true,
        });
    }
    Ok((out, settings))
}

/// tensorrt: ONNX Runtime's TensorRT provider builds the engine; an EP-context model (embed
/// mode 0) points at it.
fn tensorrt(
    env: &Environment,
    dir: &Path,
    manifest: &Manifest,
    entry: &LengthEntry,
    options: &BuildOptions,
) -> Result<(String, serde_json::Value)> {
    let model = &manifest.model;
    let length = entry.length;
    let fail = |e: String| Error::Build {
        length,
        backend: "tensorrt",
        message: e,
    };
    let cache = dir.join("trt");
    std::fs::create_dir_all(&cache).map_err(Error::io(&cache))?;
    // ONNX Runtime's own cache key hashes the graph but not the external weights: key the
    // engine by the manifest's content hash (graph + weights) instead.
    let prefix = format!(
        "odelt_l{length}_{}",
        &entry.content_hash[..16.min(entry.content_hash.len())]
    );
    let (min, opt, max) = options.profile();
    let (c, s) = (model.in_channels, model.input_size);
    let shapes = |b: u32| format!("x:{b}x{c}x{s}x{s},t:{b},k:{b},y:{b}");
    let variant = options.precision.filter(|_| options.is_variant(manifest));
    let out = format!("{}.onnx", engine_stem(Backend::TensorRt, length, variant));
    let trt = ort::ep::TensorRT::default()
        .with_device_id(options.device_id)
        .with_fp16(options.fp16())
        .with_engine_cache(true)
        .with_engine_cache_path(cache.display())
        .with_engine_cache_prefix(&prefix)
        .with_timing_cache(true)
        .with_timing_cache_path(cache.display())
        .with_profile_min_shapes(shapes(min))
        .with_profile_opt_shapes(shapes(opt))
        .with_profile_max_shapes(shapes(max))
        .with_dump_ep_context_model(true)
        .with_ep_context_file_path(dir.join(&out).display())
        .with_ep_context_embed_mode(0)
        .with_detailed_build_log(options.verbose)
        .with_cuda_graph(options.cuda_graph)
        .with_weight_stripped_engine(options.weight_stripped)
        .with_onnx_model_folder_path(dir.display())
        .build()
        .error_on_failure();
    // Registered by hand: the engine-cache settings above are this build's own.
    let cpu_session = SessionConfig {
        provider: Provider::Cpu,
        ..options.session(GraphOptimizationLevel::All)
    };
    let builder = session::builder(env, &cpu_session)?;
    let mut builder = session::register(
        builder,
        options.provider(),
        vec![trt, session::cuda(options.device_id)],
    )?;
    let session = builder
        .commit_from_file(dir.join(&entry.file))
        .map_err(|e| fail(format!("{e}")))?;
    drop(session);
    if !dir.join(&out).is_file() {
        return Err(fail(format!(
            "ONNX Runtime did not write the EP-context model {}",
            dir.join(&out).display()
        )));
    }
    let settings = json!({
        "source": entry.file,
        "content_hash": entry.content_hash,
        "device_id": options.device_id,
        "fp16": options.fp16(),
        "engine_cache_path": "trt",
        "engine_cache_prefix": prefix,
        "timing_cache_path": "trt",
        "profile": {"min": min, "opt": opt, "max": max, "cfg_doubled": options.cfg},
        "ep_context_embed_mode": 0,
        "cuda_graph": options.cuda_graph,
        "weight_stripped": options.weight_stripped,
        "ort_version": ortlib::ORT_VERSION,
    });
    Ok((out, settings))
}
