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
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{ModelProto, StringStringEntryProto, TensorProto};
use protobuf::Message;

use odelt_format::atomic::{write_atomic, AtomicFile};

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

#[derive(Debug, Clone, PartialEq)]
struct ExternalRef {
    location: String,
    offset: u64,
    length: u64,
}

fn external_ref(t: &TensorProto) -> Option<ExternalRef> {
    if t.data_location.enum_value_or_default() != DataLocation::EXTERNAL {
        return None;
    }
    let mut location = None;
    let mut offset = 0;
    let mut length = None;
    for e in &t.external_data {
        match e.key.as_str() {
            "location" => location = Some(e.value.clone()),
            "offset" => offset = e.value.parse().ok()?,
            "length" => length = Some(e.value.parse().ok()?),
            _ => {}
        }
    }
    Some(ExternalRef {
        location: location?,
        offset,
        length: length?,
    })
}

fn set_external(t: &mut TensorProto, r: &ExternalRef) {
    let entry = |key: &str, value: String| {
        let mut e = StringStringEntryProto::new();
        e.key = key.into();
        e.value = value;
        e
    };
    t.external_data = vec![
        entry("location", r.location.clone()),
        entry("offset", r.offset.to_string()),
        entry("length", r.length.to_string()),
    ];
    t.data_location = DataLocation::EXTERNAL.into();
}

pub(crate) fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    ModelProto::parse_from_bytes(&bytes).map_err(|e| Error::Model {
        path: path.display().to_string(),
        message: format!("not a readable ONNX model: {e}"),
    })
}

/// Open files of one folder, read by (location, offset, length).
struct Files<'a> {
    dir: &'a Path,
    open: HashMap<String, File>,
}

impl Files<'_> {
    fn read(&mut self, r: &ExternalRef, buf: &mut Vec<u8>) -> Result<()> {
        let path = self.dir.join(&r.location);
        let file = match self.open.entry(r.location.clone()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(File::open(&path).map_err(Error::io(&path))?)
            }
        };
        buf.resize(r.length as usize, 0);
        file.seek(SeekFrom::Start(r.offset)).map_err(Error::io(&path))?;
        file.read_exact(buf).map_err(Error::io(&path))
    }
}

/// Rewrites the optimized model `dir/optimized` (whose external data ONNX Runtime wrote next to
/// it) into `dir/out_model`: initializers equal to the plain graph `dir/plain`'s reference
/// `weights_file`, the rest go to `dir/own_file` (created only when needed). Both outputs are
/// written through temp files and renamed; the inputs are left for the caller to remove.
pub fn relink(
    dir: &Path,
    plain: &str,
    optimized: &str,
    weights_file: &str,
    out_model: &str,
    own_file: &str,
) -> Result<Relinked> {
    let plain_model = read_model(&dir.join(plain))?;
    let shared: HashMap<&str, ExternalRef> = plain_model
        .graph
        .initializer
        .iter()
        .filter_map(|t| external_ref(t).map(|r| (t.name.as_str(), r)))
        .filter(|(_, r)| r.location == weights_file)
        .collect();
    let mut model = read_model(&dir.join(optimized))?;
    let mut files = Files {
        dir,
        open: HashMap::new(),
    };
    let own_path = dir.join(own_file);
    let mut own: Option<(AtomicFile, u64)> = None;
    let mut report = Relinked::default();
    let (mut saved, mut original) = (Vec::new(), Vec::new());
    let graph = model.graph.as_mut().ok_or_else(|| Error::Model {
        path: dir.join(optimized).display().to_string(),
        message: "the optimized model has no graph".into(),
    })?;
    for tensor in graph.initializer.iter_mut() {
        let Some(r) = external_ref(tensor) else {
            continue;
        };
        files.read(&r, &mut saved)?;
        if let Some(src) = shared.get(tensor.name.as_str()).filter(|s| s.length == r.length) {
            files.read(src, &mut original)?;
            if original == saved {
                set_external(tensor, src);
                report.shared_tensors += 1;
                report.shared_bytes += r.length;
                continue;
            }
        }
        let (file, pos) = match own.as_mut() {
            Some(o) => o,
            None => {
                let file = AtomicFile::create(&own_path)?;
                own.insert((file, 0))
            }
        };
        let offset = pos.next_multiple_of(ALIGNMENT);
        if offset > *pos {
            file.write_all(&vec![0; (offset - *pos) as usize])
                .map_err(Error::io(&own_path))?;
        }
        file.write_all(&saved).map_err(Error::io(&own_path))?;
        *pos = offset + r.length;
        set_external(
            tensor,
            &ExternalRef {
                location: own_file.into(),
                offset,
                length: r.length,
            },
        );
        report.own_tensors += 1;
        report.own_bytes += r.length;
    }
    if let Some((file, _)) = own {
        file.commit()?;
        report.own_file = Some(own_file.into());
    } else if own_path.exists() {
        // A stale file from an earlier build.
        std::fs::remove_file(&own_path).map_err(Error::io(&own_path))?;
    }
    let bytes = model.write_to_bytes().map_err(|e| Error::Model {
        path: dir.join(out_model).display().to_string(),
        message: format!("cannot serialize: {e}"),
    })?;
    write_atomic(&dir.join(out_model), &bytes)?;
    Ok(report)
}
