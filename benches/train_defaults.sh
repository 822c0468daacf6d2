#!/usr/bin/env bash
# Few-step convergence along a training run (EXPERIMENTS.md, "Training defaults"): trains the
# fmnist preset on Fashion-MNIST from scratch (or fine-tunes INIT_FROM), keeps the EMA weights
# every EVERY steps, then scores each kept checkpoint with `odelt eval` (default: l = 12, Euler
# T = 1, 4, 128).
#
#   benches/train_defaults.sh train OUT/NAME STEPS EVERY [odelt train flags…]
#   benches/train_defaults.sh eval  OUT/NAME [N]
#
# ODELT names the binary (built with --features train for `train`); THREADS the libtorch and
# ONNX Runtime threads (default 1, so that runs can go side by side); INIT_FROM a checkpoint
# folder to start from (`--init-from`); LENGTHS and SOLVERS what `eval` scores. The run is
# resumable: `train` continues from the last kept step.
set -euo pipefail

ODELT="${ODELT:-target/release/odelt}"
THREADS="${THREADS:-1}"
LENGTHS="${LENGTHS:-12}"
SOLVERS="${SOLVERS:-euler:1,euler:4,euler:128}"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

train() {
  local run="$1" steps="$2" every="$3"; shift 3
  mkdir -p "$run/kept"
  local step=0
  [ -f "$run/ckpt/config.json" ] && step=$(ls "$run/kept" | sed 's/^step//' | sort -n | tail -1)
  while [ "$step" -lt "$steps" ]; do
    local next=$(( step + every < steps ? step + every : steps ))
    local start=()
    if [ "$step" -gt 0 ]; then start=(--resume)
    elif [ -n "${INIT_FROM:-}" ]; then start=(--init-from "$INIT_FROM"); fi
    "$ODELT" train --data fashion-mnist --model fmnist --steps "$steps" --stop-at "$next" \
      --threads "$THREADS" --save-every "$every" --log-every 50 --out "$run/ckpt" \
      "${start[@]}" "$@"
    mkdir -p "$run/kept/step$next"
    cp "$run/ckpt/config.json" "$run/ckpt/model.safetensors" "$run/kept/step$next/"
    step=$next
  done
  cp "$run/ckpt/train_log.csv" "$run/"
}

evaluate() {
  local run="$1" n="${2:-500}"
  : > "$run/fd.jsonl.tmp"
  for dir in $(ls -d "$run"/kept/step* | sort -V); do
    local step="${dir##*/step}"
    "$ODELT" export --checkpoint "$dir" --out "$dir/engines" >/dev/null
    "$ODELT" eval --engines "$dir/engines" --data fashion-mnist --n "$n" --threads "$THREADS" \
      --lengths "$LENGTHS" --solvers "$SOLVERS" --json \
      | sed "s/^{/{\"step\":$step,/" >> "$run/fd.jsonl.tmp"
  done
  mv "$run/fd.jsonl.tmp" "$run/fd.jsonl"
}

case "${1:-}" in
  train) [ $# -ge 4 ] || usage; shift; train "$@" ;;
  eval) [ $# -ge 2 ] || usage; shift; evaluate "$@" ;;
  *) usage ;;
esac
