#!/usr/bin/env bash
# Regenerates runtime/include/odelt.h from runtime/src/ffi.rs with the pinned cbindgen.
# The binary is installed once into the odelt cache ($ODELT_CACHE or ~/.cache/odelt).
# runtime/tests/header.rs checks the committed header against the same cbindgen version.
set -euo pipefail
version=0.29.4
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${ODELT_CACHE:-$HOME/.cache/odelt}/cbindgen-$version"
if [ ! -x "$cache/bin/cbindgen" ]; then
    echo "installing cbindgen $version into $cache" >&2
    cargo install "cbindgen@$version" --locked --root "$cache"
fi
cd "$root/runtime"
"$cache/bin/cbindgen" --config cbindgen.toml --crate odelt-runtime --output include/odelt.h .
echo "wrote runtime/include/odelt.h" >&2
