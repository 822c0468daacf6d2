//! Iteration-level batching: one scheduler thread per length gathers the pending evaluations
//! of every in-flight request (an Euler step, a Dopri5 stage, both halves of guidance) into
//! one engine call of up to `max_batch` rows.
//!
//! A request's sampler runs on its own blocking thread and evaluates through [`BatchedRows`],
//! an `odelt_runtime::RowModel` that queues its rows (each with its own t and k) and waits
//! for their outputs. Rows are independent in the model, so a request's result does not
//! depend on which other rows shared its calls.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use odelt_runtime::{EngineRows, Error as RtError, LengthEngine, RowModel};

use super::metrics::Metrics;

/// Why a request stopped before its sampler finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The client went away (its handler was dropped).
    Cancelled,
    /// The per-request deadline passed.
    DeadlineExceeded,
}

/// Shared between a request's handler, its sampler thread and the scheduler.
#[derive(Debug)]
pub(crate) struct RequestControl {
    cancelled: AtomicBool,
    deadline: Instant,
}

impl RequestControl {
    pub(crate) fn new(deadline: Instant) -> Self {
        Self {
            cancelled: AtomicBool::new(false),
            deadline,
        }
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub(crate) fn stopped(&self) -> Option<Stop> {
        if self.cancelled.load(Ordering::Relaxed) {
            Some(Stop::Cancelled)
        } else if Instant::now() >= self.deadline {
            Some(Stop::DeadlineExceeded)
        } else {
            None
        }
    }
}

/// The rows of one evaluation of one request.
struct Evaluation {
    x: Vec<f32>,
    t: Vec<f32>,
    k: Vec<f32>,
    y: Vec<i64>,
    control: Arc<RequestControl>,
    /// v for the rows (in `x`'s buffer) and the engine time of the call, or the engine's error.
    reply: mpsc::SyncSender<Result<(Vec<f32>, Duration), String>>,
}

impl Evaluation {
    fn rows(&self) -> usize {
        self.y.len()
    }
}

/// The sending side of a length's scheduler.
#[derive(Clone)]
pub(crate) struct LengthQueue {
    length: u32,
    numel: usize,
    sender: mpsc::Sender<Evaluation>,
    /// Requests holding a [`BatchedRows`] of this length: the scheduler waits (briefly) for
    /// each of them to have an evaluation queued.
    active: Arc<AtomicUsize>,
    metrics: Metrics,
}

impl LengthQueue {
    /// The rows model of one request.
    pub(crate) fn rows(&self, control: Arc<RequestControl>) -> BatchedRows {
        self.active.fetch_add(1, Ordering::SeqCst);
        BatchedRows {
            queue: self.clone(),
            control,
        }
    }
}

/// A request's view of its length's scheduler.
pub(crate) struct BatchedRows {
    queue: LengthQueue,
    control: Arc<RequestControl>,
}

impl Drop for BatchedRows {
    fn drop(&mut self) {
        self.queue.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The error a stopped request's sampler returns; the handler answers from the
/// [`RequestControl`], not from this message.
fn stopped_error(stop: Stop) -> RtError {
    RtError::Internal(format!("request stopped: {stop:?}"))
}

impl RowModel for BatchedRows {
    fn length(&self) -> u32 {
        self.queue.length
    }

    fn run(
        &mut self,
        x: &[f32],
        t: &[f32],
        k: &[f32],
        y: &[i64],
        out: &mut [f32],
    ) -> odelt_runtime::Result<Duration> {
        if let Some(stop) = self.control.stopped() {
            return Err(stopped_error(stop));
        }
        if x.len() != y.len() * self.queue.numel || out.len() != x.len() {
            return Err(RtError::Internal(format!(
                "{} rows with {} inputs and {} outputs",
                y.len(),
                x.len(),
                out.len()
            )));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        let evaluation = Evaluation {
            x: x.to_vec(),
            t: t.to_vec(),
            k: k.to_vec(),
            y: y.to_vec(),
            control: self.control.clone(),
            reply,
        };
        let label = self.queue.length.to_string();
        let pending = self.queue.metrics.pending_rows.with_label_values(&[&label]);
        pending.add(y.len() as i64);
        if self.queue.sender.send(evaluation).is_err() {
            pending.sub(y.len() as i64);
            return Err(RtError::Internal(format!(
                "the scheduler of length {} has stopped",
                self.queue.length
            )));
        }
        let wait = self.control.deadline.saturating_duration_since(Instant::now());
        match answer.recv_timeout(wait) {
            Ok(Ok((v, engine))) => {
                out.copy_from_slice(&v);
                Ok(engine)
            }
            Ok(Err(message)) => Err(RtError::Backend(message)),
            // Dropped unrun (the request was cancelled) or past the deadline.
            Err(_) => Err(stopped_error(
                self.control.stopped().unwrap_or(Stop::DeadlineExceeded),
            )),
        }
    }
}

/// Starts the scheduler thread of `engine`'s length. `batch_wait`: how long a call waits for
/// active requests that have no evaluation queued yet (see `Scheduler::gather`). `device`:
/// shared by the schedulers of every length, held during each engine call.
pub(crate) fn start(
    engine: Arc<dyn LengthEngine>,
    max_batch: usize,
    batch_wait: Duration,
    device: Arc<Mutex<()>>,
    metrics: Metrics,
) -> std::io::Result<(LengthQueue, JoinHandle<()>)> {
    let (sender, receiver) = mpsc::channel();
    let queue = LengthQueue {
        length: engine.length(),
        numel: engine.image_numel(),
        sender,
        active: Arc::new(AtomicUsize::new(0)),
        metrics: metrics.clone(),
    };
    let scheduler = Scheduler {
        rows: EngineRows { engine, max_batch },
        max_batch,
        batch_wait,
        receiver,
        active: queue.active.clone(),
        metrics,
        held: None,
        device,
    };
    let thread = std::thread::Builder::new()
        .name(format!("odelt-l{}", queue.length))
        .spawn(move || scheduler.run())?;
    Ok((queue, thread))
}

struct Scheduler {
    rows: EngineRows,
    max_batch: usize,
    /// How long a scheduler waits for requests that are between two evaluations (their
    /// host-side solver step takes microseconds, but their thread must be woken up) before
    /// calling the engine with fewer rows. Without it the requests just answered would miss
    /// the next call and alternate between half-full calls.
    batch_wait: Duration,
    receiver: mpsc::Receiver<Evaluation>,
    active: Arc<AtomicUsize>,
    metrics: Metrics,
    /// An evaluation taken from the queue that did not fit the last call: first in the next.
    held: Option<Evaluation>,
    /// One engine call at a time across lengths: calls of different lengths running at once
    /// would share the same cores (or GPU) through oversubscribed intra-op thread pools and
    /// each take longer, while waiting lets the other lengths' queues fill their next calls.
    device: Arc<Mutex<()>>,
}

impl Scheduler {
    /// Until every sender is gone: gather a batch, run it, answer each evaluation.
    fn run(mut self) {
        let label = self.rows.engine.length().to_string();
        let (mut x, mut t, mut k, mut y, mut v) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        while let Some(batch) = self.gather() {
            let rows: usize = batch.iter().map(Evaluation::rows).sum();
            self.metrics
                .pending_rows
                .with_label_values(&[&label])
                .sub(rows as i64);
            // Work of stopped requests is dropped unrun; dropping its reply sender wakes the
            // request's thread.
            let batch: Vec<Evaluation> = batch
                .into_iter()
                .filter(|e| e.control.stopped().is_none())
                .collect();
            if batch.is_empty() {
                continue;
            }
            x.clear();
            t.clear();
            k.clear();
            y.clear();
            for e in &batch {
                x.extend_from_slice(&e.x);
                t.extend_from_slice(&e.t);
                k.extend_from_slice(&e.k);
                y.extend_from_slice(&e.y);
            }
            v.resize(x.len(), 0.0);
            let result = {
                // A poisoned lock only means another length's scheduler panicked mid-call; the
                // device itself is fine.
                let _device = self
                    .device
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                self.rows.run(&x, &t, &k, &y, &mut v)
            };
            let calls = y.len().div_ceil(self.max_batch);
            self.metrics
                .engine_calls
                .with_label_values(&[&label])
                .inc_by(calls as u64);
            self.metrics
                .engine_rows
                .with_label_values(&[&label])
                .inc_by(y.len() as u64);
            match result {
                Ok(elapsed) => {
                    self.metrics
                        .engine_seconds
                        .with_label_values(&[&label])
                        .observe(elapsed.as_secs_f64() / calls as f64);
                    let mut offset = 0;
                    for mut e in batch {
                        let len = e.x.len();
                        e.x.copy_from_slice(&v[offset..offset + len]);
                        offset += len;
                        // A request that gave up in the meantime no longer listens: fine.
                        let _ = e.reply.send(Ok((e.x, elapsed)));
                    }
                }
                Err(error) => {
                    tracing::error!("length {label}: engine call of {} rows failed: {error}", y.len());
                    for e in batch {
                        let _ = e.reply.send(Err(error.to_string()));
                    }
                }
            }
        }
        tracing::debug!("scheduler of length {label} stopped");
    }

    /// The next batch: the held evaluation or the next one queued (blocking), then whatever
    /// else is queued while it fits `max_batch` rows, waiting up to `batch_wait` for active
    /// requests that have nothing queued yet. `None` when every sender is gone.
    fn gather(&mut self) -> Option<Vec<Evaluation>> {
        let first = match self.held.take() {
            Some(e) => e,
            None => self.receiver.recv().ok()?,
        };
        let mut rows = first.rows();
        let mut batch = vec![first];
        let window_end = Instant::now() + self.batch_wait;
        while rows < self.max_batch {
            let next = match self.receiver.try_recv() {
                Ok(e) => e,
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {
                    if batch.len() >= self.active.load(Ordering::SeqCst) {
                        break;
                    }
                    match self
                        .receiver
                        .recv_timeout(window_end.saturating_duration_since(Instant::now()))
                    {
                        Ok(e) => e,
                        Err(_) => break,
                    }
                }
            };
            if rows + next.rows() > self.max_batch {
                self.held = Some(next);
                break;
            }
            rows += next.rows();
            batch.push(next);
        }
        Some(batch)
    }
}
