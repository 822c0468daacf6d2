//! Precision and recall of a generated set against a real one in a feature space, with
//! k-nearest-neighbour manifolds (Kynkäänniemi et al. 2019): each sample of a set is the centre
//! of a ball reaching its k-th nearest neighbour in that set; precision is the share of
//! generated samples inside some real ball (are samples realistic?), recall the share of real
//! samples inside some generated ball (is the real variety covered?). A collapse onto a few
//! good images keeps precision and the Fréchet distance's mean term low but loses recall.

use nalgebra::DMatrix;
use serde::Serialize;

/// The paper's neighbourhood size.
pub const DEFAULT_K: usize = 3;

/// Rows per block of the pairwise-distance computation (bounds its memory to a block × N).
const BLOCK: usize = 1024;

/// Serialised as `knn_precision` and `knn_recall` (an eval cell's `precision` is its engines').
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PrecisionRecall {
    #[serde(rename = "knn_precision")]
    pub precision: f64,
    #[serde(rename = "knn_recall")]
    pub recall: f64,
}

/// Feature rows as a matrix [N, F] and each row's squared norm.
struct Rows {
    m: DMatrix<f32>,
    norms: Vec<f32>,
}

impl Rows {
    fn new(features: &[f32], dim: usize) -> Self {
        let n = features.len() / dim;
        let m = DMatrix::from_row_slice(n, dim, features);
        let norms = m.row_iter().map(|r| r.norm_squared()).collect();
        Self { m, norms }
    }

    fn len(&self) -> usize {
        self.m.nrows()
    }

    /// Squared distances from rows `start..start + len` of `self` to every row of `other`,
    /// [len, other.len()].
    fn distances(&self, start: usize, len: usize, other: &Rows) -> DMatrix<f32> {
        let dots = self.m.rows(start, len) * other.m.transpose();
        DMatrix::from_fn(len, other.len(), |i, j| {
            (self.norms[start + i] + other.norms[j] - 2.0 * dots[(i, j)]).max(0.0)
        })
    }

    /// Each row's squared distance to its k-th nearest other row.
    fn radii(&self, k: usize) -> Vec<f32> {
        let mut radii = Vec::with_capacity(self.len());
        for start in (0..self.len()).step_by(BLOCK) {
            let len = BLOCK.min(self.len() - start);
            let d = self.distances(start, len, self);
            for i in 0..len {
                let mut row: Vec<f32> = d.row(i).iter().copied().collect();
                // Index k, not k − 1: the row itself is its own nearest neighbour, at 0.
                let (_, kth, _) = row.select_nth_unstable_by(k, f32::total_cmp);
                radii.push(*kth);
            }
        }
        radii
    }

    /// Share of `self`'s rows inside at least one ball of `centres` with squared `radii`.
    fn share_inside(&self, centres: &Rows, radii: &[f32]) -> f64 {
        let mut inside = 0usize;
        for start in (0..self.len()).step_by(BLOCK) {
            let len = BLOCK.min(self.len() - start);
            let d = self.distances(start, len, centres);
            inside += (0..len)
                .filter(|&i| d.row(i).iter().zip(radii).any(|(d, r)| d <= r))
                .count();
        }
        inside as f64 / self.len() as f64
    }
}

/// A feature set with its k-nearest-neighbour balls, built once per set (the real one is
/// shared by every cell of an evaluation).
pub struct Manifold {
    rows: Rows,
    radii: Vec<f32>,
}

impl Manifold {
    /// The manifold of `features` (row-major [N, dim], N > k) with balls reaching the k-th
    /// nearest neighbour.
    pub fn new(features: &[f32], dim: usize, k: usize) -> Self {
        let rows = Rows::new(features, dim);
        let radii = rows.radii(k);
        Self { rows, radii }
    }
}

/// Precision and recall of `generated` against `real`.
pub fn precision_recall(real: &Manifold, generated: &Manifold) -> PrecisionRecall {
    PrecisionRecall {
        precision: generated.rows.share_inside(&real.rows, &real.radii),
        recall: real.rows.share_inside(&generated.rows, &generated.radii),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` points of a 4-d standard-uniform cloud, deterministic per seed.
    fn cloud(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = odelt_format::seed::SplitMix64::new(seed);
        (0..n * 4).map(|_| rng.uniform() as f32).collect()
    }

    fn score(real: &[f32], generated: &[f32]) -> PrecisionRecall {
        precision_recall(
            &Manifold::new(real, 4, DEFAULT_K),
            &Manifold::new(generated, 4, DEFAULT_K),
        )
    }

    #[test]
    fn same_distribution_scores_high_on_both() {
        let pr = score(&cloud(600, 1), &cloud(600, 2));
        assert!(pr.precision > 0.8 && pr.recall > 0.8, "{pr:?}");
    }

    #[test]
    fn a_collapse_keeps_precision_and_loses_recall() {
        let real = cloud(600, 1);
        // Every generated sample is a copy of one of four real samples.
        let collapsed: Vec<f32> = (0..600)
            .flat_map(|i| real[(i % 4) * 4..(i % 4) * 4 + 4].to_vec())
            .collect();
        let pr = score(&real, &collapsed);
        assert_eq!(pr.precision, 1.0);
        assert!(pr.recall < 0.05, "{pr:?}");
    }

    #[test]
    fn disjoint_sets_score_zero() {
        let far: Vec<f32> = cloud(300, 2).iter().map(|v| v + 10.0).collect();
        let pr = score(&cloud(300, 1), &far);
        assert_eq!((pr.precision, pr.recall), (0.0, 0.0));
    }
}
