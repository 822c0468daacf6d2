//! The export manifest reader (`Manifest::read`): versioned JSON, then validation.
use std::path::Path;

use odelt_format::json::parse_versioned;
use odelt_format::Manifest;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = parse_versioned::<Manifest>(text, Path::new("manifest.json"));
        }
    });
}
