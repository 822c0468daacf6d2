//! Dormand–Prince 5(4) with PI step-size control, after Hairer's DOPRI5 (Hairer, Nørsett &
//! Wanner, "Solving Ordinary Differential Equations I", §II.4–5; the Fortran `dopri5.f`).

use super::{ensure, Real, SolveStats, Solver, VectorField};
use crate::error::{invalid, Error, Result};
use odelt_format::ModelConfig;

// Butcher tableau (Dormand & Prince 1980). Row i holds a_{i+1, j}.
const C2: f64 = 1.0 / 5.0;
const C3: f64 = 3.0 / 10.0;
const C4: f64 = 4.0 / 5.0;
const C5: f64 = 8.0 / 9.0;
const A21: f64 = 1.0 / 5.0;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
// The 5th-order weights; also row 7 of the tableau (FSAL: k7 = f(t + h, y_new)).
const A71: f64 = 35.0 / 384.0;
const A73: f64 = 500.0 / 1113.0;
const A74: f64 = 125.0 / 192.0;
const A75: f64 = -2187.0 / 6784.0;
const A76: f64 = 11.0 / 84.0;
// Error weights b − b̂ (5th minus embedded 4th order).
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;

/// Dopri5 settings. Defaults follow Hairer's `dopri5.f` except `max_steps` and `beta`: the
/// plain I controller (β = 0), as scipy's RK45, spent the fewest evaluations for its error on
/// the shipped model (BENCHMARKS.md, "Dopri5 against scipy's RK45"; Hairer's β = 0.04 with its
/// initial `err_old` = 1e-4 damps the growth of the first steps, which a solve of 3–15 steps
/// pays for).
#[derive(Debug, Clone, PartialEq)]
pub struct Dopri5Options {
    /// Relative tolerance (> 0).
    pub rtol: f64,
    /// Absolute tolerance (> 0).
    pub atol: f64,
    /// Cap on attempted steps (accepted + rejected); reaching it is an error.
    pub max_steps: u32,
    /// First step size; `None` selects it from the problem (Hairer's HINIT, one extra evaluation).
    pub first_step: Option<f64>,
    /// Largest step size; `None` = the whole interval.
    pub max_step: Option<f64>,
    /// Safety factor on the predicted step size.
    pub safety: f64,
    /// PI controller's β (the step-size "memory"); 0 gives the plain I controller.
    pub beta: f64,
    /// Bounds on the step-size ratio h_new / h.
    pub min_factor: f64,
    pub max_factor: f64,
    /// Shortcut level k the model is evaluated at (0: one step … log2 T_max: the flow); `None`:
    /// the flow level.
    pub level: Option<u32>,
}

impl Default for Dopri5Options {
    fn default() -> Self {
        Self {
            rtol: 1e-5,
            atol: 1e-5,
            max_steps: 1000,
            first_step: None,
            max_step: None,
            safety: 0.9,
            beta: 0.0,
            min_factor: 0.2,
            max_factor: 10.0,
            level: None,
        }
    }
}

/// Adaptive Dormand–Prince 5(4): local extrapolation (the 5th-order solution is kept), FSAL
/// (6 evaluations per step), mixed error norm
/// `err = sqrt(mean_i ((y5_i − y4_i) / (atol + rtol · max(|x_i|, |y5_i|)))²)`, steps accepted
/// when `err ≤ 1`, step-size control `h_new = h · safety · err^(−(1/5 − 0.75β)) · err_old^β`
/// (I control at the default β = 0, PI otherwise) clamped to [min_factor, max_factor] and
/// to at most h right after a rejection, the last step clipped to end at t1, and the initial
/// step from Hairer's HINIT with RMS norms (as in "Solving ODEs I" §II.4 and scipy's
/// `select_initial_step`). With β = 0 the step sequence is scipy's `solve_ivp(method="RK45")`.
/// The model runs at k = log2 T_max.
#[derive(Debug, Clone)]
pub struct Dopri5<T = f32> {
    pub options: Dopri5Options,
    /// Stages k1…k7.
    k: [Vec<T>; 7],
    stage: Vec<T>,
    next: Vec<T>,
}

/// `out = x + h Σ_j a_j k_j`, summed in f64. `M` is known at compile time, so the inner sum
/// unrolls and the loop vectorises.
fn combine<T: Real, const M: usize>(out: &mut [T], x: &[T], h: f64, a: [f64; M], k: [&Vec<T>; M]) {
    let n = x.len();
    let k = k.map(|k| &k[..n]);
    for (i, (o, x)) in out[..n].iter_mut().zip(x).enumerate() {
        let mut sum = 0.0f64;
        for j in 0..M {
            sum += a[j] * k[j][i].to_f64();
        }
        *o = T::from_f64(x.to_f64() + h * sum);
    }
}

impl<T: Real> Dopri5<T> {
    pub fn new(options: Dopri5Options) -> Self {
        Self {
            options,
            k: Default::default(),
            stage: Vec::new(),
            next: Vec::new(),
        }
    }

    /// Shorthand for `Dopri5::new(Dopri5Options { rtol, atol, ..Default::default() })`.
    pub fn with_tolerances(rtol: f64, atol: f64) -> Self {
        Self::new(Dopri5Options {
            rtol,
            atol,
            ..Default::default()
        })
    }

    fn scale(&self, a: T, b: T) -> f64 {
        self.options.atol + self.options.rtol * a.to_f64().abs().max(b.to_f64().abs())
    }

    /// One step of size `h` from (t, x), with k1 = f(t, x) already in `k[0]`. Leaves the new
    /// state in `next`, f(t + h, next) in `k[6]`, and returns the error norm.
    fn step(&mut self, field: &mut dyn VectorField<T>, t: f64, h: f64, x: &[T]) -> Result<f64> {
        let [k1, k2, k3, k4, k5, k6, k7] = &mut self.k;
        let stage = &mut self.stage;
        combine(stage, x, h, [A21], [k1]);
        field.eval(t + C2 * h, stage, k2)?;
        combine(stage, x, h, [A31, A32], [k1, k2]);
        field.eval(t + C3 * h, stage, k3)?;
        combine(stage, x, h, [A41, A42, A43], [k1, k2, k3]);
        field.eval(t + C4 * h, stage, k4)?;
        combine(stage, x, h, [A51, A52, A53, A54], [k1, k2, k3, k4]);
        field.eval(t + C5 * h, stage, k5)?;
        combine(stage, x, h, [A61, A62, A63, A64, A65], [k1, k2, k3, k4, k5]);
        field.eval(t + h, stage, k6)?;
        combine(
            &mut self.next,
            x,
            h,
            [A71, A73, A74, A75, A76],
            [k1, k3, k4, k5, k6],
        );
        field.eval(t + h, &self.next, k7)?;

        let (atol, rtol) = (self.options.atol, self.options.rtol);
        let n = x.len();
        let (k1, k3, k4, k5, k6, k7, next) = (
            &k1[..n],
            &k3[..n],
            &k4[..n],
            &k5[..n],
            &k6[..n],
            &k7[..n],
            &self.next[..n],
        );
        let mut sum = 0.0f64;
        for i in 0..n {
            let e = h
                * (E1 * k1[i].to_f64()
                    + E3 * k3[i].to_f64()
                    + E4 * k4[i].to_f64()
                    + E5 * k5[i].to_f64()
                    + E6 * k6[i].to_f64()
                    + E7 * k7[i].to_f64());
            let sc = atol + rtol * x[i].to_f64().abs().max(next[i].to_f64().abs());
            sum += (e / sc) * (e / sc);
        }
        Ok((sum / n.max(1) as f64).sqrt())
    }

    /// Hairer's HINIT with RMS norms; `k[0]` holds f(t0, x). Costs one evaluation.
    fn initial_step(&mut self, field: &mut dyn VectorField<T>, t0: f64, x: &[T], hmax: f64) -> Result<f64> {
        let n = x.len().max(1) as f64;
        let (mut dnf, mut dny) = (0.0f64, 0.0f64);
        for (xi, fi) in x.iter().zip(&self.k[0]) {
            let sk = self.scale(*xi, *xi);
            dnf += (fi.to_f64() / sk).powi(2);
            dny += (xi.to_f64() / sk).powi(2);
        }
        let (dnf, dny) = ((dnf / n).sqrt(), (dny / n).sqrt());
        let mut h = if dnf <= 1e-5 || dny <= 1e-5 {
            1e-6
        } else {
            0.01 * dny / dnf
        };
        h = h.min(hmax);
        // One explicit Euler step to estimate the second derivative.
        for ((s, xi), fi) in self.stage.iter_mut().zip(x).zip(&self.k[0]) {
            *s = T::from_f64(xi.to_f64() + h * fi.to_f64());
        }
        let [k1, k2, ..] = &mut self.k;
        field.eval(t0 + h, &self.stage, k2)?;
        let mut der2 = 0.0f64;
        for ((xi, f0), f1) in x.iter().zip(k1.iter()).zip(k2.iter()) {
            let sk = self.options.atol + self.options.rtol * xi.to_f64().abs();
            der2 += ((f1.to_f64() - f0.to_f64()) / sk).powi(2);
        }
        let der2 = (der2 / n).sqrt() / h;
        let der12 = der2.abs().max(dnf);
        let h1 = if der12 <= 1e-15 {
            (h * 1e-3).max(1e-6)
        } else {
            (0.01 / der12).powf(1.0 / 5.0)
        };
        Ok((100.0 * h).min(h1).min(hmax))
    }
}

impl<T: Real> Solver<T> for Dopri5<T> {
    fn name(&self) -> &'static str {
        "dopri5"
    }

    fn level(&self, config: &ModelConfig) -> u32 {
        self.options.level.unwrap_or(config.flow_level())
    }

    fn validate(&self) -> Result<()> {
        let o = &self.options;
        if !(o.rtol > 0.0 && o.rtol.is_finite()) {
            return invalid!("dopri5 needs rtol > 0 (got --rtol {})", o.rtol);
        }
        if !(o.atol > 0.0 && o.atol.is_finite()) {
            return invalid!("dopri5 needs atol > 0 (got --atol {})", o.atol);
        }
        if o.max_steps == 0 {
            return invalid!("dopri5 needs max_steps ≥ 1");
        }
        if let Some(h) = o.first_step.filter(|h| !(*h > 0.0 && h.is_finite())) {
            return invalid!("dopri5 first step {h} must be positive");
        }
        if let Some(h) = o.max_step.filter(|h| !(*h > 0.0 && h.is_finite())) {
            return invalid!("dopri5 max step {h} must be positive");
        }
        if !(o.safety > 0.0
            && o.safety <= 1.0
            && o.min_factor > 0.0
            && o.min_factor < 1.0
            && o.max_factor > 1.0)
        {
            return invalid!("dopri5 step-control factors out of range: {o:?}");
        }
        if !(0.0..0.2).contains(&o.beta) {
            return invalid!("dopri5 beta {} must be in [0, 0.2)", o.beta);
        }
        Ok(())
    }

    fn integrate(
        &mut self,
        field: &mut dyn VectorField<T>,
        x: &mut [T],
        t0: f64,
        t1: f64,
        stats: &mut SolveStats,
    ) -> Result<()> {
        if t1 <= t0 {
            return invalid!("dopri5 integrates forward: t1 {t1} must exceed t0 {t0}");
        }
        let n = x.len();
        for k in &mut self.k {
            ensure(k, n);
        }
        ensure(&mut self.stage, n);
        ensure(&mut self.next, n);
        let o = self.options.clone();
        let hmax = o.max_step.unwrap_or(t1 - t0).min(t1 - t0);
        let expo1 = 0.2 - 0.75 * o.beta;
        let (min_ratio, max_ratio) = (o.min_factor, o.max_factor);

        field.eval(t0, x, &mut self.k[0])?;
        let mut h = match o.first_step {
            Some(h) => h.min(hmax),
            None => self.initial_step(field, t0, x, hmax)?,
        };
        let mut t = t0;
        let mut err_old = 1e-4f64;
        let mut rejected_last = false;
        let mut attempts = 0u32;
        loop {
            if attempts >= o.max_steps {
                return Err(Error::Numerical(format!(
                    "dopri5 stopped at t = {t:.6} after {attempts} steps (max_steps); \
                     loosen --rtol/--atol or use --solver euler"
                )));
            }
            if 0.1 * h <= t.abs() * f64::EPSILON || h < 1e-12 {
                return Err(Error::Numerical(format!(
                    "dopri5 step size {h:e} underflowed at t = {t:.6}; the vector field may be \
                     discontinuous or the tolerances too tight for float32"
                )));
            }
            // Clipped only when it would pass t1 (Hairer stretches steps within 1% of it).
            let last = t + h >= t1;
            if last {
                h = t1 - t;
            }
            attempts += 1;
            let err = self.step(field, t, h, x)?;
            if !err.is_finite() {
                return Err(Error::Numerical(format!(
                    "dopri5 error estimate is not finite at t = {t:.6} (NaN/Inf in the vector field)"
                )));
            }
            let fac11 = err.powf(expo1);
            if err <= 1.0 {
                // PI control: h_new = h · safety / (err^expo1 / err_old^β), ratio clamped.
                let ratio = (o.safety / (fac11 / err_old.powf(o.beta))).clamp(min_ratio, max_ratio);
                err_old = err.max(1e-4);
                stats.accepted_steps += 1;
                x.copy_from_slice(&self.next);
                self.k.swap(0, 6); // FSAL: f(t + h, x_new) is the next step's k1.
                if last {
                    break;
                }
                t += h;
                let mut h_new = (h * ratio).min(hmax);
                if rejected_last {
                    h_new = h_new.min(h);
                }
                rejected_last = false;
                h = h_new;
            } else {
                let ratio = (o.safety / fac11).clamp(min_ratio, 1.0);
                stats.rejected_steps += 1;
                rejected_last = true;
                h *= ratio;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;
    use super::*;

    /// `steps` fixed steps of the Dormand–Prince pair on [0, 1], in f64.
    fn fixed_steps(field: &mut dyn VectorField<f64>, x0: &[f64], steps: u32) -> Vec<f64> {
        let mut solver = Dopri5::<f64>::with_tolerances(1e-3, 1e-3);
        let n = x0.len();
        for k in &mut solver.k {
            ensure(k, n);
        }
        ensure(&mut solver.stage, n);
        ensure(&mut solver.next, n);
        let mut x = x0.to_vec();
        let h = 1.0 / steps as f64;
        field.eval(0.0, &x, &mut solver.k[0]).expect("eval");
        for i in 0..steps {
            solver.step(field, i as f64 * h, h, &x).expect("step");
            x.copy_from_slice(&solver.next);
            solver.k.swap(0, 6);
        }
        x
    }

    fn orders(errors: &[f64]) -> Vec<f64> {
        errors.windows(2).map(|e| (e[0] / e[1]).log2()).collect()
    }

    #[test]
    fn fixed_step_order_is_five() {
        // In f64: in f32 the errors reach rounding before the asymptotic regime.
        let lambda: Vec<f64> = vec![-4.0, 3.0];
        let x0 = [1.0f64, 0.5];
        let exact: Vec<f64> = x0.iter().zip(&lambda).map(|(x, l)| x * l.exp()).collect();
        let errors: Vec<f64> = [16u32, 32, 64, 128]
            .iter()
            .map(|&s| {
                max_abs_err(
                    &fixed_steps(
                        &mut Linear {
                            lambda: lambda.clone(),
                        },
                        &x0,
                        s,
                    ),
                    &exact,
                )
            })
            .collect();
        eprintln!(
            "dopri5 fixed steps, exp: errors {errors:?}, orders {:?}",
            orders(&errors)
        );
        for order in orders(&errors) {
            assert!((order - 5.0).abs() < 0.35, "order {order}");
        }

        let mk = || Logistic {
            r: 8.0,
            omega: 5.0,
            n: 1,
        };
        let x0 = [0.02f64, 0.0];
        let exact = mk().exact(&x0, 1.0);
        let errors: Vec<f64> = [32u32, 64, 128, 256]
            .iter()
            .map(|&s| max_abs_err(&fixed_steps(&mut mk(), &x0, s), &exact))
            .collect();
        eprintln!(
            "dopri5 fixed steps, logistic: errors {errors:?}, orders {:?}",
            orders(&errors)
        );
        let last = orders(&errors)[2];
        assert!((last - 5.0).abs() < 0.35, "order {last}");
    }

    #[test]
    fn adaptive_honours_the_tolerance() {
        let mk = || Logistic {
            r: 5.0,
            omega: 8.0,
            n: 3,
        };
        let x0 = [0.05f32, 0.5, 0.9, 0.0, 1.0, -1.0];
        let exact = mk().exact(&x0, 1.0);
        let mut last_nfe = 0;
        // float32 state (the model's) down to 1e-6; the error estimate is local, the global
        // error stays within a small multiple of the tolerance.
        for tol in [1e-3, 1e-4, 1e-5, 1e-6] {
            let mut x = x0;
            let mut solver = Dopri5::<f32>::with_tolerances(tol, tol);
            let stats = solve(&mut solver, &mut mk(), &mut x, 0.0, 1.0).expect("solve");
            let err = max_abs_err(&x, &exact);
            eprintln!("dopri5 f32 tol {tol:e}: err {err:e}, {stats:?}");
            assert!(err < 5.0 * tol, "tol {tol}: err {err}");
            assert_eq!(stats.nfe, 2 + 6 * (stats.accepted_steps + stats.rejected_steps));
            assert!(stats.nfe >= last_nfe, "tighter tolerance, no less work");
            last_nfe = stats.nfe;
        }
        for tol in [1e-8, 1e-10] {
            let mut x = x0.map(|v| v as f64);
            solve(
                &mut Dopri5::<f64>::with_tolerances(tol, tol),
                &mut mk(),
                &mut x,
                0.0,
                1.0,
            )
            .expect("solve");
            let err = max_abs_err(&x, &exact);
            eprintln!("dopri5 f64 tol {tol:e}: err {err:e}");
            assert!(err < 5.0 * tol, "tol {tol}: err {err}");
        }
    }

    #[test]
    fn adaptive_error_scales_like_order_five() {
        // Work–precision: error ∝ steps^−5 for a 5th-order method under tolerance control.
        let lambda: Vec<f64> = vec![-3.0, 2.0];
        let x0 = [1.0f64, 1.0];
        let exact: Vec<f64> = x0.iter().zip(&lambda).map(|(x, l)| x * l.exp()).collect();
        let mut points = Vec::new();
        for tol in [1e-4, 1e-6, 1e-8, 1e-10] {
            let mut x = x0;
            let stats = solve(
                &mut Dopri5::<f64>::with_tolerances(tol, tol),
                &mut Linear {
                    lambda: lambda.clone(),
                },
                &mut x,
                0.0,
                1.0,
            )
            .expect("solve");
            points.push((stats.accepted_steps as f64, max_abs_err(&x, &exact)));
        }
        let (s0, e0) = points[0];
        let (s1, e1) = points[points.len() - 1];
        let slope = -(e1 / e0).ln() / (s1 / s0).ln();
        eprintln!("dopri5 work-precision (steps, error) {points:?}, slope {slope}");
        assert!((4.0..6.0).contains(&slope), "slope {slope}");
    }

    #[test]
    fn step_cap_is_an_error() {
        let mut x = [1.0f32];
        let mut solver = Dopri5::<f32>::new(Dopri5Options {
            rtol: 1e-9,
            atol: 1e-9,
            max_steps: 3,
            ..Default::default()
        });
        let err =
            solve(&mut solver, &mut Linear { lambda: vec![20.0] }, &mut x, 0.0, 1.0).expect_err("must fail");
        assert!(matches!(err, Error::Numerical(_)), "{err}");
        assert!(!err.is_input());
        assert!(err.to_string().contains("max_steps"), "{err}");
    }

    #[test]
    fn bad_tolerances_are_input_errors() {
        for (rtol, atol) in [(0.0, 1e-3), (-1.0, 1e-3), (1e-3, 0.0), (f64::NAN, 1e-3)] {
            let mut x = [1.0f32];
            let mut solver = Dopri5::<f32>::with_tolerances(rtol, atol);
            let err = solve(&mut solver, &mut Linear { lambda: vec![1.0] }, &mut x, 0.0, 1.0)
                .expect_err("must fail");
            assert!(err.is_input(), "{err}");
        }
    }

    #[test]
    fn nan_field_is_a_numerical_error() {
        struct Nan;
        impl VectorField for Nan {
            fn dim(&self) -> usize {
                2
            }
            fn eval(&mut self, t: f64, _x: &[f32], out: &mut [f32]) -> Result<()> {
                out.fill(if t > 0.3 { f32::NAN } else { 1.0 });
                Ok(())
            }
        }
        let mut x = [0.0f32; 2];
        let err = solve(
            &mut Dopri5::<f32>::new(Dopri5Options::default()),
            &mut Nan,
            &mut x,
            0.0,
            1.0,
        )
        .expect_err("must fail");
        assert!(matches!(err, Error::Numerical(_)), "{err}");
    }

    #[test]
    fn no_allocation_once_warm() {
        let mut solver = Dopri5::<f32>::with_tolerances(1e-4, 1e-4);
        let mut x = [1.0f32, 2.0];
        solve(
            &mut solver,
            &mut Linear {
                lambda: vec![-1.0, 1.0],
            },
            &mut x,
            0.0,
            1.0,
        )
        .expect("solve");
        let mut before: Vec<*const f32> = solver.k.iter().map(|k| k.as_ptr()).collect();
        before.push(solver.stage.as_ptr());
        before.push(solver.next.as_ptr());
        let mut x = [0.5f32, 0.25];
        solve(
            &mut solver,
            &mut Linear {
                lambda: vec![-1.0, 1.0],
            },
            &mut x,
            0.0,
            1.0,
        )
        .expect("solve");
        let mut after: Vec<*const f32> = solver.k.iter().map(|k| k.as_ptr()).collect();
        after.push(solver.stage.as_ptr());
        after.push(solver.next.as_ptr());
        before.sort();
        after.sort();
        assert_eq!(
            before, after,
            "stage buffers are reused (FSAL swaps them, never reallocates)"
        );
    }
}
