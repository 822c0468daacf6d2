//! [`RuntimeOptions`]: how a runtime finds ONNX Runtime and runs the graphs.

use std::path::PathBuf;

use odelt_format::{Manifest, Precision};
use ort::session::builder::GraphOptimizationLevel;

use crate::remote::RemoteOptions;
use crate::session::{Provider, SessionConfig};

/// How [`crate::Runtime::open`] finds ONNX Runtime and runs the graphs.
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
    /// Precision of the engines to run; `None`: the export's own (fp16 for the `tensorrt-fp16`
    /// provider). A precision the plain graphs do not have (int8) needs built engines.
    pub precision: Option<Precision>,
    /// Sessions per length: concurrent callers of one length share this many sessions
    /// (`Session::run` needs exclusive access). Each holds its own copy of the working memory.
    pub sessions_per_engine: usize,
    /// Run every evaluation on a KServe v2 inference server (Triton) instead of ONNX Runtime
    /// here; the manifest stays local (`crate::remote`, docs/triton.md).
    pub remote: Option<RemoteOptions>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            ort_library: None,
            intra_threads: 0,
            provider: Provider::Cpu,
            max_batch: 0,
            prefer_built_engines: true,
            precision: None,
            sessions_per_engine: 1,
            remote: None,
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
    pub fn with_remote(mut self, remote: RemoteOptions) -> Self {
        self.remote = Some(remote);
        self
    }
    #[must_use]
    pub fn with_precision(mut self, precision: Option<Precision>) -> Self {
        self.precision = precision;
        self
    }
    #[must_use]
    pub fn with_sessions_per_engine(mut self, sessions: usize) -> Self {
        self.sessions_per_engine = sessions;
        self
    }
}

impl RuntimeOptions {
    /// The precision of the engines this runtime runs on `manifest`'s export (the manifest's
    /// name for it).
    pub fn precision_name<'a>(&self, manifest: &'a Manifest) -> &'a str {
        match (self.precision, self.provider) {
            (Some(p), _) => p.name(),
            (None, Provider::TensorRt { fp16: true, .. }) => Precision::Fp16.name(),
            (None, _) => &manifest.precision,
        }
    }

    /// True when the plain graphs run at the wanted precision without a built engine: the
    /// export's own precision, or fp16 under TensorRT (which builds its engine at load).
    pub(crate) fn plain_graph_runs(&self, manifest: &Manifest) -> bool {
        let wanted = self.precision_name(manifest);
        wanted == manifest.precision
            || (wanted == Precision::Fp16.name()
                && matches!(self.provider, Provider::TensorRt { fp16: true, .. }))
    }

    /// The session settings of an engine: a plain graph is optimized at load, a built engine
    /// was optimized when it was built.
    pub(crate) fn session(&self, optimize: bool) -> SessionConfig {
        SessionConfig {
            provider: self.provider,
            intra_threads: self.intra_threads,
            optimization: if optimize {
                GraphOptimizationLevel::All
            } else {
                GraphOptimizationLevel::Disable
            },
            verbose: false,
        }
    }
}
