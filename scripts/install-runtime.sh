#!/usr/bin/env bash
# Builds the odelt-runtime C library in release and installs it into PREFIX:
#   PREFIX/lib/libodelt_runtime.so        shared library (cdylib)
#   PREFIX/lib/libodelt_runtime.a         static library (staticlib)
#   PREFIX/include/odelt.h                the committed header (runtime/include/odelt.h)
#   PREFIX/lib/pkgconfig/odelt-runtime.pc from runtime/odelt-runtime.pc.in
# Re-running replaces the same files. Honours CARGO_TARGET_DIR. ONNX Runtime is not installed
# or linked: the library loads it at run time (scripts/setup.sh, or ORT_DYLIB_PATH).
#
# Usage: scripts/install-runtime.sh PREFIX
set -euo pipefail

log() { echo "install-runtime: $*" >&2; }
die() { log "error: $*"; exit 2; }

if [[ $# -ne 1 || -z "$1" || "$1" == -* ]]; then
  echo "usage: $0 PREFIX   (e.g. $0 \$HOME/.local; then PKG_CONFIG_PATH=PREFIX/lib/pkgconfig)" >&2
  exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1" || die "cannot create PREFIX $1"
prefix="$(cd "$1" && pwd)"
[[ -w "$prefix" ]] || die "PREFIX $prefix is not writable"

cd "$root"
command -v cargo >/dev/null || die "cargo not found on PATH (install Rust from https://rustup.rs)"

# The crate's version, from `cargo pkgid` (…#odelt-runtime@0.1.0 or …#0.1.0).
pkgid="$(cargo pkgid -p odelt-runtime 2>/dev/null)" || die "cargo cannot resolve the package odelt-runtime in $root"
version="${pkgid##*[#@]}"

log "building odelt-runtime $version (cargo build --release -p odelt-runtime)"
cargo build --release -p odelt-runtime

target="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target" = /* ]] || target="$root/$target"
lib_so="$target/release/libodelt_runtime.so"
lib_a="$target/release/libodelt_runtime.a"
header="$root/runtime/include/odelt.h"
pc_in="$root/runtime/odelt-runtime.pc.in"
for f in "$lib_so" "$lib_a" "$header" "$pc_in"; do
  [[ -f "$f" ]] || die "$f is missing after the build"
done

install -d "$prefix/lib" "$prefix/include" "$prefix/lib/pkgconfig"
install -m 0755 "$lib_so" "$prefix/lib/libodelt_runtime.so"
install -m 0644 "$lib_a" "$prefix/lib/libodelt_runtime.a"
install -m 0644 "$header" "$prefix/include/odelt.h"

# Written to a temp file first, so a failed run never leaves half a .pc file.
pc="$prefix/lib/pkgconfig/odelt-runtime.pc"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" "$pc_in" > "$pc.tmp"
mv -f "$pc.tmp" "$pc"

log "installed into $prefix:"
log "  lib/libodelt_runtime.so, lib/libodelt_runtime.a, include/odelt.h, lib/pkgconfig/odelt-runtime.pc"
log "compile:  cc app.c \$(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs odelt-runtime)"
log "run:      ORT_DYLIB_PATH=/path/to/libonnxruntime.so.1.31.1 ./a.out …"
