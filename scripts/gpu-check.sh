#!/usr/bin/env bash
# The GPU check, in one call to a machine with an NVIDIA GPU (sm_90), CUDA 13, cuDNN 9 and
# PyTorch in python3, but no ONNX Runtime and no network. Needs gpu-bundle/ from
# scripts/make-gpu-bundle.sh and the tracked tree (benches/pytorch_eager.py).
#
#   OUT=/some/folder scripts/gpu-check.sh [--dry-run]
#
# Steps, each bounded in time, each writing JSON lines to $OUT/gpu-check.jsonl (a failing step
# is recorded with its exit code and the check goes on; the exit code is 1 if any failed):
#   1. unpack ONNX Runtime (CUDA) and the binaries to $WORK (default /tmp/odelt-gpu-check)
#   2. a random-init DiT-B checkpoint; exports for lengths 4, 8, 12 in fp32 and fp16
#   3. ort-cuda engines for both (`odelt engines build --backend ort-cuda`)
#   4. parity: `odelt sample` (Euler, 4 steps, 2 samples) with --provider cuda vs --provider
#      cpu (the plain fp32 graph on the CPU), max |a − b| / max |b| ≤ 1e-4, lengths 4 and 12
#   5. `odelt bench`, batch 1 and 8, fp32 and fp16, provider cuda and cuda-graph (CUDA graphs
#      replay one batch size, so one process per batch there)
#   6. PyTorch eager on CUDA from the same checkpoint, fp32 and fp16, batch 1 and 8
#   7. $OUT/summary.json: latency per (impl, precision, graphs, batch, length), the ratios
#      l4/l12 and l8/l12, fp16 vs fp32, CUDA graphs on vs off, ort-cuda vs PyTorch eager
# The whole check is bounded by BUDGET_S seconds (default 285; steps past it are recorded as
# skipped, and each step's own limit is cut to what is left); it has not yet run on a GPU.
# --dry-run checks here, without a GPU,
# that the bundle is complete, that the binaries start, and that asking for the CUDA provider
# of a CPU-only ONNX Runtime is the one clear error it should be.
# TensorRT is not checked: its builder (TensorRT 10 for CUDA 13) is not in the bundle.
set -uo pipefail
cd "$(dirname "$0")/.."
dry=0
case ${1:-} in
    --dry-run) dry=1 ;;
    "") ;;
    *) echo "gpu-check: unknown argument '$1' (usage: OUT=DIR scripts/gpu-check.sh [--dry-run])" >&2; exit 2 ;;
esac
bundle=gpu-bundle
work=${WORK:-/tmp/odelt-gpu-check}
out=${OUT:-}
[[ -n $out ]] || { echo "gpu-check: error: set OUT to the folder for the results" >&2; exit 2; }
mkdir -p "$out" "$work"
jsonl=$out/gpu-check.jsonl
log=$out/gpu-check.log
: >"$jsonl"
: >"$log"
failed=0
started=$(date +%s)
budget=${BUDGET_S:-285}

die() { echo "gpu-check: error: $*" | tee -a "$log" >&2; exit 2; }
say() { echo "gpu-check: $* (+$(($(date +%s) - started)) s)" | tee -a "$log" >&2; }
# step NAME SECONDS CMD...: runs CMD with a time limit; its JSON lines (stdout lines starting
# with '{') go to gpu-check.jsonl tagged with the step, everything else to the log.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((budget - ($(date +%s) - started)))
    if ((left < 5)); then
        echo "{\"step\":\"$name\",\"rc\":\"skipped\",\"reason\":\"time budget of $budget s spent\"}" >>"$jsonl"
        failed=1
        say "$name skipped: time budget spent"
        return 1
    fi
    ((limit > left)) && limit=$left
    say "$name"
    local t0=$EPOCHREALTIME rc
    timeout "$limit" "$@" >"$work/stdout" 2>>"$log"
    rc=$?
    grep '^{' "$work/stdout" | sed "s/^{/{\"step\":\"$name\",/" >>"$jsonl"
    grep -v '^{' "$work/stdout" >>"$log"
    local secs
    secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    echo "{\"step\":\"$name\",\"rc\":$rc,\"seconds\":$secs}" >>"$jsonl"
    if ((rc != 0)); then
        failed=1
        say "$name FAILED (exit $rc$( ((rc == 124)) && echo ', time limit'))"
    fi
    return $rc
}

# ---------------------------------------------------------------- bundle and tools
for f in odelt.xz random_checkpoint.xz ort/ort-cuda-sm90.tar.xz SHA256SUMS; do
    [[ -f $bundle/$f ]] || die "$bundle/$f is missing: run scripts/make-gpu-bundle.sh (and carry $bundle)"
done
[[ -f benches/pytorch_eager.py ]] || die "benches/pytorch_eager.py is missing: run from the checkout"
for tool in xz tar python3 timeout awk sha256sum; do
    command -v $tool >/dev/null || die "$tool is missing"
done
(cd "$bundle" && sha256sum --quiet --check SHA256SUMS) || die "$bundle does not match its SHA256SUMS"
for bin in odelt random_checkpoint; do
    xz -dc "$bundle/$bin.xz" >"$work/$bin" && chmod +x "$work/$bin" || die "cannot unpack $bin"
done
odelt=$work/odelt
"$odelt" --version >>"$log" 2>&1 || die "the odelt binary does not start: $(tail -1 "$log")"
tar -tJf "$bundle/ort/ort-cuda-sm90.tar.xz" >"$work/ort-files" || die "cannot read the ONNX Runtime bundle"
for lib in libonnxruntime.so.1.31.1 libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
    grep -q "/$lib\$" "$work/ort-files" || die "the ONNX Runtime bundle lacks $lib"
done
python3 benches/pytorch_eager.py --help >/dev/null || die "benches/pytorch_eager.py does not start"

if ((dry)); then
    # Without a GPU: a tiny export, and the CUDA provider from a CPU-only ONNX Runtime must be
    # refused with one line and exit code 2, before anything is written.
    "$work/random_checkpoint" --model tiny --out "$work/tiny_ckpt" 2>>"$log" || die "random_checkpoint failed"
    "$odelt" export --checkpoint "$work/tiny_ckpt" --out "$work/tiny" >>"$log" 2>&1 || die "export failed"
    message=$("$odelt" engines build --engines "$work/tiny" --backend ort-cuda 2>&1)
    rc=$?
    echo "$message" >>"$log"
    ((rc == 2)) || die "engines build --backend ort-cuda without the provider exited $rc, expected 2"
    [[ $(echo "$message" | wc -l) == 1 && $message == *"CUDA execution provider is not available"* ]] \
        || die "unexpected message for the missing CUDA provider: $message"
    echo "{\"step\":\"dry-run\",\"rc\":0,\"missing_provider_message\":$(python3 -c 'import json,sys;print(json.dumps(sys.argv[1]))' "$message")}" >>"$jsonl"
    say "dry run passed: bundle complete, binaries start, missing CUDA provider reported clearly"
    exit 0
fi

# ---------------------------------------------------------------- GPU environment
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >>"$log" 2>&1
tar -xJf "$bundle/ort/ort-cuda-sm90.tar.xz" -C "$work" || die "cannot unpack the ONNX Runtime bundle"
export ORT_DYLIB_PATH=$work/ort-cuda-sm90/libonnxruntime.so.1.31.1 CUDA_MODULE_LOADING=LAZY
site=$(python3 -c 'import site; print(site.getsitepackages()[0])')/nvidia
[[ -d $site ]] || die "no NVIDIA CUDA wheels under $site (cudart, cublas, cudnn for CUDA 13)"
LD_LIBRARY_PATH=$(find "$site" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
python3 - "$out/environment.json" <<'EOF'
import json, platform, sys
import torch
info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
json.dump(info, open(sys.argv[1], "w"))
EOF
say "environment: $(cat "$out/environment.json")"

ckpt=$work/ditb_ckpt
step checkpoint 60 "$work/random_checkpoint" --model dit-b --out "$ckpt" || die "no checkpoint"
step export-fp32 90 "$odelt" export --checkpoint "$ckpt" --lengths 4,8,12 --out "$work/fp32" || die "no fp32 export"
step export-fp16 90 "$odelt" export --checkpoint "$ckpt" --lengths 4,8,12 --out "$work/fp16" --fp16
for p in fp32 fp16; do
    [[ -f $work/$p/manifest.json ]] && step "build-$p" 120 "$odelt" engines build --engines "$work/$p" --backend ort-cuda
done

# Parity: the same noise and labels through ort-cuda and through the plain graph on the CPU.
for l in 4 12; do
    for provider in cuda cpu; do
        step "sample-$provider-l$l" 90 "$odelt" sample --engines "$work/fp32" --length $l --solver euler --steps 4 \
            --n 2 --seed 7 --class 3 --provider $provider --npy "$work/sample-$provider-l$l.npy" --json
    done
    step "parity-l$l" 30 python3 - "$work/sample-cuda-l$l.npy" "$work/sample-cpu-l$l.npy" $l <<'EOF'
import json, sys
import numpy as np
gpu, cpu, l = np.load(sys.argv[1]), np.load(sys.argv[2]), int(sys.argv[3])
rel = float(np.abs(gpu - cpu).max() / np.abs(cpu).max())
print(json.dumps({"length": l, "max_abs_diff": float(np.abs(gpu - cpu).max()), "max_abs_cpu": float(np.abs(cpu).max()),
                  "rel": rel, "goal": 1e-4, "ok": rel <= 1e-4}))
sys.exit(0 if rel <= 1e-4 else 1)
EOF
done

bench() { # NAME DIR PROVIDER BATCHES
    step "$1" 120 "$odelt" bench --engines "$2" --provider "$3" --batch "$4" --runs 20 --warmup 3 --json --no-record
}
for p in fp32 fp16; do
    [[ -f $work/$p/manifest.json ]] || continue
    bench "bench-$p-cuda" "$work/$p" cuda 1,8
    bench "bench-$p-cuda-graph-b1" "$work/$p" cuda-graph 1
    bench "bench-$p-cuda-graph-b8" "$work/$p" cuda-graph 8
done
for dtype in fp32 fp16; do
    step "eager-$dtype" 120 python3 benches/pytorch_eager.py --checkpoint "$ckpt" --lengths 4,8,12 --batch 1,8 \
        --device cuda --dtype $dtype --runs 20 --warmup 3
done

python3 - "$jsonl" "$out/summary.json" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
lat = {}  # (impl, precision, graphs, batch, length) -> ms
for r in rows:
    s = r.get("step", "")
    if "ms_median" not in r or "length" not in r:
        continue
    if s.startswith("bench-"):
        precision = s.split("-")[1]
        key = ("ort-cuda", precision, "cuda-graph" in s, r["batch"], r["length"])
    elif s.startswith("eager-"):
        key = ("pytorch-eager", r["dtype"], False, r["batch"], r["length"])
    else:
        continue
    lat[key] = r["ms_median"]
table = [dict(zip(("impl", "precision", "cuda_graph", "batch", "length"), k), ms_median=v) for k, v in sorted(lat.items())]
ratios = []
for (impl, p, g, b, l), ms in sorted(lat.items()):
    full = lat.get((impl, p, g, b, 12))
    if l != 12 and full:
        ratios.append({"impl": impl, "precision": p, "cuda_graph": g, "batch": b, "ratio": f"l{l}/l12",
                       "value": ms / full, "goal": l / 12 + 0.05})
compare = []
for (impl, p, g, b, l), ms in sorted(lat.items()):
    if impl != "ort-cuda":
        continue
    if p == "fp16" and ("ort-cuda", "fp32", g, b, l) in lat:
        compare.append({"what": "fp32/fp16 (speed-up of fp16)", "cuda_graph": g, "batch": b, "length": l,
                        "value": lat[("ort-cuda", "fp32", g, b, l)] / ms})
    if g and (impl, p, False, b, l) in lat:
        compare.append({"what": "graphs off/on (speed-up of CUDA graphs)", "precision": p, "batch": b, "length": l,
                        "value": lat[(impl, p, False, b, l)] / ms})
    if ("pytorch-eager", "fp32", False, b, l) in lat:
        compare.append({"what": "eager fp32 / ort-cuda (speed-up over PyTorch eager fp32)", "precision": p,
                        "cuda_graph": g, "batch": b, "length": l,
                        "value": lat[("pytorch-eager", "fp32", False, b, l)] / ms,
                        "goal": 1.5 if (p == "fp16" and b == 8) else None})
steps = {r["step"]: r["rc"] for r in rows if "rc" in r}  # exit code, or "skipped"
parity = [r for r in rows if r.get("step", "").startswith("parity-") and "rel" in r]
json.dump({"latency": table, "length_ratios": ratios, "comparisons": compare, "parity": parity,
           "steps": steps, "failed_steps": [s for s, rc in steps.items() if rc != 0]},
          open(sys.argv[2], "w"), indent=1)
print(f"gpu-check: {len(table)} latencies, {len(parity)} parity checks, failed steps: "
      f"{[s for s, rc in steps.items() if rc != 0] or 'none'}", file=sys.stderr)
EOF
say "done; results in $out (summary.json, gpu-check.jsonl, gpu-check.log)"
exit $failed
