//! Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017):
//! |μ1 − μ2|² + tr(Σ1 + Σ2 − 2 (Σ1^½ Σ2 Σ1^½)^½), in f64 with symmetric eigendecompositions.

use tch::{Kind, Tensor};

/// Mean and covariance of features [N, F].
#[derive(Debug)]
pub struct FeatureStats {
    pub mean: Tensor,
    pub cov: Tensor,
    pub count: usize,
}

impl FeatureStats {
    pub fn new(features: &Tensor) -> Self {
        let f = features.to_kind(Kind::Double);
        let n = f.size()[0];
        let mean = f.mean_dim(0, false, Kind::Double);
        let centred = &f - &mean;
        let cov = centred.tr().matmul(&centred) / (n - 1).max(1) as f64;
        Self {
            mean,
            cov,
            count: n as usize,
        }
    }
}

/// Square root of a symmetric positive semi-definite matrix (negative rounding noise clipped).
fn sqrt_psd(m: &Tensor) -> Tensor {
    let (values, vectors) = m.linalg_eigh("L");
    vectors
        .matmul(&values.clamp_min(0.0).sqrt().diag_embed(0, -2, -1))
        .matmul(&vectors.tr())
}

pub fn frechet_distance(a: &FeatureStats, b: &FeatureStats) -> f64 {
    let diff = (&a.mean - &b.mean).square().sum(Kind::Double).double_value(&[]);
    let root_a = sqrt_psd(&a.cov);
    let inner = root_a.matmul(&b.cov).matmul(&root_a);
    let inner = (&inner + inner.tr()) * 0.5;
    let cross = inner
        .linalg_eigvalsh("L")
        .clamp_min(0.0)
        .sqrt()
        .sum(Kind::Double)
        .double_value(&[]);
    let traces = a.cov.trace().double_value(&[]) + b.cov.trace().double_value(&[]);
    diff + traces - 2.0 * cross
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_closed_form_for_diagonal_gaussians() {
        let stats = |mean: &[f64], var: &[f64]| FeatureStats {
            mean: Tensor::from_slice(mean),
            cov: Tensor::from_slice(var).diag_embed(0, -2, -1),
            count: 0,
        };
        let (m1, v1, m2, v2): ([f64; 3], [f64; 3], [f64; 3], [f64; 3]) = (
            [0.0, 1.0, 2.0],
            [1.0, 4.0, 0.25],
            [1.0, 1.0, 0.0],
            [9.0, 1.0, 0.25],
        );
        let want: f64 = (0..3)
            .map(|i| (m1[i] - m2[i]).powi(2) + v1[i] + v2[i] - 2.0 * (v1[i] * v2[i]).sqrt())
            .sum();
        let got = frechet_distance(&stats(&m1, &v1), &stats(&m2, &v2));
        assert!((got - want).abs() < 1e-9, "{got} vs {want}");
    }

    #[test]
    fn is_zero_for_equal_sets_and_grows_with_a_shift() {
        tch::manual_seed(0);
        let x = Tensor::randn([500, 6], (Kind::Float, tch::Device::Cpu))
            .matmul(&Tensor::randn([6, 6], (Kind::Float, tch::Device::Cpu)));
        let a = FeatureStats::new(&x);
        assert!(frechet_distance(&a, &FeatureStats::new(&x)).abs() < 1e-6);
        let near = frechet_distance(&a, &FeatureStats::new(&(&x + 0.1)));
        let far = frechet_distance(&a, &FeatureStats::new(&(&x + 1.0)));
        assert!(
            (near - 0.06).abs() < 1e-6 && (far - 6.0).abs() < 1e-6,
            "{near} {far}"
        );
    }
}
