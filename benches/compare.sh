#!/usr/bin/env bash
# Interleaved comparison on a shared, noisy machine: odelt bench (ort-cpu engines) vs the same
# model in PyTorch eager vs sgemm, repeated REPS times, every run printing JSON lines.
#   source scripts/env.sh; benches/compare.sh EXPORT_DIR CKPT_DIR [REPS] [THREADS] [BATCH]
# EXPORT_DIR must hold engines built by `odelt engines build --backend ort-cpu`. COMPILE=1 adds
# the model under torch.compile (inductor) to every repetition; RUNS sets the timed calls per
# length (default 10). Both harnesses call the lengths round-robin; CONSECUTIVE=1 times one
# length per process instead (all calls of a length in a row, as in a solve).
set -euo pipefail
dir=$1; ckpt=$2; reps=${3:-3}; threads=${4:-2}; batch=${5:-1}; runs=${RUNS:-10}
here=$(cd "$(dirname "$0")" && pwd)
odelt=${ODELT:-$here/../target/release/odelt}
if [[ ${CONSECUTIVE:-0} == 1 ]]; then groups=(4 8 12); else groups=(4,8,12); fi
for r in $(seq "$reps"); do
  for ls in "${groups[@]}"; do
    "$odelt" bench --engines "$dir" --lengths "$ls" --batch "$batch" --runs "$runs" --threads "$threads" --json --no-record | sed "s/^{/{\"rep\":$r,\"impl\":\"odelt\",/"
    python "$here/pytorch_eager.py" --checkpoint "$ckpt" --lengths "$ls" --batch "$batch" --threads "$threads" --runs "$runs" | sed "s/^{/{\"rep\":$r,/"
    if [[ ${COMPILE:-0} == 1 ]]; then
      python "$here/pytorch_eager.py" --checkpoint "$ckpt" --lengths "$ls" --batch "$batch" --threads "$threads" --runs "$runs" --compile | sed "s/^{/{\"rep\":$r,/"
    fi
  done
  python "$here/pytorch_eager.py" --sgemm --threads "$threads" | sed "s/^{/{\"rep\":$r,/"
done
