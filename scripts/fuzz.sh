#!/usr/bin/env bash
# Coverage-guided fuzzing of odelt's readers of outside data with AFL++ (cargo-afl, stable Rust).
#
#   scripts/fuzz.sh SECONDS [TARGET ...]     each target (default: all) for SECONDS
#
# Installs cargo-afl and builds its AFL++ runtime when missing (idempotent), builds fuzz/ with
# AFL's instrumentation, adds missing seed corpora (fuzz/seeds, from real files),
# runs each target with `cargo afl fuzz -V SECONDS` into fuzz/out/<target>, and prints one JSON
# line per target: executions, crashes, hangs. Exits 1 when any target found a crash or hang
# (the inputs are under fuzz/out/<target>/default/{crashes,hangs}). Needs ORT_DYLIB_PATH for
# the c_abi target (source scripts/env.sh).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs=${1:?usage: scripts/fuzz.sh SECONDS [TARGET ...]}
shift
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(manifest model_config checkpoint npy idx image c_abi serve_request)

log() { echo "fuzz: $*" >&2; }
if ! command -v cargo-afl >/dev/null; then
  log "installing cargo-afl"
  cargo install cargo-afl --locked --quiet
fi
# Builds AFL++ itself once per toolchain; says so (and fails) when it is already built.
cargo afl config --build >/dev/null 2>&1 || true

cd "$root/fuzz"
log "building the targets with AFL++ instrumentation"
cargo afl build --release --quiet
# Seeds are committed; a target without a folder gets the generator's (fuzz/src/bin/seeds.rs).
missing=()
for t in "${targets[@]}"; do [[ -d "seeds/$t" ]] || missing+=("$t"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  fresh=$(mktemp -d)
  target/release/seeds "$fresh"
  for t in "${missing[@]}"; do cp -r "$fresh/$t" "seeds/$t"; done
  rm -rf "$fresh"
fi

export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_QUIET=1
export AFL_NO_AFFINITY=1
failed=0
for t in "${targets[@]}"; do
  out="out/$t"
  rm -rf "$out"
  mkdir -p out
  # A Rust panic aborts the process: AFL counts it as a crash. -m none: the targets bound their
  # own allocations (image limits, capped counts).
  cargo afl fuzz -i "seeds/$t" -o "$out" -V "$secs" -m none -t 2000 -- "target/release/$t" >/dev/null 2>&1 || true
  stats="$out/default/fuzzer_stats"
  if [[ ! -f "$stats" ]]; then
    log "$t: AFL did not start (see: cargo afl fuzz -i seeds/$t -o $out target/release/$t)"
    failed=1
    continue
  fi
  field() { awk -F' *: *' -v k="$1" '$1 == k {print $2}' "$stats"; }
  execs=$(field execs_done); crashes=$(field saved_crashes); hangs=$(field saved_hangs)
  echo "{\"target\": \"$t\", \"seconds\": $secs, \"execs\": $execs, \"crashes\": $crashes, \"hangs\": $hangs, \"paths\": $(field corpus_count)}"
  if [[ "$crashes" != 0 || "$hangs" != 0 ]]; then
    log "$t: findings in $root/fuzz/$out/default/{crashes,hangs}"
    failed=1
  fi
done
exit $failed
