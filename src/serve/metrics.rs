//! Prometheus metrics of `odelt serve`, exported in the text format at `/metrics`.

use prometheus::core::Collector;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// Every metric the server records, registered in its own registry. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Answered requests by route and status code.
    pub requests: IntCounterVec,
    /// Time to answer, by route.
    pub request_seconds: HistogramVec,
    /// Engine calls and the rows they ran, by length: rows / calls is the batching achieved.
    pub engine_calls: IntCounterVec,
    pub engine_rows: IntCounterVec,
    /// Time of one engine call, by length.
    pub engine_seconds: HistogramVec,
    /// Sampling requests admitted and not yet finished (running or waiting for rows).
    pub in_flight: IntGauge,
    /// Rows queued for their length's next engine call.
    pub pending_rows: IntGaugeVec,
    /// Requests refused because `--max-queue` were already admitted.
    pub rejected: IntCounterVec,
}

/// Latency buckets from 1 ms to 60 s.
const SECONDS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

impl Metrics {
    pub(crate) fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<HistogramVec> {
            let metric = HistogramVec::new(HistogramOpts::new(name, help).buckets(SECONDS.to_vec()), labels)?;
            registry.register(Box::new(metric.clone()))?;
            Ok(metric)
        };
        let requests = counter(
            "odelt_requests_total",
            "HTTP requests answered, by route and status code",
            &["route", "status"],
        )?;
        let request_seconds = histogram(
            "odelt_request_duration_seconds",
            "Time from receiving a request to its answer, by route",
            &["route"],
        )?;
        let engine_calls = counter("odelt_engine_calls_total", "Engine calls, by length", &["length"])?;
        let engine_rows = counter(
            "odelt_engine_rows_total",
            "Rows evaluated in engine calls, by length (rows / calls = batching)",
            &["length"],
        )?;
        let engine_seconds = histogram(
            "odelt_engine_call_duration_seconds",
            "Time of one engine call, by length",
            &["length"],
        )?;
        let rejected = counter(
            "odelt_rejected_total",
            "Sampling requests refused with 503, by reason",
            &["reason"],
        )?;
        let in_flight = IntGauge::new(
            "odelt_queue_depth",
            "Sampling requests admitted and not finished (running or waiting for an engine call)",
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        let pending_rows = IntGaugeVec::new(
            Opts::new(
                "odelt_pending_rows",
                "Rows queued for their length's next engine call",
            ),
            &["length"],
        )?;
        registry.register(Box::new(pending_rows.clone()))?;
        Ok(Self {
            registry,
            requests,
            request_seconds,
            engine_calls,
            engine_rows,
            engine_seconds,
            in_flight,
            pending_rows,
            rejected,
        })
    }

    /// The sum of a counter over all its labels.
    pub(crate) fn total(metric: &IntCounterVec) -> u64 {
        metric
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> prometheus::Result<String> {
        prometheus::TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}
