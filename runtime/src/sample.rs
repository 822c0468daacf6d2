//! Sampling: noise, labels, classifier-free guidance and chunking around the solvers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use odelt_format::ModelConfig;

use crate::error::{invalid, Error, Result};
use crate::length_engine::LengthEngine;
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

impl SampleRequest {
    /// Whether guidance applies: a scale above 1 and at least one label that is not the null
    /// label `null`.
    pub fn is_guided(&self, null: i64) -> bool {
        let conditional = match &self.labels {
            Labels::Null => false,
            Labels::Class(c) => *c != null,
            Labels::PerSample(labels) => labels.iter().any(|l| *l != null),
        };
        self.cfg_scale > 1.0 && conditional
    }

    /// Rows of one evaluation: 2N when guidance runs both halves in one call.
    pub fn rows_per_evaluation(&self, null: i64) -> usize {
        if self.is_guided(null) && self.guidance == GuidanceMode::Batched {
            2 * self.n
        } else {
            self.n
        }
    }
}

/// The result of [`crate::Runtime::sample`].
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

/// v = model(x, t, k, y) on rows of one length, each row with its own t and k. The sampler
/// evaluates through this trait so that the same noise, labels, guidance and solver code runs
/// whether rows go straight to an [`LengthEngine`] ([`EngineRows`]) or, in a server, into a queue
/// that batches the rows of many requests into shared engine calls.
pub trait RowModel {
    /// The length l every row runs at.
    fn length(&self) -> u32;

    /// Writes v for the `y.len()` rows into `out` (x and out: rows × C·H·W floats). Returns the
    /// engine time of the call(s) the rows took part in.
    fn run(&mut self, x: &[f32], t: &[f32], k: &[f32], y: &[i64], out: &mut [f32]) -> Result<Duration>;
}

/// A [`LengthEngine`] called in chunks of at most `max_batch` rows (0: no limit).
pub struct EngineRows {
    pub engine: Arc<dyn LengthEngine>,
    pub max_batch: usize,
}

impl RowModel for EngineRows {
    fn length(&self) -> u32 {
        self.engine.length()
    }

    fn run(&mut self, x: &[f32], t: &[f32], k: &[f32], y: &[i64], out: &mut [f32]) -> Result<Duration> {
        let rows = y.len();
        let chunk = if self.max_batch == 0 {
            rows
        } else {
            self.max_batch.min(rows)
        };
        let step = chunk * self.engine.image_numel();
        let mut elapsed = Duration::ZERO;
        for (((x, t), (k, y)), out) in x
            .chunks(step)
            .zip(t.chunks(chunk))
            .zip(k.chunks(chunk).zip(y.chunks(chunk)))
            .zip(out.chunks_mut(step))
        {
            elapsed += self.engine.run(x, t, k, y, out)?;
        }
        Ok(elapsed)
    }
}

/// Evaluations of the whole batch at one (t, k): t and k broadcast per row.
struct Caller<M> {
    rows: M,
    numel: usize,
    level: f32,
    t: Vec<f32>,
    k: Vec<f32>,
    engine_time: Duration,
}

impl<M: RowModel> Caller<M> {
    fn run(&mut self, t: f64, x: &[f32], y: &[i64], out: &mut [f32]) -> Result<()> {
        let rows = y.len();
        self.t.resize(rows, 0.0);
        self.k.resize(rows, 0.0);
        self.t.fill(t as f32);
        self.k.fill(self.level);
        self.engine_time += self.rows.run(x, &self.t, &self.k, y, out)?;
        Ok(())
    }
}

/// The model as a vector field over the whole batch, with guidance.
struct ModelField<M> {
    caller: Caller<M>,
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

impl<M: RowModel> VectorField for ModelField<M> {
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
                self.caller.rows.length(),
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

/// Labels per sample for `n` samples, checked against `num_classes`.
fn labels(labels: &Labels, n: usize, num_classes: u32) -> Result<Vec<i64>> {
    let null = num_classes as i64;
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

/// [`crate::Runtime::sample`] once the length is resolved: validates the rest of the request,
/// then gets its rows' model (`open_rows`, e.g. opening the engine on first use) and integrates
/// the outer ODE from t = 0 (noise) to t = 1 (data), evaluating every row through it.
///
/// The result depends only on the request and on each row's output, never on how `open_rows`
/// groups rows into engine calls.
pub fn run<M: RowModel>(
    req: &SampleRequest,
    length: u32,
    model: &ModelConfig,
    open_rows: impl FnOnce() -> Result<M>,
) -> Result<Samples> {
    let start = Instant::now();
    let mut solver = req.solver.build();
    solver.validate()?;
    if req.n == 0 {
        return invalid!("the number of samples must be at least 1");
    }
    let (c, h, w) = (
        model.in_channels as usize,
        model.input_size as usize,
        model.input_size as usize,
    );
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
    let labels = labels(&req.labels, req.n, model.num_classes)?;
    if !req.cfg_scale.is_finite() {
        return invalid!("guidance scale must be finite (got {})", req.cfg_scale);
    }
    let null = model.num_classes as i64;
    let guidance = if req.is_guided(null) {
        Some((req.cfg_scale, req.guidance))
    } else {
        if req.cfg_scale > 1.0 {
            tracing::warn!(
                "guidance scale {} ignored: every label is the null label",
                req.cfg_scale
            );
        }
        None
    };

    let rows = open_rows()?;
    if rows.length() != length {
        return Err(Error::Internal(format!(
            "sampling length {length} on rows of length {}",
            rows.length()
        )));
    }
    let level = solver.level(model);
    if level > model.flow_level() {
        return invalid!(
            "shortcut level {level} is out of range: this model has levels 0 (one step) to {} (the flow)",
            model.flow_level()
        );
    }
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
            rows,
            numel,
            level: level as f32,
            t: Vec::new(),
            k: Vec::new(),
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
