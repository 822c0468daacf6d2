# Source me: points cargo and the binaries at the venvs that scripts/setup.sh made.
# The training venv (setup.sh --train) gives libtorch to `--features train` builds and is
# preferred for ONNX Runtime too; otherwise the deploy venv's ONNX Runtime is used.
_odelt_cache="${ODELT_CACHE:-$HOME/.cache/odelt}"
_odelt_train="$_odelt_cache/venv-torch2.13.0-ort1.31.1"
_odelt_ort="$_odelt_cache/venv-ort1.31.1"
if [ -f "$_odelt_train/.odelt-complete" ]; then
  export ODELT_VENV="$_odelt_train"
  export VIRTUAL_ENV="$_odelt_train"
  export PATH="$_odelt_train/bin:$PATH"
  export LIBTORCH_USE_PYTORCH=1
  _odelt_site="$("$_odelt_train/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  export LD_LIBRARY_PATH="$_odelt_site/torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  _odelt_site="$(ls -d "$_odelt_ort"/lib/python3*/site-packages 2>/dev/null | head -1)"
fi
# The v2 model server venv (setup.sh --kserve) that tests/triton.rs starts.
if [ -f "$_odelt_cache/venv-kserve0.21.0-ort1.31.1/.odelt-complete" ]; then
  export ODELT_KSERVE_PYTHON="$_odelt_cache/venv-kserve0.21.0-ort1.31.1/bin/python"
fi
ORT_DYLIB_PATH="$(ls "$_odelt_site"/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -1)"
export ORT_DYLIB_PATH
unset _odelt_cache _odelt_train _odelt_ort _odelt_site
