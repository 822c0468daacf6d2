#!/usr/bin/env bash
# Sets up (idempotently) and runs every check CI runs: format, lints and tests of both builds —
# the deploy build (no libtorch, the default) and the training build (`--features train`) —
# then a few seconds of fuzzing per target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --train --browser --kserve
source scripts/env.sh
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p odelt --all-targets --all-features --quiet -- -D warnings
cargo test --workspace
cargo test -p odelt --all-features
# A short coverage-guided fuzzing run of every reader of outside data (the long run: BENCHMARKS.md).
scripts/fuzz.sh 5
