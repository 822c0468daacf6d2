//! The deploy build's command line (no libtorch needed): the main job on the shipped model,
//! export → sample → eval from a checkpoint written without tch, bad input, and — in the
//! default build — that no libtorch is linked and training says which feature it needs.

mod common;

use common::{assert_bad_input, assert_fails, json_lines, length_steps, odelt, ok, path_arg, words};
use odelt_format::ModelConfig;

/// A random fmnist-shaped checkpoint (written without tch) exported at lengths 4 and 12.
fn random_fmnist_export(dir: &std::path::Path) -> String {
    let ckpt = dir.join("ckpt");
    odelt_export::testing::write_random_checkpoint(&ckpt, &ModelConfig::fmnist(), 3).expect("checkpoint");
    let engines = path_arg(dir, "engines");
    ok(odelt(&[
        "export",
        "--checkpoint",
        ckpt.to_str().expect("utf8"),
        "--lengths",
        "4,12",
        "--out",
        &engines,
    ]));
    engines
}

#[test]
fn export_sample_and_eval_run_without_libtorch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = random_fmnist_export(dir.path());
    let npy = path_arg(dir.path(), "x1.npy");
    let line = ok(odelt(
        &[
            &words("sample --length 4 --solver euler --steps 2 --n 3 --seed 1 --json --npy")[..],
            &[&npy, "--engines", &engines],
        ]
        .concat(),
    ));
    let line: serde_json::Value = serde_json::from_str(line.trim()).expect("JSON");
    assert_eq!(
        (line["length"].as_u64(), line["nfe"].as_u64()),
        (Some(4), Some(2)),
        "{line}"
    );
    let x1: ndarray::Array4<f32> = ndarray_npy::read_npy(&npy).expect("npy");
    assert_eq!(x1.shape(), [3, 1, 28, 28]);

    let out = ok(odelt(
        &[
            &words("eval --data synthetic --n 16 --solvers euler:1,euler:2 --json --engines")[..],
            &[&engines],
        ]
        .concat(),
    ));
    let cells = json_lines(&out);
    assert_eq!(cells.len(), 4, "{out}");
    for cell in &cells {
        let fd = cell["fd"].as_f64().expect("fd");
        assert!(fd.is_finite() && fd > 0.0, "{cell}");
    }
}

/// int8 engines from the command line: built beside fp32, picked with --precision by sample,
/// bench, eval and demo; asking for int8 before they exist is bad input naming the build.
#[test]
fn int8_engines_are_built_and_compared_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engines = random_fmnist_export(dir.path());
    let sample = words("sample --length 12 --solver euler --steps 2 --n 2 --json --precision int8 --engines");
    assert_bad_input(&[&sample[..], &[&engines]].concat(), &[], "--precision int8");
    ok(odelt(&[
        "engines",
        "build",
        "--backend",
        "ort-cpu",
        "--precision",
        "int8",
        "--engines",
        &engines,
    ]));
    let line = ok(odelt(&[&sample[..], &[&engines]].concat()));
    assert_eq!(json_lines(&line)[0]["nfe"], 2, "{line}");
    let out = ok(odelt(
        &[
            &words("bench --runs 1 --warmup 0 --json --no-record --precision int8 --engines")[..],
            &[&engines],
        ]
        .concat(),
    ));
    let lines = json_lines(&out);
    assert!(
        lines.iter().all(|l| l["precision"] == "int8"
            && l["built"] == true
            && l["file"]
                .as_str()
                .is_some_and(|f| f.ends_with(".ort-cpu-int8.onnx"))),
        "{out}"
    );

    let out =
        ok(odelt(
            &[
                &words(
                    "eval --data synthetic --n 16 --solvers euler:2 --precision fp32,int8 --json --engines",
                )[..],
                &[&engines],
            ]
            .concat(),
        ));
    let cells = json_lines(&out);
    let precisions: Vec<(u64, &str)> = cells
        .iter()
        .map(|c| {
            (
                c["length"].as_u64().unwrap_or(0),
                c["precision"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        precisions,
        [(4, "fp32"), (4, "int8"), (12, "fp32"), (12, "int8")],
        "{out}"
    );
    // The same noise through both: close, not equal, and int8 reads fewer weight bytes.
    for pair in cells.chunks(2) {
        let (fp32, int8) = (
            pair[0]["fd"].as_f64().expect("fd"),
            pair[1]["fd"].as_f64().expect("fd"),
        );
        assert!(fp32 > 0.0 && int8 > 0.0 && fp32 != int8, "{out}");
        assert!(
            pair[1]["weight_mb"].as_f64() < pair[0]["weight_mb"].as_f64(),
            "{out}"
        );
    }

    let demo = path_arg(dir.path(), "demo");
    let ckpt = path_arg(dir.path(), "ckpt");
    let out = ok(odelt(&[
        "demo",
        "--checkpoint",
        &ckpt,
        "--out",
        &demo,
        "--precision",
        "fp32,int8",
        "--json",
    ]));
    let cells = json_lines(&out);
    assert_eq!(cells.len(), 18, "{out}");
    assert!(
        cells[..9].iter().all(|c| c["precision"] == "fp32")
            && cells[9..].iter().all(|c| c["precision"] == "int8")
    );
    assert!(dir.path().join("demo/grid.png").is_file() && dir.path().join("demo/grid-int8.png").is_file());
}

#[test]
fn version_and_help_answer() {
    let version = ok(odelt(&["--version"]));
    assert!(version.starts_with("odelt "), "{version}");
    for command in [
        "train", "export", "engines", "bench", "sample", "serve", "eval", "demo", "features", "triton",
    ] {
        let help = ok(odelt(&[command, "--help"]));
        assert!(help.contains("Usage"), "{command}: {help}");
    }
}

#[cfg(not(feature = "train"))]
#[test]
fn training_commands_name_the_feature_they_need() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = path_arg(dir.path(), "ckpt");
    assert_bad_input(
        &[&words("train --data synthetic --steps 1 --out")[..], &[&out]].concat(),
        &[],
        "--features train",
    );
    assert_bad_input(&["features"], &[], "--features train");
    assert!(!dir.path().join("ckpt").exists(), "nothing written");
}

/// The deploy binary links no libtorch (and so does not load it at start-up).
#[cfg(all(not(feature = "train"), target_os = "linux"))]
#[test]
fn the_deploy_binary_links_no_libtorch() {
    let ldd = std::process::Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_odelt"))
        .output()
        .expect("run ldd");
    let libraries = String::from_utf8_lossy(&ldd.stdout);
    assert!(ldd.status.success(), "{libraries}");
    for lib in ["libtorch", "libc10", "libtorch_cpu"] {
        assert!(!libraries.contains(lib), "{lib} in:\n{libraries}");
    }
}

#[test]
fn demo_without_the_shipped_model_says_how_to_train_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let assets = dir.path().to_str().expect("utf8");
    assert_bad_input(
        &["demo", "--out", &path_arg(dir.path(), "demo")],
        &[("ODELT_ASSETS", assets)],
        "odelt demo --train",
    );
    assert!(!dir.path().join("demo").exists(), "nothing written");
}

#[test]
fn sample_reports_bad_input_and_run_time_failures_in_one_line() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/runtime/tests/data");
    let (linear, nan) = (format!("{data}/linear"), format!("{data}/nan"));
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = |engines: &str, rest: &str| {
        let mut args = vec!["sample", "--engines", engines];
        args.extend(words(rest));
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let check = |args: Vec<String>, code: i32, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_fails(&args, &[], code, needle)
    };
    let euler = "--length 2 --solver euler --n 2";
    check(sample(&linear, &format!("{euler} --steps 0")), 2, "steps");
    check(
        sample(&linear, "--length 2 --solver dopri5 --rtol 0 --atol 1e-3 --n 2"),
        2,
        "rtol",
    );
    check(
        sample(&linear, "--length 3 --solver euler --steps 2 --n 2"),
        2,
        "length 3",
    );
    let missing = path_arg(dir.path(), "missing");
    check(sample(&missing, &format!("{euler} --steps 2")), 2, "missing");
    // Noise of the wrong size: 3 samples' worth for --n 2.
    let noise = path_arg(dir.path(), "x0.npy");
    ndarray_npy::write_npy(&noise, &ndarray::Array4::<f32>::zeros((3, 1, 4, 4))).expect("npy");
    check(
        sample(&linear, &format!("{euler} --steps 2 --noise {noise}")),
        2,
        "noise",
    );
    // A corrupt manifest.
    let corrupt = path_arg(dir.path(), "corrupt");
    std::fs::create_dir_all(&corrupt).expect("mkdir");
    std::fs::write(dir.path().join("corrupt/manifest.json"), "{").expect("write");
    check(sample(&corrupt, &format!("{euler} --steps 2")), 2, "manifest");
    // NaN from the model is a run-time failure, and nothing is written.
    let out = path_arg(dir.path(), "nan.png");
    check(sample(&nan, &format!("{euler} --steps 2 --out {out}")), 1, "NaN");
    assert!(!dir.path().join("nan.png").exists());
}

/// README's main job: `odelt demo` on the shipped Fashion-MNIST model.
#[test]
fn demo_runs_on_the_shipped_model() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fmnist/model.safetensors");
    assert!(
        std::path::Path::new(shipped).is_file(),
        "the shipped model is missing: {shipped}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ok(odelt(&["demo", "--out", &path_arg(dir.path(), "demo"), "--json"]));
    let cells = json_lines(&out);
    let grid = length_steps(&cells);
    let want = [
        (12, 128),
        (12, 4),
        (12, 1),
        (8, 128),
        (8, 4),
        (8, 1),
        (4, 128),
        (4, 4),
        (4, 1),
    ];
    assert_eq!(grid, want);
    // One step of the shortest model is far cheaper than 128 steps of the full one.
    assert!(
        cells[8]["speedup"].as_f64().expect("speedup") > 10.0,
        "{}",
        cells[8]
    );
    // Each cell carries the shipped evaluation's quality (assets/fmnist/eval.jsonl): FD with
    // its interval around it, and the cheapest cell scores worse than the full model.
    for c in &cells {
        let (fd, ci) = (c["fd"].as_f64().expect("fd"), &c["fd_ci"]);
        let (lo, hi) = (ci[0].as_f64().expect("lo"), ci[1].as_f64().expect("hi"));
        assert!(lo < fd && fd < hi && c["knn_recall"].is_number(), "{c}");
    }
    assert!(
        cells[8]["fd"].as_f64() > cells[0]["fd"].as_f64(),
        "{} {}",
        cells[8],
        cells[0]
    );
    assert!(dir.path().join("demo/grid.png").is_file());
}

/// docs/DESIGN.md §1: each CLI module parses, calls the library and reports; none calls
/// another (shared work belongs in the library, where every command can use it).
#[test]
fn no_cli_module_imports_another() {
    let cli = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    for entry in std::fs::read_dir(&cli).expect("src/cli") {
        let path = entry.expect("entry").path();
        if path.file_name().is_some_and(|n| n == "mod.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for needle in ["crate::cli", "super::"] {
            assert!(!text.contains(needle), "{} uses {needle}", path.display());
        }
    }
}
