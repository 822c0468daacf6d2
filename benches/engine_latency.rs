//! Per-length latency of one engine call (ort-cpu engine built by `odelt engines build`,
//! batch 1) on a random-initialised checkpoint, plus the solver loop's host overhead.
//!
//! ```text
//! cargo bench --bench engine_latency                      # dit-b at lengths 4, 8, 12 (≈1 min)
//! ODELT_BENCH_MODEL=tiny cargo bench --bench engine_latency   # quick run
//! ODELT_BENCH_THREADS=2 …                                 # intra-op threads (default 2)
//! ```
//! The checkpoint, export and engines are made once under `target/bench-data/<preset>/`
//! (random weights from `odelt_export::testing`; delete the folder to rebuild).

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use odelt_engines::{build, BuildOptions};
use odelt_export::{testing, ExportOptions};
use odelt_runtime::{noise, ModelConfig, Runtime, RuntimeOptions, SampleRequest, SolverChoice};

fn threads() -> usize {
    std::env::var("ODELT_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2)
}

/// An export of `preset` with ort-cpu engines, made once.
fn export(preset: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/bench-data")
        .join(preset);
    let out = root.join("export");
    if out.join("manifest.json").is_file() {
        return out;
    }
    let config = ModelConfig::preset(preset).expect("a preset name");
    let ckpt = root.join("ckpt");
    testing::write_random_checkpoint(&ckpt, &config, 1).expect("checkpoint");
    let lengths = if preset == "tiny" {
        None
    } else {
        Some(vec![4, 8, 12])
    };
    odelt_export::export(
        &ckpt,
        &out,
        &ExportOptions {
            lengths,
            ..Default::default()
        },
    )
    .expect("export");
    build(&out, &BuildOptions::default(), |_| {}).expect("ort-cpu engines");
    std::fs::remove_dir_all(&ckpt).ok();
    out
}

fn engine_latency(c: &mut Criterion) {
    let preset = std::env::var("ODELT_BENCH_MODEL").unwrap_or_else(|_| "dit-b".into());
    let dir = export(&preset);
    let rt = Runtime::open(&dir, RuntimeOptions::default().with_intra_threads(threads())).expect("runtime");
    let mut group = c.benchmark_group(format!("engine_latency/{preset}"));
    group.sample_size(10);
    if preset != "tiny" {
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(8));
    }
    let model = rt.manifest().model.clone();
    let numel = model.image_numel();
    let x = noise::normal(1, numel);
    let (t, k, y) = ([0.5f32], [model.flow_level() as f32], [0i64]);
    let mut v = vec![0.0; numel];
    for length in rt.lengths() {
        let engine = rt.engine(length).expect("engine");
        assert!(engine.is_built(), "the bench times the built ort-cpu engine");
        group.bench_with_input(BenchmarkId::new("batch1", length), &length, |b, _| {
            b.iter(|| engine.run(&x, &t, &k, &y, &mut v).expect("engine call"))
        });
    }
    group.finish();
}

/// Euler with T = 128 on the tiny engine: criterion times the whole solve; the host share
/// (wall minus time inside the engine, `Samples.stats`) is printed after it.
fn solver_overhead(c: &mut Criterion) {
    let dir = export("tiny");
    let rt = Runtime::open(&dir, RuntimeOptions::default().with_intra_threads(1)).expect("runtime");
    let length = *rt.lengths().last().expect("a length");
    let request = SampleRequest::new(1, SolverChoice::Euler { steps: 128 }).with_length(length);
    rt.sample(&request).expect("warm-up");
    let mut group = c.benchmark_group("solver_overhead");
    group.sample_size(20);
    group.bench_function("euler128_tiny_solve", |b| {
        b.iter(|| rt.sample(&request).expect("sample"))
    });
    group.bench_function("euler128_tiny_host_only", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rt.sample(&request).expect("sample").stats.host)
                .sum()
        })
    });
    group.finish();
    let (mut host, mut engine) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..20 {
        let s = rt.sample(&request).expect("sample");
        host += s.stats.host;
        engine += s.stats.engine;
    }
    eprintln!(
        "solver_overhead: Euler T=128 on tiny l={length}: host {:.1} µs per solve = {:.3}% of the solve \
         ({:.2} µs per step; engine {:.3} ms per solve)",
        host.as_secs_f64() * 1e6 / 20.0,
        100.0 * host.as_secs_f64() / (host + engine).as_secs_f64(),
        host.as_secs_f64() * 1e6 / 20.0 / 128.0,
        engine.as_secs_f64() * 1e3 / 20.0
    );
}

criterion_group!(benches, solver_overhead, engine_latency);
criterion_main!(benches);
