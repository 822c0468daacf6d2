#!/usr/bin/env bash
# Interleaved comparison on a shared, noisy machine: odelt bench (ort-cpu engines) vs the same
# model in PyTorch eager vs sgemm, repeated REPS times, every run printing JSON lines.
#   source scripts/env.sh; benches/compare.sh EXPORT_DIR CKPT_DIR [REPS] [THREADS] [BATCH]
# EXPORT_DIR must hold engines built by `odelt engines build --backend ort-cpu`. COMPILE=1 adds
# the model under torch.compile (inductor) to every repetition.
set -euo pipefail
dir=$1; ckpt=$2; reps=${3:-3}; threads=${4:-2}; batch=${5:-1}
here=$(cd "$(dirname "$0")" && pwd)
odelt=${ODELT:-$here/../target/release/odelt}
for r in $(seq "$reps"); do
  "$odelt" bench --engines "$dir" --batch "$batch" --runs 10 --threads "$threads" --json --no-record | sed "s/^{/{\"rep\":$r,\"impl\":\"odelt\",/"
  python "$here/pytorch_eager.py" --checkpoint "$ckpt" --lengths 4,8,12 --batch "$batch" --threads "$threads" --runs 10 | sed "s/^{/{\"rep\":$r,/"
  if [[ ${COMPILE:-0} == 1 ]]; then
    python "$here/pytorch_eager.py" --checkpoint "$ckpt" --lengths 4,8,12 --batch "$batch" --threads "$threads" --runs 10 --compile | sed "s/^{/{\"rep\":$r,/"
  fi
  python "$here/pytorch_eager.py" --sgemm --threads "$threads" | sed "s/^{/{\"rep\":$r,/"
done
