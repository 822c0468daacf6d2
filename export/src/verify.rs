//! Checking an export folder against its manifest (`odelt verify`): every file present, every
//! external-data reference inside its file, and — on request — every length's content hash
//! recomputed (docs/DESIGN.md §6). A truncated or altered export is an error naming the file,
//! never a crash or garbage samples later.

use std::path::Path;

use odelt_format::Manifest;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::external::{parse_model, read_model, ExternalFiles, ExternalRef};
use crate::weights;

/// docs/DESIGN.md §6's content hash: SHA-256 over the graph file's bytes followed by the bytes
/// of every external initializer it references, in the graph's initializer order.
pub fn content_hash(graph: &[u8], weights_path: &Path, ranges: &[(u64, u64)]) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(graph);
    weights::read_ranges(weights_path, ranges, |chunk| hasher.update(chunk))?;
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Graphs and built engines whose references were checked.
    pub files: Vec<String>,
    /// Lengths whose content hash was recomputed and matched.
    pub hashed: Vec<u32>,
}

/// Checks the export in `dir`: sizes and references always, content hashes when `hashes`.
pub fn verify(dir: &Path, hashes: bool) -> Result<Verified> {
    let manifest = Manifest::read(dir)?;
    manifest.check_weights_size(dir)?;
    let weights_path = dir.join(&manifest.weights_file);
    let mut files = ExternalFiles::new(dir);
    let mut verified = Verified {
        files: Vec::new(),
        hashed: Vec::new(),
    };
    for entry in &manifest.lengths {
        let path = dir.join(&entry.file);
        let bytes = std::fs::read(&path).map_err(|e| Error::read(&path, e))?;
        let refs = check_references(&parse_model(&bytes, &path)?, &path, &mut files)?;
        verified.files.push(entry.file.clone());
        if hashes {
            let ranges: Vec<(u64, u64)> = refs.iter().map(|r| (r.offset, r.length)).collect();
            if refs.iter().any(|r| r.location != manifest.weights_file) {
                return Err(corrupt(&path, "references a file other than the shared weights"));
            }
            if content_hash(&bytes, &weights_path, &ranges)? != entry.content_hash {
                return Err(corrupt(
                    &path,
                    &format!(
                        "length {}: the graph or the weights it uses differ from the manifest's content hash; \
                         export again",
                        entry.length
                    ),
                ));
            }
            verified.hashed.push(entry.length);
        }
        for engine in &entry.engines {
            let path = dir.join(&engine.file);
            check_references(&read_model(&path)?, &path, &mut files)?;
            verified.files.push(engine.file.clone());
        }
    }
    Ok(verified)
}

/// The model's external references, each checked to lie inside its file.
fn check_references(
    model: &onnx_protobuf::ModelProto,
    path: &Path,
    files: &mut ExternalFiles,
) -> Result<Vec<ExternalRef>> {
    let refs: Vec<ExternalRef> = model
        .graph
        .initializer
        .iter()
        .filter_map(ExternalRef::of)
        .collect();
    for r in &refs {
        files.check_range(r, path)?;
    }
    Ok(refs)
}

fn corrupt(path: &Path, message: &str) -> Error {
    Error::Corrupt {
        path: path.display().to_string(),
        message: message.into(),
    }
}
