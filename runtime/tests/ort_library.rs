//! Loading ONNX Runtime: a library that is not ONNX Runtime is a clear error, not a panic.
//! One test in its own process: the library is loaded once per process.

use odelt_runtime::{Runtime, RuntimeOptions};

#[test]
fn wrong_library_is_an_error_then_the_right_one_loads() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/linear");
    // Any shared library without OrtGetApiBase.
    let libc = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    if let Some(libc) = libc {
        let err = Runtime::open(&dir, RuntimeOptions::default().with_ort_library(libc)).unwrap_err();
        eprintln!("{err}");
        assert!(err.is_input());
        assert!(err.to_string().contains("cannot use ONNX Runtime"), "{err}");
    }
    let err = Runtime::open(
        &dir,
        RuntimeOptions::default().with_ort_library("/nope/libonnxruntime.so.1"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    // Then the default search (ORT_DYLIB_PATH / the setup venv) works.
    let rt = Runtime::open(&dir, RuntimeOptions::default()).expect("open with the default search");
    assert!(odelt_runtime::ortlib::loaded_library().is_some());
    drop(rt);
}
