//! `odelt …`: one module per subcommand, each with its clap `Args` and a `run`.

pub mod bench;
pub mod demo;
pub mod engines;
pub mod eval;
pub mod export;
pub mod sample;
pub mod serve;
pub mod train;
pub mod triton;
pub mod verify;

use clap::{Parser, Subcommand};

/// odelt: ODE_t(ODE_l) flow models from training to deployment.
///
/// Train a DiT whose depth is an ODE, export one ONNX graph per length, build engines and
/// sample with any number of time steps and active blocks.
#[derive(Debug, Parser)]
#[command(name = "odelt", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `odelt=debug`. Also RUST_LOG.
    #[arg(long, global = true, default_value = "warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train an ODE_t(ODE_l) model (Algorithm 1) and write a checkpoint folder.
    Train(train::TrainArgs),
    /// Export a checkpoint to one ONNX graph per length with one shared weights file.
    Export(export::ExportArgs),
    /// Sample images from exported engines with Euler or Dopri5.
    Sample(sample::SampleArgs),
    /// Serve sampling over HTTP, batching concurrent requests into shared engine calls.
    Serve(serve::ServeArgs),
    /// The first command to run: the paper's lengths × steps figure on Fashion-MNIST, with the
    /// latency of every cell.
    Demo(demo::DemoArgs),
    /// Build backend engines (ort-cpu, ort-cuda, tensorrt) for an export folder.
    Engines(engines::EnginesArgs),
    /// Measure engine latency per length and batch; records calibration in the manifest.
    Bench(bench::BenchArgs),
    /// Write a Triton Inference Server model repository (one model per length) for an export.
    Triton(triton::TritonArgs),
    /// Check an export folder against its manifest: files, sizes and content hashes.
    Verify(verify::VerifyArgs),
    /// Sample quality (Fréchet distance) and cost over lengths × solver settings.
    Eval(eval::EvalArgs),
    /// Train the Fashion-MNIST feature network `odelt eval` uses and export it to ONNX.
    Features(eval::FeaturesArgs),
}

impl Command {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Train(args) => train::run(args),
            Command::Export(args) => export::run(args),
            Command::Sample(args) => sample::run(args),
            Command::Serve(args) => serve::run(args),
            Command::Demo(args) => demo::run(args),
            Command::Engines(args) => engines::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Triton(args) => triton::run(args),
            Command::Verify(args) => verify::run(args),
            Command::Eval(args) => eval::run(args),
            Command::Features(args) => eval::run_features(args),
        }
    }
}
