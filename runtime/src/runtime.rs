//! [`Runtime`]: an export folder opened for sampling — its manifest, one engine per length
//! opened on first use, sampling, and the engine choice for a latency budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::Environment;

use crate::engine::Engine;
use crate::error::{invalid, Error, Result};
use crate::length_engine::LengthEngine;
use crate::options::RuntimeOptions;
use crate::ortlib;
use crate::remote::RemoteClient;
use crate::sample::{self, EngineRows, SampleRequest, Samples};
use odelt_format::manifest::{Calibration, LengthEntry, Manifest};

/// An export folder ready to sample from. `Send + Sync`: share it (e.g. in an `Arc`) between
/// threads; each length's engine opens on first use and stays open.
pub struct Runtime {
    dir: PathBuf,
    manifest: Manifest,
    options: RuntimeOptions,
    /// ONNX Runtime, for local engines; `None` when the engines are remote.
    env: Option<Environment>,
    remote: Option<Arc<RemoteClient>>,
    engines: Mutex<HashMap<u32, Arc<Engine>>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish()
    }
}

impl Runtime {
    /// Reads `DIR/manifest.json`, checks that the files it names exist, and loads ONNX Runtime.
    /// No graph is opened yet. With `options.remote`, only the manifest is read here: the
    /// server and its models are checked instead (`crate::remote`).
    pub fn open(dir: impl AsRef<Path>, options: RuntimeOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::NotFound(format!(
                "engine folder {} does not exist; run `odelt export` first",
                dir.display()
            )));
        }
        let manifest = Manifest::read(&dir)?;
        if manifest.lengths.is_empty() {
            return invalid!("{}: the manifest lists no exported lengths", dir.display());
        }
        if manifest.io_precision != "fp32" {
            return invalid!(
                "{}: io_precision '{}' is not supported by this runtime (fp32 only)",
                dir.display(),
                manifest.io_precision
            );
        }
        for entry in &manifest.lengths {
            manifest.model.check_length(entry.length).map_err(|e| {
                Error::InvalidArgument(format!(
                    "{}: manifest lists {e}",
                    dir.join("manifest.json").display()
                ))
            })?;
            let file = dir.join(&entry.file);
            if options.remote.is_none() && !file.is_file() {
                return Err(Error::NotFound(format!(
                    "{}: graph for length {} is missing",
                    file.display(),
                    entry.length
                )));
            }
        }
        let (env, remote) = match &options.remote {
            None => {
                manifest.check_weights_size(&dir)?;
                (Some(ortlib::environment(options.ort_library.as_deref())?), None)
            }
            Some(remote) => (None, Some(Arc::new(RemoteClient::connect(remote, &manifest)?))),
        };
        Ok(Self {
            dir,
            manifest,
            options,
            env,
            remote,
            engines: Mutex::new(HashMap::new()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn options(&self) -> &RuntimeOptions {
        &self.options
    }

    /// Image shape (C, H, W).
    pub fn image_shape(&self) -> [usize; 3] {
        let m = &self.manifest.model;
        [
            m.in_channels as usize,
            m.input_size as usize,
            m.input_size as usize,
        ]
    }

    /// Exported lengths, ascending.
    pub fn lengths(&self) -> Vec<u32> {
        let mut lengths: Vec<u32> = self.manifest.lengths.iter().map(|e| e.length).collect();
        lengths.sort_unstable();
        lengths
    }

    /// The engine of `length` wherever it runs: here (opened on first use) or on the server.
    pub fn length_engine(&self, length: u32) -> Result<Arc<dyn LengthEngine>> {
        match &self.remote {
            Some(remote) => {
                self.manifest.entry(length)?;
                Ok(remote.engine(length)?)
            }
            None => Ok(self.engine(length)?),
        }
    }

    /// The local ONNX Runtime engine for `length`, opening its session on first use.
    pub fn engine(&self, length: u32) -> Result<Arc<Engine>> {
        let entry = self.manifest.entry(length)?;
        let Some(env) = &self.env else {
            return invalid!(
                "{}: this runtime's engines run on {}; there is no local engine",
                self.dir.display(),
                self.options
                    .remote
                    .as_ref()
                    .map_or("a server", |r| r.endpoint.as_str())
            );
        };
        let mut engines = self
            .engines
            .lock()
            .map_err(|_| Error::Internal("engine table lock poisoned".into()))?;
        if let Some(engine) = engines.get(&length) {
            return Ok(engine.clone());
        }
        let engine = Arc::new(Engine::open(
            env,
            &self.dir,
            &self.manifest,
            entry,
            &self.options,
        )?);
        engines.insert(length, engine.clone());
        Ok(engine)
    }

    /// The length a request asks for (`None` = the largest exported), checked against the
    /// model's valid lengths and the export.
    pub fn resolve_length(&self, length: Option<u32>) -> Result<u32> {
        let manifest = self.manifest();
        let length = match length {
            Some(l) => l,
            None => manifest
                .largest_length()
                .ok_or_else(|| Error::InvalidArgument("no exported lengths".into()))?,
        };
        manifest.model.check_length(length)?;
        manifest.entry(length)?;
        Ok(length)
    }

    /// Samples N images (docs/DESIGN.md §7). Safe to call from several threads at once.
    pub fn sample(&self, req: &SampleRequest) -> Result<Samples> {
        let length = self.resolve_length(req.length)?;
        sample::run(req, length, &self.manifest.model, || {
            Ok(EngineRows {
                engine: self.length_engine(length)?,
                max_batch: self.options.max_batch,
            })
        })
    }
}

/// What [`Runtime::pick_for_budget`] chose.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetPick {
    pub length: u32,
    pub steps: u32,
    /// Predicted time of the whole solve (steps × one evaluation), from the calibration.
    pub predicted_ms: f64,
}

impl Runtime {
    /// The calibration entries of `entry` measured for this runtime's backend and precision.
    pub fn own_calibration<'a>(&'a self, entry: &'a LengthEntry) -> impl Iterator<Item = &'a Calibration> {
        let backend = self.options().provider.backend();
        let precision = self.options().precision_name(self.manifest());
        entry
            .calibration
            .iter()
            .filter(move |c| c.backend == backend && self.manifest().calibration_precision(c) == precision)
    }

    /// Predicted milliseconds of one evaluation of `rows` rows at `length`, from the manifest's
    /// calibration for this provider's backend: `ceil(rows / max_batch)` calls, each at the
    /// measured median for its batch (linear between measured batches, proportional beyond
    /// the largest, the smallest's time below it). `None` without calibration.
    pub fn predicted_eval_ms(&self, length: u32, rows: usize) -> Option<f64> {
        let entry = self.manifest().entry(length).ok()?;
        let threads = self.options().intra_threads as u32;
        let mut points: Vec<(f64, f64)> = self
            .own_calibration(entry)
            .filter(|c| threads == 0 || c.threads == threads)
            .map(|c| (c.batch as f64, c.ms_median))
            .collect();
        if points.is_empty() {
            // Calibrated with another thread count: better than nothing.
            points = self
                .own_calibration(entry)
                .map(|c| (c.batch as f64, c.ms_median))
                .collect();
        }
        if points.is_empty() || rows == 0 {
            return None;
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let max_batch = self.options().max_batch;
        let per_call = if max_batch == 0 { rows } else { max_batch.min(rows) };
        let calls = rows.div_ceil(per_call) as f64;
        let b = per_call as f64;
        let (first, last) = (points[0], points[points.len() - 1]);
        let ms = if b <= first.0 {
            first.1
        } else if b >= last.0 {
            last.1 * b / last.0
        } else {
            let i = points.iter().position(|p| p.0 >= b).unwrap_or(points.len() - 1);
            let (lo, hi) = (points[i - 1], points[i]);
            lo.1 + (hi.1 - lo.1) * (b - lo.0) / (hi.0 - lo.0)
        };
        Some(calls * ms)
    }

    /// Rows of one evaluation of `req`: 2N when guidance runs both halves in one call.
    pub fn rows_per_evaluation(&self, req: &SampleRequest) -> usize {
        req.rows_per_evaluation(self.manifest().model.num_classes as i64)
    }

    /// The largest length (and, when `steps` is `None`, the most Euler steps: a power of two
    /// ≤ T_max) whose predicted time for `rows` rows per evaluation fits `budget_ms`.
    pub fn pick_for_budget(&self, budget_ms: f64, steps: Option<u32>, rows: usize) -> Result<BudgetPick> {
        if !(budget_ms > 0.0 && budget_ms.is_finite()) {
            return invalid!("--budget-ms must be a positive number of milliseconds (got {budget_ms})");
        }
        if steps == Some(0) {
            return invalid!("euler needs at least 1 step (got --steps 0)");
        }
        let t_max = self.manifest().model.denoise_timesteps;
        let mut cheapest: Option<(u32, f64)> = None;
        let mut calibrated = false;
        for length in self.lengths().into_iter().rev() {
            let Some(eval_ms) = self.predicted_eval_ms(length, rows) else {
                continue;
            };
            calibrated = true;
            if cheapest.is_none_or(|(_, ms)| eval_ms < ms) {
                cheapest = Some((length, eval_ms));
            }
            let pick = match steps {
                Some(s) => (s as f64 * eval_ms <= budget_ms).then_some(s),
                None => {
                    let mut s = t_max;
                    while s > 1 && s as f64 * eval_ms > budget_ms {
                        s /= 2;
                    }
                    (s as f64 * eval_ms <= budget_ms).then_some(s)
                }
            };
            if let Some(steps) = pick {
                return Ok(BudgetPick {
                    length,
                    steps,
                    predicted_ms: steps as f64 * eval_ms,
                });
            }
        }
        if !calibrated {
            return invalid!(
                "{}: no latency calibration for backend {} at {} in the manifest; run `odelt bench --engines {}` first",
                self.dir().display(),
                self.options().provider.backend(),
                self.options().precision_name(self.manifest()),
                self.dir().display()
            );
        }
        let Some((length, eval_ms)) = cheapest else {
            return Err(Error::Internal(
                "calibration present but no length was priced".into(),
            ));
        };
        let s = steps.unwrap_or(1);
        invalid!(
            "budget {budget_ms} ms is too small: the cheapest choice (length {length}, {s} step{}) is predicted \
             to take {:.3} ms at {rows} row{} per evaluation",
            if s == 1 { "" } else { "s" },
            s as f64 * eval_ms,
            if rows == 1 { "" } else { "s" }
        )
    }
}
