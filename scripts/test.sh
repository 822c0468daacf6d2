#!/usr/bin/env bash
# Sets up (idempotently) and runs every check CI runs: format, lints and tests of both builds —
# the deploy build (no libtorch, the default) and the training build (`--features train`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --train --browser
source scripts/env.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p odelt --all-targets --all-features --quiet -- -D warnings
cargo test --workspace
cargo test -p odelt --all-features
