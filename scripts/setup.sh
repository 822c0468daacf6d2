#!/usr/bin/env bash
# Installs what odelt needs outside the repo, idempotently and quietly when all is there:
#  - a Python venv keyed by the pinned versions, in ${ODELT_CACHE:-~/.cache/odelt}
#  - the Debian package dataset-fashion-mnist (the IDX files under /usr/share/datasets)
# Source scripts/env.sh afterwards (or let the README commands do it).
set -euo pipefail

TORCH_VERSION=2.13.0
ORT_VERSION=1.31.1
CACHE="${ODELT_CACHE:-$HOME/.cache/odelt}"
VENV="$CACHE/venv-torch${TORCH_VERSION}-ort${ORT_VERSION}"
STAMP="$VENV/.odelt-complete"

log() { echo "setup: $*" >&2; }

if [[ ! -f "$STAMP" ]]; then
  log "creating Python venv in $VENV (torch==$TORCH_VERSION, onnxruntime==$ORT_VERSION; ~5 GB, a few minutes)"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "torch==$TORCH_VERSION" "onnxruntime==$ORT_VERSION" onnx numpy
  touch "$STAMP"
fi

FMNIST=/usr/share/datasets/fashion-mnist
if [[ ! -f "$FMNIST/t10k-labels-idx1-ubyte.gz" ]]; then
  log "installing Debian package dataset-fashion-mnist"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
