//! Backends and their ONNX Runtime execution providers.

use odelt_runtime::Provider;

use crate::error::{invalid, Result};

/// What an engine is built for; the names are the manifest's `EngineEntry::backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// ONNX Runtime's CPU provider: an offline-optimized model.
    OrtCpu,
    /// ONNX Runtime's CUDA provider: an offline-optimized model (CUDA provider settings recorded).
    OrtCuda,
    /// TensorRT through ONNX Runtime's TensorRT provider: an EP-context model and engine cache.
    TensorRt,
}

impl Backend {
    pub const NAMES: [&'static str; 3] = ["ort-cpu", "ort-cuda", "tensorrt"];

    pub fn name(self) -> &'static str {
        match self {
            Backend::OrtCpu => "ort-cpu",
            Backend::OrtCuda => "ort-cuda",
            Backend::TensorRt => "tensorrt",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "ort-cpu" => Backend::OrtCpu,
            "ort-cuda" => Backend::OrtCuda,
            "tensorrt" => Backend::TensorRt,
            _ => return invalid!("unknown backend '{text}'; expected ort-cpu, ort-cuda or tensorrt"),
        })
    }

    /// The runtime provider that runs this backend's engines.
    pub fn provider(self, device_id: i32, fp16: bool) -> Provider {
        match self {
            Backend::OrtCpu => Provider::Cpu,
            Backend::OrtCuda => Provider::Cuda {
                device_id,
                cuda_graph: false,
            },
            Backend::TensorRt => Provider::TensorRt { device_id, fp16 },
        }
    }

    /// The backend a runtime provider's engines are built for.
    pub fn of_provider(provider: Provider) -> Self {
        match provider {
            Provider::Cpu => Backend::OrtCpu,
            Provider::Cuda { .. } => Backend::OrtCuda,
            Provider::TensorRt { .. } => Backend::TensorRt,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// ONNX Runtime graph optimization level of an offline-optimized model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CpuLevel {
    /// Constant folding and redundant-node removal only.
    Basic,
    /// Basic plus the fusions (LayerNorm, GELU, MatMul+Add, attention): the highest level
    /// whose saved model is portable. The default.
    #[default]
    Extended,
    /// Extended plus layout transforms (NCHWc): ONNX Runtime warns that the saved model holds
    /// hardware-specific optimizations and should only run where it was built.
    All,
}

impl CpuLevel {
    pub fn name(self) -> &'static str {
        match self {
            CpuLevel::Basic => "basic",
            CpuLevel::Extended => "extended",
            CpuLevel::All => "all",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "basic" => CpuLevel::Basic,
            "extended" => CpuLevel::Extended,
            "all" => CpuLevel::All,
            _ => return invalid!("unknown optimization level '{text}'; expected basic, extended or all"),
        })
    }

    pub(crate) fn ort(self) -> ort::session::builder::GraphOptimizationLevel {
        use ort::session::builder::GraphOptimizationLevel as L;
        match self {
            CpuLevel::Basic => L::Level1,
            CpuLevel::Extended => L::Level2,
            CpuLevel::All => L::All,
        }
    }
}
