//! The C ABI's request validation: `odelt_sample` with every field of `OdeltSampleRequest`
//! (struct size, solver value, tolerances, counts, label values, guidance) and the output
//! buffer's length taken from the input, on the runtime's `linear` test fixture. Pointers are
//! always valid for what they claim (a C caller's contract); everything else is arbitrary.
use std::ffi::CString;
use std::ptr::{null, null_mut};

use odelt_runtime::ffi::*;

/// Reads little-endian values off the input, zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime/tests/data/linear");
    let dir = CString::new(dir).expect("path");
    let mut rt = null_mut();
    let status = unsafe { odelt_runtime_open(dir.as_ptr(), null(), &mut rt) };
    assert_eq!(
        status,
        OdeltStatus::ODELT_OK,
        "open the fixture (is ORT_DYLIB_PATH set?)"
    );
    let numel = 16usize;
    afl::fuzz!(|data: &[u8]| {
        let mut b = Bytes(data);
        let mut req = std::mem::MaybeUninit::<OdeltSampleRequest>::uninit();
        let mut req = unsafe {
            odelt_sample_request_default(req.as_mut_ptr());
            req.assume_init()
        };
        let flags = b.u32();
        // The struct size and the solver as raw integers, as a C caller could store them.
        let raw = &mut req as *mut OdeltSampleRequest as *mut u32;
        if flags & 1 != 0 {
            unsafe { raw.write(b.u32() % 256) };
        }
        req.length = b.u32() % 16;
        unsafe { raw.add(2).write(b.u32() % 4) };
        req.steps = b.u32() % 64;
        req.rtol = b.f32();
        req.atol = b.f32();
        req.n = b.u32() % 9;
        req.seed = b.u64();
        req.cfg_scale = b.f32();
        let n = req.n as usize;
        let labels: Vec<i64> = (0..n).map(|_| b.u32() as i32 as i64).collect();
        let noise: Vec<f32> = (0..n * numel).map(|_| b.f32()).collect();
        if flags & 2 != 0 {
            req.labels = labels.as_ptr();
        }
        if flags & 4 != 0 {
            req.noise = noise.as_ptr();
        }
        let mut out = vec![0f32; (b.u32() % 256) as usize];
        let mut nfe = 0u32;
        let out_ptr = if flags & 8 != 0 {
            null_mut()
        } else {
            out.as_mut_ptr()
        };
        let _ = unsafe { odelt_sample(rt, &req, out_ptr, out.len(), &mut nfe) };
        let _ = odelt_last_error();
    });
}
