#!/usr/bin/env bash
# Interleaved latency of the same export's engines at several precisions: `odelt bench` per
# precision in turn, REPS times, then per (length, batch) the median over reps of each
# precision's median and the median of the per-rep ratios to the first precision.
#   source scripts/env.sh; benches/precision.sh EXPORT_DIR [REPS] [THREADS] [BATCH] [PRECISIONS]
# e.g. benches/precision.sh ditb_exp 5 2 1 fp32,int8 (engines built with `odelt engines build
# --backend ort-cpu` and `--precision int8`). Prints the JSON lines, then the summary.
set -euo pipefail
dir=$1; reps=${2:-5}; threads=${3:-2}; batch=${4:-1}; precisions=${5:-fp32,int8}
here=$(cd "$(dirname "$0")" && pwd)
odelt=${ODELT:-$here/../target/release/odelt}
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for r in $(seq "$reps"); do
  for p in ${precisions//,/ }; do
    "$odelt" bench --engines "$dir" --precision "$p" --batch "$batch" --runs 10 --threads "$threads" --json --no-record \
      | sed "s/^{/{\"rep\":$r,/" | tee -a "$lines"
  done
done
python3 - "$lines" "${precisions%%,*}" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
base = sys.argv[2]
ms = defaultdict(dict)  # (length, batch, precision) -> {rep: ms}
for r in rows:
    ms[(r["length"], r["batch"], r["precision"])][r["rep"]] = r["ms_median"]
for (l, b, p), reps in sorted(ms.items()):
    ref = ms[(l, b, base)]
    ratios = [reps[k] / ref[k] for k in reps if k in ref]
    print(json.dumps({"summary": True, "length": l, "batch": b, "precision": p,
                      "ms_median_of_reps": statistics.median(reps.values()),
                      f"ratio_to_{base}_per_rep": [round(x, 3) for x in ratios],
                      f"ratio_to_{base}": statistics.median(ratios)}))
PY
