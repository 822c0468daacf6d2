//! Sampling: noise, labels, classifier-free guidance and chunking around the solvers.

use std::time::{Duration, Instant};

use crate::engine::{Engine, Runtime};
use crate::error::{invalid, Error, Result};
use crate::noise;
use crate::solver::{self, Dopri5, Dopri5Options, Euler, SolveStats, Solver, VectorField};

/// Which solver, with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SolverChoice {
    /// Euler with `steps` uniform steps, shortcut level log2 T (T a power of two ≤ T_max).
    Euler { steps: u32 },
    /// Adaptive Dormand–Prince 5(4) at the plain-flow level log2 T_max.
    Dopri5(Dopri5Options),
}

impl SolverChoice {
    pub fn dopri5(rtol: f64, atol: f64) -> Self {
        SolverChoice::Dopri5(Dopri5Options {
            rtol,
            atol,
            ..Default::default()
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            SolverChoice::Euler { .. } => "euler",
            SolverChoice::Dopri5(_) => "dopri5",
        }
    }

    pub fn build(&self) -> Box<dyn Solver + Send> {
        match self {
            SolverChoice::Euler { steps } => Box::new(Euler::<f32>::new(*steps)),
            SolverChoice::Dopri5(options) => Box::new(Dopri5::<f32>::new(options.clone())),
        }
    }
}

/// Where x0 comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum NoiseSource {
    /// Standard normal noise from a seed, as defined in [`crate::noise`].
    Seed(u64),
    /// Given by the caller: N·C·H·W floats, row-major [N, C, H, W].
    Given(Vec<f32>),
}

/// Class labels.
#[derive(Debug, Clone, PartialEq)]
pub enum Labels {
    /// The null label (`num_classes`) for every sample: unconditional.
    Null,
    /// One class for every sample.
    Class(i64),
    /// One label per sample, each in 0..=num_classes (`num_classes` = null).
    PerSample(Vec<i64>),
}

/// How classifier-free guidance evaluates its two halves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GuidanceMode {
    /// Conditional and null halves in one engine call of 2N rows.
    #[default]
    Batched,
    /// Two calls of N rows: less memory, two launches.
    Separate,
}

/// One sampling job.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRequest {
    /// Active blocks l; `None` = the largest exported length.
    pub length: Option<u32>,
    pub solver: SolverChoice,
    /// Number of samples N ≥ 1.
    pub n: usize,
    pub noise: NoiseSource,
    pub labels: Labels,
    /// Guidance scale w: v = v_u + w (v_c − v_u). w ≤ 1 means no guidance (w = 1 is v_c).
    pub cfg_scale: f32,
    pub guidance: GuidanceMode,
}

impl SampleRequest {
    /// N samples with Euler, noise from seed 0, null labels, no guidance, the largest length.
    pub fn new(n: usize, solver: SolverChoice) -> Self {
        Self {
            length: None,
            solver,
            n,
            noise: NoiseSource::Seed(0),
            labels: Labels::Null,
            cfg_scale: 1.0,
            guidance: GuidanceMode::Batched,
        }
    }
    #[must_use]
    pub fn with_length(mut self, length: u32) -> Self {
        self.length = Some(length);
        self
    }
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.noise = NoiseSource::Seed(seed);
        self
    }
    #[must_use]
    pub fn with_noise(mut self, noise: Vec<f32>) -> Self {
        self.noise = NoiseSource::Given(noise);
        self
    }
    #[must_use]
    pub fn with_labels(mut self, labels: Labels) -> Self {
        self.labels = labels;
        self
    }
    #[must_use]
    pub fn with_cfg(mut self, scale: f32, mode: GuidanceMode) -> Self {
        self.cfg_scale = scale;
        self.guidance = mode;
        self
    }
}

/// The result of [`Runtime::sample`].
#[derive(Debug, Clone)]
pub struct Samples {
    /// x1, row-major [N, C, H, W]; images in [-1, 1] for pixel models (not clipped).
    pub data: Vec<f32>,
    pub shape: [usize; 4],
    pub length: u32,
    /// Shortcut level k the model ran at.
    pub level: u32,
    pub solver: &'static str,
    pub stats: SolveStats,
    /// Whole call, including opening the engine on first use.
    pub wall: Duration,
}

/// Engine calls of at most `max_batch` rows with t and k broadcast per row.
struct Caller<'a> {
    engine: &'a Engine,
    numel: usize,
    max_batch: usize,
    level: f32,
    t: Vec<f32>,
    k: Vec<f32>,
    engine_time: Duration,
}

impl Caller<'_> {
    fn run(&mut self, t: f64, x: &[f32], y: &[i64], out: &mut [f32]) -> Result<()> {
        let rows = y.len();
        let chunk = if self.max_batch == 0 {
            rows
        } else {
            self.max_batch.min(rows)
        };
        self.t[..chunk].fill(t as f32);
        self.k[..chunk].fill(self.level);
        let step = chunk * self.numel;
        for ((x, y), out) in x.chunks(step).zip(y.chunks(chunk)).zip(out.chunks_mut(step)) {
            let b = y.len();
            self.engine_time += self.engine.run(x, &self.t[..b], &self.k[..b], y, out)?;
        }
        Ok(())
    }
}

/// The model as a vector field over the whole batch, with guidance.
struct ModelField<'a> {
    caller: Caller<'a>,
    n: usize,
    /// N labels, then (batched guidance) N null labels.
    labels: Vec<i64>,
    nulls: Vec<i64>,
    guidance: Option<(f32, GuidanceMode)>,
    /// [x; x] for batched guidance.
    rows_x: Vec<f32>,
    /// Engine outputs before guidance is combined.
    rows_v: Vec<f32>,
}

impl VectorField for ModelField<'_> {
    fn dim(&self) -> usize {
        self.n * self.caller.numel
    }

    fn eval(&mut self, t: f64, x: &[f32], out: &mut [f32]) -> Result<()> {
        let len = x.len();
        match self.guidance {
            None => self.caller.run(t, x, &self.labels, out)?,
            Some((w, GuidanceMode::Batched)) => {
                self.rows_x[..len].copy_from_slice(x);
                self.rows_x[len..].copy_from_slice(x);
                self.caller.run(t, &self.rows_x, &self.labels, &mut self.rows_v)?;
                let (cond, uncond) = self.rows_v.split_at(len);
                for ((o, c), u) in out.iter_mut().zip(cond).zip(uncond) {
                    *o = u + w * (c - u);
                }
            }
            Some((w, GuidanceMode::Separate)) => {
                self.caller.run(t, x, &self.labels, &mut self.rows_v)?;
                self.caller.run(t, x, &self.nulls, out)?;
                for (o, c) in out.iter_mut().zip(&self.rows_v) {
                    *o += w * (c - *o);
                }
            }
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::Numerical(format!(
                "length {}: the model output has {} at t = {t:.4} (sample {}); the engine or its \
                 weights are broken, or guidance/precision overflowed",
                self.caller.engine.length(),
                if out[i].is_nan() { "NaN" } else { "Inf" },
                i / self.caller.numel
            )));
        }
        Ok(())
    }

    fn take_engine_time(&mut self) -> Option<Duration> {
        Some(std::mem::take(&mut self.caller.engine_time))
    }
}

impl Runtime {
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

    /// Labels per sample for `n` samples, checked against `num_classes`.
    fn labels(&self, labels: &Labels, n: usize) -> Result<Vec<i64>> {
        let null = self.manifest().model.num_classes as i64;
        let out = match labels {
            Labels::Null => vec![null; n],
            Labels::Class(c) => vec![*c; n],
            Labels::PerSample(v) => {
                if v.len() != n {
                    return invalid!("{} labels given for {n} samples", v.len());
                }
                v.clone()
            }
        };
        if let Some(bad) = out.iter().find(|l| !(0..=null).contains(*l)) {
            return invalid!(
                "label {bad} is out of range: classes are 0..{} and {null} is the null label",
                null - 1
            );
        }
        Ok(out)
    }

    /// Samples N images: validates the request, opens the engine if needed, integrates the
    /// outer ODE from t = 0 (noise) to t = 1 (data). Safe to call from several threads at once.
    pub fn sample(&self, req: &SampleRequest) -> Result<Samples> {
        let start = Instant::now();
        let length = self.resolve_length(req.length)?;
        let mut solver = req.solver.build();
        solver.validate()?;
        if req.n == 0 {
            return invalid!("the number of samples must be at least 1");
        }
        let [c, h, w] = self.image_shape();
        let numel = c * h * w;
        let total = req
            .n
            .checked_mul(numel)
            .ok_or_else(|| Error::InvalidArgument("too many samples".into()))?;
        let mut x = match &req.noise {
            NoiseSource::Seed(seed) => noise::normal(*seed, total),
            NoiseSource::Given(v) => {
                if v.len() != total {
                    return invalid!(
                        "noise has {} floats, but {} samples of {c}×{h}×{w} need {total}",
                        v.len(),
                        req.n
                    );
                }
                if v.iter().any(|v| !v.is_finite()) {
                    return invalid!("the given noise contains NaN or Inf");
                }
                v.clone()
            }
        };
        let labels = self.labels(&req.labels, req.n)?;
        if !req.cfg_scale.is_finite() {
            return invalid!("guidance scale must be finite (got {})", req.cfg_scale);
        }
        let null = self.manifest().model.num_classes as i64;
        let guidance = if req.cfg_scale > 1.0 {
            if labels.iter().all(|l| *l == null) {
                tracing::warn!(
                    "guidance scale {} ignored: every label is the null label",
                    req.cfg_scale
                );
                None
            } else {
                Some((req.cfg_scale, req.guidance))
            }
        } else {
            None
        };

        let engine = self.engine(length)?;
        let level = solver.level(&self.manifest().model);
        let rows = match guidance {
            Some((_, GuidanceMode::Batched)) => 2 * req.n,
            _ => req.n,
        };
        let max_batch = self.options().max_batch;
        let chunk = if max_batch == 0 { rows } else { max_batch.min(rows) };
        let nulls = vec![null; req.n];
        let (field_labels, rows_x, rows_v) = match guidance {
            None => (labels, Vec::new(), Vec::new()),
            Some((_, GuidanceMode::Batched)) => {
                let mut both = labels;
                both.extend_from_slice(&nulls);
                (both, vec![0.0; 2 * total], vec![0.0; 2 * total])
            }
            Some((_, GuidanceMode::Separate)) => (labels, Vec::new(), vec![0.0; total]),
        };
        let mut field = ModelField {
            caller: Caller {
                engine: &engine,
                numel,
                max_batch,
                level: level as f32,
                t: vec![0.0; chunk],
                k: vec![0.0; chunk],
                engine_time: Duration::ZERO,
            },
            n: req.n,
            labels: field_labels,
            nulls,
            guidance,
            rows_x,
            rows_v,
        };
        let stats = solver::solve(solver.as_mut(), &mut field, &mut x, 0.0, 1.0)?;
        Ok(Samples {
            data: x,
            shape: [req.n, c, h, w],
            length,
            level,
            solver: solver.name(),
            stats,
            wall: start.elapsed(),
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
    /// Predicted milliseconds of one evaluation of `rows` rows at `length`, from the manifest's
    /// calibration for this provider's backend: `ceil(rows / max_batch)` calls, each at the
    /// measured median for its batch (linear between measured batches, proportional beyond
    /// the largest, the smallest's time below it). `None` without calibration.
    pub fn predicted_eval_ms(&self, length: u32, rows: usize) -> Option<f64> {
        let entry = self.manifest().entry(length).ok()?;
        let backend = self.options().provider.backend();
        let threads = self.options().intra_threads as u32;
        let mut points: Vec<(f64, f64)> = entry
            .calibration
            .iter()
            .filter(|c| c.backend == backend && (threads == 0 || c.threads == threads))
            .map(|c| (c.batch as f64, c.ms_median))
            .collect();
        if points.is_empty() {
            // Calibrated with another thread count: better than nothing.
            points = entry
                .calibration
                .iter()
                .filter(|c| c.backend == backend)
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
                "{}: no latency calibration for backend {} in the manifest; run `odelt bench --engines {}` first",
                self.dir().display(),
                self.options().provider.backend(),
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
