//! The server's one shared state, and the admission and running of a sampling request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use odelt_runtime::{Runtime, SampleRequest, Samples};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::batcher::{LengthQueue, RequestControl, Stop};
use super::error::ApiError;
use super::metrics::Metrics;
use super::ServeReport;

/// Limits on what one request may ask for, and on how many run at once.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_n: usize,
    pub max_steps: u32,
    pub deadline: Duration,
    pub max_queue: usize,
    pub max_batch: usize,
    pub body_limit: usize,
    pub client_timeout: Duration,
}

/// Everything the handlers share, behind one `Arc`.
pub(crate) struct AppState {
    pub runtime: Arc<Runtime>,
    queues: BTreeMap<u32, LengthQueue>,
    pub metrics: Metrics,
    pub limits: Limits,
    admission: Arc<Semaphore>,
    draining: AtomicBool,
}

/// A sampling request's place among the `max_queue` admitted ones; released on drop.
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
    metrics: Metrics,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// Cancels a request's sampler when its handler is dropped before the answer (the client
/// disconnected), so its remaining evaluations never reach an engine.
struct CancelOnDrop(Option<Arc<RequestControl>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(control) = self.0.take() {
            tracing::info!("client went away: dropping its remaining work");
            control.cancel();
        }
    }
}

impl AppState {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        queues: BTreeMap<u32, LengthQueue>,
        metrics: Metrics,
        limits: Limits,
    ) -> Self {
        Self {
            runtime,
            queues,
            metrics,
            admission: Arc::new(Semaphore::new(limits.max_queue)),
            limits,
            draining: AtomicBool::new(false),
        }
    }

    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// A place for one more sampling request, or 503 when shutting down or full.
    pub(crate) fn admit(&self) -> Result<Admission, ApiError> {
        if self.is_draining() {
            self.metrics.rejected.with_label_values(&["draining"]).inc();
            return Err(ApiError::Draining);
        }
        let permit = self.admission.clone().try_acquire_owned().map_err(|_| {
            self.metrics.rejected.with_label_values(&["queue_full"]).inc();
            ApiError::QueueFull {
                max_queue: self.limits.max_queue,
            }
        })?;
        self.metrics.in_flight.inc();
        Ok(Admission {
            _permit: permit,
            metrics: self.metrics.clone(),
        })
    }

    /// Runs `request` at `length` on a blocking thread, its evaluations batched with those of
    /// the other requests of that length. Stops early (dropping its work) when the client goes
    /// away or the deadline passes.
    pub(crate) async fn sample(
        &self,
        request: SampleRequest,
        length: u32,
        admission: Admission,
    ) -> Result<Samples, ApiError> {
        let queue = self
            .queues
            .get(&length)
            .ok_or_else(|| ApiError::BadRequest(format!("length {length} is not served")))?;
        let control = Arc::new(RequestControl::new(Instant::now() + self.limits.deadline));
        let mut cancel_on_drop = CancelOnDrop(Some(control.clone()));
        let rows = queue.rows(control.clone());
        let runtime = self.runtime.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _admission = admission;
            odelt_runtime::sample::run(&request, length, &runtime.manifest().model, || Ok(rows))
        })
        .await;
        cancel_on_drop.0 = None;
        match result {
            Ok(Ok(samples)) => Ok(samples),
            Ok(Err(error)) => Err(match control.stopped() {
                Some(Stop::DeadlineExceeded) => ApiError::DeadlineExceeded(self.limits.deadline),
                Some(Stop::Cancelled) => ApiError::Internal("cancelled".into()),
                None => error.into(),
            }),
            Err(join) => Err(ApiError::Internal(format!("sampling task failed: {join}"))),
        }
    }

    pub(crate) fn report(&self) -> ServeReport {
        ServeReport {
            requests: Metrics::total(&self.metrics.requests),
            engine_calls: Metrics::total(&self.metrics.engine_calls),
            engine_rows: Metrics::total(&self.metrics.engine_rows),
        }
    }
}
