//! Helpers shared by the root integration tests (`deploy.rs`, `train.rs`, `pipeline.rs`):
//! running the `odelt` binary, its usual `train` and `export` invocations, and (with the
//! `train` feature) random-weight tch models.

// Each test binary compiles this module on its own and uses only part of it, so what one of
// them leaves unused would warn (and fail clippy's -D warnings) in that binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

#[cfg(feature = "train")]
#[allow(unused_imports)]
pub use models::*;

/// Runs the `odelt` binary with these arguments and extra environment variables.
pub fn odelt_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_odelt"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run odelt")
}

pub fn odelt(args: &[&str]) -> Output {
    odelt_env(args, &[])
}

/// The whitespace-separated words of a command line without paths in it.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `odelt` with the words of `line`, then `extra` (paths, which are never split).
pub fn odelt_words(line: &str, extra: &[&str]) -> Output {
    odelt(&[&words(line)[..], extra].concat())
}

/// One JSON object per line of `text`.
pub fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// (length, steps) of each demo cell, in order.
pub fn length_steps(cells: &[serde_json::Value]) -> Vec<(u64, u64)> {
    let field = |c: &serde_json::Value, k: &str| c[k].as_u64().unwrap_or_else(|| panic!("{k} in {c}"));
    cells
        .iter()
        .map(|c| (field(c, "length"), field(c, "steps")))
        .collect()
}

/// Asserts that the command succeeded (showing its stderr if not) and returns its stdout.
pub fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `dir/name` as a command-line argument.
pub fn path_arg(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().expect("utf8").to_string()
}

/// `odelt train` on synthetic data for `steps` steps into `out`, with a model preset or
/// config file; asserts success and returns stdout.
pub fn train_synthetic(model: &str, steps: u32, out: &str) -> String {
    let steps = steps.to_string();
    ok(odelt(&[
        "train",
        "--data",
        "synthetic",
        "--model",
        model,
        "--steps",
        &steps,
        "--out",
        out,
    ]))
}

/// `odelt export` of the checkpoint `ckpt` into `out`, at every valid length or only at the
/// comma-separated `lengths`; asserts success and returns stdout.
pub fn export(ckpt: &str, out: &str, lengths: Option<&str>) -> String {
    let mut args = vec!["export", "--checkpoint", ckpt, "--out", out];
    if let Some(lengths) = lengths {
        args.extend(["--lengths", lengths]);
    }
    ok(odelt(&args))
}

/// Trains the tiny preset on synthetic data for `steps` steps into `dir/ckpt` and exports it
/// (see `export`) into `dir/engines`; returns the engines folder.
pub fn tiny_engines(dir: &Path, steps: u32, lengths: Option<&str>) -> String {
    let (ckpt, engines) = (path_arg(dir, "ckpt"), path_arg(dir, "engines"));
    train_synthetic("tiny", steps, &ckpt);
    export(&ckpt, &engines, lengths);
    engines
}

/// Exit status `code` and a single line naming the problem, without a panic.
pub fn assert_fails(args: &[&str], envs: &[(&str, &str)], code: i32, needle: &str) {
    let o = odelt_env(args, envs);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected '{needle}' in: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Bad input: exit code 2 and a single line naming the problem.
pub fn assert_bad_input(args: &[&str], envs: &[(&str, &str)], needle: &str) {
    assert_fails(args, envs, 2, needle);
}

/// Asserts the exit status `code`, showing stderr if it differs.
pub fn assert_exit(o: Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[cfg(feature = "train")]
mod models {
    use std::path::Path;

    use odelt::model::Dit;
    use odelt::train::checkpoint::named_variables;
    use odelt_format::{CheckpointMeta, ModelConfig};
    use tch::{nn, Device, Tensor};

    /// A model whose every weight (adaLN and final layer included) is random, so no term of the
    /// forward pass hides behind a zero.
    pub fn random_model(config: &ModelConfig, seed: i64) -> (nn::VarStore, Dit) {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Dit::new(&vs.root(), config);
        tch::no_grad(|| {
            for (name, mut t) in vs.variables() {
                if name != "pos_embed" {
                    t.copy_(&(t.randn_like() * 0.2));
                }
            }
        });
        (vs, model)
    }

    /// Writes a checkpoint (step 7) of `random_model(config, 11)` into `dir` and returns the model.
    pub fn random_checkpoint(config: &ModelConfig, dir: &Path) -> (nn::VarStore, Dit) {
        let (vs, model) = random_model(config, 11);
        std::fs::create_dir_all(dir).expect("mkdir");
        let meta = CheckpointMeta::new(7, config.clone());
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string(&meta).expect("json"),
        )
        .expect("config");
        Tensor::write_safetensors(&named_variables(&vs), dir.join("model.safetensors")).expect("weights");
        (vs, model)
    }
}
