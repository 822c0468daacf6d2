//! Exports a random tiny checkpoint (fp32 and fp16) and runs `tests/reference/check_export.py`:
//! onnx.checker (full check), content hashes, and ONNX Runtime against the independent NumPy
//! reference of docs/DESIGN.md §3 (fp32: max abs error ≤ 1e-5 · max |v|).
//!
//! Needs the project's Python environment: `source scripts/env.sh` sets `ODELT_VENV`.

use std::path::{Path, PathBuf};
use std::process::Command;

use odelt_export::{export, testing, ExportOptions, Ops};
use odelt_format::ModelConfig;

fn python() -> PathBuf {
    let venv = std::env::var_os("ODELT_VENV").unwrap_or_else(|| {
        panic!(
            "ODELT_VENV is unset: this test runs the NumPy/ONNX Runtime reference in the project's \
             Python environment; run `source scripts/env.sh` (after scripts/setup.sh) first"
        )
    });
    let python = Path::new(&venv).join("bin").join("python");
    assert!(
        python.exists(),
        "{} does not exist; run scripts/setup.sh",
        python.display()
    );
    python
}

fn check(ckpt: &Path, exports: &[&Path], extra: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference/check_export.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script).arg("--checkpoint").arg(ckpt);
    for e in exports {
        cmd.arg("--export").arg(e);
    }
    cmd.args(extra);
    let out = cmd.output().expect("run check_export.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "check_export.py failed:\n{stdout}");
}

#[test]
fn tiny_export_matches_numpy_reference() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    let cfg = ModelConfig::tiny();
    testing::write_random_checkpoint(&ckpt, &cfg, 7).unwrap();
    let fp32 = dir.path().join("fp32");
    let fp16 = dir.path().join("fp16");
    let fp16_io = dir.path().join("fp16_io");
    let standard = dir.path().join("standard");
    export(&ckpt, &fp32, &ExportOptions::default()).unwrap();
    export(
        &ckpt,
        &standard,
        &ExportOptions {
            ops: Ops::Standard,
            ..ExportOptions::default()
        },
    )
    .unwrap();
    export(
        &ckpt,
        &fp16,
        &ExportOptions {
            fp16: true,
            ..ExportOptions::default()
        },
    )
    .unwrap();
    export(
        &ckpt,
        &fp16_io,
        &ExportOptions {
            fp16: true,
            fp16_io: true,
            ..ExportOptions::default()
        },
    )
    .unwrap();
    check(&ckpt, &[&fp32, &standard, &fp16, &fp16_io], &["--fusions"]);
}

#[test]
fn grouped_model_with_odd_sizes_matches_numpy_reference() {
    // G = 1 (every block an Euler step), 3 channels, patch 4, 3 heads, mlp_ratio 2.
    let cfg = ModelConfig {
        input_size: 16,
        in_channels: 3,
        patch_size: 4,
        hidden_size: 48,
        num_heads: 3,
        mlp_ratio: 2.0,
        depth: 3,
        depth_min: 1,
        group_size: 1,
        num_classes: 5,
        denoise_timesteps: 64,
    };
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    testing::write_random_checkpoint(&ckpt, &cfg, 11).unwrap();
    let out = dir.path().join("out");
    export(
        &ckpt,
        &out,
        &ExportOptions {
            lengths: Some(vec![3, 1]),
            ..ExportOptions::default()
        },
    )
    .unwrap();
    check(&ckpt, &[&out], &[]);
}
