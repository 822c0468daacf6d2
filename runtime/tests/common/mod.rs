//! Shared helpers for the runtime's integration tests (fixtures from tests/data/make_fixtures.py).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ndarray::ArrayD;
use odelt_runtime::{Runtime, RuntimeOptions};

pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn linear() -> PathBuf {
    data().join("linear")
}

pub fn open(dir: &Path) -> Runtime {
    Runtime::open(dir, RuntimeOptions::default().with_intra_threads(1)).expect("open runtime")
}

pub fn npy_f32(name: &str) -> (Vec<f32>, Vec<usize>) {
    let a: ArrayD<f32> = ndarray_npy::read_npy(data().join(name)).expect("read npy");
    (a.iter().copied().collect(), a.shape().to_vec())
}

pub fn npy_i64(name: &str) -> Vec<i64> {
    let a: ArrayD<i64> = ndarray_npy::read_npy(data().join(name)).expect("read npy");
    a.iter().copied().collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A copy of a fixture folder in a temp dir, for tests that break or edit it.
pub fn copy_dir(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(src).expect("read fixture dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    dir
}

/// The fixture's parameters: v = a_l x + b t + c k + E[y].
pub struct Params {
    pub a: std::collections::HashMap<String, f64>,
    pub b: Vec<f64>,
    pub c: f64,
    pub e: Vec<Vec<f64>>,
}

pub fn params() -> Params {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data().join("params.json")).expect("params"))
            .expect("json");
    let a = v["a"]
        .as_object()
        .expect("a")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().expect("f64")))
        .collect();
    let vec = |v: &serde_json::Value| {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("f64"))
            .collect()
    };
    Params {
        a,
        b: vec(&v["b"]),
        c: v["c"].as_f64().expect("c"),
        e: v["E"].as_array().expect("E").iter().map(vec).collect(),
    }
}
