//! `odelt eval` (sample quality and cost over lengths × solvers) and `odelt features` (trains
//! the Fashion-MNIST feature network eval uses; needs the `train` feature).

use std::path::PathBuf;

use anyhow::Result;
use odelt_runtime::{Precision, RuntimeOptions};

use crate::data::DataSource;
use crate::eval::{assets_dir, evaluate, markdown_table, parse_solver, EvalOptions, FEATURES_FILE};

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
    /// Bootstrap resamples behind each FD's 95% interval (0: none).
    #[arg(long, default_value_t = 200)]
    pub bootstrap: usize,
    /// Noise seed shared by every cell.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Engine calls of at most this many rows.
    #[arg(long, default_value_t = 250)]
    pub max_batch: usize,
    /// ONNX Runtime intra-op threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Precisions to compare, comma-separated (e.g. fp32,int8): every cell is evaluated with
    /// each, on the same noise [default: the export's own]. A precision other than the
    /// export's needs built engines (`odelt engines build --backend ort-cpu --precision int8`).
    #[arg(long, value_delimiter = ',', value_name = "P,P,…")]
    pub precision: Vec<Precision>,
    /// One JSON line per cell instead of the Markdown table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let solvers = args
        .solvers
        .iter()
        .map(|s| Ok((s.clone(), parse_solver(s)?)))
        .collect::<Result<_>>()?;
    let mut runtime = RuntimeOptions::default().with_max_batch(args.max_batch);
    if let Some(threads) = args.threads {
        runtime = runtime.with_intra_threads(threads);
    }
    let options = EvalOptions {
        engines: args.engines.clone(),
        data: DataSource::parse(&args.data, None)?,
        n: args.n,
        lengths: args.lengths.clone(),
        features: args
            .features
            .clone()
            .unwrap_or_else(|| assets_dir().join(FEATURES_FILE)),
        solvers,
        bootstrap: args.bootstrap,
        seed: args.seed,
        runtime,
        precisions: args.precision.clone(),
    };
    let bar = crate::progress::bar(0, "{spinner} eval [{bar:30}] {pos}/{len} cells {elapsed} {msg}");
    let result = evaluate(&options, |cell, total| {
        bar.set_length(total as u64);
        bar.inc(1);
        bar.set_message(format!("l={} {} {}", cell.length, cell.precision, cell.solver));
        if args.json {
            bar.suspend(|| println!("{}", serde_json::to_string(cell).unwrap_or_default()));
        }
    });
    bar.finish_and_clear();
    let (cells, reference) = result?;
    if !args.json {
        print!("{}", markdown_table(&cells, args.n, reference));
    }
    Ok(())
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
    #[arg(long, default_value_t = 20)]
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

#[cfg(not(feature = "train"))]
pub fn run_features(_args: FeaturesArgs) -> Result<()> {
    Err(crate::train::needs_train_feature("features"))
}

#[cfg(feature = "train")]
pub fn run_features(args: FeaturesArgs) -> Result<()> {
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads as i32);
    }
    let model = odelt_format::ModelConfig::from_preset_or_file(&args.model)?;
    let source = DataSource::parse(&args.data, None)?;
    let out = args.out.unwrap_or_else(|| assets_dir().join(FEATURES_FILE));
    let accuracy = crate::train::features::train_and_export(&source, &model, args.epochs, args.seed, &out)?;
    eprintln!("wrote {} (test accuracy {:.2}%)", out.display(), 100.0 * accuracy);
    Ok(())
}
