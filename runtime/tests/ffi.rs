//! The C ABI called from Rust: statuses, the last error, out-parameters left alone on failure.

mod common;

use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

use common::*;
use odelt_runtime::ffi::*;
use odelt_runtime::{Labels, SampleRequest, SolverChoice};

fn last_error() -> String {
    unsafe { CStr::from_ptr(odelt_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn open_linear() -> *mut OdeltRuntime {
    let dir = CString::new(linear().to_str().expect("utf-8")).expect("cstring");
    let mut rt = null_mut();
    assert_eq!(
        unsafe { odelt_runtime_open(dir.as_ptr(), null(), &mut rt) },
        OdeltStatus::ODELT_OK,
        "{}",
        last_error()
    );
    assert!(!rt.is_null());
    rt
}

fn default_request() -> OdeltSampleRequest {
    let mut req = std::mem::MaybeUninit::<OdeltSampleRequest>::uninit();
    unsafe {
        odelt_sample_request_default(req.as_mut_ptr());
        req.assume_init()
    }
}

#[test]
fn version_and_defaults() {
    let v = unsafe { CStr::from_ptr(odelt_version()) }
        .to_str()
        .expect("utf-8");
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    let req = default_request();
    assert_eq!(
        req.struct_size as usize,
        std::mem::size_of::<OdeltSampleRequest>()
    );
    assert_eq!(
        (req.length, req.solver, req.steps, req.n),
        (0, OdeltSolver::ODELT_SOLVER_EULER, 16, 1)
    );
    assert!(req.noise.is_null() && req.labels.is_null());
    unsafe { odelt_sample_request_default(null_mut()) };
    unsafe { odelt_runtime_close(null_mut()) };
}

#[test]
fn open_errors() {
    let mut rt = null_mut();
    assert_eq!(
        unsafe { odelt_runtime_open(null(), null(), &mut rt) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    assert!(last_error().contains("engines_dir is NULL"));
    let dir = CString::new(linear().to_str().expect("utf-8")).expect("cstring");
    assert_eq!(
        unsafe { odelt_runtime_open(dir.as_ptr(), null(), null_mut()) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    let missing = CString::new("/nonexistent/engines").expect("cstring");
    assert_eq!(
        unsafe { odelt_runtime_open(missing.as_ptr(), null(), &mut rt) },
        OdeltStatus::ODELT_NOT_FOUND
    );
    assert!(last_error().contains("does not exist"), "{}", last_error());
    assert!(rt.is_null(), "out-param untouched on failure");
    let tmp = copy_dir(&linear());
    std::fs::write(tmp.path().join("manifest.json"), "[]").expect("write");
    let bad = CString::new(tmp.path().to_str().expect("utf-8")).expect("cstring");
    assert_eq!(
        unsafe { odelt_runtime_open(bad.as_ptr(), null(), &mut rt) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    assert!(last_error().contains("not valid JSON"), "{}", last_error());
    assert!(rt.is_null());
}

#[test]
fn shape_and_lengths() {
    let rt = open_linear();
    let (mut c, mut h, mut w) = (0, 0, 0);
    assert_eq!(
        unsafe { odelt_runtime_shape(rt, &mut c, &mut h, &mut w) },
        OdeltStatus::ODELT_OK
    );
    assert_eq!((c, h, w), (1, 4, 4));
    assert_eq!(
        unsafe { odelt_runtime_shape(null(), &mut c, &mut h, &mut w) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { odelt_runtime_shape(rt, null_mut(), &mut h, &mut w) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );

    let mut count = 0usize;
    assert_eq!(
        unsafe { odelt_runtime_lengths(rt, null_mut(), 0, &mut count) },
        OdeltStatus::ODELT_OK
    );
    assert_eq!(count, 2);
    let mut small = [0u32; 1];
    let mut count2 = 99usize;
    assert_eq!(
        unsafe { odelt_runtime_lengths(rt, small.as_mut_ptr(), 1, &mut count2) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    assert!(last_error().contains("buffer holds 1"), "{}", last_error());
    assert_eq!((small[0], count2), (0, 99), "nothing written on failure");
    let mut buf = [0u32; 4];
    assert_eq!(
        unsafe { odelt_runtime_lengths(rt, buf.as_mut_ptr(), 4, &mut count) },
        OdeltStatus::ODELT_OK
    );
    assert_eq!(&buf[..count], &[2, 4]);
    assert_eq!(last_error(), "", "cleared after a success");
    unsafe { odelt_runtime_close(rt) };
}

#[test]
fn sample_matches_the_rust_api_with_given_noise_and_labels() {
    let rt = open_linear();
    let (noise, _) = npy_f32("noise.npy");
    let labels = npy_i64("labels.npy");
    let mut req = default_request();
    req.n = 3;
    req.length = 2;
    req.solver = OdeltSolver::ODELT_SOLVER_DOPRI5;
    req.rtol = 1e-4;
    req.atol = 1e-4;
    req.noise = noise.as_ptr();
    req.labels = labels.as_ptr();
    req.cfg_scale = 1.5;
    let mut out = vec![0.0f32; 48];
    let mut nfe = 0u32;
    assert_eq!(
        unsafe { odelt_sample(rt, &req, out.as_mut_ptr(), out.len(), &mut nfe) },
        OdeltStatus::ODELT_OK
    );
    let rust = open(&linear())
        .sample(
            &SampleRequest::new(3, SolverChoice::dopri5(1e-4f32 as f64, 1e-4f32 as f64))
                .with_length(2)
                .with_noise(noise.clone())
                .with_labels(Labels::PerSample(labels.clone()))
                .with_cfg(1.5, Default::default()),
        )
        .expect("rust");
    assert_eq!(out, rust.data);
    assert_eq!(nfe, rust.stats.nfe);
    // nfe may be NULL.
    assert_eq!(
        unsafe { odelt_sample(rt, &req, out.as_mut_ptr(), out.len(), null_mut()) },
        OdeltStatus::ODELT_OK
    );
    unsafe { odelt_runtime_close(rt) };
}

#[test]
fn sample_errors() {
    let rt = open_linear();
    let mut out = vec![7.0f32; 32];
    let mut nfe = 123u32;
    let check =
        |req: &OdeltSampleRequest, out: &mut Vec<f32>, len: usize, want: OdeltStatus, needle: &str| {
            let mut nfe = 123u32;
            let status = unsafe { odelt_sample(rt, req, out.as_mut_ptr(), len, &mut nfe) };
            assert_eq!(status, want, "{}", last_error());
            assert!(
                last_error().contains(needle),
                "'{needle}' not in '{}'",
                last_error()
            );
            assert!(!last_error().contains('\n'));
            assert_eq!(nfe, 123, "nfe untouched on failure");
            assert!(out.iter().all(|v| *v == 7.0), "out untouched on failure");
        };
    let base = || {
        let mut r = default_request();
        r.n = 2;
        r
    };
    check(
        &base(),
        &mut out,
        31,
        OdeltStatus::ODELT_INVALID_ARGUMENT,
        "out holds 31 floats",
    );
    let mut r = base();
    r.steps = 0;
    check(
        &r,
        &mut out,
        32,
        OdeltStatus::ODELT_INVALID_ARGUMENT,
        "at least 1 step",
    );
    let mut r = base();
    r.solver = OdeltSolver::ODELT_SOLVER_DOPRI5;
    r.rtol = 0.0;
    check(&r, &mut out, 32, OdeltStatus::ODELT_INVALID_ARGUMENT, "rtol > 0");
    let mut r = base();
    r.length = 3;
    check(
        &r,
        &mut out,
        32,
        OdeltStatus::ODELT_INVALID_ARGUMENT,
        "valid lengths: 2, 4",
    );
    let mut r = base();
    r.n = 0;
    check(
        &r,
        &mut out,
        32,
        OdeltStatus::ODELT_INVALID_ARGUMENT,
        "at least 1",
    );
    let mut r = base();
    r.struct_size = 8;
    check(
        &r,
        &mut out,
        32,
        OdeltStatus::ODELT_INVALID_ARGUMENT,
        "struct_size",
    );
    let labels = [0i64, 9];
    let mut r = base();
    r.labels = labels.as_ptr();
    check(
        &r,
        &mut out,
        32,
        OdeltStatus::ODELT_INVALID_ARGUMENT,
        "label 9 is out of range",
    );
    // An enum value no C compiler would stop a caller from storing.
    let mut r = base();
    unsafe { (std::ptr::addr_of_mut!(r.solver) as *mut u32).write(7) };
    check(
        &r,
        &mut out,
        32,
        OdeltStatus::ODELT_INVALID_ARGUMENT,
        "req->solver 7",
    );
    assert_eq!(
        unsafe { odelt_sample(rt, null(), out.as_mut_ptr(), 32, &mut nfe) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { odelt_sample(rt, &base(), null_mut(), 32, &mut nfe) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    assert_eq!(
        unsafe { odelt_sample(null_mut(), &base(), out.as_mut_ptr(), 32, &mut nfe) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    assert!(last_error().contains("rt is NULL"));
    unsafe { odelt_runtime_close(rt) };

    let dir = CString::new(data().join("nan").to_str().expect("utf-8")).expect("cstring");
    let mut nan_rt = null_mut();
    assert_eq!(
        unsafe { odelt_runtime_open(dir.as_ptr(), null(), &mut nan_rt) },
        OdeltStatus::ODELT_OK
    );
    let status = unsafe { odelt_sample(nan_rt, &base(), out.as_mut_ptr(), 32, &mut nfe) };
    assert_eq!(status, OdeltStatus::ODELT_NUMERICAL_ERROR);
    assert!(last_error().contains("NaN"));
    unsafe { odelt_runtime_close(nan_rt) };
}

#[test]
fn last_error_is_per_thread() {
    let mut rt = null_mut();
    assert_eq!(
        unsafe { odelt_runtime_open(null(), null(), &mut rt) },
        OdeltStatus::ODELT_INVALID_ARGUMENT
    );
    let other = std::thread::spawn(last_error).join().expect("thread");
    assert_eq!(other, "");
    assert!(last_error().contains("NULL"));
}

#[test]
fn concurrent_sampling_through_one_handle() {
    struct Handle(*mut OdeltRuntime);
    unsafe impl Send for Handle {}
    unsafe impl Sync for Handle {}
    let handle = std::sync::Arc::new(Handle(open_linear()));
    let run = |h: &Handle, seed: u64| {
        let mut req = default_request();
        req.n = 2;
        req.seed = seed;
        req.steps = 4;
        let mut out = vec![0.0f32; 32];
        assert_eq!(
            unsafe { odelt_sample(h.0, &req, out.as_mut_ptr(), 32, null_mut()) },
            OdeltStatus::ODELT_OK
        );
        out
    };
    let expected: Vec<Vec<f32>> = (0..4).map(|s| run(&handle, s)).collect();
    let threads: Vec<_> = (0..4u64)
        .map(|s| {
            let h = handle.clone();
            std::thread::spawn(move || (0..10).map(|_| run(&h, s)).collect::<Vec<_>>())
        })
        .collect();
    for (s, t) in threads.into_iter().enumerate() {
        for out in t.join().expect("thread") {
            assert_eq!(out, expected[s]);
        }
    }
    unsafe { odelt_runtime_close(handle.0) };
}
