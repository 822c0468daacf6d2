//! The Rust API on the fixture graphs: parity with an onnxruntime reference, the exact ODE
//! solution, guidance, chunking, threads, engine choice, budgets, decoders.

mod common;

use std::sync::Arc;

use common::*;
use odelt_runtime::{
    Decoder, Dopri5Options, GuidanceMode, Labels, Runtime, RuntimeOptions, SampleRequest, SolverChoice,
};

const NUMEL: usize = 16;

fn given_noise_request(solver: SolverChoice, length: u32) -> SampleRequest {
    let (noise, shape) = npy_f32("noise.npy");
    assert_eq!(shape, [3, 1, 4, 4]);
    SampleRequest::new(3, solver)
        .with_length(length)
        .with_noise(noise)
        .with_labels(Labels::PerSample(npy_i64("labels.npy")))
}

#[test]
fn runtime_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Runtime>();
    check::<Decoder>();
}

#[test]
fn euler_matches_the_onnxruntime_reference() {
    let rt = open(&linear());
    let out = rt
        .sample(&given_noise_request(SolverChoice::Euler { steps: 4 }, 4))
        .expect("sample");
    let (expected, _) = npy_f32("expected_euler_l4_t4.npy");
    let diff = max_abs_diff(&out.data, &expected);
    eprintln!("euler l4 T4 vs onnxruntime (Python): max |diff| = {diff:e}");
    assert!(diff <= 1e-5, "{diff}");
    assert_eq!(out.stats.nfe, 4);
    assert_eq!(out.level, 2, "4 steps run at shortcut level log2 4");
    assert_eq!(out.shape, [3, 1, 4, 4]);
    assert_eq!(out.length, 4);
}

#[test]
fn guidance_matches_the_reference_in_both_modes() {
    let rt = open(&linear());
    let (expected, _) = npy_f32("expected_cfg_l2_t8_w3.npy");
    for mode in [GuidanceMode::Batched, GuidanceMode::Separate] {
        let req = given_noise_request(SolverChoice::Euler { steps: 8 }, 2).with_cfg(3.0, mode);
        let out = rt.sample(&req).expect("sample");
        let diff = max_abs_diff(&out.data, &expected);
        eprintln!("cfg w=3 {mode:?}: max |diff| = {diff:e}");
        assert!(diff <= 1e-5, "{mode:?}: {diff}");
        assert_eq!(out.stats.nfe, 8, "guidance halves count as one evaluation");
    }
    // w ≤ 1 means no guidance: the conditional field alone.
    let plain = rt
        .sample(&given_noise_request(SolverChoice::Euler { steps: 8 }, 2))
        .expect("sample");
    let w1 = rt
        .sample(
            &given_noise_request(SolverChoice::Euler { steps: 8 }, 2).with_cfg(1.0, GuidanceMode::Batched),
        )
        .expect("sample");
    assert_eq!(plain.data, w1.data);
}

/// x' = a x + b t + g, g = c k + E[y]: x(1) = e^a x0 + g (e^a − 1)/a + b (e^a − 1 − a)/a².
fn exact(length: u32, k: f64, noise: &[f32], labels: &[i64]) -> Vec<f32> {
    let p = params();
    let a = p.a[&length.to_string()];
    let ea = a.exp();
    let mut out = Vec::new();
    for (i, x0) in noise.iter().enumerate() {
        let (n, j) = (i / NUMEL, i % NUMEL);
        let g = p.c * k + p.e[labels[n] as usize][j];
        let b = p.b[j];
        out.push((ea * *x0 as f64 + g * (ea - 1.0) / a + b * (ea - 1.0 - a) / (a * a)) as f32);
    }
    out
}

#[test]
fn dopri5_matches_the_exact_solution() {
    let rt = open(&linear());
    let (noise, _) = npy_f32("noise.npy");
    let labels = npy_i64("labels.npy");
    for (tol, bound) in [(1e-3, 1e-2), (1e-6, 2e-5)] {
        let out = rt
            .sample(&given_noise_request(SolverChoice::dopri5(tol, tol), 4))
            .expect("sample");
        assert_eq!(out.level, 3, "dopri5 runs at log2 T_max");
        let diff = max_abs_diff(&out.data, &exact(4, 3.0, &noise, &labels));
        eprintln!("dopri5 tol {tol:e}: max |err| = {diff:e}, {:?}", out.stats);
        assert!((diff as f64) < bound, "tol {tol}: {diff}");
    }
    // Euler converges to the same solution (at its level k = log2 T_max for T = 8).
    let out = rt
        .sample(&given_noise_request(SolverChoice::Euler { steps: 8 }, 4))
        .expect("sample");
    let err8 = max_abs_diff(&out.data, &exact(4, 3.0, &noise, &labels));
    assert!(err8 < 0.2, "{err8}");
}

#[test]
fn euler_equals_a_direct_loop_over_the_engine() {
    let rt = open(&linear());
    let n = 5;
    let out = rt
        .sample(
            &SampleRequest::new(n, SolverChoice::Euler { steps: 3 })
                .with_length(2)
                .with_seed(11)
                .with_labels(Labels::Class(1)),
        )
        .expect("sample");
    assert_eq!(out.level, 3, "3 steps is not a power of two: plain-flow level");
    let engine = rt.engine(2).expect("engine");
    let mut x = odelt_runtime::noise::normal(11, n * NUMEL);
    let mut v = vec![0.0; x.len()];
    for i in 0..3 {
        let t = i as f64 / 3.0;
        let h = (i + 1) as f64 / 3.0 - t;
        engine
            .run(&x, &[t as f32; 5], &[3.0; 5], &[1; 5], &mut v)
            .expect("run");
        for (x, v) in x.iter_mut().zip(&v) {
            *x = (*x as f64 + h * *v as f64) as f32;
        }
    }
    assert_eq!(out.data, x, "bitwise equal to the hand-written loop");
}

#[test]
fn chunking_does_not_change_the_result() {
    let whole = open(&linear());
    let chunked = Runtime::open(linear(), RuntimeOptions::default().with_max_batch(2)).expect("open");
    for req in [
        SampleRequest::new(5, SolverChoice::Euler { steps: 4 })
            .with_seed(3)
            .with_labels(Labels::Class(2)),
        SampleRequest::new(5, SolverChoice::dopri5(1e-4, 1e-4))
            .with_seed(3)
            .with_labels(Labels::Class(0))
            .with_cfg(2.0, GuidanceMode::Batched),
    ] {
        let a = whole.sample(&req).expect("whole");
        let b = chunked.sample(&req).expect("chunked");
        assert!(max_abs_diff(&a.data, &b.data) <= 1e-6);
        assert_eq!(a.stats.nfe, b.stats.nfe);
    }
}

#[test]
fn same_seed_same_samples_and_prefix_property() {
    let rt = open(&linear());
    let req = |n| SampleRequest::new(n, SolverChoice::Euler { steps: 2 }).with_seed(99);
    let a = rt.sample(&req(4)).expect("a");
    let b = rt.sample(&req(4)).expect("b");
    assert_eq!(a.data, b.data);
    let c = rt.sample(&req(2)).expect("c");
    assert_eq!(&a.data[..2 * NUMEL], &c.data[..], "sample i does not depend on N");
    let d = rt
        .sample(&SampleRequest::new(4, SolverChoice::Euler { steps: 2 }).with_seed(100))
        .expect("d");
    assert_ne!(a.data, d.data);
}

#[test]
fn sampling_from_several_threads_at_once() {
    for sessions in [1, 2] {
        let rt = Arc::new(
            Runtime::open(
                linear(),
                RuntimeOptions::default()
                    .with_intra_threads(1)
                    .with_sessions_per_engine(sessions),
            )
            .expect("open"),
        );
        let request = |i: u64| {
            let solver = if i.is_multiple_of(2) {
                SolverChoice::Euler { steps: 8 }
            } else {
                SolverChoice::dopri5(1e-5, 1e-5)
            };
            SampleRequest::new(3, solver)
                .with_length(if i.is_multiple_of(3) { 2 } else { 4 })
                .with_seed(i)
                .with_labels(Labels::Class((i % 4) as i64))
                .with_cfg(if i % 4 == 1 { 2.5 } else { 1.0 }, GuidanceMode::Batched)
        };
        let sequential: Vec<Vec<f32>> = (0..8)
            .map(|i| rt.sample(&request(i)).expect("sample").data)
            .collect();
        let handles: Vec<_> = (0..8u64)
            .map(|i| {
                let rt = rt.clone();
                std::thread::spawn(move || {
                    (0..5)
                        .map(|_| rt.sample(&request(i)).expect("sample").data)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            for data in handle.join().expect("thread") {
                assert_eq!(data, sequential[i], "thread {i}, {sessions} session(s)");
            }
        }
    }
}

#[test]
fn largest_length_by_default_and_lengths_listed() {
    let rt = open(&linear());
    assert_eq!(rt.lengths(), vec![2, 4]);
    assert_eq!(rt.image_shape(), [1, 4, 4]);
    let out = rt
        .sample(&SampleRequest::new(1, SolverChoice::Euler { steps: 1 }))
        .expect("sample");
    assert_eq!(out.length, 4);
}

#[test]
fn built_engine_is_preferred_and_missing_one_falls_back() {
    let dir = copy_dir(&linear());
    let mut manifest = odelt_runtime::Manifest::read(dir.path()).expect("manifest");
    // A "built engine" for length 2 that is really the length-4 graph: its output tells which ran.
    manifest
        .entry_mut(2)
        .expect("l2")
        .engines
        .push(odelt_runtime::manifest::EngineEntry {
            backend: "ort-cpu".into(),
            file: "model_l4.onnx".into(),
            precision: "fp32".into(),
            build_seconds: 0.0,
            options: serde_json::Value::Null,
        });
    manifest
        .entry_mut(4)
        .expect("l4")
        .engines
        .push(odelt_runtime::manifest::EngineEntry {
            backend: "ort-cpu".into(),
            file: "missing.onnx".into(),
            precision: "fp32".into(),
            build_seconds: 0.0,
            options: serde_json::Value::Null,
        });
    manifest.write(dir.path()).expect("write");
    let req = |l| {
        SampleRequest::new(2, SolverChoice::Euler { steps: 2 })
            .with_length(l)
            .with_seed(5)
    };
    let rt = open(dir.path());
    assert!(rt.engine(2).expect("engine").is_built());
    assert!(!rt.engine(4).expect("engine").is_built());
    assert_eq!(
        rt.sample(&req(2)).expect("l2").data,
        rt.sample(&req(4)).expect("l4").data
    );
    let plain = Runtime::open(
        dir.path(),
        RuntimeOptions::default().with_prefer_built_engines(false),
    )
    .expect("open");
    assert!(!plain.engine(2).expect("engine").is_built());
    assert_ne!(
        plain.sample(&req(2)).expect("l2").data,
        plain.sample(&req(4)).expect("l4").data
    );
}

#[test]
fn budget_picks_the_largest_length_then_the_most_steps() {
    // Fixture calibration (ort-cpu): length 2: 1 ms at batch 1, 4 ms at batch 8; length 4: 2 ms, 8 ms.
    let rt = open(&linear());
    let pick = rt.pick_for_budget(20.0, None, 1).expect("pick");
    assert_eq!((pick.length, pick.steps), (4, 8), "{pick:?}");
    let pick = rt.pick_for_budget(5.0, None, 1).expect("pick");
    assert_eq!((pick.length, pick.steps), (4, 2), "{pick:?}");
    let pick = rt.pick_for_budget(1.5, None, 1).expect("pick");
    assert_eq!((pick.length, pick.steps), (2, 1), "{pick:?}");
    let pick = rt.pick_for_budget(12.0, Some(3), 1).expect("pick");
    assert_eq!((pick.length, pick.steps), (4, 3));
    let pick = rt.pick_for_budget(5.0, Some(3), 1).expect("pick");
    assert_eq!((pick.length, pick.steps), (2, 3));
    // Batch 8 interpolated: length 4 at 8 rows is 8 ms per evaluation.
    let pick = rt.pick_for_budget(17.0, None, 8).expect("pick");
    assert_eq!((pick.length, pick.steps), (4, 2));
    assert!((pick.predicted_ms - 16.0).abs() < 1e-9);
    // Batch 16: proportional beyond the largest measured batch.
    assert_eq!(rt.predicted_eval_ms(4, 16), Some(16.0));
    assert_eq!(rt.predicted_eval_ms(4, 4), Some(2.0 + 6.0 * 3.0 / 7.0));
    let err = rt.pick_for_budget(0.5, None, 1).unwrap_err();
    assert!(err.is_input() && err.to_string().contains("too small"), "{err}");

    let dir = copy_dir(&linear());
    let mut manifest = odelt_runtime::Manifest::read(dir.path()).expect("manifest");
    for entry in &mut manifest.lengths {
        entry.calibration.clear();
    }
    manifest.write(dir.path()).expect("write");
    let err = open(dir.path()).pick_for_budget(10.0, None, 1).unwrap_err();
    assert!(err.is_input(), "{err}");
    assert!(err.to_string().contains("odelt bench"), "{err}");
}

#[test]
fn decoder_turns_latents_into_images() {
    let rt = open(&linear());
    let samples = rt
        .sample(&SampleRequest::new(3, SolverChoice::Euler { steps: 2 }).with_seed(1))
        .expect("sample");
    for max_batch in [0, 2] {
        let decoder = Decoder::open(
            data().join("decoder.onnx"),
            &RuntimeOptions::default().with_max_batch(max_batch),
        )
        .expect("decoder");
        let images = decoder.decode(&samples.data, samples.shape).expect("decode");
        assert_eq!(images.shape, [3, 3, 8, 8]);
        for n in 0..3 {
            for ch in 0..3 {
                for y in 0..8 {
                    for x in 0..8 {
                        let got = images.data[((n * 3 + ch) * 8 + y) * 8 + x];
                        let want = samples.data[n * NUMEL + (y / 2) * 4 + x / 2].tanh();
                        assert!((got - want).abs() < 1e-6, "({n},{ch},{y},{x}): {got} vs {want}");
                    }
                }
            }
        }
    }
    let err = Decoder::open(data().join("nope.onnx"), &RuntimeOptions::default()).unwrap_err();
    assert!(err.is_input(), "{err}");
    // A graph with the wrong interface for a decoder: four inputs.
    let err = Decoder::open(linear().join("model_l2.onnx"), &RuntimeOptions::default()).unwrap_err();
    assert!(err.is_input() && err.to_string().contains("one input"), "{err}");
}

#[test]
fn dopri5_options_are_reported() {
    let rt = open(&linear());
    let req = SampleRequest::new(
        2,
        SolverChoice::Dopri5(Dopri5Options {
            rtol: 1e-4,
            atol: 1e-4,
            ..Default::default()
        }),
    );
    let out = rt.sample(&req).expect("sample");
    assert_eq!(out.solver, "dopri5");
    assert_eq!(
        out.stats.nfe,
        2 + 6 * (out.stats.accepted_steps + out.stats.rejected_steps)
    );
    assert!(out.stats.engine > std::time::Duration::ZERO);
}
