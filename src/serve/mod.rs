//! `odelt serve`: sampling as an HTTP service with iteration-level batching
//! (docs/DESIGN.md §8 and §13).
//!
//! - [`Server::bind`] opens the runtime and every exported length's engine, starts one
//!   scheduler thread per length ([`batcher`]) and binds the socket; [`Server::run`] serves
//!   until SIGTERM or Ctrl-C, then lets accepted requests finish.
//! - Each request runs the ordinary sampler (`odelt_runtime::sample::run`: noise, labels,
//!   guidance, Euler or Dopri5) on a blocking thread; its evaluations go to its length's
//!   scheduler, which puts the rows of every in-flight request into shared engine calls.
//! - [`api`]: the request body and its answer; [`handlers`]: thin axum handlers; [`error`]:
//!   the one mapping from errors to status codes; [`metrics`]: Prometheus text; [`state`]: the
//!   one `Arc<AppState>`; `page.html`: the web page at `/`.

pub mod api;
mod batcher;
mod error;
mod handlers;
mod http;
mod metrics;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use odelt_runtime::{Precision, Provider, RemoteOptions, Runtime, RuntimeOptions};

use crate::bad_input;
pub use error::ApiError;
use metrics::Metrics;
use state::AppState;
pub use state::Limits;

/// How `odelt serve` runs. [`ServeOptions::new`] gives the CLI's defaults.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Export folder (`odelt export`), engines built by `odelt engines build` used when present.
    pub engines: PathBuf,
    pub host: String,
    /// 0 picks a free port ([`Server::local_addr`] tells which).
    pub port: u16,
    /// ONNX Runtime intra-op threads per engine (0: ONNX Runtime's default).
    pub threads: usize,
    /// Most rows in one engine call; the scheduler fills calls up to it.
    pub max_batch: usize,
    /// How long an engine call waits for active requests of its length that have no
    /// evaluation queued yet (between two steps): fuller calls against a little latency.
    pub batch_wait: Duration,
    /// Most requests admitted at once (running or waiting); more are answered 503.
    pub max_queue: usize,
    /// Most samples in one request.
    pub max_n: usize,
    /// Most Euler steps in one request.
    pub max_steps: u32,
    /// Time a request may take from admission; past it the request stops with 504.
    pub deadline: Duration,
    /// Largest request body in bytes.
    pub body_limit: usize,
    /// Time a client has to send a request's head, and again its body: a client that trickles
    /// bytes would otherwise hold a connection (and its body a task) for as long as it likes.
    pub client_timeout: Duration,
    pub provider: Provider,
    /// Precision of the engines (`None`: the export's own).
    pub precision: Option<Precision>,
    pub ort_library: Option<PathBuf>,
    /// Engine calls go to this KServe v2 server (Triton) instead of ONNX Runtime here.
    pub remote: Option<RemoteOptions>,
}

impl ServeOptions {
    pub fn new(engines: impl Into<PathBuf>) -> Self {
        Self {
            engines: engines.into(),
            host: "127.0.0.1".into(),
            port: 8080,
            threads: 0,
            max_batch: 64,
            batch_wait: Duration::from_millis(1),
            max_queue: 64,
            max_n: 64,
            max_steps: 1024,
            deadline: Duration::from_secs(60),
            body_limit: 64 * 1024,
            client_timeout: Duration::from_secs(10),
            provider: Provider::Cpu,
            precision: None,
            ort_library: None,
            remote: None,
        }
    }
}

/// A bound, ready server: engines open, schedulers running, socket listening.
pub struct Server {
    tokio: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    state: Arc<AppState>,
    schedulers: Vec<JoinHandle<()>>,
}

/// What a server did, reported when it stops.
#[derive(Debug, Clone, Copy)]
pub struct ServeReport {
    pub requests: u64,
    pub engine_calls: u64,
    pub engine_rows: u64,
}

impl Server {
    /// Opens the export and every length's engine (so the first request pays no session
    /// creation), starts the schedulers and binds `host:port`.
    pub fn bind(options: ServeOptions) -> anyhow::Result<Self> {
        for (value, flag) in [
            (options.max_batch, "--max-batch"),
            (options.max_queue, "--max-queue"),
            (options.max_n, "--max-n"),
        ] {
            if value == 0 {
                return Err(bad_input!("{flag} must be at least 1"));
            }
        }
        let mut runtime_options = RuntimeOptions::default()
            .with_provider(options.provider)
            .with_intra_threads(options.threads)
            .with_max_batch(options.max_batch)
            .with_precision(options.precision);
        runtime_options.ort_library = options.ort_library.clone();
        runtime_options.remote = options.remote.clone();
        let runtime = Arc::new(Runtime::open(&options.engines, runtime_options)?);
        let metrics = Metrics::new().context("registering metrics")?;
        let mut queues = std::collections::BTreeMap::new();
        let mut schedulers = Vec::new();
        let device = Arc::new(std::sync::Mutex::new(()));
        for length in runtime.lengths() {
            let engine = runtime.length_engine(length)?;
            // Remote engines share no cores here: each length's calls go out as they come.
            let device = match options.remote {
                Some(_) => Arc::new(std::sync::Mutex::new(())),
                None => device.clone(),
            };
            let (queue, thread) = batcher::start(
                engine,
                options.max_batch,
                options.batch_wait,
                device,
                metrics.clone(),
            )?;
            queues.insert(length, queue);
            schedulers.push(thread);
        }
        let listener = std::net::TcpListener::bind((options.host.as_str(), options.port))
            .map_err(|e| bad_input!("cannot listen on {}:{}: {e}", options.host, options.port))?;
        listener.set_nonblocking(true).context("socket")?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("odelt-serve")
            .build()
            .context("starting the tokio runtime")?;
        let limits = Limits {
            max_n: options.max_n,
            max_steps: options.max_steps,
            deadline: options.deadline,
            max_queue: options.max_queue,
            max_batch: options.max_batch,
            body_limit: options.body_limit,
            client_timeout: options.client_timeout,
        };
        let state = Arc::new(AppState::new(runtime, queues, metrics, limits));
        tracing::info!(
            "serving {} (lengths {:?}), max batch {}, max queue {}",
            options.engines.display(),
            state.runtime.lengths(),
            options.max_batch,
            options.max_queue
        );
        Ok(Self {
            tokio,
            listener,
            state,
            schedulers,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until SIGTERM or Ctrl-C. Then no new connection is accepted, `/readyz` answers
    /// 503, and every accepted request is answered before this returns.
    pub fn run(self) -> anyhow::Result<ServeReport> {
        let Server {
            tokio,
            listener,
            state,
            schedulers,
        } = self;
        let app = handlers::router(state.clone());
        let draining = state.clone();
        let header_timeout = state.limits.client_timeout;
        tokio.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).context("socket")?;
            let shutdown = async move {
                shutdown_signal().await;
                draining.start_draining();
            };
            http::serve(listener, app, header_timeout, shutdown).await;
            anyhow::Ok(())
        })?;
        let report = state.report();
        drop(state);
        // Blocking tasks of requests whose clients left stop at their next evaluation; once the
        // runtime has waited for them, every queue's sender is gone and the schedulers exit.
        tokio.shutdown_timeout(Duration::from_secs(30));
        for thread in schedulers {
            if thread.join().is_err() {
                tracing::error!("a scheduler thread panicked");
            }
        }
        Ok(report)
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal: finishing accepted requests, refusing new ones");
}
