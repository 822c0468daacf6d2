#!/usr/bin/env bash
# Peak resident memory (GNU time's %M, KiB → MB) of the `odelt` binary: `--version`, and
# `odelt sample` of one image with 2 Euler steps at each length of an export.
#   benches/deploy_memory.sh EXPORT_DIR [RUNS] [LENGTHS]     (default 2 runs, lengths 4,8,12)
# ODELT picks the binary (default target/release/odelt). One JSON line per run.
set -euo pipefail
dir=$1; runs=${2:-2}; lengths=${3:-4,8,12}
here=$(cd "$(dirname "$0")" && pwd)
odelt=${ODELT:-$here/../target/release/odelt}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
peak_mb() {
  /usr/bin/time -f %M -o "$out" "$@" >/dev/null 2>&1
  echo "scale=1; $(tail -1 "$out") / 1024" | bc
}
for r in $(seq "$runs"); do
  echo "{\"rep\": $r, \"what\": \"version\", \"peak_rss_mb\": $(peak_mb "$odelt" --version)}"
  for l in ${lengths//,/ }; do
    mb=$(peak_mb "$odelt" sample --engines "$dir" --length "$l" --solver euler --steps 2 --n 1 --threads 2)
    echo "{\"rep\": $r, \"what\": \"sample\", \"length\": $l, \"peak_rss_mb\": $mb}"
  done
done
