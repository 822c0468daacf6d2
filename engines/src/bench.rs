//! Latency calibration: one engine call per length and batch, after warm-up.
//!
//! Lengths are measured round-robin (l₁, l₂, …, l₁, l₂, …) rather than one after another, so
//! that load from other processes on a shared machine shifts every length alike and the
//! ratios between lengths stay meaningful.

use std::path::{Path, PathBuf};
use std::time::Duration;

use odelt_format::manifest::{Calibration, Manifest};
use odelt_runtime::{noise, Precision, Provider, Runtime, RuntimeOptions};

use crate::error::{invalid, Result};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Batch sizes (rows per engine call).
    pub batches: Vec<u32>,
    /// Timed calls per (length, batch).
    pub runs: u32,
    /// Untimed calls per (length, batch) before timing.
    pub warmup: u32,
    /// ONNX Runtime intra-op threads (0: ONNX Runtime's choice, recorded as the number of
    /// cores it uses by default).
    pub threads: usize,
    pub provider: Provider,
    /// Use built engines for the provider's backend when present (else the plain graphs).
    pub prefer_built_engines: bool,
    /// Lengths to measure; `None` measures every exported length.
    pub lengths: Option<Vec<u32>>,
    /// Precision of the engines to measure; `None`: the export's own.
    pub precision: Option<Precision>,
    pub ort_library: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            batches: vec![1],
            runs: 10,
            warmup: 2,
            threads: 0,
            provider: Provider::Cpu,
            prefer_built_engines: true,
            lengths: None,
            precision: None,
            ort_library: None,
        }
    }
}

/// One (length, batch) result.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub length: u32,
    pub batch: u32,
    /// The file the engine loaded and whether it is a built engine.
    pub file: String,
    pub built: bool,
    pub calibration: Calibration,
}

/// The intra-op threads ONNX Runtime uses for `requested` (0 = one per core).
pub fn resolved_threads(requested: usize) -> u32 {
    if requested > 0 {
        requested as u32
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    }
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

/// Measures one engine call per exported length and batch. `progress` gets (done, total)
/// calls.
pub fn bench(
    dir: &Path,
    options: &BenchOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<Vec<Measurement>> {
    if options.batches.is_empty() || options.batches.contains(&0) {
        return invalid!("--batch needs positive batch sizes (got {:?})", options.batches);
    }
    if options.runs == 0 {
        return invalid!("--runs must be at least 1");
    }
    let rt = Runtime::open(
        dir,
        RuntimeOptions {
            ort_library: options.ort_library.clone(),
            intra_threads: options.threads,
            provider: options.provider,
            prefer_built_engines: options.prefer_built_engines,
            precision: options.precision,
            ..Default::default()
        },
    )?;
    let lengths = match &options.lengths {
        Some(ls) => {
            for l in ls {
                rt.resolve_length(Some(*l))?;
            }
            ls.clone()
        }
        None => rt.lengths(),
    };
    let engines = lengths
        .iter()
        .map(|l| rt.engine(*l))
        .collect::<odelt_runtime::Result<Vec<_>>>()?;
    let model = &rt.manifest().model;
    let precision = rt.options().precision_name(rt.manifest()).to_string();
    let numel = model.image_numel();
    let level = model.flow_level() as f32;
    let label = 0i64.min(model.num_classes as i64);
    let per_batch = (options.warmup + options.runs) as u64 * engines.len() as u64;
    let total = per_batch * options.batches.len() as u64;
    let mut done = 0;
    let mut out = Vec::new();
    for &batch in &options.batches {
        let b = batch as usize;
        let x = noise::normal(batch as u64, b * numel);
        let t = vec![0.5f32; b];
        let k = vec![level; b];
        let y = vec![label; b];
        let mut v = vec![0.0f32; b * numel];
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); engines.len()];
        for round in 0..options.warmup + options.runs {
            for (engine, times) in engines.iter().zip(&mut times) {
                let elapsed: Duration = engine.run(&x, &t, &k, &y, &mut v)?;
                if round >= options.warmup {
                    times.push(elapsed.as_secs_f64() * 1e3);
                }
                done += 1;
                progress(done, total);
            }
        }
        for (engine, mut times) in engines.iter().zip(times) {
            times.sort_by(f64::total_cmp);
            out.push(Measurement {
                length: engine.length(),
                batch,
                file: engine
                    .file()
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                built: engine.is_built(),
                calibration: Calibration {
                    backend: options.provider.backend().into(),
                    precision: Some(precision.clone()),
                    batch,
                    threads: resolved_threads(options.threads),
                    ms_median: median(&times),
                    ms_min: times[0],
                    ms_max: times[times.len() - 1],
                    runs: options.runs,
                },
            });
        }
    }
    Ok(out)
}

/// Writes the measurements into `dir/manifest.json` (atomically), replacing earlier ones of
/// the same backend, precision, batch and threads.
pub fn record_calibration(dir: &Path, measurements: &[Measurement]) -> Result<()> {
    let mut manifest = Manifest::read(dir)?;
    let export_precision = manifest.precision.clone();
    let precision = |c: &Calibration| c.precision.clone().unwrap_or_else(|| export_precision.clone());
    for m in measurements {
        let entry = manifest.entry_mut(m.length)?;
        let c = &m.calibration;
        entry.calibration.retain(|e| {
            !(e.backend == c.backend
                && precision(e) == precision(c)
                && e.batch == c.batch
                && e.threads == c.threads)
        });
        entry.calibration.push(c.clone());
        entry.calibration.sort_by(|a, b| {
            (a.backend.as_str(), a.threads, a.batch).cmp(&(b.backend.as_str(), b.threads, b.batch))
        });
    }
    manifest.write(dir)?;
    Ok(())
}
