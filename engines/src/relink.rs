//! Re-linking an offline-optimized model to the export's shared `weights.bin`.
//!
//! ONNX Runtime saves an optimized model's initializers into a new external-data file of its
//! own (`session.optimized_model_external_initializers_file_name`): it cannot point them back
//! at the file they came from, so an optimized model per length would copy every weight
//! again (1.3–2× the export for DiT-B at lengths 4, 8, 12). The exporter stores weights in the
//! layout the kernels use (pre-transposed), so the optimizer passes almost all of them through
//! unchanged. [`relink`] compares each saved initializer with the same-named one of the plain
//! graph; where the bytes are equal it references `weights.bin` at the original (64 KiB
//! aligned, memory-mappable) offset, and only initializers the optimizer created or changed
//! stay in a small file of the engine's own.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use odelt_export::external::{read_model, ExternalFiles, ExternalRef};
use odelt_format::atomic::{write_atomic, AtomicFile};
use onnx_protobuf::ModelProto;
use protobuf::Message;

use crate::error::{Error, Result};

/// Offsets in the engine's own data file are aligned like the exporter's (ONNX Runtime maps
/// aligned external data instead of copying it).
pub const ALIGNMENT: u64 = 64 * 1024;

/// What [`relink`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Relinked {
    /// Initializers now referencing the shared weights file, and their bytes.
    pub shared_tensors: usize,
    pub shared_bytes: u64,
    /// Initializers stored in the engine's own data file, and their bytes.
    pub own_tensors: usize,
    pub own_bytes: u64,
    /// The engine's own data file name (`None` when every external initializer is shared).
    pub own_file: Option<String>,
}

/// Rewrites the optimized model `dir/optimized` (whose external data ONNX Runtime wrote next to
/// it) into `dir/out_model`: initializers equal to those the graph `dir/plain` references in
/// one of `shared_files` (the export's `weights.bin`, and the int8 weights of int8 engines)
/// reference those bytes, the rest go to `dir/OWN_STEM.HASH.data` (created only when needed), named
/// by its content so that the model it replaces keeps the data file it references until the
/// new model is in place: a build killed at any moment leaves a consistent pair. Both outputs
/// are written atomically; older `OWN_STEM.*.data` files are removed afterwards; the inputs are
/// left for the caller to remove.
pub fn relink(
    dir: &Path,
    plain: &str,
    optimized: &str,
    shared_files: &[&str],
    out_model: &str,
    own_stem: &str,
) -> Result<Relinked> {
    let plain_model = read_model(&dir.join(plain))?;
    let shared: HashMap<&str, ExternalRef> = plain_model
        .graph
        .initializer
        .iter()
        .filter_map(|t| ExternalRef::of(t).map(|r| (t.name.as_str(), r)))
        .filter(|(_, r)| shared_files.contains(&r.location.as_str()))
        .collect();
    let mut model = read_model(&dir.join(optimized))?;
    let mut files = ExternalFiles::new(dir);
    let mut report = Relinked::default();
    let (mut saved, mut original) = (Vec::new(), Vec::new());
    let graph = model.graph.as_mut().ok_or_else(|| Error::Model {
        path: dir.join(optimized).display().to_string(),
        message: "the optimized model has no graph".into(),
    })?;
    // Initializers that stay the engine's own: (index, offset, length) in `own`.
    let mut own = Vec::new();
    let mut own_refs = Vec::new();
    for (index, tensor) in graph.initializer.iter_mut().enumerate() {
        let Some(r) = ExternalRef::of(tensor) else {
            continue;
        };
        files.read(&r, &mut saved)?;
        if let Some(src) = shared.get(tensor.name.as_str()).filter(|s| s.length == r.length) {
            files.read(src, &mut original)?;
            if original == saved {
                src.apply_to(tensor);
                report.shared_tensors += 1;
                report.shared_bytes += r.length;
                continue;
            }
        }
        let offset = (own.len() as u64).next_multiple_of(ALIGNMENT);
        own.resize(offset as usize, 0);
        own.extend_from_slice(&saved);
        own_refs.push((index, offset, r.length));
        report.own_tensors += 1;
        report.own_bytes += r.length;
    }
    if !own.is_empty() {
        let own_file = format!("{own_stem}.{}.data", &hex_sha256(&own)[..16]);
        let mut file = AtomicFile::create(&dir.join(&own_file))?;
        file.write_all(&own).map_err(Error::io(&dir.join(&own_file)))?;
        file.commit()?;
        for (index, offset, length) in own_refs {
            ExternalRef {
                location: own_file.clone(),
                offset,
                length,
            }
            .apply_to(&mut graph.initializer[index]);
        }
        report.own_file = Some(own_file);
    }
    write_model(&dir.join(out_model), &model)?;
    remove_older_own_files(dir, own_stem, report.own_file.as_deref())?;
    Ok(report)
}

/// Writes `model` to `path` atomically.
pub fn write_model(path: &Path, model: &ModelProto) -> Result<()> {
    let bytes = model.write_to_bytes().map_err(|e| Error::Model {
        path: path.display().to_string(),
        message: format!("cannot serialize: {e}"),
    })?;
    Ok(write_atomic(path, &bytes)?)
}

/// Removes `OWN_STEM.data` and `OWN_STEM.*.data` except `keep`: data of engines this one replaced.
fn remove_older_own_files(dir: &Path, own_stem: &str, keep: Option<&str>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(Error::io(dir))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name
            .strip_prefix(own_stem)
            .is_some_and(|rest| rest.starts_with('.') && rest.ends_with(".data"));
        if ours && Some(name.as_str()) != keep {
            std::fs::remove_file(entry.path()).map_err(Error::io(&entry.path()))?;
        }
    }
    Ok(())
}

pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
