#!/usr/bin/env bash
# Requests/s of one model instance of the KServe v2 test server (scripts/kserve_onnx_server.py,
# onnxruntime on the CPU, one intra-op thread) against the same graph run in-process, for
# docs/triton.md. One client, one request in flight: every Euler step is one ModelInfer.
# Interleaved, REPS repetitions; prints one JSON line per run (req_s = nfe / wall).
#   source scripts/env.sh; benches/triton_rps.sh CHECKPOINT [REPS] [STEPS] [BATCHES]
set -euo pipefail
ckpt=$1; reps=${2:-5}; steps=${3:-200}; batches=${4:-1,16}
here=$(cd "$(dirname "$0")" && pwd)
odelt=${ODELT:-$here/../target/release/odelt}
python=${ODELT_KSERVE_PYTHON:?run scripts/setup.sh --kserve and . scripts/env.sh}
work=$(mktemp -d)
server=
cleanup() { [[ -n $server ]] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$odelt" export --checkpoint "$ckpt" --out "$work/export" >/dev/null
"$odelt" triton --engines "$work/export" --out "$work/repo" --max-batch 64 >/dev/null
port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$python" "$here/../scripts/kserve_onnx_server.py" --repository "$work/repo" --grpc-port "$port" \
  --http-port 0 --threads 1 >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 300); do
  "$odelt" sample --engines "$work/export" --length 4 --solver euler --steps 1 --n 1 \
    --remote "grpc://127.0.0.1:$port" >/dev/null 2>&1 && break
  sleep 0.2
done
length=$("$python" -c "import json; print(json.load(open('$work/export/manifest.json'))['lengths'][-1]['length'])")
for r in $(seq "$reps"); do
  for b in ${batches//,/ }; do
    for where in local remote; do
      if [[ $where == remote ]]; then flags=(--remote "grpc://127.0.0.1:$port"); else flags=(--threads 1); fi
      "$odelt" sample --engines "$work/export" --length "$length" --solver euler --steps "$steps" --n "$b" \
        --json "${flags[@]}" | "$python" -c "
import json, sys
d = json.loads(sys.stdin.read())
print(json.dumps({'rep': $r, 'where': '$where', 'batch': $b, 'length': d['length'], 'req_s': round(d['nfe'] / d['wall_ms'] * 1e3, 1),
                  'ms_per_call': round(d['wall_ms'] / d['nfe'], 3)}))"
    done
  done
done
