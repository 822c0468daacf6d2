//! Writes a checkpoint of random, non-zero weights (`odelt_export::testing`) for benchmarks,
//! whose latency does not depend on the weights' values, without the training build:
//!
//!     cargo build --release -p odelt-export --example random_checkpoint
//!     target/release/examples/random_checkpoint --model dit-b --out ditb_ckpt [--seed 0]
//!
//! `--model` takes a preset name or a config file, as `odelt train --model` does.

use std::path::PathBuf;
use std::process::ExitCode;

use odelt_format::ModelConfig;

const USAGE: &str = "usage: random_checkpoint --model PRESET|FILE.json --out DIR [--seed S]";

fn parse() -> Result<(String, PathBuf, u64), String> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut out, mut seed) = (None, None, 0);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value; {USAGE}"))
        };
        match flag.as_str() {
            "--model" => model = Some(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-h" | "--help" => return Err(USAGE.into()),
            _ => return Err(format!("unknown argument '{flag}'; {USAGE}")),
        }
    }
    match (model, out) {
        (Some(model), Some(out)) => Ok((model, out, seed)),
        _ => Err(USAGE.into()),
    }
}

fn main() -> ExitCode {
    let (model, out, seed) = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let config = match ModelConfig::from_preset_or_file(&model) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: --model {model}: {e}");
            return ExitCode::from(2);
        }
    };
    match odelt_export::testing::write_random_checkpoint(&out, &config, seed) {
        Ok(()) => {
            eprintln!("wrote {} ({model}, seed {seed})", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", out.display());
            ExitCode::from(1)
        }
    }
}
