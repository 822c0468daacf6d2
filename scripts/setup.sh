#!/usr/bin/env bash
# Installs what odelt needs outside the repo, idempotently and quietly when all is there.
#
#   scripts/setup.sh           the deploy build's needs: ONNX Runtime 1.31.1 (its shared library,
#                              from PyPI's onnxruntime wheel) in a small venv
#   scripts/setup.sh --data    also the Debian package dataset-fashion-mnist (for `odelt eval`)
#   scripts/setup.sh --train   also the training and test venv (torch 2.13.0 for tch, onnxruntime,
#                              onnx, numpy; ~5 GB) and the dataset
#   scripts/setup.sh --browser also the Debian package chromium (the headless browser that
#                              tests/serve.rs drives to test `odelt serve`'s web page)
#   scripts/setup.sh --kserve  also a venv with the kserve model server, onnxruntime and Triton's
#                              client (model_config_pb2), for tests/triton.rs (~550 MB)
#   scripts/setup.sh --bench   also a small venv with scipy, numpy and onnxruntime (~60 MB) for
#                              benches/dopri5_vs_rk45.py
#
# Everything goes to ${ODELT_CACHE:-~/.cache/odelt}, in folders keyed by the versions, so a clean
# clone reuses it. Source scripts/env.sh afterwards (or let the README commands do it).
set -euo pipefail

TORCH_VERSION=2.13.0
ORT_VERSION=1.31.1
SCIPY_VERSION=1.17.1
CACHE="${ODELT_CACHE:-$HOME/.cache/odelt}"
ORT_VENV="$CACHE/venv-ort${ORT_VERSION}"
TRAIN_VENV="$CACHE/venv-torch${TORCH_VERSION}-ort${ORT_VERSION}"
KSERVE_VERSION=0.21.0
KSERVE_VENV="$CACHE/venv-kserve${KSERVE_VERSION}-ort${ORT_VERSION}"
BENCH_VENV="$CACHE/venv-scipy${SCIPY_VERSION}-ort${ORT_VERSION}"
FMNIST=/usr/share/datasets/fashion-mnist

log() { echo "setup: $*" >&2; }

train=0
data=0
browser=0
kserve=0
bench=0
for arg in "$@"; do
  case "$arg" in
    --train) train=1; data=1 ;;
    --data) data=1 ;;
    --browser) browser=1 ;;
    --kserve) kserve=1 ;;
    --bench) bench=1 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown option '$arg' (expected --data, --train, --browser, --kserve or --bench)" >&2; exit 2 ;;
  esac
done

# A venv with the packages, made under a temporary name and renamed when complete, so an
# interrupted install is redone rather than half used.
make_venv() {
  local venv="$1"; shift
  [[ -f "$venv/.odelt-complete" ]] && return 0
  mkdir -p "$CACHE"
  rm -rf "$venv.partial"
  python3 -m venv "$venv.partial"
  "$venv.partial/bin/pip" install --quiet --disable-pip-version-check "$@"
  touch "$venv.partial/.odelt-complete"
  rm -rf "$venv"
  mv "$venv.partial" "$venv"
}

if [[ $train -eq 0 && ! -f "$ORT_VENV/.odelt-complete" ]]; then
  log "installing ONNX Runtime $ORT_VERSION into $ORT_VENV (~20 MB)"
  # The wheel's shared library is all odelt loads: none of its Python dependencies are needed.
  make_venv "$ORT_VENV" --no-deps "onnxruntime==$ORT_VERSION"
fi

if [[ $train -eq 1 && ! -f "$TRAIN_VENV/.odelt-complete" ]]; then
  log "creating the training venv $TRAIN_VENV (torch==$TORCH_VERSION, onnxruntime==$ORT_VERSION; ~5 GB, a few minutes)"
  make_venv "$TRAIN_VENV" "torch==$TORCH_VERSION" "onnxruntime==$ORT_VERSION" onnx numpy
fi

if [[ $kserve -eq 1 && ! -f "$KSERVE_VENV/.odelt-complete" ]]; then
  log "creating the KServe test venv $KSERVE_VENV (kserve==$KSERVE_VERSION, onnxruntime==$ORT_VERSION, tritonclient; ~550 MB)"
  make_venv "$KSERVE_VENV" "kserve==$KSERVE_VERSION" "onnxruntime==$ORT_VERSION" "tritonclient[grpc]==2.73.0" \
    numpy==2.4.6 protobuf==6.33.6
fi

if [[ $bench -eq 1 && ! -f "$BENCH_VENV/.odelt-complete" ]]; then
  log "creating the bench venv $BENCH_VENV (scipy==$SCIPY_VERSION, onnxruntime==$ORT_VERSION; ~60 MB)"
  make_venv "$BENCH_VENV" "scipy==$SCIPY_VERSION" "onnxruntime==$ORT_VERSION" numpy
fi

apt_install() {
  log "installing Debian package $1"
  local sudo=""; [[ $(id -u) -ne 0 ]] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null
}

if [[ $data -eq 1 && ! -f "$FMNIST/t10k-labels-idx1-ubyte.gz" ]]; then
  apt_install dataset-fashion-mnist
fi

if [[ $browser -eq 1 && ! -x /usr/bin/chromium ]]; then
  apt_install chromium
fi
