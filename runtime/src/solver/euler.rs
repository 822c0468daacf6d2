//! Explicit Euler on a uniform grid of T steps.

use super::{ensure, Real, SolveStats, Solver, VectorField};
use crate::error::{invalid, Result};
use odelt_format::ModelConfig;

/// Euler with `steps` uniform steps. The model runs at shortcut level
/// [`ModelConfig::euler_level`]`(steps)`: log2 T when T is a power of two ≤ T_max.
#[derive(Debug, Clone)]
pub struct Euler<T = f32> {
    /// Number of steps T ≥ 1.
    pub steps: u32,
    grid: Vec<f64>,
    v: Vec<T>,
}

impl<T: Real> Euler<T> {
    pub fn new(steps: u32) -> Self {
        Self {
            steps,
            grid: Vec::new(),
            v: Vec::new(),
        }
    }
}

impl<T: Real> Solver<T> for Euler<T> {
    fn name(&self) -> &'static str {
        "euler"
    }

    fn level(&self, config: &ModelConfig) -> u32 {
        config.euler_level(self.steps)
    }

    fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return invalid!("euler needs at least 1 step (got --steps 0)");
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
        let steps = self.steps as usize;
        // Grid points computed from the index (not accumulated), so the last one is exactly t1.
        self.grid.clear();
        self.grid
            .extend((0..=steps).map(|i| t0 + (t1 - t0) * i as f64 / steps as f64));
        ensure(&mut self.v, x.len());
        for window in self.grid.windows(2) {
            let (t, h) = (window[0], window[1] - window[0]);
            field.eval(t, x, &mut self.v)?;
            for (x, v) in x.iter_mut().zip(&self.v) {
                *x = T::from_f64(x.to_f64() + h * v.to_f64());
            }
            stats.accepted_steps += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::*;

    #[test]
    fn exp_converges_with_order_one() {
        let lambda: Vec<f64> = vec![-1.0, 0.5, 2.0];
        let x0 = [1.0f32, -2.0, 0.3];
        let exact: Vec<f64> = x0.iter().zip(&lambda).map(|(x, l)| *x as f64 * l.exp()).collect();
        let mut errors = Vec::new();
        for steps in [32u32, 64, 128, 256, 512] {
            let mut x = x0;
            let stats = solve(
                &mut Euler::<f32>::new(steps),
                &mut Linear {
                    lambda: lambda.clone(),
                },
                &mut x,
                0.0,
                1.0,
            )
            .expect("solve");
            assert_eq!(stats.nfe, steps);
            assert_eq!(stats.accepted_steps, steps);
            errors.push(max_abs_err(&x, &exact));
        }
        let orders: Vec<f64> = errors.windows(2).map(|e| (e[0] / e[1]).log2()).collect();
        eprintln!("euler exp: errors {errors:?}, orders {orders:?}");
        for order in orders {
            assert!((order - 1.0).abs() < 0.1, "order {order}");
        }
    }

    #[test]
    fn logistic_converges_with_order_one() {
        let field = Logistic {
            r: 3.0,
            omega: 4.0,
            n: 2,
        };
        let x0 = [0.2f32, 0.7, 0.0, 1.0];
        let exact = field.exact(&x0, 1.0);
        let mut errors = Vec::new();
        for steps in [32u32, 64, 128, 256] {
            let mut x = x0;
            solve(
                &mut Euler::<f32>::new(steps),
                &mut Logistic {
                    r: 3.0,
                    omega: 4.0,
                    n: 2,
                },
                &mut x,
                0.0,
                1.0,
            )
            .expect("solve");
            errors.push(max_abs_err(&x, &exact));
        }
        let order = (errors[0] / errors[3]).log2() / 3.0;
        eprintln!("euler logistic: errors {errors:?}, order {order}");
        assert!((order - 1.0).abs() < 0.1, "order {order}");
    }

    #[test]
    fn zero_steps_is_an_input_error() {
        let mut x = [1.0f32];
        let err = solve(
            &mut Euler::<f32>::new(0),
            &mut Linear { lambda: vec![1.0] },
            &mut x,
            0.0,
            1.0,
        )
        .expect_err("must fail");
        assert!(err.is_input(), "{err}");
        assert!(err.to_string().contains("at least 1 step"));
    }

    #[test]
    fn level_follows_the_config() {
        let c = crate::ModelConfig::fmnist();
        assert_eq!(Solver::<f32>::level(&Euler::<f32>::new(4), &c), 2);
        assert_eq!(Solver::<f32>::level(&Euler::<f32>::new(6), &c), 7);
    }
}
