//! The exporter's checkpoint reader: `model.safetensors` bytes against a fixed small model
//! (every tensor present, with its shape and a float type, finite).
use std::path::Path;

use odelt_export::checkpoint::Checkpoint;
use odelt_format::CheckpointMeta;

fn main() {
    let meta = CheckpointMeta::new(0, odelt_fuzz::micro_model());
    afl::fuzz!(|data: &[u8]| {
        let _ = Checkpoint::parse(meta.clone(), data, Path::new("model.safetensors"));
    });
}
