#!/usr/bin/env bash
# Times README's main-job command as a new user runs it: a fresh clone of this repository's
# HEAD, with an empty ODELT_CACHE, an empty CARGO_HOME (every crate downloaded) and no target
# folder, pip's cache disabled.
#   benches/fresh_clone.sh [WORKDIR]      (WORKDIR default: a new temporary folder, removed after)
# Prints the command's output, then one JSON line: seconds, commit, whether torch was installed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
[[ $# -eq 0 ]] && trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/odelt"
commit=$(git -C "$work/odelt" rev-parse --short HEAD)
cd "$work/odelt"
start=$(date +%s.%N)
env -u ORT_DYLIB_PATH -u VIRTUAL_ENV -u LIBTORCH_USE_PYTORCH -u LD_LIBRARY_PATH \
  ODELT_CACHE="$work/cache" CARGO_HOME="$work/cargo" PIP_NO_CACHE_DIR=1 \
  bash -c './scripts/setup.sh && . scripts/env.sh && cargo run --release -- demo'
end=$(date +%s.%N)
torch=false
ls -d "$work"/cache/venv-*/lib/python3*/site-packages/torch >/dev/null 2>&1 && torch=true
printf '{"seconds": %.1f, "commit": "%s", "torch_installed": %s}\n' "$(echo "$end - $start" | bc)" "$commit" "$torch"
