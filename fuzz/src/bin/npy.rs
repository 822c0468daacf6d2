//! The `.npy` readers: float32 [N, C, H, W] images, then (after a NUL byte) int64 [N] labels.
use std::path::Path;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let (images, labels) = odelt_fuzz::split_at_nul(data);
        let labels = labels.map(|l| (l, Path::new("y.npy")));
        let _ = odelt::data::npy::parse(images, Path::new("x.npy"), labels);
    });
}
