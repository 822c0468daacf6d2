//! Finding and loading the ONNX Runtime shared library (ort's `load-dynamic`).
//!
//! Search order: an explicit path, then `ORT_DYLIB_PATH`, then the venvs that `scripts/setup.sh`
//! makes under `$ODELT_CACHE` or `~/.cache/odelt` (`venv-ort1.31.1`, the deploy setup, then
//! `venv-torch2.13.0-ort1.31.1`, the training setup; in each
//! `lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*`). One library and one
//! ONNX Runtime environment serve the whole process: the first successful load wins.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::environment::Environment;

use crate::error::{Error, Result};

/// The venv folders `scripts/setup.sh` creates under the cache: ONNX Runtime alone (the deploy
/// setup), and with torch (`--train`).
pub const SETUP_VENVS: [&str; 2] = ["venv-ort1.31.1", "venv-torch2.13.0-ort1.31.1"];
/// The ONNX Runtime release the runtime is built against (ort 2.0.0-rc.15, `api-31`).
pub const ORT_VERSION: &str = "1.31.1";

const INSTALL_HINT: &str = "install it with scripts/setup.sh or `pip install onnxruntime==1.31.1`, \
     or point ORT_DYLIB_PATH at libonnxruntime.so";

static ENVIRONMENT: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

/// Where the library search looks, in order, with what it found at each place.
fn candidates(explicit: Option<&Path>) -> Vec<(String, Option<PathBuf>)> {
    let mut out = Vec::new();
    if let Some(path) = explicit {
        out.push((
            format!("the given path {}", path.display()),
            Some(path.to_path_buf()),
        ));
        return out;
    }
    match std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        Some(v) => out.push((
            format!("ORT_DYLIB_PATH={}", Path::new(&v).display()),
            Some(PathBuf::from(v)),
        )),
        None => out.push(("ORT_DYLIB_PATH (not set)".into(), None)),
    }
    let cache = std::env::var_os("ODELT_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/odelt")));
    match cache {
        Some(cache) => {
            for venv in SETUP_VENVS {
                let lib = cache.join(venv).join("lib");
                let found = find_in_venv(&lib);
                out.push((
                    format!(
                        "{}/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*",
                        lib.display()
                    ),
                    found,
                ));
            }
        }
        None => out.push((
            "the setup venvs (neither ODELT_CACHE nor HOME is set)".into(),
            None,
        )),
    }
    out
}

/// `lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*`, newest name first.
fn find_in_venv(lib: &Path) -> Option<PathBuf> {
    let mut found = Vec::new();
    for python in std::fs::read_dir(lib).ok()?.flatten() {
        if !python.file_name().to_string_lossy().starts_with("python3") {
            continue;
        }
        let capi = python.path().join("site-packages/onnxruntime/capi");
        let Ok(entries) = std::fs::read_dir(&capi) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("libonnxruntime.so.") || name == "libonnxruntime.dylib" {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found.pop()
}

/// The library the search finds, or an error listing every place it looked.
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf> {
    let places = candidates(explicit);
    for (_, found) in &places {
        if let Some(path) = found {
            if path.is_file() {
                return Ok(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()));
            }
        }
    }
    let looked: Vec<&str> = places.iter().map(|(what, _)| what.as_str()).collect();
    Err(Error::OrtLibraryNotFound(format!(
        "ONNX Runtime library not found (looked at: {}); {INSTALL_HINT}",
        looked.join("; ")
    )))
}

/// Loads the library (once per process) and returns the process's ONNX Runtime environment.
///
/// ort checks the library's version before making any API call (a library older than 1.31
/// would make later calls panic); that check's failure is returned as [`Error::OrtLibrary`].
pub fn environment(explicit: Option<&Path>) -> Result<Environment> {
    let mut guard = ENVIRONMENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((loaded, env)) = guard.as_ref() {
        if let Some(asked) = explicit {
            let asked = std::fs::canonicalize(asked).unwrap_or_else(|_| asked.to_path_buf());
            if &asked != loaded {
                tracing::warn!(
                    "ONNX Runtime is already loaded from {}; ignoring {} (one library per process)",
                    loaded.display(),
                    asked.display()
                );
            }
        }
        return Ok(env.clone());
    }
    let path = find_library(explicit)?;
    let builder = ort::init_from(&path).map_err(|e| {
        Error::OrtLibrary(format!(
            "cannot use ONNX Runtime from {}: {e}; {INSTALL_HINT}",
            path.display()
        ))
    })?;
    let env = builder
        .with_name("odelt")
        .with_telemetry(false)
        .build()
        .map_err(|e| Error::OrtLibrary(format!("ONNX Runtime from {}: {e}", path.display())))?;
    tracing::info!("ONNX Runtime loaded from {}", path.display());
    *guard = Some((path, env.clone()));
    Ok(env)
}

/// The library this process loaded, if any.
pub fn loaded_library() -> Option<PathBuf> {
    let guard = ENVIRONMENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    guard.as_ref().map(|(path, _)| path.clone())
}
