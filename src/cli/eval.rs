//! `odelt eval` (sample quality and cost over lengths × solvers) and `odelt features` (trains
//! the Fashion-MNIST feature network eval uses).

use std::path::PathBuf;

use anyhow::Result;
use indicatif::ProgressBar;
use odelt_runtime::{Decoder, Labels, Runtime, RuntimeOptions, SampleRequest, SolverChoice};
use serde::Serialize;
use tch::Tensor;

use crate::bad_input;
use crate::data::{DataSource, Dataset, Split};
use crate::eval::{frechet_distance, train_feature_net, FeatureStats};

/// The shipped feature network for Fashion-MNIST, under the assets folder.
pub const FEATURES_FILE: &str = "fmnist_features.onnx";

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Export folder (manifest.json and graphs) to evaluate.
    #[arg(long, value_name = "DIR")]
    pub engines: PathBuf,
    /// Held-out images to compare with: `fashion-mnist` (its test split), `synthetic`, a .npy
    /// file or an image folder, at the model's size.
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Samples generated per cell (same noise and balanced labels in every cell).
    #[arg(long, default_value_t = 1000)]
    pub n: usize,
    /// Lengths to evaluate [default: every exported length].
    #[arg(long, value_delimiter = ',')]
    pub lengths: Option<Vec<u32>>,
    /// Solver settings: `euler:T` or `dopri5:TOL` (rtol = atol = TOL), comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "euler:1,euler:4,euler:16,euler:128,dopri5:1e-2,dopri5:1e-3"
    )]
    pub solvers: Vec<String>,
    /// ONNX feature extractor: one float32 [N, C, H, W] input at the model's image size, pooled
    /// features [N, F, 1, 1] out (e.g. InceptionV3's pool3 for real FID) [default: the shipped
    /// Fashion-MNIST network].
    #[arg(long, value_name = "FILE.onnx")]
    pub features: Option<PathBuf>,
    /// Noise seed shared by every cell.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Engine calls of at most this many rows.
    #[arg(long, default_value_t = 250)]
    pub max_batch: usize,
    /// ONNX Runtime intra-op threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// One JSON line per cell instead of the Markdown table.
    #[arg(long)]
    pub json: bool,
}

/// One cell of the table.
#[derive(Debug, Serialize)]
pub struct Cell {
    pub length: u32,
    pub solver: String,
    pub nfe: u64,
    /// Fréchet distance to the held-out images in the feature space.
    pub fd: f64,
    pub ms_per_image: f64,
    /// Bytes of weights the engine of this length loads.
    pub weight_mb: f64,
    /// Peak resident memory of the process while this length's engine was open (Linux), MB.
    /// It includes what the CLI itself holds: libtorch, the held-out data, the feature network.
    pub peak_rss_mb: Option<f64>,
    /// That peak minus the resident memory just before this length's runtime opened: what
    /// sampling at this length added (weights, ONNX Runtime's arena, solver buffers), MB.
    pub added_rss_mb: Option<f64>,
}

fn parse_solver(spec: &str) -> Result<SolverChoice> {
    let bad = || bad_input!("--solvers: '{spec}' is not euler:T (T ≥ 1) or dopri5:TOL (TOL > 0)");
    let (name, value) = spec.split_once(':').ok_or_else(bad)?;
    match name {
        "euler" => match value.parse::<u32>() {
            Ok(steps) if steps > 0 => Ok(SolverChoice::Euler { steps }),
            _ => Err(bad()),
        },
        "dopri5" => match value.parse::<f64>() {
            Ok(tol) if tol > 0.0 => Ok(SolverChoice::dopri5(tol, tol)),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// The shipped assets: `ODELT_ASSETS`, else the repository's `assets/`.
pub fn assets_dir() -> PathBuf {
    std::env::var_os("ODELT_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets"))
}

/// Features of `images` [N, C, H, W] through the ONNX network, as f32 [N, F].
fn features(net: &Decoder, images: &[f32], shape: [usize; 4]) -> Result<Tensor> {
    let out = net.decode(images, shape)?;
    let f: usize = out.shape[1..].iter().product();
    Ok(Tensor::from_slice(&out.data).view([shape[0] as i64, f as i64]))
}

pub fn run(args: EvalArgs) -> Result<()> {
    let solvers: Vec<(String, SolverChoice)> = args
        .solvers
        .iter()
        .map(|s| Ok((s.clone(), parse_solver(s)?)))
        .collect::<Result<_>>()?;
    if args.n < 2 {
        return Err(bad_input!(
            "--n must be at least 2 (a covariance needs two samples)"
        ));
    }
    let mut options = RuntimeOptions::default().with_max_batch(args.max_batch);
    if let Some(threads) = args.threads {
        options = options.with_intra_threads(threads);
    }
    let rt = Runtime::open(&args.engines, options.clone())?;
    let model = rt.manifest().model.clone();
    let lengths = args.lengths.clone().unwrap_or_else(|| rt.lengths());
    for &l in &lengths {
        rt.manifest().entry(l)?;
    }
    let features_path = args
        .features
        .clone()
        .unwrap_or_else(|| assets_dir().join(FEATURES_FILE));
    if !features_path.is_file() {
        return Err(bad_input!(
            "no feature network at {}; pass --features FILE.onnx or create it with `odelt features`",
            features_path.display()
        ));
    }
    let net = Decoder::open(&features_path, &options)?;
    let held_out = Dataset::load(
        &DataSource::parse(&args.data, None)?,
        &model,
        Split::Test,
        args.seed,
    )?;
    let shape_of = |n: usize| {
        [
            n,
            model.in_channels as usize,
            model.input_size as usize,
            model.input_size as usize,
        ]
    };
    let images = Vec::<f32>::try_from(&held_out.images.flatten(0, -1))?;
    let reference = FeatureStats::new(&features(&net, &images, shape_of(held_out.len()))?);

    let labels: Vec<i64> = (0..args.n as i64).map(|i| i % model.num_classes as i64).collect();
    let bar = ProgressBar::new((lengths.len() * solvers.len()) as u64);
    let mut cells = Vec::new();
    drop(rt);
    for &length in &lengths {
        // A runtime per length, so each length's peak memory is its own.
        reset_peak_rss();
        let before = proc_status_mb("VmRSS:");
        let rt = Runtime::open(&args.engines, options.clone())?;
        // One untimed solve at the cells' batch, so no cell pays for opening the engine and
        // growing ONNX Runtime's arena.
        rt.sample(&SampleRequest::new(args.n, SolverChoice::Euler { steps: 1 }).with_length(length))?;
        for (name, solver) in &solvers {
            bar.set_message(format!("l={length} {name}"));
            let req = SampleRequest::new(args.n, solver.clone())
                .with_length(length)
                .with_seed(args.seed)
                .with_labels(Labels::PerSample(labels.clone()));
            let samples = rt.sample(&req)?;
            let generated = FeatureStats::new(&features(&net, &samples.data, samples.shape)?);
            let peak = proc_status_mb("VmHWM:");
            let cell = Cell {
                length,
                solver: name.clone(),
                nfe: samples.stats.nfe as u64,
                fd: frechet_distance(&generated, &reference),
                ms_per_image: samples.wall.as_secs_f64() * 1e3 / args.n as f64,
                weight_mb: rt.manifest().entry(length)?.weight_bytes as f64 / 1e6,
                peak_rss_mb: peak,
                added_rss_mb: peak.zip(before).map(|(peak, base)| peak - base),
            };
            if args.json {
                bar.suspend(|| println!("{}", serde_json::to_string(&cell).expect("a cell serialises")));
            }
            cells.push(cell);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    if !args.json {
        print!("{}", markdown_table(&cells, args.n, reference.count));
    }
    Ok(())
}

fn markdown_table(cells: &[Cell], n: usize, reference: usize) -> String {
    let mut out = format!(
        "Fréchet distance of {n} samples to {reference} held-out images (lower is better)\n\n\
         | length | solver | NFE | FD | ms/image | weights MB | peak RSS MB | added RSS MB |\n|---:|---|---:|---:|---:|---:|---:|---:|\n"
    );
    let mb = |v: Option<f64>| v.map_or("–".into(), |mb| format!("{mb:.0}"));
    for c in cells {
        out.push_str(&format!(
            "| {} | {} | {} | {:.3} | {:.2} | {:.1} | {} | {} |\n",
            c.length,
            c.solver,
            c.nfe,
            c.fd,
            c.ms_per_image,
            c.weight_mb,
            mb(c.peak_rss_mb),
            mb(c.added_rss_mb)
        ));
    }
    out
}

/// Starts a new peak: Linux resets VmHWM to the current RSS when 5 is written to clear_refs.
fn reset_peak_rss() {
    // Elsewhere the file does not exist and the peaks are simply cumulative.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A memory line of /proc/self/status (`VmHWM:` the peak, `VmRSS:` the current) in MB, where
/// /proc provides it.
fn proc_status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    /// Training data for the classifier behind the features (its test split reports accuracy).
    #[arg(long, default_value = "fashion-mnist")]
    pub data: String,
    /// Model preset or config file whose image shape and classes the data must match.
    #[arg(long, default_value = "fmnist")]
    pub model: String,
    /// Passes over the training data.
    #[arg(long, default_value_t = 2)]
    pub epochs: u64,
    /// ONNX file to write [default: the assets folder's fmnist_features.onnx].
    #[arg(long, value_name = "FILE.onnx")]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    /// Seed of initialisation and data order.
    pub seed: u64,
    /// CPU threads for libtorch [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run_features(args: FeaturesArgs) -> Result<()> {
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads as i32);
    }
    let model = odelt_runtime::ModelConfig::from_preset_or_file(&args.model)?;
    let source = DataSource::parse(&args.data, None)?;
    let train = Dataset::load(&source, &model, Split::Train, args.seed)?;
    let test = Dataset::load(&source, &model, Split::Test, args.seed)?;
    let (_vs, net) = train_feature_net(&train, model.num_classes as i64, args.epochs, args.seed)?;
    let out = args.out.unwrap_or_else(|| assets_dir().join(FEATURES_FILE));
    let shape = [
        model.in_channels as usize,
        model.input_size as usize,
        model.input_size as usize,
    ];
    odelt_export::features::write_feature_net(&net.convs(), shape, &out)?;
    eprintln!(
        "wrote {} (test accuracy {:.2}%)",
        out.display(),
        100.0 * net.accuracy(&test)
    );
    Ok(())
}
