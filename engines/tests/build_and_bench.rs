//! Engines for a tiny random export: the built ort-cpu engine gives the plain graph's output,
//! calibration lands in the manifest and drives the budget pick, GPU backends fail cleanly.

use std::path::Path;

use odelt_engines::{bench, build, record_calibration, Backend, BenchOptions, BuildOptions, Error};
use odelt_export::{testing, ExportOptions, Ops};
use odelt_runtime::manifest::{Calibration, Manifest};
use odelt_runtime::{noise, ModelConfig, Precision, Runtime, RuntimeOptions};

fn tiny_export(dir: &Path) -> std::path::PathBuf {
    tiny_export_with(dir, Ops::Fused)
}

fn tiny_export_with(dir: &Path, ops: Ops) -> std::path::PathBuf {
    let ckpt = dir.join("ckpt");
    testing::write_random_checkpoint(&ckpt, &ModelConfig::tiny(), 5).unwrap();
    let out = dir.join(format!("export-{}", ops.name()));
    let options = ExportOptions {
        ops,
        ..ExportOptions::default()
    };
    odelt_export::export(&ckpt, &out, &options).unwrap();
    out
}

fn run(dir: &Path, prefer_built: bool, length: u32, batch: usize) -> (bool, Vec<f32>) {
    run_at(dir, prefer_built, None, length, batch)
}

fn run_at(
    dir: &Path,
    prefer_built: bool,
    precision: Option<Precision>,
    length: u32,
    batch: usize,
) -> (bool, Vec<f32>) {
    let rt = Runtime::open(
        dir,
        RuntimeOptions::default()
            .with_intra_threads(1)
            .with_prefer_built_engines(prefer_built)
            .with_precision(precision),
    )
    .unwrap();
    let engine = rt.engine(length).unwrap();
    let numel = engine.image_numel();
    let x = noise::normal(9, batch * numel);
    let t: Vec<f32> = (0..batch).map(|i| 0.1 + 0.2 * i as f32).collect();
    let k = vec![3.0; batch];
    let y: Vec<i64> = (0..batch as i64).map(|i| i % 5).collect();
    let mut v = vec![0.0; batch * numel];
    engine.run(&x, &t, &k, &y, &mut v).unwrap();
    (engine.is_built(), v)
}

#[test]
fn built_ort_cpu_engine_matches_the_plain_graph() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_export(tmp.path());
    let built = build(&dir, &BuildOptions::default(), |_| {}).unwrap();
    let manifest = Manifest::read(&dir).unwrap();
    assert_eq!(built.len(), manifest.lengths.len());
    for entry in &manifest.lengths {
        let engine = &entry.engines[0];
        assert_eq!(engine.backend, "ort-cpu");
        assert_eq!(engine.file, format!("model_l{}.ort-cpu.onnx", entry.length));
        assert!(dir.join(&engine.file).is_file());
        assert!(engine.build_seconds >= 0.0);
        assert_eq!(engine.options["optimization_level"], "extended");
        // Every initializer references the shared weights, none is copied.
        assert_eq!(engine.options["own_bytes"], 0);
        assert!(engine.options["shared_bytes"].as_u64().unwrap() > 0);

        for batch in [1, 3] {
            let (plain_built, plain) = run(&dir, false, entry.length, batch);
            let (is_built, fast) = run(&dir, true, entry.length, batch);
            assert!(!plain_built && is_built);
            let scale = plain.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(scale > 0.0);
            let err = plain
                .iter()
                .zip(&fast)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-5 * scale,
                "l={} batch {batch}: max err {err} vs max |v| {scale}",
                entry.length
            );
        }
    }
    // Rebuilding replaces the entry instead of adding a second one.
    build(&dir, &BuildOptions::default(), |_| {}).unwrap();
    let manifest = Manifest::read(&dir).unwrap();
    assert!(manifest.lengths.iter().all(|e| e.engines.len() == 1));
    // No partial files are left behind.
    let stray: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.ends_with(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn int8_options() -> BuildOptions {
    BuildOptions {
        precision: Some(Precision::Int8),
        ..Default::default()
    }
}

/// (max |a − b|, max |a|)
fn max_error(a: &[f32], b: &[f32]) -> (f32, f32) {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = a.iter().zip(b).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    (err, scale)
}

#[test]
fn int8_engines_sit_beside_fp32_share_one_int8_file_and_stay_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_export(tmp.path());
    // Without int8 engines, asking for int8 is an input error naming the build command.
    let rt = Runtime::open(
        &dir,
        RuntimeOptions::default().with_precision(Some(Precision::Int8)),
    )
    .unwrap();
    let err = rt.engine(4).unwrap_err();
    assert!(
        err.is_input() && err.to_string().contains("--precision int8"),
        "{err}"
    );

    build(&dir, &BuildOptions::default(), |_| {}).unwrap();
    build(&dir, &int8_options(), |_| {}).unwrap();
    build(&dir, &int8_options(), |_| {}).unwrap(); // a rebuild replaces, does not add
    let manifest = Manifest::read(&dir).unwrap();
    let int8_files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(odelt_engines::int8::FILE_PREFIX))
        .collect();
    assert_eq!(int8_files.len(), 1, "{int8_files:?}");
    for entry in &manifest.lengths {
        assert_eq!(entry.engines.len(), 2, "{:?}", entry.engines);
        let int8 = entry.engines.iter().find(|e| e.precision == "int8").unwrap();
        assert_eq!(int8.backend, "ort-cpu");
        assert_eq!(int8.file, format!("model_l{}.ort-cpu-int8.onnx", entry.length));
        // Every length's int8 weights are in the one shared file, none copied per length.
        assert_eq!(int8.options["int8"]["weights"], int8_files[0].as_str());
        assert_eq!(int8.options["own_bytes"], 0, "{}", int8.options);
        // The blocks' four token linears, their adaLN, the embedders' four and the final
        // layer's two linears: all int8, each MatMul's bias folded in.
        let blocks = entry.length as u64;
        assert_eq!(
            int8.options["int8"]["products"],
            5 * blocks + 6,
            "{}",
            int8.options
        );
        // In the fused graph (the default export) the qkv bias belongs to Attention (to
        // MultiHeadAttention once int8) and fc1's to FastGelu, and adaLN's Gemm takes a computed
        // bias (added after the int8 product): the attention projection's and fc2's bias Adds
        // fold, and the final linear's.
        assert_eq!(int8.options["int8"]["biases_folded"], 2 * blocks + 1);
        let model = odelt_export::external::read_model(&dir.join(&int8.file)).unwrap();
        let ops: Vec<&str> = model.graph.node.iter().map(|n| n.op_type.as_str()).collect();
        let count = |op: &str| ops.iter().filter(|o| **o == op).count() as u64;
        assert_eq!(count("DynamicQuantizeMatMul"), 5 * blocks + 6, "{ops:?}");
        // Each block's Attention is now its int8 qkv product, a Split and MultiHeadAttention.
        assert_eq!(count("Attention"), 0, "{ops:?}");
        assert_eq!(count("MultiHeadAttention"), blocks, "{ops:?}");
        let initializers: Vec<&str> = model.graph.initializer.iter().map(|t| t.name.as_str()).collect();
        for i in 0..blocks {
            let qkv = format!("blocks.{i}.attn.qkv.weight");
            assert!(initializers.contains(&format!("{qkv}.int8").as_str()), "{qkv}");
            assert!(!initializers.contains(&qkv.as_str()), "{qkv} is left in fp32");
        }
        // No fp32 matrix product with a weight is left (attention's products of two
        // activations stay fp32).
        for node in &model.graph.node {
            if ["MatMul", "Gemm", "FusedMatMul", "Attention"].contains(&node.op_type.as_str()) {
                assert!(
                    !node.input.iter().any(|i| initializers.contains(&i.as_str())),
                    "{node:?}"
                );
            }
        }

        let (_, fp32) = run_at(&dir, true, None, entry.length, 3);
        let (built, int8) = run_at(&dir, true, Some(Precision::Int8), entry.length, 3);
        assert!(built);
        let (err, scale) = max_error(&fp32, &int8);
        assert!(
            err > 0.0,
            "l={}: the int8 engine gave the fp32 output",
            entry.length
        );
        assert!(
            err <= 0.05 * scale,
            "l={}: max err {err} vs max |v| {scale}",
            entry.length
        );
    }
    // The fp32 engines are untouched by the int8 build.
    for entry in &manifest.lengths {
        let (_, plain) = run(&dir, false, entry.length, 2);
        let (_, fp32) = run(&dir, true, entry.length, 2);
        let (err, scale) = max_error(&plain, &fp32);
        assert!(err <= 1e-5 * scale);
    }
    // int8 is built for ort-cpu only.
    for backend in [Backend::OrtCuda, Backend::TensorRt] {
        let options = BuildOptions {
            backend,
            ..int8_options()
        };
        let err = build(&dir, &options, |_| {}).unwrap_err();
        assert!(err.is_input() && err.to_string().contains("int8"), "{err}");
    }
}

#[test]
fn gpu_backends_fail_with_one_line_when_the_provider_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    // TensorRT takes standard operators only: a fused export is bad input whatever the library.
    let fused = tiny_export(tmp.path());
    let options = BuildOptions {
        backend: Backend::TensorRt,
        ..Default::default()
    };
    let err = build(&fused, &options, |_| {}).unwrap_err();
    assert!(err.is_input(), "{err:?}");
    assert!(err.to_string().contains("--standard-ops"), "{err}");
    let dir = tiny_export_with(tmp.path(), Ops::Standard);
    let before = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    for (backend, packages) in [
        (Backend::TensorRt, "TensorRT 10 for CUDA 13"),
        (Backend::OrtCuda, "onnxruntime-gpu==1.31.1 (a CUDA 13 build"),
    ] {
        let options = BuildOptions {
            backend,
            ..Default::default()
        };
        let err = build(&dir, &options, |_| {}).unwrap_err();
        assert!(
            matches!(err, Error::Runtime(odelt_runtime::Error::Provider(_))),
            "{err:?}"
        );
        assert!(
            err.is_input(),
            "a missing provider is bad input (exit 2), in the builder as in the runtime"
        );
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains(packages), "{text}");
    }
    assert_eq!(
        before,
        std::fs::read_to_string(dir.join("manifest.json")).unwrap()
    );
    // Bad options are input errors.
    let err = build(
        &dir,
        &BuildOptions {
            precision: Some(Precision::Fp16),
            ..Default::default()
        },
        |_| {},
    )
    .unwrap_err();
    assert!(err.is_input(), "{err}");
}

#[test]
fn calibration_is_recorded_and_drives_the_budget_pick() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tiny_export(tmp.path());
    build(&dir, &BuildOptions::default(), |_| {}).unwrap();
    let options = BenchOptions {
        batches: vec![1, 2],
        runs: 3,
        warmup: 1,
        threads: 1,
        ..Default::default()
    };
    let measured = bench(&dir, &options, |_, _| {}).unwrap();
    let manifest = Manifest::read(&dir).unwrap();
    assert_eq!(measured.len(), 2 * manifest.lengths.len());
    assert!(measured.iter().all(|m| m.built
        && m.calibration.ms_min <= m.calibration.ms_median
        && m.calibration.ms_median <= m.calibration.ms_max));
    record_calibration(&dir, &measured).unwrap();
    record_calibration(&dir, &measured).unwrap(); // replaces, does not duplicate
    let manifest = Manifest::read(&dir).unwrap();
    for entry in &manifest.lengths {
        assert_eq!(entry.calibration.len(), 2, "{:?}", entry.calibration);
        assert!(entry
            .calibration
            .iter()
            .all(|c| c.backend == "ort-cpu" && c.threads == 1 && c.runs == 3));
    }

    // The budget pick with known latencies: l=2 1 ms, l=4 2 ms per call of one row.
    let mut manifest = manifest;
    for entry in &mut manifest.lengths {
        entry.calibration = vec![Calibration {
            backend: "ort-cpu".into(),
            precision: None,
            batch: 1,
            threads: 1,
            ms_median: entry.length as f64 / 2.0,
            ms_min: 0.0,
            ms_max: 0.0,
            runs: 1,
        }];
    }
    manifest.write(&dir).unwrap();
    let rt = Runtime::open(&dir, RuntimeOptions::default().with_intra_threads(1)).unwrap();
    let pick = rt.pick_for_budget(5.0, Some(4), 1).unwrap();
    assert_eq!((pick.length, pick.steps), (2, 4));
    let pick = rt.pick_for_budget(8.0, Some(4), 1).unwrap();
    assert_eq!((pick.length, pick.steps), (4, 4));
    let pick = rt.pick_for_budget(9.0, None, 1).unwrap();
    assert_eq!((pick.length, pick.steps), (4, 4));
    assert!(rt.pick_for_budget(0.5, Some(4), 1).unwrap_err().is_input());
}
