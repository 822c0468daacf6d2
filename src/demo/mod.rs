//! `odelt demo`: the paper's figure of one model sampled at several lengths l (rows) and step
//! counts T (columns) from the same noise and labels, with the latency of every cell. This
//! module plans the grid and measures the cells, [`job`] runs the whole demo and [`figure`]
//! draws it; `cli::demo` is its command line.

pub mod figure;
mod font;
pub mod job;
pub mod quality;

use std::path::Path;
use std::time::Duration;

use odelt_format::checkpoint::MODEL_FILE;
use odelt_format::manifest::{Manifest, MANIFEST_FILE};
use odelt_format::{CheckpointMeta, ModelConfig};
use odelt_runtime::{Labels, Runtime, SampleRequest, SolverChoice};

/// Fashion-MNIST's classes, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Rows of the figure: the largest, middle and smallest valid length (fewer when the model has
/// fewer lengths).
pub fn rows(valid_lengths: &[u32]) -> Vec<u32> {
    let mut sorted = valid_lengths.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let Some(&last) = sorted.last() else {
        return Vec::new();
    };
    let mut rows = vec![sorted[0], sorted[(sorted.len() - 1) / 2], last];
    rows.dedup();
    rows
}

/// Columns of the figure: T_max (the plain flow), 4 and 1 Euler steps (shortcut levels 2, 0).
pub fn columns(t_max: u32) -> Vec<u32> {
    let mut columns = vec![t_max, 4, 1];
    columns.retain(|&t| t <= t_max);
    columns.dedup();
    columns
}

/// Labels of the N samples of every cell: one per class (cycling when N > classes).
pub fn labels(n: usize, num_classes: u32) -> Vec<i64> {
    (0..n as i64).map(|i| i % num_classes.max(1) as i64).collect()
}

/// The text under a sample: its label, and the class name for a Fashion-MNIST-shaped model
/// (10 classes of 28 × 28 grey images).
pub fn label_text(label: i64, model: &ModelConfig) -> String {
    let fmnist = model.num_classes == 10 && model.in_channels == 1 && model.input_size == 28;
    match FASHION_MNIST_CLASSES.get(label as usize) {
        Some(name) if fmnist => format!("{label} {}", name.to_uppercase()),
        _ => label.to_string(),
    }
}

/// An export at `dir` can be reused for `checkpoint` when its manifest names that checkpoint
/// (canonical path) at the same step, holds exactly `lengths` in fp32, and is newer than the
/// checkpoint's weights.
pub fn export_matches(dir: &Path, checkpoint: &Path, lengths: &[u32]) -> bool {
    let (Ok(manifest), Ok(meta)) = (Manifest::read(dir), CheckpointMeta::read(checkpoint)) else {
        return false;
    };
    let Ok(source) = std::fs::canonicalize(checkpoint) else {
        return false;
    };
    let mut have: Vec<u32> = manifest.lengths.iter().map(|e| e.length).collect();
    have.sort_unstable();
    let mut want = lengths.to_vec();
    want.sort_unstable();
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let newer = match (
        modified(&dir.join(MANIFEST_FILE)),
        modified(&checkpoint.join(MODEL_FILE)),
    ) {
        (Some(export), Some(weights)) => export >= weights,
        _ => false,
    };
    manifest.source.checkpoint == source.display().to_string()
        && manifest.source.step == meta.step
        && manifest.precision == "fp32"
        && manifest.io_precision == "fp32"
        && have == want
        && newer
        && manifest.lengths.iter().all(|e| dir.join(&e.file).is_file())
        && dir.join(&manifest.weights_file).is_file()
}

/// Lengths of the export at `dir` without an up-to-date engine for `backend` at `precision` (its
/// file present and built from the graph with the current content hash).
pub fn lengths_without_engine(dir: &Path, backend: &str, precision: &str) -> odelt_runtime::Result<Vec<u32>> {
    let manifest = Manifest::read(dir)?;
    Ok(manifest
        .lengths
        .iter()
        .filter(|entry| {
            !entry.engines.iter().any(|e| {
                e.backend == backend
                    && e.precision == precision
                    && dir.join(&e.file).is_file()
                    && e.options.get("content_hash").and_then(|h| h.as_str())
                        == Some(entry.content_hash.as_str())
            })
        })
        .map(|entry| entry.length)
        .collect())
}

/// One cell of the figure, measured.
#[derive(Debug, Clone)]
pub struct Cell {
    pub length: u32,
    pub steps: u32,
    pub nfe: u32,
    /// Median wall time of one sampling call for the whole batch (engines already open).
    pub wall: Duration,
    pub runs: usize,
    /// The samples, [N, C, H, W].
    pub data: Vec<f32>,
}

/// Cells are repeated until they have run this long (or [`MAX_RUNS`] times); the median is
/// reported.
pub const MIN_MEASURE: Duration = Duration::from_millis(300);
pub const MAX_RUNS: usize = 5;

/// Opens and warms every length's engine (one Euler step on the batch), so that no cell's
/// time includes loading.
pub fn warm_up(rt: &Runtime, lengths: &[u32], n: usize, labels: &[i64]) -> odelt_runtime::Result<()> {
    for &length in lengths {
        let request = SampleRequest::new(n, SolverChoice::Euler { steps: 1 })
            .with_length(length)
            .with_labels(Labels::PerSample(labels.to_vec()));
        rt.sample(&request)?;
    }
    Ok(())
}

/// Samples one cell with Euler from `seed`'s noise and measures it.
pub fn measure(
    rt: &Runtime,
    length: u32,
    steps: u32,
    seed: u64,
    labels: &[i64],
) -> odelt_runtime::Result<Cell> {
    let request = SampleRequest::new(labels.len(), SolverChoice::Euler { steps })
        .with_length(length)
        .with_seed(seed)
        .with_labels(Labels::PerSample(labels.to_vec()));
    let first = rt.sample(&request)?;
    let mut times = vec![first.wall];
    let mut spent = first.wall;
    while spent < MIN_MEASURE && times.len() < MAX_RUNS {
        let again = rt.sample(&request)?;
        spent += again.wall;
        times.push(again.wall);
    }
    times.sort_unstable();
    Ok(Cell {
        length,
        steps,
        nfe: first.stats.nfe,
        wall: times[times.len() / 2],
        runs: times.len(),
        data: first.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_largest_middle_smallest() {
        assert_eq!(rows(&[4, 8, 12]), vec![12, 8, 4]);
        assert_eq!(rows(&[2, 4, 6, 8]), vec![8, 6, 2]);
        assert_eq!(rows(&[2, 4]), vec![4, 2]);
        assert_eq!(rows(&[12]), vec![12]);
        assert!(rows(&[]).is_empty());
    }

    #[test]
    fn columns_are_plain_flow_then_shortcuts() {
        assert_eq!(columns(128), vec![128, 4, 1]);
        assert_eq!(columns(4), vec![4, 1]);
        assert_eq!(columns(2), vec![2, 1]);
    }

    #[test]
    fn labels_cycle_through_classes() {
        assert_eq!(labels(10, 10), (0..10).collect::<Vec<_>>());
        assert_eq!(labels(5, 2), vec![0, 1, 0, 1, 0]);
        assert_eq!(label_text(9, &ModelConfig::fmnist()), "9 ANKLE BOOT");
        assert_eq!(label_text(3, &ModelConfig::tiny()), "3");
    }
}
