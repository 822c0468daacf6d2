//! The one place ONNX Runtime sessions are configured: execution providers, threads,
//! optimization level. The runtime's engines and decoder and the engine builder all start
//! from [`builder`], and a provider the loaded library lacks is always the same error
//! ([`Error::Provider`], exit code 2), never a silent CPU fallback.

use ort::environment::Environment;
use ort::ep::ExecutionProviderDispatch;
use ort::logging::LogLevel;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::Session;

use crate::error::{invalid, Error, Result};
use crate::ortlib;

/// Where the graphs run. GPU providers are registered with `error_on_failure`: when the loaded
/// ONNX Runtime lacks them, opening an engine fails instead of silently running on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// The CUDA provider (from `onnxruntime-gpu`) on this device. `cuda_graph`: ONNX Runtime
    /// captures the engine call in a CUDA graph on the first run and replays it after; inputs
    /// and outputs then live in device buffers at fixed addresses (IoBinding), one batch size
    /// per session.
    Cuda { device_id: i32, cuda_graph: bool },
    /// The TensorRT provider (TensorRT 10 for CUDA 13 beside `onnxruntime-gpu`), CUDA for the
    /// nodes TensorRT does not take.
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

    /// `cpu`, `cuda`, `cuda:1`, `cuda-graph[:ID]`, `tensorrt`, `tensorrt:0`, `tensorrt-fp16`.
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
            "cuda" => Provider::Cuda {
                device_id: device,
                cuda_graph: false,
            },
            "cuda-graph" => Provider::Cuda {
                device_id: device,
                cuda_graph: true,
            },
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
                    "unknown provider '{text}'; expected cpu, cuda[:ID], cuda-graph[:ID], tensorrt[:ID] or tensorrt-fp16[:ID]"
                )
            }
        })
    }
}

impl Provider {
    /// The provider's name in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Cpu => "CPU",
            Provider::Cuda { .. } => "CUDA",
            Provider::TensorRt { .. } => "TensorRT",
        }
    }

    /// The execution providers to register, with ONNX Runtime's default settings.
    pub fn dispatch(&self) -> Vec<ExecutionProviderDispatch> {
        match *self {
            Provider::Cpu => Vec::new(),
            Provider::Cuda {
                device_id,
                cuda_graph,
            } => vec![ort::ep::CUDA::default()
                .with_device_id(device_id)
                .with_cuda_graph(cuda_graph)
                // fp32 means fp32: ONNX Runtime's default TF32 matrix products carry 10
                // mantissa bits (≈ 1e-3 relative), and PyTorch's fp32 default does not use them.
                .with_tf32(false)
                .build()
                .error_on_failure()],
            Provider::TensorRt { device_id, fp16 } => vec![
                ort::ep::TensorRT::default()
                    .with_device_id(device_id)
                    .with_fp16(fp16)
                    .build()
                    .error_on_failure(),
                cuda(device_id),
            ],
        }
    }
}

/// The CUDA provider on `device_id` (as TensorRT's fallback), failing rather than falling back.
pub fn cuda(device_id: i32) -> ExecutionProviderDispatch {
    ort::ep::CUDA::default()
        .with_device_id(device_id)
        .build()
        .error_on_failure()
}

/// What a session needs besides its model.
#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    pub provider: Provider,
    /// ONNX Runtime intra-op threads; 0 lets ONNX Runtime choose (one per core).
    pub intra_threads: usize,
    pub optimization: GraphOptimizationLevel,
    /// ONNX Runtime's verbose log on stderr.
    pub verbose: bool,
}

/// A session builder for `config`, its provider registered.
pub fn builder(env: &Environment, config: &SessionConfig) -> Result<SessionBuilder> {
    let backend = |e: ort::Error<SessionBuilder>| Error::Backend(e.to_string());
    // Worker threads otherwise keep spinning after a call returns and steal the cores from the
    // next engine (or process): with engines used in turn, calls took up to 3× longer.
    let mut builder = Session::builder(env)
        .map_err(|e| Error::Backend(e.to_string()))?
        .with_optimization_level(config.optimization)
        .map_err(backend)?
        .with_config_entry("session.force_spinning_stop", "1")
        .map_err(backend)?;
    if config.intra_threads > 0 {
        builder = builder
            .with_intra_threads(config.intra_threads)
            .map_err(backend)?;
    }
    if config.verbose {
        builder = builder.with_log_level(LogLevel::Verbose).map_err(backend)?;
    }
    register(builder, config.provider, config.provider.dispatch())
}

/// Registers `dispatch` (the execution providers of `provider`, possibly with settings of the
/// caller's own) on `builder`; a provider the loaded library lacks is [`Error::Provider`].
pub fn register(
    builder: SessionBuilder,
    provider: Provider,
    dispatch: Vec<ExecutionProviderDispatch>,
) -> Result<SessionBuilder> {
    if dispatch.is_empty() {
        return Ok(builder);
    }
    builder
        .with_execution_providers(dispatch)
        .map_err(|e| missing(provider, &e.to_string()))
}

/// Fails with [`Error::Provider`] unless the loaded library has `provider`.
pub fn check_available(env: &Environment, provider: Provider) -> Result<()> {
    let builder = Session::builder(env).map_err(|e| Error::Backend(e.to_string()))?;
    register(builder, provider, provider.dispatch()).map(drop)
}

/// The error for a provider the loaded library lacks: which library, why, what to install.
fn missing(provider: Provider, detail: &str) -> Error {
    let library = ortlib::loaded_library()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "not loaded".into());
    let detail = detail.lines().next().unwrap_or("").trim().trim_end_matches('.');
    let tensorrt = if matches!(provider, Provider::TensorRt { .. }) {
        " and TensorRT 10 for CUDA 13 (libnvinfer.so.10, e.g. `pip install --extra-index-url \
         https://pypi.nvidia.com tensorrt-cu13-libs`)"
    } else {
        ""
    };
    Error::Provider(format!(
        "the {} execution provider is not available in the loaded ONNX Runtime ({library}): {detail}; \
         install onnxruntime-gpu==1.31.1 (a CUDA 13 build, cuDNN 9){tensorrt} on a machine with an NVIDIA \
         GPU and point ORT_DYLIB_PATH at its libonnxruntime.so, or use the CPU provider",
        provider.name()
    ))
}
