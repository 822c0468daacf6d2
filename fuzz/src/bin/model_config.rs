//! The model-config reader (`--model FILE.json`, a checkpoint's config.json): JSON, then every
//! constraint of docs/DESIGN.md §3; a valid config's derived sizes must not overflow.
use std::path::Path;

use odelt_format::ModelConfig;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            if let Ok(config) = ModelConfig::from_json(text, Path::new("config.json")) {
                let _ = (config.num_tokens(), config.mlp_hidden(), config.valid_lengths());
            }
        }
    });
}
