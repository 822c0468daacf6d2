//! docs/DESIGN.md §9 through the Rust API: each bad input gives one clear line and the right class.

mod common;

use common::*;
use odelt_runtime::{Error, Labels, Runtime, RuntimeOptions, SampleRequest, SolverChoice};

fn euler(n: usize, steps: u32) -> SampleRequest {
    SampleRequest::new(n, SolverChoice::Euler { steps })
}

fn input_error(err: Error, needle: &str) {
    let text = err.to_string();
    eprintln!("{text}");
    assert!(err.is_input(), "expected an input error: {text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.contains(needle), "'{needle}' not in: {text}");
}

#[test]
fn missing_folder_and_manifest() {
    let err = Runtime::open("/nonexistent/engines", RuntimeOptions::default()).unwrap_err();
    input_error(err, "does not exist");
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Runtime::open(dir.path(), RuntimeOptions::default()).unwrap_err();
    assert!(err.is_not_found());
    input_error(err, "manifest.json");
}

#[test]
fn corrupt_manifest() {
    let dir = copy_dir(&linear());
    std::fs::write(dir.path().join("manifest.json"), b"{ not json").expect("write");
    input_error(
        Runtime::open(dir.path(), RuntimeOptions::default()).unwrap_err(),
        "not valid JSON",
    );
}

#[test]
fn manifest_naming_a_missing_graph() {
    let dir = copy_dir(&linear());
    std::fs::remove_file(dir.path().join("model_l4.onnx")).expect("rm");
    input_error(
        Runtime::open(dir.path(), RuntimeOptions::default()).unwrap_err(),
        "length 4 is missing",
    );
}

#[test]
fn corrupt_onnx_graph() {
    let dir = copy_dir(&linear());
    std::fs::write(dir.path().join("model_l2.onnx"), b"this is not protobuf").expect("write");
    let rt = open(dir.path());
    let err = rt.sample(&euler(1, 2).with_length(2)).unwrap_err();
    assert!(matches!(err, Error::Model { .. }), "{err}");
    input_error(err, "model_l2.onnx");
    // The other length still works.
    rt.sample(&euler(1, 2).with_length(4)).expect("length 4");
}

#[test]
fn graph_with_the_wrong_interface() {
    let dir = copy_dir(&linear());
    std::fs::copy(data().join("decoder.onnx"), dir.path().join("model_l2.onnx")).expect("copy");
    let err = open(dir.path()).sample(&euler(1, 2).with_length(2)).unwrap_err();
    input_error(err, "expected inputs x, t, k, y");
}

#[test]
fn unknown_lengths() {
    let rt = open(&linear());
    input_error(
        rt.sample(&euler(1, 2).with_length(3)).unwrap_err(),
        "valid lengths: 2, 4",
    );
    let dir = copy_dir(&linear());
    let mut manifest = odelt_runtime::Manifest::read(dir.path()).expect("manifest");
    manifest.lengths.retain(|e| e.length == 4);
    manifest.write(dir.path()).expect("write");
    input_error(
        open(dir.path()).sample(&euler(1, 2).with_length(2)).unwrap_err(),
        "exported lengths: 4",
    );
}

#[test]
fn bad_solver_settings() {
    let rt = open(&linear());
    input_error(rt.sample(&euler(1, 0)).unwrap_err(), "at least 1 step");
    input_error(
        rt.sample(&SampleRequest::new(1, SolverChoice::dopri5(0.0, 1e-3)))
            .unwrap_err(),
        "rtol > 0",
    );
    input_error(
        rt.sample(&SampleRequest::new(1, SolverChoice::dopri5(-1e-3, 1e-3)))
            .unwrap_err(),
        "rtol > 0",
    );
    input_error(
        rt.sample(&SampleRequest::new(1, SolverChoice::dopri5(1e-3, 0.0)))
            .unwrap_err(),
        "atol > 0",
    );
    input_error(rt.sample(&euler(0, 2)).unwrap_err(), "at least 1");
}

#[test]
fn bad_noise_and_labels() {
    let rt = open(&linear());
    input_error(
        rt.sample(&euler(2, 2).with_noise(vec![0.0; 31])).unwrap_err(),
        "noise has 31 floats",
    );
    input_error(
        rt.sample(&euler(1, 2).with_noise(vec![f32::NAN; 16]))
            .unwrap_err(),
        "NaN",
    );
    input_error(
        rt.sample(&euler(1, 2).with_labels(Labels::Class(4))).unwrap_err(),
        "out of range",
    );
    input_error(
        rt.sample(&euler(1, 2).with_labels(Labels::Class(-1)))
            .unwrap_err(),
        "out of range",
    );
    input_error(
        rt.sample(&euler(2, 2).with_labels(Labels::PerSample(vec![0])))
            .unwrap_err(),
        "1 labels given for 2",
    );
    // The null label itself is fine.
    rt.sample(&euler(1, 2).with_labels(Labels::Class(3)))
        .expect("null label");
}

#[test]
fn nan_from_the_model_is_a_numerical_error() {
    let rt = open(&data().join("nan"));
    for solver in [SolverChoice::Euler { steps: 2 }, SolverChoice::dopri5(1e-3, 1e-3)] {
        let err = rt.sample(&SampleRequest::new(2, solver)).unwrap_err();
        eprintln!("{err}");
        assert!(matches!(err, Error::Numerical(_)), "{err}");
        assert!(!err.is_input());
        assert!(err.to_string().contains("NaN"), "{err}");
    }
}

#[test]
fn missing_ort_library_says_where_it_looked() {
    let err = odelt_runtime::ortlib::find_library(Some(std::path::Path::new("/nope/libonnxruntime.so")))
        .unwrap_err();
    input_error(err, "looked at");
    let err = odelt_runtime::ortlib::find_library(Some(std::path::Path::new("/nope/libonnxruntime.so")))
        .unwrap_err();
    assert!(
        err.to_string().contains("pip install onnxruntime==1.31.1"),
        "{err}"
    );
    assert!(err.to_string().contains("scripts/setup.sh"), "{err}");
}
