//! Peak memory of sampling one length with the runtime alone, the baseline for the `odelt
//! sample` figures in BENCHMARKS.md.
//!
//! ```text
//! cargo run --release -p odelt-engines --example sample_rss -- DIR LENGTH [THREADS]
//! ```
//! Prints one JSON line: length, peak RSS (VmHWM) before opening the engine and after
//! sampling (Euler, 2 steps, 1 sample), and the RSS at the end, in MB.

use odelt_runtime::{memory, Runtime, RuntimeOptions, SampleRequest, SolverChoice};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: sample_rss DIR LENGTH [THREADS]");
    let length: u32 = args[2].parse()?;
    let threads: usize = args.get(3).map(|t| t.parse()).transpose()?.unwrap_or(2);
    let rt = Runtime::open(&args[1], RuntimeOptions::default().with_intra_threads(threads))?;
    let before = memory::peak_rss_mb();
    let req = SampleRequest::new(1, SolverChoice::Euler { steps: 2 }).with_length(length);
    let samples = rt.sample(&req)?;
    println!(
        "{}",
        serde_json::json!({
            "length": length,
            "built_engine": rt.engine(length)?.is_built(),
            "peak_rss_before_mb": before,
            "peak_rss_mb": memory::peak_rss_mb(),
            "rss_mb": memory::current_rss_mb(),
            "engine_ms": samples.stats.engine.as_secs_f64() * 1e3,
        })
    );
    Ok(())
}
