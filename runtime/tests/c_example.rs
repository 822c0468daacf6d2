//! Builds examples/c/sample.c with `cc` against include/odelt.h and the cdylib cargo built for
//! this test run, runs it on the fixture engines, and compares with the Rust API.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use odelt_runtime::{GuidanceMode, Labels, SampleRequest, SolverChoice};

/// The folder holding libodelt_runtime.so: this test binary lives in `<target>/<profile>/deps`,
/// and so does the library `cargo test` just built (`cargo build` also copies it to
/// `<target>/<profile>`, but `cargo test` does not refresh that copy). Works for `target/` and
/// any CARGO_TARGET_DIR.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    let profile = deps.parent().expect("profile dir");
    let name = format!(
        "{}odelt_runtime{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    for dir in [deps, profile] {
        if dir.join(&name).is_file() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "{name} not found next to {}; cargo builds it with the library",
        exe.display()
    );
}

fn compile(out_dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let lib = library_dir();
    let exe = out_dir.join("sample");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg(root.join("examples/c/sample.c"))
        .arg("-I")
        .arg(root.join("runtime/include"))
        .arg("-L")
        .arg(&lib)
        .arg("-lodelt_runtime")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(status.success(), "compiling examples/c/sample.c failed");
    exe
}

/// The compiled example, run against the library in `library_dir()`: cargo puts
/// `<target>/<profile>` (with a possibly stale copy) on LD_LIBRARY_PATH, which wins over rpath.
fn example(exe: &Path) -> Command {
    let lib = library_dir();
    let mut paths = vec![lib];
    if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
        paths.extend(std::env::split_paths(&old));
    }
    let mut cmd = Command::new(exe);
    cmd.env(
        "LD_LIBRARY_PATH",
        std::env::join_paths(paths).expect("join paths"),
    );
    cmd
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("read output")
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn c_example_matches_the_rust_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = compile(tmp.path());
    let rt = open(&linear());
    for (seed, n, steps, length, class, cfg) in
        [(7u64, 5usize, 4u32, 4u32, 1i64, 2.0f32), (0, 3, 8, 2, 3, 1.0)]
    {
        let out = tmp.path().join(format!("x_{seed}.f32"));
        let run = example(&exe)
            .arg(linear())
            .arg(&out)
            .args([
                seed.to_string(),
                n.to_string(),
                steps.to_string(),
                length.to_string(),
                class.to_string(),
            ])
            .arg(cfg.to_string())
            .output()
            .expect("run the C example");
        let stdout = String::from_utf8_lossy(&run.stdout);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "C example failed: {stdout}{stderr}");
        assert!(
            stderr.contains("steps = 0 rejected as expected: euler needs at least 1 step"),
            "{stderr}"
        );
        assert!(
            stdout.contains(&format!("n={n} c=1 h=4 w=4 length={length} nfe={steps}")),
            "{stdout}"
        );

        let from_c = read_f32(&out);
        let req = SampleRequest::new(n, SolverChoice::Euler { steps })
            .with_length(length)
            .with_seed(seed)
            .with_labels(Labels::PerSample(vec![class; n]))
            .with_cfg(cfg, GuidanceMode::Batched);
        let from_rust = rt.sample(&req).expect("rust sample");
        let diff = max_abs_diff(&from_c, &from_rust.data);
        eprintln!("C vs Rust, seed {seed}: max |diff| = {diff:e}");
        assert!(diff <= 1e-6, "{diff}");
    }
}

#[test]
fn c_example_reports_errors_as_status() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = compile(tmp.path());
    let out = tmp.path().join("x.f32");
    let missing = example(&exe)
        .arg("/nonexistent/engines")
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(
        missing.status.code(),
        Some(2),
        "ODELT_NOT_FOUND: {}",
        String::from_utf8_lossy(&missing.stderr)
    );
    assert!(String::from_utf8_lossy(&missing.stderr).contains("does not exist"));
    let nan = example(&exe)
        .arg(data().join("nan"))
        .arg(&out)
        .output()
        .expect("run");
    assert_eq!(nan.status.code(), Some(4), "ODELT_NUMERICAL_ERROR");
    assert!(String::from_utf8_lossy(&nan.stderr).contains("NaN"));
    assert!(!out.exists(), "nothing written on failure");
}

#[test]
fn header_compiles_as_cpp() {
    let Ok(cxx) = which("c++") else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(cxx)
        .args(["-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-x", "c++"])
        .arg(root.join("include/odelt.h"))
        .status()
        .expect("run c++");
    assert!(status.success());
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}
