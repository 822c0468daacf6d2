//! The C ABI (`include/odelt.h`, generated from this file by cbindgen 0.29.4).
//!
//! Opaque handles, status codes, a thread-local last error; every function runs inside one
//! `catch_unwind` wrapper, so no panic crosses the boundary; every pointer is checked;
//! out-parameters are written only on success.
#![allow(non_camel_case_types, clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::mem::{offset_of, size_of};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::options::RuntimeOptions;
use crate::runtime::Runtime;
use crate::sample::{GuidanceMode, Labels, NoiseSource, SampleRequest, SolverChoice};
use crate::solver::Dopri5Options;

/// An opened engine folder. Thread-safe: several threads may call `odelt_sample` on one
/// runtime at once.
pub struct OdeltRuntime {
    _private: [u8; 0],
}

/// Result of every fallible call; on anything but `ODELT_OK`, `odelt_last_error()` says what.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OdeltStatus {
    ODELT_OK = 0,
    /// A null pointer, a bad value, a short buffer, a corrupt manifest or graph.
    ODELT_INVALID_ARGUMENT = 1,
    /// A file, folder or the ONNX Runtime library does not exist.
    ODELT_NOT_FOUND = 2,
    /// ONNX Runtime failed (library too old, provider missing, run failure).
    ODELT_BACKEND_ERROR = 3,
    /// NaN/Inf from the model, or the adaptive solver could not finish.
    ODELT_NUMERICAL_ERROR = 4,
    /// A bug (a panic caught at the boundary).
    ODELT_INTERNAL = 5,
}

/// The time integrator.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OdeltSolver {
    /// Euler with `steps` steps (shortcut level log2 steps when a power of two <= T_max).
    ODELT_SOLVER_EULER = 0,
    /// Adaptive Dormand-Prince 5(4) with `rtol`/`atol`.
    ODELT_SOLVER_DOPRI5 = 1,
}

/// One sampling job. Fill it with `odelt_sample_request_default`, then change fields.
#[repr(C)]
pub struct OdeltSampleRequest {
    /// sizeof(OdeltSampleRequest), for ABI evolution.
    pub struct_size: u32,
    /// Active blocks; 0 = the largest exported.
    pub length: u32,
    pub solver: OdeltSolver,
    /// Euler steps (>= 1).
    pub steps: u32,
    /// Dopri5 tolerances (> 0).
    pub rtol: f32,
    pub atol: f32,
    /// Number of samples (>= 1).
    pub n: u32,
    /// Noise seed (odelt noise v1: the same x0 as the CLI and the Rust API).
    pub seed: u64,
    /// NULL = from seed; else n*C*H*W floats, row-major [n, C, H, W].
    pub noise: *const f32,
    /// NULL = the null label for every sample; else n labels in 0..=num_classes.
    pub labels: *const i64,
    /// Classifier-free guidance scale w; <= 1 means no guidance.
    pub cfg_scale: f32,
}

/// `OdeltSampleRequest` with the solver as a plain integer: a C caller may store any value in
/// an enum field, and reading an invalid discriminant as a Rust enum is undefined behaviour.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawRequest {
    struct_size: u32,
    length: u32,
    solver: u32,
    steps: u32,
    rtol: f32,
    atol: f32,
    n: u32,
    seed: u64,
    noise: *const f32,
    labels: *const i64,
    cfg_scale: f32,
}

const _: () = assert!(size_of::<RawRequest>() == size_of::<OdeltSampleRequest>());
const _: () = assert!(size_of::<OdeltSolver>() == size_of::<u32>());
const _: () = assert!(offset_of!(RawRequest, cfg_scale) == offset_of!(OdeltSampleRequest, cfg_scale));
/// The smallest `struct_size` this library accepts: version 1 ends with `cfg_scale`.
const REQUEST_V1_SIZE: usize = offset_of!(OdeltSampleRequest, cfg_scale) + size_of::<f32>();

impl RawRequest {
    fn defaults() -> Self {
        RawRequest {
            struct_size: size_of::<OdeltSampleRequest>() as u32,
            length: 0,
            solver: OdeltSolver::ODELT_SOLVER_EULER as u32,
            steps: 16,
            rtol: 1e-5,
            atol: 1e-5,
            n: 1,
            seed: 0,
            noise: std::ptr::null(),
            labels: std::ptr::null(),
            cfg_scale: 1.0,
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

fn status_of(err: &Error) -> OdeltStatus {
    match err {
        Error::Format(_) | Error::InvalidArgument(_) | Error::Model { .. } => {
            if err.is_not_found() {
                OdeltStatus::ODELT_NOT_FOUND
            } else {
                OdeltStatus::ODELT_INVALID_ARGUMENT
            }
        }
        Error::NotFound(_) | Error::OrtLibraryNotFound(_) => OdeltStatus::ODELT_NOT_FOUND,
        Error::OrtLibrary(_) | Error::Provider(_) | Error::Backend(_) | Error::Remote(_) => {
            OdeltStatus::ODELT_BACKEND_ERROR
        }
        Error::Numerical(_) => OdeltStatus::ODELT_NUMERICAL_ERROR,
        Error::Internal(_) => OdeltStatus::ODELT_INTERNAL,
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs an exported function's body inside `catch_unwind`.
/// `ffi!(status { … })`: the body returns `Result<()>`, mapped to a status (and the last error).
/// `ffi!(or DEFAULT, { … })`: the body returns a value; a panic returns DEFAULT.
macro_rules! ffi {
    (status $body:block) => {{
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<()> { $body }));
        match result {
            Ok(Ok(())) => {
                set_last_error("");
                OdeltStatus::ODELT_OK
            }
            Ok(Err(err)) => {
                set_last_error(&err.to_string());
                status_of(&err)
            }
            Err(payload) => {
                set_last_error(&format!(
                    "internal error: panic: {}",
                    panic_message(payload.as_ref())
                ));
                OdeltStatus::ODELT_INTERNAL
            }
        }
    }};
    (or $default:expr, $body:block) => {{
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(payload) => {
                set_last_error(&format!(
                    "internal error: panic: {}",
                    panic_message(payload.as_ref())
                ));
                $default
            }
        }
    }};
}

fn null(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} is NULL"))
}

unsafe fn path_arg(ptr: *const c_char, what: &str) -> Result<PathBuf> {
    if ptr.is_null() {
        return Err(null(what));
    }
    let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|_| Error::InvalidArgument(format!("{what} is not UTF-8")))
    }
}

unsafe fn runtime<'a>(rt: *const OdeltRuntime) -> Result<&'a Runtime> {
    if rt.is_null() {
        return Err(null("rt"));
    }
    Ok(unsafe { &*(rt as *const Runtime) })
}

/// The library version, e.g. "0.1.0" (static storage).
#[no_mangle]
pub extern "C" fn odelt_version() -> *const c_char {
    ffi!(or std::ptr::null(), { concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast() })
}

/// Fills `req` with defaults: struct_size set, largest length, Euler 16 steps, rtol = atol =
/// 1e-5, n = 1, seed 0, noise from the seed, null labels, no guidance. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn odelt_sample_request_default(req: *mut OdeltSampleRequest) {
    ffi!(or(), {
        if !req.is_null() {
            unsafe { (req as *mut RawRequest).write_unaligned(RawRequest::defaults()) };
        }
    })
}

/// Opens an engine folder (DIR/manifest.json; graphs open on first use). `ort_library` is the
/// path of libonnxruntime, or NULL to search ORT_DYLIB_PATH and the setup venv. On success
/// `*out` receives a handle for `odelt_runtime_close`.
#[no_mangle]
pub unsafe extern "C" fn odelt_runtime_open(
    engines_dir: *const c_char,
    ort_library: *const c_char,
    out: *mut *mut OdeltRuntime,
) -> OdeltStatus {
    ffi!(status {
        let dir = unsafe { path_arg(engines_dir, "engines_dir") }?;
        if out.is_null() {
            return Err(null("out"));
        }
        let mut options = RuntimeOptions::default();
        if !ort_library.is_null() {
            options.ort_library = Some(unsafe { path_arg(ort_library, "ort_library") }?);
        }
        let rt = Runtime::open(dir, options)?;
        unsafe { *out = Box::into_raw(Box::new(rt)) as *mut OdeltRuntime };
        Ok(())
    })
}

/// Closes a runtime. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn odelt_runtime_close(rt: *mut OdeltRuntime) {
    ffi!(or(), {
        if !rt.is_null() {
            drop(unsafe { Box::from_raw(rt as *mut Runtime) });
        }
    })
}

/// The image shape C, H, W of one sample.
#[no_mangle]
pub unsafe extern "C" fn odelt_runtime_shape(
    rt: *const OdeltRuntime,
    c: *mut u32,
    h: *mut u32,
    w: *mut u32,
) -> OdeltStatus {
    ffi!(status {
        let rt = unsafe { runtime(rt) }?;
        if c.is_null() || h.is_null() || w.is_null() {
            return Err(null("c, h or w"));
        }
        let [cc, hh, ww] = rt.image_shape();
        unsafe {
            *c = cc as u32;
            *h = hh as u32;
            *w = ww as u32;
        }
        Ok(())
    })
}

/// The exported lengths, ascending. With `out` NULL and `cap` 0, only `*count` is written;
/// otherwise `cap` must hold them all.
#[no_mangle]
pub unsafe extern "C" fn odelt_runtime_lengths(
    rt: *const OdeltRuntime,
    out: *mut u32,
    cap: usize,
    count: *mut usize,
) -> OdeltStatus {
    ffi!(status {
        let rt = unsafe { runtime(rt) }?;
        if count.is_null() {
            return Err(null("count"));
        }
        let lengths = rt.lengths();
        if out.is_null() {
            if cap != 0 {
                return Err(null("out (with cap > 0)"));
            }
        } else {
            if cap < lengths.len() {
                return Err(Error::InvalidArgument(format!(
                    "buffer holds {cap} lengths, {} are exported",
                    lengths.len()
                )));
            }
            unsafe { std::ptr::copy_nonoverlapping(lengths.as_ptr(), out, lengths.len()) };
        }
        unsafe { *count = lengths.len() };
        Ok(())
    })
}

/// Samples `req->n` images into `out` (`out_len` >= n*C*H*W floats, row-major [n, C, H, W]);
/// `*nfe` (may be NULL) receives the number of model evaluations.
#[no_mangle]
pub unsafe extern "C" fn odelt_sample(
    rt: *mut OdeltRuntime,
    req: *const OdeltSampleRequest,
    out: *mut f32,
    out_len: usize,
    nfe: *mut u32,
) -> OdeltStatus {
    ffi!(status {
        let rt = unsafe { runtime(rt) }?;
        if req.is_null() {
            return Err(null("req"));
        }
        if out.is_null() {
            return Err(null("out"));
        }
        let size = unsafe { (req as *const u32).read_unaligned() } as usize;
        if size < REQUEST_V1_SIZE {
            return Err(Error::InvalidArgument(format!(
                "req->struct_size is {size}, expected sizeof(OdeltSampleRequest) = {}; \
                 initialise the request with odelt_sample_request_default",
                size_of::<OdeltSampleRequest>()
            )));
        }
        let mut raw = RawRequest::defaults();
        let copy = size.min(size_of::<RawRequest>());
        unsafe {
            std::ptr::copy_nonoverlapping(req as *const u8, &mut raw as *mut RawRequest as *mut u8, copy)
        };
        let [c, h, w] = rt.image_shape();
        let n = raw.n as usize;
        if n == 0 {
            return Err(Error::InvalidArgument("req->n must be at least 1".into()));
        }
        let need = n * c * h * w;
        if out_len < need {
            return Err(Error::InvalidArgument(format!(
                "out holds {out_len} floats, {n} samples of {c}x{h}x{w} need {need}"
            )));
        }
        let solver = match raw.solver {
            0 => SolverChoice::Euler { steps: raw.steps },
            1 => SolverChoice::Dopri5(Dopri5Options {
                rtol: raw.rtol as f64,
                atol: raw.atol as f64,
                ..Default::default()
            }),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "req->solver {other} is not ODELT_SOLVER_EULER (0) or ODELT_SOLVER_DOPRI5 (1)"
                )))
            }
        };
        let noise = if raw.noise.is_null() {
            NoiseSource::Seed(raw.seed)
        } else {
            NoiseSource::Given(unsafe { std::slice::from_raw_parts(raw.noise, need) }.to_vec())
        };
        let labels = if raw.labels.is_null() {
            Labels::Null
        } else {
            Labels::PerSample(unsafe { std::slice::from_raw_parts(raw.labels, n) }.to_vec())
        };
        let request = SampleRequest {
            length: (raw.length != 0).then_some(raw.length),
            solver,
            n,
            noise,
            labels,
            cfg_scale: raw.cfg_scale,
            guidance: GuidanceMode::Batched,
        };
        let samples = rt.sample(&request)?;
        unsafe { std::ptr::copy_nonoverlapping(samples.data.as_ptr(), out, need) };
        if !nfe.is_null() {
            unsafe { *nfe = samples.stats.nfe };
        }
        Ok(())
    })
}

/// The last error on this thread ("" after a success); valid until the next call on this
/// thread.
#[no_mangle]
pub extern "C" fn odelt_last_error() -> *const c_char {
    ffi!(or c"internal error".as_ptr(), { LAST_ERROR.with(|e| e.borrow().as_ptr()) })
}
