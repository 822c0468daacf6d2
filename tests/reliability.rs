//! Reliability of what odelt writes and reads: commands killed (SIGKILL) at random moments
//! leave the complete previous or the complete new version, never a partial file, and a rerun
//! succeeds; a truncated or altered export is a clear error, never a crash.
//!
//! `ODELT_KILL_TRIALS` sets the kills per command (default 12; BENCHMARKS.md records a long
//! run).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{assert_fails, odelt, ok, path_arg, words};
use odelt_format::seed::SplitMix64;
use odelt_format::{Manifest, ModelConfig};

fn trials() -> usize {
    std::env::var("ODELT_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("utf8")
}

/// A random fmnist-shaped checkpoint (written without tch) seeded with `seed`.
fn checkpoint(dir: &Path, seed: u64) -> PathBuf {
    let ckpt = dir.join(format!("ckpt{seed}"));
    odelt_export::testing::write_random_checkpoint(&ckpt, &ModelConfig::fmnist(), seed).expect("checkpoint");
    ckpt
}

/// The wall time of an uninterrupted run of `args` (which must succeed).
fn timed(args: &[&str]) -> Duration {
    let start = Instant::now();
    ok(odelt(args));
    start.elapsed()
}

/// Runs `args` `trials` times, each killed with SIGKILL after a random delay in
/// [0, 1.5 · `full`), and calls `check` after each kill. Returns how many runs the kill
/// interrupted (the rest had finished).
fn kill_at_random(args: &[&str], full: Duration, seed: u64, mut check: impl FnMut(usize)) -> usize {
    let mut rng = SplitMix64::new(seed);
    let mut interrupted = 0;
    for trial in 0..trials() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_odelt"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn odelt");
        std::thread::sleep(full.mul_f64(1.5 * rng.uniform()));
        if child.try_wait().expect("try_wait").is_none() {
            interrupted += 1;
        }
        child.kill().ok();
        child.wait().expect("wait");
        check(trial);
    }
    interrupted
}

/// Arguments as the runner takes them.
fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Names in `dir` that are not hidden temporaries.
fn visible(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// `odelt verify` (content hashes included) succeeds on `dir`.
fn verifies(dir: &Path) {
    ok(odelt(&["verify", "--engines", arg(dir)]));
}

#[test]
fn killed_export_leaves_the_old_or_the_new_export() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (checkpoint(tmp.path(), 1), checkpoint(tmp.path(), 2));
    let out = tmp.path().join("engines");
    let args_a = ["export", "--checkpoint", arg(&a), "--out", arg(&out)];
    let args_b = ["export", "--checkpoint", arg(&b), "--out", arg(&out)];
    let full = timed(&args_a);
    let files = visible(&out);
    let sources = [a.canonicalize().expect("a"), b.canonicalize().expect("b")];
    let interrupted = kill_at_random(&args_b, full, 7, |trial| {
        assert_eq!(
            visible(&out),
            files,
            "trial {trial}: only complete files are visible"
        );
        let manifest = Manifest::read(&out).expect("a complete manifest");
        assert!(
            sources
                .iter()
                .any(|s| manifest.source.checkpoint == s.display().to_string()),
            "trial {trial}: {}",
            manifest.source.checkpoint
        );
        verifies(&out);
    });
    eprintln!("export: {interrupted} of {} runs interrupted", trials());
    ok(odelt(&args_b));
    verifies(&out);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".engines."))
        .collect();
    assert!(
        leftovers.is_empty(),
        "a rerun removes killed runs' temporaries: {leftovers:?}"
    );
}

#[test]
fn killed_engine_build_leaves_a_consistent_export() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ckpt = checkpoint(tmp.path(), 3);
    let out = path_arg(tmp.path(), "engines");
    ok(odelt(&["export", "--checkpoint", arg(&ckpt), "--out", &out]));
    let build = [
        &words("engines build --backend ort-cpu --threads 1 --engines")[..],
        &[&out],
    ]
    .concat();
    let full = timed(&build);
    let sample = [
        &words("sample --length 8 --solver euler --steps 2 --n 1 --engines")[..],
        &[&out],
    ]
    .concat();
    let interrupted = kill_at_random(&build, full, 11, |_| {
        verifies(Path::new(&out));
        ok(odelt(&sample));
    });
    eprintln!("engines build: {interrupted} of {} runs interrupted", trials());
    ok(odelt(&build));
    verifies(Path::new(&out));
}

#[test]
fn killed_sample_leaves_the_old_or_the_new_outputs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ckpt = checkpoint(tmp.path(), 4);
    let engines = path_arg(tmp.path(), "engines");
    ok(odelt(&[
        "export",
        "--checkpoint",
        arg(&ckpt),
        "--lengths",
        "12",
        "--out",
        &engines,
    ]));
    let (png, npy) = (tmp.path().join("x.png"), tmp.path().join("x.npy"));
    let sample = |seed: &'static str| -> Vec<String> {
        let line = format!("sample --length 12 --solver euler --steps 16 --n 64 --seed {seed}");
        let mut args: Vec<String> = words(&line).into_iter().map(String::from).collect();
        for extra in ["--engines", &engines, "--out", arg(&png), "--npy", arg(&npy)] {
            args.push(extra.to_string());
        }
        args
    };
    // The two complete versions: seed 1 (the previous outputs), then seed 2.
    let (seed1, seed2) = (sample("1"), sample("2"));
    let (seed1, seed2) = (strs(&seed1), strs(&seed2));
    ok(odelt(&seed2));
    let new = (
        std::fs::read(&png).expect("png"),
        std::fs::read(&npy).expect("npy"),
    );
    let full = timed(&seed1);
    let old = (
        std::fs::read(&png).expect("png"),
        std::fs::read(&npy).expect("npy"),
    );
    let interrupted = kill_at_random(&seed2, full, 13, |trial| {
        let now = (
            std::fs::read(&png).expect("png"),
            std::fs::read(&npy).expect("npy"),
        );
        assert!(
            now.0 == old.0 || now.0 == new.0,
            "trial {trial}: the PNG is whole"
        );
        assert!(
            now.1 == old.1 || now.1 == new.1,
            "trial {trial}: the .npy is whole"
        );
    });
    eprintln!("sample: {interrupted} of {} runs interrupted", trials());
    assert_eq!(
        visible(tmp.path()).iter().filter(|n| n.starts_with("x.")).count(),
        2
    );
}

#[cfg(feature = "train")]
#[test]
fn killed_training_leaves_a_loadable_checkpoint_and_resumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = path_arg(tmp.path(), "ckpt");
    let train = |steps: &'static str, resume: bool| -> Vec<String> {
        let line = format!(
            "train --data synthetic --model tiny --save-every 1 --log-every 1 --steps {steps}{}",
            if resume { " --resume" } else { "" }
        );
        let mut args: Vec<String> = words(&line).into_iter().map(String::from).collect();
        args.extend(["--out".to_string(), out.clone()]);
        args
    };
    let (first, thirty, sixty) = (train("1", false), train("30", true), train("60", true));
    ok(odelt(&strs(&first)));
    let full = timed(&strs(&thirty));
    let engines = path_arg(tmp.path(), "engines");
    let interrupted = kill_at_random(&strs(&sixty), full, 17, |trial| {
        // Whatever step it reached, the folder is a complete checkpoint the exporter reads
        // strictly (every tensor present, finite).
        let o = odelt(&["export", "--checkpoint", &out, "--out", &engines]);
        assert!(
            o.status.success(),
            "trial {trial}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    });
    eprintln!("train: {interrupted} of {} runs interrupted", trials());
    ok(odelt(&strs(&sixty)));
}

/// A fmnist export with ort-cpu engines, and a copy of it to damage.
fn damaged_copy(tmp: &Path) -> (PathBuf, PathBuf) {
    let ckpt = checkpoint(tmp, 5);
    let good = tmp.join("good");
    ok(odelt(&[
        "export",
        "--checkpoint",
        arg(&ckpt),
        "--lengths",
        "4,12",
        "--out",
        arg(&good),
    ]));
    ok(odelt(&[
        "engines",
        "build",
        "--backend",
        "ort-cpu",
        "--engines",
        arg(&good),
    ]));
    let bad = tmp.join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    for entry in std::fs::read_dir(&good).expect("read_dir") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, bad.join(path.file_name().expect("name"))).expect("copy");
    }
    (good, bad)
}

fn sample_args(dir: &Path) -> Vec<&str> {
    [
        &words("sample --length 4 --solver euler --steps 1 --n 1 --engines")[..],
        &[arg(dir)],
    ]
    .concat()
}

#[test]
fn corrupt_exports_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (good, bad) = damaged_copy(tmp.path());
    verifies(&good);
    ok(odelt(&sample_args(&bad)));

    // A flipped byte inside the first tensor: same size, so only the content hash tells.
    let weights = bad.join("weights.bin");
    let mut bytes = std::fs::read(&weights).expect("weights");
    bytes[5] ^= 0xff;
    std::fs::write(&weights, &bytes).expect("write");
    assert_fails(&["verify", "--engines", arg(&bad)], &[], 2, "content hash");
    ok(odelt(&["verify", "--no-hash", "--engines", arg(&bad)]));

    // Truncated weights: refused when the runtime opens, before ONNX Runtime maps the file.
    bytes.truncate(bytes.len() - 1000);
    std::fs::write(&weights, &bytes).expect("write");
    assert_fails(&sample_args(&bad), &[], 2, "truncated");
    assert_fails(&["verify", "--engines", arg(&bad)], &[], 2, "truncated");
    std::fs::copy(good.join("weights.bin"), &weights).expect("restore");

    // A truncated graph and a truncated built engine.
    for file in ["model_l4.onnx", "model_l4.ort-cpu.onnx"] {
        let path = bad.join(file);
        let graph = std::fs::read(&path).expect("graph");
        std::fs::write(&path, &graph[..graph.len() / 2]).expect("truncate");
        assert_fails(&["verify", "--engines", arg(&bad)], &[], 2, file);
        if file.contains("ort-cpu") {
            assert_fails(&sample_args(&bad), &[], 2, file);
        }
        std::fs::write(&path, &graph).expect("restore");
    }
    verifies(&bad);
}
