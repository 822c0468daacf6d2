//! Host-side ODE solvers for the outer (time) ODE dx/dt = v(t, x), t from 0 (noise) to 1 (data).
//!
//! One [`VectorField`] trait (the model, or an analytic ODE in the tests), one [`Solver`]
//! trait and one driver, [`solve`]. Solvers own their stage buffers: once they have the state's
//! size, a solve allocates nothing per step.

mod dopri5;
mod euler;

use std::time::{Duration, Instant};

pub use dopri5::{Dopri5, Dopri5Options};
pub use euler::Euler;

use crate::error::Result;
use odelt_format::ModelConfig;

/// Element type of a solver's state: `f32` for models; `f64` lets the tests measure the
/// methods' order of convergence without float32 rounding in the way.
pub trait Real: Copy + Default + PartialOrd + Send + Sync + std::fmt::Debug + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// dx/dt = v(t, x) on a flat state.
pub trait VectorField<T: Real = f32> {
    /// Number of floats in the state.
    fn dim(&self) -> usize;

    /// Writes v(t, x) into `out` (both `dim()` long).
    fn eval(&mut self, t: f64, x: &[T], out: &mut [T]) -> Result<()>;

    /// Time spent inside the engine since the last call, when the field knows it; the driver
    /// counts the whole of `eval` as engine time otherwise.
    fn take_engine_time(&mut self) -> Option<Duration> {
        None
    }
}

/// What a solve did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SolveStats {
    /// Vector-field evaluations (engine calls of the whole batch; CFG's two halves count once).
    pub nfe: u32,
    pub accepted_steps: u32,
    pub rejected_steps: u32,
    /// Time inside the vector field's engine.
    pub engine: Duration,
    /// Time on the host: solver arithmetic, guidance, checks.
    pub host: Duration,
}

/// A time integrator. Implementations keep their buffers between solves.
pub trait Solver<T: Real = f32> {
    /// "euler", "dopri5".
    fn name(&self) -> &'static str;

    /// The shortcut level k the model is evaluated at (docs/DESIGN.md §3).
    fn level(&self, config: &ModelConfig) -> u32;

    /// Checks the settings, naming the first bad one (an input error).
    fn validate(&self) -> Result<()>;

    /// Integrates `x` in place from `t0` to `t1`, counting steps into `stats` (the driver
    /// counts evaluations and time).
    fn integrate(
        &mut self,
        field: &mut dyn VectorField<T>,
        x: &mut [T],
        t0: f64,
        t1: f64,
        stats: &mut SolveStats,
    ) -> Result<()>;
}

/// Counts evaluations and their time around a field.
struct Counted<'a, T: Real> {
    inner: &'a mut dyn VectorField<T>,
    nfe: u32,
    engine: Duration,
    eval: Duration,
}

impl<T: Real> VectorField<T> for Counted<'_, T> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn eval(&mut self, t: f64, x: &[T], out: &mut [T]) -> Result<()> {
        let start = Instant::now();
        let result = self.inner.eval(t, x, out);
        let elapsed = start.elapsed();
        self.nfe += 1;
        self.eval += elapsed;
        self.engine += self.inner.take_engine_time().unwrap_or(elapsed);
        result
    }
}

/// The driver: validates the solver, integrates `x` in place from `t0` to `t1`, and reports
/// evaluations, steps and where the time went.
pub fn solve<T: Real>(
    solver: &mut dyn Solver<T>,
    field: &mut dyn VectorField<T>,
    x: &mut [T],
    t0: f64,
    t1: f64,
) -> Result<SolveStats> {
    solver.validate()?;
    if x.len() != field.dim() {
        return Err(crate::Error::Internal(format!(
            "state has {} floats, the vector field {}",
            x.len(),
            field.dim()
        )));
    }
    let start = Instant::now();
    let mut stats = SolveStats::default();
    let mut counted = Counted {
        inner: field,
        nfe: 0,
        engine: Duration::ZERO,
        eval: Duration::ZERO,
    };
    solver.integrate(&mut counted, x, t0, t1, &mut stats)?;
    stats.nfe = counted.nfe;
    stats.engine = counted.engine;
    stats.host = start.elapsed().saturating_sub(counted.engine);
    Ok(stats)
}

/// Resizes `buf` to `len` (allocating only when it grows).
fn ensure<T: Real>(buf: &mut Vec<T>, len: usize) {
    if buf.len() != len {
        buf.resize(len, T::default());
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Analytic ODEs for the solver tests.
    use super::*;

    /// x' = λ x, x(t) = x0 e^{λ t}.
    pub struct Linear {
        pub lambda: Vec<f64>,
    }

    impl<T: Real> VectorField<T> for Linear {
        fn dim(&self) -> usize {
            self.lambda.len()
        }
        fn eval(&mut self, _t: f64, x: &[T], out: &mut [T]) -> Result<()> {
            for ((o, x), l) in out.iter_mut().zip(x).zip(&self.lambda) {
                *o = T::from_f64(l * x.to_f64());
            }
            Ok(())
        }
    }

    /// Logistic x' = r x (1 − x), x(t) = 1 / (1 + (1/x0 − 1) e^{−r t}); plus a forcing term
    /// depending on t: x' = cos(ω t) with x(t) = x0 + sin(ω t)/ω, in the second half.
    pub struct Logistic {
        pub r: f64,
        pub omega: f64,
        pub n: usize,
    }

    impl Logistic {
        pub fn exact<T: Real>(&self, x0: &[T], t: f64) -> Vec<f64> {
            x0.iter()
                .enumerate()
                .map(|(i, &x0)| {
                    let x0 = x0.to_f64();
                    if i < self.n {
                        1.0 / (1.0 + (1.0 / x0 - 1.0) * (-self.r * t).exp())
                    } else {
                        x0 + (self.omega * t).sin() / self.omega
                    }
                })
                .collect()
        }
    }

    impl<T: Real> VectorField<T> for Logistic {
        fn dim(&self) -> usize {
            2 * self.n
        }
        fn eval(&mut self, t: f64, x: &[T], out: &mut [T]) -> Result<()> {
            for (i, (o, &x)) in out.iter_mut().zip(x).enumerate() {
                let x = x.to_f64();
                *o = T::from_f64(if i < self.n {
                    self.r * x * (1.0 - x)
                } else {
                    (self.omega * t).cos()
                });
            }
            Ok(())
        }
    }

    pub fn max_abs_err<T: Real>(x: &[T], exact: &[f64]) -> f64 {
        x.iter()
            .zip(exact)
            .map(|(a, b)| (a.to_f64() - b).abs())
            .fold(0.0, f64::max)
    }
}
