# Source me: points cargo and the binaries at the venv that scripts/setup.sh made.
_odelt_cache="${ODELT_CACHE:-$HOME/.cache/odelt}"
export ODELT_VENV="$_odelt_cache/venv-torch2.13.0-ort1.31.1"
export VIRTUAL_ENV="$ODELT_VENV"
export PATH="$ODELT_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
_odelt_site="$("$ODELT_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
export LD_LIBRARY_PATH="$_odelt_site/torch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ORT_DYLIB_PATH="$(ls "$_odelt_site"/onnxruntime/capi/libonnxruntime.so.* 2>/dev/null | head -1)"
unset _odelt_cache _odelt_site
