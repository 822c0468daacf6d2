//! Peak memory of sampling one length with the runtime alone (no libtorch in the process,
//! unlike the `odelt` CLI, whose libtorch+CUDA libraries alone take ≈500 MB of RSS).
//!
//! ```text
//! cargo run --release -p odelt-engines --example sample_rss -- DIR LENGTH [THREADS]
//! ```
//! Prints one JSON line: length, peak RSS (VmHWM) before opening the engine and after
//! sampling (Euler, 2 steps, 1 sample), in KiB.

use odelt_runtime::{Runtime, RuntimeOptions, SampleRequest, SolverChoice};

fn status_kb(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() >= 3, "usage: sample_rss DIR LENGTH [THREADS]");
    let length: u32 = args[2].parse()?;
    let threads: usize = args.get(3).map(|t| t.parse()).transpose()?.unwrap_or(2);
    let rt = Runtime::open(&args[1], RuntimeOptions::default().with_intra_threads(threads))?;
    let before = status_kb("VmHWM:");
    let req = SampleRequest::new(1, SolverChoice::Euler { steps: 2 }).with_length(length);
    let samples = rt.sample(&req)?;
    println!(
        "{}",
        serde_json::json!({
            "length": length,
            "built_engine": rt.engine(length)?.is_built(),
            "peak_rss_before_kb": before,
            "peak_rss_kb": status_kb("VmHWM:"),
            "rss_kb": status_kb("VmRSS:"),
            "engine_ms": samples.stats.engine.as_secs_f64() * 1e3,
        })
    );
    Ok(())
}
