//! Sample quality versus cost (`odelt eval`): samples of every length × solver cell, their
//! Fréchet distance to held-out images in the feature space of an ONNX network (with a
//! bootstrap interval, and a paired one for its change from the previous length), precision
//! and recall in that space, time per image and memory per length.

mod frechet;
mod manifold;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use odelt_runtime::{
    memory, Decoder, Dopri5Options, Labels, Precision, Runtime, RuntimeOptions, SampleRequest, SolverChoice,
};
use serde::Serialize;

pub use frechet::{frechet_distance, Bootstrap, FeatureStats};
pub use manifold::{precision_recall, Manifold, PrecisionRecall, DEFAULT_K};

use crate::bad_input;
use crate::data::{DataSource, Dataset, Split};

/// The shipped feature network for Fashion-MNIST, under the assets folder.
pub const FEATURES_FILE: &str = "fmnist_features.onnx";

/// The shipped assets: `ODELT_ASSETS`, else the repository's `assets/`.
pub fn assets_dir() -> PathBuf {
    std::env::var_os("ODELT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets"))
}

/// `euler:T`, or `dopri5:TOL` / `dopri5:TOL:K` (rtol = atol = TOL, at shortcut level K).
pub fn parse_solver(spec: &str) -> Result<SolverChoice> {
    let bad = || {
        bad_input!(
            "--solvers: '{spec}' is not euler:T (T ≥ 1) or dopri5:TOL[:K] (TOL > 0, K a shortcut level)"
        )
    };
    let mut parts = spec.split(':');
    let (name, value, level) = (parts.next(), parts.next().ok_or_else(bad)?, parts.next());
    if parts.next().is_some() {
        return Err(bad());
    }
    match (name, level) {
        (Some("euler"), None) => match value.parse::<u32>() {
            Ok(steps) if steps > 0 => Ok(SolverChoice::Euler { steps }),
            _ => Err(bad()),
        },
        (Some("dopri5"), level) => {
            let tol = value
                .parse::<f64>()
                .ok()
                .filter(|tol| *tol > 0.0)
                .ok_or_else(bad)?;
            let level = level.map(|k| k.parse::<u32>().map_err(|_| bad())).transpose()?;
            Ok(SolverChoice::Dopri5(Dopri5Options {
                rtol: tol,
                atol: tol,
                level,
                ..Default::default()
            }))
        }
        _ => Err(bad()),
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub engines: PathBuf,
    /// Held-out images (their test split).
    pub data: DataSource,
    /// Samples per cell.
    pub n: usize,
    /// `None`: every exported length.
    pub lengths: Option<Vec<u32>>,
    /// (name as given, solver) per column.
    pub solvers: Vec<(String, SolverChoice)>,
    /// The ONNX feature network.
    pub features: PathBuf,
    /// Bootstrap resamples of each cell's Fréchet distance (0: no interval).
    pub bootstrap: usize,
    pub seed: u64,
    pub runtime: RuntimeOptions,
    /// Precisions to compare, each a row per cell (built engines, `odelt engines build
    /// --precision`); empty: the runtime's.
    pub precisions: Vec<Precision>,
}

/// One cell of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub length: u32,
    pub precision: String,
    pub solver: String,
    pub nfe: u64,
    /// Fréchet distance to the held-out images in the feature space.
    pub fd: f64,
    /// Its 95% bootstrap interval (resampling the generated set).
    pub fd_ci: Option<[f64; 2]>,
    /// The change of FD from the previous length of the evaluation (same solver and precision).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fd_vs_previous: Option<FdChange>,
    /// k-NN precision and recall against n held-out images (k = 3).
    #[serde(flatten)]
    pub quality: PrecisionRecall,
    pub ms_per_image: f64,
    /// Bytes of weights the engine of this length loads.
    pub weight_mb: f64,
    /// Peak resident memory of the process while this length's engine was open (Linux), MB.
    /// It includes what the process itself holds: the held-out data, the feature network.
    pub peak_rss_mb: Option<f64>,
    /// That peak minus the resident memory just before this length's runtime opened: what
    /// sampling at this length added (weights, ONNX Runtime's arena, solver buffers), MB.
    pub added_rss_mb: Option<f64>,
}

/// A cell's FD minus the FD of the same solver and precision at an earlier length of the
/// evaluation, with a paired 95% bootstrap interval: every cell draws the same noise and labels
/// per row, and the bootstrap resamples the same rows from both, so the interval holds only what
/// the lengths do not share. An interval that excludes 0 separates the two cells even where
/// their own intervals overlap.
#[derive(Debug, Clone, Serialize)]
pub struct FdChange {
    pub length: u32,
    pub diff: f64,
    pub ci: Option<[f64; 2]>,
}

/// Features of `images` [N, C, H, W] through the network (row-major [N, F]), and F.
fn features(net: &Decoder, images: &[f32], shape: [usize; 4]) -> Result<(Vec<f32>, usize)> {
    let out = net.decode(images, shape)?;
    Ok((out.data, out.shape[1..].iter().product()))
}

/// What every cell is compared with: the held-out images' feature statistics, and the k-NN
/// manifold of `n` of them (as many as each cell generates, as precision and recall need).
struct Reference {
    stats: FeatureStats,
    manifold: Manifold,
    dim: usize,
}

impl Reference {
    fn new(options: &EvalOptions, net: &Decoder, rt: &Runtime) -> Result<Self> {
        let model = &rt.manifest().model;
        let held_out = Dataset::load(&options.data, model, Split::Test, options.seed)?;
        let (rows, dim) = features(net, &held_out.images, held_out.shape)?;
        let count = rows.len() / dim;
        if count <= DEFAULT_K {
            return Err(bad_input!(
                "{} held-out images are too few to compare with",
                count
            ));
        }
        let subset = spread_subset(count, options.n, options.seed);
        let picked: Vec<f32> = subset
            .iter()
            .flat_map(|&i| &rows[i * dim..(i + 1) * dim])
            .copied()
            .collect();
        Ok(Self {
            stats: FeatureStats::new(&rows, dim),
            manifold: Manifold::new(&picked, dim, DEFAULT_K),
            dim,
        })
    }

    fn count(&self) -> usize {
        self.stats.count
    }
}

/// `n` of the indices 0..count (all if n ≥ count), in an order shuffled by `seed`.
fn spread_subset(count: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = odelt_format::seed::SplitMix64::new(odelt_format::seed::mix_seed(seed, 0x9e1d));
    let mut keyed: Vec<(u64, usize)> = (0..count).map(|i| (rng.next_u64(), i)).collect();
    keyed.sort_unstable();
    keyed.into_iter().take(n).map(|(_, i)| i).collect()
}

/// Evaluates every length × solver cell; `cell_done` sees each cell as it is measured, with
/// the number of cells in all. Returns the cells and the number of held-out images.
pub fn evaluate(
    options: &EvalOptions,
    mut cell_done: impl FnMut(&Cell, usize),
) -> Result<(Vec<Cell>, usize)> {
    if options.n <= DEFAULT_K {
        return Err(bad_input!(
            "--n must be more than {DEFAULT_K} (precision and recall use {DEFAULT_K}-nearest neighbours)"
        ));
    }
    let rt = Runtime::open(&options.engines, options.runtime.clone())?;
    let lengths = options.lengths.clone().unwrap_or_else(|| rt.lengths());
    for &l in &lengths {
        rt.manifest().entry(l)?;
    }
    let net = open_features(&options.features, &options.runtime)?;
    let reference = Reference::new(options, &net, &rt)?;
    let num_classes = rt.manifest().model.num_classes as i64;
    let labels: Vec<i64> = (0..options.n as i64).map(|i| i % num_classes).collect();
    drop(rt);
    let precisions: Vec<Option<Precision>> = if options.precisions.is_empty() {
        vec![options.runtime.precision]
    } else {
        options.precisions.iter().copied().map(Some).collect()
    };
    let total = lengths.len() * precisions.len() * options.solvers.len();
    let mut cells = Vec::new();
    // The last length's bootstrap per (precision, solver), for the paired differences.
    let mut previous: HashMap<(String, String), (u32, Bootstrap)> = HashMap::new();
    for (&length, &precision) in lengths
        .iter()
        .flat_map(|l| precisions.iter().map(move |p| (l, p)))
    {
        // A runtime per length and precision, so each one's peak memory is its own.
        memory::reset_peak_rss();
        let before = memory::current_rss_mb();
        let rt = Runtime::open(
            &options.engines,
            options.runtime.clone().with_precision(precision),
        )?;
        // One untimed solve at the cells' batch, so no cell pays for opening the engine and
        // growing ONNX Runtime's arena.
        rt.sample(&SampleRequest::new(options.n, SolverChoice::Euler { steps: 1 }).with_length(length))?;
        for (name, solver) in &options.solvers {
            let req = SampleRequest::new(options.n, solver.clone())
                .with_length(length)
                .with_seed(options.seed)
                .with_labels(Labels::PerSample(labels.clone()));
            let samples = rt.sample(&req)?;
            let peak = memory::peak_rss_mb();
            let (generated, dim) = features(&net, &samples.data, samples.shape)?;
            if dim != reference.dim {
                return Err(anyhow::anyhow!(
                    "the feature network's output changed from {} to {dim} features",
                    reference.dim
                ));
            }
            let boot = Bootstrap::new(&generated, dim, &reference.stats, options.bootstrap, options.seed);
            let precision_name = rt.options().precision_name(rt.manifest()).to_string();
            let key = (precision_name.clone(), name.clone());
            let fd_vs_previous = previous.get(&key).map(|(l, prev): &(u32, Bootstrap)| FdChange {
                length: *l,
                diff: boot.fd - prev.fd,
                ci: boot.difference_interval(prev),
            });
            let cell = Cell {
                length,
                precision: precision_name,
                solver: name.clone(),
                nfe: samples.stats.nfe as u64,
                fd: boot.fd,
                fd_ci: boot.interval(),
                fd_vs_previous,
                quality: precision_recall(&reference.manifold, &Manifold::new(&generated, dim, DEFAULT_K)),
                ms_per_image: samples.wall.as_secs_f64() * 1e3 / options.n as f64,
                weight_mb: weight_bytes(&rt, length)? as f64 / 1e6,
                peak_rss_mb: peak,
                added_rss_mb: peak.zip(before).map(|(peak, base)| peak - base),
            };
            cell_done(&cell, total);
            cells.push(cell);
            previous.insert(key, (length, boot));
        }
    }
    Ok((cells, reference.count()))
}

/// Bytes of weights the engine of `length` references: the export's for its own precision, the
/// built engine's (shared and own) for another.
fn weight_bytes(rt: &Runtime, length: u32) -> Result<u64> {
    let manifest = rt.manifest();
    let entry = manifest.entry(length)?;
    let precision = rt.options().precision_name(manifest);
    if precision == manifest.precision {
        return Ok(entry.weight_bytes);
    }
    let backend = rt.options().provider.backend();
    let bytes = entry
        .engines
        .iter()
        .find(|e| e.backend == backend && e.precision == precision)
        .map(|e| {
            ["shared_bytes", "own_bytes"]
                .iter()
                .filter_map(|k| e.options[k].as_u64())
                .sum()
        });
    Ok(bytes.unwrap_or(entry.weight_bytes))
}

fn open_features(path: &Path, options: &RuntimeOptions) -> Result<Decoder> {
    if !path.is_file() {
        return Err(bad_input!(
            "no feature network at {}; pass --features FILE.onnx or create it with `odelt features`",
            path.display()
        ));
    }
    Ok(Decoder::open(path, options)?)
}

/// The cells as a Markdown table.
pub fn markdown_table(cells: &[Cell], n: usize, reference: usize) -> String {
    let mut out = format!(
        "Fréchet distance of {n} samples to {reference} held-out images (lower is better)\n\n\
         | length | precision | solver | NFE | FD | FD 95% CI | ΔFD from previous length (95% CI) | kNN precision | kNN recall | ms/image | weights MB | peak RSS MB | added RSS MB |\n\
         |---:|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|\n"
    );
    let mb = |v: Option<f64>| v.map_or("–".into(), |mb| format!("{mb:.0}"));
    for c in cells {
        let range = |ci: Option<[f64; 2]>| ci.map_or("–".into(), |[lo, hi]| format!("{lo:.3} … {hi:.3}"));
        let change = c.fd_vs_previous.as_ref().map_or("–".into(), |d| {
            format!("{:+.3} from l = {} ({})", d.diff, d.length, range(d.ci))
        });
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.3} | {} | {change} | {:.3} | {:.3} | {:.2} | {:.1} | {} | {} |\n",
            c.length,
            c.precision,
            c.solver,
            c.nfe,
            c.fd,
            range(c.fd_ci),
            c.quality.precision,
            c.quality.recall,
            c.ms_per_image,
            c.weight_mb,
            mb(c.peak_rss_mb),
            mb(c.added_rss_mb)
        ));
    }
    out
}
