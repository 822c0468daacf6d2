//! Flag groups that several commands share, parsed by clap and turned into library options
//! here so that no CLI module depends on another (docs/DESIGN.md §1).

/// The remote engine's flags (`odelt sample`, `odelt serve`): evaluations on a KServe v2
/// inference server instead of ONNX Runtime here (docs/triton.md).
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// Send every evaluation to this KServe v2 gRPC server (Triton Inference Server serving the
    /// repository `odelt triton` wrote for this export), e.g. grpc://127.0.0.1:8001. The
    /// manifest stays local; --provider, --threads and --ort-library do not apply.
    #[arg(long, value_name = "grpc://HOST:PORT", conflicts_with_all = ["provider", "threads", "ort_library"])]
    pub remote: Option<String>,
    /// Limit of each call to the server (and of connecting), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 30_000, requires = "remote")]
    pub remote_timeout_ms: u64,
    /// Retries of a call the server answers UNAVAILABLE or cannot take (waiting 100 ms, then
    /// twice as long each time).
    #[arg(long, value_name = "N", default_value_t = 3, requires = "remote")]
    pub remote_retries: u32,
}

impl RemoteArgs {
    pub fn options(&self) -> Result<Option<odelt_runtime::RemoteOptions>, odelt_runtime::Error> {
        let Some(endpoint) = &self.remote else {
            return Ok(None);
        };
        if self.remote_timeout_ms == 0 {
            return Err(odelt_runtime::Error::InvalidArgument(
                "--remote-timeout-ms must be at least 1".into(),
            ));
        }
        Ok(Some(
            odelt_runtime::RemoteOptions::new(endpoint.as_str())
                .with_timeout(std::time::Duration::from_millis(self.remote_timeout_ms))
                .with_retries(self.remote_retries),
        ))
    }
}
