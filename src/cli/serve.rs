//! `odelt serve`: sampling over HTTP with iteration-level batching (docs/DESIGN.md §8, §13).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use odelt_runtime::{Precision, Provider};

use crate::serve::{ServeOptions, Server};

/// Serve sampling over HTTP: POST /v1/samples, GET /v1/models, /healthz, /readyz, /metrics
/// and a web page at /. Concurrent requests share engine calls (iteration-level batching).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Export folder written by `odelt export` (built engines are used when present).
    #[arg(long, value_name = "DIR")]
    pub engines: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: a free one, printed at start-up).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// ONNX Runtime intra-op threads per engine (0: ONNX Runtime's default).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Most rows in one engine call; evaluations of concurrent requests fill calls up to it.
    #[arg(long, value_name = "B", default_value_t = 64)]
    pub max_batch: usize,
    /// Microseconds an engine call waits for in-flight requests of its length that are between
    /// two evaluations: fuller calls against a little latency.
    #[arg(long, value_name = "US", default_value_t = 1000)]
    pub batch_wait_us: u64,
    /// Most sampling requests admitted at once; more are answered 503 with Retry-After.
    #[arg(long, value_name = "Q", default_value_t = 64)]
    pub max_queue: usize,
    /// Most samples in one request.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_n: usize,
    /// Most Euler steps in one request.
    #[arg(long, value_name = "T", default_value_t = 1024)]
    pub max_steps: u32,
    /// Deadline of one request from its admission, in milliseconds; past it: 504.
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    pub deadline_ms: u64,
    /// Time a client has to send a request's head, and again its body, in milliseconds; a
    /// slower client's connection is closed (head) or answered 408 (body).
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub client_timeout_ms: u64,
    /// Execution provider: cpu, cuda[:ID], cuda-graph[:ID] (CUDA graphs, one batch size), tensorrt[:ID] or tensorrt-fp16[:ID].
    #[arg(long, value_name = "P", default_value = "cpu")]
    pub provider: String,
    /// Precision of the engines to run: fp32, fp16 or int8 [default: the export's own]. int8
    /// needs engines built with `odelt engines build --backend ort-cpu --precision int8`.
    #[arg(long, value_name = "P")]
    pub precision: Option<Precision>,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, then the scripts/setup.sh venv).
    #[arg(long, value_name = "PATH")]
    pub ort_library: Option<PathBuf>,
    #[command(flatten)]
    pub remote: crate::args::RemoteArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let options = ServeOptions {
        host: args.host,
        port: args.port,
        threads: args.threads,
        max_batch: args.max_batch,
        batch_wait: Duration::from_micros(args.batch_wait_us),
        max_queue: args.max_queue,
        max_n: args.max_n,
        max_steps: args.max_steps,
        deadline: Duration::from_millis(args.deadline_ms),
        client_timeout: Duration::from_millis(args.client_timeout_ms),
        provider: Provider::parse(&args.provider)?,
        precision: args.precision,
        ort_library: args.ort_library,
        remote: args.remote.options()?,
        ..ServeOptions::new(args.engines)
    };
    let server = Server::bind(options)?;
    // The first line of stdout: scripts and tests read the address from it. Whoever started
    // the server may have stopped reading: a closed stdout is no reason to fail.
    let mut stdout = std::io::stdout();
    let _ = writeln!(
        stdout,
        "odelt serve: listening on http://{}",
        server.local_addr()?
    );
    let _ = stdout.flush();
    let report = server.run()?;
    let _ = writeln!(
        stdout,
        "odelt serve: stopped after {} requests; {} engine calls ran {} rows",
        report.requests, report.engine_calls, report.engine_rows
    );
    Ok(())
}
