#!/usr/bin/env bash
# Makes gpu-bundle/ (git-ignored): everything scripts/gpu-check.sh needs on a GPU machine that
# has CUDA 13, cuDNN 9 and PyTorch but no ONNX Runtime and no network.
#
#   scripts/make-gpu-bundle.sh [--kit DIR]
#
#   gpu-bundle/odelt.xz               the deploy build of odelt (no libtorch), release, stripped
#   gpu-bundle/random_checkpoint.xz   writes random-init checkpoints (odelt-export's example)
#   gpu-bundle/ort/ort-cuda-sm90.tar.xz  ONNX Runtime 1.31.1 with its CUDA provider pruned to
#                                     sm_90 (with the kit's SHA256SUMS and SIZE.txt), made by
#                                     DIR/make-ort-cuda-bundle.sh (DIR: --kit, else
#                                     $ODELT_GPU_KIT, else ../shared/gpu beside the checkout);
#                                     it downloads onnxruntime-gpu 1.31.1 from PyPI once
#   gpu-bundle/SHA256SUMS, gpu-bundle/SIZE.txt
#
# The folder must stay ≤ 55 MiB: a call to the GPU machine carries at most 64 MiB, the
# tracked tree (benches/pytorch_eager.py and this script's partner included) ~9 MiB of it.
# Run it after the code changes; it rebuilds the binaries every time (cargo is incremental)
# and reuses the ONNX Runtime bundle.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
kit=${ODELT_GPU_KIT:-$here/../shared/gpu}
while (($#)); do
    case $1 in
        --kit) kit=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "make-gpu-bundle: unknown argument '$1' (usage: scripts/make-gpu-bundle.sh [--kit DIR])" >&2; exit 2 ;;
    esac
done
readonly LIMIT_MIB=55
out=$here/gpu-bundle
[[ -x $kit/make-ort-cuda-bundle.sh ]] || {
    echo "make-gpu-bundle: error: no make-ort-cuda-bundle.sh in $kit (pass --kit DIR or set ODELT_GPU_KIT)" >&2
    exit 2
}
for tool in xz strip sha256sum; do
    command -v $tool >/dev/null || { echo "make-gpu-bundle: error: $tool is missing" >&2; exit 2; }
done
mkdir -p "$out"
"$kit/make-ort-cuda-bundle.sh" "$out/ort"

cd "$here"
cargo build --release --bin odelt
cargo build --release -p odelt-export --example random_checkpoint
for bin in target/release/odelt target/release/examples/random_checkpoint; do
    name=$(basename "$bin")
    tmp=$(mktemp "$out/.$name.XXXXXX")
    strip -o "$tmp" "$bin"
    xz -9 -T0 -c "$tmp" > "$tmp.xz"
    mv "$tmp.xz" "$out/$name.xz"
    rm -f "$tmp"
done
(cd "$out" && sha256sum odelt.xz random_checkpoint.xz ort/ort-cuda-sm90.tar.xz > SHA256SUMS)
bytes=$(du -sb "$out" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "gpu-bundle: $mib MiB ($bytes bytes) at $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')" | tee "$out/SIZE.txt"
if awk -v b="$bytes" -v l="$LIMIT_MIB" 'BEGIN { exit !(b > l * 1048576) }'; then
    echo "make-gpu-bundle: error: $mib MiB is over the $LIMIT_MIB MiB a call can carry with the tree" >&2
    exit 1
fi
