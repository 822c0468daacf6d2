//! Across the crates: a tch model exported to ONNX matches itself in ONNX Runtime, and
//! `odelt train → export → sample` works from the command line.

mod common;

use common::{
    assert_exit, assert_fails, json_lines, length_steps, odelt, odelt_words, ok, path_arg, random_checkpoint,
    tiny_engines, train_synthetic, words,
};
use std::path::Path;

use odelt::model::{Dit, Lengths};
use odelt::train::checkpoint::load_weights;
use odelt_export::{ExportOptions, Ops};
use odelt_runtime::{ModelConfig, Runtime, RuntimeOptions};
use tch::{nn, Device, Kind, Tensor};

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.flatten(0, -1)).expect("tensor data")
}

/// Exports the checkpoint `ckpt` (whose weights `model` holds) and checks every exported
/// length's ONNX Runtime output against the tch model: max abs error ≤ 1e-5 · max |v|
/// (docs/DESIGN.md §6).
fn check_onnx_matches_tch(ckpt: &Path, model: &Dit, config: &ModelConfig, labels: &[i64]) {
    for ops in [Ops::Fused, Ops::Standard] {
        check_ops_match_tch(ckpt, model, config, labels, ops);
    }
}

fn check_ops_match_tch(ckpt: &Path, model: &Dit, config: &ModelConfig, labels: &[i64], ops: Ops) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("engines");
    let options = ExportOptions {
        ops,
        ..ExportOptions::default()
    };
    let manifest = odelt_export::export(ckpt, &out, &options).expect("export");
    let lengths = config.valid_lengths();
    assert_eq!(
        manifest.lengths.iter().map(|e| e.length).collect::<Vec<_>>(),
        lengths
    );
    let rt = Runtime::open(&out, RuntimeOptions::default()).expect("runtime");
    let side = config.input_size as i64;
    let channels = config.in_channels as i64;
    tch::manual_seed(5);
    for batch in [1i64, 3] {
        let x = Tensor::randn([batch, channels, side, side], (Kind::Float, Device::Cpu));
        let t = Tensor::rand([batch], (Kind::Float, Device::Cpu));
        for level in [2.0f32, 7.0] {
            let k = Tensor::full([batch], level as f64, (Kind::Float, Device::Cpu));
            let labels = &labels[..batch as usize];
            let y = Tensor::from_slice(labels);
            for &l in &lengths {
                let want = tch::no_grad(|| model.forward(&x, &t, &k, &y, Lengths::Uniform(l)));
                let mut got = vec![0f32; want.numel()];
                rt.engine(l)
                    .expect("engine")
                    .run(&to_vec(&x), &to_vec(&t), &to_vec(&k), labels, &mut got)
                    .expect("run");
                let want = to_vec(&want);
                let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
                let err = want.iter().zip(&got).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(scale > 1e-2, "degenerate output");
                eprintln!(
                    "{ops:?} l={l} batch={batch} k={level}: max abs error / max|v| = {:.2e}",
                    err / scale
                );
                assert!(
                    err <= 1e-5 * scale,
                    "l={l} batch={batch} k={level}: err {err} vs max|v| {scale}"
                );
            }
        }
    }
}

#[test]
fn onnx_runtime_matches_tch_for_every_length() {
    // Three lengths with groups of two, and a model with several heads and tokens; the null
    // label (4) and real ones.
    let mut config = ModelConfig::tiny();
    config.depth = 6;
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = dir.path().join("ckpt");
    let (_vs, model) = random_checkpoint(&config, &ckpt);
    check_onnx_matches_tch(&ckpt, &model, &config, &[4, 0, 3]);
}

#[test]
fn onnx_runtime_matches_tch_on_the_fmnist_preset() {
    // The fmnist preset (49 tokens, hidden 96, 4 heads, groups of 4) with the shipped model's
    // trained weights: activations of a real model's size, where random weights of a fixed
    // scale grow through 12 blocks to outputs no trained model has.
    let ckpt = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/fmnist");
    let config = odelt_format::CheckpointMeta::read(&ckpt)
        .expect("shipped config")
        .model;
    assert_eq!(config, ModelConfig::fmnist());
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Dit::new(&vs.root(), &config);
    load_weights(&vs, &ckpt.join("model.safetensors")).expect("shipped weights");
    check_onnx_matches_tch(&ckpt, &model, &config, &[10, 0, 9]);
}

#[test]
fn train_export_sample_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| path_arg(dir.path(), n);
    let engines = tiny_engines(dir.path(), 20, Some("2,4"));
    for f in ["model_l2.onnx", "model_l4.onnx", "weights.bin", "manifest.json"] {
        assert!(dir.path().join("engines").join(f).is_file(), "{f}");
    }
    let json = ok(odelt_words(
        "sample --length 4 --solver dopri5 --rtol 1e-3 --atol 1e-3 --n 16 --seed 0 --json",
        &["--engines", &engines, "--out", &p("grid.png")],
    ));
    let line: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    assert_eq!(line["length"], 4);
    assert_eq!(line["solver"], "dopri5");
    assert!(line["nfe"].as_u64().expect("nfe") >= 6);
    let grid = image::open(p("grid.png")).expect("png");
    // 16 samples: a 4×4 grid of 8×8 images.
    assert!(
        grid.width() >= 32 && grid.height() >= 32 && grid.width() == grid.height(),
        "{grid:?}"
    );
    // Bad input: a length that was not exported.
    assert_exit(
        odelt_words(
            "sample --length 3 --solver euler --steps 4 --n 1",
            &["--engines", &engines],
        ),
        2,
    );
}

#[test]
fn eval_reports_quality_and_cost_per_cell() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| path_arg(dir.path(), n);
    let engines = tiny_engines(dir.path(), 20, None);
    let features = p("features.onnx");
    let trained = odelt_words(
        "features --data synthetic --model tiny --epochs 1",
        &["--out", &features],
    );
    let log = String::from_utf8_lossy(&trained.stderr).into_owned();
    assert!(trained.status.success() && log.contains("test accuracy"), "{log}");
    let json = ok(odelt_words(
        "eval --data synthetic --n 64 --solvers euler:1,euler:4,dopri5:1e-2 --json",
        &["--engines", &engines, "--features", &features],
    ));
    let cells = json_lines(&json);
    assert_eq!(cells.len(), 2 * 3, "{json}");
    for cell in &cells {
        let fd = cell["fd"].as_f64().expect("fd");
        assert!(fd.is_finite() && fd >= -1e-6, "{cell}");
        assert!(cell["ms_per_image"].as_f64().expect("ms") > 0.0);
        // Linux: the peak includes what sampling added on top of the process before it.
        let (peak, added) = (cell["peak_rss_mb"].as_f64(), cell["added_rss_mb"].as_f64());
        if let (Some(peak), Some(added)) = (peak, added) {
            assert!(added >= 0.0 && added < peak, "{cell}");
        }
    }
    assert_eq!(cells[0]["nfe"], 1);
    assert_eq!(cells[1]["nfe"], 4);
    assert_eq!(cells[3]["length"], 4);
    // The second length's cells carry their change from the first, with a paired interval
    // around it; the first length's have none.
    assert!(cells[0].get("fd_vs_previous").is_none(), "{}", cells[0]);
    for (first, second) in cells[..3].iter().zip(&cells[3..]) {
        let change = &second["fd_vs_previous"];
        assert_eq!(change["length"], first["length"], "{second}");
        let diff = change["diff"].as_f64().expect("diff");
        let want = second["fd"].as_f64().unwrap() - first["fd"].as_f64().unwrap();
        assert!((diff - want).abs() < 1e-9, "{second}");
        let ci = change["ci"].as_array().expect("ci");
        assert!(
            ci[0].as_f64().unwrap() <= diff && diff <= ci[1].as_f64().unwrap(),
            "{second}"
        );
    }
    // A missing feature network is bad input, named.
    let missing = p("none.onnx");
    assert_exit(
        odelt_words(
            "eval --data synthetic",
            &["--engines", &engines, "--features", &missing],
        ),
        2,
    );
}

#[test]
fn engines_build_bench_and_budget_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = tiny_engines(dir.path(), 0, None);
    let built = ok(odelt_words(
        "engines build --backend ort-cpu",
        &["--engines", &engines],
    ));
    assert!(built.contains("model_l4.ort-cpu.onnx"), "{built}");
    let json = ok(odelt_words(
        "bench --batch 1,2 --runs 3 --threads 1 --json",
        &["--engines", &engines],
    ));
    let lines = json_lines(&json);
    assert_eq!(lines.len(), 2 * 2, "{json}");
    for line in &lines {
        assert!(line["ms_median"].as_f64().expect("ms_median") > 0.0, "{line}");
        assert!(
            line["length"].as_u64().is_some() && line["batch"].as_u64().is_some(),
            "{line}"
        );
        assert_eq!(line["built"], true, "{line}");
    }
    let manifest = odelt_runtime::Manifest::read(dir.path().join("engines").as_path()).expect("manifest");
    assert!(manifest
        .lengths
        .iter()
        .all(|e| e.calibration.len() == 2 && e.engines.len() == 1));
    // A generous budget picks the largest length with the most steps.
    let sampled = ok(odelt_words(
        "sample --budget-ms 1e9 --solver euler --n 1 --threads 1 --json",
        &["--engines", &engines],
    ));
    let line: serde_json::Value = serde_json::from_str(sampled.trim()).expect("JSON line");
    assert_eq!(line["length"], 4, "{line}");
    assert_eq!(line["steps"], 128, "{line}");
    // No GPU provider here: bad input (exit 2, as in `odelt sample`) and one line naming the
    // packages; TensorRT refuses the default (fused) export first, naming --standard-ops.
    for (backend, named) in [("tensorrt", "--standard-ops"), ("ort-cuda", "onnxruntime-gpu")] {
        let args = [
            &words("engines build --backend")[..],
            &[backend, "--engines", &engines],
        ]
        .concat();
        assert_fails(&args, &[], 2, named);
    }
}

#[test]
fn demo_draws_the_lengths_by_steps_figure_and_times_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = |n: &str| path_arg(dir.path(), n);
    // The tiny model with three lengths (2, 4, 6), trained for a few steps.
    let mut config = ModelConfig::tiny();
    config.depth = 6;
    std::fs::write(p("tiny6.json"), serde_json::to_string(&config).expect("json")).expect("config");
    train_synthetic(&p("tiny6.json"), 10, &p("ckpt"));
    let (ckpt, demo_dir) = (p("ckpt"), p("demo"));
    let demo = |extra: &[&str]| {
        let mut args = vec![
            "demo",
            "--checkpoint",
            &ckpt,
            "--out",
            &demo_dir,
            "--threads",
            "1",
        ];
        args.extend_from_slice(extra);
        odelt(&args)
    };
    let out = ok(demo(&["--json"]));
    let cells = json_lines(&out);
    let grid = length_steps(&cells);
    // Rows: largest, middle, smallest length; columns: T_max, 4, 1.
    assert_eq!(
        grid,
        [
            (6, 128),
            (6, 4),
            (6, 1),
            (4, 128),
            (4, 4),
            (4, 1),
            (2, 128),
            (2, 4),
            (2, 1)
        ]
    );
    assert_eq!(cells[0]["speedup"].as_f64(), Some(1.0), "the reference cell");
    for c in &cells {
        assert_eq!(c["nfe"], c["steps"], "{c}");
        assert_eq!(c["n"], 10);
        assert!(c["wall_ms"].as_f64().expect("wall_ms") > 0.0);
        assert!(c["speedup"].as_f64().expect("speedup") > 0.0);
    }
    let png = image::open(p("demo/grid.png")).expect("png");
    // 8×8 samples magnified ×7 to 56 px, 2 rows of 5 per cell with a 7 px label strip under
    // each: cells of 5·56 + 4·2 = 288 by 2·63 + 2 = 128; row headers "l=6" (22 px at scale 2)
    // with 8 px padding each side, column headers 8 + 10 + 8; 12 px between cells, 8 px margin.
    assert_eq!(
        (png.width(), png.height()),
        (38 + 3 * 288 + 2 * 12 + 8, 26 + 3 * 128 + 2 * 12 + 8)
    );
    // A second run reuses the export and the engines.
    let again = demo(&[]);
    let stderr = String::from_utf8_lossy(&again.stderr).into_owned();
    let table = ok(again);
    assert!(
        stderr.contains("reusing the export") && stderr.contains("reusing the fp32 ort-cpu engines"),
        "{stderr}"
    );
    assert!(
        table.contains("speed-up") && table.lines().count() >= 11,
        "{table}"
    );
}
