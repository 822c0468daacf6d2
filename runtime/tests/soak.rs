//! Soak: eight threads mix lengths, solvers, batch sizes and guidance on one export — four
//! through the Rust API (one shared `Runtime`), four through the C ABI (one shared handle) —
//! for `ODELT_SOAK_SECONDS` (default 15). Every result must equal, bit for bit, the same
//! request run alone beforehand; no call may fail; resident memory must stay flat (the mean of
//! the last window within 5% of the second window's). Prints one JSON line of figures.
//!
//! The long run BENCHMARKS.md records:
//! `ODELT_SOAK_SECONDS=600 cargo test --release -p odelt-runtime --test soak -- --nocapture`

use std::ffi::CString;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use odelt_format::ModelConfig;
use odelt_runtime::ffi::*;
use odelt_runtime::{memory, Labels, Runtime, RuntimeOptions, SampleRequest, SolverChoice};

/// One request shape of the mix.
#[derive(Debug, Clone)]
struct Job {
    length: u32,
    /// Euler steps, or 0 for Dopri5 at rtol = atol = 1e-2.
    steps: u32,
    n: usize,
    cfg: f32,
    seed: u64,
}

impl Job {
    fn labels(&self) -> Vec<i64> {
        (0..self.n as i64).map(|i| (self.seed as i64 + i) % 10).collect()
    }

    fn rust(&self, rt: &Runtime) -> Vec<f32> {
        let solver = match self.steps {
            0 => SolverChoice::dopri5(1e-2, 1e-2),
            steps => SolverChoice::Euler { steps },
        };
        let mut req = SampleRequest::new(self.n, solver)
            .with_length(self.length)
            .with_seed(self.seed)
            .with_labels(Labels::PerSample(self.labels()));
        req.cfg_scale = self.cfg;
        rt.sample(&req).expect("Rust API sample").data
    }

    fn c(&self, rt: *mut OdeltRuntime, numel: usize) -> Vec<f32> {
        let labels = self.labels();
        let mut req = std::mem::MaybeUninit::<OdeltSampleRequest>::uninit();
        let mut req = unsafe {
            odelt_sample_request_default(req.as_mut_ptr());
            req.assume_init()
        };
        req.length = self.length;
        if self.steps == 0 {
            req.solver = OdeltSolver::ODELT_SOLVER_DOPRI5;
            req.rtol = 1e-2;
            req.atol = 1e-2;
        } else {
            req.steps = self.steps;
        }
        req.n = self.n as u32;
        req.seed = self.seed;
        req.labels = labels.as_ptr();
        req.cfg_scale = self.cfg;
        let mut out = vec![0f32; self.n * numel];
        let status = unsafe { odelt_sample(rt, &req, out.as_mut_ptr(), out.len(), null_mut()) };
        assert_eq!(status, OdeltStatus::ODELT_OK, "C ABI sample");
        out
    }
}

/// The C handle, shared by threads (the header documents it as thread-safe).
#[derive(Clone, Copy)]
struct Handle(*mut OdeltRuntime);
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Handle {
    /// The pointer; a method, so that closures capture the whole (Send) handle.
    fn ptr(self) -> *mut OdeltRuntime {
        self.0
    }
}

fn jobs() -> Vec<Job> {
    let mut jobs = Vec::new();
    for (i, (length, steps, n, cfg)) in [4u32, 8, 12]
        .into_iter()
        .flat_map(|l| [1u32, 4, 0].map(move |s| (l, s)))
        .flat_map(|(l, s)| [1usize, 3].map(move |n| (l, s, n)))
        .flat_map(|(l, s, n)| [1.0f32, 2.0].map(move |w| (l, s, n, w)))
        .enumerate()
    {
        jobs.push(Job {
            length,
            steps,
            n,
            cfg,
            seed: i as u64,
        });
    }
    jobs
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

#[test]
fn eight_threads_mixing_requests_match_sequential_results_with_flat_memory() {
    let seconds: u64 = std::env::var("ODELT_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let tmp = tempfile::tempdir().expect("tempdir");
    let ckpt = tmp.path().join("ckpt");
    odelt_export::testing::write_random_checkpoint(&ckpt, &ModelConfig::fmnist(), 9).expect("checkpoint");
    let dir = tmp.path().join("engines");
    odelt_export::export(&ckpt, &dir, &Default::default()).expect("export");

    let rt = Arc::new(
        Runtime::open(&dir, RuntimeOptions::default().with_sessions_per_engine(2)).expect("runtime"),
    );
    let c_dir = CString::new(dir.to_str().expect("utf8")).expect("cstring");
    let mut handle = null_mut();
    assert_eq!(
        unsafe { odelt_runtime_open(c_dir.as_ptr(), null(), &mut handle) },
        OdeltStatus::ODELT_OK
    );
    let handle = Handle(handle);
    let numel = ModelConfig::fmnist().image_numel();
    let jobs = jobs();
    // Each request alone, first: the results every concurrent run must reproduce.
    let reference: Vec<(Vec<f32>, Vec<f32>)> =
        jobs.iter().map(|j| (j.rust(&rt), j.c(handle.0, numel))).collect();
    let jobs = Arc::new(jobs);
    let reference = Arc::new(reference);

    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let done = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(AtomicU64::new(0));
    let rss = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let (done, rss) = (done.clone(), rss.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(mb) = memory::current_rss_mb() {
                    rss.lock().expect("rss").push((start.elapsed().as_secs_f64(), mb));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let workers: Vec<_> = (0..8usize)
        .map(|t| {
            let (rt, jobs, reference, samples) =
                (rt.clone(), jobs.clone(), reference.clone(), samples.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while Instant::now() < deadline {
                    let k = i % jobs.len();
                    let job = &jobs[k];
                    if t < 4 {
                        assert!(
                            job.rust(&rt) == reference[k].0,
                            "thread {t}, {job:?}: Rust API result differs"
                        );
                    } else {
                        assert!(
                            job.c(handle.ptr(), numel) == reference[k].1,
                            "thread {t}, {job:?}: C ABI result differs"
                        );
                    }
                    samples.fetch_add(job.n as u64, Ordering::Relaxed);
                    i += 7;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a soak thread failed");
    }
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("rss sampler");
    unsafe { odelt_runtime_close(handle.0) };

    // Flat memory: compare the second and the last of five windows (one minute each on a long
    // run), so that start-up growth (arenas, the first sessions) is not counted.
    let elapsed = start.elapsed().as_secs_f64();
    let window = (elapsed / 5.0).min(60.0);
    let rss = rss.lock().expect("rss").clone();
    let in_window = |from: f64| -> Vec<f64> {
        rss.iter()
            .filter(|(t, _)| *t >= from && *t < from + window)
            .map(|(_, mb)| *mb)
            .collect()
    };
    let (second, last) = (mean(&in_window(window)), mean(&in_window(elapsed - window)));
    println!(
        "{}",
        serde_json::json!({
            "seconds": elapsed,
            "threads": 8,
            "samples": samples.load(Ordering::Relaxed),
            "window_s": window,
            "rss_second_window_mb": second,
            "rss_last_window_mb": last,
            "rss_peak_mb": rss.iter().map(|(_, mb)| *mb).fold(0.0, f64::max),
        })
    );
    if second > 0.0 {
        assert!(
            (last - second).abs() <= 0.05 * second,
            "RSS drifted: {second:.1} MB in the second window, {last:.1} MB in the last"
        );
    }
}
