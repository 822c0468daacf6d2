//! ONNX external data: where an initializer's bytes lie (file, offset, length). The exporter
//! writes these references, the engine builder rewrites them and `verify` checks them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{ModelProto, StringStringEntryProto, TensorProto};
use protobuf::Message;

use crate::error::{Error, Result};

/// One initializer's bytes in an external-data file, relative to the model's folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExternalRef {
    pub location: String,
    pub offset: u64,
    pub length: u64,
}

impl ExternalRef {
    /// The reference `t` carries, if its data is external and the reference well formed.
    pub fn of(t: &TensorProto) -> Option<Self> {
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
        Some(Self {
            location: location?,
            offset,
            length: length?,
        })
    }

    /// Makes `t` reference these bytes.
    pub fn apply_to(&self, t: &mut TensorProto) {
        let entry = |key: &str, value: String| {
            let mut e = StringStringEntryProto::new();
            e.key = key.into();
            e.value = value;
            e
        };
        t.external_data = vec![
            entry("location", self.location.clone()),
            entry("offset", self.offset.to_string()),
            entry("length", self.length.to_string()),
        ];
        t.data_location = DataLocation::EXTERNAL.into();
    }
}

/// Reads an ONNX model file.
pub fn read_model(path: &Path) -> Result<ModelProto> {
    let bytes = std::fs::read(path).map_err(|e| Error::read(path, e))?;
    parse_model(&bytes, path)
}

/// Parses ONNX model bytes read from `path`.
pub fn parse_model(bytes: &[u8], path: &Path) -> Result<ModelProto> {
    ModelProto::parse_from_bytes(bytes).map_err(|e| Error::Corrupt {
        path: path.display().to_string(),
        message: format!("not a readable ONNX model: {e}"),
    })
}

/// The external-data files of one folder, opened once and read by reference.
pub struct ExternalFiles<'a> {
    dir: &'a Path,
    open: HashMap<String, File>,
}

impl<'a> ExternalFiles<'a> {
    pub fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            open: HashMap::new(),
        }
    }

    fn file(&mut self, location: &str) -> Result<&mut File> {
        let path = self.dir.join(location);
        Ok(match self.open.entry(location.to_string()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(File::open(&path).map_err(|err| Error::read(&path, err))?)
            }
        })
    }

    /// The referenced bytes, into `buf`.
    pub fn read(&mut self, r: &ExternalRef, buf: &mut Vec<u8>) -> Result<()> {
        let path = self.dir.join(&r.location);
        let file = self.file(&r.location)?;
        buf.resize(r.length as usize, 0);
        file.seek(SeekFrom::Start(r.offset))
            .and_then(|_| file.read_exact(buf))
            .map_err(|e| Error::read(&path, e))
    }

    /// Fails unless the referenced range lies inside its file.
    pub fn check_range(&mut self, r: &ExternalRef, model: &Path) -> Result<()> {
        let path = self.dir.join(&r.location);
        let size = self
            .file(&r.location)?
            .metadata()
            .map_err(|e| Error::read(&path, e))?
            .len();
        let end = r.offset.saturating_add(r.length);
        if end > size {
            return Err(Error::Corrupt {
                path: path.display().to_string(),
                message: format!(
                    "{} bytes long, but {} references bytes {}..{end}: truncated or replaced",
                    size,
                    model.display(),
                    r.offset
                ),
            });
        }
        Ok(())
    }
}
